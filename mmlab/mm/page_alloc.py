"""The buddy allocator: zones, the struct page table and the free areas.

Models mm/page_alloc.c of Linux 6.x for one NUMA node on x86_64.

Physical memory is cut into page frames of 4 KiB, numbered by pfn.  Each zone
keeps free memory in blocks of 2**order frames, order 0..MAX_PAGE_ORDER, each
block aligned to its own size.  A block of order n and the block it was split
from share a parent with exactly one other block, its *buddy*, at
pfn ^ (1 << n).  Allocation takes the smallest block that fits and splits it,
keeping the lower half (expand); freeing merges a block with its buddy for as
long as the buddy is free and of the same order (free_one_page).  That is the
whole idea; the rest of this file is the bookkeeping Linux adds to keep
memory unfragmented: migrate types per pageblock, watermarks, zones.

Glossary: pfn is a page frame number, order a power of two of frames, mt a
migrate type, zone one of DMA, DMA32, Normal.

Every Linux puts per-CPU page lists in front of the buddy allocator
(rmqueue_pcplist, free_frozen_page_commit; see "per-CPU page lists" below).
mmlab models them; a Machine built with pcp=False leaves them out, so that
every allocation and free shows its splits and merges.
"""
import math
from collections import deque

import numpy as np

from ..arch import PAGE_SHIFT, PAGE_SIZE, PAGE_OFFSET
from ..errors import KernelBug, require_int
from .. import trace as _trace
from ..trace import traced, note
from ..uapi import (gfp_name, __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM, __GFP_MOVABLE,
                    __GFP_RECLAIMABLE, __GFP_HIGH, __GFP_KSWAPD_RECLAIM, __GFP_DIRECT_RECLAIM,
                    __GFP_NOMEMALLOC, __GFP_COMP, __GFP_BITS_MASK)

MAX_PAGE_ORDER = 10
NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1
PAGEBLOCK_ORDER = 9                     # pageblock_order: a 2 MiB huge page
PAGEBLOCK_NR_PAGES = 1 << PAGEBLOCK_ORDER
PAGE_ALLOC_COSTLY_ORDER = 3

# Migrate types, in the kernel's enum order (include/linux/mmzone.h, no CMA).
MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_HIGHATOMIC, MIGRATE_ISOLATE = range(5)
MIGRATE_PCPTYPES = 3
MIGRATE_TYPES = 5
MIGRATETYPE_NAMES = ["Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate"]

# Which free lists a migrate type may borrow from, in order (fallbacks[]).
FALLBACKS = {
    MIGRATE_UNMOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
    MIGRATE_MOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
    MIGRATE_RECLAIMABLE: (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),
}

# Zones, in the kernel's enum order; ZONE_MOVABLE and ZONE_DEVICE stay empty here.
ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_MOVABLE, ZONE_DEVICE = range(5)
MAX_NR_ZONES = 5
ZONE_NAMES = ["DMA", "DMA32", "Normal", "Movable", "Device"]

# Watermarks (enum zone_watermarks) and allocation flags (mm/internal.h).
WMARK_MIN, WMARK_LOW, WMARK_HIGH, WMARK_PROMO = range(4)
ALLOC_WMARK_MIN, ALLOC_WMARK_LOW, ALLOC_WMARK_HIGH = 0, 1, 2
ALLOC_WMARK_MASK = 0x03
ALLOC_NO_WATERMARKS = 0x04
ALLOC_OOM = 0x08
ALLOC_NON_BLOCK = 0x10
ALLOC_MIN_RESERVE = 0x20            # == __GFP_HIGH, as the kernel arranges
ALLOC_CPUSET = 0x40
ALLOC_NOFRAGMENT = 0x100
ALLOC_HIGHATOMIC = 0x200
ALLOC_KSWAPD = 0x800                # == __GFP_KSWAPD_RECLAIM
ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM

FPI_NONE, FPI_TO_TAIL = 0, 1 << 1   # free page flags (fpi_t)

_ALLOC_FLAG_NAMES = [(ALLOC_NO_WATERMARKS, "NO_WATERMARKS"), (ALLOC_OOM, "OOM"),
                     (ALLOC_NON_BLOCK, "NON_BLOCK"), (ALLOC_MIN_RESERVE, "MIN_RESERVE"),
                     (ALLOC_CPUSET, "CPUSET"), (ALLOC_NOFRAGMENT, "NOFRAGMENT"),
                     (ALLOC_HIGHATOMIC, "HIGHATOMIC"), (ALLOC_KSWAPD, "KSWAPD")]


def alloc_flags_name(flags):
    """ALLOC_* flags as text: 'WMARK_LOW|NOFRAGMENT|KSWAPD'."""
    parts = ["WMARK_" + ["MIN", "LOW", "HIGH", "?"][flags & ALLOC_WMARK_MASK]]
    parts += [name for bit, name in _ALLOC_FLAG_NAMES if flags & bit]
    return "|".join(parts)   # free page flags (fpi_t)

# What a frame is, kept explicit so check() can compare it with the free lists.
FRAME_HOLE, FRAME_RESERVED, FRAME_FREE, FRAME_ALLOCATED, FRAME_PCP = 0, 1, 2, 3, 4
FRAME_STATE_NAMES = ["hole", "reserved", "free", "allocated", "per-cpu list"]

# Page flags (include/linux/page-flags.h); only those the model uses.
PG_locked = 1 << 0
PG_referenced = 1 << 2
PG_uptodate = 1 << 3
PG_dirty = 1 << 4
PG_lru = 1 << 5
PG_head = 1 << 6
PG_active = 1 << 8
PG_reserved = 1 << 10
PG_writeback = 1 << 12
PG_swapbacked = 1 << 19
PG_unevictable = 1 << 20
PG_mlocked = 1 << 21
PG_readahead = 1 << 22
PG_anon = 1 << 28           # NOTE: Linux marks anon folios in ->mapping's low bit, not in flags

# Page types (enum pagetype): what a page not on the LRU is being used for.
PGTY_NONE, PGTY_BUDDY, PGTY_TABLE, PGTY_GUARD, PGTY_SLAB, PGTY_LARGE_KMALLOC = range(6)
PAGE_TYPE_NAMES = ["", "buddy", "table", "guard", "slab", "large_kmalloc"]


class MemMap:
    """The struct page table: one row per page frame, one numpy array per field.

    `flags`, `page_type`, `order`, `refcount`, `mapcount`, `state` and `zone`
    are numpy arrays over every pfn up to max_pfn (holes included, as with
    a flat memmap).  The matching memoryviews with a trailing underscore give
    the hot paths scalar access at about half numpy's cost per element.
    """

    FIELDS = (("flags", np.uint32), ("page_type", np.uint8), ("order", np.int8),
              ("refcount", np.int32), ("mapcount", np.int32), ("state", np.uint8),
              ("zone", np.uint8))

    def __init__(self, max_pfn):
        self.max_pfn = max_pfn
        for name, dtype in self.FIELDS:
            self.add_field(name, dtype)

    def add_field(self, name, dtype):
        """Add a per-frame field (other mm files add their own, as struct page's unions do)."""
        array = np.zeros(self.max_pfn, dtype=dtype)
        setattr(self, name, array)
        setattr(self, name + "_", memoryview(array))
        return array


class FreeList:
    """A doubly linked list of free block heads (struct list_head), O(1) at both ends.

    Links live in two dicts keyed by pfn; HEAD is the list head itself.
    """

    HEAD = -1
    __slots__ = ("next", "prev", "count")

    def __init__(self):
        self.next = {self.HEAD: self.HEAD}
        self.prev = {self.HEAD: self.HEAD}
        self.count = 0

    def add(self, pfn, tail=False):
        """list_add / list_add_tail."""
        nxt, prv = self.next, self.prev
        if tail:
            before, after = prv[self.HEAD], self.HEAD
        else:
            before, after = self.HEAD, nxt[self.HEAD]
        nxt[before] = pfn
        nxt[pfn] = after
        prv[after] = pfn
        prv[pfn] = before
        self.count += 1

    def remove(self, pfn):
        """list_del."""
        before = self.prev.pop(pfn)
        after = self.next.pop(pfn)
        self.next[before] = after
        self.prev[after] = before
        self.count -= 1

    def first(self):
        """list_first_entry_or_null: the pfn at the head, or None."""
        pfn = self.next[self.HEAD]
        return None if pfn == self.HEAD else pfn

    def __contains__(self, pfn):
        return pfn in self.prev

    def __iter__(self):
        pfn, nxt = self.next[self.HEAD], self.next
        while pfn != self.HEAD:
            yield pfn
            pfn = nxt[pfn]

    def __len__(self):
        return self.count


HEAD = FreeList.HEAD


class FreeArea:
    """struct free_area: the free blocks of one order, one list per migrate type."""

    __slots__ = ("free_list", "nr_free")

    def __init__(self):
        self.free_list = [FreeList() for _ in range(MIGRATE_TYPES)]
        self.nr_free = 0


