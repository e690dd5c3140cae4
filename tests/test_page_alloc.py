"""The buddy allocator by example (mmlab/mm/page_alloc.py), one behaviour of Linux per test.

Small machines, per-CPU lists off (the default), so each call's splits and
merges show directly.  Layout of the 64 MiB machine most tests use:
ZONE_DMA's free memory is an order-8 block at 0x100 (in pageblock 0, which
boot leaves Unmovable since pfn 0 is a hole), an order-9 block at 0x200 and
three order-10 blocks from 0x400; ZONE_DMA32's free memory runs from 0x2800
(after the kernel image at 16-40 MiB) to 0x3e00 (where the struct page array
sits): five order-10 blocks and an order-9 block at 0x3c00, all Movable.
"""
import itertools
from types import SimpleNamespace

import pytest

from mmlab import Machine, KernelBug
from mmlab.mm import page_alloc as pa
from mmlab.uapi import (GFP_KERNEL, GFP_ATOMIC, GFP_DMA, GFP_DMA32,
                        __GFP_DMA, __GFP_DMA32, __GFP_MOVABLE, __GFP_RECLAIMABLE)

MOVABLE_DMA32 = GFP_DMA32 | __GFP_MOVABLE       # movable, and only from DMA32 or below
UNMOVABLE, MOVABLE = pa.MIGRATE_UNMOVABLE, pa.MIGRATE_MOVABLE


def free_lists(zone, mt):
    """The zone's free lists of one migrate type: for each order, the block pfns head first."""
    return [list(zone.free_area[order].free_list[mt]) for order in range(pa.NR_PAGE_ORDERS)]


def pageblock_types(m, zone):
    """How many pageblocks of the zone are of each type, as /proc/pagetypeinfo counts them."""
    counts = [0] * pa.MIGRATE_TYPES
    for pfn in range(zone.zone_start_pfn, zone.zone_end_pfn, pa.PAGEBLOCK_NR_PAGES):
        if m.mem_map.state[pfn] != pa.FRAME_HOLE:
            counts[m.pageblock_mt[pfn >> pa.PAGEBLOCK_ORDER]] += 1
    return counts


def zone_of(m, pfn):
    return m.zones[m.mem_map.zone[pfn]].name


def alloc_until_none(m, order, gfp, limit=1_000_000):
    """Allocate until the allocator says no; the pfns, in order."""
    got = []
    for _ in range(limit):
        pfn = m.alloc_pages(order, gfp)
        if pfn is None:
            return got
        got.append(pfn)
    raise AssertionError("alloc_until_none: the allocator never said no")


def atomic_floor(mark):
    """__zone_watermark_ok's mark for ALLOC_MIN_RESERVE|ALLOC_NON_BLOCK: min less half, less a quarter of that."""
    mark -= mark // 2
    return mark - mark // 4


@pytest.fixture
def m64():
    return Machine(ram="64MiB", pcp=False)


# -- split and merge ----------------------------------------------------------------

def test_split_keeps_the_lower_half_and_lists_the_upper_halves(m64):
    """expand: an order-0 DMA page comes from the order-8 block at 0x100, split eight times."""
    dma = m64.zones[pa.ZONE_DMA]
    with m64.trace() as t:
        pfn = m64.alloc_pages(0, GFP_DMA)
    assert pfn == 0x100                                                 # the lower half, every time
    assert t.calls() == ["alloc_pages", "get_page_from_freelist", "rmqueue_smallest", "expand"]
    assert t.notes() == ["rmqueue_smallest: take order-8 block at pfn 0x100"] + [
        f"expand: split order {o + 1} at 0x100, free upper half {0x100 + (1 << o):#x} as order {o}"
        for o in range(7, -1, -1)]
    # Each upper half heads its order's list: 0x101 (order 0), 0x102 (1), ... 0x180 (7).
    assert free_lists(dma, UNMOVABLE) == [[0x100 + (1 << o)] for o in range(8)] + [[], [], []]
    assert dma.nr_free_pages == 3840 - 1
    m64.check()


