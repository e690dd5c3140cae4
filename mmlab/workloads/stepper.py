"""Readahead one access at a time: what each read or fault brought into the page cache, and why.

    from mmlab.workloads import ReadaheadStepper
    s = ReadaheadStepper(m, "/videos/movie.mp4")          # maps the file, nothing read yet
    step = s.access(0)                                     # fault on page 0
    step.windows        # [Window('do_sync_mmap_readahead', start=0, size=32, async_size=8)]
    step.marker_pages   # {24}: the page carrying PG_readahead
    step.resident       # mincore of the whole file after the access

Each access runs under m.trace(); the readahead decisions the kernel noted
("start=%d size=%d async_size=%d") become Window records, named after the
readahead function that decided them.  Residency comes from mincore on a
mapping of the file, as a program would see it.  The PG_readahead page of a
window is start + size - async_size: the page whose access starts the next,
asynchronous, readahead.  Only public calls are used: open, mmap, touch,
pread, madvise, fadvise, mincore, rusage, the clock and the trace.
"""
import re
from dataclasses import dataclass, field

from ..arch import PAGE_SIZE
from ..uapi import PROT_READ, MAP_SHARED, O_RDONLY
from .player import _as_hints, advice_name

# The functions of mm/readahead.c and mm/filemap.c whose calls a step reports; the first five
# decide windows (a window is named after the innermost of them that was running).
DECIDERS = ("do_sync_mmap_readahead", "do_async_mmap_readahead", "page_cache_sync_ra",
            "page_cache_async_ra", "force_page_cache_ra")
RA_FUNCS = DECIDERS + ("page_cache_ra_order", "page_cache_ra_unbounded")
_WINDOW = re.compile(r"start=(\d+) size=(\d+) async_size=(\d+)")
# page_cache_sync_ra's "standalone random read": read just the request, no window state changed.
_RANDOM = re.compile(r"random read of (\d+) page\(s\) at (\d+)")
# What was actually sent to the disk: the pages of one bio.
_SUBMIT = re.compile(r"submit_read: .*\[(\d+)\.\.(\d+)\]")


@dataclass(frozen=True)
class Window:
    """One readahead decision: pages [start, start+size), the last async_size of them asynchronous."""
    func: str
    start: int
    size: int
    async_size: int

    @property
    def marker(self):
        """The page that gets PG_readahead: reaching it starts the next readahead (None if async_size is 0)."""
        return self.start + self.size - self.async_size if self.async_size else None

    @property
    def end(self):
        return self.start + self.size

    def __str__(self):
        mark = f", PG_readahead on {self.marker}" if self.marker is not None else ""
        return f"{self.func}: pages {self.start}..{self.end - 1} ({self.size}, async {self.async_size}{mark})"


@dataclass
class RaStep:
    """One access and what it did."""
    page: int               # the first page accessed
    npages: int             # how many pages the access covered
    start_ns: int           # the clock before
    clock_ns: int           # the clock after
    minflt: int
    majflt: int
    calls: list = field(default_factory=list)      # readahead functions called, in order
    windows: list = field(default_factory=list)    # the Window decisions, in order
    resident: list = field(default_factory=list)   # mincore of the whole file afterwards
    reads: list = field(default_factory=list)      # (first, last) pages of each read sent to the disk

    @property
    def wait_ns(self):
        return self.clock_ns - self.start_ns

    @property
    def marker_pages(self):
        """Pages marked PG_readahead by this step's windows."""
        return {w.marker for w in self.windows if w.marker is not None}

    def __str__(self):
        what = "; ".join(str(w) for w in self.windows) or "no readahead"
        return (f"page {self.page}: waited {self.wait_ns / 1e6:.3f} ms, minflt {self.minflt}, "
                f"majflt {self.majflt}; {what}")


def windows_of(trace):
    """The readahead decisions in a trace, as Windows named after the function that decided them.

    A window is a note "start=%d size=%d async_size=%d"; page_cache_sync_ra's random read
    ("random read of N page(s) at I") counts as a window of N pages with no async part.
    """
    out, stack = [], []
    for e in trace.events:
        if e.kind == "call":
            del stack[e.depth:]
            stack.append(e.func)
        elif e.kind == "note":
            owner = next((f for f in reversed(stack[:e.depth]) if f in DECIDERS), "readahead")
            found = _WINDOW.search(e.text)
            if found:
                out.append(Window(owner, *map(int, found.groups())))
                continue
            found = _RANDOM.search(e.text)
            if found:
                n, index = map(int, found.groups())
                out.append(Window(owner, index, n, 0))
    return out


