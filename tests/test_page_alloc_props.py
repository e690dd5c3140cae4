"""Property tests of the buddy allocator: random alloc_pages/free_pages sequences keep every invariant.

A hypothesis state machine boots a small machine (64-256 MiB, with or
without per-CPU lists), then allocates blocks of order 0-10 with the common
GFP flags, frees held blocks at random, fills zones down to their
watermarks, and switches CPUs; m.check() runs after every step.  At the end
it frees everything and asserts what the buddy system guarantees.

What freeing everything gives back.  The free frames are then exactly the
frames free at boot, and __free_one_page merges every free block with its
free buddy, so the free blocks are the largest aligned blocks that fit
(there is one such decomposition): the blocks boot made.  Pageblock
migrate types may have changed along the way (claims, and merges that
retag the buddy's pageblock), which moves blocks between the per-type
lists of /proc/pagetypeinfo but not between orders.  One thing stops a
merge: above pageblock order, a HighAtomic pageblock does not merge with a
buddy of another type (migratetype_is_mergeable).  A high-order GFP_ATOMIC
allocation that succeeds in the slow path reserves its pageblock as
HighAtomic (reserve_highatomic_pageblock, in zones of at least 200 MiB),
and Linux gives the reserve back only under memory pressure
(unreserve_highatomic_pageblock, before OOM).  So after freeing
everything, every order-10 boot block holding a HighAtomic pageblock and
one of another type stays two order-9 blocks: on Linux as in the model,
/proc/buddyinfo returns to its boot state only when no such pageblock
exists.  With per-CPU lists, freed pages wait there until drained, as on
Linux, so the test drains first.
"""
from hypothesis import settings, strategies as st, HealthCheck, event
from hypothesis.stateful import RuleBasedStateMachine, rule, initialize, invariant

from mmlab import Machine
from mmlab.mm import page_alloc as pa
from mmlab.uapi import (GFP_KERNEL, GFP_ATOMIC, GFP_DMA, GFP_DMA32, GFP_HIGHUSER_MOVABLE,
                        __GFP_RECLAIMABLE)

GFPS = [GFP_KERNEL, GFP_ATOMIC, GFP_DMA, GFP_DMA32, GFP_HIGHUSER_MOVABLE, GFP_KERNEL | __GFP_RECLAIMABLE]
orders = st.integers(min_value=0, max_value=pa.MAX_PAGE_ORDER)
gfps = st.sampled_from(GFPS)


def free_block_set(m):
    """Every free block of every zone as a set of (pfn, order)."""
    out = set()
    for z in m.zones:
        pfns, ords, _ = pa.free_blocks(z)
        out |= set(zip(pfns.tolist(), ords.tolist()))
    return out


def buddy_counts(m):
    return [[a.nr_free for a in z.free_area] for z in m.zones]


def pcp_counts(m):
    return [[pcp.count for pcp in z.per_cpu_pageset] for z in m.zones]


def merged_as_linux_would(m, boot_blocks):
    """Boot's free blocks, with each order-10 block split where a HighAtomic pageblock bars the merge."""
    expected = set()
    for pfn, order in boot_blocks:
        if order == pa.MAX_PAGE_ORDER:
            low = m.pageblock_mt[pfn >> pa.PAGEBLOCK_ORDER]
            high = m.pageblock_mt[(pfn >> pa.PAGEBLOCK_ORDER) + 1]
            if low != high and not (pa.migratetype_is_mergeable(low) and pa.migratetype_is_mergeable(high)):
                expected |= {(pfn, pa.PAGEBLOCK_ORDER), (pfn + pa.PAGEBLOCK_NR_PAGES, pa.PAGEBLOCK_ORDER)}
                continue
        expected.add((pfn, order))
    return expected