def test_smallest_block_that_fits_is_split(m64):
    """__rmqueue_smallest: DMA32's order-9 block at 0x3c00 goes before any order-10 block."""
    pfns = [m64.alloc_pages(0, MOVABLE_DMA32) for _ in range(3)]
    assert pfns == [0x3c00, 0x3c01, 0x3c02]                             # 0x3c02 split from 0x3c02 o1
    assert free_lists(m64.zones[pa.ZONE_DMA32], MOVABLE)[:3] == [[0x3c03], [], [0x3c04]]


def test_large_blocks_come_out_in_address_order(m64):
    """Boot frees blocks to the tail in ascending order, so order-10 requests take them low to high."""
    assert [m64.alloc_pages(10, MOVABLE_DMA32) for _ in range(5)] == [0x2800, 0x2c00, 0x3000, 0x3400, 0x3800]
    assert m64.alloc_pages(10, MOVABLE_DMA32) == 0x400                  # then DMA32 is empty: fall back to DMA


def test_free_merges_with_every_free_buddy(m64):
    """__free_one_page: the page at 0x100 merges back up to the order-8 block it came from."""
    boot = m64.proc.buddyinfo()
    pfn = m64.alloc_pages(0, GFP_DMA)
    with m64.trace() as t:
        m64.free_pages(pfn, 0)
    assert t.notes() == [f"merge: order {o} at 0x100 with buddy {0x100 + (1 << o):#x}" for o in range(8)] + [
        # The buddy 0x0 is a hole, so it stops at order 8; its order-9 neighbour
        # 0x200 is free, so a merge is likely and the block goes to the tail.
        "free: order-8 block at 0x100 to the tail of the Unmovable list"]
    assert m64.proc.buddyinfo() == boot
    m64.check()


def test_free_to_the_tail_when_a_merge_is_likely(m64):
    """buddy_merge_likely: a freed page whose parent's buddy is free goes to the tail, others to the head."""
    base = m64.alloc_pages(0, MOVABLE_DMA32)                            # 0x3c00, splitting the order-9 block
    pages = [base] + [m64.alloc_pages(0, MOVABLE_DMA32) for _ in range(5)]
    assert pages == [base + i for i in range(6)]                        # +0 .. +5 in use, +6/+7 free (order 1)
    dma32 = m64.zones[pa.ZONE_DMA32]
    with m64.trace() as t:
        m64.free_pages(base, 0)          # buddy +1 in use; parent's buddy +2/+3 in use: merge unlikely
        m64.free_pages(base + 5, 0)      # buddy +4 in use; parent's buddy +6/+7 free: merge likely
    assert t.notes() == [f"free: order-0 block at {base:#x} to the head of the Movable list",
                         f"free: order-0 block at {base + 5:#x} to the tail of the Movable list"]
    assert free_lists(dma32, MOVABLE)[0] == [base, base + 5]
    assert m64.alloc_pages(0, MOVABLE_DMA32) == base                    # the head goes first
    m64.check()


def test_freeing_every_page_restores_boot(m64):
    """Split a block into pages, free them in a scrambled order: the order-9 block is whole again."""
    boot = m64.proc.buddyinfo()
    pages = [m64.alloc_pages(0, MOVABLE_DMA32) for _ in range(512)]
    assert sorted(pages) == list(range(0x3c00, 0x3e00))
    for pfn in pages[1::2] + pages[0::2]:
        m64.free_pages(pfn, 0)
    assert m64.proc.buddyinfo() == boot
    m64.check()


# -- zones, watermarks and the lowmem reserve -----------------------------------------

