"""Physical memory drawn as text: free lists, frames, and before/after side by side.

Text survives copying into notes, prints the same in every notebook
front end, and lets tests compare exact strings.  Each function reads the
machine and returns a str; print it.

    print(free_lists(m, "DMA32", orders=range(3, 11)))
    print(frames(m, 0x2800, 64))
    print(side_by_side(before, after, titles=("before", "after")))
"""
from ..errors import require_int
from ..mm.page_alloc import NR_PAGE_ORDERS, MIGRATETYPE_NAMES, FRAME_STATE_NAMES
from . import frames as F
from .style import size_of_frames
from .vmstat import parse_buddyinfo

# One character per frame state; a state the model adds later prints as '?'.
FRAME_CHARS = {"hole": " ", "reserved": "r", "free": ".", "allocated": "#", "per-cpu list": ":"}


def order_char(order):
    """One character for an order: 0-9, then A for 10 (as hex would)."""
    return "0123456789ABCDEF"[order]


def free_lists(m, zone, orders=None, migratetypes=None, limit=8):
    """zone->free_area[order].free_list[mt]: the pfns of each list, head first.

    `orders` and `migratetypes` (names or numbers) pick what to print; lists
    longer than `limit` are cut with a count of the rest.  Empty lists are
    left out; an order with none prints '-'.
    """
    z = F.zone_of(m, zone)
    orders = range(NR_PAGE_ORDERS) if orders is None else list(orders)
    mts = range(len(MIGRATETYPE_NAMES)) if migratetypes is None else [
        MIGRATETYPE_NAMES.index(t) if isinstance(t, str) else int(t) for t in migratetypes]
    out = [f"Zone {z.name} free lists, head first"]
    for order in orders:
        area = z.free_area[order]
        line = f"order {order:2d} ({size_of_frames(1 << order):>7s})  nr_free {area.nr_free}"
        lists = [(mt, list(area.free_list[mt])) for mt in mts if area.free_list[mt].count]
        if not lists:
            out.append(line + "  -")
            continue
        out.append(line)
        for mt, pfns in lists:
            shown = " ".join(f"{p:#x}" for p in pfns[:limit])
            more = f" ... (+{len(pfns) - limit} more)" if len(pfns) > limit else ""
            out.append(f"    {MIGRATETYPE_NAMES[mt]:<12s} {shown}{more}")
    return "\n".join(out)


def frames(m, start_pfn, npages=64, cols=64):
    """Frames [start_pfn, start_pfn + npages) as characters, one row per `cols` frames.

    Under each row, a digit marks the first frame of every buddy block
    (free, per-CPU or allocated) with the block's order, so the picture
    shows where blocks begin and how big they are.  Rows start at
    multiples of `cols` (a power of two), so no aligned block wraps.
    """
    if require_int("cols", cols, 1) & (cols - 1):
        raise ValueError(f"cols must be a power of two, got {cols}")
    start_pfn = require_int("start_pfn", start_pfn, 0, m.max_pfn - 1)
    npages = require_int("npages", npages, 1)
    start = (start_pfn // cols) * cols
    end = min(-(-(start_pfn + npages) // cols) * cols, m.max_pfn)
    start, end = F.pfn_range(m, start, end)
    states = m.mem_map.state[start:end]
    heads = {b.pfn: b.order for b in F.blocks_in_range(m, start, end) if b.pfn >= start}
    width = len(f"{end:#x}")
    out = [(" " * width + "  " + "".join(f"{c:<8d}" for c in range(0, cols, 8))[:cols]).rstrip()]
    for row in range(start, end, cols):
        n = min(cols, end - row)
        cells = "".join(FRAME_CHARS.get(FRAME_STATE_NAMES[s], "?") for s in states[row - start:row - start + n])
        marks = "".join(order_char(heads[p]) if p in heads else " " for p in range(row, row + n))
        out.append(f"{row:#{width}x}  {cells}")
        out.append(" " * width + "  " + marks.rstrip())
    legend = "  ".join(f"{c if c != ' ' else '(blank)'} {name}" for name, c in FRAME_CHARS.items()
                       if name in FRAME_STATE_NAMES)
    out.append(f"{legend}; a digit below a frame: a block of that order starts there (A = 10)")
    return "\n".join(out)


def side_by_side(*texts, titles=None, gap=4):
    """Put several texts next to each other, top-aligned, each under its title."""
    columns = [str(t).splitlines() for t in texts]
    if titles is not None:
        if len(titles) != len(texts):
            raise ValueError(f"titles: {len(titles)} titles for {len(texts)} texts")
        columns = [[str(title), "-" * max([len(str(title))] + [len(x) for x in col])] + col
                   for title, col in zip(titles, columns)]
    widths = [max([len(x) for x in col] or [0]) for col in columns]
    height = max(len(col) for col in columns) if columns else 0
    rows = []
    for i in range(height):
        parts = [(col[i] if i < len(col) else "").ljust(w) for col, w in zip(columns, widths)]
        rows.append((" " * gap).join(parts).rstrip())
    return "\n".join(rows)


def before_after(before, after, titles=("before", "after"), gap=4):
    """side_by_side for the usual pair."""
    return side_by_side(before, after, titles=titles, gap=gap)


def buddyinfo_change(before, after):
    """Compare two /proc/buddyinfo texts: for each zone that changed, the counts and the change.

        zone DMA32  order      0    1    2    3 ...
                    before     0    0    0    0 ...
                    after      0    0    0    1 ...
                    change               +1 ...

    Returns 'no change' when the free lists hold the same counts.
    """
    old = {(node, name): counts for node, name, counts in parse_buddyinfo(before)}
    out = []
    for node, name, b in parse_buddyinfo(after):
        a = old.get((node, name), [0] * len(b))
        if a == b:
            continue
        head = f"zone {name:<7s}" if node == 0 else f"node {node} zone {name:<7s}"
        pad = " " * len(head)
        out.append(f"{head} order  " + "".join(f"{o:>6d}" for o in range(len(b))))
        out.append(f"{pad} before " + "".join(f"{v:>6d}" for v in a))
        out.append(f"{pad} after  " + "".join(f"{v:>6d}" for v in b))
        out.append(f"{pad} change " + "".join(f"{v - u:>+6d}" if v != u else " " * 6 for u, v in zip(a, b)))
    return "\n".join(out) if out else "no change"
