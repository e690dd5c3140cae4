"""mmlab.viz: figures and text drawn from the model's state, and the fragmentation indices.

The tests read back what a figure shows (the image array behind a map, the
bars, the lines, the legend's labels) and compare it with the machine's
state, so a picture that miscounts fails.  The fragmentation indices are
checked against values worked by hand from mm/vmstat.c's formulas, and
against this machine's own /sys/kernel/debug/extfrag files.
"""
import io
import os
import subprocess
import sys

import matplotlib
matplotlib.use("Agg")
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mmlab import Machine
from mmlab.mm import page_alloc as pa
from mmlab.uapi import GFP_KERNEL, GFP_HIGHUSER_MOVABLE
from mmlab.viz import (physmem_map, pageblock_map, buddy_blocks, free_areas, watermarks,
                       fragmentation, unusable_index, extfrag_index, text)
from mmlab.viz import frames as F
from mmlab.viz.vmstat import (fill_contig_page_info, unusable_free_index, fragmentation_index,
                              unusable_indices, c_thousandths, parse_buddyinfo)


@pytest.fixture
def m():
    return Machine(ram="256MiB", seed=0, pcp=False)


def image(fig, index=0):
    """The class array behind the first image of the figure's first axes."""
    return np.asarray(fig.axes[index].images[0].get_array())


def legend_texts(fig):
    legends = list(fig.legends) + [a.get_legend() for a in fig.axes if a.get_legend()]
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def assert_labelled(fig, ax=None):
    """Every figure has a title and labelled axes."""
    ax = ax or fig.axes[0]
    assert isinstance(fig, Figure)
    assert ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()


# -- the fragmentation indices (mm/vmstat.c) ------------------------------------

def test_fill_contig_page_info_by_hand():
    # 4 order-0, 2 order-1, 1 order-2 blocks: 12 pages in 7 blocks
    assert fill_contig_page_info([4, 2, 1], 0) == (12, 7, 12)     # every page is an order-0 block
    assert fill_contig_page_info([4, 2, 1], 1) == (12, 7, 4)      # 2 order-1 + 2 halves of the order-2
    assert fill_contig_page_info([4, 2, 1], 2) == (12, 7, 1)
    assert fill_contig_page_info([4, 2, 1], 3) == (12, 7, 0)


def test_unusable_free_index_by_hand():
    info = lambda order: fill_contig_page_info([4, 2, 1], order)
    assert unusable_free_index(0, info(0)) == 0          # every free page serves order 0
    assert unusable_free_index(1, info(1)) == 333        # (12 - 4*2) * 1000 // 12
    assert unusable_free_index(2, info(2)) == 666        # (12 - 1*4) * 1000 // 12, rounded down
    assert unusable_free_index(3, info(3)) == 1000       # no block of 8
    assert unusable_indices([0] * 11) == [1000] * 11     # no free memory reads as all unusable


def test_fragmentation_index_by_hand():
    info = lambda counts, order: fill_contig_page_info(counts, order)
    assert fragmentation_index(2, info([4, 2, 1], 2)) == -1000       # would succeed
    assert fragmentation_index(3, info([4, 2, 1], 3)) == 643         # 1000 - (1000 + 1500) // 7
    assert fragmentation_index(3, info([0] * 11, 3)) == 0            # no free blocks at all
    assert fragmentation_index(3, info([0, 0, 1], 3)) == -500        # 1000 - (1000 + 500) // 1


def test_c_thousandths_prints_as_the_kernel():
    assert c_thousandths(66) == "0.066"
    assert c_thousandths(1000) == "1.000"
    assert c_thousandths(-1000, 2) == "-1.000"           # extfrag_index's "would succeed"
    assert c_thousandths(-500, 2) == " 0.-500"           # C division truncates towards zero