def test_gfp_dma_comes_only_from_dma(m64):
    """gfp_zone(GFP_DMA) is ZONE_DMA: the zone runs down to its min watermark, DMA32 is never touched."""
    dma, dma32 = m64.zones[pa.ZONE_DMA], m64.zones[pa.ZONE_DMA32]
    got = alloc_until_none(m64, 0, GFP_DMA)
    assert all(pfn < 4096 for pfn in got)
    assert len(got) == 3840 - dma.watermark[pa.WMARK_MIN]               # GFP_DMA has no reserve access
    assert dma.nr_free_pages == dma.watermark[pa.WMARK_MIN]
    assert dma32.nr_free_pages == dma32.managed_pages                   # untouched
    m64.check()


def test_gfp_kernel_prefers_normal_then_dma32_then_dma():
    """The zonelist Normal, DMA32, DMA, walked first at the low watermark, then (slow path) at min.

    DMA32 is first filled with movable order-10 blocks to a little above its
    low watermark, so the walk is short.  Each zone serves GFP_KERNEL while
    its free pages stay above mark + lowmem_reserve[ZONE_NORMAL].
    NOTE: at the end Linux would reclaim, and failing that call the OOM
    killer, where the model (with nothing to reclaim) returns None.
    """
    m = Machine(ram="3200MiB", pcp=False)                                           # RAM above 4 GiB: a Normal zone
    dma, dma32, normal = m.zones[:3]
    low, wmin = pa.WMARK_LOW, pa.WMARK_MIN
    while dma32.nr_free_pages - 1024 > dma32.watermark[low] + 3000:
        assert m.alloc_pages(10, MOVABLE_DMA32) is not None
    first = m.alloc_pages(0, GFP_KERNEL)
    served = [zone_of(m, first)] + [zone_of(m, pfn) for pfn in alloc_until_none(m, 0, GFP_KERNEL)]
    runs = [(name, len(list(group))) for name, group in itertools.groupby(served)]
    free_at = {z.name: z.nr_free_pages for z in (dma, dma32, normal)}
    reserve = {z.name: z.lowmem_reserve[pa.ZONE_NORMAL] for z in (dma, dma32, normal)}
    # Rebuild the expected runs from where each zone ended and its marks.
    mark = lambda z, w: z.watermark[w] + reserve[z.name]
    assert runs == [
        ("Normal", normal.managed_pages - mark(normal, low)),           # fast path: down to low
        ("DMA32", runs[1][1]),
        ("DMA", dma.managed_pages - mark(dma, low)),
        ("Normal", normal.watermark[low] - normal.watermark[wmin]),     # slow path: low to min
        ("DMA32", dma32.watermark[low] - dma32.watermark[wmin]),
        ("DMA", dma.watermark[low] - dma.watermark[wmin]),
    ]
    assert free_at == {z.name: mark(z, wmin) for z in (dma, dma32, normal)}
    assert reserve["Normal"] == 0 and reserve["DMA32"] == normal.managed_pages // 256
    m.check()


def test_lowmem_reserve_keeps_dma_for_those_who_need_it(m64):
    """GFP_KERNEL stops short of DMA's last pages by lowmem_reserve; GFP_DMA may still take them.

    (Where the model's GFP_KERNEL returns None, Linux would reclaim or OOM-kill first.)
    """
    dma = m64.zones[pa.ZONE_DMA]
    alloc_until_none(m64, 0, GFP_KERNEL)
    reserve = dma.lowmem_reserve[pa.ZONE_NORMAL]
    assert reserve == m64.zones[pa.ZONE_DMA32].managed_pages // 256      # lowmem_reserve_ratio[DMA] = 256
    assert dma.nr_free_pages == dma.watermark[pa.WMARK_MIN] + reserve
    assert zone_of(m64, m64.alloc_pages(0, GFP_DMA)) == "DMA"            # a DMA request has no reserve to respect
    m64.check()


def test_watermark_failure_returns_none_and_changes_nothing(m64, unchanged):
    """Below the watermark alloc_pages returns None, and the free lists are as they were."""
    alloc_until_none(m64, 0, GFP_DMA)
    with unchanged(m64):
        assert m64.alloc_pages(0, GFP_DMA) is None                      # at the min watermark
        assert m64.alloc_pages(10, GFP_DMA) is None                     # and no order-10 block left
        assert m64.alloc_pages(3, GFP_DMA) is None