class Zone:
    """struct zone: a range of pfns with its own free areas and watermarks.

    spanned_pages counts pfns from start to end, holes included;
    present_pages counts the frames that exist; managed_pages those the buddy
    allocator was given (present minus what boot reserved).
    """

    def __init__(self, machine, idx, start_pfn, end_pfn, present_pages):
        self.machine = machine
        self.idx = idx
        self.name = ZONE_NAMES[idx]
        self.zone_start_pfn = start_pfn
        self.spanned_pages = end_pfn - start_pfn
        self.present_pages = present_pages
        self.managed_pages = 0
        self.free_area = [FreeArea() for _ in range(NR_PAGE_ORDERS)]
        self.nr_free_pages = 0
        self.nr_free_highatomic = 0
        self.watermark = [0, 0, 0, 0]       # _watermark[min, low, high, promo]
        self.watermark_boost = 0
        self.lowmem_reserve = [0] * MAX_NR_ZONES
        self.nr_reserved_highatomic = 0
        self.below_high = False             # ZONE_BELOW_HIGH
        self.per_cpu_pageset = []           # one PerCpuPages per CPU, set up after boot
        self.vm_stat = {}                   # the zone's other counters, by /proc name

    @property
    def zone_end_pfn(self):
        return self.zone_start_pfn + self.spanned_pages

    def populated(self):
        """populated_zone: the zone has frames."""
        return self.present_pages > 0

    def spans(self, pfn):
        """zone_spans_pfn."""
        return self.zone_start_pfn <= pfn < self.zone_start_pfn + self.spanned_pages

    def wmark(self, which):
        """wmark_pages: the watermark plus any boost."""
        return self.watermark[which] + self.watermark_boost

    def __repr__(self):
        return self.name


# -- small helpers that read like the kernel's ------------------------------

def page_address(m, pfn):
    """page_address: the kernel virtual address of a frame in the direct map."""
    return PAGE_OFFSET + (pfn << PAGE_SHIFT)


def virt_to_pfn(m, addr):
    """virt_to_pfn for a direct-map address (__pa(addr) >> PAGE_SHIFT)."""
    return (addr - PAGE_OFFSET) >> PAGE_SHIFT


def get_pageblock_migratetype(m, pfn):
    """get_pfnblock_migratetype: the migrate type recorded for pfn's pageblock."""
    return m.pageblock_mt_[pfn >> PAGEBLOCK_ORDER]


def set_pageblock_migratetype(m, pfn, mt):
    m.pageblock_mt_[pfn >> PAGEBLOCK_ORDER] = mt


def change_pageblock_range(m, pfn, order, mt):
    """change_pageblock_range: retag every pageblock of a block of `order`."""
    first = pfn >> PAGEBLOCK_ORDER
    count = max(1, 1 << (order - PAGEBLOCK_ORDER)) if order >= PAGEBLOCK_ORDER else 1
    m.pageblock_mt[first:first + count] = mt


# GFP_ZONE_TABLE (include/linux/gfp.h) for x86_64, indexed by the four zone
# bits; None marks the combinations GFP_ZONE_BAD lists (any two of DMA,
# DMA32 and HIGHMEM), on which gfp_zone hits VM_BUG_ON.
_GFP_ZONE_TABLE = {
    0: ZONE_NORMAL,
    __GFP_DMA: ZONE_DMA,
    __GFP_HIGHMEM: ZONE_NORMAL,          # no ZONE_HIGHMEM on 64-bit
    __GFP_DMA32: ZONE_DMA32,
    __GFP_MOVABLE: ZONE_NORMAL,
    __GFP_MOVABLE | __GFP_DMA: ZONE_DMA,
    __GFP_MOVABLE | __GFP_HIGHMEM: ZONE_MOVABLE,
    __GFP_MOVABLE | __GFP_DMA32: ZONE_DMA32,
}


def gfp_zone(gfp):
    """gfp_zone: the highest zone an allocation with these flags may use (x86_64)."""
    zone = _GFP_ZONE_TABLE.get(gfp & (__GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM | __GFP_MOVABLE))
    if zone is None:
        raise ValueError(f"gfp: {gfp_name(gfp)} combines zone modifiers that name no zone (GFP_ZONE_BAD)")
    return zone


def gfp_migratetype(gfp):
    """gfp_migratetype: __GFP_MOVABLE and __GFP_RECLAIMABLE pick the free lists."""
    if gfp & __GFP_MOVABLE and gfp & __GFP_RECLAIMABLE:
        raise ValueError("gfp: __GFP_MOVABLE and __GFP_RECLAIMABLE exclude each other")
    return (gfp & (__GFP_MOVABLE | __GFP_RECLAIMABLE)) >> 3


def build_zonelists(m):
    """build_zonelists: for each highest zone, the zones with memory at or below it, highest first."""
    m.zonelists = [[z for z in reversed(m.zones[:i + 1]) if z.managed_pages]
                   for i in range(MAX_NR_ZONES)]


def zonelist(m, highest_zoneidx):
    """The zones an allocation may use, preferred first (for_each_zone_zonelist)."""
    return m.zonelists[highest_zoneidx]


# -- the free lists ---------------------------------------------------------

def add_to_free_list(zone, pfn, order, mt, tail=False):
    """__add_to_free_list + set_buddy_order: pfn heads a free block of `order`."""
    m = zone.machine
    area = zone.free_area[order]
    area.free_list[mt].add(pfn, tail)
    area.nr_free += 1
    m.mem_map.page_type_[pfn] = PGTY_BUDDY
    m.mem_map.order_[pfn] = order


def del_page_from_free_list(zone, pfn, order, mt):
    """__del_page_from_free_list: unlink a free block and clear its buddy mark."""
    m = zone.machine
    area = zone.free_area[order]
    area.free_list[mt].remove(pfn)
    area.nr_free -= 1
    m.mem_map.page_type_[pfn] = PGTY_NONE
    m.mem_map.order_[pfn] = 0


def account_freepages(zone, nr_pages, mt):
    """account_freepages: keep NR_FREE_PAGES (and the high-atomic count) in step."""
    zone.nr_free_pages += nr_pages
    if mt == MIGRATE_HIGHATOMIC:
        zone.nr_free_highatomic += nr_pages


def page_is_buddy(m, zone, buddy, order):
    """page_is_buddy: buddy heads a free block of exactly `order` in the same zone."""
    mm = m.mem_map
    return (0 <= buddy < mm.max_pfn and mm.page_type_[buddy] == PGTY_BUDDY
            and mm.order_[buddy] == order and mm.zone_[buddy] == zone.idx
            and mm.state_[buddy] == FRAME_FREE)


@traced(fmt={"migratetype": lambda mt: MIGRATETYPE_NAMES[mt]})
def expand(zone, pfn, low, high, migratetype):
    """expand: split a block of order `high` at pfn down to order `low`.

    Each step halves the block, keeps the lower half and puts the upper half
    on the free list of its order; the lower half goes on being split.
    Keeping the lower half means the next split comes from the same block,
    so small allocations cluster instead of spreading over memory.
    Returns the number of frames put back on the free lists.
    """
    added = 0
    size = 1 << high
    mm = zone.machine.mem_map
    page_type, order_of = mm.page_type_, mm.order_
    areas = zone.free_area
    tracing = _trace._active is not None
    while high > low:
        high -= 1
        size >>= 1
        upper = pfn + size
        # NOTE: add_to_free_list(zone, upper, high, migratetype), inlined for speed.
        area = areas[high]
        fl = area.free_list[migratetype]
        nxt, prv = fl.next, fl.prev
        first = nxt[HEAD]
        nxt[HEAD] = upper
        nxt[upper] = first
        prv[first] = upper
        prv[upper] = HEAD
        fl.count += 1
        area.nr_free += 1
        page_type[upper] = PGTY_BUDDY
        order_of[upper] = high
        if tracing:
            note(zone, "expand: split order %d at %#x, free upper half %#x as order %d",
                 high + 1, pfn, upper, high)
        added += size
    return added


def page_del_and_expand(zone, pfn, low, high, mt):
    """page_del_and_expand: take a free block off its list and split it to `low`."""
    del_page_from_free_list(zone, pfn, high, mt)
    added = expand(zone, pfn, low, high, mt)
    account_freepages(zone, -(1 << high) + added, mt)


@traced(fmt={"migratetype": lambda mt: MIGRATETYPE_NAMES[mt]})
def rmqueue_smallest(zone, order, migratetype):
    """__rmqueue_smallest: the first block on the smallest non-empty list of this type.

    Returns the pfn of a block of exactly `order`, split down as needed, or
    None when no list of this migrate type, at this order or above, has one.
    """
    for current_order in range(order, NR_PAGE_ORDERS):
        area = zone.free_area[current_order]
        if not area.nr_free:
            continue
        pfn = area.free_list[migratetype].first()
        if pfn is None:
            continue
        note(zone, "rmqueue_smallest: take order-%d block at pfn %#x", current_order, pfn)
        page_del_and_expand(zone, pfn, order, current_order, migratetype)
        return pfn
    return None


def should_try_claim_block(order, start_mt):
    """should_try_claim_block: is a fallback of this order worth claiming a pageblock for?"""
    if order >= PAGEBLOCK_ORDER // 2:
        return True
    # Unmovable or reclaimable pages in a movable block pin it for good, so take
    # the whole block for them; movable pages can be moved out again later.
    return start_mt in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE)


def find_suitable_fallback(area, order, migratetype, claimable):
    """find_suitable_fallback: the first other migrate type with free blocks at this order.

    Returns the type, -1 if none has blocks here, or -2 if the order is too
    small to claim a block at (the caller stops searching downwards).
    """
    if claimable and not should_try_claim_block(order, migratetype):
        return -2
    if not area.nr_free:
        return -1
    for fallback_mt in FALLBACKS[migratetype]:
        if area.free_list[fallback_mt].count:
            return fallback_mt
    return -1