def test_unusable_index_file_after_an_order3_allocation(m):
    m.alloc_pages(3)
    # DMA32 now holds one free block of each order 3..9 and 52 of order 10:
    # 54264 free pages, of which 2**n - 8 lie in blocks smaller than order n >= 4.
    assert unusable_index(m) == (
        "Node 0, zone      DMA 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.066 0.200 \n"
        "Node 0, zone    DMA32 0.000 0.000 0.000 0.000 0.000 0.000 0.001 0.002 0.004 0.009 0.018 \n")
    assert extfrag_index(m) == (
        "Node 0, zone      DMA" + " -1.000" * 11 + " \n"
        "Node 0, zone    DMA32" + " -1.000" * 11 + " \n")


def test_unusable_index_reads_buddyinfo_text(m):
    m.alloc_pages(5)
    assert unusable_index(m.proc.buddyinfo()) == unusable_index(m)
    assert parse_buddyinfo(m.proc.buddyinfo())[1] == (0, "DMA32", [z.nr_free for z in m.zones[1].free_area])


DEBUGFS = "/sys/kernel/debug"


@pytest.fixture
def extfrag_dir():
    """/sys/kernel/debug/extfrag, mounting debugfs for the test (as root) when it is not mounted."""
    path = os.path.join(DEBUGFS, "extfrag")
    mounted = False
    if not os.path.isdir(path):
        if not sys.platform.startswith("linux") or os.geteuid() != 0:
            pytest.skip("needs debugfs at /sys/kernel/debug (root on Linux can mount it)")
        if subprocess.run(["mount", "-t", "debugfs", "none", DEBUGFS], capture_output=True).returncode:
            pytest.skip("cannot mount debugfs")
        mounted = True
        if not os.path.isdir(path):
            subprocess.run(["umount", DEBUGFS], capture_output=True)
            pytest.skip("this kernel has no extfrag files (CONFIG_COMPACTION off)")
    yield path
    if mounted:
        subprocess.run(["umount", DEBUGFS], capture_output=True)


@pytest.mark.host("buddyinfo")
def test_unusable_and_extfrag_index_match_the_host(extfrag_dir):
    # The host's free lists change all the time: compare only when buddyinfo
    # reads the same before and after the debugfs files.
    for _ in range(50):
        before = open("/proc/buddyinfo").read()
        unusable = open(os.path.join(extfrag_dir, "unusable_index")).read()
        extfrag = open(os.path.join(extfrag_dir, "extfrag_index")).read()
        if open("/proc/buddyinfo").read() == before:
            assert unusable_index(before) == unusable
            assert extfrag_index(before) == extfrag
            return
    pytest.skip("the host's buddyinfo changed on every read")


# -- the physical memory map ------------------------------------------------------

def test_physmem_map_counts_every_frame_at_one_frame_per_cell(m):
    pfns = [m.alloc_pages(o) for o in (0, 1, 3)]          # 11 frames
    fig = physmem_map(m, cols=256, max_rows=256)         # 65536 frames in 256 x 256 cells
    grid = image(fig)
    assert grid.shape == (256, 256)
    assert np.count_nonzero(grid == F.ALLOCATED) == 11
    assert np.array_equal(np.bincount(grid.ravel(), minlength=pa.FRAME_ALLOCATED + 1),
                          np.bincount(m.mem_map.state, minlength=pa.FRAME_ALLOCATED + 1))
    assert grid.ravel()[pfns[2]] == F.ALLOCATED             # the cell of pfn p is row p // 256, column p % 256
    assert_labelled(fig)
    assert "allocated: 11 frames" in legend_texts(fig)


def test_physmem_map_downsamples_by_majority_and_mixed(m):
    m.alloc_pages(3)                                     # 8 frames: 4 whole cells of 2 frames
    m.alloc_pages(0)                                     # 1 frame beside a free one: a tie
    majority = image(physmem_map(m))                     # 256 MiB in 256 x 128 cells: 2 frames a cell
    assert majority.shape == (128, 256)
    assert np.count_nonzero(majority == F.ALLOCATED) == 5   # the tie goes to allocated
    mixed = image(physmem_map(m, how="mixed"))
    assert np.count_nonzero(mixed == F.ALLOCATED) == 4
    assert np.count_nonzero(mixed == F.MIXED) == 1