def test_high_order_needs_a_block_of_that_order(unchanged):
    """Enough free pages by count, but no free block big enough: None, nothing changed."""
    m = Machine(ram="64MiB", pcp=False)
    # Hold every other page of DMA: half of it is free again, in single pages.
    pages = alloc_until_none(m, 0, GFP_DMA)
    for pfn in pages[::2]:
        m.free_pages(pfn, 0)
    dma = m.zones[pa.ZONE_DMA]
    largest = max(order for order, area in enumerate(dma.free_area) if area.nr_free)
    assert largest < 8
    assert dma.nr_free_pages - (1 << (largest + 1)) > dma.wmark(pa.WMARK_LOW)     # the count would pass
    with unchanged(m):
        assert m.alloc_pages(largest + 1, GFP_DMA) is None


def test_gfp_atomic_dips_below_min_as_far_as_linux_lets_it(m64, unchanged):
    """GFP_ATOMIC (__GFP_HIGH, no direct reclaim) may take zones to 3/8 of min, plus the reserve, no further."""
    dma, dma32 = m64.zones[pa.ZONE_DMA], m64.zones[pa.ZONE_DMA32]
    alloc_until_none(m64, 0, GFP_KERNEL)                                 # every zone at min (+ reserve)
    at_min = {z.name: z.nr_free_pages for z in (dma, dma32)}
    got = alloc_until_none(m64, 0, GFP_ATOMIC)
    for z in (dma, dma32):
        floor = atomic_floor(z.watermark[pa.WMARK_MIN]) + z.lowmem_reserve[pa.ZONE_NORMAL]
        assert z.nr_free_pages == floor, z.name
        assert sum(zone_of(m64, p) == z.name for p in got) == at_min[z.name] - floor, z.name
    with unchanged(m64):
        assert m64.alloc_pages(0, GFP_ATOMIC) is None                   # and no further
        assert m64.alloc_pages(0, GFP_KERNEL) is None


# -- migrate types: claim or steal --------------------------------------------------------

def test_unmovable_request_claims_a_whole_movable_block(m64):
    """__rmqueue_claim: no Unmovable pages yet, so the largest Movable block becomes Unmovable."""
    dma32 = m64.zones[pa.ZONE_DMA32]
    with m64.trace() as t:
        pfn = m64.alloc_pages(0, GFP_KERNEL)
    assert pfn == 0x2800                                                 # largest first, head of its list
    assert "rmqueue_claim" in t.calls() and "rmqueue_steal" not in t.calls()
    assert t.notes()[-1] == "claim: pageblock(s) at 0x2800 change from Movable to Unmovable"
    assert pageblock_types(m64, dma32)[:3] == [2, 22, 0]                # both pageblocks of the order-10 block
    assert free_lists(dma32, UNMOVABLE) == [[0x2800 + (1 << o)] for o in range(10)] + [[]]
    m64.check()


def claim_or_steal_machine():
    """64 MiB, tiny watermarks; DMA32's Movable lists emptied; pageblock 0x2800 Unmovable.

    The first GFP_KERNEL page claims the order-10 block at 0x2800 (pageblocks
    0x2800 and 0x2a00); five movable allocations then take every other
    Movable block of DMA32.
    """
    m = Machine(ram="64MiB", pcp=False)
    m.set_min_free_kbytes(128)                      # so the zone's watermark is not what stops us
    assert m.alloc_pages(0, GFP_KERNEL) == 0x2800
    return m


def drain_movable_dma32(m):
    got = [m.alloc_pages(10, MOVABLE_DMA32) for _ in range(4)] + [m.alloc_pages(9, MOVABLE_DMA32)]
    assert got == [0x2c00, 0x3000, 0x3400, 0x3800, 0x3c00]
    assert free_lists(m.zones[pa.ZONE_DMA32], MOVABLE) == [[]] * pa.NR_PAGE_ORDERS