def prep_move_freepages_block(zone, pfn):
    """prep_move_freepages_block: count free and movable frames in pfn's pageblock.

    Returns (start_pfn, free_pages, movable_pages), or None when the
    pageblock reaches outside the zone and so cannot be moved whole.
    """
    m = zone.machine
    start = pfn & ~(PAGEBLOCK_NR_PAGES - 1)
    end = start + PAGEBLOCK_NR_PAGES
    if not (zone.spans(start) and zone.spans(end - 1)):
        return None
    mm = m.mem_map
    free_pages = movable_pages = 0
    p = start
    while p < end:
        if mm.page_type_[p] == PGTY_BUDDY and mm.state_[p] == FRAME_FREE:
            free_pages += 1 << mm.order_[p]
            p += 1 << mm.order_[p]
            continue
        if mm.flags_[p] & PG_lru:
            movable_pages += 1
        p += 1
    return start, free_pages, movable_pages


def move_freepages_block(zone, start, old_mt, new_mt):
    """__move_freepages_block: move the free blocks of a pageblock to new_mt's lists."""
    m = zone.machine
    mm = m.mem_map
    p, end, moved = start, start + PAGEBLOCK_NR_PAGES, 0
    while p < end:
        if mm.page_type_[p] == PGTY_BUDDY and mm.state_[p] == FRAME_FREE:
            order = mm.order_[p]
            area = zone.free_area[order]
            area.free_list[old_mt].remove(p)
            area.free_list[new_mt].add(p, tail=True)
            moved += 1 << order
            p += 1 << order
        else:
            p += 1
    account_freepages(zone, -moved, old_mt)
    account_freepages(zone, moved, new_mt)
    set_pageblock_migratetype(m, start, new_mt)
    return moved


def try_to_claim_block(zone, pfn, current_order, order, start_mt, block_mt, alloc_flags):
    """try_to_claim_block: take over the pageblock of a fallback block if enough of it fits.

    A whole block of pageblock size or more simply changes type.  A smaller
    one's pageblock is claimed when at least half of it is free or already
    holds pages like ours; then the allocation comes from our own lists.
    Returns the pfn allocated, or None when the block was not claimed.
    """
    m = zone.machine
    if current_order >= PAGEBLOCK_ORDER:
        del_page_from_free_list(zone, pfn, current_order, block_mt)
        change_pageblock_range(m, pfn, current_order, start_mt)
        added = expand(zone, pfn, order, current_order, start_mt)
        account_freepages(zone, -(1 << current_order), block_mt)
        account_freepages(zone, added, start_mt)
        note(zone, "claim: pageblock(s) at %#x change from %s to %s", pfn,
             MIGRATETYPE_NAMES[block_mt], MIGRATETYPE_NAMES[start_mt])
        return pfn
    # NOTE: Linux also boosts the zone's watermarks here (boost_watermark) so
    # kswapd reclaims and later fallbacks become rarer; with nothing to reclaim
    # kswapd clears the boost straight away, so the model does not keep one.
    counted = prep_move_freepages_block(zone, pfn)
    if counted is None:
        return None
    start, free_pages, movable_pages = counted
    if start_mt == MIGRATE_MOVABLE:
        alike = movable_pages
    elif block_mt == MIGRATE_MOVABLE:
        alike = PAGEBLOCK_NR_PAGES - (free_pages + movable_pages)
    else:
        alike = 0
    if free_pages + alike >= PAGEBLOCK_NR_PAGES // 2:
        move_freepages_block(zone, start, block_mt, start_mt)
        note(zone, "claim: pageblock at %#x (%d free, %d alike) changes from %s to %s", start,
             free_pages, alike, MIGRATETYPE_NAMES[block_mt], MIGRATETYPE_NAMES[start_mt])
        return rmqueue_smallest(zone, order, start_mt)
    return None


@traced(fmt={"start_migratetype": lambda mt: MIGRATETYPE_NAMES[mt], "alloc_flags": alloc_flags_name})
def rmqueue_claim(zone, order, start_migratetype, alloc_flags):
    """__rmqueue_claim: fall back to another type's largest block and try to claim its pageblock."""
    min_order = order
    if order < PAGEBLOCK_ORDER and alloc_flags & ALLOC_NOFRAGMENT:
        min_order = PAGEBLOCK_ORDER
    for current_order in range(MAX_PAGE_ORDER, min_order - 1, -1):
        area = zone.free_area[current_order]
        fallback_mt = find_suitable_fallback(area, current_order, start_migratetype, True)
        if fallback_mt == -1:
            continue
        if fallback_mt == -2:
            break
        pfn = area.free_list[fallback_mt].first()
        got = try_to_claim_block(zone, pfn, current_order, order, start_migratetype,
                                 fallback_mt, alloc_flags)
        if got is not None:
            return got
    return None


@traced(fmt={"start_migratetype": lambda mt: MIGRATETYPE_NAMES[mt]})
def rmqueue_steal(zone, order, start_migratetype):
    """__rmqueue_steal: borrow the smallest block of another type without claiming its pageblock."""
    for current_order in range(order, NR_PAGE_ORDERS):
        area = zone.free_area[current_order]
        fallback_mt = find_suitable_fallback(area, current_order, start_migratetype, False)
        if fallback_mt == -1:
            continue
        pfn = area.free_list[fallback_mt].first()
        note(zone, "steal: order-%d block at %#x from %s lists", current_order, pfn,
             MIGRATETYPE_NAMES[fallback_mt])
        page_del_and_expand(zone, pfn, order, current_order, fallback_mt)
        return pfn
    return None


def rmqueue_fallback(zone, order, migratetype, alloc_flags):
    """__rmqueue: our own lists first, then claim a pageblock, then steal a block.

    Each step risks more fragmentation than the one before.  Stealing is
    not allowed under ALLOC_NOFRAGMENT.
    """
    pfn = rmqueue_smallest(zone, order, migratetype)
    if pfn is None:
        pfn = rmqueue_claim(zone, order, migratetype, alloc_flags)
    if pfn is None and not alloc_flags & ALLOC_NOFRAGMENT:
        pfn = rmqueue_steal(zone, order, migratetype)
    return pfn


def rmqueue_buddy(zone, order, migratetype, alloc_flags):
    """rmqueue_buddy: take a block from the free lists, high-atomic reserve first for atomic callers."""
    pfn = None
    if alloc_flags & ALLOC_HIGHATOMIC:
        pfn = rmqueue_smallest(zone, order, MIGRATE_HIGHATOMIC)
    if pfn is None:
        pfn = rmqueue_fallback(zone, order, migratetype, alloc_flags)
        if pfn is None and alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK):
            pfn = rmqueue_smallest(zone, order, MIGRATE_HIGHATOMIC)
    return pfn


def rmqueue(zone, order, migratetype, alloc_flags):
    """rmqueue: small orders through this CPU's page list, the rest from the buddy lists."""
    if zone.machine.pcp_enabled and pcp_allowed_order(order):
        pfn = rmqueue_pcplist(zone, order, migratetype, alloc_flags)
        if pfn is not None:
            return pfn
    return rmqueue_buddy(zone, order, migratetype, alloc_flags)


# -- watermarks -------------------------------------------------------------

def zone_watermark_unusable_free(zone, order, alloc_flags):
    """__zone_watermark_unusable_free: free pages this request may not count on."""
    unusable = (1 << order) - 1
    if not alloc_flags & ALLOC_RESERVES:
        unusable += zone.nr_free_highatomic
    return unusable


def zone_watermark_ok(zone, order, mark, highest_zoneidx, alloc_flags, free_pages=None):
    """__zone_watermark_ok: would taking 2**order pages leave the zone above `mark`?

    `mark` is raised by the lowmem reserve that keeps allocations able to use
    higher zones from eating the lower zones that others depend on.  A request
    of order > 0 also needs a free block of at least that order.
    """
    if free_pages is None:
        free_pages = zone.nr_free_pages
    free_pages -= zone_watermark_unusable_free(zone, order, alloc_flags)
    minimum = mark
    if alloc_flags & ALLOC_RESERVES:
        if alloc_flags & ALLOC_MIN_RESERVE:
            minimum -= minimum // 2
            if alloc_flags & ALLOC_NON_BLOCK:
                minimum -= minimum // 4
        if alloc_flags & ALLOC_OOM:
            minimum -= minimum // 2
    if free_pages <= minimum + zone.lowmem_reserve[highest_zoneidx]:
        return False
    if not order:
        return True
    for o in range(order, NR_PAGE_ORDERS):
        area = zone.free_area[o]
        if not area.nr_free:
            continue
        for mt in range(MIGRATE_PCPTYPES):
            if area.free_list[mt].count:
                return True
        if alloc_flags & (ALLOC_HIGHATOMIC | ALLOC_OOM) and area.free_list[MIGRATE_HIGHATOMIC].count:
            return True
    return False


def zone_watermark_fast(zone, order, mark, highest_zoneidx, alloc_flags):
    """zone_watermark_fast: the order-0 shortcut, then the full check."""
    free_pages = zone.nr_free_pages
    if not order:
        usable = free_pages - min(free_pages, zone_watermark_unusable_free(zone, 0, alloc_flags))
        if usable > mark + zone.lowmem_reserve[highest_zoneidx]:
            return True
    return zone_watermark_ok(zone, order, mark, highest_zoneidx, alloc_flags, free_pages)


