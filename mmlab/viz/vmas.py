"""Pictures of a process's address space: its VMAs to scale, what an operation changed,
the maple tree that holds them, and the heap.

    address_space(p)              every VMA to scale on a broken axis, coloured by kind
    vma_change(before, after)     two rows of VMAs over one window: before and after an operation
    maple_tree(p)                 a drawing of the maple tree that would hold p's VMAs
    heap_picture(p)               the [heap] VMA, the break, and the room left above it
    brk_timeline(steps)           the break and the heap VMA after each of a series of brk calls

  as text:
    layout_text(p)                one line per VMA (kind, size, name) and one per hole
    shape(areas, base)            VMAs in pages from base: '0-3 rw-p, 3-4 r--p' (the form of
                                  mmlab.linux.scenario.shape)
    strip(areas, base, pages)     one character per page, with a mark where each VMA starts
    maple_text(p)                 the drawing's nodes, one line each

  data:
    Area, snapshot(p, lo, hi)     frozen copies of VMAs (p.vmas are live views)
    vma_kind(v, exe)              'program', 'library', 'heap', 'stack', 'anonymous', ...
    clusters(areas, gap)          VMAs grouped where the holes between them are small
    maple_layout(p)               the nodes of the drawn maple tree
    brk_steps(p, offsets)         run brk calls and record what each did (this one changes p)

Everything reads public state: p.vmas (read-only VMA views), p.mm's layout
numbers (start_brk, brk, mmap_base) and traces; nothing changes the process,
except brk_steps, which makes the calls it records.

About the maple tree picture: the model does not build a maple tree (its
lookups bisect a sorted list, see mmlab/mm/vma.py).  maple_layout draws the
tree the kernel's structure implies for the same VMAs, packed as evenly as a
freshly built tree: leaves (maple_leaf_64) of up to 16 slots, each slot a VMA
or a gap (a NULL range), and internal nodes of the allocation-range kind
(maple_arange_64) with up to 10 children and the largest gap below each.  A
real tree's nodes are filled according to its history of inserts and
deletions, so its shape differs in detail; its height and its principle do not.
"""
from collections import namedtuple
import math
import os

import numpy as np
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from ..arch import PAGE_SIZE, human
from ..errors import require_int
from . import style

ULONG_MAX = (1 << 64) - 1
VM_SHARED = 0x08                # include/linux/mm.h
VM_GROWSDOWN = 0x100

LEAF_SLOTS = 16                 # MAPLE_RANGE64_SLOTS: a maple_leaf_64 holds 16 ranges
ARANGE_SLOTS = 10               # MAPLE_ARANGE64_SLOTS: an allocation-range node has 10 children

# -- what a VMA is, for a picture -------------------------------------------------------

KINDS = ["program", "library", "file", "heap", "stack", "anonymous", "shared anonymous",
         "no access", "special"]
KIND_COLORS = {
    "program": "#4f8fd9",
    "library": "#8e5cc4",
    "file": "#2a9d8f",
    "heap": "#f08a3c",
    "stack": "#d9534f",
    "anonymous": "#f2c14e",
    "shared anonymous": "#e78ac3",
    "no access": "#d0d0d0",
    "special": "#7f7f7f",
    "gap": "#ffffff",
}

Area = namedtuple("Area", "start end perms name kind flags pgoff")
Area.__doc__ = ("A frozen copy of one VMA: [start, end), the maps perms ('rw-p'), the maps name, "
                "its kind (see vma_kind), vm_flags and vm_pgoff.")


def vma_kind(v, exe=None):
    """What a VMA holds, for colouring: one of KINDS.

    `v` is a VMA view (p.vmas) or an Area; `exe` the program's path.
    Special mappings ([vdso], [vvar]...) first, then PROT_NONE, then by
    backing: the program's file, a shared library, another file, the heap,
    the stack, shared anonymous memory (a shmem object maps print as
    '/dev/zero (deleted)'), and plain anonymous memory.
    """
    if isinstance(v, Area):
        return v.kind
    name = v.name
    if name in ("[heap]",):
        return "heap"
    if name == "[stack]" or v.vm_flags & VM_GROWSDOWN:
        return "stack"
    if name.startswith("[") and v.vm_file is None:
        return "anonymous" if name.startswith("[anon:") else "special"
    if v.perms[:3] == "---":
        return "no access"
    if v.vm_file is not None:
        path = v.vm_file.path
        if path.startswith("/dev/zero") or name.startswith("[anon_shmem"):
            return "shared anonymous"
        if exe is not None and path == exe:
            return "program"
        if ".so" in os.path.basename(path):
            return "library"
        return "file"
    return "anonymous"