def test_movable_request_claims_a_pageblock_at_least_half_free():
    """try_to_claim_block: 511 of pageblock 0x2800's pages are free, so a movable order-4 request takes it over."""
    m = claim_or_steal_machine()
    drain_movable_dma32(m)
    dma32 = m.zones[pa.ZONE_DMA32]
    with m.trace() as t:
        assert m.alloc_pages(4, MOVABLE_DMA32) == 0x2a00                 # a whole free Unmovable pageblock
    assert t.notes()[-1] == "claim: pageblock(s) at 0x2a00 change from Unmovable to Movable"
    for _ in range(31):                                                  # use up the rest of 0x2a00
        m.alloc_pages(4, MOVABLE_DMA32)
    assert pageblock_types(m, dma32)[:2] == [1, 23]
    with m.trace() as t:
        pfn = m.alloc_pages(4, MOVABLE_DMA32)
    assert t.notes() == ["claim: pageblock at 0x2800 (511 free, 0 alike) changes from Unmovable to Movable",
                         "rmqueue_smallest: take order-4 block at pfn 0x2810"]
    assert pfn == 0x2810
    assert pageblock_types(m, dma32)[:2] == [0, 24]                      # the block changed type ...
    assert free_lists(dma32, UNMOVABLE) == [[]] * pa.NR_PAGE_ORDERS      # ... and its free pages moved
    m.check()


def test_movable_request_steals_from_a_mostly_used_pageblock():
    """__rmqueue_steal: pageblock 0x2800 has only 255 free pages, so a movable page is borrowed, not the block."""
    m = claim_or_steal_machine()
    assert m.alloc_pages(9, GFP_KERNEL) == 0x2a00
    assert m.alloc_pages(8, GFP_KERNEL) == 0x2900                        # 0x2800's pageblock: 255 pages free
    drain_movable_dma32(m)
    dma32 = m.zones[pa.ZONE_DMA32]
    types = pageblock_types(m, dma32)
    with m.trace() as t:
        pfn = m.alloc_pages(0, MOVABLE_DMA32)
    assert pfn == 0x2801                                                 # the smallest Unmovable block
    assert t.calls() == ["alloc_pages", "get_page_from_freelist", "rmqueue_smallest", "rmqueue_claim",
                         "rmqueue_steal", "expand"]
    assert t.notes() == ["steal: order-0 block at 0x2801 from Unmovable lists"]
    assert pageblock_types(m, dma32) == types                            # no pageblock changed type
    assert m.pageblock_mt[0x2800 >> pa.PAGEBLOCK_ORDER] == UNMOVABLE
    m.check()


def test_reclaimable_pages_get_their_own_pageblock(m64):
    """GFP_KERNEL|__GFP_RECLAIMABLE (slab caches that shrink) claims a block of its own type."""
    pfn = m64.alloc_pages(0, GFP_KERNEL | __GFP_RECLAIMABLE)
    assert m64.pageblock_mt[pfn >> pa.PAGEBLOCK_ORDER] == pa.MIGRATE_RECLAIMABLE
    assert pageblock_types(m64, m64.zones[pa.ZONE_DMA32])[pa.MIGRATE_RECLAIMABLE] == 2


# -- bad input: the right error, and nothing changes ---------------------------------------

