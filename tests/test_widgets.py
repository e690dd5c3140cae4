"""mmlab.widgets, driven without a browser: the tests press the buttons by calling
their handlers, then read the machine and the text the widgets show.

A widget only calls the machine's public API, so each test also checks the
machine (m.check(), /proc/buddyinfo) after the clicks, and that bad input
shows a message instead of raising.
"""
import matplotlib
matplotlib.use("Agg")
import numpy as np
import pytest

from mmlab import Machine
from mmlab.mm import page_alloc as pa
from mmlab.uapi import GFP_KERNEL, GFP_ATOMIC, __GFP_ZERO, __GFP_MOVABLE
from mmlab.widgets import BuddyPlayground, PhysMemExplorer, parse_gfp

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def m():
    return Machine(ram="256MiB", seed=0, pcp=False)


def allocated_frames(m):
    return int(np.count_nonzero(m.mem_map.state == pa.FRAME_ALLOCATED))


# -- BuddyPlayground -------------------------------------------------------------

def test_allocate_order3_splits_an_order10_block(m):
    play = BuddyPlayground(m)
    play.order.value = 3
    play.alloc_button.click()                                  # the button calls allocate()
    assert play.allocations == [(0x2800, 3, GFP_KERNEL)]
    assert allocated_frames(m) == 8
    assert "alloc_pages(order=3, GFP_KERNEL) = pfn 0x2800" in play.message
    assert "expand(zone=DMA32, pfn=0x2800, low=3, high=10" in play.trace_text
    assert "expand: split order 10 at 0x2800, free upper half 0x2a00 as order 9" in play.trace_text
    assert play.last_trace.calls()[0] == "alloc_pages"
    assert "change" in play.buddyinfo_text and "+1" in play.buddyinfo_text
    assert play.picture.value.tobytes().startswith(PNG)
    m.check()


def test_free_returns_to_the_starting_buddyinfo(m):
    start = m.proc.buddyinfo()
    play = BuddyPlayground(m)
    play.allocate()
    play.selected.value = 0
    play.free_selected()
    assert m.proc.buddyinfo() == start
    assert play.allocations == []
    assert "merge: order 9 at 0x2800 with buddy 0x2a00" in play.trace_text
    assert "free_pages(pfn=0x2800, order=3)" in play.message
    assert play.buddyinfo_text.endswith("change\nzone DMA32   order       0     1     2     3     4     5"
                                        "     6     7     8     9    10\n"
                                        "             before      0     0     0     1     1     1"
                                        "     1     1     1     1    52\n"
                                        "             after       0     0     0     0     0     0"
                                        "     0     0     0     0    53\n"
                                        "             change " + " " * 18 + "    -1" * 7 + "    +1")
    m.check()


def test_reset_frees_everything_the_playground_holds(m):
    start = m.proc.buddyinfo()
    play = BuddyPlayground(m)
    for order, gfp in ((0, "GFP_KERNEL"), (2, "GFP_ATOMIC"), (5, "GFP_HIGHUSER_MOVABLE"), (0, "GFP_KERNEL")):
        play.order.value, play.gfp.value = order, gfp
        play.allocate()
    assert len(play.allocations) == 4
    assert allocated_frames(m) == 1 + 4 + 32 + 1
    play.reset()
    assert play.allocations == [] and play.selected.options == ()
    assert allocated_frames(m) == 0
    assert m.proc.buddyinfo() == start
    assert "reset: freed 4 allocations" in play.message
    m.check()


def test_reset_drains_the_per_cpu_lists():
    m = Machine(ram="256MiB", pcp=True)
    start = m.proc.buddyinfo()
    play = BuddyPlayground(m)
    play.order.value = 0
    play.allocate()
    play.allocate()
    play.reset()
    assert m.proc.buddyinfo() == start
    m.check()


