"""Pictures of vmalloc: the vmalloc space page by page, the frames behind an area, the cost of a call.

    vmalloc_space(m)               the start of the vmalloc space, one cell per page: mapped pages,
                                   guard pages, lazily freed and pooled ranges, free space
    space_text(m)                  the same as text, one character per page
    area_frames(m, addr)           an allocation's virtual pages above, its physical frames below,
                                   a line from each page to its frame (vmalloc or kmalloc)
    compare_frames(m, a, b, ...)   several allocations, one row each
    walk_text(m, addr)             the page-table walk vmalloc_to_page does, level by level
    free_ranges(m)                 the free address ranges inside [VMALLOC_START, VMALLOC_END]
    call_cost(m, call)             what one call cost the model: frames, page tables, PTEs, calls
    allocation_costs(sizes)        call_cost of kmalloc and vmalloc at each size, on fresh machines
    cost_table(rows), cost_figure(rows)
    trace_outline(t, depth)        a long trace cut to its top levels

Everything reads the model's public state: m.vmap (busy areas, lazy lists,
pools, the free tree), the kernel's page tables (m.init_mm through
mmlab.mm.pgtable) and traces.  Nothing changes the machine, except
call_cost and allocation_costs, which run the calls they measure.

Glossary: an *area* is one vmalloc allocation's reserved range (its pages and
its guard page); a *cell* is one 4 KiB page of virtual address space.
"""
import numpy as np
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.patches import Patch, Rectangle

from ..arch import PAGE_SHIFT, PAGE_SIZE, PAGE_OFFSET, VMALLOC_START, VMALLOC_END, human
from ..errors import require_int
from ..mm import pgtable
from ..mm import vmalloc as vm
from ..mm.page_alloc import FRAME_ALLOCATED
from . import style
from .physmem import fold, draw_raster

# -- the vmalloc space, page by page ----------------------------------------------

# Page classes, in drawing order.  "beyond" pads the last row of a picture.
FREE, MAPPED, GUARD, UNMAPPED, LAZY, POOLED, BEYOND = range(7)
SPACE_CLASSES = ["free", "mapped page", "guard page", "reserved, unmapped", "unpurged (lazily freed)",
                 "pooled (purged, kept by a vmap node)", "beyond"]
SPACE_COLORS = {
    "free": style.STATE_COLORS["free"],
    "mapped page": style.STATE_COLORS["allocated"],
    "guard page": "#3a3a3a",
    "reserved, unmapped": "#f6c9a4",
    "unpurged (lazily freed)": "#a463c9",
    "pooled (purged, kept by a vmap node)": "#4fc1b0",
    "beyond": "#ffffff",
}
SPACE_CHARS = {FREE: ".", MAPPED: "#", GUARD: "g", UNMAPPED: "-", LAZY: "u", POOLED: "p", BEYOND: " "}
VMALLOC_LIMIT = VMALLOC_END + 1         # VMALLOC_END is inclusive


def lazy_areas(m):
    """The lazily freed ranges of every vmap node, by address."""
    return sorted((va for vn in m.vmap.nodes for va in vn.lazy), key=lambda va: va.va_start)


def pooled_areas(m):
    """The purged ranges the vmap nodes keep in their per-size pools, by address."""
    return sorted((va for vn in m.vmap.nodes for pool in vn.pool for va in pool), key=lambda va: va.va_start)


def busy_areas(m):
    """The busy vmap areas (VmapArea, with .vm for a vmalloc allocation), by address."""
    return [m.vmap.busy[a] for a in sorted(m.vmap.busy)]


