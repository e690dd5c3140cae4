"""Reading physical memory for pictures: frame classes, blocks, and downsampling.

Everything here reads the model's public state (m.mem_map arrays, m.zones,
m.pageblock_mt) and returns numpy arrays or plain tuples; nothing draws.
The figures in physmem.py and the text in text.py are built on it, and
tests count the same arrays the pictures show.

Glossary: a *cell* is one picture element standing for a run of
`per_cell` consecutive frames; a *block* is a buddy block, free (on a free
list) or allocated (the head that alloc_pages returned, with its order).
"""
from collections import namedtuple

import numpy as np

from ..errors import require_int
from ..mm import page_alloc as pa
from ..mm.page_alloc import (FRAME_HOLE, FRAME_RESERVED, FRAME_FREE, FRAME_ALLOCATED,
                             FRAME_STATE_NAMES, PGTY_BUDDY, MAX_PAGE_ORDER,
                             PAGEBLOCK_ORDER, PAGEBLOCK_NR_PAGES, MIGRATE_TYPES,
                             MIGRATETYPE_NAMES)

# Frame classes for the physical map: the frame states page_alloc defines
# (hole, reserved, free, allocated, and free on a per-CPU list), then
# "mixed" for a cell holding both free and allocated frames.
HOLE, RESERVED, FREE, ALLOCATED = FRAME_HOLE, FRAME_RESERVED, FRAME_FREE, FRAME_ALLOCATED
NSTATES = len(FRAME_STATE_NAMES)
MIXED = NSTATES
STATE_CLASSES = FRAME_STATE_NAMES + ["mixed"]

# Pageblock classes: the migrate types, then pageblocks with no RAM at all.
NO_RAM = MIGRATE_TYPES
PAGEBLOCK_CLASSES = MIGRATETYPE_NAMES + ["no RAM"]

Block = namedtuple("Block", "pfn order kind")     # kind: "free", "pcp" or "allocated"


def zone_of(m, zone):
    """The Zone named by `zone`: a Zone, its index, or its name ('DMA32')."""
    if hasattr(zone, "zone_start_pfn"):
        return zone
    if isinstance(zone, str):
        for z in m.zones:
            if z.name.lower() == zone.lower():
                return z
        raise ValueError(f"zone: no zone named {zone!r}; "
                         f"the zones are {', '.join(z.name for z in m.zones)}")
    if isinstance(zone, (int, np.integer)) and not isinstance(zone, bool) and 0 <= zone < len(m.zones):
        return m.zones[int(zone)]
    raise TypeError(f"zone must be a zone name, index or Zone, not {zone!r}")


def populated_zones(m):
    """The zones that have frames, lowest first (as /proc/buddyinfo lists them)."""
    return [z for z in m.zones if z.populated()]


def pfn_range(m, start_pfn=None, end_pfn=None, zone=None):
    """[start, end) clipped to physical memory; a zone gives its span as the default."""
    lo, hi = 0, m.max_pfn
    if zone is not None:
        z = zone_of(m, zone)
        lo, hi = z.zone_start_pfn, z.zone_end_pfn
    start = lo if start_pfn is None else require_int("start_pfn", start_pfn)
    end = hi if end_pfn is None else require_int("end_pfn", end_pfn)
    if not 0 <= start < end <= m.max_pfn:
        raise ValueError(f"start_pfn, end_pfn: need 0 <= start < end <= max_pfn {m.max_pfn:#x}, "
                         f"got {start:#x}, {end:#x}")
    return start, end