@pytest.mark.parametrize("order, gfp, message", [
    (11, "GFP_KERNEL", "order must be <= 10, got 11"),                # beyond MAX_PAGE_ORDER
    (-1, "GFP_KERNEL", "order must be >= 0, got -1"),                 # negative order
    (3, "GFP_FOO", "'GFP_FOO' is not a GFP flag"),                    # unknown flag name
    (3, "", "write flags such as GFP_KERNEL"),                        # nothing typed
    (3, "__GFP_MOVABLE | __GFP_RECLAIMABLE", "exclude each other"),   # the model refuses the pair
    (3, "GFP_KERNEL | 0x10000000", "has bits no GFP flag uses"),       # a bit beyond __GFP_BITS_MASK
])
def test_bad_input_shows_an_error_and_changes_nothing(m, unchanged, order, gfp, message):
    play = BuddyPlayground(m)
    play.order.value, play.gfp.value = order, gfp
    with unchanged(m):
        play.allocate()
    assert play.message.startswith("Error:")
    assert message in play.message
    assert play.allocations == []


def test_free_without_a_selection_shows_an_error(m, unchanged):
    play = BuddyPlayground(m)
    with unchanged(m):
        play.free_selected()
    assert play.message == "Error: select an allocation to free first"


def test_freeing_behind_the_playgrounds_back_shows_the_kernel_bug(m):
    play = BuddyPlayground(m)
    play.allocate()
    pfn, order, _ = play.allocations[0]
    m.free_pages(pfn, order)                                   # freed outside the playground
    play.selected.value = 0
    play.free_selected()                                       # a double free: KernelBug, shown
    assert "Bad page state" in play.message and "double free" in play.message
    m.check()


def test_a_failed_allocation_says_null(m):
    play = BuddyPlayground(m)
    play.order.value, play.gfp.value = 10, "GFP_KERNEL | GFP_DMA"
    for _ in range(4):                                         # DMA holds three order-10 blocks
        play.allocate()
    assert len(play.allocations) < 4
    assert "returned NULL" in play.message
    assert "out of memory for order 10" in play.trace_text
    m.check()


def test_parse_gfp_table():
    assert parse_gfp("GFP_KERNEL") == GFP_KERNEL                        # one name
    assert parse_gfp(" GFP_ATOMIC | __GFP_ZERO ") == GFP_ATOMIC | __GFP_ZERO   # names joined by |
    assert parse_gfp("0x8 | GFP_KERNEL") == GFP_KERNEL | __GFP_MOVABLE   # numbers too
    assert parse_gfp(GFP_KERNEL) == GFP_KERNEL                          # an int passes through
    with pytest.raises(ValueError, match="gfp: 'PROT_READ'"):
        parse_gfp("PROT_READ")                                          # a name that is not a GFP flag


# -- PhysMemExplorer -------------------------------------------------------------

def test_explorer_shows_all_memory_then_a_zone(m):
    ex = PhysMemExplorer(m)
    assert ex.range.value == (0, m.max_pfn)
    assert ex.summary_text.splitlines()[:2] == ["pfn 0x0-0x10000: 65,536 frames (256 MiB)",
                                                "zones: DMA, DMA32"]
    assert ex.picture.value.tobytes().startswith(PNG)
    ex.zone.value = "DMA32"                                    # the observer redraws
    assert ex.range.value == (0x1000, 0x10000)
    assert (ex.range.min, ex.range.max) == (0x1000, 0x10000)
    assert "zones: DMA32" in ex.summary_text
    ex.zone.value = "DMA"
    assert ex.range.value == (0x1, 0x1000)


def test_explorer_zooms_and_counts_frames(m):
    m.alloc_pages(3)
    ex = PhysMemExplorer(m).show(0x2800, 0x2900)
    lines = ex.summary_text.splitlines()
    assert lines[0] == "pfn 0x2800-0x2900: 256 frames (1 MiB)"
    assert "  free                  248 frames" in lines
    assert "  allocated               8 frames" in lines
    ex.colouring.value = "pageblock"
    assert ex.message == "" and ex.picture.value.tobytes().startswith(PNG)


def test_explorer_empty_range_shows_an_error(m):
    ex = PhysMemExplorer(m)
    ex.show(0x2800, 0x2800)
    assert ex.message == "Error: the range is empty: move the slider's ends apart"
