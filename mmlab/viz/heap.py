"""Pictures of glibc's heap: chunks, bins and tcache, the break, mmapped chunks, and use over a trace.

    snapshot(libc)             the heap's state frozen as a HeapView (what every function below reads)
    heap_text(x)               one line per chunk: offset from the heap start, size, state, list, owner
    bins_text(x)               the tcache, the fastbins and the bins that hold chunks, head first
    heap_strip(x)              the figure: chunks as a strip coloured by state, lists annotated, top,
                               the break and the mmapped chunks marked
    call_path(t)               a trace of malloc calls: every libc step, the kernel cut at its entry
    kernel_calls(t)            the system calls a trace made: brk, mmap, munmap, madvise, mremap
    parse_call(line)           one call of a trace, in C (`p = malloc(24)`) or in the driver's language (`m 0 24`)
    replay_steps(libc, trace)  run a trace one call at a time, yielding a Step (the call, its trace, a HeapView)
    to_driver(trace)           a trace in the language of mmlab/libc/malloc_driver.c, for run_host
    usage(x), usage_history(steps)
    fragmentation(history)     heap size against bytes in use, cached, binned and top, call by call
    thresholds(history)        mmap_threshold and trim_threshold call by call, each request placed

`x` is a Libc (p.libc) or a HeapView.  Everything reads the model's public
views (Libc.chunks, tcache_chunks, fastbin_chunks, bin_chunks, mallinfo2, mp)
and changes nothing, except replay_steps, which makes the calls it records.

Glossary (as in mmlab/libc/malloc.py): a *chunk* is the address of a chunk's
header, `mem` the address malloc returned (chunk + 16); the *heap* is the brk
heap from its start (mp_.sbrk_base) to the break; *top* is the free chunk at
its end.  Offsets are from the heap start, so they do not depend on ASLR.
"""
import collections
import re

from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter

from ..arch import human
from ..errors import require_int
from ..libc import malloc as M
from .. import uapi
from . import style

# -- what a chunk can be -------------------------------------------------------------------

# States in the order the legend lists them (Chunk.state, plus "mmapped" for chunks in mappings of their own).
STATES = ("inuse", "tcache", "fastbin", "unsorted", "smallbin", "largebin", "top", "fencepost", "mmapped")
STATE_LABELS = {
    "inuse": "in use by the program",
    "tcache": "free, in the tcache",
    "fastbin": "free, in a fastbin",
    "unsorted": "free, in the unsorted bin",
    "smallbin": "free, in a small bin",
    "largebin": "free, in a large bin",
    "top": "top (the free end of the heap)",
    "fencepost": "fencepost",
    "mmapped": "in use, mmapped chunk",
}
STATE_COLORS = {
    "inuse": style.STATE_COLORS["allocated"],
    "tcache": style.STATE_COLORS["per-cpu list"],     # a per-thread cache, as the pcp lists are per CPU
    "fastbin": "#7fb3d5",
    "unsorted": "#c39bd3",
    "smallbin": style.STATE_COLORS["free"],
    "largebin": "#4e9a5b",
    "top": "#e3f2dc",
    "fencepost": "#3a3a3a",
    "mmapped": "#f6b27a",
}
CACHED = ("tcache", "fastbin")                  # free to the program, in use to the arena
BINNED = ("unsorted", "smallbin", "largebin")   # free in the arena's bins

# The kernel functions a call into libc enters through: one per system call malloc makes.
KERNEL_ENTRIES = {
    "__do_sys_brk": "brk",
    "do_mmap": "mmap",
    "do_vmi_munmap": "munmap",
    "do_madvise": "madvise",
    "do_mremap": "mremap",
}
# glibc's own loads and stores enter the kernel too: a page fault, cut like a system call.
FAULT_ENTRIES = {"handle_mm_fault"}

MallocParams = collections.namedtuple("MallocParams", "mmap_threshold trim_threshold top_pad n_mmaps "
                                                      "no_dyn_threshold")
MallocParams.__doc__ = "The tunables of struct malloc_par that decide between brk and mmap, and when to trim."


