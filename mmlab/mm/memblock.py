"""Boot: the firmware's memory map, the memory boot keeps, and the zones.

Models arch/x86/kernel/e820.c, mm/memblock.c and mm/mm_init.c
(free_area_init, memmap_init, memblock_free_all) for one node.

The layout follows a PC (and QEMU's) firmware map: page 0 is reserved, RAM
runs to 0x9fc00, the legacy VGA and BIOS area 0xa0000-0xfffff is a hole, RAM
continues from 1 MiB to at most 3 GiB, the PCI hole covers 3-4 GiB, and the
rest of RAM sits above 4 GiB.  Boot then keeps (memblock_reserve) the whole
first MiB, the kernel image at 16 MiB, and the struct page array (64 bytes a
frame, allocated top-down like every memblock allocation).  Everything else
goes to the buddy allocator.

NOTE: a real boot also keeps the initial page tables, per-CPU areas, the
initrd and firmware tables, and allocates slabs before userspace starts;
mmlab boots with only the three reservations above so that a fresh machine's
free lists are easy to read.
"""
import numpy as np

from ..arch import (PAGE_SHIFT, PAGE_SIZE, MiB, GiB, MAX_DMA_PFN, MAX_DMA32_PFN,
                    PHYSICAL_START, PCI_HOLE_START, STRUCT_PAGE_SIZE)
from .page_alloc import (Zone, MemMap, ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_MOVABLE,
                         ZONE_DEVICE, FRAME_RESERVED, PG_reserved,
                         PAGEBLOCK_ORDER, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE,
                         free_pages_memory, build_zonelists)

KERNEL_IMAGE_SIZE = 24 * MiB        # text, rodata, data and bss of a small configuration
MIN_RAM = 64 * MiB
MAX_RAM = 1 << 40


def e820_table(ram):
    """The firmware memory map for `ram` bytes: a list of (start, end, 'usable'|'reserved')."""
    low = min(ram, PCI_HOLE_START)
    table = [(0x0, 0x1000, "reserved"),          # e820: update [mem 0-0xfff] usable ==> reserved
             (0x1000, 0x9fc00, "usable"),
             (0x9fc00, 0x100000, "reserved"),
             (0x100000, low, "usable")]
    if ram > PCI_HOLE_START:
        table.append((4 * GiB, 4 * GiB + ram - PCI_HOLE_START, "usable"))
    return table


def memory_ranges(table):
    """Usable RAM as page frame ranges [start_pfn, end_pfn), partial pages dropped."""
    return [(-(-s // PAGE_SIZE), e // PAGE_SIZE) for s, e, kind in table if kind == "usable"]


def memmap_bytes(present_pages):
    """The struct page array, rounded up to the 2 MiB pages vmemmap maps it with."""
    return -(-present_pages * STRUCT_PAGE_SIZE // (2 * MiB)) * 2 * MiB


def reserved_ranges(m, ranges):
    """memblock_reserve at boot: the first MiB, the kernel image, and the memmap at the top."""
    present = sum(e - s for s, e in ranges)
    top = ranges[-1][1]
    memmap = memmap_bytes(present) >> PAGE_SHIFT
    kernel_start = PHYSICAL_START >> PAGE_SHIFT
    return [("low memory (first MiB)", 0, 0x100),
            ("kernel image", kernel_start, kernel_start + (KERNEL_IMAGE_SIZE >> PAGE_SHIFT)),
            ("memmap (struct page array)", top - memmap, top)]


def subtract(ranges, holes):
    """The parts of [start, end) ranges not covered by any of the holes."""
    out = []
    for s, e in ranges:
        pieces = [(s, e)]
        for _, hs, he in holes:
            nxt = []
            for ps, pe in pieces:
                if he <= ps or hs >= pe:
                    nxt.append((ps, pe))
                    continue
                if ps < hs:
                    nxt.append((ps, hs))
                if he < pe:
                    nxt.append((he, pe))
            pieces = nxt
        out.extend(pieces)
    return out


def free_area_init(m, ranges):
    """free_area_init: size the zones from the usable ranges; mark every frame's zone."""
    max_pfn = ranges[-1][1]
    mm = m.mem_map
    limits = [(ZONE_DMA, 0, MAX_DMA_PFN), (ZONE_DMA32, MAX_DMA_PFN, MAX_DMA32_PFN),
              (ZONE_NORMAL, MAX_DMA32_PFN, max_pfn)]
    zones = []
    node_start = ranges[0][0]
    for idx, lo, hi in limits:
        # A zone spans its address limits clipped to the node, holes included
        # (zone_spanned_pages_in_node); present counts only the RAM inside.
        start, end = max(lo, node_start), min(hi, max_pfn)
        present = sum(min(e, hi) - max(s, lo) for s, e in ranges if s < hi and e > lo)
        if start >= end or not present:
            start = end = present = 0
        zones.append(Zone(m, idx, start, end, present))
        mm.zone[lo:min(hi, max_pfn)] = idx
    zones.append(Zone(m, ZONE_MOVABLE, 0, 0, 0))
    zones.append(Zone(m, ZONE_DEVICE, 0, 0, 0))
    return zones


def boot(m, ram):
    """Lay out physical memory, reserve what boot keeps, and free the rest to the buddy allocator."""
    m.e820 = e820_table(ram)
    ranges = memory_ranges(m.e820)
    m.max_pfn = ranges[-1][1]
    m.mem_map = MemMap(m.max_pfn)
    m.zones = free_area_init(m, ranges)
    mm = m.mem_map
    for s, e in ranges:
        mm.state[s:e] = FRAME_RESERVED          # present; reserved until memblock frees it
    # memmap_init marks a pageblock Movable when its first frame is RAM; one
    # that starts in a hole (the first one, since pfn 0 is not RAM) keeps the
    # zeroed bits, which read as Unmovable.
    nblocks = -(-m.max_pfn >> PAGEBLOCK_ORDER)
    first = np.arange(nblocks) << PAGEBLOCK_ORDER
    m.pageblock_mt = np.where(mm.state[first] == FRAME_RESERVED, MIGRATE_MOVABLE,
                              MIGRATE_UNMOVABLE).astype(np.uint8)
    m.pageblock_mt_ = memoryview(m.pageblock_mt)
    m.memblock_reserved = reserved_ranges(m, ranges)
    for _, s, e in m.memblock_reserved:
        mm.flags[s:e] = PG_reserved
    for s, e in subtract(ranges, m.memblock_reserved):
        free_pages_memory(m, s, e)
    m.totalram_pages = sum(z.managed_pages for z in m.zones)
    build_zonelists(m)