def snapshot(p, lo=0, hi=None):
    """Frozen copies (Area) of p's VMAs that meet [lo, hi), in address order.

    `p` is a Process, or a list of VMA views or Areas.  p.vmas are live
    views: after an mprotect they show the new state.  A snapshot keeps the
    old one, for before/after pictures.
    """
    hi = ULONG_MAX if hi is None else hi
    exe = getattr(p, "exe", None)
    views = p.vmas if hasattr(p, "vmas") else p
    out = []
    for v in views:
        if isinstance(v, Area):
            if v.end > lo and v.start < hi:
                out.append(v)
            continue
        if v.vm_end > lo and v.vm_start < hi:
            out.append(Area(v.vm_start, v.vm_end, v.perms, v.name, vma_kind(v, exe), v.vm_flags, v.vm_pgoff))
    return out


def _areas(p_or_areas):
    return snapshot(p_or_areas)


def size_text(nbytes):
    """A size as figures print it, up to exbibytes: '4 KiB', '41.7 TiB', '16 EiB'."""
    for unit, size in (("EiB", 1 << 60), ("PiB", 1 << 50)):
        if nbytes >= size:
            q = nbytes / size
            return f"{q:g} {unit}" if q == int(q) else f"{q:.1f} {unit}"
    return human(nbytes)


def short_name(a):
    """A VMA's name for a label: the file's basename, the [label], or 'anon'."""
    if a.name.startswith("["):
        return a.name
    if a.name:
        return os.path.basename(a.name.replace(" (deleted)", ""))
    return "anon"


# -- text ---------------------------------------------------------------------------------

def shape(areas, base=0):
    """VMAs in pages from `base`, as mmlab.linux.scenario.shape writes them.

        '0-3 rw-p, 3-4 r--p f@2, 5-6 rw-p [heap]'

    A file VMA shows its file's basename and its offset in pages (shared
    anonymous memory 'shm'); a labelled one its [label]; anonymous memory
    nothing.  '' for no VMAs.
    """
    parts = []
    for a in _areas(areas):
        text = f"{(a.start - base) // PAGE_SIZE}-{(a.end - base) // PAGE_SIZE} {a.perms}"
        if a.name.startswith("["):
            text += f" {a.name}"
        elif a.kind == "shared anonymous":
            text += f" shm@{a.pgoff}"
        elif a.name:
            text += f" {short_name(a)}@{a.pgoff}"
        parts.append(text)
    return ", ".join(parts)


STRIP_CHARS = {"---": "-", "r--": "r", "rw-": "w", "r-x": "x", "rwx": "X", "-w-": "w", "--x": "x", "-wx": "X"}


