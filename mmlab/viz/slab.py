"""Figures and text of the slab allocator: size classes and their waste, slabs, paths taken.

Each function reads the machine's public state (its caches, their slabs and
freelists) or a Trace, and returns a matplotlib Figure or a str; nothing here
changes the machine.  Pass `ax` to draw a figure into axes of your own.

    kmalloc_waste(m)               bytes and share wasted by kmalloc, over the request size
    slab_strip(m, addr)            the slab holding addr, slot by slot, one row per page
    alloc_paths(t)                 the path each allocation in a trace took ("fast", "new slab", ...)
    path_timeline(paths)           those paths as a strip, one mark per allocation
    slab_usage(rows)               active and total objects per cache, from /proc/slabinfo rows
    cache_table(caches)            the geometry of caches as a text table
    slab_text(m, addr)             a slab as one character per slot
    trace_outline(t)               a trace with the page allocator's inner calls left out

Glossary as in mm/slub.py: s is a cache (KmemCache), a slab is a Slab, a
slot is one object's place in a slab, named by its index.
"""
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ..arch import PAGE_SIZE
from ..errors import require_int
from ..mm import slub
from ..uapi import GFP_KERNEL
from . import style

# What a slot can be, and the colour it gets in every slab picture.
SLOT_STATES = ("allocated", "free, CPU freelist", "free, slab freelist", "unused tail")
SLOT_COLORS = {"allocated": style.STATE_COLORS["allocated"],
               "free, CPU freelist": style.STATE_COLORS["per-cpu list"],
               "free, slab freelist": style.STATE_COLORS["free"],
               "unused tail": "#dddddd"}

# The paths an allocation can take, cheapest first (slab_alloc_node, ___slab_alloc, kmalloc).
PATHS = ("fast", "refill", "cpu partial", "node partial", "new slab", "large", "zero", "failed")
PATH_COLORS = {"fast": "#2e7d32", "refill": "#9fd68c", "cpu partial": "#4fc1b0",
               "node partial": "#4f8fd9", "new slab": "#f08a3c", "large": "#8e5cc4",
               "zero": "#999999", "failed": "#b00020"}
PATH_MEANINGS = {
    "fast": "popped this CPU's freelist",
    "refill": "slow: took objects other CPUs freed into this CPU's slab",
    "cpu partial": "slow: took a slab from this CPU's partial list",
    "node partial": "slow: took slabs from the node's partial list",
    "new slab": "slow: a new slab from the page allocator",
    "large": "kmalloc_large: pages straight from the page allocator",
    "zero": "kmalloc(0): ZERO_SIZE_PTR",
    "failed": "returned NULL",
}

ALLOC_CALLS = ("kmalloc", "kmem_cache_alloc")


# -- the caches and their waste ---------------------------------------------------

def kmalloc_cache(m, size, gfp=GFP_KERNEL):
    """The kmalloc cache a request of 1 to 8192 bytes goes to (kmalloc_slab), without allocating."""
    size = require_int("size", size, 1, slub.KMALLOC_MAX_CACHE_SIZE)
    return slub.kmalloc_slab(m, size, gfp)


def kmalloc_footprint(m, size, gfp=GFP_KERNEL):
    """What kmalloc(size) really takes: (slot bytes, bytes per object with the slab's tail shared).

    A slot is what ksize reports.  A slab of 2**order pages holds `objects`
    slots and leaves a tail too small for another; spread over the objects,
    each costs (PAGE_SIZE << order) / objects.  A kmalloc_large block has no
    tail: both numbers are its pages.
    """
    size = require_int("size", size, 1, slub.KMALLOC_MAX_SIZE)
    if size > slub.KMALLOC_MAX_CACHE_SIZE:
        block = PAGE_SIZE << slub.get_order(size)
        return block, float(block)
    s = slub.kmalloc_slab(m, size, gfp)
    return s.size, (PAGE_SIZE << s.order) / s.objects


