"""fork over time: which frames parent and child share, which they copied, and what fork itself costs.

    from mmlab.viz.fork import ForkStory, sharing_timeline, sharing_figure, fork_cost, fork_cost_figure
    s = ForkStory(n=4)                 # a parent wrote 4 pages of private anonymous memory, then forked
    s.write("child", 1)                # -> "copy": the child's write copied the page (wp_page_copy)
    s.write("parent", 1)               # -> "reuse": the parent's frame has no other user left
    print(s.text())                    # per page: each side's frame, rw/ro, value; refcount/mapcount
    rows = sharing_timeline(n=64)      # a longer run of writes: counts after each step
    sharing_figure(rows)               # shared and private frames over time
    fork_cost_figure(fork_cost())      # entries and page-table pages fork copies, against size

Frames are named as in chapter 07 (mmlab.viz.mmapkinds.FrameNames): A1,
A2... anonymous frames by first appearance (the parent's pages at fork
time come first, so A1..An are the frames fork left shared), Z the zero
page, - nothing mapped.  A write is a "copy" when it faulted and the frame
changed (wp_page_copy), a "reuse" when it faulted and kept the frame
(wp_page_reuse: nobody else maps it any more), "no fault" when the entry
was writable already.

Everything here reads public state (p.pagemap, p.rusage, p.load, the page
table entries, mem_map's counts, meminfo) of machines it makes itself; the
figures import matplotlib when called.
"""
import random
import re
import time
from collections import namedtuple

from ..arch import PAGE_SIZE, PAGE_SHIFT
from ..mm.memory import PM_PFRAME_MASK, PM_PRESENT
from ..uapi import PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS
from .mmapkinds import FrameNames

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
SIDES = ("parent", "child")

Counts = namedtuple("Counts", "shared parent_only child_only total")
Cost = namedtuple("Cost", "mib ptes table_pages pagetables_kb copy_pages seconds")


def frame_of(p, addr):
    """The pfn behind addr in p (from pagemap), or None when nothing is mapped."""
    e = p.pagemap(addr)
    return e & PM_PFRAME_MASK if e & PM_PRESENT else None


def pte_writable(p, addr):
    """Does p's page-table entry for addr allow writes (the _PAGE_RW bit)?"""
    from ..mm import memory
    if p.mm.pgd is None:
        return False
    return bool(memory.pgtable_get_one(p.mm, addr) & memory._PAGE_RW)


def sharing_counts(parent, child, addr, n):
    """Counts of the frames behind n pages at addr: mapped by both, by the parent only, by the child only.

    A process that has exited maps nothing.  total counts distinct frames.
    """
    def frames(p):
        if p is None or not p.alive:
            return set()
        return {f for f in (frame_of(p, addr + i * PAGE_SIZE) for i in range(n)) if f is not None}
    a, b = frames(parent), frames(child)
    return Counts(len(a & b), len(a - b), len(b - a), len(a | b))