def frames_per_cell(nframes, max_cells):
    """The smallest power of two of frames per cell that fits nframes in max_cells."""
    per_cell = 1
    while -(-nframes // per_cell) > max_cells:
        per_cell <<= 1
    return per_cell


def class_counts(codes, per_cell, nclasses, fill):
    """counts[i, k]: how many frames of cell i are of class k (the last cell padded with fill)."""
    pad = -len(codes) % per_cell
    if pad:
        codes = np.concatenate([codes, np.full(pad, fill, dtype=codes.dtype)])
    runs = codes.reshape(-1, per_cell)
    if per_cell == 1:
        return (runs == np.arange(nclasses, dtype=codes.dtype)).astype(np.int64)
    return np.stack([np.count_nonzero(runs == k, axis=1) for k in range(nclasses)], axis=1)


def majority(counts):
    """The class most frames of each cell have; a tie goes to the higher class (allocated over free)."""
    k = counts.shape[1]
    return (k - 1 - np.argmax(counts[:, ::-1], axis=1)).astype(np.uint8)


def state_cells(m, start, end, per_cell=1, how="majority"):
    """One class per cell of [start, end): HOLE, RESERVED, FREE, ALLOCATED, or MIXED.

    how="majority" gives each cell the state most of its frames are in;
    how="mixed" gives MIXED to a cell that holds free and allocated frames
    both, so scattered allocations stand out even when cells are large.
    """
    if how not in ("majority", "mixed"):
        raise ValueError(f"how must be 'majority' or 'mixed', not {how!r}")
    codes = m.mem_map.state[start:end]
    if per_cell == 1:
        return codes.astype(np.uint8)
    counts = class_counts(codes, per_cell, NSTATES, HOLE)
    cells = majority(counts)
    if how == "mixed":
        cells[(counts[:, FREE] > 0) & (counts[:, ALLOCATED] > 0)] = MIXED
    return cells


def state_counts(m, start, end):
    """How many frames of [start, end) are in each state, as {state name: count}."""
    state = m.mem_map.state[start:end]
    return {FRAME_STATE_NAMES[k]: int(np.count_nonzero(state == k)) for k in range(NSTATES)}


def pageblock_state_counts(m, first_block, end_block):
    """counts[i, k]: frames of pageblock first_block + i in frame state k (frames past max_pfn are holes)."""
    lo, hi = first_block * PAGEBLOCK_NR_PAGES, min(end_block * PAGEBLOCK_NR_PAGES, m.max_pfn)
    return class_counts(m.mem_map.state[lo:hi], PAGEBLOCK_NR_PAGES, NSTATES, HOLE)


def pageblock_classes(m, first_block, end_block, counts=None):
    """Each pageblock's migrate type, or NO_RAM where none of its frames is present."""
    if counts is None:
        counts = pageblock_state_counts(m, first_block, end_block)
    mts = m.pageblock_mt[first_block:end_block].astype(np.uint8)
    present = counts[:, HOLE] < PAGEBLOCK_NR_PAGES
    return np.where(present, mts, NO_RAM).astype(np.uint8)


def pageblock_reserved(m, first_block, end_block, counts=None):
    """True for each pageblock whose present frames are all reserved (boot kept them all).

    Such a pageblock still has a migrate type (memmap_init gave it one),
    but the buddy allocator never sees its frames, so the type means nothing.
    """
    if counts is None:
        counts = pageblock_state_counts(m, first_block, end_block)
    used = PAGEBLOCK_NR_PAGES - counts[:, HOLE] - counts[:, RESERVED]
    return (counts[:, RESERVED] > 0) & (used == 0)


def pageblock_range(start, end):
    """The pageblocks [first, end) that cover the frames [start, end)."""
    return start >> PAGEBLOCK_ORDER, -(-end >> PAGEBLOCK_ORDER)


# -- blocks -----------------------------------------------------------------

def is_free_head(m, pfn, order):
    """pfn heads a free block of exactly `order` (what page_is_buddy tests)."""
    mm = m.mem_map
    return (mm.state[pfn] == FRAME_FREE and mm.page_type[pfn] == PGTY_BUDDY
            and mm.order[pfn] == order)


def is_allocated_head(m, pfn, order):
    """pfn heads an allocation of `order`: referenced, with the order prep_new_page recorded."""
    mm = m.mem_map
    return mm.state[pfn] == FRAME_ALLOCATED and mm.refcount[pfn] > 0 and mm.order[pfn] == order


def pcp_blocks(m):
    """The blocks cached on the per-CPU lists of every zone, as Blocks of kind "pcp"."""
    blocks = []
    for z in m.zones:
        for pcp in getattr(z, "per_cpu_pageset", None) or []:
            for pindex, cached in enumerate(pcp.lists):
                order = pa.pindex_to_order(pindex)
                blocks.extend(Block(int(pfn), order, "pcp") for pfn in cached)
    return blocks


def block_at(m, pfn):
    """The block (free, on a per-CPU list, or allocated) that contains pfn, or None.

    Reserved frames and holes are in no block.  Tries each order from 0 up:
    the block of order o containing pfn can only start at pfn rounded down
    to 2**o.
    """
    state = m.mem_map.state[pfn]
    if state == getattr(pa, "FRAME_PCP", None):
        return next((b for b in pcp_blocks(m) if b.pfn <= pfn < b.pfn + (1 << b.order)), None)
    test = {FRAME_FREE: is_free_head, FRAME_ALLOCATED: is_allocated_head}.get(state)
    if test is None:
        return None
    for order in range(MAX_PAGE_ORDER + 1):
        head = pfn & ~((1 << order) - 1)
        if test(m, head, order):
            return Block(head, order, "free" if state == FRAME_FREE else "allocated")
    return None


def blocks_in_range(m, start, end):
    """Every free, per-CPU or allocated block that overlaps [start, end), sorted by pfn.

    Heads inside the range are found with numpy, blocks on per-CPU lists by
    walking those lists; a block that starts before `start` and reaches into
    the range is found by block_at(start).
    """
    mm = m.mem_map
    state, ptype, order = mm.state[start:end], mm.page_type[start:end], mm.order[start:end]
    free = np.flatnonzero((state == FRAME_FREE) & (ptype == PGTY_BUDDY))
    alloc = np.flatnonzero((state == FRAME_ALLOCATED) & (mm.refcount[start:end] > 0))
    blocks = [Block(start + int(i), int(order[i]), "free") for i in free]
    blocks += [Block(start + int(i), int(order[i]), "allocated") for i in alloc]
    blocks += [b for b in pcp_blocks(m) if b.pfn < end and b.pfn + (1 << b.order) > start
               and b.pfn >= start]
    first = block_at(m, start)
    if first is not None and first.pfn < start:
        blocks.append(first)
    return sorted(blocks)


def window_order(order, touched_order, min_order=6):
    """The order of the aligned window a picture of an operation should show.

    At least `min_order` (64 frames) for context, at least the largest block
    the operation split or merged, and never more than MAX_PAGE_ORDER.
    """
    return min(MAX_PAGE_ORDER, max(order, touched_order, min_order))
