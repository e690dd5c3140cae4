"""Fragmentation indices, computed as mm/vmstat.c computes them for debugfs.

    /sys/kernel/debug/extfrag/unusable_index    unusable_index(m)
    /sys/kernel/debug/extfrag/extfrag_index     extfrag_index(m)

Both start from one summary of a zone's free areas (fill_contig_page_info):
how many free pages, how many free blocks, and how many blocks of the
requested order the free blocks could be split into.

The unusable free space index of order n is the share of free memory that
sits in blocks smaller than 2**n pages, so cannot serve an order-n request:
0 means every free page could, 1 means none could.  The fragmentation index
says, for a request that would fail, whether it fails for want of memory
(towards 0) or because the memory is in pieces too small (towards 1); it is
-1 when the request would succeed.  The kernel keeps both as integers in
thousandths, and so do these functions.

Everything here only reads the model's state (zone.free_area[].nr_free), or
takes the per-order counts directly, so the same code reads a real
/proc/buddyinfo line.
"""
from collections import namedtuple

from ..mm.page_alloc import NR_PAGE_ORDERS, MAX_PAGE_ORDER

ContigPageInfo = namedtuple("ContigPageInfo", "free_pages free_blocks_total free_blocks_suitable")


def nr_free_per_order(zone_or_counts):
    """The free block count of each order: a zone's nr_free values, or the sequence given."""
    if hasattr(zone_or_counts, "free_area"):
        return [area.nr_free for area in zone_or_counts.free_area]
    counts = [int(c) for c in zone_or_counts]
    if any(c < 0 for c in counts):
        raise ValueError(f"nr_free: block counts must be >= 0, got {counts}")
    return counts


def fill_contig_page_info(zone_or_counts, suitable_order):
    """fill_contig_page_info: free pages, free blocks, and blocks of suitable_order they make.

    A free block of order o >= suitable_order counts as 2**(o - suitable_order)
    suitable blocks, since splitting it yields that many; smaller blocks
    count for nothing.  Accepts a Zone or a list of nr_free per order.
    """
    free_pages = free_blocks_total = free_blocks_suitable = 0
    for order, blocks in enumerate(nr_free_per_order(zone_or_counts)):
        free_blocks_total += blocks
        free_pages += blocks << order
        if order >= suitable_order:
            free_blocks_suitable += blocks << (order - suitable_order)
    return ContigPageInfo(free_pages, free_blocks_total, free_blocks_suitable)


def unusable_free_index(order, info):
    """unusable_free_index: thousandths of free memory too fragmented for an order-`order` block.

    Returns an int from 0 (every free page lies in a block of this order or
    larger) to 1000 (none does).  A zone with no free memory reads 1000: an
    allocation fails there just as surely.
    """
    if info.free_pages == 0:
        return 1000
    return (info.free_pages - (info.free_blocks_suitable << order)) * 1000 // info.free_pages


def fragmentation_index(order, info):
    """__fragmentation_index: why an order-`order` request would fail, in thousandths.

    -1000 when a suitable block exists (the request would not fail); 0 when
    there are no free blocks at all; otherwise 1000 minus (1000 + free pages
    per requested size * 1000) / free blocks: near 0 the zone lacks memory,
    near 1000 it has enough in pieces too small.
    """
    if order > MAX_PAGE_ORDER:
        return 0
    if not info.free_blocks_total:
        return 0
    if info.free_blocks_suitable:
        return -1000
    requested = 1 << order
    return 1000 - (1000 + info.free_pages * 1000 // requested) // info.free_blocks_total


def c_thousandths(index, width=1):
    """Print an index in thousandths as the kernel's '%d.%03d' of index/1000 and index%1000.

    C divides towards zero, so -500 prints as ' 0.-500' with width 2, as
    the kernel itself prints it.
    """
    whole = abs(index) // 1000 * (1 if index >= 0 else -1)
    part = index - whole * 1000
    return f"{whole:{width}d}.{part:03d}"


def unusable_indices(zone_or_counts):
    """The unusable free space index of every order, 0..MAX_PAGE_ORDER, as ints in thousandths."""
    return [unusable_free_index(o, fill_contig_page_info(zone_or_counts, o))
            for o in range(NR_PAGE_ORDERS)]


def fragmentation_indices(zone_or_counts):
    """The fragmentation index of every order, as ints in thousandths."""
    return [fragmentation_index(o, fill_contig_page_info(zone_or_counts, o))
            for o in range(NR_PAGE_ORDERS)]


def zone_counts(m):
    """(node, zone name, nr_free per order) for each populated zone, as the debugfs files walk them."""
    return [(0, z.name, nr_free_per_order(z)) for z in m.zones if z.populated()]


def unusable_show(zones):
    """unusable_show_print for each (node, zone name, nr_free per order): the file's lines."""
    lines = []
    for node, name, counts in zones:
        values = "".join(c_thousandths(i) + " " for i in unusable_indices(counts))
        lines.append(f"Node {node}, zone {name:>8s} {values}")
    return "\n".join(lines) + "\n"


def extfrag_show(zones):
    """extfrag_show_print for each (node, zone name, nr_free per order): the file's lines."""
    lines = []
    for node, name, counts in zones:
        values = "".join(c_thousandths(i, 2) + " " for i in fragmentation_indices(counts))
        lines.append(f"Node {node}, zone {name:>8s} {values}")
    return "\n".join(lines) + "\n"


def unusable_index(m):
    """/sys/kernel/debug/extfrag/unusable_index of machine m, or of a /proc/buddyinfo text."""
    if isinstance(m, str):
        return unusable_show(parse_buddyinfo(m))
    return unusable_show(zone_counts(m))


def extfrag_index(m):
    """/sys/kernel/debug/extfrag/extfrag_index of machine m, or of a /proc/buddyinfo text."""
    if isinstance(m, str):
        return extfrag_show(parse_buddyinfo(m))
    return extfrag_show(zone_counts(m))


def parse_buddyinfo(text):
    """[(node, zone name, [nr_free per order])] from /proc/buddyinfo text (the model's or a real one)."""
    zones = []
    for line in text.splitlines():
        words = line.replace(",", " ").split()
        if len(words) < 4 or words[0] != "Node" or words[2] != "zone":
            continue
        zones.append((int(words[1]), words[3], [int(w) for w in words[4:]]))
    return zones