class ForkStory:
    """A parent that wrote n pages of private anonymous memory, forked once; then writes on either side.

    After __init__ both processes map the same n frames (A1..An),
    write-protected, each with refcount and mapcount 2 (before_fork holds
    the table as it was just before fork).  write(who, page)
    stores a short value and says what it cost; exit(who) ends a side.
    `history` lists the steps taken: (who, action, page, result).
    """

    def __init__(self, n=4, seed=0, ram="64MiB"):
        from ..machine import Machine
        if not isinstance(n, int) or not 1 <= n <= 4096:
            raise ValueError(f"n must be an int from 1 to 4096, got {n!r}")
        self.n = n
        self.m = Machine(ram=ram, seed=seed)
        self.parent = self.m.spawn("a.out")
        self.addr = self.parent.mmap(0, n * PAGE_SIZE, RW, ANON)
        for i in range(n):
            self.parent.store(self.page_addr(i), b"P%d" % i)
        self.child = None
        self.names = FrameNames(self.m)
        for i in range(n):
            self.names(self.parent, self.page_addr(i))
        self.before_fork = self.text()          # the parent's pages just before fork
        self.child = self.parent.fork()
        self.history = []

    def page_addr(self, page):
        if not isinstance(page, int) or not 0 <= page < self.n:
            raise ValueError(f"page must be an int from 0 to {self.n - 1}, got {page!r}")
        return self.addr + page * PAGE_SIZE

    def proc(self, who):
        """The process called who ("parent" or "child")."""
        if who not in SIDES:
            raise ValueError(f"who must be 'parent' or 'child', got {who!r}")
        return self.parent if who == "parent" else self.child

    def write(self, who, page, data=None):
        """who stores data (default b"p3"/b"c3" style) at the start of page; returns what it cost.

        "copy", "reuse" or "no fault" (see the module docstring).  Raises
        ValueError if who has exited (nothing changes).
        """
        p = self.proc(who)
        va = self.page_addr(page)
        if p is None or not p.alive:
            raise ValueError(f"the {who} has exited")
        data = data if data is not None else b"%s%d" % (who[0].encode(), page)
        before, faults = frame_of(p, va), p.rusage()[0]
        p.store(va, data)
        if p.rusage()[0] == faults:
            result = "no fault"
        else:
            result = "reuse" if frame_of(p, va) == before else "copy"
        self.names(p, va)
        self.history.append((who, "write", page, result))
        return result

    def exit(self, who):
        """who exits: every frame it mapped loses a mapping and a reference."""
        p = self.proc(who)
        if p is None or not p.alive:
            raise ValueError(f"the {who} has exited")
        p.exit()
        self.history.append((who, "exit", None, "exit"))

    def counts(self):
        """sharing_counts for the story's pages."""
        return sharing_counts(self.parent, self.child, self.addr, self.n)

    def side(self, who, page):
        """(frame name, "rw"/"ro", value read) for one side and page; ("", "", "") after exit."""
        p = self.proc(who)
        if p is None or not p.alive:
            return "", "", ""
        va = self.page_addr(page)
        value = p.load(va, 2)       # present already: no fault, nothing changes but the accessed bit
        return self.names(p, va), "rw" if pte_writable(p, va) else "ro", value

    def page_counts(self, page):
        """'A1 2/2' (refcount/mapcount) for each distinct frame behind the page."""
        mem = self.m.mem_map
        seen = []
        for p in (self.parent, self.child):
            if p is not None and p.alive:
                f = frame_of(p, self.page_addr(page))
                if f is not None and f not in seen:
                    seen.append(f)
        return ", ".join(f"{self.names.anon.get(f, '?')} {mem.refcount[f]}/{mem.mapcount[f]}" for f in seen)

    def text(self):
        """The pages as a table: each side's frame, write access and value; the frames' counts."""
        def state(p):
            return " (none)" if p is None else "" if p.alive else " (gone)"
        head = ["parent" + state(self.parent), "child" + state(self.child)]
        lines = [f"page  {head[0]:13} {head[1]:13} refcount/mapcount"]
        for i in range(self.n):
            cells = []
            for who in SIDES:
                name, rw, value = self.side(who, i)
                cells.append(f"{name} {rw} {value!r}" if name else "")
            lines.append(f"{i:4}  {cells[0]:13} {cells[1]:13} {self.page_counts(i)}")
        c = self.counts()
        lines.append(f"{c.total} frames: {c.shared} shared, {c.parent_only} parent's, {c.child_only} child's")
        return "\n".join(lines)


def random_schedule(n, steps, seed=0, exit_at=None):
    """steps writes to random pages by a random side; the child exits before step exit_at.

    A list of (who, page) pairs, with ("child", "exit") at exit_at; after
    the exit every write is the parent's.
    """
    rng = random.Random(seed)
    out = []
    for step in range(steps):
        if step == exit_at:
            out.append(("child", "exit"))
        gone = exit_at is not None and step >= exit_at
        who = "parent" if gone or rng.random() < 0.5 else "child"
        out.append((who, rng.randrange(n)))
    return out


def sharing_timeline(n=64, schedule=None, seed=0, steps=192, exit_at=128):
    """Run a schedule of writes on a ForkStory of n pages; one row per step (the first is fork itself).

    Each row: step, who, page ("exit" for an exit), result ("copy",
    "reuse", "no fault", "exit" or "fork"), and the sharing counts after it
    (shared, parent_only, child_only, total).  The default schedule is
    random_schedule(n, steps, seed, exit_at).
    """
    story = ForkStory(n=n, seed=seed, ram="128MiB")
    if schedule is None:
        schedule = random_schedule(n, steps, seed, exit_at)
    rows = [dict(step=0, who="", page=None, result="fork", **story.counts()._asdict())]
    for who, page in schedule:
        if page == "exit":
            story.exit(who)
            result = "exit"
        else:
            result = story.write(who, page)
        rows.append(dict(step=len(rows), who=who, page=page, result=result, **story.counts()._asdict()))
    story.m.check()
    return rows


def sharing_figure(rows, ax=None, title="After fork: frames shared and copied, write by write"):
    """Stacked frame counts over the steps of sharing_timeline: shared, parent's own, child's own.

    Ticks along the bottom mark each write that copied (orange) or reused
    a frame (blue); a dashed line marks the child's exit.  Returns the Figure.
    """
    from .style import new_axes
    fig, ax = new_axes(ax, (9, 4.2))
    steps = [r["step"] for r in rows]
    shared = [r["shared"] for r in rows]
    parent = [r["parent_only"] for r in rows]
    child = [r["child_only"] for r in rows]
    ax.stackplot(steps, shared, parent, child, step="post",
                 colors=["#4f8fd9", "#f08a3c", "#6ab04c"],
                 labels=["shared by both (write-protected)", "the parent's own", "the child's own"])
    ax.plot(steps, [r["total"] for r in rows], drawstyle="steps-post", color="black", lw=1.2,
            label="frames in all")
    top = max(r["total"] for r in rows)
    for r in rows:
        if r["result"] in ("copy", "reuse"):
            ax.plot([r["step"], r["step"]], [-0.06 * top, -0.02 * top], lw=1,
                    color="#c0392b" if r["result"] == "copy" else "#2471a3")
        if r["result"] == "exit":
            ax.axvline(r["step"], color="#555555", ls="--", lw=1)
            ax.text(r["step"] - 0.8, top * 1.03, f"the {r['who']} exits", fontsize=8, va="bottom",
                    ha="right")
    ax.plot([], [], color="#c0392b", label="tick: a write copied (wp_page_copy)")
    ax.plot([], [], color="#2471a3", label="tick: a write reused (wp_page_reuse)")
    ax.set_ylim(-0.08 * top, top * 1.14)
    ax.set_xlim(0, steps[-1] + 1)
    ax.set_xlabel("step (0 is fork; each later step is one write, or the exit)")
    ax.set_ylabel("frames behind the mapping")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    return fig


