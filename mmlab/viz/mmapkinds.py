"""The four kinds of mmap side by side: which frames back a page after read, write and fork.

    from mmlab.viz.mmapkinds import run_kind, kinds_table, kinds_figure
    run_kind(shared=False, anon=True)    the steps of one kind, as rows
    print(kinds_table())                 the 2x2 table (private/shared x anonymous/file), as text
    kinds_figure()                       the same as a picture: one panel per kind

Each kind runs one scenario on a fresh, seeded Machine: a process maps one
page, reads it, writes b"P", forks, then the child writes b"C".  After each
step we record the frame behind the page in parent and child, named by kind
of frame so the table reads without pfns:

    Z    the zero page (an anonymous read maps it, shared by everyone)
    C    the page-cache page (of the file, or of the shmem object behind
         MAP_SHARED|MAP_ANONYMOUS)
    A1.. anonymous pages, numbered by first appearance
    -    nothing mapped

These functions only read the model (p.pagemap, p.load, m.trace()); the
figure imports matplotlib when called.
"""
from ..arch import PAGE_SIZE
from ..mm.memory import PM_PRESENT, PM_FILE, PM_PFRAME_MASK as PFN_MASK
from ..uapi import PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, O_RDWR

KINDS = [(False, True), (True, True), (False, False), (True, False)]
STEPS = ["read", "write", "fork", "child write"]
HANDLERS = ("do_anonymous_page", "do_read_fault", "do_fault_around", "shmem_fault", "filemap_fault", "do_cow_fault",
            "do_shared_fault", "do_wp_page", "wp_page_copy", "wp_page_reuse", "wp_page_shared")


def kind_name(shared, anon):
    """'private anonymous', 'shared file', ..."""
    return f"{'shared' if shared else 'private'} {'anonymous' if anon else 'file'}"


def kind_flags(shared, anon):
    """The mmap flags of a kind, as text and as a number."""
    flags = (MAP_SHARED if shared else MAP_PRIVATE) | (MAP_ANONYMOUS if anon else 0)
    text = ("MAP_SHARED" if shared else "MAP_PRIVATE") + ("|MAP_ANONYMOUS" if anon else "")
    return text, flags


def map_kind(p, shared, anon, path="/dev/shm/kind"):
    """mmap one read-write page of the given kind in p; returns its address."""
    _, flags = kind_flags(shared, anon)
    if anon:
        return p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, flags)
    if p.machine.fs.lookup(path) is None:
        p.machine.fs.create(path, PAGE_SIZE, backing="tmpfs")
    fd = p.open(path, O_RDWR)
    a = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, flags, fd, 0)
    p.close(fd)
    return a


class FrameNames:
    """Names frames Z, C or A1, A2... by first appearance (see the module docstring)."""

    def __init__(self, m):
        self.m = m
        self.anon = {}

    def __call__(self, p, addr):
        if not p.alive:
            return " "
        e = p.pagemap(addr)
        if not e & PM_PRESENT:
            return "-"
        pfn = e & PFN_MASK
        if pfn == self.m.zero_pfn:
            return "Z"
        if e & PM_FILE:
            return "C"
        return self.anon.setdefault(pfn, f"A{len(self.anon) + 1}")


def run_kind(shared, anon, read_first=True, seed=0, ram="64MiB"):
    """The scenario for one kind; a list of row dicts, one per step.

    With read_first=False the "read" step is left out, so the write is the
    page's first touch (a private file page then goes through do_cow_fault).

    Each row: step, parent and child frame names, the fault handlers the
    step took, and what parent and child read back (first byte).
    """
    from ..machine import Machine
    m = Machine(ram=ram, seed=seed)
    p = m.spawn("a.out")
    a = map_kind(p, shared, anon)
    name = FrameNames(m)
    child = None
    rows = []

    def step(label, fn):
        with m.trace() as t:
            fn()
        calls = [c for c in t.calls() if c in HANDLERS]
        rows.append({"step": label, "parent": name(p, a),
                     "child": name(child, a) if child else " ", "handlers": calls})

    if read_first:
        step("read", lambda: p.load(a))
    step("write", lambda: p.store(a, b"P"))

    def fork():
        nonlocal child
        child = p.fork()
    step("fork", fork)
    step("child write", lambda: child.store(a, b"C"))
    rows[-1]["sees"] = (p.load(a), child.load(a))
    m.check()
    return rows


def kind_text(shared, anon, read_first=True, seed=0):
    """One kind's steps as text lines."""
    rows = run_kind(shared, anon, read_first, seed)
    text, _ = kind_flags(shared, anon)
    out = [f"{kind_name(shared, anon)} ({text})", f"  {'step':<12}{'parent':<8}{'child':<7}handlers"]
    for r in rows:
        out.append(f"  {r['step']:<12}{r['parent']:<8}{r['child']:<7}{' > '.join(r['handlers'])}")
    pa, ch = rows[-1]["sees"]
    out.append(f"  after the child's write the parent reads {pa!r}, the child {ch!r}")
    return "\n".join(out)


def kinds_table(read_first=True, seed=0):
    """The 2x2 table as text: for each kind, parent/child frames after each step."""
    return "\n\n".join(kind_text(s, a, read_first, seed) for s, a in KINDS)


def frame_colors(names):
    """A colour per frame name: zero page grey, cache blue, anonymous pages warm."""
    warm = ["#e6550d", "#fdae6b", "#a63603", "#fd8d3c"]
    out = {}
    for n in names:
        if n == "Z":
            out[n] = "#bdbdbd"
        elif n == "C":
            out[n] = "#6baed6"
        elif n.startswith("A"):
            out[n] = warm[(int(n[1:]) - 1) % len(warm)]
    return out


def kinds_figure(read_first=True, seed=0):
    """A 2x2 grid of panels, one per kind: a column per step, parent and child rows, cells = frames."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(9, 4.6))
    for (shared, anon), ax in zip(KINDS, axes.T.ravel()):
        rows = run_kind(shared, anon, read_first, seed)
        names = {r[w] for r in rows for w in ("parent", "child")}
        colors = frame_colors(names)
        for x, r in enumerate(rows):
            for y, who in enumerate(("parent", "child")):
                n = r[who].strip()
                if not n:
                    continue
                ax.add_patch(plt.Rectangle((x + 0.05, 1 - y + 0.05), 0.9, 0.9,
                                           color=colors.get(n, "white"), ec="#555555"))
                ax.text(x + 0.5, 1 - y + 0.5, n, ha="center", va="center", fontsize=11)
        ax.set_xlim(0, len(rows))
        ax.set_ylim(0, 2)
        ax.set_xticks([x + 0.5 for x in range(len(rows))], [r["step"] for r in rows])
        ax.set_yticks([0.5, 1.5], ["child", "parent"])
        ax.set_title(kind_name(shared, anon))
        ax.set_xlabel("step")
        ax.set_ylabel("process")
        ax.tick_params(length=0)
    fig.suptitle("The frame behind one page, per kind of mmap (Z zero page, C page cache, A anonymous)")
    fig.tight_layout()
    plt.close(fig)
    return fig