BAD_ALLOCS = [
    pytest.param("0", GFP_KERNEL, TypeError, "order", id='order as a string'),
    pytest.param(0.0, GFP_KERNEL, TypeError, "order", id='order as a float'),
    pytest.param(None, GFP_KERNEL, TypeError, "order", id='no order'),
    pytest.param(True, GFP_KERNEL, TypeError, "order", id='a bool is not an order'),
    pytest.param(-1, GFP_KERNEL, ValueError, "order", id='below 0'),
    pytest.param(11, GFP_KERNEL, ValueError, "order", id='above MAX_PAGE_ORDER'),
    pytest.param(0, "GFP_KERNEL", TypeError, "gfp", id='flags by name'),
    pytest.param(0, 1.0, TypeError, "gfp", id='flags as a float'),
    pytest.param(0, None, TypeError, "gfp", id='no flags'),
    pytest.param(0, True, TypeError, "gfp", id='a bool is not a flag set'),
    pytest.param(0, -1, ValueError, "gfp", id='negative flags'),
    pytest.param(0, 1 << 26, ValueError, "gfp", id='a bit no GFP flag uses'),
    pytest.param(0, GFP_KERNEL | 1 << 40, ValueError, "gfp", id='unknown high bits beside known ones'),
    pytest.param(0, __GFP_DMA | __GFP_DMA32, ValueError, "gfp", id='two zones at once: GFP_ZONE_BAD'),
    pytest.param(0, __GFP_MOVABLE | __GFP_RECLAIMABLE, ValueError, "gfp", id='two migrate types at once'),
]


@pytest.mark.parametrize("order, gfp, error, name", BAD_ALLOCS)
def test_bad_alloc_pages_arguments(m64, unchanged, order, gfp, error, name):
    with unchanged(m64), pytest.raises(error, match=name):
        m64.alloc_pages(order, gfp)


@pytest.fixture
def held():
    """A 64 MiB machine holding an order-2 block `two` and an order-0 page `one`; page `freed` was freed."""
    m = Machine(ram="64MiB", pcp=False)
    h = SimpleNamespace(m=m, two=m.alloc_pages(2, GFP_KERNEL), one=m.alloc_pages(0, GFP_KERNEL),
                        freed=m.alloc_pages(0, GFP_KERNEL), max_pfn=m.max_pfn)
    m.free_pages(h.freed, 0)
    return h


BAD_FREES = [
    pytest.param(lambda h: (h.freed, 0), KernelBug, "double free", id='a page freed already'),
    pytest.param(lambda h: (0x3000, 0), KernelBug, "already free", id='a page never allocated'),
    pytest.param(lambda h: (h.two, 1), KernelBug, "allocated with order 2", id='wrong order'),
    pytest.param(lambda h: (h.two, 3), KernelBug, "freed with order 3", id='a larger order than allocated'),
    pytest.param(lambda h: (h.two + 1, 0), KernelBug, "tail", id='a tail page of the order-2 block'),
    pytest.param(lambda h: (h.two + 2, 1), KernelBug, "tail", id="the upper half of the block"),
    pytest.param(lambda h: (h.two + 1, 2), KernelBug, "not aligned", id='unaligned pfn'),
    pytest.param(lambda h: (0x10, 0), KernelBug, "reserved", id='the first MiB, kept by boot'),
    pytest.param(lambda h: (0x1000, 0), KernelBug, "reserved", id='the kernel image'),
    pytest.param(lambda h: (0, 0), KernelBug, "hole", id='pfn 0: not RAM'),
    pytest.param(lambda h: (0xa0, 0), KernelBug, "hole", id='the legacy VGA/BIOS hole'),
    pytest.param(lambda h: (h.max_pfn, 0), KernelBug, "max_pfn", id='beyond the last frame'),
    pytest.param(lambda h: (h.max_pfn + 12345, 0), KernelBug, "max_pfn", id='far beyond'),
    pytest.param(lambda h: (str(h.one), 0), TypeError, "pfn", id='pfn as a string'),
    pytest.param(lambda h: (float(h.one), 0), TypeError, "pfn", id='pfn as a float'),
    pytest.param(lambda h: (None, 0), TypeError, "pfn", id='no pfn'),
    pytest.param(lambda h: (h.one, None), TypeError, "order", id='no order'),
    pytest.param(lambda h: (h.one, 0.0), TypeError, "order", id='order as a float'),
    pytest.param(lambda h: (h.one, False), TypeError, "order", id='a bool is not an order'),
    pytest.param(lambda h: (-1, 0), ValueError, "pfn", id='negative pfn'),
    pytest.param(lambda h: (h.one, -1), ValueError, "order", id='negative order'),
    pytest.param(lambda h: (h.one, 11), ValueError, "order", id='above MAX_PAGE_ORDER'),
]