def test_physmem_map_of_a_zone_and_its_boundaries(m):
    fig = physmem_map(m, zone="DMA")
    assert "0x1000-0x1000000" in fig.axes[0].get_title()           # DMA spans pfn 1 to 4096
    assert len(fig.axes[0].lines) == 0                              # no zone starts inside it
    whole = physmem_map(m)
    assert len(whole.axes[0].lines) == 2                            # DMA starts at pfn 1, DMA32 at 4096


def test_state_cells_table():
    m = Machine(ram="64MiB", pcp=False)
    state = m.mem_map.state
    assert np.array_equal(F.state_cells(m, 0, 16), state[:16])                       # one frame a cell
    assert F.state_cells(m, 0, 256, per_cell=256)[0] == F.RESERVED                   # the first MiB is boot's
    assert F.state_cells(m, 0x1000, 0x1400, per_cell=1024)[0] == F.RESERVED          # the kernel image
    assert F.state_cells(m, 0x3000, 0x3400, per_cell=1024)[0] == F.FREE
    assert F.frames_per_cell(65536, 32768) == 2
    assert F.frames_per_cell(65537, 32768) == 4                                      # powers of two only


def test_physmem_map_bad_arguments(m):
    with pytest.raises(ValueError, match="start_pfn"):
        physmem_map(m, 10, 5)                                       # empty range
    with pytest.raises(ValueError, match="start_pfn"):
        physmem_map(m, 0, m.max_pfn + 1)                            # beyond memory
    with pytest.raises(ValueError, match="zone"):
        physmem_map(m, zone="HighMem")                              # no such zone
    with pytest.raises(ValueError, match="how"):
        physmem_map(m, how="average")


def test_physmem_map_of_64GiB_downsamples():
    """A 64 GiB machine's 17M frames fold into a small image (its speed is in benchmarks/)."""
    big = Machine(ram="64GiB", pcp=False)
    for i in range(200):
        big.alloc_pages(i % 4, GFP_HIGHUSER_MOVABLE if i % 2 else GFP_KERNEL)
    fig = physmem_map(big)
    fig.savefig(io.BytesIO(), format="png")
    assert image(fig).shape == (65, 256)                             # 17M frames, 1024 per cell


# -- pageblocks ----------------------------------------------------------------------

def test_pageblock_map_counts_migrate_types(m):
    before = image(pageblock_map(m))
    m.alloc_pages(3, GFP_KERNEL)                        # claims a Movable order-10 block: 2 pageblocks
    after = image(pageblock_map(m))
    unmovable = np.count_nonzero(m.pageblock_mt == pa.MIGRATE_UNMOVABLE)
    assert np.count_nonzero(after == pa.MIGRATE_UNMOVABLE) == unmovable
    assert np.count_nonzero(after == pa.MIGRATE_UNMOVABLE) == np.count_nonzero(before == pa.MIGRATE_UNMOVABLE) + 2
    assert np.count_nonzero(after == pa.MIGRATE_MOVABLE) == 128 - unmovable     # 256 MiB: 128 pageblocks
    fig = pageblock_map(m)
    assert_labelled(fig)
    assert f"Unmovable: {unmovable}" in legend_texts(fig)
    assert "all frames reserved: 14" in legend_texts(fig)     # the kernel image and the memmap


def test_pageblock_classes_marks_blocks_without_ram():
    big = Machine(ram="4GiB", pcp=False)                            # the PCI hole: 3 GiB to 4 GiB has no RAM
    first, last = F.pageblock_range(0, big.max_pfn)
    classes = F.pageblock_classes(big, first, last)
    assert np.all(classes[0xc0000 >> 9:0x100000 >> 9] == F.NO_RAM)
    assert np.count_nonzero(classes == F.NO_RAM) == 512