def strip(areas, base, pages):
    """A window of `pages` pages from `base`, one character per page, and a mark under each VMA start.

        wwwrww..x
        ^  ^^   ^

    'r' read-only, 'w' writable, 'x' executable, 'X' writable and
    executable, '-' PROT_NONE, '.' nothing mapped; '^' marks the first page
    of each VMA, so two VMAs with the same protection still show as two.
    """
    pages = require_int("pages", pages, 1, 1 << 16)
    cells = ["."] * pages
    marks = [" "] * pages
    for a in _areas(areas):
        lo = max(0, (a.start - base) // PAGE_SIZE)
        hi = min(pages, (a.end - base) // PAGE_SIZE)
        for i in range(lo, hi):
            cells[i] = STRIP_CHARS.get(a.perms[:3], "?")
        if 0 <= (a.start - base) // PAGE_SIZE < pages:
            marks[(a.start - base) // PAGE_SIZE] = "^"
    return "".join(cells) + "\n" + "".join(marks).rstrip()


def layout_text(p):
    """One line per VMA (range, perms, size, kind, name) and one per hole between them."""
    areas = _areas(p)
    lines, prev = [], None
    for a in areas:
        if prev is not None and a.start > prev.end:
            lines.append(f"{'':33s}      hole of {size_text(a.start - prev.end)}")
        lines.append(f"{a.start:012x}-{a.end:012x} {a.perms} {human(a.end - a.start):>9s}  "
                     f"{a.kind:16s} {short_name(a) if a.name else ''}")
        prev = a
    return "\n".join(lines)


def _legend(fig, ax, own, handles):
    """style.put_legend, unless there is nothing to explain (an empty window)."""
    if handles:
        style.put_legend(fig, ax, own, handles)


# -- the whole address space on a broken axis -----------------------------------------------

def clusters(areas, gap=16 << 20):
    """VMAs grouped into runs whose holes are all at most `gap` bytes (a list of lists of Areas)."""
    groups = []
    for a in _areas(areas):
        if groups and a.start - groups[-1][-1].end <= gap:
            groups[-1].append(a)
        else:
            groups.append([a])
    return groups


def cluster_title(group, mm=None):
    """What a cluster of VMAs is: the program, the heap, the mmap area, the stack."""
    kinds = {a.kind for a in group}
    if kinds <= {"program"}:
        return "the program"
    if kinds == {"heap"}:
        return "the heap"
    if "stack" in kinds and len(group) == 1:
        return "the stack"
    if "program" in kinds and "heap" in kinds:
        return "the program and its heap"
    return "the mmap area"


def _draw_areas(ax, areas, lo, hi, y=0.0, height=1.0, labels=True, min_label=0.06, fontsize=7):
    """Rectangles for areas (clipped to [lo, hi)) on axes whose x is the address."""
    span = hi - lo
    for a in areas:
        s, e = max(a.start, lo), min(a.end, hi)
        if s >= e:
            continue
        ax.add_patch(Rectangle((s, y), e - s, height, facecolor=KIND_COLORS.get(a.kind, style.UNKNOWN),
                               edgecolor="#222222", linewidth=0.6))
        if labels and (e - s) / span >= min_label:
            ax.text((s + e) / 2, y + height / 2, f"{short_name(a)}\n{a.perms}", ha="center", va="center",
                    fontsize=fontsize, clip_on=True)


def _hex_ticks(ax, lo, hi):
    ax.set_xticks([lo, hi])
    ax.set_xticklabels([f"{lo:#x}", f"{hi:#x}"], family="monospace", fontsize=7)
    labels = ax.get_xticklabels()
    labels[0].set_horizontalalignment("left")
    labels[-1].set_horizontalalignment("right")


def address_space(p, gap=16 << 20, ax=None, title=None):
    """Figure: every VMA of p to scale, on an axis broken at each hole larger than `gap` bytes.

    One panel per cluster of VMAs (the program, the heap, the mmap area,
    the stack), highest addresses at the top as the usual drawings put
    them; inside a panel the address axis is linear, so widths are true
    sizes.  Between panels, the size of the hole the axis skips.  Colours
    say what each VMA holds (vma_kind); VMAs wide enough are labelled with
    their name and perms.  [vsyscall] is not drawn: it is not a VMA of the
    process (maps prints it from a kernel-wide gate VMA).
    """
    areas = _areas(p)
    if not areas:
        raise ValueError("p: no VMAs to draw")
    groups = clusters(areas, gap)[::-1]         # highest first: the top panel is the stack
    n = len(groups)
    if ax is not None:
        raise ValueError("ax: address_space draws one panel per cluster and makes its own figure")
    fig, axes = style.new_axes(None, figsize=(9, 0.5 + 1.15 * n), nrows=n)
    axes = np.atleast_1d(axes)
    for k, (axk, group) in enumerate(zip(axes, groups)):
        lo, hi = group[0].start, group[-1].end
        _draw_areas(axk, group, lo, hi)
        axk.set_xlim(lo, hi)
        axk.set_ylim(0, 1)
        axk.set_yticks([])
        _hex_ticks(axk, lo, hi)
        axk.set_ylabel(cluster_title(group), rotation=0, ha="right", va="center", fontsize=8)
        axk.set_title(f"{human(hi - lo)}, {len(group)} VMA{'s' if len(group) != 1 else ''}", fontsize=8,
                      loc="right")
        if k + 1 < n:
            below = groups[k + 1][-1].end
            axk.annotate(f"hole of {size_text(lo - below)} (axis broken)", xy=(0.5, -0.32),
                         xycoords="axes fraction", ha="center", va="center", fontsize=8, color="#555555")
    axes[-1].set_xlabel("virtual address (linear inside each panel)")
    pid = getattr(p, "pid", None)
    fig.suptitle(title or f"The address space of {'pid ' + str(pid) if pid else 'a process'}: "
                          f"{len(areas)} VMAs, to scale on a broken axis", fontsize=11)
    shown = [k for k in KINDS if any(a.kind == k for a in areas)]
    handles = style.legend_patches(shown, KIND_COLORS)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), frameon=False,
               fontsize=8)
    return fig


# -- before and after one operation -------------------------------------------------------------

def vma_change(before, after, lo=None, hi=None, op=None, highlight=None, ax=None):
    """Figure: the VMAs of a window before (top row) and after (bottom row) an operation.

    `before` and `after` are snapshots (lists of Area, or a Process for
    its current state); [lo, hi) is the window (by default every VMA of
    both); `op` names the operation for the title; `highlight` = (start,
    end) shades the range it acted on.  Each VMA is one box: a merge shows
    as fewer boxes below, a split as more.  The x axis counts pages from lo.
    """
    b, a = _areas(before), _areas(after)
    if lo is None or hi is None:
        both = b + a
        if not both:
            raise ValueError("before, after: no VMAs, and no window given")
        lo = min(x.start for x in both) if lo is None else lo
        hi = max(x.end for x in both) if hi is None else hi
    if hi <= lo:
        raise ValueError(f"hi must be above lo, got [{lo:#x}, {hi:#x})")
    b = [x for x in b if x.end > lo and x.start < hi]
    a = [x for x in a if x.end > lo and x.start < hi]
    fig, ax = style.new_axes(ax, figsize=(9, 2.4))
    own = len(fig.axes) == 1
    pages = (hi - lo) / PAGE_SIZE

    def row(areas, y):
        for x in areas:
            s, e = (max(x.start, lo) - lo) / PAGE_SIZE, (min(x.end, hi) - lo) / PAGE_SIZE
            ax.add_patch(Rectangle((s, y), e - s, 0.7, facecolor=KIND_COLORS.get(x.kind, style.UNKNOWN),
                                   edgecolor="#222222", linewidth=1.0))
            if (e - s) / pages >= 0.05:
                ax.text((s + e) / 2, y + 0.35, x.perms, ha="center", va="center", fontsize=8)

    row(b, 1.1)
    row(a, 0.1)
    if highlight is not None:
        s, e = ((max(highlight[0], lo) - lo) / PAGE_SIZE, (min(highlight[1], hi) - lo) / PAGE_SIZE)
        ax.add_patch(Rectangle((s, 0.0), max(e - s, 0), 1.9, facecolor=style.HIGHLIGHT, alpha=0.12,
                               edgecolor=style.HIGHLIGHT, linestyle="--", linewidth=1.0))
    ax.set_xlim(0, pages)
    ax.set_ylim(0, 1.9)
    ax.set_yticks([0.45, 1.45])
    ax.set_yticklabels([f"after\n{len(a)} VMA{'s' if len(a) != 1 else ''}",
                        f"before\n{len(b)} VMA{'s' if len(b) != 1 else ''}"], fontsize=8)
    ax.set_xlabel(f"pages from {lo:#x}")
    ax.set_ylabel("VMAs")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{op}: {len(b)} VMA{' becomes' if len(b) == 1 else 's become'} {len(a)}" if op else
                 "VMAs before and after", fontsize=10)
    shown = [k for k in KINDS if any(x.kind == k for x in b + a)]
    handles = style.legend_patches(shown, KIND_COLORS)
    if highlight is not None:
        handles.append(Patch(facecolor=style.HIGHLIGHT, alpha=0.12, edgecolor=style.HIGHLIGHT,
                             linestyle="--", label="the range the call named"))
    _legend(fig, ax, own, handles)
    return fig