class HeapView:
    """The state of one process's malloc, frozen: what the figures and texts draw.

    Attributes: `base` (the heap start, mp_.sbrk_base; 0 before the first
    sbrk), `brk` (libc's idea of the break, None before the first sbrk),
    `top` (the top chunk, None before malloc ran), `chunks` (Chunk tuples in
    address order, as Libc.chunks gives them), `lists` ({chunk: (list, index,
    position)}, e.g. ("tcache", 0, 1) for the second chunk of tcache bin 0),
    `mmapped` ((mapping start, length) for each mmapped chunk's mapping),
    `mp` (a MallocParams), `mallinfo` (a Mallinfo2), `tcache_struct` (the
    chunk holding tcache_perthread_struct, or None) and `names` ({chunk:
    the program's name for the pointer in it}).
    """

    __slots__ = ("base", "brk", "top", "chunks", "lists", "mmapped", "mp", "mallinfo", "tcache_struct",
                 "names")

    def __init__(self, base, brk, top, chunks, lists, mmapped, mp, mallinfo, tcache_struct, names):
        self.base, self.brk, self.top = base, brk, top
        self.chunks, self.lists, self.mmapped = chunks, lists, mmapped
        self.mp, self.mallinfo, self.tcache_struct, self.names = mp, mallinfo, tcache_struct, names

    def __repr__(self):
        return (f"<HeapView {len(self.chunks)} chunks, heap {self.heap_size:#x} bytes, "
                f"{len(self.mmapped)} mmapped>")

    @property
    def heap_size(self):
        """Bytes from the heap start to the break: what brk gave the heap (0 before the first sbrk)."""
        return (self.brk - self.base) if self.base and self.brk else 0

    def in_heap(self, addr):
        """True if addr lies in the brk heap, from its start to the break."""
        return bool(self.base) and self.base <= addr < (self.brk or 0)

    def offset(self, addr):
        """addr as an offset from the heap start ("+0x2a0")."""
        return f"+{addr - self.base:#x}"

    def state(self, chunk):
        """The state of the chunk at `chunk` ("inuse", "tcache", ..., "mmapped"), or None if there is none."""
        for c in self.chunks:
            if c.addr == chunk:
                return c.state
        if self.mapping_of(chunk) is not None:
            return "mmapped"
        return None

    def mapping_of(self, addr):
        """The (start, length) of the mmapped chunk's mapping holding addr, or None."""
        for start, length in self.mmapped:
            if start <= addr < start + length:
                return start, length
        return None

    def mapping_name(self, start, length):
        """The program's name for the pointer into an mmapped chunk's mapping, or ''."""
        for chunk, name in self.names.items():
            if start <= chunk < start + length:
                return name
        return ""


def snapshot(libc, names=None):
    """HeapView of a Libc now; `names` maps pointers malloc returned (mem) to the program's names for them."""
    if isinstance(libc, HeapView):
        return libc
    if not isinstance(libc, M.Libc):
        raise TypeError(f"libc must be a Libc (p.libc) or a HeapView, not {type(libc).__name__}")
    lists = {}
    if libc.malloc_initialized:
        for i, chunks in libc.tcache_chunks().items():
            for k, c in enumerate(chunks):
                lists[c] = ("tcache", i, k)
        for i, chunks in libc.fastbin_chunks().items():
            for k, c in enumerate(chunks):
                lists[c] = ("fastbin", i, k)
        for i, chunks in libc.bin_chunks().items():
            kind = "unsorted" if i == 1 else "smallbin" if i < M.NSMALLBINS else "largebin"
            for k, c in enumerate(chunks):
                lists[c] = (kind, i, k)
    mmapped = tuple(sorted(libc.mmapped.items()))       # (mapping start, length)
    mp = libc.mp
    params = MallocParams(mp.mmap_threshold, mp.trim_threshold, mp.top_pad, mp.n_mmaps, mp.no_dyn_threshold)
    chunk_names = {}
    for mem, name in (names or {}).items():
        if mem:
            chunk_names[mem - M.CHUNK_HDR_SZ] = name
    return HeapView(
        base=libc.mp.sbrk_base, brk=libc.curbrk if libc.mp.sbrk_base else None,
        top=libc.top(libc.av) if libc.malloc_initialized else None,
        chunks=tuple(libc.chunks()), lists=lists, mmapped=mmapped, mp=params,
        # int_mallinfo, not mallinfo2(): a view must not show up in a trace being recorded.
        mallinfo=libc.int_mallinfo(libc.av) if libc.malloc_initialized else M.Mallinfo2(*[0] * 10),
        tcache_struct=(libc.tcache - M.CHUNK_HDR_SZ) if libc.tcache else None, names=chunk_names)


def list_label(where, short=False):
    """("tcache", 0, 1) -> "tcache[0] #1" (short: "t0#1"); the position counts from the list's head."""
    kind, i, k = where
    if short:
        letter = {"tcache": "t", "fastbin": "f", "unsorted": "u", "smallbin": "s", "largebin": "l"}[kind]
        return f"{letter}{'' if kind == 'unsorted' else i}#{k}"
    if kind in ("tcache", "fastbin"):
        return f"{kind}[{i}] #{k}"
    if kind == "unsorted":
        return f"unsorted #{k}"
    return f"{'small' if kind == 'smallbin' else 'large'} bin {i} #{k}"