# -- buddy blocks, frame by frame --------------------------------------------------

def test_buddy_blocks_outlines_the_split_of_an_order10_block(m):
    pfn = m.alloc_pages(3)                              # expand: 10 -> 9, 8, ..., 3
    fig = buddy_blocks(m, pfn, 1024, highlight=(pfn, 3))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["3", "3", "4", "5", "6", "7", "8", "9"]   # the allocation, then the free upper halves
    outlines = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(outlines) == 9                                  # 8 blocks and the highlight
    assert image(fig).shape == (16, 64)
    assert np.count_nonzero(image(fig) == F.ALLOCATED) == 8
    assert_labelled(fig)


def test_blocks_in_range_finds_a_block_begun_before_the_range(m):
    pfn = m.alloc_pages(3)
    assert F.blocks_in_range(m, pfn + 4, pfn + 12) == [F.Block(pfn, 3, "allocated"),
                                                        F.Block(pfn + 8, 3, "free")]
    assert F.block_at(m, pfn + 7) == F.Block(pfn, 3, "allocated")
    assert F.block_at(m, pfn + 0x300) == F.Block(pfn + 0x200, 9, "free")
    assert F.block_at(m, 0) is None                          # pfn 0 is not RAM


def test_buddy_blocks_bad_arguments(m):
    with pytest.raises(ValueError, match="npages"):
        buddy_blocks(m, 0x2800, 0)                          # no frames
    with pytest.raises(TypeError, match="npages"):
        buddy_blocks(m, 0x2800, 64.0)                       # a float is not a count
    with pytest.raises(ValueError, match="cols"):
        buddy_blocks(m, 0x2800, 64, cols=12)                # rows must be a power of two
    with pytest.raises(ValueError, match="start_pfn"):
        buddy_blocks(m, m.max_pfn, 64)                      # beyond memory
    with pytest.raises(ValueError, match="cols"):
        text.frames(m, 0x2800, 64, cols=0)
    with pytest.raises(ValueError, match="cols"):
        physmem_map(m, cols=0)


# -- free areas, watermarks, fragmentation ------------------------------------------

def test_free_areas_bars_are_the_free_list_counts(m):
    m.alloc_pages(3)
    m.alloc_pages(0, GFP_HIGHUSER_MOVABLE)
    fig = free_areas(m, "DMA32")
    ax = fig.axes[0]
    heights = np.zeros(pa.NR_PAGE_ORDERS)
    for bar in ax.patches:
        heights[int(round(bar.get_x() + bar.get_width() / 2))] += bar.get_height()
    assert heights.tolist() == [a.nr_free for a in m.zones[pa.ZONE_DMA32].free_area]
    assert_labelled(fig)
    assert {"Unmovable", "Movable", "Reclaimable"} <= set(legend_texts(fig))


def test_free_areas_in_pages_and_per_zone(m):
    fig = free_areas(m, "DMA", unit="pages")
    assert sum(b.get_height() for b in fig.axes[0].patches) == m.zones[pa.ZONE_DMA].nr_free_pages
    assert len(free_areas(m).axes) == 2                      # DMA and DMA32
    with pytest.raises(ValueError, match="zone"):
        free_areas(m, ax=fig.axes[0])                        # one ax, no zone named
    with pytest.raises(ValueError, match="unit"):
        free_areas(m, "DMA", unit="bytes")


def test_watermarks_marks_each_zone(m):
    fig = watermarks(m)
    ax = fig.axes[0]
    marks = {c.get_label(): sorted(seg[0][1] for seg in c.get_segments()) for c in ax.collections}
    assert marks["min watermark"] == sorted(z.wmark(pa.WMARK_MIN) for z in m.zones[:2])
    assert marks["high watermark"] == sorted(z.wmark(pa.WMARK_HIGH) for z in m.zones[:2])
    assert_labelled(fig)
    assert ax.get_yscale() == "log"