def kmalloc_waste(m, max_size=slub.KMALLOC_MAX_CACHE_SIZE, *, gfp=GFP_KERNEL, ax=None):
    """Internal waste of kmalloc over the request size, 1 to max_size bytes (log scale).

    Top: the bytes wasted per object, slot minus request (a sawtooth that
    drops to zero at each size class), and dashed, with each object's share
    of its slab's unused tail added.  Bottom: the same as a share of what the
    object really costs.  Size classes are marked with their cache names;
    above 8 KiB the requests are kmalloc_large blocks of whole pages.
    """
    max_size = require_int("max_size", max_size, 16, slub.KMALLOC_MAX_SIZE)
    sizes = np.arange(1, max_size + 1)
    slot = np.empty(len(sizes))
    share = np.empty(len(sizes))
    for i, size in enumerate(sizes.tolist()):
        slot[i], share[i] = kmalloc_footprint(m, size, gfp)
    own = ax is None
    if own:
        fig, (top, bottom) = style.new_axes(None, figsize=(10, 6.2), nrows=2, sharex=True)
    else:
        fig, top, bottom = ax.figure, ax, None
    top.step(sizes, slot - sizes, where="post", color=style.STATE_COLORS["allocated"],
             linewidth=1.2, label="slot − request (what ksize adds)")
    top.step(sizes, share - sizes, where="post", color="#555555", linewidth=1, linestyle="--",
             label="… plus the object's share of the slab's unused tail")
    top.set_yscale("symlog", linthresh=1)
    top.set_ylim(0, 2 * max_size)
    top.set_ylabel("bytes wasted per object\n(log scale)")
    top.set_title(f"kmalloc's internal waste, requests of 1 to {max_size:,} bytes\n"
                  "each request is rounded up to the next size class (dotted lines)", pad=26)
    classes = size_classes(m, max_size, gfp)
    for axis in (top, bottom):
        if axis is None:
            continue
        for size, name in classes:
            axis.axvline(size, color="#bbbbbb", linewidth=0.6, linestyle=":")
        axis.set_xscale("log", base=2)
        axis.set_xlim(1, max_size)
    for size, name in classes:
        top.text(size, 1.01, name.replace("kmalloc-", ""), rotation=90, fontsize=7, ha="center",
                 va="bottom", color="#777777", transform=top.get_xaxis_transform())
    top.legend(fontsize=8, loc="lower right")
    axis = bottom if bottom is not None else top
    if bottom is not None:
        bottom.step(sizes, 100 * (slot - sizes) / slot, where="post",
                    color=style.STATE_COLORS["allocated"], linewidth=1.2)
        bottom.step(sizes, 100 * (share - sizes) / share, where="post", color="#555555",
                    linewidth=1, linestyle="--")
        bottom.set_ylim(0, 100)
        bottom.set_ylabel("% of the object's memory wasted")
    ticks = [1 << k for k in range(0, max_size.bit_length()) if 1 << k <= max_size]
    axis.set_xticks(ticks)
    axis.set_xticklabels([str(t) if t < 1024 else f"{t >> 10}k" for t in ticks], fontsize=8)
    axis.set_xlabel("requested size, bytes (log scale)")
    return fig


def size_classes(m, max_size=slub.KMALLOC_MAX_CACHE_SIZE, gfp=GFP_KERNEL):
    """[(slot size, cache name)] of the kmalloc classes up to max_size, then kmalloc_large's orders."""
    out, seen = [], set()
    for size in range(1, min(max_size, slub.KMALLOC_MAX_CACHE_SIZE) + 1):
        s = slub.kmalloc_slab(m, size, gfp)
        if s.name not in seen:
            seen.add(s.name)
            out.append((s.size, s.name))
    order = slub.get_order(slub.KMALLOC_MAX_CACHE_SIZE + 1)
    while max_size > slub.KMALLOC_MAX_CACHE_SIZE and (PAGE_SIZE << order) <= max_size:
        out.append((PAGE_SIZE << order, f"order {order}"))
        order += 1
    return out