class BuddyAllocator(RuleBasedStateMachine):
    """Random allocations and frees on a small machine; every step leaves the model consistent."""

    @initialize(ram=st.sampled_from(["64MiB", "128MiB", "256MiB"]), pcp=st.booleans())
    def boot(self, ram, pcp):
        self.m = Machine(ram=ram, cpus=2, pcp=pcp)
        self.held = {}                              # pfn -> order
        self.boot_buddyinfo = self.m.proc.buddyinfo()
        self.boot_blocks = free_block_set(self.m)
        self.boot_free = [z.nr_free_pages for z in self.m.zones]

    def allocate(self, order, gfp):
        """One alloc_pages call, checking what it returned against what the flags allow."""
        m = self.m
        buddy, pcp = buddy_counts(m), pcp_counts(m)
        pfn = m.alloc_pages(order, gfp)
        if pfn is None:
            # A failed allocation changes nothing.
            assert buddy_counts(m) == buddy and pcp_counts(m) == pcp
            event("an allocation failed")
            return None
        assert pfn % (1 << order) == 0                              # naturally aligned
        assert m.mem_map.zone[pfn] <= pa.gfp_zone(gfp)              # a zone the flags allow
        assert all(m.mem_map.state[pfn:pfn + (1 << order)] == pa.FRAME_ALLOCATED)
        for other, other_order in self.held.items():                # no overlap with held blocks
            assert pfn + (1 << order) <= other or other + (1 << other_order) <= pfn
        self.held[pfn] = order
        return pfn

    @rule(order=orders, gfp=gfps)
    def alloc(self, order, gfp):
        self.allocate(order, gfp)

    @rule(order=st.integers(min_value=0, max_value=3), gfp=gfps)
    def alloc_small(self, order, gfp):
        self.allocate(order, gfp)

    @rule(order=st.sampled_from([10, 9, 4]), gfp=gfps)
    def fill(self, order, gfp):
        """Allocate blocks of one order until the flags' zones refuse: drives zones to their watermarks."""
        for _ in range(400):
            if self.allocate(order, gfp) is None:
                break

    @rule(pick=st.integers(min_value=0, max_value=1 << 16))
    def free(self, pick):
        """Free one held block (the pick-th in address order, wrapping round); nothing when none is held."""
        if self.held:
            pfn = sorted(self.held)[pick % len(self.held)]
            self.m.free_pages(pfn, self.held.pop(pfn))

    @rule(fraction=st.sampled_from([2, 3]))
    def free_many(self, fraction):
        """Free every second (or third) held block, in address order."""
        for pfn in sorted(self.held)[::fraction]:
            self.m.free_pages(pfn, self.held.pop(pfn))

    @rule(cpu=st.integers(min_value=0, max_value=1))
    def switch_cpu(self, cpu):
        self.m.current_cpu = cpu

    @invariant()
    def consistent(self):
        self.m.check()

    def teardown(self):
        """Free everything, drain the per-CPU lists: boot's blocks come back, HighAtomic bars aside."""
        m = self.m
        for pfn, order in sorted(self.held.items()):
            m.free_pages(pfn, order)
        self.held = {}
        m.drain_all_pages()
        m.check()
        assert [z.nr_free_pages for z in m.zones] == self.boot_free
        assert free_block_set(m) == merged_as_linux_would(m, self.boot_blocks)
        if (m.pageblock_mt == pa.MIGRATE_HIGHATOMIC).any():
            event("a HighAtomic pageblock was reserved")
        else:
            assert m.proc.buddyinfo() == self.boot_buddyinfo
        assert not (m.pageblock_mt >= pa.MIGRATE_ISOLATE).any()      # nothing isolates pageblocks here


BuddyAllocator.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
test_buddy_allocator = BuddyAllocator.TestCase


def test_highatomic_reserve_keeps_buddyinfo_from_returning():
    """The one case where freeing everything does not restore boot's buddyinfo, on Linux as here.

    Fill a 256 MiB machine to its low watermarks, then a GFP_ATOMIC order-1
    allocation succeeds in the slow path and reserves its pageblock as
    HighAtomic.  Once everything is freed, that pageblock's free order-9
    block cannot merge with its buddy pageblock of another type.
    """
    m = Machine(ram="256MiB", pcp=False)
    boot = m.proc.buddyinfo()
    held = []
    while (pfn := m.alloc_pages(pa.MAX_PAGE_ORDER, GFP_KERNEL)) is not None:
        held.append((pfn, pa.MAX_PAGE_ORDER))
    while (pfn := m.alloc_pages(0, GFP_KERNEL)) is not None:
        held.append((pfn, 0))
    pfn = m.alloc_pages(1, GFP_ATOMIC)                      # below min for GFP_KERNEL, allowed for atomic
    assert pfn is not None
    held.append((pfn, 1))
    assert m.pageblock_mt[pfn >> pa.PAGEBLOCK_ORDER] == pa.MIGRATE_HIGHATOMIC
    for pfn, order in held:
        m.free_pages(pfn, order)
    m.check()
    after = [z.free_area[pa.PAGEBLOCK_ORDER].nr_free for z in m.zones]
    before = [[int(n) for n in line.split()[4:]][pa.PAGEBLOCK_ORDER] for line in boot.splitlines()]
    assert m.proc.buddyinfo() != boot
    assert sum(after) == sum(before) + 2                    # one order-10 block stays two order-9 halves