def owner(view, chunk):
    """Who holds an in-use chunk: the program's name for it, malloc's tcache struct, or ''."""
    if chunk in view.names:
        return view.names[chunk]
    if chunk == view.tcache_struct:
        return "tcache_perthread_struct"
    return ""


# -- text ---------------------------------------------------------------------------------------

def heap_text(x, names=None):
    """The heap as text, one line per chunk: offset, size, state, and its list or its owner.

    Then the break, and the mmapped chunks with their sizes.  Offsets are
    from the heap start; "(no heap yet)" before the first sbrk.
    """
    view = snapshot(x, names)
    lines = []
    if not view.base:
        lines.append("(no heap yet)")
    else:
        lines.append(f"{'offset':>9s} {'size':>8s}  state")
        brk_line = f"{view.offset(view.brk):>9s} {'':8s}  the break"
        for c in view.chunks:
            if brk_line and not view.in_heap(c.addr):
                lines.append(brk_line)          # the rest lies in the mapping that stood in for brk
                brk_line = None
            where = view.lists.get(c.addr)
            extra = list_label(where) if where else owner(view, c.addr)
            at = view.offset(c.addr) if view.in_heap(c.addr) else f"{c.addr:#x}"
            lines.append(f"{at:>9s} {c.size:#8x}  {c.state:<9s} {extra}".rstrip())
        if brk_line:
            lines.append(brk_line)
    for start, length in view.mmapped:
        who = view.mapping_name(start, length)
        lines.append(f"{'mmap':>9s} {length:#8x}  mmapped   {who}".rstrip())
    return "\n".join(lines)


def bins_text(x, limit=8):
    """The lists that hold chunks, head first (the head is what malloc takes next): offsets and sizes.

    tcache and fastbin lists are LIFO; the unsorted bin is taken from its
    tail (oldest first); small bins hand out their tail too; large bins are
    sorted by size, largest first.  Lists longer than `limit` are cut.
    """
    view = snapshot(x)
    limit = require_int("limit", limit, 1)
    grouped = collections.defaultdict(list)
    for chunk, (kind, i, k) in view.lists.items():
        grouped[(kind, i)].append((k, chunk))
    order = {kind: n for n, kind in enumerate(("tcache", "fastbin", "unsorted", "smallbin", "largebin"))}
    lines = []
    sizes = {c.addr: c.size for c in view.chunks}
    for (kind, i) in sorted(grouped, key=lambda key: (order[key[0]], key[1])):
        chunks = [c for _, c in sorted(grouped[(kind, i)])]
        name = list_label((kind, i, 0)).rsplit(" #", 1)[0]
        if kind == "tcache":
            name += f" (chunks of {i * 16 + M.MINSIZE:#x})"
        elif kind == "fastbin":
            name += f" (chunks of {(i + 2) * 16:#x})"
        shown = " -> ".join(f"{view.offset(c)} ({sizes.get(c, 0):#x})" for c in chunks[:limit])
        more = f" -> ... (+{len(chunks) - limit})" if len(chunks) > limit else ""
        lines.append(f"{name}: {shown}{more}")
    return "\n".join(lines) if lines else "(every list is empty)"


# -- the figure ------------------------------------------------------------------------------------

GAP = 6.0           # width of the gap drawn between stretches of heap and before the mmapped chunks


def chunk_width(size, scale):
    """The width a chunk gets: its bytes (scale="bytes") or 1 + log2(size / 16) (scale="log")."""
    if scale == "bytes":
        return float(size)
    return 1.0 + max(size, 16).bit_length() - 5


def layout(view, scale):
    """[(x, width, Chunk-like, state)] for every heap chunk, then every mmapped chunk, and the x of the break.

    Stretches of heap (a fallback mapping or a foreign sbrk starts a new
    one after fenceposts) and the mmapped chunks are placed one after
    another with a gap between; in "bytes" scale the gap is a tenth of the
    widest part.
    """
    boxes, x = [], 0.0
    gap = GAP if scale == "log" else max([c.size for c in view.chunks] + [1]) * 0.1
    brk_x = None
    for n, c in enumerate(view.chunks):
        w = chunk_width(c.size, scale)
        boxes.append((x, w, c, c.state))
        x += w
        if view.in_heap(c.addr):
            brk_x = x               # the break ends the last chunk of the brk heap
        if c.state == "fencepost" and n + 1 < len(view.chunks) and view.chunks[n + 1].state != "fencepost":
            x += gap            # the next chunk starts another stretch of heap
    if view.mmapped:
        x += gap if view.chunks else 0.0
    for start, length in view.mmapped:
        w = chunk_width(length, scale)
        boxes.append((x, w, M.Chunk(start, length, M.IS_MMAPPED, "mmapped"), "mmapped"))
        x += w + (gap / 3)
    return boxes, brk_x


