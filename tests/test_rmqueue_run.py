"""rmqueue_bulk's order-0 shortcut (rmqueue_smallest_run) against the call-by-call path it replaces.

Tracing makes rmqueue_bulk take one __rmqueue call per page, as Linux does;
without tracing it takes whole runs at once.  Both must leave the same
free lists (in list order), the same per-CPU lists and the same frame table.
"""
import random

from hypothesis import given, settings, strategies as st

from mmlab import Machine
from mmlab.mm import page_alloc as pa
from mmlab.uapi import GFP_KERNEL, GFP_HIGHUSER_MOVABLE


def snapshot(m):
    zones = []
    for z in m.zones:
        pfns, orders, mts = pa.free_blocks(z)
        pcps = [[list(l) for l in pcp.lists] for pcp in z.per_cpu_pageset]
        zones.append((pfns.tolist(), orders.tolist(), mts.tolist(), z.nr_free_pages,
                      [a.nr_free for a in z.free_area], pcps,
                      [(pcp.count, pcp.alloc_factor, pcp.high) for pcp in z.per_cpu_pageset]))
    mm = m.mem_map
    return zones, [getattr(mm, f).tobytes() for f, _ in mm.FIELDS]


def scramble(m, seed, steps):
    """Allocate and free blocks of mixed orders and types, leaving a fragmented buddy state."""
    rng = random.Random(seed)
    live = []
    for _ in range(steps):
        if live and rng.random() < 0.45:
            pfn, order = live.pop(rng.randrange(len(live)))
            m.free_pages(pfn, order)
        else:
            order = rng.choice([0, 0, 0, 1, 2, 3, 5, 9])
            gfp = rng.choice([GFP_KERNEL, GFP_HIGHUSER_MOVABLE])
            pfn = m.alloc_pages(order, gfp)
            if pfn is not None:
                live.append((pfn, order))
    return live


def bulk(m, n, traced):
    if traced:
        with m.trace():
            return pa.alloc_pages_bulk(m, GFP_HIGHUSER_MOVABLE, n)
    return pa.alloc_pages_bulk(m, GFP_HIGHUSER_MOVABLE, n)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(0, 400), n=st.integers(1, 12000),
       pcp_drain=st.booleans(), ram=st.sampled_from(["64MiB", "128MiB"]))
def test_run_shortcut_leaves_what_the_calls_leave(seed, steps, n, pcp_drain, ram):
    # the same fragmented machine twice; one bulk allocation each way (64 MiB runs Movable dry: fallbacks)
    a, b = Machine(ram=ram, seed=seed), Machine(ram=ram, seed=seed)
    scramble(a, seed, steps)
    scramble(b, seed, steps)
    if pcp_drain:
        a.drain_all_pages()
        b.drain_all_pages()
    got_fast, got_slow = bulk(a, n, False), bulk(b, n, True)
    assert got_fast == got_slow
    assert snapshot(a) == snapshot(b)
    a.check()


def test_run_from_a_fresh_block_is_ascending():
    # a fresh machine: the first refill splits one order-10 block and hands out its lowest pages in order
    m = Machine(ram="256MiB", seed=1)
    pages = pa.alloc_pages_bulk(m, GFP_HIGHUSER_MOVABLE, 40)
    assert pages == list(range(pages[0], pages[0] + 40))
    m.check()


def test_partial_run_leaves_aligned_blocks():
    # 3 pages from an order-4 block at P leave P+3 (order 0), P+4 (order 2), P+8 (order 3)
    m = Machine(ram="256MiB", seed=1)
    zone = m.zones[pa.ZONE_NORMAL] if m.zones[pa.ZONE_NORMAL].managed_pages else m.zones[pa.ZONE_DMA32]
    mt = pa.MIGRATE_MOVABLE
    out = []
    # carve an order-4 block out of the buddy lists by hand, then hand it back as the only small block
    pfn = pa.rmqueue_smallest(zone, 4, mt)
    small = [(p, o) for o in range(4) for p in list(zone.free_area[o].free_list[mt])]
    for p, o in small:
        pa.del_page_from_free_list(zone, p, o, mt)
    pa.add_to_free_list(zone, pfn, 4, mt)
    m.mem_map.state[pfn:pfn + 16] = pa.FRAME_FREE
    taken = pa.rmqueue_smallest_run(zone, 3, mt, out)
    assert taken == 3 and out == [pfn, pfn + 1, pfn + 2]
    assert [list(zone.free_area[o].free_list[mt]) for o in range(4)] == [[pfn + 3], [], [pfn + 4], [pfn + 8]]


def refill(m, count, mt, flags, traced):
    from collections import deque
    zone = max(m.zones, key=lambda z: z.managed_pages)
    out = deque()
    if traced:
        with m.trace():
            moved = pa.rmqueue_bulk(zone, 0, count, mt, flags, out)
    else:
        moved = pa.rmqueue_bulk(zone, 0, count, mt, flags, out)
    return moved, list(out)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(0, 300), count=st.integers(1, 20000),
       mt=st.sampled_from([pa.MIGRATE_UNMOVABLE, pa.MIGRATE_MOVABLE, pa.MIGRATE_RECLAIMABLE]),
       flags=st.sampled_from([pa.ALLOC_WMARK_LOW, pa.ALLOC_WMARK_LOW | pa.ALLOC_NOFRAGMENT]))
def test_refill_past_the_types_own_lists_matches(seed, steps, count, mt, flags):
    # rmqueue_bulk asks for more than the type has: claim and steal fallbacks happen mid-batch
    a, b = Machine(ram="64MiB", seed=seed), Machine(ram="64MiB", seed=seed)
    scramble(a, seed, steps)
    scramble(b, seed, steps)
    assert refill(a, count, mt, flags, False) == refill(b, count, mt, flags, True)
    assert snapshot(a) == snapshot(b)
