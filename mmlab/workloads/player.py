"""The stutter experiment: a video player reading a large file through mmap at a bitrate.

    from mmlab.workloads import play, mbit
    m = Machine(ram="256MiB", seed=0)
    m.set_disk("hdd")
    m.set_read_ahead_kb(128)
    m.fs.create("/videos/movie.mp4", 64 << 20)
    r = play(m, "/videos/movie.mp4", bitrate=mbit(40), duration=2.0)
    r.stalls, r.stall_ns, r.majflt, r.throughput

How the player works, one step per chunk of the file:

  1. It opens the file (after any read_ahead_kb change: an open file keeps the
     readahead size it had when it was opened, as file_ra_state_init copies
     it), maps the whole file PROT_READ, and gives the mapping its madvise
     hints (or the file its posix_fadvise hints, when it reads with read()).
  2. It reads chunk 0 at once and shows it: the start-up delay.  A player
     waits for its first picture; that is not a stutter.
  3. Chunk k is due `period` after chunk k-1 was due, where period is the
     time the chunk plays: chunk * 8 / bitrate seconds.  The player sleeps
     until then (simulated time passes; the disk finishes the reads in flight
     meanwhile), touches every page of the chunk and measures how long that
     took on the simulated clock.
  4. A chunk that is there later than its due time plus `tolerance_ns` froze
     the picture: a stall.  Playback resumes when the chunk is there, so every
     later chunk is due later by as much (a rebuffer, as players do).

With bitrate=None the player reads flat out, with no deadlines: its
throughput is the most this disk and this readahead window can deliver to
one sequential reader.

The player reads time only from m.clock_ns, faults from p.rusage() and disk
traffic from m.disk.stats, all public, as a C program would use
clock_gettime, getrusage and /sys/block/vda/stat.
"""
from dataclasses import dataclass, field

from ..arch import PAGE_SIZE
from ..uapi import (PROT_READ, MAP_SHARED, O_RDONLY, MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL,
                    MADV_WILLNEED, MADV_DONTNEED)

NS = 1_000_000_000

# The readahead windows the chapter sweeps, in KiB (read_ahead_kb, as `blockdev --setra` sets
# it in 512-byte sectors: --setra 256 is 128 KiB, the default; --setra 16384 is 8 MiB).
WINDOWS_KB = (0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)

# The hints the chapter compares; a tuple is applied in order (the seed's WILLNEED then SEQUENTIAL).
ADVICE = {
    "none": None,
    "MADV_NORMAL": MADV_NORMAL,
    "MADV_SEQUENTIAL": MADV_SEQUENTIAL,
    "MADV_RANDOM": MADV_RANDOM,
    "MADV_WILLNEED": MADV_WILLNEED,
    "WILLNEED, SEQUENTIAL": (MADV_WILLNEED, MADV_SEQUENTIAL),
}

_ADVICE_NAMES = {MADV_NORMAL: "NORMAL", MADV_RANDOM: "RANDOM", MADV_SEQUENTIAL: "SEQUENTIAL",
                 MADV_WILLNEED: "WILLNEED", MADV_DONTNEED: "DONTNEED"}


def mbit(n):
    """n megabits per second, in bits per second (video bitrates are quoted so: 40 Mbit/s is 5 MB/s)."""
    return int(n * 1_000_000)


def advice_name(advice):
    """'none', 'SEQUENTIAL', 'WILLNEED, SEQUENTIAL': a hint (or a sequence of hints) by name."""
    hints = _as_hints(advice)
    if not hints:
        return "none"
    return ", ".join(_ADVICE_NAMES.get(a, str(a)) for a in hints)


def _as_hints(advice):
    """The hints to apply, in order: None -> (), an int -> (int,), a sequence -> a tuple of ints."""
    if advice is None:
        return ()
    if isinstance(advice, bool):
        raise TypeError("advice must be None, an int or a sequence of ints, not bool")
    if isinstance(advice, int):
        return (advice,)
    try:
        hints = tuple(advice)
    except TypeError:
        raise TypeError(f"advice must be None, an int or a sequence of ints, "
                        f"not {type(advice).__name__}") from None
    for a in hints:
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(f"advice must hold ints, got {a!r}")
    return hints


def idle(m, p, ns):
    """nanosleep: p sleeps `ns` nanoseconds of simulated time; returns m.clock_ns.

    The disk completes the reads in flight meanwhile, and periodic writeback runs, as they do
    while a real program sleeps.  ns <= 0 returns at once.
    """
    if ns <= 0:
        return m.clock_ns
    p.nanosleep(ns)
    return m.clock_ns


@dataclass
class ChunkRecord:
    """One chunk of the file as the player met it (times in ns on the simulated clock)."""
    index: int          # chunk number; chunk k covers bytes [k*chunk, (k+1)*chunk) of the file
    due_ns: int         # when playback needed it (start-up chunk: when the player asked)
    start_ns: int       # when the player began touching it (due_ns, unless it was still busy)
    done_ns: int        # when the last page of it was there
    majflt: int         # major faults taken inside it (faults that waited for the disk)
    stalled: bool       # later than due_ns + tolerance: the picture froze

    @property
    def wait_ns(self):
        """How long touching the chunk took: time spent in faults, mostly waiting for the disk."""
        return self.done_ns - self.start_ns

    @property
    def late_ns(self):
        """How late the chunk was (0 if on time)."""
        return max(0, self.done_ns - self.due_ns)