def heap_strip(x, *, names=None, scale="log", title=None, highlight=None, ax=None):
    """The heap as a strip of chunks in address order, coloured by state; returns the Figure.

    Above each free chunk, the list it is on ("t0#1": tcache bin 0, second
    from the head; "f1", "u", "s20", "l70"); below each chunk its size.  In
    use chunks carry the program's name for them (`names` maps pointers to
    names).  A line marks the break at the end of top; mmapped chunks follow
    after a gap, hatched.  `scale="log"` gives each chunk a width that grows
    with the logarithm of its size, so 32-byte chunks stay visible beside a
    128 KiB top; `scale="bytes"` draws widths in proportion.  `highlight`
    is a pointer (mem) or chunk address to outline.  Each chunk's rectangle
    has the gid "chunk ADDRESS STATE" (the mapping's start for mmapped ones).
    """
    if scale not in ("log", "bytes"):
        raise ValueError(f"scale must be 'log' or 'bytes', not {scale!r}")
    view = snapshot(x, names)
    boxes, brk_x = layout(view, scale)
    total = max([bx + bw for bx, bw, _, _ in boxes] + [1.0])
    fig, ax = style.new_axes(ax, (10, 3.0))
    own = ax.figure is fig and len(fig.axes) == 1
    hl = None if highlight is None else require_int("highlight", highlight)
    for bx, bw, c, state in boxes:
        edge = "#333333"
        ax.add_patch(Rectangle((bx, 0), bw, 1, facecolor=STATE_COLORS[state], edgecolor=edge, linewidth=0.6,
                               hatch="//" if state == "mmapped" else None, gid=f"chunk {c.addr:#x} {state}"))
        if hl is not None and (hl in (c.addr, c.addr + M.CHUNK_HDR_SZ)
                               or (state == "mmapped" and c.addr <= hl < c.addr + c.size)):
            ax.add_patch(Rectangle((bx, 0), bw, 1, fill=False, edgecolor=style.HIGHLIGHT, linewidth=2.5,
                                   gid="highlight"))
        ax.text(bx + bw / 2, -0.06, f"{c.size:#x}", rotation=90, ha="center", va="top", fontsize=7)
        where = view.lists.get(c.addr)
        if where:
            ax.text(bx + bw / 2, 1.06, list_label(where, short=True), rotation=90, ha="center", va="bottom",
                    fontsize=7)
        if state == "mmapped":
            name = view.mapping_name(c.addr, c.size)
        else:
            name = owner(view, c.addr) if state == "inuse" else ("top" if state == "top" else "")
        if name == "tcache_perthread_struct":
            name = "tcache"
        if name and bw / total > 0.012 * max(len(name), 2):
            ax.text(bx + bw / 2, 0.5, name, ha="center", va="center", fontsize=7)
    if brk_x is not None and view.base:
        ax.axvline(brk_x, color=style.WMARK_COLORS["min"], linewidth=1.5, gid="break")
        ax.text(brk_x, 1.45, "the break ", color=style.WMARK_COLORS["min"], fontsize=8, va="bottom", ha="right")
        ax.text(0, 1.45, "heap start", fontsize=8, va="bottom", ha="left")
    if view.mmapped:
        first = next(bx for bx, _, _, state in boxes if state == "mmapped")
        ax.text(first, 1.45, "mmapped chunks", fontsize=8, va="bottom", ha="left")
    ax.set_xlim(-total * 0.01, total * 1.01)
    ax.set_ylim(-1.2, 1.9)
    ax.set_yticks([])
    ax.set_xticks([])
    ax.set_ylabel("chunks")
    ax.set_xlabel("address order, heap start to the break, then mmapped chunks; "
                  + ("width grows with log2(size)" if scale == "log" else "width in proportion to bytes"))
    if title is None:
        u = usage(view)
        title = (f"The heap: {u['heap']:#x} bytes to the break; in use {u['in_use']:#x}, cached "
                 f"{u['cached']:#x}, in bins {u['binned']:#x}, top {u['top']:#x}; "
                 f"{len(view.mmapped)} mmapped chunk{'' if len(view.mmapped) == 1 else 's'}")
    ax.set_title(title, fontsize=10)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    present = [s for s in STATES if any(state == s for _, _, _, state in boxes)]
    handles = [Patch(facecolor=STATE_COLORS[s], edgecolor="#333333", hatch="//" if s == "mmapped" else None,
                     label=STATE_LABELS[s]) for s in present]
    if handles:
        style.put_legend(fig, ax, own, handles)
    return fig