# -- the maple tree -----------------------------------------------------------------------------

class MapleNode:
    """One node of the drawn maple tree.

    A leaf (kind 'leaf', maple_leaf_64) has `slots`: (first, last, area or
    None) ranges, last inclusive, None for a gap.  An internal node (kind
    'arange', maple_arange_64) has `children`, and for each child its
    `pivots` (the last index it covers) and `gaps` (the largest gap under it).
    `first` and `last` are the range the node covers.
    """

    def __init__(self, kind, first, last, slots=None, children=None):
        self.kind, self.first, self.last = kind, first, last
        self.slots = slots or []
        self.children = children or []

    @property
    def pivots(self):
        return [c.last for c in self.children] if self.children else [s[1] for s in self.slots]

    @property
    def gap(self):
        """The largest gap (NULL range, in bytes) anywhere under this node."""
        if self.kind == "leaf":
            return max([s[1] - s[0] + 1 for s in self.slots if s[2] is None] or [0])
        return max(c.gap for c in self.children)

    @property
    def gaps(self):
        return [c.gap for c in self.children]

    def __len__(self):
        return len(self.children) if self.children else len(self.slots)

    def __repr__(self):
        return f"<maple {self.kind} [{self.first:#x}, {self.last:#x}] {len(self)} slots>"