def alloc_flags_nofragment(zone):
    """alloc_flags_nofragment: in Normal, with DMA32 below it, avoid splitting other types' pageblocks."""
    if zone.idx == ZONE_NORMAL and zone.machine.zones[ZONE_DMA32].managed_pages:
        return ALLOC_NOFRAGMENT
    return 0


@traced(fmt={"gfp": gfp_name, "highest_zoneidx": lambda i: ZONE_NAMES[i],
             "migratetype": lambda mt: MIGRATETYPE_NAMES[mt], "alloc_flags": alloc_flags_name})
def get_page_from_freelist(m, gfp, order, alloc_flags, highest_zoneidx, migratetype):
    """get_page_from_freelist: walk the zonelist for a zone above its watermark and take a block.

    Returns the pfn of the block taken, or None.
    """
    zones = zonelist(m, highest_zoneidx)
    nofragment = alloc_flags & ALLOC_NOFRAGMENT
    while True:
        for zone in zones:
            # Note when the zone falls below its high watermark: the per-CPU
            # lists then shrink, so fewer free pages hide there.
            if not zone.below_high:
                if zone_watermark_fast(zone, order, zone.wmark(WMARK_HIGH), highest_zoneidx, alloc_flags):
                    pfn = rmqueue(zone, order, migratetype, alloc_flags)
                    if pfn is not None:
                        return pfn
                    continue
                zone.below_high = True
            mark = zone.wmark(alloc_flags & ALLOC_WMARK_MASK)
            if not alloc_flags & ALLOC_NO_WATERMARKS and not zone_watermark_fast(
                    zone, order, mark, highest_zoneidx, alloc_flags):
                note(zone, "%s: below the %s watermark (%d free, mark %d + reserve %d)", zone.name,
                     ["min", "low", "high"][alloc_flags & ALLOC_WMARK_MASK],
                     zone.nr_free_pages, mark, zone.lowmem_reserve[highest_zoneidx])
                continue
            pfn = rmqueue(zone, order, migratetype, alloc_flags)
            if pfn is not None:
                if alloc_flags & ALLOC_HIGHATOMIC:
                    reserve_highatomic_pageblock(zone, pfn, order)
                return pfn
        # On one node every zone may be too fragmented to claim a whole
        # pageblock; then try again and allow stealing.
        if nofragment:
            alloc_flags &= ~ALLOC_NOFRAGMENT
            nofragment = 0
            note(m, "get_page_from_freelist: retry without ALLOC_NOFRAGMENT")
            continue
        return None


def gfp_to_alloc_flags(gfp, order):
    """gfp_to_alloc_flags: the slow path's flags (min watermark; reserves for atomic)."""
    flags = ALLOC_WMARK_MIN | ALLOC_CPUSET
    flags |= gfp & (__GFP_HIGH | __GFP_KSWAPD_RECLAIM)
    if not gfp & __GFP_DIRECT_RECLAIM:
        if not gfp & __GFP_NOMEMALLOC:
            flags |= ALLOC_NON_BLOCK
            if order > 0:
                flags |= ALLOC_HIGHATOMIC
        if flags & ALLOC_MIN_RESERVE:
            flags &= ~ALLOC_CPUSET
    return flags


@traced(fmt={"gfp": gfp_name})
def alloc_pages_slowpath(m, gfp, order, highest_zoneidx, migratetype):
    """__alloc_pages_slowpath: try again at the min watermark (lower still for atomic).

    When that fails and the caller may sleep (__GFP_DIRECT_RECLAIM), page
    reclaim (mm/vmscan.py, reached through m.direct_reclaim, set at boot
    once the LRU lists exist) frees page-cache pages and the allocation is
    tried once more.  NOTE: no kswapd thread, no compaction and no OOM
    killer: where Linux would kill a process for an order <= 3 request,
    the model fails and the caller sees NULL.
    """
    alloc_flags = gfp_to_alloc_flags(gfp, order)
    pfn = get_page_from_freelist(m, gfp, order, alloc_flags, highest_zoneidx, migratetype)
    if pfn is None and gfp & __GFP_DIRECT_RECLAIM and getattr(m, "direct_reclaim", None):
        if m.direct_reclaim(m, gfp, order):          # __alloc_pages_direct_reclaim
            pfn = get_page_from_freelist(m, gfp, order, alloc_flags, highest_zoneidx, migratetype)
    if pfn is None:
        note(m, "alloc_pages: out of memory for order %d (%s)", order, gfp_name(gfp))
    return pfn


def check_gfp(gfp):
    gfp = require_int("gfp", gfp, 0)
    if gfp & ~__GFP_BITS_MASK:
        raise ValueError(f"gfp: {gfp:#x} has bits no GFP flag uses")
    return gfp


@traced(fmt={"gfp": gfp_name})
def alloc_pages(m, order, gfp):
    """alloc_pages: 2**order physically contiguous frames, or None.

    Returns the first pfn.  The head frame gets refcount 1; with __GFP_COMP
    the block is a compound page (PG_head).  Fails (None) when no zone the
    flags allow has a free block of that order above its watermark.
    """
    if type(order) is not int or not 0 <= order <= MAX_PAGE_ORDER:
        order = require_int("order", order, 0, MAX_PAGE_ORDER)
    if type(gfp) is not int or gfp & ~__GFP_BITS_MASK or gfp < 0:
        gfp = check_gfp(gfp)
    highest = gfp_zone(gfp)
    mt = gfp_migratetype(gfp)
    alloc_flags = ALLOC_WMARK_LOW | (gfp & __GFP_KSWAPD_RECLAIM)
    zones = zonelist(m, highest)
    if zones:
        alloc_flags |= alloc_flags_nofragment(zones[0])
    pfn = get_page_from_freelist(m, gfp, order, alloc_flags, highest, mt)
    if pfn is None:
        pfn = alloc_pages_slowpath(m, gfp, order, highest, mt)
        if pfn is None:
            return None
    prep_new_page(m, pfn, order, gfp)
    return pfn


def prep_new_page(m, pfn, order, gfp):
    """prep_new_page / post_alloc_hook: mark the frames in use, refcount 1 on the head."""
    mm = m.mem_map
    set_frame_state(mm, pfn, order, FRAME_ALLOCATED)
    mm.refcount_[pfn] = 1
    # The allocation order is kept so free_pages can catch a wrong order, as
    # page_owner would; Linux itself only records it for compound pages.
    mm.order_[pfn] = order
    if gfp & __GFP_COMP and order:
        mm.flags_[pfn] |= PG_head
    # __GFP_ZERO costs nothing here: a frame holds no bytes in the model until
    # a process stores some (mm/memory.py), and they are dropped when it is freed.


def set_frame_state(mm, pfn, order, state):
    if order:
        mm.state[pfn:pfn + (1 << order)] = state
    else:
        mm.state_[pfn] = state


def split_page(m, pfn, order):
    """split_page: make a non-compound block of 2**order frames into that many order-0 pages.

    Each frame gets its own reference, so each can be freed on its own.
    """
    mm = m.mem_map
    if mm.flags_[pfn] & PG_head:
        raise KernelBug(f"split_page: pfn {pfn:#x} is a compound page")
    mm.refcount[pfn:pfn + (1 << order)] = 1
    mm.order[pfn:pfn + (1 << order)] = 0


@traced(fmt={"gfp": gfp_name}, result=lambda pages: f"{len(pages)} pages")
def alloc_pages_bulk(m, gfp, nr_pages):
    """alloc_pages_bulk: up to nr_pages order-0 pages in one go; a list of pfns.

    Finds the first zone that stays above its low watermark even after
    nr_pages more, then takes pages from this CPU's list (refilled in
    batches) until it has enough or the list cannot be refilled.  When no
    zone qualifies, or not even one page comes from the list, it falls back
    to one ordinary alloc_pages.  Fewer pages than asked is not a failure:
    the caller asks again or gives up.
    NOTE: with pcp=False there are no per-CPU lists, and mmlab takes the
    pages one by one from alloc_pages instead.
    """
    nr_pages = require_int("nr_pages", nr_pages, 0)
    gfp = check_gfp(gfp)
    if not nr_pages:
        return []
    if not m.pcp_enabled:
        pages = []
        while len(pages) < nr_pages:
            pfn = alloc_pages(m, 0, gfp)
            if pfn is None:
                break
            pages.append(pfn)
        return pages
    highest, mt = gfp_zone(gfp), gfp_migratetype(gfp)
    alloc_flags = ALLOC_WMARK_LOW
    pages = []
    if nr_pages > 1:
        for zone in zonelist(m, highest):
            if zone_watermark_fast(zone, 0, zone.wmark(WMARK_LOW) + nr_pages, highest, alloc_flags):
                break
        else:
            zone = None
        if zone is not None:
            pages = take_pcp_pages(zone, zone.per_cpu_pageset[m.current_cpu], mt, alloc_flags,
                                   nr_pages)
    if not pages:
        pfn = alloc_pages(m, 0, gfp)
        if pfn is not None:
            pages.append(pfn)
    return pages


def bad_page(m, pfn, reason):
    """bad_page: Linux prints 'BUG: Bad page state' and taints; the model refuses."""
    raise KernelBug(f"BUG: Bad page state: pfn {pfn:#x}: {reason}")