# -- traces --------------------------------------------------------------------------------------

_NOISE = re.compile(r"\b(mm|av)=(<[^>]*>|0x[0-9a-f]+|MM)(, )?|\bp=<Process [^>]*>(, )?")


def event_text(e):
    """One trace event as text, without the arguments every call repeats (the mm, the arena)."""
    return _NOISE.sub("", str(e)).replace(", )", ")")


def call_path(t, kernel_depth=0, notes=True):
    """A trace of libc calls as text: every libc function, the kernel cut below its entry point.

    The entry (`__do_sys_brk`, `do_mmap`, `do_vmi_munmap`, `do_madvise`,
    `do_mremap`, or `handle_mm_fault` for a page fault glibc's own store
    took) is shown with its result; `kernel_depth` levels of the kernel's
    own calls under it are kept (0: none), and their notes.
    """
    kernel_depth = require_int("kernel_depth", kernel_depth, 0, 64)
    lines, cut = [], None
    for e in t.events:
        if cut is not None:
            if e.depth > cut + kernel_depth:
                continue
            if e.depth <= cut:
                cut = None
        if e.kind == "note" and not notes:
            continue
        lines.append(event_text(e))
        if e.kind == "call" and (e.func in KERNEL_ENTRIES or e.func in FAULT_ENTRIES) and cut is None:
            cut = e.depth
    return "\n".join(lines)


def kernel_calls(t):
    """The system calls the traced code made, as [(syscall, text)]: ("brk", "__do_sys_brk(brk=0x...) = 0x...")."""
    out, inside = [], None
    for e in t.events:
        if inside is not None and e.depth > inside:
            continue
        inside = None
        if e.kind == "call" and e.func in KERNEL_ENTRIES:
            out.append((KERNEL_ENTRIES[e.func], event_text(e).strip()))
            inside = e.depth
    return out


# -- running a trace one call at a time ------------------------------------------------------------

Call = collections.namedtuple("Call", "op name args text")
Call.__doc__ = """One call of a trace: op ("malloc", "free", "calloc", "realloc", "memalign",
"malloc_trim", "mallopt"), the pointer's name (or None), the integer arguments, and the call
written in C.  A free's args are () when the name keeps its (now dangling) value, as in C, and
(1,) when the name is cleared (the driver's `f`), so a second free of it frees NULL."""

Step = collections.namedtuple("Step", "index call result trace view")
Step.__doc__ = """One call run by replay_steps: its index (1 for the first), the Call, what it
returned (an int; None for free), the Trace of the call, and the HeapView after it."""

_C_CALL = re.compile(r"^(?:(?P<lhs>[A-Za-z_]\w*)\s*=\s*)?(?P<fn>[a-z_0-9]+)\s*\((?P<args>[^)]*)\)\s*;?$")
_DRIVER = {"m": "malloc", "f": "free", "c": "calloc", "r": "realloc", "a": "memalign", "t": "malloc_trim",
           "o": "mallopt"}
MALLOPT_NAMES = {"M_MXFAST": uapi.M_MXFAST, "M_TRIM_THRESHOLD": uapi.M_TRIM_THRESHOLD,
                 "M_TOP_PAD": uapi.M_TOP_PAD, "M_MMAP_THRESHOLD": uapi.M_MMAP_THRESHOLD,
                 "M_MMAP_MAX": uapi.M_MMAP_MAX}
_PARAM_NAMES = {v: k for k, v in MALLOPT_NAMES.items()}


def _int(word, line):
    word = word.strip()
    if word in MALLOPT_NAMES:
        return MALLOPT_NAMES[word]
    try:
        return int(word.replace("_", ""), 0)
    except ValueError:
        raise ValueError(f"trace: {word!r} is not a number in {line!r}") from None


def c_text(op, name, args):
    """A call written in C: "p1 = malloc(24)", "free(p1)", "mallopt(M_MMAP_THRESHOLD, 4096)"."""
    if op == "free":
        return f"free({name})"
    if op == "malloc_trim":
        return f"malloc_trim({args[0]})"
    if op == "mallopt":
        return f"mallopt({_PARAM_NAMES.get(args[0], args[0])}, {args[1]})"
    if op == "realloc":
        return f"{name} = realloc({name}, {args[0]})"
    return f"{name} = {op}({', '.join(str(a) for a in args)})"