@dataclass
class PlayResult:
    """What one playback saw; `chunks` has one ChunkRecord per chunk, chunk 0 the start-up."""
    path: str               # the file played (several: joined by ", ")
    streams: int            # how many files were played together
    disk: str               # the disk preset ("hdd", "ssd", "nvme")
    read_ahead_kb: int      # the device's read_ahead_kb when the file was opened
    advice: str             # the hints, by name ("none", "SEQUENTIAL", ...)
    via: str                # "mmap" (page faults) or "read" (read() system calls)
    bitrate: object         # bits per second, or None for flat out
    chunk: int              # bytes per chunk
    tolerance_ns: int
    start_ns: int           # the clock when the player asked for chunk 0
    end_ns: int             # the clock when the last chunk was there
    minflt: int
    majflt: int
    read_requests: int      # disk read requests issued during playback (m.disk.stats["reads"])
    read_bytes: int         # bytes the disk read during playback
    file_size: int          # the (shortest) file's size in bytes
    chunks: list = field(default_factory=list)

    @property
    def startup_ns(self):
        """Time to the first picture: chunk 0's wait."""
        return self.chunks[0].wait_ns if self.chunks else 0

    @property
    def stalls(self):
        """How many chunks came late (the start-up chunk never counts)."""
        return sum(c.stalled for c in self.chunks[1:])

    @property
    def stall_ns(self):
        """Total time the picture stood still, start-up excluded."""
        return sum(c.late_ns for c in self.chunks[1:] if c.stalled)

    @property
    def played_bytes(self):
        """Bytes the player took, all files together."""
        return self.streams * sum(min(self.chunk, self.file_size - c.index * self.chunk)
                                  for c in self.chunks)

    @property
    def elapsed_ns(self):
        return self.end_ns - self.start_ns

    @property
    def throughput(self):
        """Bytes delivered to the player per second of simulated time, start-up included."""
        return self.played_bytes * NS / self.elapsed_ns if self.elapsed_ns else 0.0

    @property
    def max_wait_ns(self):
        """The longest single chunk wait after start-up."""
        return max((c.wait_ns for c in self.chunks[1:]), default=0)

    def summary(self):
        """One line: disk, window, hints, stalls, stall time, major faults, throughput."""
        rate = "flat out" if self.bitrate is None else f"{self.bitrate / 1e6:g} Mbit/s"
        return (f"{self.disk:4} ra={self.read_ahead_kb:5} KiB {self.advice:22} {rate:12} "
                f"stalls {self.stalls:4}  stalled {self.stall_ns / 1e6:8.1f} ms  "
                f"majflt {self.majflt:5}  reads {self.read_requests:5}  "
                f"{self.throughput / 1e6:7.1f} MB/s")