def free_pages_prepare(m, pfn, order):
    """free_pages_prepare's checks: only a frame allocated whole, at this order, may be freed."""
    mm = m.mem_map
    if pfn >= mm.max_pfn:
        raise KernelBug(f"free_pages: pfn {pfn:#x} is beyond max_pfn {mm.max_pfn:#x}")
    state = mm.state_[pfn]
    if state in (FRAME_FREE, FRAME_PCP):
        bad_page(m, pfn, "already free (double free)")
    if state != FRAME_ALLOCATED:
        bad_page(m, pfn, f"not an allocated frame ({FRAME_STATE_NAMES[state]})")
    if pfn & ((1 << order) - 1):
        raise KernelBug(f"free_pages: pfn {pfn:#x} is not aligned to order {order}")
    if mm.refcount_[pfn] == 0:
        bad_page(m, pfn, "refcount 0: a tail of a larger allocation, or freed already")
    if mm.order_[pfn] != order:
        bad_page(m, pfn, f"allocated with order {mm.order_[pfn]}, freed with order {order}")
    if mm.page_type_[pfn] not in (PGTY_NONE,):
        bad_page(m, pfn, f"still in use as {PAGE_TYPE_NAMES[mm.page_type_[pfn]]}")
    if mm.mapcount_[pfn]:
        bad_page(m, pfn, f"still mapped (mapcount {mm.mapcount_[pfn]})")


@traced
def free_pages(m, pfn, order):
    """__free_pages: drop the reference an allocation holds and give the block back.

    pfn and order must be exactly what alloc_pages returned and was given.
    A double free or a foreign pfn raises KernelBug and changes nothing.
    """
    if type(pfn) is not int or pfn < 0:
        pfn = require_int("pfn", pfn, 0)
    if type(order) is not int or not 0 <= order <= MAX_PAGE_ORDER:
        order = require_int("order", order, 0, MAX_PAGE_ORDER)
    free_pages_prepare(m, pfn, order)
    mm = m.mem_map
    mm.refcount_[pfn] -= 1
    if mm.refcount_[pfn]:
        return          # someone else still holds the page (get_page)
    free_frozen_pages(m, pfn, order)


@traced(result=lambda n: f"{n} pages")
def free_page_array(m, pfns):
    """__free_page on each of an array of order-0 pages, as vfree's loop does; returns how many.

    The same checks and path as free_pages(pfn, 0) for each page, in one
    call.  A bad page stops the loop with KernelBug before anything is
    freed, so a failed call changes nothing.
    """
    mm = m.mem_map
    for pfn in pfns:
        free_pages_prepare(m, pfn, 0)
    if len(set(pfns)) != len(pfns):
        raise KernelBug("free_page_array: a page appears twice in the array (double free)")
    refcount = mm.refcount_
    for pfn in pfns:
        refcount[pfn] -= 1
        if not refcount[pfn]:
            free_frozen_pages(m, pfn, 0)
    return len(pfns)


def free_frozen_pages(m, pfn, order):
    """free_frozen_pages: the frames go back to the buddy allocator (refcount is 0)."""
    mm = m.mem_map
    mm.flags_[pfn] &= ~PG_head
    mm.order_[pfn] = 0
    zone = m.zones[mm.zone_[pfn]]
    if m.pcp_enabled and (order <= PAGE_ALLOC_COSTLY_ORDER or order == HPAGE_PMD_ORDER):
        mt = m.pageblock_mt_[pfn >> PAGEBLOCK_ORDER]
        if mt != MIGRATE_ISOLATE:
            # High-atomic pages wait on the movable list; isolated ones skip the lists.
            if order:
                mm.state[pfn:pfn + (1 << order)] = FRAME_PCP
            else:
                mm.state_[pfn] = FRAME_PCP
            free_frozen_page_commit(zone, pfn, order, MIGRATE_MOVABLE if mt >= MIGRATE_PCPTYPES else mt)
            return
    set_frame_state(mm, pfn, order, FRAME_FREE)
    free_one_page(zone, pfn, order, FPI_NONE)


def free_one_page(zone, pfn, order, fpi_flags):
    """free_one_page / split_large_buddy: free a block pageblock by pageblock.

    A block larger than a pageblock may span pageblocks of different types,
    so each pageblock-sized piece is freed with its own type and may then
    merge back.
    """
    m = zone.machine
    if order <= PAGEBLOCK_ORDER:
        free_one_block(zone, pfn, order, get_pageblock_migratetype(m, pfn), fpi_flags)
        return
    for p in range(pfn, pfn + (1 << order), PAGEBLOCK_NR_PAGES):
        free_one_block(zone, p, PAGEBLOCK_ORDER, get_pageblock_migratetype(m, p), fpi_flags)


def migratetype_is_mergeable(mt):
    return mt < MIGRATE_PCPTYPES


@traced(fmt={"migratetype": lambda mt: MIGRATETYPE_NAMES[mt]}, name="__free_one_page")
def free_one_block(zone, pfn, order, migratetype, fpi_flags):
    """__free_one_page: merge a freed block with its free buddies, then list it.

    The buddy of the block at pfn of order n is at pfn ^ (1 << n): the other
    half of the block of order n+1 that contains both.  While that buddy is a
    free block of the same order (page_is_buddy), unlink it and go up one
    order with the combined block, whose pfn is the lower of the two.  Above
    pageblock size, blocks of unmergeable types (HighAtomic, Isolate) stay
    apart.  The merged block goes to the tail of its list when its own buddy
    one order up is free, since it is then likely to merge soon and should
    not be handed out first (buddy_merge_likely).
    """
    m = zone.machine
    mm = m.mem_map
    page_type, order_of, zone_of, state = mm.page_type_, mm.order_, mm.zone_, mm.state_
    areas = zone.free_area
    tracing = _trace._active is not None
    account_freepages(zone, 1 << order, migratetype)
    buddy_pfn = pfn ^ (1 << order)
    while order < MAX_PAGE_ORDER:
        buddy_pfn = pfn ^ (1 << order)
        # NOTE: page_is_buddy(m, zone, buddy_pfn, order), inlined for speed.
        if not (buddy_pfn < mm.max_pfn and page_type[buddy_pfn] == PGTY_BUDDY
                and order_of[buddy_pfn] == order and zone_of[buddy_pfn] == zone.idx
                and state[buddy_pfn] == FRAME_FREE):
            break
        buddy_mt = migratetype
        if order >= PAGEBLOCK_ORDER:
            buddy_mt = get_pageblock_migratetype(m, buddy_pfn)
            if buddy_mt != migratetype and not (migratetype_is_mergeable(migratetype)
                                                and migratetype_is_mergeable(buddy_mt)):
                break
        # NOTE: del_page_from_free_list(zone, buddy_pfn, order, buddy_mt), inlined.
        area = areas[order]
        fl = area.free_list[buddy_mt]
        before = fl.prev.pop(buddy_pfn)
        after = fl.next.pop(buddy_pfn)
        fl.next[before] = after
        fl.prev[after] = before
        fl.count -= 1
        area.nr_free -= 1
        page_type[buddy_pfn] = PGTY_NONE
        order_of[buddy_pfn] = 0
        if buddy_mt != migratetype:
            # The buddy's pageblock takes our type, so a later expand() puts
            # its pieces on the lists that match their pageblock.
            change_pageblock_range(m, buddy_pfn, order, migratetype)
        if tracing:
            note(zone, "merge: order %d at %#x with buddy %#x", order, pfn, buddy_pfn)
        pfn &= buddy_pfn
        order += 1
    if fpi_flags & FPI_TO_TAIL:
        to_tail = True
    else:
        to_tail = buddy_merge_likely(m, zone, pfn, buddy_pfn, order)
    add_to_free_list(zone, pfn, order, migratetype, to_tail)
    note(zone, "free: order-%d block at %#x to the %s of the %s list", order, pfn,
         "tail" if to_tail else "head", MIGRATETYPE_NAMES[migratetype])


def buddy_merge_likely(m, zone, pfn, buddy_pfn, order):
    """buddy_merge_likely: is the block one order up already half free?"""
    if order >= MAX_PAGE_ORDER - 1:
        return False
    higher = buddy_pfn & pfn
    return page_is_buddy(m, zone, higher ^ (1 << (order + 1)), order + 1)


# -- per-CPU page lists -----------------------------------------------------
#
# Taking the zone lock for every page is too slow for a kernel, so each CPU
# keeps a small cache of free pages per zone (struct per_cpu_pages).  Small
# allocations come from it, refilled a batch at a time from the buddy lists
# (rmqueue_bulk), and small frees go to it, emptied a batch at a time when it
# grows past `high` (free_pcppages_bulk).  Pages on these lists are free but
# not in buddyinfo, and do not merge until they go back.
#
# NOTE: Linux also shrinks `high` every second from vmstat work
# (decay_pcp_high) and drains idle lists; mmlab has no clock here, so lists
# change only on allocation and free.  CONFIG_PCP_BATCH_SCALE_MAX is 5.

PCP_BATCH_SCALE_MAX = 5
NR_LOWORDER_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)
NR_PCP_LISTS = NR_LOWORDER_PCP_LISTS + 2            # + THP lists (unmovable, movable)
HPAGE_PMD_ORDER = 9
PCPF_PREV_FREE_HIGH_ORDER = 1 << 0
PCPF_FREE_HIGH_BATCH = 1 << 1
MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8