def parse_call(line):
    """A Call from one line of a trace, or None for a blank line or a comment (# ...).

    Two spellings are accepted.  C: `p = malloc(24)`, `free(p)`,
    `q = calloc(10, 10)`, `p = realloc(p, 100)`, `p = memalign(64, 100)`,
    `malloc_trim(0)`, `mallopt(M_MMAP_THRESHOLD, 4096)`.  The malloc
    driver's language (mmlab.libc.replay): `m 0 24`, `f 0`, `c 0 10 10`,
    `r 0 100`, `a 0 64 100`, `t 0`, `o -3 4096`, where pointer 0 is
    named p0.  Raises ValueError naming the line it cannot read.
    """
    if not isinstance(line, str):
        raise TypeError(f"line must be a str, not {type(line).__name__}")
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    words = text.split()
    if words[0] in _DRIVER and "(" not in text and "=" not in text:
        op = _DRIVER[words[0]]
        nums = [_int(w, line) for w in words[1:]]
        want = {"malloc": 2, "free": 1, "calloc": 3, "realloc": 2, "memalign": 3, "malloc_trim": 1, "mallopt": 2}[op]
        if len(nums) != want:
            raise ValueError(f"trace: {words[0]!r} takes {want} numbers, in {line!r}")
        if op in ("malloc_trim", "mallopt"):
            return Call(op, None, tuple(nums), c_text(op, None, nums))
        if op == "free":
            return Call(op, f"p{nums[0]}", (1,), c_text(op, f"p{nums[0]}", ()))
        name, args = f"p{nums[0]}", tuple(nums[1:])
        return Call(op, name, args, c_text(op, name, args))
    match = _C_CALL.match(text)
    if not match:
        raise ValueError(f"trace: cannot read {line!r} (write e.g. 'p = malloc(24)' or 'free(p)')")
    lhs, fn = match["lhs"], match["fn"]
    words = [w.strip() for w in match["args"].split(",")] if match["args"].strip() else []
    if fn == "free" and len(words) == 1 and lhs is None:
        return Call("free", words[0], (), c_text("free", words[0], ()))
    if fn == "realloc" and len(words) == 2 and lhs is not None:
        if words[0] != lhs:
            raise ValueError(f"trace: write realloc as 'p = realloc(p, n)', in {line!r}")
        args = (_int(words[1], line),)
        return Call("realloc", lhs, args, c_text("realloc", lhs, args))
    arity = {"malloc": 1, "calloc": 2, "memalign": 2}
    if fn in arity and len(words) == arity[fn] and lhs is not None:
        args = tuple(_int(w, line) for w in words)
        return Call(fn, lhs, args, c_text(fn, lhs, args))
    if fn == "malloc_trim" and len(words) == 1 and lhs is None:
        args = (_int(words[0], line),)
        return Call(fn, None, args, c_text(fn, None, args))
    if fn == "mallopt" and len(words) == 2 and lhs is None:
        args = (_int(words[0], line), _int(words[1], line))
        return Call(fn, None, args, c_text(fn, None, args))
    raise ValueError(f"trace: cannot read {line!r} (malloc, free, calloc, realloc, memalign, "
                     "malloc_trim and mallopt are understood)")


def parse_trace(trace):
    """[Call] for a trace given as text (one call a line) or a list of lines; blank lines and comments skipped."""
    lines = trace.splitlines() if isinstance(trace, str) else list(trace)
    return [c for c in (parse_call(line) for line in lines) if c is not None]


def to_driver(trace):
    """The trace in malloc_driver.c's language (for mmlab.libc.replay.replay and run_host).

    Pointer names become slot numbers in the order they first appear; a name
    like p7 keeps its number when it is free.  A free in C becomes `F` (the
    driver keeps the dangling pointer, so a second free is a double free).
    """
    calls = parse_trace(trace)
    slots = {}
    for c in calls:
        if c.name is not None and c.name not in slots and re.fullmatch(r"p\d+", c.name):
            slots[c.name] = int(c.name[1:])
    taken = set(slots.values())
    free_ids = (i for i in range(1 << 20) if i not in taken)
    out = []
    for c in calls:
        if c.name is not None and c.name not in slots:
            slots[c.name] = next(free_ids)
        i = slots.get(c.name)
        a = c.args
        out.append({"malloc": lambda: f"m {i} {a[0]}", "free": lambda: f"{'f' if a else 'F'} {i}",
                    "calloc": lambda: f"c {i} {a[0]} {a[1]}", "realloc": lambda: f"r {i} {a[0]}",
                    "memalign": lambda: f"a {i} {a[0]} {a[1]}", "malloc_trim": lambda: f"t {a[0]}",
                    "mallopt": lambda: f"o {a[0]} {a[1]}"}[c.op]())
    return out