@pytest.mark.parametrize("args, error, match", BAD_FREES)
def test_bad_free_pages_arguments(held, unchanged, args, error, match):
    pfn, order = args(held)
    with unchanged(held.m), pytest.raises(error, match=match):
        held.m.free_pages(pfn, order)
    held.m.free_pages(held.two, 2)                                       # the real blocks still free fine
    held.m.free_pages(held.one, 0)
    held.m.check()


# -- boot computations the kernel does differently (pinned model bugs) ---------------------

def test_thp_never_recomputes_min_free_kbytes_over_the_watermarks():
    """hugepage_init -> start_stop_khugepaged -> set_recommended_min_free_kbytes, THP off.

    With THP off, set_recommended_min_free_kbytes (mm/khugepaged.c) calls
    calculate_min_free_kbytes() again and sets the watermarks again.  By then
    nr_free_buffer_pages() subtracts each zone's high watermark, so the
    square root comes out a little lower than at init_per_zone_wmark_min.
    Seen on this host: `echo never > .../transparent_hugepage/enabled` set
    vm.min_free_kbytes from 67584 to 19832 = isqrt(16 * lowmem_kbytes), where
    lowmem_kbytes is MemTotal less the high watermarks then in force (without
    that subtraction it would be 19873).
    """
    m = Machine(ram="4GiB", pcp=False)

    def reboot_watermarks():
        m.min_free_kbytes = 0
        for z in m.zones:
            z.watermark = [0, 0, 0, 0]
    m.thp_enabled = "never"
    reboot_watermarks()
    pa.init_per_zone_wmark_min(m)
    model = m.min_free_kbytes
    # The kernel's sequence, step by step.
    reboot_watermarks()
    m.min_free_kbytes = pa.calculate_min_free_kbytes(m)     # init_per_zone_wmark_min (postcore_initcall)
    pa.setup_per_zone_wmarks(m)
    pa.setup_per_zone_lowmem_reserve(m)
    first = m.min_free_kbytes
    m.min_free_kbytes = pa.calculate_min_free_kbytes(m)     # set_recommended_min_free_kbytes, THP off
    pa.setup_per_zone_wmarks(m)
    assert m.min_free_kbytes < first                         # the second pass sees the watermarks
    assert model == m.min_free_kbytes


def test_lowmem_reserve_of_an_empty_zone_is_zero():
    """setup_per_zone_lowmem_reserve: `clear = !ratio || !zone_managed_pages(zone)`.

    A zone that manages nothing has nothing to protect.  Unreachable on a
    booted model (DMA and DMA32 always hold memory) but reached as soon as a
    zone's managed count is set, as the differential tests do.
    """
    m = Machine(ram="256MiB", pcp=False)
    m.zones[pa.ZONE_DMA].managed_pages = 0
    pa.setup_per_zone_lowmem_reserve(m)
    assert m.zones[pa.ZONE_DMA].lowmem_reserve == [0, 0, 0, 0, 0]


def test_zoneinfo_pagesets_show_the_per_cpu_lists():
    """/proc/zoneinfo's pagesets: count, high, batch, high_min, high_max of each CPU's list."""
    from mmlab.linux import probes
    m = Machine(ram="4GiB", cpus=2, pcp=True)
    m.alloc_pages(0, GFP_KERNEL)
    shown = probes.parse_zoneinfo(m.proc.zoneinfo(pagesets=True))["Normal"]["pagesets"]
    for cpu, pcp in enumerate(m.zones[pa.ZONE_NORMAL].per_cpu_pageset):
        assert (shown[cpu]["count"], shown[cpu]["high"], shown[cpu]["batch"], shown[cpu]["high_min"],
                shown[cpu]["high_max"]) == (pcp.count, pcp.high, pcp.batch, pcp.high_min, pcp.high_max)