def pagetables_kb(m):
    """PageTables from the machine's /proc/meminfo, in kB."""
    match = re.search(r"^PageTables:\s+(\d+) kB", m.proc.meminfo(), re.M)
    return int(match.group(1))


def fork_cost(sizes_mib=(1, 4, 16, 64, 256, 1024), touch="write", seed=0):
    """fork of a process with size MiB of private anonymous memory, for each size; one Cost each.

    touch: "write" (every page written first), "read" (every page read:
    the zero page, no anon_vma) or "none".  A Cost holds the size, the page
    table entries the child has after fork (every entry fork copied), the
    page-table pages fork allocated (PageTables in meminfo, before and
    after), the same in kB, the pages an eager copy of the written memory
    would need, and the model's wall-clock seconds for the fork (this
    machine's Python, not a kernel's time).
    """
    from ..machine import Machine
    from ..mm import memory
    if touch not in ("write", "read", "none"):
        raise ValueError(f"touch must be 'write', 'read' or 'none', got {touch!r}")
    out = []
    for mib in sizes_mib:
        if not isinstance(mib, int) or mib < 1:
            raise ValueError(f"sizes_mib must hold positive ints, got {mib!r}")
        m = Machine(ram=(2 * mib + 256) << 20, seed=seed)
        p = m.spawn("a.out")
        a = p.mmap(0, mib << 20, RW, ANON)
        if touch != "none":
            p.touch(a, mib << 20, write=touch == "write")
        before = pagetables_kb(m)
        t0 = time.perf_counter()
        c = p.fork()
        seconds = time.perf_counter() - t0
        kb = pagetables_kb(m) - before
        ptes = len(memory.user_leaves(m, c.mm)[0]) if c.mm.pgd is not None else 0
        written = (mib << 20) >> PAGE_SHIFT if touch == "write" else 0
        out.append(Cost(mib, ptes, kb >> 2, kb, written, seconds))
    return out


def fork_cost_figure(costs, host_seconds=None, ax=None,
                     title="fork copies page tables, not pages: its cost grows with the memory written"):
    """Three panels against the process size: fork's work, the memory it allocates, its time.

    Left: page-table entries copied and page-table pages allocated (log-log).
    Middle: the kB of page tables fork allocates against the kB an eager
    copy of the written pages would need.  Right: seconds per fork in the
    model (and on this machine's kernel, if host_seconds maps MiB ->
    seconds).  With ax= only the left panel is drawn there.  Returns the Figure.
    """
    from .style import new_axes
    fig, axes = new_axes(ax, (13, 4), ncols=3 if ax is None else 1)
    left, middle, right = axes if ax is None else (axes, None, None)
    mib = [c.mib for c in costs]
    xlabel = "private memory written before fork (MiB)"
    left.loglog(mib, [max(c.ptes, 0.5) for c in costs], "o-", color="#4f8fd9",
                label="page-table entries copied")
    left.loglog(mib, [max(c.table_pages, 0.5) for c in costs], "s-", color="#f08a3c",
                label="page-table pages allocated")
    left.set_xlabel(xlabel)
    left.set_ylabel("count (log scale)")
    left.set_title("fork's work")
    left.legend(fontsize=8)
    if middle is not None:
        middle.loglog(mib, [max(c.pagetables_kb, 0.5) for c in costs], "s-", color="#f08a3c",
                      label="page tables fork allocates")
        middle.loglog(mib, [max(c.copy_pages * (PAGE_SIZE >> 10), 0.5) for c in costs], "--",
                      color="#888888", label="an eager copy of the pages")
        middle.set_xlabel(xlabel)
        middle.set_ylabel("kB (log scale)")
        middle.set_title("memory fork allocates")
        middle.legend(fontsize=8)
    if right is not None:
        right.loglog(mib, [c.seconds * 1e3 for c in costs], "o-", color="#6ab04c",
                     label="the model (Python)")
        if host_seconds:
            xs = sorted(host_seconds)
            right.loglog(xs, [host_seconds[x] * 1e3 for x in xs], "s-", color="#c0392b",
                         label="this machine's kernel")
        right.set_xlabel(xlabel)
        right.set_ylabel("milliseconds per fork (log scale)")
        right.set_title("fork's time")
        right.legend(fontsize=8)
    fig.suptitle(title)
    return fig
