"""Dirty pages of a shared file mapping, and how they get back to the disk.

    from mmlab.workloads import write_shared
    samples = write_shared(m, "/data/log", pages=64, interval_ns=50_000_000, msync_at=32)

A program maps a file MAP_SHARED, PROT_READ|PROT_WRITE, and stores into one
new page every `interval_ns` (a log, a database's pages).  Each store dirties
a page-cache page: the file changes in memory at once, on the disk only when
the page is written back, by the program's msync(MS_SYNC) or, if it never
asks, by the kernel's flusher threads once the page has been dirty longer
than vm.dirty_expire_centisecs (30 s by default; they look every
vm.dirty_writeback_centisecs, 5 s).  After each step the program reads
/proc/meminfo (Dirty, Writeback) and the disk's write counter; the samples
are what mmlab.viz.pagecache.writeback_figure draws.

Only the public API is used: p.store, p.msync, the clock, m.proc.meminfo()
and m.disk.stats.
"""
from dataclasses import dataclass

from ..arch import PAGE_SIZE
from ..uapi import PROT_READ, PROT_WRITE, MAP_SHARED, O_RDWR, MS_SYNC
from .player import idle


@dataclass
class WritebackSample:
    """One look at the machine: the clock, meminfo's Dirty and Writeback, the disk's written bytes."""
    t_ns: int
    dirty_kb: int
    writeback_kb: int
    written_bytes: int      # m.disk.stats["write_bytes"] since the program started
    event: str              # "store 3", "msync", "idle"


def meminfo_kb(m, *names):
    """The values (kB) of the named /proc/meminfo lines, read from the text as a program would."""
    values = {}
    for line in m.proc.meminfo().splitlines():
        key, _, rest = line.partition(":")
        if key in names:
            values[key] = int(rest.split()[0])
    missing = [n for n in names if n not in values]
    if missing:
        raise KeyError(f"meminfo has no {', '.join(missing)}")
    return tuple(values[n] for n in names)


def write_shared(m, path, pages, interval_ns, msync_at=None, msync_flags=MS_SYNC, tail_ns=0,
                 tail_step_ns=1_000_000_000, process=None):
    """Store into `pages` pages of a shared mapping of `path`, one every interval_ns; the samples.

    msync_at: after this many stores, msync the whole mapping with msync_flags (None: never).
    tail_ns: then sleep this long, sampling every tail_step_ns, to watch periodic writeback.
    The file must exist and hold at least `pages` pages.  Returns [WritebackSample], one per step.
    """
    file = m.fs.lookup(path)
    if file is None:
        raise ValueError(f"path: no file {path!r} (create it with m.fs.create)")
    if not isinstance(pages, int) or isinstance(pages, bool) or not 0 < pages <= file.size // PAGE_SIZE:
        raise ValueError(f"pages must be between 1 and the file's {file.size // PAGE_SIZE} pages, got {pages!r}")
    if not isinstance(interval_ns, int) or interval_ns < 0:
        raise ValueError(f"interval_ns must be an int >= 0, got {interval_ns!r}")
    if msync_at is not None and not 0 <= msync_at <= pages:
        raise ValueError(f"msync_at must be between 0 and pages, got {msync_at!r}")
    p = process if process is not None else m.spawn("writer")
    fd = p.open(path, O_RDWR)
    length = pages * PAGE_SIZE
    addr = p.mmap(0, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    written0 = m.disk.stats["write_bytes"]
    samples = []

    def look(event):
        dirty, wb = meminfo_kb(m, "Dirty", "Writeback")
        samples.append(WritebackSample(m.clock_ns, dirty, wb, m.disk.stats["write_bytes"] - written0, event))

    look("start")
    for i in range(pages):
        if msync_at == i:
            p.msync(addr, length, msync_flags)
            look("msync")
        p.store(addr + i * PAGE_SIZE, b"frame %d" % i)
        look(f"store {i}")
        idle(m, p, interval_ns)
    if msync_at == pages:
        p.msync(addr, length, msync_flags)
        look("msync")
    end = m.clock_ns + tail_ns
    while m.clock_ns < end:
        idle(m, p, min(tail_step_ns, end - m.clock_ns))
        look("idle")
    return samples
