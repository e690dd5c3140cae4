"""Page-fault pictures: one access traced through handle_mm_fault, and the decision tree it walks.

    from mmlab.viz.faults import fault_case, fault_tree
    steps = fault_case("anon private", ["read", "write"])   # [(access, path, minflt, majflt, frame), ...]
    fault_tree({"anon read": steps[0].path, ...})

fault_case sets up one page of a mapping on a fresh seeded machine and
makes the accesses one at a time, as do_user_addr_fault would: if the page
table entry already allows the access, the MMU takes no fault (path []);
otherwise do_user_addr_fault checks the access and handle_mm_fault runs;
its VmFault names the handlers taken.
fault_tree draws the union of such paths as a tree, root at the left.
Nothing here changes a machine it was given.
"""
from collections import namedtuple

import matplotlib.pyplot as plt

from ..arch import PAGE_SIZE
from ..errors import SegmentationFault
from ..uapi import (PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, O_RDONLY,
                    O_RDWR)

KINDS = ("anon private", "anon shared", "file private", "file shared", "read-only anon")
ACCESSES = ("read", "write")

Step = namedtuple("Step", "access path minflt majflt frame")


def _mapping(m, p, kind):
    """One page of the mapping `kind` in process p; returns its address."""
    rw = PROT_READ | PROT_WRITE
    if kind == "anon private":
        return p.mmap(0, PAGE_SIZE, rw, MAP_PRIVATE | MAP_ANONYMOUS)
    if kind == "anon shared":
        return p.mmap(0, PAGE_SIZE, rw, MAP_SHARED | MAP_ANONYMOUS)
    if kind == "read-only anon":
        return p.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
    if kind in ("file private", "file shared"):
        from ..mm import filemap
        f = m.fs.create("/dev/shm/fault-case", PAGE_SIZE, backing="tmpfs")
        filemap.filemap_add_folio(f, 0)          # the page is in the page cache already
        shared = kind == "file shared"
        fd = p.open("/dev/shm/fault-case", O_RDWR if shared else O_RDONLY)
        try:
            return p.mmap(0, PAGE_SIZE, rw, MAP_SHARED if shared else MAP_PRIVATE, fd, 0)
        finally:
            p.close(fd)
    raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")


def one_access(p, addr, write):
    """do_user_addr_fault for one page: [] if the MMU allows it, else the handlers taken.

    Raises SegmentationFault as the kernel would (nothing changed).
    """
    from ..mm import memory, pgtable
    mm = p.mm
    ptes = pgtable.get_ptes(mm, addr, addr + PAGE_SIZE) if mm.pgd is not None else None
    if ptes is not None and not memory.pte_fault_needed(ptes, write).any():
        memory.mmu_access(mm, addr, addr + PAGE_SIZE, write)
        return []
    vma = memory.find_user_vma(mm, addr, write)
    return ["do_user_addr_fault", "handle_mm_fault"] + memory.fault_in_page(p, vma, addr, write).path


def fault_case(kind, accesses, seed=0, ram="128MiB"):
    """The accesses (each "read" or "write") to one page of a fresh `kind` mapping, one Step each.

    A Step holds the access, the handlers taken from do_user_addr_fault ([] for
    no fault, ending in "SIGSEGV SEGV_ACCERR" if refused), the minor and major faults charged, and the page's frame
    afterwards ("zero page", "-" for none, or "F0", "F1", ... by first
    appearance).
    """
    from ..machine import Machine
    from ..mm import memory
    for a in accesses:
        if a not in ACCESSES:
            raise ValueError(f"accesses must be 'read' or 'write', got {a!r}")
    m = Machine(ram=ram, seed=seed)
    p = m.spawn("a.out")
    addr = _mapping(m, p, kind)
    names = {}
    steps = []
    for a in accesses:
        before = p.rusage()
        try:
            path = one_access(p, addr, a == "write")
        except SegmentationFault as e:
            path = ["do_user_addr_fault", "SIGSEGV " + ("SEGV_ACCERR" if e.code == 2 else "SEGV_MAPERR")]
        after = p.rusage()
        entry = p.pagemap(addr)
        pfn = entry & memory.PM_PFRAME_MASK
        if not entry >> 63:
            frame = "-"
        elif pfn == m.zero_pfn:
            frame = "zero page"
        else:
            frame = names.setdefault(pfn, f"F{len(names)}")
        steps.append(Step(a, path, after[0] - before[0], after[1] - before[1], frame))
    m.check()
    return steps


def tree_edges(paths):
    """The tree the paths walk: {node: [children]} with nodes as path prefixes (tuples)."""
    children = {}
    for path in paths.values():
        for i in range(1, len(path)):
            kids = children.setdefault(tuple(path[:i]), [])
            if tuple(path[:i + 1]) not in kids:
                kids.append(tuple(path[:i + 1]))
    return children


def _layout(children, root):
    """Leaves get successive rows; an inner node sits at the mean row of its children."""
    pos = {}
    row = [0]

    def place(node, depth):
        kids = children.get(node, [])
        if not kids:
            pos[node] = (depth, row[0])
            row[0] += 1
        else:
            for k in kids:
                place(k, depth + 1)
            pos[node] = (depth, sum(pos[k][1] for k in kids) / len(kids))
    place(root, 0)
    return pos


def fault_tree(paths, ax=None, title="A page fault's decision tree, drawn from traced faults"):
    """The decision tree of handle_mm_fault drawn from traced paths.

    `paths` maps a label (the case, e.g. "anon, read") to a path as
    fault_case gives it, starting at "do_user_addr_fault".  Each handler is a
    box; each case is written at the end of its path.  Returns the Figure.
    """
    paths = {k: list(v) for k, v in paths.items() if v}
    roots = {v[0] for v in paths.values()}
    if len(roots) != 1:
        raise ValueError(f"paths must all start at the same handler, got {sorted(roots)}")
    root = (roots.pop(),)
    children = tree_edges(paths)
    pos = _layout(children, root)
    if ax is None:
        depth = max(d for d, _ in pos.values()) + 1
        rows = max(r for _, r in pos.values()) + 1
        fig, ax = plt.subplots(figsize=(3.2 * depth + 3, 0.7 * rows + 1.4))
    else:
        fig = ax.figure
    for node, kids in children.items():
        x0, y0 = pos[node]
        for k in kids:
            x1, y1 = pos[k]
            ax.plot([x0, x1], [y0, y1], color="#999999", lw=1.2, zorder=1)
    for node, (x, y) in pos.items():
        ax.text(x, y, node[-1], ha="center", va="center", fontsize=9, zorder=2,
                bbox=dict(boxstyle="round,pad=0.3", fc="#dbe8f7", ec="#2a5d9f"))
    ends = {}
    for label, path in paths.items():
        ends.setdefault(tuple(path), []).append(label)
    for node, labels in ends.items():
        x, y = pos[node]
        ax.text(x + 0.45, y, "; ".join(labels), ha="left", va="center", fontsize=8, color="#333333")
    depth = max(d for d, _ in pos.values())
    ax.set_xlim(-0.6, depth + 1.8)
    ax.set_ylim(max(r for _, r in pos.values()) + 0.7, -0.7)
    ax.set_xticks(range(depth + 1))
    ax.set_yticks([])
    ax.set_xlabel("depth in the call chain (handlers called, left to right)")
    ax.set_ylabel("traced cases")
    ax.set_title(title)
    for s in ("top", "right", "left"):
        ax.spines[s].set_visible(False)
    fig.tight_layout()
    plt.close(fig)
    return fig
