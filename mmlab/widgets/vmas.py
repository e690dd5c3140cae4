"""VmaPlayground and BrkSlider: change a process's mappings and watch its VMAs.

    from mmlab.widgets import VmaPlayground, BrkSlider
    VmaPlayground(p)        mmap, munmap, mprotect, madvise in a window of p's address space
    BrkSlider(p)            move p's program break and watch the [heap] VMA

VmaPlayground works in a window of `pages` pages above mmap_base, where
nothing is mapped and nothing the process does lands by itself (mmap without
an address searches below mmap_base).  Choose the call, the first page and
the number of pages (counted from the window's start), the protection and
the kind of mapping, press Apply: the playground makes the call under
m.trace() and shows the VMAs of the window before and after, the window's
/proc/pid/maps lines, and the kernel path.

BrkSlider moves the break to start_brk + the slider's offset (in bytes, so
unaligned breaks happen too) and shows what brk returned, the [heap] VMA,
a picture of the heap and the room above it, and the path of __do_sys_brk.
`obstacle` maps one page (or a stack) above the heap first, to show the gap
brk keeps below the next mapping.

Both run without a browser: call do() / apply() and move(), and read
`message`, `window_shape`, `maps_text`, `trace_text`, `heap_text`.
"""
import ipywidgets as W

from ..arch import PAGE_SIZE, MiB
from ..mm.mmap import map_flags_name, prot_name
from ..uapi import (PROT_READ, PROT_WRITE, PROT_EXEC, MAP_PRIVATE, MAP_SHARED,
                    MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_NORESERVE, MAP_GROWSDOWN,
                    O_RDWR)
from .. import uapi
from ..viz import vmas as V
from .common import figure_png, pre, error_html, info_html, Explorer

OPS = ["mmap", "munmap", "mprotect", "madvise"]
KINDS = ["private anonymous", "shared anonymous", "private file", "shared file"]
WHERE = ["MAP_FIXED", "MAP_FIXED_NOREPLACE", "hint", "no address"]
ADVICE = ["MADV_DONTFORK", "MADV_DOFORK", "MADV_RANDOM", "MADV_SEQUENTIAL", "MADV_NORMAL",
          "MADV_DONTDUMP", "MADV_DODUMP", "MADV_HUGEPAGE", "MADV_NOHUGEPAGE", "MADV_WILLNEED",
          "MADV_DONTNEED"]
PLAYGROUND_FILE = "/home/user/playground.dat"
FILE_PAGES = 64
MARGIN = 8 * MiB