def reads_of(trace):
    """The page ranges (first, last) sent to the disk during a trace, in order."""
    return [tuple(map(int, found.groups())) for found in map(_SUBMIT.search, trace.notes()) if found]


class ReadaheadStepper:
    """A process with the file open (and mapped), accessing it one request at a time.

    via="mmap": each access touches pages of the mapping (page faults, read-around).
    via="read": each access is a pread() (ondemand readahead); a second, untouched mapping
    serves mincore only.  advice: MADV_* hints for the mapping (posix_fadvise for via="read").
    """

    def __init__(self, m, path, via="mmap", advice=None, process=None):
        if via not in ("mmap", "read"):
            raise ValueError(f"via must be 'mmap' or 'read', got {via!r}")
        file = m.fs.lookup(path)
        if file is None:
            raise ValueError(f"path: no file {path!r} (create it with m.fs.create)")
        self.m, self.path, self.via = m, path, via
        self.size = file.size
        self.npages = -(-self.size // PAGE_SIZE)
        self.p = process if process is not None else m.spawn("stepper")
        self.fd = self.p.open(path, O_RDONLY)
        self.addr = self.p.mmap(0, self.size, PROT_READ, MAP_SHARED, self.fd, 0)
        self.hints = _as_hints(advice)
        self.advice = advice_name(self.hints)
        with m.trace() as t:
            for a in self.hints:
                if via == "mmap":
                    self.p.madvise(self.addr, self.size, a)
                else:
                    self.p.fadvise(self.fd, 0, self.size, a)
        self.hint_windows = windows_of(t)      # what the hints read at once (MADV_WILLNEED)
        self.steps = []

    def residency(self):
        """mincore over the whole file: one bool per page."""
        return list(self.p.mincore(self.addr, self.npages * PAGE_SIZE))

    def access(self, page, npages=1):
        """Read `npages` pages from page `page` (a fault per page, or one pread); the RaStep."""
        if not isinstance(page, int) or not 0 <= page < self.npages:
            raise ValueError(f"page must be between 0 and {self.npages - 1}, got {page!r}")
        if not isinstance(npages, int) or npages < 1:
            raise ValueError(f"npages must be a positive int, got {npages!r}")
        npages = min(npages, self.npages - page)
        m, p = self.m, self.p
        min0, maj0 = p.rusage()
        t0 = m.clock_ns
        with m.trace() as t:
            if self.via == "mmap":
                p.touch(self.addr + page * PAGE_SIZE, npages * PAGE_SIZE)
            else:
                p.pread(self.fd, npages * PAGE_SIZE, page * PAGE_SIZE)
        min1, maj1 = p.rusage()
        step = RaStep(page, npages, t0, m.clock_ns, min1 - min0, maj1 - maj0,
                      [c for c in t.calls() if c in RA_FUNCS], windows_of(t), self.residency(),
                      reads_of(t))
        self.steps.append(step)
        return step

    def run(self, pages, npages=1):
        """access(page, npages) for each page in turn; the list of RaSteps."""
        return [self.access(pg, npages) for pg in pages]


def residency_text(step, npages=None, width=64):
    """The file as rows of characters after a step, `width` pages a row.

    '#' cached, '~' sent to the disk by this step and still in flight, '.' not cached, 'R' the
    PG_readahead page of a window this step decided; a '^' line marks the pages accessed.
    """
    res = step.resident[:npages] if npages else step.resident
    marks = step.marker_pages
    flight = {i for first, last in step.reads for i in range(first, last + 1)}
    row = "".join("R" if i in marks else "#" if r else "~" if i in flight else "." for i, r in enumerate(res))
    hit = "".join("^" if step.page <= i < step.page + step.npages else " " for i in range(len(res)))
    lines = []
    for s in range(0, len(row), width):
        lines.append(f"{s:5} {row[s:s + width]}")
        if hit[s:s + width].strip():
            lines.append("      " + hit[s:s + width].rstrip())
    return "\n".join(lines)