def cache_table(caches):
    """The geometry of caches as /sys/kernel/slab shows it, and the slab's tail, one line each.

    `caches` are KmemCache objects.  Columns: object size, slot size
    (slab_size), alignment, order, objects per slab, unused tail bytes,
    and min_partial and cpu_partial.
    """
    head = (f"{'cache':<17s} {'object':>6s} {'slot':>6s} {'align':>5s} {'order':>5s} {'objs':>5s} "
            f"{'tail':>5s} {'min_partial':>11s} {'cpu_partial':>11s}")
    lines = [head]
    for s in caches:
        tail = (PAGE_SIZE << s.order) - s.objects * s.size
        lines.append(f"{s.name:<17s} {s.object_size:6d} {s.size:6d} {s.align:5d} {s.order:5d} "
                     f"{s.objects:5d} {tail:5d} {s.min_partial:11d} {s.cpu_partial:11d}")
    return "\n".join(lines)


def cache_lists(s, limit=6):
    """Where a cache's slabs are: each CPU's slab and partial list, the node's list, full slabs.

    A slab prints as its head pfn and allocated/objects; lists longer than
    `limit` are cut with a count of the rest.
    """
    def show(slabs):
        slabs = list(slabs)
        if not slabs:
            return "-"
        text = ", ".join(f"{sl.pfn:#x} ({sl.nr_allocated()}/{sl.objects})" for sl in slabs[:limit])
        return text + (f" ... (+{len(slabs) - limit} more)" if len(slabs) > limit else "")

    slabs = s.machine.slub.slabs
    total = sum(sl.nr_allocated() for sl in s.slabs.values())
    plural = "s" if len(s.slabs) != 1 else ""
    out = [f"{s.name}: {len(s.slabs)} slab{plural}, {total} objects allocated"]
    for cpu, c in enumerate(s.cpu_slab):
        if c.slab is None:
            head = "no slab"
        else:
            head = (f"slab {c.slab.pfn:#x} ({c.slab.nr_allocated()}/{c.slab.objects}), "
                    f"{len(c.freelist)} on its freelist")
            if c.slab.freelist:
                head += f", {len(c.slab.freelist)} freed by others"
        out.append(f"  CPU {cpu}: {head}; partial: {show(reversed(c.partial))}")
    out.append(f"  node partial: {show(slabs[pfn] for pfn in s.node[0].partial)}")
    full = sorted((sl for sl in s.slabs.values() if sl.state == "full"), key=lambda sl: sl.pfn)
    out.append(f"  full, on no list: {show(full)}")
    return "\n".join(out)


# -- one slab, slot by slot ----------------------------------------------------------

def slab_of(m, what):
    """The Slab named by `what`: a Slab, an address inside one, or a cache (its current CPU's slab).

    For a cache with no CPU slab on the current CPU, its first slab; None if it has none.
    Raises ValueError for an address that is not in a slab.
    """
    if isinstance(what, slub.Slab):
        return what
    if isinstance(what, slub.KmemCache):
        slab = what.cpu_slab[m.current_cpu].slab
        if slab is None and what.slabs:
            slab = what.slabs[min(what.slabs)]
        return slab
    addr = require_int("what", what)
    slab = slub.virt_to_slab(m, addr, "slab_of")
    if slab is None:
        raise ValueError(f"what: {addr:#x} is not in a slab page (a large kmalloc or a free page?)")
    return slab


def cpu_of(slab):
    """The CPU whose current slab this is, or None."""
    for cpu, c in enumerate(slab.cache.cpu_slab):
        if c.slab is slab:
            return cpu
    return None