def parse_prot(text):
    """PROT_* bits from 'rw-', 'r-x', '---', 'rw' or 'PROT_READ|PROT_WRITE'."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if not isinstance(text, str):
        raise ValueError(f"prot: write it as 'rw-' or 'PROT_READ|PROT_WRITE', not {text!r}")
    t = text.strip()
    if "PROT_" in t or t.isdigit():
        prot = 0
        for word in t.split("|"):
            word = word.strip()
            value = getattr(uapi, word, None) if word.startswith("PROT_") else None
            if not isinstance(value, int):
                try:
                    value = int(word, 0)
                except ValueError:
                    raise ValueError(f"prot: {word!r} is not a protection (PROT_READ, PROT_WRITE, "
                                     "PROT_EXEC, PROT_NONE)") from None
            prot |= value
        return prot
    if not t or any(c not in "rwx-" for c in t) or len(t) > 3:
        raise ValueError(f"prot: write it as 'rw-', 'r--', 'r-x' or '---', not {text!r}")
    return (PROT_READ if "r" in t else 0) | (PROT_WRITE if "w" in t else 0) | (PROT_EXEC if "x" in t else 0)


def free_window(p, pages, margin=MARGIN):
    """A page-aligned base for a window of `pages` pages above mmap_base, with `margin` free
    around it: above every VMA below the stack, 2 MiB aligned (as the scenario runner places
    its windows).  ValueError if there is no room below the stack."""
    vmas = p.vmas
    stack = min((v.vm_start for v in vmas if v.vm_flags & V.VM_GROWSDOWN), default=None)
    if stack is None:
        raise ValueError("p: the process has no stack to place the window under")
    top = max([v.vm_end for v in vmas if v.vm_end <= stack] + [p.mm.mmap_base])
    base = -(-(top + margin) // (2 * MiB)) * (2 * MiB)
    if base + pages * PAGE_SIZE + margin > stack - p.machine.stack_guard_gap:
        raise ValueError(f"pages: no room for {pages} pages between {top:#x} and the stack")
    return base


def maps_lines(p, lo, hi):
    """The lines of p.maps() whose VMA meets [lo, hi)."""
    out = []
    for line in p.maps().splitlines():
        start, end = (int(x, 16) for x in line.split()[0].split("-"))
        if end > lo and start < hi:
            out.append(line)
    return "\n".join(out)


class VmaPlayground(Explorer):
    """Apply mmap, munmap, mprotect and madvise to a window of process p, and redraw its VMAs.

    Attributes a test or a notebook can read: `base` (the window's first
    address), `pages`, `history` (one (call text, result text) per Apply),
    `before` and `after` (snapshots of the window around the last call),
    `last_trace`, and the texts shown: `message`, `window_shape`,
    `window_strip`, `maps_text`, `trace_text`.
    """

    def __init__(self, p, pages=32, base=None):
        self.p = p
        self.m = p.machine
        self.pages = int(pages)
        if not 1 <= self.pages <= 4096:
            raise ValueError(f"pages must be 1 to 4096, got {pages}")
        self.base = free_window(p, self.pages) if base is None else base
        if self.base % PAGE_SIZE:
            raise ValueError(f"base must be page aligned, got {self.base:#x}")
        self.history = []
        self.last_trace = None
        self.before = self.after = V.snapshot(p, self.base, self.end)
        self._fd = None
        self.op = W.Dropdown(options=OPS, value="mmap", description="call", layout=W.Layout(width="180px"))
        self.page = W.BoundedIntText(value=0, min=0, max=self.pages - 1, description="page",
                                     layout=W.Layout(width="150px"))
        self.npages = W.BoundedIntText(value=4, min=0, max=self.pages, description="pages",
                                       layout=W.Layout(width="150px"))
        self.prot = W.Text(value="rw-", description="prot", layout=W.Layout(width="150px"))
        self.kind = W.Dropdown(options=KINDS, value="private anonymous", description="kind",
                               layout=W.Layout(width="260px"))
        self.where = W.Dropdown(options=WHERE, value="MAP_FIXED", description="address",
                                layout=W.Layout(width="260px"))
        self.noreserve = W.Checkbox(value=False, description="MAP_NORESERVE", indent=False)
        self.file_page = W.BoundedIntText(value=0, min=0, max=FILE_PAGES - 1, description="file page",
                                          layout=W.Layout(width="170px"))
        self.advice = W.Dropdown(options=ADVICE, value="MADV_DONTFORK", description="advice",
                                 layout=W.Layout(width="260px"))
        self.apply_button = W.Button(description="Apply", button_style="primary")
        self.apply_button.on_click(self.apply)
        self.status = W.HTML()
        self.picture = W.Image(format="png", layout=W.Layout(max_width="760px"))
        self.maps = W.HTML(layout=W.Layout(max_height="200px", overflow="auto"))
        self.trace = W.HTML(layout=W.Layout(max_height="480px", overflow="auto", width="auto"))
        controls = W.VBox([W.HBox([self.op, self.page, self.npages, self.prot, self.apply_button]),
                           W.HBox([self.kind, self.where, self.noreserve]),
                           W.HBox([self.file_page, self.advice]), self.status])
        left = W.VBox([controls, self.picture, self.maps])
        right = W.VBox([W.HTML("<b>the last call's kernel path</b>"), self.trace])
        self.widget = W.HBox([left, right])
        self.show(f"A window of {self.pages} pages at {self.base:#x}: choose a call and Apply.")

    @property
    def end(self):
        return self.base + self.pages * PAGE_SIZE

    # -- what the learner sees --------------------------------------------------------
    @property
    def window_shape(self):
        """The window's VMAs in pages from its start: '0-3 rw-p, 3-4 r--p'."""
        return V.shape(V.snapshot(self.p, self.base, self.end), self.base)

    @property
    def window_strip(self):
        return V.strip(V.snapshot(self.p, self.base, self.end), self.base, self.pages)

    @property
    def maps_text(self):
        return maps_lines(self.p, self.base, self.end)

    def figure(self):
        """The before/after figure of the last call."""
        op = self.history[-1][0] if self.history else None
        return V.vma_change(self.before, self.after, self.base, self.end, op=op, highlight=self._range)

    # -- the call -------------------------------------------------------------------
    def do(self, op, page, pages, prot="rw-", kind="private anonymous", where="MAP_FIXED",
           noreserve=False, file_page=0, advice="MADV_DONTFORK"):
        """Set the controls and Apply: do("mprotect", 1, 1, prot="r--").  Returns the message."""
        self.op.value, self.page.value, self.npages.value = op, page, pages
        self.prot.value, self.kind.value, self.where.value = prot, kind, where
        self.noreserve.value, self.file_page.value, self.advice.value = noreserve, file_page, advice
        return self.apply()

    def file_fd(self):
        """A descriptor for the playground's 64-page file (created on first use)."""
        if self._fd is None:
            if self.m.fs.lookup(PLAYGROUND_FILE) is None:
                self.m.fs.create(PLAYGROUND_FILE, FILE_PAGES * PAGE_SIZE)
            self._fd = self.p.open(PLAYGROUND_FILE, O_RDWR)
        return self._fd

    def call(self):
        """(text of the call, a function making it, the address range it names) from the controls."""
        op, p = self.op.value, self.p
        addr = self.base + self.page.value * PAGE_SIZE
        length = self.npages.value * PAGE_SIZE
        rel = f"+{addr - self.base:#x}"
        if op == "munmap":
            return f"munmap({rel}, {length:#x})", lambda: p.munmap(addr, length), (addr, addr + length)
        prot = parse_prot(self.prot.value)
        if op == "mprotect":
            return (f"mprotect({rel}, {length:#x}, {prot_name(prot)})", lambda: p.mprotect(addr, length, prot),
                    (addr, addr + length))
        if op == "madvise":
            advice = getattr(uapi, self.advice.value)
            return (f"madvise({rel}, {length:#x}, {self.advice.value})",
                    lambda: p.madvise(addr, length, advice), (addr, addr + length))
        kind = self.kind.value
        flags = (MAP_SHARED if kind.startswith("shared") else MAP_PRIVATE)
        flags |= MAP_ANONYMOUS if kind.endswith("anonymous") else 0
        where = self.where.value
        flags |= {"MAP_FIXED": MAP_FIXED, "MAP_FIXED_NOREPLACE": MAP_FIXED_NOREPLACE}.get(where, 0)
        flags |= MAP_NORESERVE if self.noreserve.value else 0
        target = 0 if where == "no address" else addr
        fd, offset = -1, 0
        if kind.endswith("file"):
            fd, offset = self.file_fd(), self.file_page.value * PAGE_SIZE
        shown = "NULL" if target == 0 else rel
        text = f"mmap({shown}, {length:#x}, {prot_name(prot)}, {map_flags_name(flags)}"
        text += f", fd, {offset:#x})" if fd >= 0 else ")"
        return text, lambda: p.mmap(target, length, prot, flags, fd, offset), (addr, addr + length)

    def apply(self, _button=None):
        """Apply: make the call the controls describe, under a trace; show before and after."""
        try:
            text, fn, self._range = self.call()
        except (ValueError, TypeError) as exc:
            return self.fail(exc)
        self.before = V.snapshot(self.p, self.base, self.end)
        try:
            with self.m.trace() as t:
                ret = fn()
        except OSError as exc:
            result = f"failed: {_errname(exc.errno)} ({exc.strerror})"
        except (ValueError, TypeError) as exc:
            return self.fail(exc)
        else:
            result = self.describe(ret)
        self.last_trace = t
        self.after = V.snapshot(self.p, self.base, self.end)
        self.history.append((text, result))
        return self.show(f"{text} {result}; the window has {len(self.after)} VMA"
                         f"{'s' if len(self.after) != 1 else ''}")

    def describe(self, ret):
        if self.op.value != "mmap":
            return f"= {ret}"
        if self.base <= ret < self.end:
            return f"= +{ret - self.base:#x}"
        return f"= {ret:#x}, outside the window"

    # -- drawing ------------------------------------------------------------------------
    def fail(self, exc):
        self.status.value = error_html(exc)
        return None

    def show(self, text):
        self.status.value = info_html(text)
        op = self.history[-1][0] if self.history else None
        self.picture.value = figure_png(V.vma_change(self.before, self.after, self.base, self.end, op=op,
                                                     highlight=getattr(self, "_range", None)))
        body = V.strip(self.after, self.base, self.pages) + "\n\n" + (self.maps_text or "(nothing mapped)")
        self.maps.value = "<b>the window, page by page, and its /proc/pid/maps lines</b>" + pre(body)
        self.trace.value = pre(str(self.last_trace) if self.last_trace else "")
        return text