def run_call(libc, call, pointers, live):
    """Make one Call on libc; returns what it returned.

    `pointers` maps each name to its value (a freed name keeps its dangling
    value, as a C variable does); `live` is the set of names that point to
    memory the program still owns.  Both are updated.
    """
    op, name, args = call.op, call.name, call.args
    if op == "free":
        libc.free(pointers.get(name, 0))
        live.discard(name)
        if args:
            pointers.pop(name, None)
        return None
    if op == "malloc":
        result = pointers[name] = libc.malloc(args[0])
    elif op == "calloc":
        result = pointers[name] = libc.calloc(args[0], args[1])
    elif op == "realloc":
        result = libc.realloc(pointers.get(name, 0), args[0])
        if result or args[0] == 0:          # a failed realloc leaves the old block where it was
            pointers[name] = result
    elif op == "memalign":
        result = pointers[name] = libc.memalign(args[0], args[1])
    elif op == "malloc_trim":
        result = libc.malloc_trim(args[0])
    else:
        result = libc.mallopt(args[0], args[1])
    if name is not None:
        if pointers.get(name):
            live.add(name)
        else:
            pointers.pop(name, None)    # NULL names nothing
            live.discard(name)
    return result


def replay_steps(libc, trace):
    """Run a trace on libc one call at a time; yield a Step after each call.

    The trace is text or lines (parse_call's spellings).  Each call runs
    under the machine's trace (libc and kernel path together), and the
    HeapView after it names each live pointer.  NOTE: this changes libc and
    its process (the calls are real calls into the model); it is the one
    function here that does.  A GlibcAbort propagates, the heap as it was.
    """
    machine = libc.machine
    pointers, live = {}, set()
    for index, call in enumerate(parse_trace(trace), 1):
        with machine.trace() as t:
            result = run_call(libc, call, pointers, live)
        names = {pointers[name]: name for name in sorted(live)}
        yield Step(index, call, result, t, snapshot(libc, names))


def result_text(step):
    """What a Step's call returned, in words: "heap+0x2a0", "mmapped", "NULL", "1"."""
    call, result, view = step.call, step.result, step.view
    if call.op == "free":
        return "done"
    if call.op in ("malloc_trim", "mallopt"):
        return str(result)
    if not result:
        return "NULL"
    if view.mapping_of(result) is not None:
        return f"{result:#x} (an mmapped chunk)"
    return f"{result:#x} (heap {view.offset(result)})"


# -- use over a trace --------------------------------------------------------------------------------

USAGE_KEYS = ("in_use", "cached", "binned", "top", "fencepost", "heap", "mmapped")


def usage(x):
    """Bytes by what holds them: {in_use, cached (tcache and fastbins), binned (unsorted, small and
    large bins), top, fencepost, heap (the heap start to the break), mmapped (mmapped chunks' mappings)}.

    in_use + cached + binned + top + fencepost is the memory malloc got from
    brk (mallinfo's arena); heap differs only after a foreign sbrk or a brk
    failure.
    """
    view = snapshot(x)
    out = dict.fromkeys(USAGE_KEYS, 0)
    for c in view.chunks:
        key = ("in_use" if c.state == "inuse" else "cached" if c.state in CACHED else
               "binned" if c.state in BINNED else c.state)
        out[key] += c.size
    out["heap"] = view.heap_size
    out["mmapped"] = sum(length for _, length in view.mmapped)
    return out


def request_of(call):
    """The bytes an allocating Call asks for (calloc: n * size); None for other calls."""
    if call.op in ("malloc", "realloc", "memalign"):
        return call.args[-1]
    if call.op == "calloc":
        return call.args[0] * call.args[1]
    return None