def used_extent(m, cols=64):
    """How many pages from VMALLOC_START a picture needs to show every range in use.

    The end of the highest busy, lazy or pooled range in the vmalloc space,
    rounded up to whole rows of `cols` pages; at least one row.
    """
    ends = [va.va_end for va in busy_areas(m) + lazy_areas(m) + pooled_areas(m)
            if VMALLOC_START <= va.va_start < VMALLOC_LIMIT]
    pages = (max(ends) - VMALLOC_START) >> PAGE_SHIFT if ends else 0
    return max(cols, -(-pages // cols) * cols)


def check_window(m, start, npages, cols):
    cols = require_int("cols", cols, 1, 4096)
    start = VMALLOC_START if start is None else require_int("start", start, VMALLOC_START, VMALLOC_END)
    if start % PAGE_SIZE:
        raise ValueError(f"start must be page aligned, got {start:#x}")
    if npages is None:
        npages = used_extent(m, cols) - ((start - VMALLOC_START) >> PAGE_SHIFT)
        npages = max(cols, -(-npages // cols) * cols)
    npages = require_int("npages", npages, 1, 1 << 20)
    return start, min(npages, (VMALLOC_LIMIT - start) >> PAGE_SHIFT), cols


def space_classes(m, start=None, npages=None, cols=64):
    """One class per page of [start, start + npages pages): FREE, MAPPED, GUARD, UNMAPPED, LAZY or POOLED.

    A busy area's pages are MAPPED where the kernel page tables map them
    (read from the tables, not from the area's bookkeeping), UNMAPPED where
    not; the last page of an area with a guard is GUARD.  Lazily freed
    ranges are LAZY, pooled ones POOLED; the rest is FREE.  start defaults
    to VMALLOC_START and npages to the extent in use (used_extent).
    """
    start, npages, cols = check_window(m, start, npages, cols)
    end = start + (npages << PAGE_SHIFT)
    cells = np.full(npages, FREE, dtype=np.uint8)

    def span(va):
        lo, hi = max(va.va_start, start), min(va.va_end, end)
        return ((lo - start) >> PAGE_SHIFT, (hi - start) >> PAGE_SHIFT) if lo < hi else None

    for va in busy_areas(m):
        s = span(va)
        if s is None:
            continue
        lo, hi = s
        first = max(va.va_start, start)
        ptes = pgtable.get_ptes(m.init_mm, first, first + ((hi - lo) << PAGE_SHIFT))
        cells[lo:hi] = np.where(ptes != 0, MAPPED, UNMAPPED)
        guard = va.va_end - PAGE_SIZE
        if va.vm is not None and not va.vm.flags & vm.VM_NO_GUARD and start <= guard < end:
            cells[(guard - start) >> PAGE_SHIFT] = GUARD
    for kind, areas in ((LAZY, lazy_areas(m)), (POOLED, pooled_areas(m))):
        for va in areas:
            s = span(va)
            if s is not None:
                cells[s[0]:s[1]] = kind
    return cells


def space_text(m, start=None, npages=None, cols=64):
    """The vmalloc space as text, one character per page, `cols` pages a row.

    '#' a mapped page, 'g' a guard page, '-' reserved but unmapped,
    'u' lazily freed (unpurged), 'p' pooled, '.' free.  Each row starts with
    its offset from VMALLOC_START.
    """
    start, npages, cols = check_window(m, start, npages, cols)
    cells = space_classes(m, start, npages, cols)
    rows = []
    for r in range(0, npages, cols):
        offset = start - VMALLOC_START + (r << PAGE_SHIFT)
        rows.append(f"+{offset:#08x} " + "".join(SPACE_CHARS[c] for c in cells[r:r + cols]))
    return "\n".join(rows)


def vmalloc_space(m, start=None, npages=None, cols=64, ax=None):
    """Figure: the vmalloc space from `start`, one cell per 4 KiB page, `cols` pages a row.

    Orange cells are mapped pages, black ones guard pages, purple ranges wait
    for a lazy purge, teal ones sit in a vmap node's pool, green is free.
    Each busy area is outlined, so two areas never look like one.
    """
    start, npages, cols = check_window(m, start, npages, cols)
    cells = space_classes(m, start, npages, cols)
    fig, ax = style.new_axes(ax, figsize=(9, 1.2 + 0.22 * -(-npages // cols)))
    own = ax.figure is fig and len(fig.axes) == 1
    grid = fold(cells, cols, BEYOND)
    draw_raster(ax, grid, SPACE_CLASSES, SPACE_COLORS)
    end = start + (npages << PAGE_SHIFT)
    for va in busy_areas(m):
        lo, hi = max(va.va_start, start), min(va.va_end, end)
        if lo < hi:
            outline(ax, (lo - start) >> PAGE_SHIFT, (hi - start) >> PAGE_SHIFT, cols)
    rows = grid.shape[0]
    step = max(1, -(-rows // 8))
    ax.set_yticks([r + 0.5 for r in range(0, rows, step)])
    ax.set_yticklabels([f"+{human((start - VMALLOC_START) + r * cols * PAGE_SIZE)}"
                        if start - VMALLOC_START + r * cols * PAGE_SIZE else "+0"
                        for r in range(0, rows, step)], fontsize=8)
    xstep = max(1, cols // 8)
    ax.set_xticks(range(0, cols + 1, xstep))
    ax.set_xticklabels([str(t) for t in range(0, cols + 1, xstep)], fontsize=8)
    ax.set_xlabel("page within the row (4 KiB each)")
    ax.set_ylabel(f"offset from\n{start:#x}" if start != VMALLOC_START else "offset from\nVMALLOC_START")
    ax.set_title(f"The vmalloc space: {npages} pages from {start:#x}")
    shown = sorted(set(cells.tolist()) | {FREE, MAPPED, GUARD})
    handles = style.legend_patches([SPACE_CLASSES[k] for k in shown], SPACE_COLORS)
    style.put_legend(fig, ax, own, handles)
    return fig


def outline(ax, lo, hi, cols):
    """Outline the cells [lo, hi) of a folded raster, one rectangle per row they cover."""
    while lo < hi:
        row, col = divmod(lo, cols)
        stop = min(hi, (row + 1) * cols)
        ax.add_patch(Rectangle((col, row), stop - lo, 1, fill=False, edgecolor="#1f1f1f", linewidth=1.2))
        lo = stop


# -- the frames behind an allocation -------------------------------------------

def area_of(m, addr):
    """The busy vmap area containing addr, or None."""
    for va in busy_areas(m):
        if va.va_start <= addr < va.va_end:
            return va
    return None


def page_frames(m, addr):
    """(kind, start, [pfn or None for each virtual page]) for the allocation at addr.

    For a vmalloc address, the whole area containing it, guard page
    included (None where nothing is mapped), by walking the page tables
    (vmalloc_to_pfn).  For a direct-map (kmalloc) address, the pages ksize
    covers, whose frames are consecutive: virt_to_phys is a subtraction.
    """
    addr = require_int("addr", addr, 0, (1 << 64) - 1)
    if vm.is_vmalloc_addr(addr):
        va = area_of(m, addr)
        if va is None:
            raise ValueError(f"addr: {addr:#x} is in no busy vmalloc area")
        pages = [m.vmalloc_to_pfn(a) for a in range(va.va_start, va.va_end, PAGE_SIZE)]
        return "vmalloc", va.va_start, pages
    if addr >= PAGE_OFFSET:
        base = addr & ~(PAGE_SIZE - 1)
        size = m.ksize(addr)
        first = m.virt_to_phys(base) >> PAGE_SHIFT
        return "kmalloc", base, [first + i for i in range(-(-(addr - base + size) // PAGE_SIZE))]
    raise ValueError(f"addr: {addr:#x} is neither a vmalloc nor a direct-map address")


def contiguous_runs(pfns):
    """How many runs of consecutive frames the mapped pages use (1 means physically contiguous)."""
    mapped = [p for p in pfns if p is not None]
    return sum(1 for i, p in enumerate(mapped) if i == 0 or p != mapped[i - 1] + 1)


def area_frames(m, addr, ax=None, title=None, max_pages=256):
    """Figure: an allocation's virtual pages (top row) and the physical frames behind them (bottom row).

    One line joins each virtual page to its frame.  The bottom row is the
    physical range from the lowest frame used to the highest, scaled to the
    same width, so crossing and fanning lines mean scattered frames and
    parallel lines mean contiguous ones.  A guard page is drawn hatched,
    with no line.  Works for vmalloc addresses and kmalloc (direct-map) ones.
    Only the first max_pages pages are drawn (the title says so).
    """
    kind, base, pfns = page_frames(m, addr)
    total = len(pfns)
    pfns = pfns[:max_pages]
    fig, ax = style.new_axes(ax, figsize=(9, 2.6))
    n = len(pfns)
    mapped = [p for p in pfns if p is not None]
    lo, hi = (min(mapped), max(mapped)) if mapped else (0, 0)
    span = hi - lo + 1
    scale = n / span

    def phys_x(pfn):
        return (pfn - lo + 0.5) * scale

    virt, phys, guards, lines = [], [], [], []
    for i, pfn in enumerate(pfns):
        if pfn is None:
            guards.append(Rectangle((i + 0.05, 0.8), 0.9, 0.2))
            continue
        virt.append(Rectangle((i + 0.05, 0.8), 0.9, 0.2))
        phys.append(Rectangle(((pfn - lo) * scale, 0.0), max(scale, n / 400), 0.2))
        lines.append([(i + 0.5, 0.8), (phys_x(pfn), 0.2)])
    # Collections, not one patch per page: a few hundred pages stay quick to draw.
    page = SPACE_COLORS["mapped page"]
    ax.add_collection(PatchCollection(virt, facecolor=page, edgecolor="#333333", linewidth=0.5))
    ax.add_collection(PatchCollection(phys, facecolor=page, edgecolor="#333333", linewidth=0.3))
    ax.add_collection(PatchCollection(guards, facecolor="#ffffff", hatch="xx", edgecolor="#333333",
                                      linewidth=0.5))
    ax.add_collection(LineCollection(lines, colors=style.HIGHLIGHT, linewidths=0.8, alpha=0.7))
    ax.add_patch(Rectangle((0, 0), n, 0.2, fill=False, edgecolor="#999999", linewidth=0.8))
    ax.set_xlim(0, n)
    ax.set_ylim(-0.05, 1.05)
    ax.set_yticks([0.1, 0.9])
    ax.set_yticklabels(["physical\nframes", "virtual\npages"], fontsize=8)
    ticks = sorted({lo, hi} | ({(lo + hi) // 2} if span > 8 else set()))
    ax.set_xticks([phys_x(p) for p in ticks])
    ax.set_xticklabels([f"{p:#x}" for p in ticks], family="monospace", fontsize=8)
    ax.set_xlabel(f"physical frame number (pfn), {lo:#x} to {hi:#x}")
    top = ax.secondary_xaxis("top")
    step = max(1, n // 8)
    top.set_xticks([i + 0.5 for i in range(0, n, step)])
    top.set_xticklabels([str(i) for i in range(0, n, step)], fontsize=8)
    top.set_xlabel(f"virtual page of the allocation at {base:#x}", fontsize=9)
    ax.set_ylabel("address")
    runs = contiguous_runs(pfns)
    first = f"the first {n} of {total} pages" if total > n else f"{len(mapped)} pages"
    ax.set_title(title or f"{kind}: {first} in {runs} physically contiguous "
                          f"run{'s' if runs != 1 else ''}", fontsize=10)
    return fig


def compare_frames(m, *addrs, titles=None):
    """Figure: area_frames for each address, one row each (for example a kmalloc and a vmalloc)."""
    if not addrs:
        raise ValueError("addrs: give at least one address")
    fig, axes = style.new_axes(None, figsize=(9, 2.6 * len(addrs)), nrows=len(addrs))
    axes = np.atleast_1d(axes)
    for i, (ax, addr) in enumerate(zip(axes, addrs)):
        area_frames(m, addr, ax=ax, title=titles[i] if titles else None)
    return fig


# -- the page-table walk ---------------------------------------------------------------

def walk_text(m, addr):
    """The walk of init_mm's tables for addr, one line per level, and the frame it ends at.

        pgd[402] in table 0x1000  -> 0x...067 (pfn 0x2805 P|RW|U|A|D)
        ...
    """
    addr = require_int("addr", addr, 0, (1 << 64) - 1)
    lines = [f"{addr:#x}: pgd {pgtable.pgd_index(addr)}, pud {pgtable.pud_index(addr)}, "
             f"pmd {pgtable.pmd_index(addr)}, pte {pgtable.pte_index(addr)}, "
             f"offset {addr & (PAGE_SIZE - 1):#x}"]
    for name, (table, index), value in pgtable.walk(m.init_mm, addr):
        lines.append(f"  {name}[{index:3d}] in table {table:#x}: {pgtable.entry_str(value)}")
    pfn = pgtable.follow_pfn(m.init_mm, addr)
    lines.append(f"  -> frame {pfn:#x}" if pfn is not None else "  -> not mapped: a fault")
    return "\n".join(lines)


def free_ranges(m):
    """The free address ranges of the vmalloc space, [VMALLOC_START, VMALLOC_END], as (start, end).

    The kernel's free tree spans the whole 64-bit space; this clips it to
    the part vmalloc() searches.  Lazily freed and pooled ranges are not free.
    """
    out = []
    for s, e in m.vmap.free:
        s, e = max(s, VMALLOC_START), min(e, VMALLOC_LIMIT)
        if s < e:
            out.append((s, e))
    return out


# -- the cost of a call ----------------------------------------------------------------

def allocated_frames(m):
    return int(np.count_nonzero(m.mem_map.state == FRAME_ALLOCATED))


def mapped_ptes(m):
    """Non-empty entries in every PTE table (level 1), kernel's and processes'."""
    return sum(int(np.count_nonzero(t)) for pfn, t in m.page_tables.items()
               if m.page_table_level[pfn] == pgtable.LEVEL_PTE)


def held_bytes(m, addr):
    """The memory an allocation holds, in bytes: what it uses, not what it asked for.

    kmalloc: ksize (the slab slot, or the pages of a large kmalloc).
    vmalloc: its pages, plus the vm_struct's slab slot, plus its page array
    (a kmalloc slot, or for "vpages" a vmalloc area of its own, counted the
    same way).  Page tables and the vmap_area are left out: tables are
    shared with neighbouring areas and stay after vfree.  0 for NULL.
    """
    if not addr:
        return 0
    if not vm.is_vmalloc_addr(addr):
        return m.ksize(addr)
    area = vm.find_vm_area(m, addr)
    if area is None:
        raise ValueError(f"addr: {addr:#x} is not the start of a vmalloc area")
    return area.nr_pages * PAGE_SIZE + m.ksize(area.kaddr) + held_bytes(m, area.pages_addr)


def call_cost(m, call):
    """Run call() on m under a trace; what it cost the model, as a dict.

        result       what call() returned
        held         bytes the allocation holds (held_bytes of the result)
        frames       frames newly allocated (data pages, slab pages, page tables)
        page_tables  page-table pages among them
        ptes         page-table entries written (kernel PTEs that went from empty to set)
        calls        kernel functions entered (the trace's call events)
        functions    the distinct functions, sorted
    """
    frames, tables, ptes = allocated_frames(m), m.node_stat["nr_page_table_pages"], mapped_ptes(m)
    with m.trace() as t:
        result = call()
    names = t.calls()
    return {"result": result, "held": held_bytes(m, result), "frames": allocated_frames(m) - frames,
            "page_tables": m.node_stat["nr_page_table_pages"] - tables,
            "ptes": mapped_ptes(m) - ptes, "calls": len(names), "functions": sorted(set(names))}


def allocation_costs(sizes, kinds=("kmalloc", "vmalloc"), ram="256MiB", cpus=2, seed=0, warm=True):
    """call_cost of m.<kind>(size) for every kind and size, each on a fresh machine.

    With warm=True one allocation of the same kind and size comes first and
    is kept, so the measured call finds its slab caches and page tables made
    (the steady state of a running kernel); warm=False measures the first
    call on a freshly booted machine.  Returns a list of dicts: size, kind,
    and call_cost's fields.
    """
    from ..machine import Machine
    rows = []
    for size in sizes:
        for kind in kinds:
            m = Machine(ram=ram, cpus=cpus, seed=seed)
            alloc = getattr(m, kind)
            if warm:
                alloc(size)
            cost = call_cost(m, lambda: alloc(size))
            rows.append({"size": size, "kind": kind, **cost})
    return rows


def cost_table(rows):
    """allocation_costs as a text table, one line per call."""
    out = [f"{'size':>8s}  {'call':8s} {'bytes held':>11s} {'frames':>7s} {'tables':>7s} {'PTEs':>6s} "
           f"{'calls':>6s} {'functions':>9s}"]
    for r in rows:
        out.append(f"{human(r['size']):>8s}  {r['kind']:8s} {r['held']:11,d} {r['frames']:7d} "
                   f"{r['page_tables']:7d} {r['ptes']:6d} {r['calls']:6d} {len(r['functions']):9d}")
    return "\n".join(out)


KIND_COLORS = {"kmalloc": "#4f8fd9", "vmalloc": "#f08a3c", "kvmalloc": "#8e5cc4", "vzalloc": "#d9534f"}


def cost_figure(rows, title="The cost of one allocation, kmalloc against vmalloc (steady state)"):
    """Figure: frames and kernel calls per allocation against its size, one line per allocator (log-log)."""
    fig, axes = style.new_axes(None, figsize=(9, 3.4), ncols=2)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    for ax, key, label in ((axes[0], "held", "bytes the allocation holds"),
                           (axes[1], "calls", "kernel functions entered")):
        for kind in kinds:
            mine = [r for r in rows if r["kind"] == kind]
            ax.plot([r["size"] for r in mine], [r[key] for r in mine], marker="o",
                    color=KIND_COLORS.get(kind, style.UNKNOWN), label=kind)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2 if key == "held" else 10)
        sizes = sorted({r["size"] for r in rows})
        ax.set_xticks(sizes)
        ax.set_xticklabels([human(s).replace(" ", "") for s in sizes], fontsize=7, rotation=45)
        ax.set_xlabel("size requested")
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_title("Memory held by the allocation", fontsize=10)
    axes[1].set_title("Work done per call", fontsize=10)
    handles = [Patch(facecolor=KIND_COLORS.get(k, style.UNKNOWN), label=k) for k in kinds]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(kinds), frameon=False, fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


# -- traces, shortened -------------------------------------------------------------------

def trace_outline(t, depth=1, notes=True):
    """A trace cut to its top `depth` + 1 levels of calls (and their notes), then a count of the rest.

    A vmalloc of a megabyte records thousands of events, most of them the
    page allocator's; the outline keeps the vmalloc path readable.  A run of
    calls of one function at one level prints as its first call and a
    count ("... and 255 more calls of free_pages").
    """
    depth = require_int("depth", depth, 0, 64)
    kept = [e for e in t.events if e.depth <= depth and (notes or e.kind == "call")]
    lines, run = [], 0
    for i, e in enumerate(kept):
        prev = kept[i - 1] if i else None
        same = (prev is not None and e.kind == "call" and prev.kind == "call" and prev.func == e.func
                and prev.depth == e.depth)
        if same:
            run += 1
            continue
        if run:
            lines.append(f"{'  ' * prev.depth}... and {run} more call{'s' if run > 1 else ''} of {prev.func}")
            run = 0
        lines.append(str(e))
    if run:
        lines.append(f"{'  ' * kept[-1].depth}... and {run} more call{'s' if run > 1 else ''} of {kept[-1].func}")
    hidden = len(t.events) - len(kept)
    if hidden:
        lines.append(f"({hidden} deeper events not shown)")
    return "\n".join(lines)