def slot_states(slab):
    """Each slot's state (one of SLOT_STATES) and its place in the allocation order.

    Returns (states, next_out): next_out[idx] is 1 for the slot the next
    allocation from this slab takes, 2 for the one after, and so on (0 for
    allocated slots).  A CPU slab hands out its CPU's freelist first, head
    first, then the objects others freed onto slab->freelist.
    """
    states = ["allocated"] * slab.objects
    next_out = [0] * slab.objects
    cpu = cpu_of(slab)
    queue = []
    if cpu is not None:
        cpu_freelist = slab.cache.cpu_slab[cpu].freelist
        queue += [(idx, "free, CPU freelist") for idx in reversed(cpu_freelist)]
    queue += [(idx, "free, slab freelist") for idx in reversed(slab.freelist)]
    for rank, (idx, state) in enumerate(queue, 1):
        states[idx] = state
        next_out[idx] = rank
    return states, next_out


def slab_text(m, what, per_row=64):
    """A slab as text, one character per slot: '#' allocated, ':' free on the CPU freelist, '.' free
    on the slab's own freelist.

    The line under each row marks the next slot to be allocated with '^'.
    """
    slab = slab_of(m, what)
    if slab is None:
        return "no slab"
    per_row = require_int("per_row", per_row, 1)
    states, next_out = slot_states(slab)
    chars = {"allocated": "#", "free, CPU freelist": ":", "free, slab freelist": "."}
    out = [slab_title(slab)]
    for row in range(0, slab.objects, per_row):
        idxs = range(row, min(row + per_row, slab.objects))
        out.append(f"{row:4d}  " + "".join(chars[states[i]] for i in idxs))
        marks = "".join("^" if next_out[i] == 1 else " " for i in idxs).rstrip()
        if marks:
            out.append("      " + marks)
    out.append("# allocated  : free on the CPU freelist  . free on the slab freelist  ^ next out")
    return "\n".join(out)


def slab_title(slab):
    s = slab.cache
    cpu = cpu_of(slab)
    where = f"CPU {cpu}'s slab" if cpu is not None else {"cpu_partial": "on a CPU partial list",
                                                          "partial": "on the node partial list",
                                                          "full": "full, on no list"}[slab.state]
    return (f"{s.name} slab at pfn {slab.pfn:#x}: order {slab.order}, {slab.objects} slots of "
            f"{s.size} bytes, {slab.nr_allocated()} allocated, {where}")


def slab_strip(m, what, *, highlight=None, ax=None):
    """A slab slot by slot: one row per page, slots coloured by state, the unused tail grey.

    `what` is an address in the slab, a Slab, or a cache (its current CPU
    slab).  An object that crosses a page boundary continues on the next
    row: the next page is the next physical frame, since a slab is one
    buddy block.  Free slots are numbered in the order the next allocations
    will take them (when there are at most 64 slots).  `highlight` (by
    default the address given) is outlined in blue.
    """
    slab = slab_of(m, what)
    if slab is None:
        raise ValueError(f"what: the cache {what} has no slab yet")
    if highlight is None and not isinstance(what, (slub.Slab, slub.KmemCache)):
        highlight = what
    s = slab.cache
    npages = 1 << slab.order
    states, next_out = slot_states(slab)
    own = ax is None
    fig, ax = style.new_axes(ax, figsize=(10, 1.6 + 0.45 * npages))
    label = slab.objects <= 64
    for idx in range(slab.objects):
        draw_span(ax, idx * s.size, s.size, SLOT_COLORS[states[idx]], "white")
        if label and next_out[idx]:
            x, y = span_middle(idx * s.size, s.size)
            ax.text(x, y, str(next_out[idx]), ha="center", va="center", fontsize=7, color="#1b4d1b")
    tail_start = slab.objects * s.size
    if tail_start < npages * PAGE_SIZE:
        draw_span(ax, tail_start, npages * PAGE_SIZE - tail_start, SLOT_COLORS["unused tail"],
                  "#999999", hatch="///")
    if highlight is not None:
        addr = require_int("highlight", highlight)
        idx, rem = divmod(addr - slab.base, s.size)
        if rem or not 0 <= idx < slab.objects:
            raise ValueError(f"highlight: {addr:#x} is not the start of a slot of this slab")
        draw_span(ax, idx * s.size, s.size, None, style.HIGHLIGHT, width=2.6)
    ax.set_xlim(0, PAGE_SIZE)
    ax.set_ylim(npages, 0)
    ax.set_yticks([r + 0.5 for r in range(npages)])
    ax.set_yticklabels([f"pfn {slab.pfn + r:#x}" for r in range(npages)], family="monospace",
                       fontsize=8)
    ax.set_xticks(range(0, PAGE_SIZE + 1, 512))
    ax.set_xticklabels([str(x) for x in range(0, PAGE_SIZE + 1, 512)], fontsize=8)
    ax.set_xlabel("byte offset within the page")
    ax.set_ylabel("page of the slab")
    ax.set_title(slab_title(slab) + ("\nnumbers: the order the next allocations take the free slots"
                                     if label and any(next_out) else ""), fontsize=10)
    present = [st for st in SLOT_STATES if st in states or (st == "unused tail" and tail_start <
                                                            npages * PAGE_SIZE)]
    handles = [Patch(facecolor=SLOT_COLORS[st], edgecolor="#999999", label=st,
                     hatch="///" if st == "unused tail" else None) for st in present]
    if highlight is not None:
        handles.append(Line2D([], [], color=style.HIGHLIGHT, linewidth=3,
                              label=f"object {highlight:#x}"))
    style.put_legend(fig, ax, own, handles)
    return fig