def usage_history(steps):
    """One usage row per Step: usage() of its view, with the call's `index`, its C text (`call`), its
    `request` (bytes asked for, or None), `where` it went (where_it_went), `requested` (the bytes
    asked for by heap allocations still live), and mp_'s `mmap_threshold` and `trim_threshold`."""
    rows, live = [], {}
    for step in steps:
        call = step.call
        where = where_it_went(step)
        if call.op == "free":
            live.pop(call.name, None)
        elif call.name is not None and (step.result or call.op != "realloc" or call.args[0] == 0):
            live.pop(call.name, None)           # a failed realloc keeps the old block (and its count)
            if where == "heap":
                live[call.name] = request_of(call)
        row = usage(step.view)
        row.update(index=step.index, call=call.text, request=request_of(call), requested=sum(live.values()),
                   mmap_threshold=step.view.mp.mmap_threshold, trim_threshold=step.view.mp.trim_threshold,
                   where=where)
        rows.append(row)
    return rows


def where_it_went(step):
    """For an allocating Step: "heap", "mmap" or "failed"; None for other calls."""
    if step.call.op not in ("malloc", "calloc", "realloc", "memalign"):
        return None
    if not step.result:
        return "failed" if step.call.args[-1] else None
    return "mmap" if step.view.mapping_of(step.result) is not None else "heap"


FRAG_LAYERS = (("in_use", "in use (chunks the program holds)", STATE_COLORS["inuse"]),
               ("cached", "cached (tcache, fastbins)", STATE_COLORS["tcache"]),
               ("binned", "free in bins", STATE_COLORS["smallbin"]),
               ("top", "top", "#b9dfae"))


def fragmentation(history, *, title=None, ax=None):
    """The heap over a trace: stacked bytes in use, cached, free in bins and top, with the heap size
    (the break) as a line, the requested bytes live as a dashed line, and mmapped bytes dotted.

    `history` is usage_history(steps).  The gap between the heap line and
    the in-use layer is memory the process holds but does not use.
    """
    if not history:
        raise ValueError("history is empty: run replay_steps first")
    fig, ax = style.new_axes(ax, (10, 4.2))
    own = ax.figure is fig and len(fig.axes) == 1
    xs = [row["index"] for row in history] + [history[-1]["index"] + 1]     # the last step drawn too
    kib = 1024

    def series(key):
        values = [row[key] / kib for row in history]
        return values + values[-1:]

    layers = [series(key) for key, _, _ in FRAG_LAYERS]
    ax.stackplot(xs, *layers, colors=[c for _, _, c in FRAG_LAYERS], step="post",
                 labels=[label for _, label, _ in FRAG_LAYERS], linewidth=0)
    ax.step(xs, series("heap"), where="post", color="#222222", linewidth=1.4,
            label="heap size (start to the break)")
    ax.step(xs, series("requested"), where="post", color="#7a3b0c", linewidth=1.0,
            linestyle="--", label="bytes asked for by live heap allocations")
    if any(row["mmapped"] for row in history):
        ax.step(xs, series("mmapped"), where="post", color="#8e5cc4", linewidth=1.2,
                linestyle=":", label="mmapped chunks (not in the heap)")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(0, None)
    ax.set_xlabel("call number")
    ax.set_ylabel("KiB")
    ax.set_title(title or f"The heap over {len(history)} calls: what the break holds, and what is in use",
                 fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    if own:
        fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False, fontsize=8)
    else:
        ax.legend(handles, labels, fontsize=8)
    return fig


def thresholds(history, *, title=None, ax=None):
    """mmap_threshold and trim_threshold over a trace (log scale), and each allocation's request size
    as a point: orange on the heap, hatched purple in its own mapping."""
    if not history:
        raise ValueError("history is empty: run replay_steps first")
    fig, ax = style.new_axes(ax, (10, 4))
    xs = [row["index"] for row in history]
    ax.step(xs, [row["mmap_threshold"] for row in history], where="post", color="#222222", linewidth=1.5,
            label="mmap_threshold")
    ax.step(xs, [row["trim_threshold"] for row in history], where="post", color="#2471a3", linewidth=1.0,
            linestyle="--", label="trim_threshold")
    for where, color, marker in (("heap", STATE_COLORS["inuse"], "o"), ("mmap", "#8e5cc4", "s")):
        pts = [(row["index"], row["request"]) for row in history if row["where"] == where]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=color, marker=marker, s=22, zorder=3,
                       label=f"a request served from {'the heap' if where == 'heap' else 'its own mmap'}")
    ax.axhline(M.DEFAULT_MMAP_THRESHOLD_MAX, color="#999999", linewidth=0.8, linestyle=":",
               label="32 MiB: freeing an mmapped chunk this large or larger moves nothing")
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: human(int(v)) if v >= 1 else ""))
    ax.set_xlabel("call number")
    ax.set_ylabel("bytes (log scale)")
    ax.set_title(title or "Where each request went, against the thresholds", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return fig