def maple_entries(p):
    """The ranges the mm's maple tree stores: each VMA and each gap, covering 0 to ULONG_MAX.

    Returns (first, last, area or None) with last inclusive; a gap is None.
    """
    entries, cur = [], 0
    for a in _areas(p):
        if a.start > cur:
            entries.append((cur, a.start - 1, None))
        entries.append((a.start, a.end - 1, a))
        cur = a.end
    entries.append((cur, ULONG_MAX, None))
    return entries


def _even_chunks(items, most):
    """items cut into the fewest runs of at most `most`, as even in length as possible."""
    k = max(1, -(-len(items) // most))
    q, r = divmod(len(items), k)
    out, i = [], 0
    for j in range(k):
        n = q + (j < r)
        out.append(items[i:i + n])
        i += n
    return out


def maple_layout(p):
    """The levels of the drawn maple tree for p's VMAs, root first: a list of lists of MapleNode.

    Leaves hold up to 16 ranges, internal nodes up to 10 children; both
    are filled as evenly as the count allows (a freshly built tree).  A
    process with a handful of VMAs needs one leaf, which is then the root.
    """
    leaves = [MapleNode("leaf", chunk[0][0], chunk[-1][1], slots=chunk)
              for chunk in _even_chunks(maple_entries(p), LEAF_SLOTS)]
    levels = [leaves]
    while len(levels[-1]) > 1:
        levels.append([MapleNode("arange", chunk[0].first, chunk[-1].last, children=chunk)
                       for chunk in _even_chunks(levels[-1], ARANGE_SLOTS)])
    return levels[::-1]


def maple_text(p):
    """The drawn tree, one line per node: level, kind, range, slots and the largest gap below."""
    lines = []
    for depth, level in enumerate(maple_layout(p)):
        for node in level:
            lines.append(f"{'  ' * depth}{node.kind:6s} [{node.first:#x}, {node.last:#x}]  "
                         f"{len(node):2d} of {LEAF_SLOTS if node.kind == 'leaf' else ARANGE_SLOTS} slots, "
                         f"largest gap {size_text(node.gap)}")
    return "\n".join(lines)


def maple_tree(p, ax=None, labels=None):
    """Figure: a drawing of the maple tree that holds p's VMAs (see maple_layout for what it is).

    Each node is a row of slots.  In a leaf, a slot is a VMA (coloured by
    kind) or a gap (white); unused slots are hatched.  In an internal node
    each used slot points to a child, and carries the largest gap below it,
    which is how the kernel finds free space without visiting every gap.
    `labels` (default: when there are at most 4 leaves) writes each leaf
    slot's name.
    """
    levels = maple_layout(p)
    leaves = levels[-1]
    labels = len(leaves) <= 4 if labels is None else labels
    width = len(leaves) * (LEAF_SLOTS + 2)
    fig, ax = style.new_axes(ax, figsize=(max(9, min(18, width * 0.2)), 1.6 + 1.4 * len(levels)))
    own = len(fig.axes) == 1
    depth = len(levels)
    pos = {}
    for i, leaf in enumerate(leaves):
        pos[id(leaf)] = i * (LEAF_SLOTS + 2) + 1
    for level in levels[-2::-1]:
        for node in level:
            first = pos[id(node.children[0])]
            last = pos[id(node.children[-1])] + LEAF_SLOTS
            pos[id(node)] = (first + last) / 2 - ARANGE_SLOTS / 2
    height = 0.8
    for d, level in enumerate(levels):
        y = (depth - 1 - d) * 2.0
        for node in level:
            x0 = pos[id(node)]
            nslots = LEAF_SLOTS if node.kind == "leaf" else ARANGE_SLOTS
            for s in range(nslots):
                x = x0 + s
                if s >= len(node):
                    ax.add_patch(Rectangle((x, y), 1, height, facecolor="#f4f4f4", hatch="///",
                                           edgecolor="#bbbbbb", linewidth=0.4))
                    continue
                if node.kind == "leaf":
                    first, last, area = node.slots[s]
                    color = KIND_COLORS["gap"] if area is None else KIND_COLORS.get(area.kind, style.UNKNOWN)
                    ax.add_patch(Rectangle((x, y), 1, height, facecolor=color, edgecolor="#222222",
                                           linewidth=0.6))
                    if labels:
                        text = f"gap {size_text(last - first + 1)}" if area is None else \
                            f"{short_name(area)} {area.perms[:3]}"
                        ax.text(x + 0.5, y - 0.1, text, rotation=90, ha="center", va="top", fontsize=6)
                else:
                    child = node.children[s]
                    ax.add_patch(Rectangle((x, y), 1, height, facecolor="#dbe7f7", edgecolor="#222222",
                                           linewidth=0.6))
                    cx = pos[id(child)] + (LEAF_SLOTS if child.kind == "leaf" else ARANGE_SLOTS) / 2
                    ax.plot([x + 0.5, cx], [y, y - 2.0 + height], color="#555555", linewidth=0.6)
                    if labels:
                        ax.text(x + 0.5, y + height + 0.05, size_text(child.gap).replace(" ", ""),
                                rotation=90, ha="center", va="bottom", fontsize=5.5, color="#1f3f7f")
    ax.set_xlim(-1, max(pos[id(n)] + LEAF_SLOTS for n in leaves) + 1)
    ax.set_ylim(-2.4 if labels else -0.6, (depth - 1) * 2.0 + height + 1.6)
    ax.set_yticks([(depth - 1 - d) * 2.0 + height / 2 for d in range(depth)])
    ax.set_yticklabels(["root" if d == 0 else ("leaves" if d == depth - 1 else f"level {d}")
                        for d in range(depth)] if depth > 1 else ["root (a leaf)"], fontsize=8)
    ax.set_xticks([])
    ax.set_xlabel("slots in address order (leaf slot: a VMA or a gap; internal slot: a child, "
                  "with the largest gap below it)", fontsize=8)
    ax.set_ylabel("tree level")
    entries = sum(len(leaf) for leaf in leaves)
    nvmas = sum(1 for leaf in leaves for s in leaf.slots if s[2] is not None)
    ax.set_title(f"A drawing of the maple tree for {nvmas} VMAs: {entries} ranges in {len(leaves)} "
                 f"lea{'ves' if len(leaves) != 1 else 'f'}, height {depth}", fontsize=10)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    shown = [k for k in KINDS if any(s[2] is not None and s[2].kind == k for leaf in leaves for s in leaf.slots)]
    handles = style.legend_patches(shown + ["gap"], KIND_COLORS)
    handles.append(Patch(facecolor="#dbe7f7", edgecolor="#222222", label="pointer to a child"))
    handles.append(Patch(facecolor="#f4f4f4", hatch="///", edgecolor="#bbbbbb", label="unused slot"))
    _legend(fig, ax, own, handles)
    return fig


def tree_heights(n):
    """How deep a lookup goes among n VMAs: (rb-tree best, rb-tree worst, maple tree).

    A red-black tree of n nodes is at least ceil(log2(n + 1)) and at most
    2 log2(n + 1) deep.  The maple tree holds about 2n ranges (VMAs and the
    gaps between them) in leaves of 16 and internal nodes of 10.
    """
    n = require_int("n", n, 1)
    best = math.ceil(math.log2(n + 1))
    worst = math.floor(2 * math.log2(n + 1))
    entries = 2 * n + 1
    height, nodes = 1, -(-entries // LEAF_SLOTS)
    while nodes > 1:
        nodes = -(-nodes // ARANGE_SLOTS)
        height += 1
    return best, worst, height


# -- the heap and the break --------------------------------------------------------------------

def heap_state(p):
    """(start_brk, brk, the [heap] Area or None, the first VMA above the heap or None)."""
    mm = p.mm
    areas = _areas(p)
    heap = next((a for a in areas if a.kind == "heap"), None)
    top = max(mm.brk, mm.start_brk)
    above = next((a for a in areas if a.start >= (heap.end if heap else top) and a.start >= mm.start_brk), None)
    return mm.start_brk, mm.brk, heap, above


def brk_limit(p, above):
    """The highest page-aligned end the heap may grow to below `above` (an Area), or None.

    __do_sys_brk wants a free page between the new end and the next VMA's
    reserved start (vm_start_gap: for a stack, stack_guard_gap lower).
    """
    if above is None:
        return None
    reserved = above.start
    if above.flags & VM_GROWSDOWN:
        reserved = max(0, reserved - p.machine.stack_guard_gap)
    return reserved - PAGE_SIZE


def heap_picture(p, above=16, ax=None, title=None):
    """Figure: the heap in pages from start_brk: its VMA, the break, and the room above it.

    The window runs from two pages below start_brk to `above` pages past
    the heap's end (further, to show the next VMA if it is close).  The
    exact break is a line (it need not be page aligned; the VMA ends at the
    next page); the pages the heap may not grow into, the last free page
    below the next VMA (and a stack's guard gap), are hatched.
    """
    start, brk, heap, nxt = heap_state(p)
    end = heap.end if heap else max(brk, start)
    lo = start - 2 * PAGE_SIZE
    hi = end + above * PAGE_SIZE
    limit = brk_limit(p, nxt)
    if nxt is not None and nxt.start - end <= 4 * above * PAGE_SIZE:
        hi = max(hi, nxt.start + 2 * PAGE_SIZE)
    fig, ax = style.new_axes(ax, figsize=(9, 2.2))
    own = len(fig.axes) == 1
    pg = lambda x: (x - start) / PAGE_SIZE
    shown = [a for a in _areas(p) if a.end > lo and a.start < hi]
    for a in shown:
        s, e = pg(max(a.start, lo)), pg(min(a.end, hi))
        ax.add_patch(Rectangle((s, 0.2), e - s, 0.6, facecolor=KIND_COLORS.get(a.kind, style.UNKNOWN),
                               edgecolor="#222222", linewidth=0.8))
        if e - s >= 2:
            ax.text((s + e) / 2, 0.5, f"{short_name(a)} {a.perms}", ha="center", va="center", fontsize=8)
    handles = style.legend_patches([k for k in KINDS if any(a.kind == k for a in shown)], KIND_COLORS)
    if limit is not None and limit < hi:
        s = pg(max(limit, lo))
        e = pg(min(nxt.start, hi))
        ax.add_patch(Rectangle((s, 0.2), e - s, 0.6, facecolor="none", hatch="xx", edgecolor="#b00020",
                               linewidth=0.8))
        handles.append(Patch(facecolor="none", hatch="xx", edgecolor="#b00020",
                             label="the heap may not grow here"))
    ax.axvline(pg(start), color="#333333", linestyle=":", linewidth=1)
    ax.text(pg(start), 0.93, " start_brk", fontsize=8, va="bottom")
    ax.axvline(pg(brk), color=style.HIGHLIGHT, linewidth=1.6)
    ax.text(pg(brk), 0.05, f" brk = start_brk + {brk - start:#x}", fontsize=8, color=style.HIGHLIGHT,
            va="bottom")
    handles.append(Patch(facecolor=style.HIGHLIGHT, label="the break (mm->brk)"))
    ax.set_xlim(pg(lo), pg(hi))
    ax.set_ylim(0, 1.1)
    ax.set_yticks([])
    ax.set_xlabel(f"pages from start_brk ({start:#x})")
    ax.set_ylabel("VMAs")
    size = f"[heap] is {(heap.end - heap.start) // PAGE_SIZE} pages" if heap else "no [heap] VMA yet"
    ax.set_title(title or f"The heap: {size}, the break is {brk - start:#x} bytes above start_brk",
                 fontsize=10)
    _legend(fig, ax, own, handles)
    return fig


def brk_steps(p, offsets):
    """Call p.brk for each offset from start_brk (None: brk(0)), under a trace; what each call did.

    Returns one dict per call: offset (asked, or None), ret (the returned
    break, as an offset from start_brk), heap ((start, end) of the [heap]
    VMA after the call, as offsets, or None), calls and notes (from the
    trace) and the trace itself.  NOTE: this changes p: it makes the calls.
    """
    start = p.mm.start_brk
    rows = []
    for off in offsets:
        with p.machine.trace() as t:
            ret = p.brk(0 if off is None else start + off)
        _, _, heap, _ = heap_state(p)
        rows.append({"offset": off, "ret": ret - start,
                     "heap": None if heap is None else (heap.start - start, heap.end - start),
                     "calls": t.calls(), "notes": t.notes(), "trace": t})
    return rows


def brk_timeline(steps, ax=None, title=None):
    """Figure: for each brk call of brk_steps, the break asked for, the break returned and the heap VMA.

    Bars are the [heap] VMA after each call; a cross is the request, a dot
    the break the call returned: a dot below its cross is a refusal.
    """
    if not steps:
        raise ValueError("steps: no brk calls to draw")
    fig, ax = style.new_axes(ax, figsize=(9, 3.0))
    own = len(fig.axes) == 1
    kib = lambda x: x / 1024
    xs = range(len(steps))
    for i, s in enumerate(steps):
        if s["heap"] is not None:
            lo, hi = s["heap"]
            ax.add_patch(Rectangle((i - 0.3, kib(lo)), 0.6, kib(hi - lo), facecolor=KIND_COLORS["heap"],
                                   edgecolor="#222222", linewidth=0.6))
    asked = [(i, kib(s["offset"])) for i, s in enumerate(steps) if s["offset"] is not None]
    if asked:
        ax.plot(*zip(*asked), "x", color="#b00020", markersize=8, label="break asked for")
    ax.plot(list(xs), [kib(s["ret"]) for s in steps], "o-", color=style.HIGHLIGHT, markersize=5,
            linewidth=1, label="break returned")
    ax.axhline(0, color="#333333", linestyle=":", linewidth=1)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(["brk(0)" if s["offset"] is None else f"{s['offset']:+#x}" for s in steps],
                       fontsize=7, rotation=30)
    ax.set_xlabel("brk call (the offset from start_brk it asked for)")
    ax.set_ylabel("KiB above start_brk")
    ax.set_title(title or "The break and the [heap] VMA, call by call", fontsize=10)
    handles = [Patch(facecolor=KIND_COLORS["heap"], edgecolor="#222222", label="[heap] VMA after the call")]
    handles += ax.get_legend_handles_labels()[0]
    _legend(fig, ax, own, handles)
    ax.set_xlim(-0.6, len(steps) - 0.4)
    return fig


BRK_RANDOM_RANGE = 1 << 30     # arch_randomize_brk: up to 1 GiB above the page after the bss


def start_brk_histogram(samples, ax=None, bins=16, title=None):
    """Figure: where start_brk fell, as offsets above the page after the bss, for many execs.

    `samples` maps a label ('model', 'this machine') to a list of offsets
    in bytes (procmaps.brk_offsets gives the host's).  The window
    arch_randomize_brk draws from, [0, 1 GiB), is shaded; every sample
    should fall in it, spread evenly.
    """
    if not samples or not any(samples.values()):
        raise ValueError("samples: no offsets to draw")
    fig, ax = style.new_axes(ax, figsize=(9, 2.8))
    own = len(fig.axes) == 1
    mib = BRK_RANDOM_RANGE >> 20
    edges = [mib * k / bins for k in range(bins + 1)]
    colors = ["#4f8fd9", "#f08a3c", "#2a9d8f", "#8e5cc4"]
    ax.axvspan(0, mib, color="#9fd68c", alpha=0.25, label="the window arch_randomize_brk draws from")
    for k, (label, offsets) in enumerate(samples.items()):
        ax.hist([o / (1 << 20) for o in offsets], bins=edges, histtype="step", linewidth=1.6,
                color=colors[k % len(colors)], label=f"{label} ({len(offsets)} execs)")
    ax.set_xlim(-mib * 0.05, mib * 1.1)
    ax.set_xlabel("start_brk minus (end of bss, page aligned, + 1 page), MiB")
    ax.set_ylabel("execs")
    ax.set_title(title or "Where exec puts the heap: start_brk over many execs", fontsize=10)
    _legend(fig, ax, own, ax.get_legend_handles_labels()[0])
    return fig


__all__ = ["start_brk_histogram", "Area", "KINDS", "KIND_COLORS", "vma_kind", "snapshot", "shape", "strip", "layout_text",
           "clusters", "address_space", "vma_change", "MapleNode", "maple_entries", "maple_layout",
           "maple_text", "maple_tree", "tree_heights", "heap_state", "brk_limit", "heap_picture",
           "brk_steps", "brk_timeline"]
