"""The per-CPU page lists (Machine(pcp=True)): examples of how they sit in front of the buddy allocator."""
import os

import pytest

from mmlab import Machine, KernelBug
from mmlab.mm import page_alloc as pa
from mmlab.uapi import GFP_KERNEL, GFP_HIGHUSER_MOVABLE


def buddy_counts(m):
    return [[a.nr_free for a in z.free_area] for z in m.zones]


def test_batch_and_high_follow_the_kernels_formulas():
    m = Machine(ram="4GiB", cpus=2, pcp=True)
    dma, dma32, normal = m.zones[:3]
    # zone_batchsize: managed/1024 capped at 256, /4, then rounded to 2**n - 1
    assert [z.per_cpu_pageset[0].batch for z in (dma, dma32, normal)] == [1, 63, 63]
    # zone_highsize: high_min is the low watermark split over the CPUs, high_max managed/8 split
    assert normal.per_cpu_pageset[0].high_min == normal.wmark(pa.WMARK_LOW) // 2
    assert normal.per_cpu_pageset[0].high_max == normal.managed_pages // 8 // 2
    # high_min is at least four batches
    assert dma.per_cpu_pageset[1].high_min == max(dma.wmark(pa.WMARK_LOW) // 2, 4)


def test_first_order0_allocation_refills_a_batch():
    m = Machine(ram="4GiB", pcp=True)
    pfn = m.alloc_pages(0)
    pcp = m.zones[pa.ZONE_NORMAL].per_cpu_pageset[0]
    # nr_pcp_alloc on a fresh list: batch 63 << alloc_factor 0, capped by high - count - batch
    assert pcp.count == 62                              # 63 taken from the buddy lists, 1 handed out
    assert pcp.alloc_factor == 1                        # the next refill will be twice as large
    assert list(pcp.lists[pa.order_to_pindex(pa.MIGRATE_UNMOVABLE, 0)])[:3] == [pfn + 1, pfn + 2, pfn + 3]
    m.check()


def test_free_goes_to_the_cpu_list_not_the_buddy_lists():
    m = Machine(ram="4GiB", pcp=True)
    pfn = m.alloc_pages(0)
    before = buddy_counts(m)
    m.free_pages(pfn, 0)
    assert buddy_counts(m) == before                    # nothing merged
    assert m.mem_map.state[pfn] == pa.FRAME_PCP
    m.check()


def test_freed_page_is_the_next_one_handed_out():
    m = Machine(ram="4GiB", pcp=True)
    a = m.alloc_pages(0)
    m.free_pages(a, 0)
    assert m.alloc_pages(0) == a                        # lists are LIFO at the head: cache-hot first


def test_drain_gives_everything_back_and_merges():
    m = Machine(ram="4GiB", pcp=True)
    boot = buddy_counts(m)
    held = [m.alloc_pages(order) for order in (0, 1, 2, 3) for _ in range(20)]
    for pfn, order in zip(held, [o for o in (0, 1, 2, 3) for _ in range(20)]):
        m.free_pages(pfn, order)
    assert buddy_counts(m) != boot                      # pages wait on the CPU lists
    m.drain_all_pages()
    assert buddy_counts(m) == boot
    m.check()


def test_spill_when_count_reaches_high():
    m = Machine(ram="256MiB", pcp=True)
    zone = m.zones[pa.ZONE_DMA32]
    pcp = zone.per_cpu_pageset[0]
    held = [m.alloc_pages(0) for _ in range(pcp.high_min + 200)]
    for pfn in held:
        m.free_pages(pfn, 0)
        assert pcp.count < max(pcp.high, pcp.high_min) + pcp.batch     # spilled before growing past high
    m.check()


def test_double_free_of_a_cached_page_is_caught():
    m = Machine(ram="256MiB", pcp=True)
    pfn = m.alloc_pages(0)
    m.free_pages(pfn, 0)
    with pytest.raises(KernelBug, match="double free"):
        m.free_pages(pfn, 0)
    m.check()


def test_pcp_is_per_cpu():
    m = Machine(ram="256MiB", cpus=2, pcp=True)
    a = m.alloc_pages(0)
    m.current_cpu = 1
    b = m.alloc_pages(0)
    assert b != a + 1                                   # CPU 1 refilled its own list from elsewhere
    zone = m.zones[pa.ZONE_DMA32]
    assert zone.per_cpu_pageset[0].count > 0 and zone.per_cpu_pageset[1].count > 0
    m.check()


def test_movable_and_unmovable_have_separate_lists():
    m = Machine(ram="4GiB", pcp=True)
    a = m.alloc_pages(0, GFP_KERNEL)
    b = m.alloc_pages(0, GFP_HIGHUSER_MOVABLE)
    assert m.pageblock_mt[a >> pa.PAGEBLOCK_ORDER] == pa.MIGRATE_UNMOVABLE
    assert m.pageblock_mt[b >> pa.PAGEBLOCK_ORDER] == pa.MIGRATE_MOVABLE
    m.check()


def test_pcp_must_be_a_bool():
    with pytest.raises(TypeError, match="pcp"):
        Machine(ram="256MiB", pcp="yes")


def _host_pagesets():
    """(zone, low, managed, batch, high_min, high_max) per populated zone from /proc/zoneinfo."""
    rows, zone = {}, None
    with open("/proc/zoneinfo") as f:
        for line in f:
            words = line.split()
            if line.startswith("Node"):
                zone = words[3]
                rows[zone] = {}
            elif words and words[0] in ("low", "managed") and len(words) == 2:
                rows[zone][words[0]] = int(words[1])
            elif words and words[0] in ("batch:", "high_min:", "high_max:"):
                rows[zone].setdefault(words[0][:-1], int(words[1]))
    return {z: r for z, r in rows.items() if r.get("managed")}


@pytest.mark.skipif(not os.path.exists("/proc/zoneinfo"), reason="needs Linux /proc/zoneinfo")
def test_host_pageset_sizes_match_the_model():
    """Differential: batch, high_min and high_max as this kernel computes them for its own zones."""
    host = _host_pagesets()
    cpus = os.cpu_count()
    m = Machine(ram="4GiB", cpus=cpus, pcp=True)
    for name, row in host.items():
        zone = next(z for z in m.zones if z.name == name)
        # Give the model zone the host's size and low watermark, then run the kernel's formulas.
        zone.managed_pages = row["managed"]
        zone.watermark[pa.WMARK_LOW] = row["low"]
        batch = max(1, pa.zone_batchsize(zone))
        assert batch == row["batch"], name
        assert pa.zone_highsize(zone, batch, 0, cpus) == row["high_min"], name
        assert pa.zone_highsize(zone, batch, pa.MIN_PERCPU_PAGELIST_HIGH_FRACTION, cpus) == row["high_max"], name