def draw_span(ax, offset, length, face, edge, width=0.5, hatch=None):
    """Paint bytes [offset, offset + length) of a slab, wrapping at page boundaries to the next row."""
    while length > 0:
        row, col = divmod(offset, PAGE_SIZE)
        piece = min(length, PAGE_SIZE - col)
        ax.add_patch(Rectangle((col, row + 0.08), piece, 0.84, facecolor=face or "none",
                               fill=face is not None, edgecolor=edge, linewidth=width, hatch=hatch))
        offset += piece
        length -= piece


def span_middle(offset, length):
    """Where to write a label for a slot: the middle of its first piece."""
    row, col = divmod(offset, PAGE_SIZE)
    piece = min(length, PAGE_SIZE - col)
    return col + piece / 2, row + 0.5


# -- paths: what a trace shows --------------------------------------------------------

def alloc_paths(t):
    """The path each allocation in trace t took: one of PATHS per kmalloc or kmem_cache_alloc.

    Read from the calls and notes under each outermost allocation call:
    the fast-path note, ALLOC_REFILL, CPU_PARTIAL_ALLOC, a get_partial that
    returned a slab, new_slab, __kmalloc_large_node, ZERO_SIZE_PTR, NULL.
    """
    paths = []
    current = None
    for e in t.events:
        outermost = current is None or e.depth <= current[0].depth
        if e.kind == "call" and e.func in ALLOC_CALLS and outermost:
            if current is not None:
                paths.append(classify(current))
            current = [e]
        elif current is not None and e.depth > current[0].depth:
            current.append(e)
        elif current is not None:
            paths.append(classify(current))
            current = None
    if current is not None:
        paths.append(classify(current))
    return paths


def classify(events):
    """The path of one allocation, from the events under its outermost call."""
    top = events[0]
    calls = {e.func: e for e in events if e.kind == "call"}
    notes = " ".join(e.text for e in events if e.kind == "note")
    if top.result is None or top.result in ("0", "None"):
        return "failed"
    if "ZERO_SIZE_PTR" in notes:
        return "zero"
    if "__kmalloc_large_node" in calls:
        return "large"
    if "fast path" in notes:
        return "fast"
    if "ALLOC_REFILL" in notes:
        return "refill"
    if "CPU_PARTIAL_ALLOC" in notes:
        return "cpu partial"
    if "get_partial" in calls and calls["get_partial"].result is not None:
        return "node partial"
    return "new slab"