def take_pcp_pages(zone, pcp, mt, alloc_flags, nr_pages):
    """__rmqueue_pcplist nr_pages times for order 0: the pages, prepared as prep_new_page does.

    The CPU's list is refilled by rmqueue_bulk whenever it runs empty, as
    each call would; the pages are popped and marked in use in bulk.
    """
    pcp_list = pcp.lists[order_to_pindex(mt, 0)]
    pages = []
    while len(pages) < nr_pages:
        if not pcp_list:
            moved = rmqueue_bulk(zone, 0, nr_pcp_alloc(pcp, zone, 0), mt, alloc_flags, pcp_list)
            pcp.count += moved
            if not pcp_list:
                break
        k = min(len(pcp_list), nr_pages - len(pages))
        pop = pcp_list.popleft
        pages.extend([pop() for _ in range(k)])
        pcp.count -= k
    if pages:
        mm = zone.machine.mem_map
        arr = np.fromiter(pages, dtype=np.int64, count=len(pages))
        mm.state[arr] = FRAME_ALLOCATED
        mm.refcount[arr] = 1
        mm.order[arr] = 0
    return pages


class PerCpuPages:
    """struct per_cpu_pages: one CPU's cache of free pages for one zone."""

    __slots__ = ("count", "high", "high_min", "high_max", "batch", "free_count", "alloc_factor",
                 "flags", "lists")

    def __init__(self):
        self.count = 0                  # pages on the lists
        self.high = 0                   # boot pageset: nothing is cached until set up
        self.high_min = self.high_max = 0
        self.batch = 1
        self.free_count = 0             # pages freed since the last allocation, roughly
        self.alloc_factor = 0
        self.flags = 0
        self.lists = [deque() for _ in range(NR_PCP_LISTS)]


def pcp_allowed_order(order):
    """pcp_allowed_order: orders 0-3, and the THP order, are cached per CPU."""
    return order <= PAGE_ALLOC_COSTLY_ORDER or order == HPAGE_PMD_ORDER


def order_to_pindex(mt, order):
    """order_to_pindex: which of a CPU's lists holds blocks of this type and order."""
    if order > PAGE_ALLOC_COSTLY_ORDER:
        return NR_LOWORDER_PCP_LISTS + (mt == MIGRATE_MOVABLE)
    return MIGRATE_PCPTYPES * order + mt


def pindex_to_order(pindex):
    return HPAGE_PMD_ORDER if pindex >= NR_LOWORDER_PCP_LISTS else pindex // MIGRATE_PCPTYPES