def _chunk_count(size, chunk, bitrate, duration):
    """How many chunks to play: the whole file, or `duration` seconds of it at `bitrate`."""
    n = -(-size // chunk)
    if duration is None:
        return n
    if bitrate is None:
        raise ValueError("duration needs a bitrate (flat-out reading has no playing time)")
    return max(1, min(n, -(-int(duration * bitrate / 8) // chunk)))


def play(m, paths, bitrate=None, duration=None, chunk=256 * 1024, advice=None, via="mmap",
         tolerance_ns=1_000_000, process=None):
    """Play the file at `paths` (or several files at once) on machine m; return a PlayResult.

    paths: one path, or a list of paths played together (the seed's "several files": a video
        and its audio track, a wall of cameras); each step takes chunk k of every file in turn.
    bitrate: bits per second of each file (mbit(40) for 40 Mbit/s), or None to read flat out.
    duration: seconds of video to play (None: all of the shortest file).
    chunk: bytes the player takes from a file at a time (a multiple of the page size).
    advice: None, one MADV_* hint, or a sequence applied in order; with via="read" the same
        numbers are given to posix_fadvise (POSIX_FADV_* and MADV_* agree for 0..4).
    via: "mmap" (the seed's player: page faults) or "read" (pread into a buffer).
    tolerance_ns: how late a step may be before the picture freezes.
    process: the process to run in (default: a new one named "player").

    The machine keeps everything the playback did (the page cache stays warm, the clock has
    moved on); the process keeps the files open and mapped.
    """
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk <= 0 or chunk % PAGE_SIZE:
        raise ValueError(f"chunk must be a positive multiple of {PAGE_SIZE}, got {chunk!r}")
    if bitrate is not None and (isinstance(bitrate, bool) or not isinstance(bitrate, (int, float))
                                or bitrate <= 0):
        raise ValueError(f"bitrate must be a positive number of bits per second or None, got {bitrate!r}")
    if duration is not None and (not isinstance(duration, (int, float)) or duration <= 0):
        raise ValueError(f"duration must be a positive number of seconds or None, got {duration!r}")
    if via not in ("mmap", "read"):
        raise ValueError(f"via must be 'mmap' or 'read', got {via!r}")
    hints = _as_hints(advice)
    paths = [paths] if isinstance(paths, str) else list(paths)
    if not paths:
        raise ValueError("paths: give at least one file")
    sizes = []
    for path in paths:
        file = m.fs.lookup(path) if isinstance(path, str) else None
        if file is None:
            raise ValueError(f"paths: no file {path!r} (create it with m.fs.create)")
        if file.size == 0:
            raise ValueError(f"paths: {path!r} is empty")
        sizes.append(file.size)
    n = _chunk_count(min(sizes), chunk, bitrate, duration)
    p = process if process is not None else m.spawn("player")

    streams = []                                        # (fd, address or None, size) per file
    for path, size in zip(paths, sizes):
        fd = p.open(path, O_RDONLY)
        addr = p.mmap(0, size, PROT_READ, MAP_SHARED, fd, 0) if via == "mmap" else None
        for a in hints:
            if via == "mmap":
                p.madvise(addr, size, a)
            else:
                p.fadvise(fd, 0, size, a)
        streams.append((fd, addr, size))

    def fetch(k):
        # Chunk k of every file, in turn; the clock moves by what the kernel made us wait.
        for fd, addr, size in streams:
            length = min(chunk, size - k * chunk)
            if length <= 0:
                continue
            if addr is not None:
                p.touch(addr + k * chunk, length)
            else:
                p.pread(fd, length, k * chunk)

    reads0, bytes0 = m.disk.stats["reads"], m.disk.stats["read_bytes"]
    min0, maj0 = p.rusage()
    period = None if bitrate is None else int(round(chunk * 8 * NS / bitrate))
    records = []
    start = due = m.clock_ns
    for k in range(n):
        if period is not None and k > 0:
            idle(m, p, due - m.clock_ns)
        t0 = m.clock_ns
        before = p.rusage()[1]
        fetch(k)
        done = m.clock_ns
        stalled = k > 0 and period is not None and done > due + tolerance_ns
        records.append(ChunkRecord(k, due if k else t0, t0, done, p.rusage()[1] - before, stalled))
        if period is not None:
            # Playback shows chunk k at `due` or, if it was late, when it came; the next is a period later.
            due = (done if stalled or k == 0 else due) + period
    min1, maj1 = p.rusage()
    return PlayResult(path=", ".join(paths), streams=len(paths), disk=m.disk.preset,
                      read_ahead_kb=m.disk.read_ahead_kb, advice=advice_name(hints), via=via,
                      bitrate=bitrate, chunk=chunk, tolerance_ns=tolerance_ns, start_ns=start,
                      end_ns=records[-1].done_ns, minflt=min1 - min0, majflt=maj1 - maj0,
                      read_requests=m.disk.stats["reads"] - reads0,
                      read_bytes=m.disk.stats["read_bytes"] - bytes0, file_size=min(sizes),
                      chunks=records)


def video_paths(streams):
    """The files a player of `streams` streams plays: /videos/cam0.mp4, /videos/cam1.mp4, ..."""
    return [f"/videos/cam{i}.mp4" for i in range(streams)]


def fresh_machine(disk="hdd", read_ahead_kb=128, size=64 << 20, streams=1, ram="256MiB", seed=0):
    """A new seeded machine with the given disk and readahead window and `streams` video files.

    The files are created one after another, each `size` bytes, named by video_paths(streams).
    """
    from ..machine import Machine
    m = Machine(ram=ram, seed=seed)
    m.set_disk(disk)
    m.set_read_ahead_kb(read_ahead_kb)
    for path in video_paths(streams):
        m.fs.create(path, size)
    return m


def sweep_windows(windows_kb=WINDOWS_KB, disks=("hdd", "ssd"), bitrate=None, size=64 << 20,
                  streams=1, duration=None, chunk=256 * 1024, advice=None, via="mmap",
                  ram="256MiB", seed=0):
    """Play once per (disk, read_ahead_kb), each on a fresh machine; {(disk, kb): PlayResult}."""
    results = {}
    for disk in disks:
        for kb in windows_kb:
            m = fresh_machine(disk, kb, size, streams, ram=ram, seed=seed)
            results[disk, kb] = play(m, video_paths(streams), bitrate=bitrate, duration=duration,
                                     chunk=chunk, advice=advice, via=via)
    return results


def sweep_advice(advice=None, disks=("hdd", "ssd"), read_ahead_kb=128, bitrate=None, size=64 << 20,
                 streams=1, duration=None, chunk=256 * 1024, ram="256MiB", seed=0):
    """Play once per (disk, hint) with the given window; {(disk, name): PlayResult}.

    `advice` is a dict {name: hint} (default ADVICE); a hint is None, an int or a tuple of ints.
    """
    advice = ADVICE if advice is None else advice
    results = {}
    for disk in disks:
        for name, hint in advice.items():
            m = fresh_machine(disk, read_ahead_kb, size, streams, ram=ram, seed=seed)
            results[disk, name] = play(m, video_paths(streams), bitrate=bitrate, duration=duration,
                                       chunk=chunk, advice=hint)
    return results