def test_fragmentation_plots_the_unusable_index(m):
    m.alloc_pages(3)
    fig = fragmentation(m)
    index_ax = fig.axes[1]
    dma32 = [line for line in index_ax.lines if line.get_label() == "DMA32"][0]
    assert np.allclose(dma32.get_ydata(), np.array(unusable_indices(m.zones[pa.ZONE_DMA32])) / 1000)
    assert_labelled(fig, index_ax)
    assert_labelled(fig, fig.axes[0])


# -- text -------------------------------------------------------------------------

def test_free_lists_text(m):
    pfn = m.alloc_pages(3)
    assert pfn == 0x2800
    assert text.free_lists(m, "DMA32", orders=range(2, 5)) == (
        "Zone DMA32 free lists, head first\n"
        "order  2 ( 16 KiB)  nr_free 0  -\n"
        "order  3 ( 32 KiB)  nr_free 1\n"
        "    Unmovable    0x2808\n"
        "order  4 ( 64 KiB)  nr_free 1\n"
        "    Unmovable    0x2810")
    assert text.free_lists(m, "DMA32", orders=[10], limit=2).endswith("Movable      0x2c00 0x3000 ... (+50 more)")


def test_frames_text(m):
    m.alloc_pages(3)
    lines = text.frames(m, 0x2800, 32, cols=16).splitlines()
    assert lines[:5] == ["        0       8",
                         "0x2800  ########........",
                         "        3       3",
                         "0x2810  ................",
                         "        4"]
    assert "# allocated" in lines[5]


def test_side_by_side_and_buddyinfo_change(m):
    assert text.side_by_side("a\nbb", "ccc", titles=("x", "y")) == "x     y\n--    ---\na     ccc\nbb"
    before = m.proc.buddyinfo()
    m.alloc_pages(8)                                    # an order-10 block splits into 8 (taken), 8 and 9
    assert text.buddyinfo_change(before, m.proc.buddyinfo()).splitlines() == [
        "zone DMA32   order       0     1     2     3     4     5     6     7     8     9    10",
        "             before      0     0     0     0     0     0     0     0     0     0    53",
        "             after       0     0     0     0     0     0     0     0     1     1    52",
        "             change " + " " * 6 * 8 + "    +1    +1    -1"]
    assert text.buddyinfo_change(before, before) == "no change"


# -- the rules every picture keeps -----------------------------------------------------

def test_drawing_changes_nothing(m, unchanged):
    m.alloc_pages(2)
    with unchanged(m):
        physmem_map(m), pageblock_map(m), buddy_blocks(m, 0x2800, 64), free_areas(m)
        watermarks(m), fragmentation(m), text.free_lists(m, "DMA32"), text.frames(m, 0x2800)


def test_figures_are_deterministic():
    def png():
        m = Machine(ram="256MiB", seed=3, pcp=False)
        for o in (0, 3, 1):
            m.alloc_pages(o)
        buf = io.BytesIO()
        physmem_map(m).savefig(buf, format="png")
        buddy_blocks(m, 0x2800, 64).savefig(buf, format="png")
        return buf.getvalue()
    assert png() == png()


def test_figures_draw_into_a_given_ax(m):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3)
    plt.close(fig)
    assert physmem_map(m, ax=axes[0]) is fig
    assert free_areas(m, "DMA32", ax=axes[1]) is fig
    assert fragmentation(m, ax=axes[2]) is fig
    assert axes[2].get_ylabel() == "unusable free space index"


def test_the_model_never_imports_matplotlib():
    code = "import sys, mmlab; mmlab.Machine(ram='64MiB', pcp=False); print('matplotlib' in sys.modules, 'ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