def zone_batchsize(zone):
    """zone_batchsize: about a quarter of a thousandth of the zone, at most 1 MiB, then 2**n - 1."""
    batch = min(zone.managed_pages >> 10, (1 << 20) // PAGE_SIZE) // 4
    batch = max(batch, 1)
    batch = batch + batch // 2
    return (1 << (batch.bit_length() - 1)) - 1


def zone_highsize(zone, batch, high_fraction, cpus):
    """zone_highsize: the low watermark (or managed/fraction) shared among the CPUs, at least 4 batches."""
    total = zone.managed_pages // high_fraction if high_fraction else zone.wmark(WMARK_LOW)
    return max(total // cpus, batch << 2)


def setup_per_cpu_pagesets(m):
    """setup_per_cpu_pageset / zone_set_pageset_high_and_batch for every zone and CPU."""
    for zone in m.zones:
        if not zone.per_cpu_pageset:
            zone.per_cpu_pageset = [PerCpuPages() for _ in range(m.cpus)]
        batch = max(1, zone_batchsize(zone))
        high_min = zone_highsize(zone, batch, 0, m.cpus)
        high_max = zone_highsize(zone, batch, MIN_PERCPU_PAGELIST_HIGH_FRACTION, m.cpus)
        for pcp in zone.per_cpu_pageset:
            pcp.batch, pcp.high_min, pcp.high_max = batch, high_min, high_max


def nr_pcp_alloc(pcp, zone, order):
    """nr_pcp_alloc: how many blocks to move from the buddy lists when this CPU's list is empty.

    Each refill without a free in between doubles the order-0 batch, up to
    2**PCP_BATCH_SCALE_MAX batches, and `high` grows towards high_max while
    the zone has plenty of free memory.
    """
    base = pcp.batch
    high = pcp.high = min(max(pcp.high, pcp.high_min), pcp.high_max)
    if high < base:
        return 1
    batch = base if order else base << pcp.alloc_factor
    if pcp.high_min != pcp.high_max and not zone.below_high:
        high = pcp.high = min(high + batch, pcp.high_max)
    if not order:
        max_nr_alloc = max(high - pcp.count - base, base)
        if batch <= max_nr_alloc and pcp.alloc_factor < PCP_BATCH_SCALE_MAX:
            pcp.alloc_factor += 1
        batch = min(batch, max_nr_alloc)
    if batch > 1:
        batch = max(batch >> order, 2)
    return batch


@traced(fmt={"migratetype": lambda mt: MIGRATETYPE_NAMES[mt], "alloc_flags": alloc_flags_name,
             "pcp_list": lambda pcp_list: f"<{len(pcp_list)} cached>"})
def rmqueue_bulk(zone, order, count, migratetype, alloc_flags, pcp_list):
    """rmqueue_bulk: move up to `count` blocks from the buddy lists to the tail of a CPU's list.

    Blocks come in physical order, since expand() keeps lower halves, so the
    CPU's list reads in ascending address order.  Returns how many moved.
    """
    mm = zone.machine.mem_map
    moved = 0
    fast = order == 0 and _trace._active is None
    while moved < count:
        if fast:
            got = rmqueue_smallest_run(zone, count - moved, migratetype, pcp_list)
            if got:
                moved += got
                continue
        pfn = rmqueue_fallback(zone, order, migratetype, alloc_flags)
        if pfn is None:
            break
        set_frame_state(mm, pfn, order, FRAME_PCP)
        pcp_list.append(pfn)
        moved += 1
    return moved


def rmqueue_smallest_run(zone, want, migratetype, out):
    """Up to `want` order-0 pages by repeated __rmqueue_smallest, in one step; how many were taken.

    NOTE: a shortcut of mmlab's, leaving the free lists exactly as that
    sequence of calls would.  When the smallest non-empty list of this type
    has order o, every list below it is empty, so splitting its first block
    hands out the block's pages in ascending order (expand keeps lower
    halves, and each upper half is then the only block on its list), and
    stopping after k pages leaves the rest as the aligned blocks of
    [start+k, start+2**o), one per order, which is what k calls leave.
    Pages go to the tail of `out` marked as on a CPU list.  Returns 0 when
    this type has no free block at all (the caller falls back).  Tracing
    takes the call-by-call path instead, so traces show every call.
    """
    mm = zone.machine.mem_map
    areas = zone.free_area
    for o in range(NR_PAGE_ORDERS):
        if areas[o].nr_free and areas[o].free_list[migratetype].count:
            break
    else:
        return 0
    area = areas[o]
    fl = area.free_list[migratetype]
    if o == 0:
        k = min(want, fl.count)
        page_type, state = mm.page_type_, mm.state_
        for _ in range(k):
            pfn = fl.next[HEAD]
            fl.remove(pfn)
            page_type[pfn] = PGTY_NONE
            state[pfn] = FRAME_PCP
            out.append(pfn)
        area.nr_free -= k
        account_freepages(zone, -k, migratetype)
        return k
    start = fl.next[HEAD]
    size = 1 << o
    k = min(want, size)
    del_page_from_free_list(zone, start, o, migratetype)
    pos = k
    for j in range(o):
        if pos & (1 << j):
            add_to_free_list(zone, start + pos, j, migratetype)
            pos += 1 << j
    account_freepages(zone, -k, migratetype)
    mm.state[start:start + k] = FRAME_PCP
    out.extend(range(start, start + k))
    return k


@traced(fmt={"migratetype": lambda mt: MIGRATETYPE_NAMES[mt], "alloc_flags": alloc_flags_name})
def rmqueue_pcplist(zone, order, migratetype, alloc_flags):
    """rmqueue_pcplist: the first block on this CPU's list, refilling it from the buddy lists if empty.

    An allocation halves free_count, so the next spill of freed pages is smaller.
    """
    pcp = zone.per_cpu_pageset[zone.machine.current_cpu]
    pcp.free_count >>= 1
    return rmqueue_pcplist_locked(zone, pcp, order, migratetype, alloc_flags)


def rmqueue_pcplist_locked(zone, pcp, order, migratetype, alloc_flags):
    """__rmqueue_pcplist: pop this CPU's list for (order, type), refilling an empty one by rmqueue_bulk."""
    pcp_list = pcp.lists[order_to_pindex(migratetype, order)]
    if not pcp_list:
        batch = nr_pcp_alloc(pcp, zone, order)
        moved = rmqueue_bulk(zone, order, batch, migratetype, alloc_flags, pcp_list)
        pcp.count += moved << order
        if not pcp_list:
            return None
    pcp.count -= 1 << order
    return pcp_list.popleft()


def nr_pcp_high(pcp, zone, batch, free_high):
    """nr_pcp_high: the count above which a free empties part of the list; adapts `high`."""
    high = pcp.high = min(max(pcp.high, pcp.high_min), pcp.high_max)
    if not high:
        return 0
    if free_high:
        pcp.high = max(high - (batch << PCP_BATCH_SCALE_MAX), pcp.high_min)
        return 0
    if batch <= pcp.free_count:
        return high
    if zone.below_high:
        pcp.high = max(high - pcp.free_count, pcp.high_min)
        high = max(pcp.count, pcp.high_min)
    elif pcp.count >= high:
        need_high = pcp.free_count + batch
        if pcp.high < need_high:
            pcp.high = min(max(need_high, pcp.high_min), pcp.high_max)
    return high


def nr_pcp_free(pcp, batch, high, free_high):
    """nr_pcp_free: how many pages to give back; doubles while frees come without allocations."""
    if free_high:
        return min(pcp.count, batch << PCP_BATCH_SCALE_MAX)
    return min(max(pcp.free_count, batch), high - batch)


def free_frozen_page_commit(zone, pfn, order, migratetype):
    """free_frozen_page_commit: put a freed block on this CPU's list; spill a batch when too many."""
    pcp = zone.per_cpu_pageset[zone.machine.current_cpu]
    pcp.alloc_factor >>= 1
    pindex = (MIGRATE_PCPTYPES * order + migratetype if order <= PAGE_ALLOC_COSTLY_ORDER
              else order_to_pindex(migratetype, order))
    pcp.lists[pindex].appendleft(pfn)
    pcp.count += 1 << order
    batch = pcp.batch
    free_high = False
    if order and order <= PAGE_ALLOC_COSTLY_ORDER:
        # Many high-order frees in a row without allocation: empty the lists
        # harder, since cached high-order pages fragment memory.
        free_high = (pcp.free_count >= batch + pcp.high_min // 2
                     and pcp.flags & PCPF_PREV_FREE_HIGH_ORDER
                     and (not pcp.flags & PCPF_FREE_HIGH_BATCH or pcp.count >= batch))
        pcp.flags |= PCPF_PREV_FREE_HIGH_ORDER
    else:
        pcp.flags &= ~PCPF_PREV_FREE_HIGH_ORDER
    if pcp.free_count < batch << PCP_BATCH_SCALE_MAX:
        pcp.free_count += 1 << order
    high = nr_pcp_high(pcp, zone, batch, free_high)
    if pcp.count >= high:
        free_pcppages_bulk(zone, nr_pcp_free(pcp, batch, high, free_high), pcp, pindex)
        if zone.below_high and zone_watermark_ok(zone, 0, zone.wmark(WMARK_HIGH), ZONE_MOVABLE, 0):
            zone.below_high = False


@traced(fmt={"pcp": lambda pcp: f"<{pcp.count} cached>"})
def free_pcppages_bulk(zone, count, pcp, pindex):
    """free_pcppages_bulk: give `count` pages back to the buddy lists, oldest first.

    Starts with the list just freed to and takes the others in turn, from
    each list's tail (the pages cached longest).
    """
    m = zone.machine
    mm = m.mem_map
    pindex -= 1
    while count > 0 and pcp.count > 0:
        while True:
            pindex = 0 if pindex + 1 > NR_PCP_LISTS - 1 else pindex + 1
            if pcp.lists[pindex]:
                break
        pcp_list = pcp.lists[pindex]
        order = pindex_to_order(pindex)
        while True:
            pfn = pcp_list.pop()
            count -= 1 << order
            pcp.count -= 1 << order
            set_frame_state(mm, pfn, order, FRAME_FREE)
            free_one_block(zone, pfn, order, get_pageblock_migratetype(m, pfn), FPI_NONE)
            if count <= 0 or not pcp_list:
                break


def drain_pages_zone(zone, cpu):
    """drain_pages_zone: give back everything one CPU caches for a zone."""
    pcp = zone.per_cpu_pageset[cpu]
    if pcp.count:
        free_pcppages_bulk(zone, pcp.count, pcp, 0)


@traced
def drain_all_pages(m):
    """drain_all_pages: empty every CPU's lists (before reclaim gives up, or on request)."""
    for zone in m.zones:
        for cpu in range(len(zone.per_cpu_pageset)):
            drain_pages_zone(zone, cpu)


def reserve_highatomic_pageblock(zone, pfn, order):
    """reserve_highatomic_pageblock: set a pageblock aside for later high-order atomic allocations.

    A successful high-order GFP_ATOMIC allocation in the slow path reserves
    its pageblock, up to about 1% of the zone, so the next one finds room.
    """
    m = zone.machine
    if zone.managed_pages // 100 < PAGEBLOCK_NR_PAGES:
        return
    limit = -(-(zone.managed_pages // 100) // PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES
    if zone.nr_reserved_highatomic >= limit:
        return
    mt = get_pageblock_migratetype(m, pfn)
    if not migratetype_is_mergeable(mt):
        return
    if order < PAGEBLOCK_ORDER:
        start = pfn & ~(PAGEBLOCK_NR_PAGES - 1)
        if not (zone.spans(start) and zone.spans(start + PAGEBLOCK_NR_PAGES - 1)):
            return
        move_freepages_block(zone, start, mt, MIGRATE_HIGHATOMIC)
        zone.nr_reserved_highatomic += PAGEBLOCK_NR_PAGES
    else:
        change_pageblock_range(m, pfn, order, MIGRATE_HIGHATOMIC)
        zone.nr_reserved_highatomic += 1 << order
    note(zone, "reserve_highatomic_pageblock: pageblock at %#x now HighAtomic", pfn)


# -- boot -------------------------------------------------------------------

def free_pages_memory(m, start, end):
    """__free_pages_memory: give the range [start, end) of frames to the buddy allocator.

    Frees the largest naturally aligned blocks that fit, in ascending order,
    each to the tail of its list, as memblock_free_all does at boot.
    """
    mm = m.mem_map
    mm.state[start:end] = FRAME_FREE
    while start < end:
        order = min(MAX_PAGE_ORDER, (start & -start).bit_length() - 1 if start else MAX_PAGE_ORDER)
        while start + (1 << order) > end:
            order -= 1
        zone = m.zones[mm.zone_[start]]
        zone.managed_pages += 1 << order
        free_one_page(zone, start, order, FPI_TO_TAIL)
        start += 1 << order


# -- watermarks and reserves, computed as at boot ---------------------------

def nr_free_buffer_pages(m):
    """nr_free_buffer_pages: managed pages above the high watermark in zones up to Normal."""
    return sum(max(0, z.managed_pages - z.watermark[WMARK_HIGH]) for z in m.zones[:ZONE_NORMAL + 1])


def calculate_min_free_kbytes(m):
    """calculate_min_free_kbytes: sqrt(lowmem_kbytes * 16), clamped to [128, 262144]."""
    lowmem_kbytes = nr_free_buffer_pages(m) * (PAGE_SIZE >> 10)
    return min(max(math.isqrt(lowmem_kbytes * 16), 128), 262144)




def recommended_min_free_kbytes(m):
    """set_recommended_min_free_kbytes (mm/khugepaged.c): what THP asks for.

    Two free pageblocks per zone for fragmentation avoidance, plus room for
    each of the three mobile types to fall back to each other, capped at 5%
    of low memory.  Runs when transparent huge pages are 'always' or 'madvise'.
    """
    nr_zones = sum(1 for z in m.zones[:ZONE_NORMAL + 1] if z.populated())
    recommended = PAGEBLOCK_NR_PAGES * nr_zones * 2
    recommended += PAGEBLOCK_NR_PAGES * nr_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES
    recommended = min(recommended, nr_free_buffer_pages(m) // 20)
    return recommended << (PAGE_SHIFT - 10)


def setup_per_zone_wmarks(m):
    """__setup_per_zone_wmarks: spread min_free_kbytes over the zones by size.

    min is the zone's share of min_free_kbytes; low, high and promo each add
    the larger of min/4 and watermark_scale_factor/10000 of the zone.
    """
    pages_min = m.min_free_kbytes >> (PAGE_SHIFT - 10)
    lowmem_pages = sum(z.managed_pages for z in m.zones if z.idx != ZONE_MOVABLE)
    for z in m.zones:
        share = pages_min * z.managed_pages // lowmem_pages if lowmem_pages else 0
        if z.idx == ZONE_MOVABLE:
            # Movable memory is never needed for an atomic allocation, so its
            # min is small and fixed: managed/1024 clamped to [32, 128].
            wmin = min(max(z.managed_pages // 1024, 32), 128)
        else:
            wmin = share
        step = max(share >> 2, z.managed_pages * m.watermark_scale_factor // 10000)
        z.watermark = [wmin, wmin + step, wmin + 2 * step, wmin + 3 * step]
        z.watermark_boost = 0
    calculate_totalreserve_pages(m)
    setup_per_cpu_pagesets(m)           # zone_pcp_update: high follows the low watermark


def setup_per_zone_lowmem_reserve(m):
    """setup_per_zone_lowmem_reserve: pages a lower zone keeps from allocations that could go higher.

    lowmem_reserve[j] of zone i is the managed pages of zones i+1..j divided
    by lowmem_reserve_ratio[i]; 0 where j <= i, the ratio is 0 or zone i is empty.
    """
    for i, z in enumerate(m.zones):
        ratio = m.lowmem_reserve_ratio[i]
        clear = not ratio or not z.managed_pages
        managed = 0
        for j in range(MAX_NR_ZONES):
            if j <= i:
                z.lowmem_reserve[j] = 0
                continue
            managed += m.zones[j].managed_pages
            z.lowmem_reserve[j] = 0 if clear else managed // ratio
    calculate_totalreserve_pages(m)


def calculate_totalreserve_pages(m):
    """calculate_totalreserve_pages: what MemAvailable must not count on (high wmark + max reserve)."""
    total = 0
    for z in m.zones:
        if not z.managed_pages:
            continue
        reserve = max(z.lowmem_reserve) + z.watermark[WMARK_HIGH]
        total += min(reserve, z.managed_pages)
    m.totalreserve_pages = total


def init_per_zone_wmark_min(m):
    """init_per_zone_wmark_min, then khugepaged's set_recommended_min_free_kbytes, as boot runs them.

    The second step always runs (start_stop_khugepaged): with THP on it may
    raise min_free_kbytes; with THP off it computes it again, now that the
    high watermarks exist and nr_free_buffer_pages is smaller.
    """
    m.min_free_kbytes = calculate_min_free_kbytes(m)
    setup_per_zone_wmarks(m)
    setup_per_zone_lowmem_reserve(m)
    if m.thp_enabled in ("always", "madvise"):
        m.min_free_kbytes = max(m.min_free_kbytes, recommended_min_free_kbytes(m))
    else:
        m.min_free_kbytes = calculate_min_free_kbytes(m)
    setup_per_zone_wmarks(m)


# -- invariants -------------------------------------------------------------

def free_blocks(zone):
    """Every free block of a zone as arrays (pfn, order, migratetype), in list order."""
    pfns, orders, mts = [], [], []
    for order, area in enumerate(zone.free_area):
        for mt, fl in enumerate(area.free_list):
            block = list(fl)
            pfns.extend(block)
            orders.extend([order] * len(block))
            mts.extend([mt] * len(block))
    return (np.array(pfns, dtype=np.int64), np.array(orders, dtype=np.int64),
            np.array(mts, dtype=np.int64))


def check(m):
    """Invariants of physical memory; raises InvariantError naming the broken one.

    - frames: every frame is a hole, reserved, free or allocated, and only
      present frames are anything but a hole;
    - free lists: each block on a list is aligned, inside its zone, marked
      buddy with its order, all its frames free, on the list of its
      pageblock's migrate type; together the lists cover exactly the free frames;
    - merged: no free block has a free buddy of the same order it could have
      merged with;
    - counters: nr_free per order, NR_FREE_PAGES and managed pages match the frames;
    - allocated: each allocation's head has a reference and no frame is both.
    """
    from ..errors import InvariantError

    def fail(name, text):
        raise InvariantError(f"{name}: {text}")

    mm = m.mem_map
    state = mm.state
    if state.max(initial=0) > FRAME_PCP:
        fail("frames", f"unknown frame state at pfn {int(np.argmax(state > FRAME_PCP)):#x}")
    covered = np.zeros(mm.max_pfn, dtype=np.int8)
    for zone in m.zones:
        pfns, orders, mts = free_blocks(zone)
        for order, area in enumerate(zone.free_area):
            listed = sum(fl.count for fl in area.free_list)
            walked = int(np.count_nonzero(orders == order))
            if area.nr_free != listed or listed != walked:
                fail("counters", f"{zone.name} order {order}: nr_free {area.nr_free}, "
                     f"list counts {listed}, walked {walked}")
        if not len(pfns):
            if zone.nr_free_pages:
                fail("counters", f"{zone.name}: NR_FREE_PAGES {zone.nr_free_pages} with empty lists")
            continue
        sizes = np.left_shift(1, orders)
        if np.any(pfns & (sizes - 1)):
            i = int(np.argmax(pfns & (sizes - 1)))
            fail("free lists", f"{zone.name}: block {pfns[i]:#x} not aligned to order {orders[i]}")
        if np.any(pfns < zone.zone_start_pfn) or np.any(pfns + sizes > zone.zone_end_pfn):
            fail("free lists", f"{zone.name}: a free block lies outside the zone")
        if np.any(mm.page_type[pfns] != PGTY_BUDDY) or np.any(mm.order[pfns] != orders):
            i = int(np.argmax((mm.page_type[pfns] != PGTY_BUDDY) | (mm.order[pfns] != orders)))
            fail("free lists", f"{zone.name}: block {pfns[i]:#x} on the order-{orders[i]} list "
                 f"is not marked buddy of that order")
        block_mt = m.pageblock_mt[pfns >> PAGEBLOCK_ORDER]
        if np.any(block_mt != mts):
            i = int(np.argmax(block_mt != mts))
            fail("free lists", f"{zone.name}: block {pfns[i]:#x} is on the {MIGRATETYPE_NAMES[mts[i]]} "
                 f"list but its pageblock is {MIGRATETYPE_NAMES[block_mt[i]]}")
        # Mark coverage: a difference array turns each [pfn, pfn+size) into +1 ... -1.
        delta = np.zeros(mm.max_pfn + 1, dtype=np.int64)
        np.add.at(delta, pfns, 1)
        np.add.at(delta, pfns + sizes, -1)
        cover = np.cumsum(delta[:-1])
        if cover.max() > 1 or np.any(covered[cover > 0]):
            fail("free lists", f"{zone.name}: free blocks overlap")
        covered[cover > 0] = 1
        if int(sizes.sum()) != zone.nr_free_pages:
            fail("counters", f"{zone.name}: NR_FREE_PAGES {zone.nr_free_pages} but the lists "
                 f"hold {int(sizes.sum())} frames")
        highatomic = int(sizes[mts == MIGRATE_HIGHATOMIC].sum())
        if highatomic != zone.nr_free_highatomic:
            fail("counters", f"{zone.name}: nr_free_highatomic {zone.nr_free_highatomic} != {highatomic}")
        # Unmerged buddies: the buddy of a listed block, of the same order, also listed.
        heads = dict(zip(pfns.tolist(), orders.tolist()))
        for pfn, order in heads.items():
            if order >= MAX_PAGE_ORDER:
                continue
            buddy = pfn ^ (1 << order)
            if heads.get(buddy) == order and buddy > pfn:
                if order >= PAGEBLOCK_ORDER:
                    a, b = m.pageblock_mt[pfn >> PAGEBLOCK_ORDER], m.pageblock_mt[buddy >> PAGEBLOCK_ORDER]
                    if a != b and not (migratetype_is_mergeable(a) and migratetype_is_mergeable(b)):
                        continue
                fail("merged", f"{zone.name}: free buddies {pfn:#x} and {buddy:#x} of order {order} "
                     "were not merged")
    for zone in m.zones:
        for cpu, pcp in enumerate(zone.per_cpu_pageset):
            total = 0
            for pindex, pcp_list in enumerate(pcp.lists):
                order = pindex_to_order(pindex)
                for pfn in pcp_list:
                    n = 1 << order
                    if pfn & (n - 1) or not zone.spans(pfn):
                        fail("per-cpu lists", f"{zone.name} cpu {cpu}: bad block {pfn:#x} order {order}")
                    if np.any(state[pfn:pfn + n] != FRAME_PCP) or np.any(covered[pfn:pfn + n]):
                        fail("per-cpu lists", f"{zone.name} cpu {cpu}: block {pfn:#x} is not "
                             "a per-cpu free block, or is listed twice")
                    covered[pfn:pfn + n] = 2
                    total += n
            if total != pcp.count:
                fail("counters", f"{zone.name} cpu {cpu}: pcp count {pcp.count}, lists hold {total}")
    if np.any((state == FRAME_PCP) != (covered == 2)):
        i = int(np.argmax((state == FRAME_PCP) != (covered == 2)))
        fail("per-cpu lists", f"pfn {i:#x} is {FRAME_STATE_NAMES[state[i]]} but "
             f"{'is' if covered[i] == 2 else 'is not'} on a per-cpu list")
    free_frames = state == FRAME_FREE
    if np.any(free_frames != (covered == 1)):
        i = int(np.argmax(free_frames != (covered == 1)))
        fail("free lists", f"pfn {i:#x} is {FRAME_STATE_NAMES[state[i]]} but "
             f"{'is' if covered[i] == 1 else 'is not'} in a free block")
    stray = (mm.page_type == PGTY_BUDDY) & ~free_frames
    if np.any(stray):
        fail("frames", f"pfn {int(np.argmax(stray)):#x} is marked buddy but not free")
    for zone in m.zones:
        lo, hi = zone.zone_start_pfn, zone.zone_end_pfn
        if not zone.present_pages:
            continue
        zs = state[lo:hi]
        present = int(np.count_nonzero(zs != FRAME_HOLE))
        if present != zone.present_pages:
            fail("frames", f"{zone.name}: {present} present frames, present_pages {zone.present_pages}")
        usable = int(np.count_nonzero((zs == FRAME_FREE) | (zs == FRAME_ALLOCATED) | (zs == FRAME_PCP)))
        if usable != zone.managed_pages:
            fail("counters", f"{zone.name}: free+cached+allocated {usable} != managed {zone.managed_pages}")
    allocated = state == FRAME_ALLOCATED
    if np.any(mm.refcount[~allocated] != 0):
        i = int(np.argmax((mm.refcount != 0) & ~allocated))
        fail("allocated", f"pfn {i:#x} has refcount {mm.refcount[i]} but is {FRAME_STATE_NAMES[state[i]]}")
    if np.any(mm.mapcount[~allocated] != 0):
        fail("allocated", f"pfn {int(np.argmax((mm.mapcount != 0) & ~allocated)):#x} is mapped but not allocated")