def path_timeline(paths, *, ax=None, title=None):
    """A strip of allocations, one mark per allocation, on the row of the path it took."""
    paths = list(paths)
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise ValueError(f"paths: {unknown[0]!r} is not one of {', '.join(PATHS)}")
    rows = [p for p in PATHS if p in paths] or ["fast"]
    own = ax is None
    fig, ax = style.new_axes(ax, figsize=(10, 1.2 + 0.35 * len(rows)))
    for r, path in enumerate(rows):
        xs = [i for i, p in enumerate(paths) if p == path]
        ax.scatter(xs, [r] * len(xs), marker="|", s=160, color=PATH_COLORS[path], linewidths=1.6)
        ax.text(1.005, r, f"{len(xs)}", transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=9)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(-0.5, max(len(paths), 1) - 0.5)
    ax.set_xlabel("allocation number")
    ax.set_ylabel("path taken")
    slow = sum(1 for p in paths if p not in ("fast", "large", "zero"))
    ax.set_title(title or f"The path each of {len(paths)} allocations took "
                          f"({slow} slow, {paths.count('fast')} fast)")
    handles = [Patch(facecolor=PATH_COLORS[p], label=f"{p}: {PATH_MEANINGS[p]}") for p in rows]
    style.put_legend(fig, ax, own, handles)
    return fig


def trace_outline(t, collapse=("alloc_pages", "free_pages", "__free_pages")):
    """A trace as text, with what happens inside the page allocator left out.

    Calls named in `collapse` still show, with their arguments and result;
    the lines below them do not.  The slab allocator's own path stays whole.
    """
    out = []
    hide_below = None
    for e in t.events:
        if hide_below is not None:
            if e.depth > hide_below:
                continue
            hide_below = None
        out.append(str(e))
        if e.kind == "call" and e.func in collapse:
            hide_below = e.depth
    return "\n".join(out)


# -- /proc/slabinfo -----------------------------------------------------------------------

def slab_usage(rows, names=None, *, ax=None, title="/proc/slabinfo"):
    """Active and total objects per cache, and the memory their slabs hold, from slabinfo rows.

    `rows` is {name: {"active_objs", "num_objs", "objsize", "pagesperslab",
    "num_slabs", ...}} as mmlab.linux.probes.parse_slabinfo reads the model's
    or the host's file; `names` picks caches (default: every row with slabs,
    largest first, at most 20).
    """
    if names is None:
        names = sorted((n for n, r in rows.items() if r["num_slabs"]),
                       key=lambda n: -rows[n]["num_slabs"] * rows[n]["pagesperslab"])[:20]
    names = [n for n in names if n in rows]
    own = ax is None
    fig, ax = style.new_axes(ax, figsize=(10, 1.4 + 0.3 * max(len(names), 1)))
    y = np.arange(len(names))
    kib = lambda n, key: rows[n][key] * rows[n]["objsize"] / 1024
    total = [rows[n]["num_slabs"] * rows[n]["pagesperslab"] * PAGE_SIZE / 1024 for n in names]
    ax.barh(y, total, color="#dddddd", edgecolor="#999999", label="slab pages")
    ax.barh(y, [kib(n, "num_objs") for n in names], height=0.6, color=style.STATE_COLORS["free"],
            label="all slots (num_objs × objsize)")
    ax.barh(y, [kib(n, "active_objs") for n in names], height=0.6,
            color=style.STATE_COLORS["allocated"], label="active objects (active_objs × objsize)")
    ax.set_yticks(y)
    ax.set_yticklabels(names, family="monospace", fontsize=8)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel("KiB")
    ax.set_ylabel("cache")
    ax.set_title(f"{title}: memory in slabs, and how much of it holds active objects")
    handles, _ = ax.get_legend_handles_labels()
    style.put_legend(fig, ax, own, handles)
    return fig