def _rel(offset):
    """An offset from start_brk as the slider prints it: 'start_brk + 0x1000', 'start_brk - 0x1000'."""
    return f"start_brk {'-' if offset < 0 else '+'} {abs(offset):#x}"


def _errname(code):
    import errno
    return errno.errorcode.get(code, str(code))


class BrkSlider(Explorer):
    """Move process p's program break with a slider and watch the [heap] VMA and __do_sys_brk.

    The slider is the offset of the break from start_brk, in bytes, from
    -`below` to `above` in steps of `step`.  `obstacle`: None, or a number of
    pages above start_brk where a one-page mapping is placed first, or
    ("stack", pages) for a stack-like MAP_GROWSDOWN mapping, whose guard gap
    brk also keeps clear.  Attributes: `steps` (what each move did, as
    mmlab.viz.vmas.brk_steps records it), `last_trace`, and the texts shown:
    `message`, `heap_text`, `trace_text`.
    """

    def __init__(self, p, above=256 * 1024, below=8192, step=1024, obstacle=None):
        self.p = p
        self.m = p.machine
        self.start = p.mm.start_brk
        self.steps = []
        self.last_trace = None
        self.obstacle = None
        if obstacle is not None:
            self.obstacle = self.place_obstacle(obstacle)
        self.slider = W.IntSlider(value=p.mm.brk - self.start, min=-below, max=above, step=step,
                                  description="brk - start_brk", continuous_update=False,
                                  style={"description_width": "initial"}, layout=W.Layout(width="640px"))
        self.slider.observe(self._moved, names="value")
        self.status = W.HTML()
        self.heap = W.HTML()
        self.picture = W.Image(format="png", layout=W.Layout(max_width="760px"))
        self.timeline = W.Image(format="png", layout=W.Layout(max_width="760px"))
        self.trace = W.HTML(layout=W.Layout(max_height="420px", overflow="auto", width="auto"))
        left = W.VBox([self.slider, self.status, self.heap, self.picture, self.timeline])
        right = W.VBox([W.HTML("<b>the path of the last brk call</b>"), self.trace])
        self.widget = W.HBox([left, right])
        self.show(f"start_brk is {self.start:#x}; move the slider to call brk(start_brk + offset).")

    def place_obstacle(self, obstacle):
        """Map one page (or a 16-page stack) above the heap, with MAP_FIXED_NOREPLACE; its address."""
        stack = isinstance(obstacle, tuple) and obstacle[0] == "stack"
        pages = obstacle[1] if stack else obstacle
        addr = self.start + int(pages) * PAGE_SIZE
        flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | (MAP_GROWSDOWN if stack else 0)
        length = (16 if stack else 1) * PAGE_SIZE
        return self.p.mmap(addr, length, PROT_READ | PROT_WRITE, flags)

    @property
    def heap_text(self):
        """The [heap] line of /proc/pid/maps, or '(no [heap] VMA)'."""
        lines = [line for line in self.p.maps().splitlines() if line.endswith("[heap]")]
        return "\n".join(lines) if lines else "(no [heap] VMA)"

    def _moved(self, change):
        self.move(change["new"])

    def move(self, offset):
        """brk(start_brk + offset) under a trace; shows what it returned and did.  Returns the message."""
        offset = int(offset)
        if self.start + offset < 0:
            return self.fail(f"offset {offset} would ask for a negative address")
        step = V.brk_steps(self.p, [offset])[0]
        self.steps.append(step)
        self.last_trace = step["trace"]
        ret, asked = step["ret"], offset
        if ret == asked:
            verdict = "moved"
        else:
            verdict = "refused: brk returned the old break"
        return self.show(f"brk({_rel(asked)}) = {_rel(ret)}: {verdict}")

    def fail(self, exc):
        self.status.value = error_html(exc)
        return None

    def show(self, text):
        self.status.value = info_html(text)
        self.heap.value = pre(self.heap_text)
        self.picture.value = figure_png(V.heap_picture(self.p))
        if self.steps:
            self.timeline.value = figure_png(V.brk_timeline(self.steps[-12:]))
        self.trace.value = pre(str(self.last_trace) if self.last_trace else "")
        return text
