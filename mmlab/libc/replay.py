"""Traces of malloc calls, replayed on the model or on this machine's glibc.

A trace is text, one call a line, in the language malloc_driver.c reads:

    m ID SIZE          p[ID] = malloc(SIZE)
    f ID               free(p[ID])
    F ID               free(p[ID]), keeping p[ID] (so a second F is a double free)
    g ID OFF           free(p[ID] + OFF)
    c ID N SIZE        p[ID] = calloc(N, SIZE)
    r ID SIZE          p[ID] = realloc(p[ID], SIZE)
    a ID ALIGN SIZE    p[ID] = memalign(ALIGN, SIZE)     (l: aligned_alloc)
    x ID ALIGN SIZE    posix_memalign(&p[ID], ALIGN, SIZE)
    t PAD              malloc_trim(PAD)
    o PARAM VALUE      mallopt(PARAM, VALUE)
    u ID               malloc_usable_size(p[ID])
    i                  mallinfo2()
    b INC              sbrk(INC) by the program itself, behind malloc's back
    B OFF LEN          mmap(initial break + OFF, LEN, MAP_FIXED_NOREPLACE): blocks the heap
    s                  malloc_stats()  (last line only)
    P                  populate the driver's own pages, so only malloc's faults are counted
    Z                  start counting minor faults here
    z                  the minor faults since the last Z or z   -> "z N"
    w ID LEN           write one byte to every page of [p[ID], p[ID] + LEN)
    W ID OFF VALUE     store an 8-byte VALUE at p[ID] + OFF, as a buggy program would
    M OFF LEN          mincore: how many pages of [initial break + OFF, + LEN) are resident   -> "M OFF N"

replay() runs it on a model Libc and run_host() on the real glibc (through
malloc_driver.c, compiled with the system's C compiler); both print the same
report, so the two can be compared line by line.  Addresses are printed as
offsets from the initial break ("heap+0x2a0"), or from the start of their
own mapping for mmapped chunks ("mmap+0x10"), so ASLR does not matter.
"""
import ctypes
import ctypes.util
import os
import platform
import random
import shutil
import subprocess
import sys

from .malloc import IS_MMAPPED, SIZE, PREV_SIZE, CHUNK_HDR_SZ, DEFAULT_MMAP_THRESHOLD
from ..uapi import PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE

DRIVER_SOURCE = os.path.join(os.path.dirname(__file__), "malloc_driver.c")
GLIBC_VERSION = "2.36"
BRK_ALIGN = 1 << 20


# -- the model side -----------------------------------------------------------------------

def replay(libc, trace):
    """Run `trace` (text or a list of lines) on a model Libc; returns the driver's report as lines."""
    lines = trace.splitlines() if isinstance(trace, str) else list(trace)
    # As the driver does: start the heap at a 1 MiB boundary, so that memalign's
    # choices do not depend on where ASLR put the break.
    brk0 = libc.process.brk(0)
    initial = (brk0 + BRK_ALIGN - 1) & -BRK_ALIGN
    if libc.process.brk(initial) != initial:
        raise RuntimeError("replay: cannot align the break")
    slots = {}
    out = [f"start arena={libc.mallinfo2().arena if libc.malloc_initialized else 0}"]
    proc = libc.process
    fault_base = [proc.rusage()[0]]

    def brk_off():
        return f"{(libc.curbrk if libc.curbrk is not None else initial) - initial:#x}"

    def ptr(p):
        if not p:
            return "0"
        word = libc.mem.read_word(p - CHUNK_HDR_SZ + SIZE)
        if word & IS_MMAPPED:
            start = p - CHUNK_HDR_SZ - libc.mem.read_word(p - CHUNK_HDR_SZ + PREV_SIZE)
            return f"mmap+{p - start:#x}"
        cur = libc.curbrk if libc.curbrk is not None else initial
        if initial <= p < cur:
            return f"heap+{p - initial:#x}"
        return f"other+{p & 0xfff:#x}"

    def alloc_line(op, i):
        p = slots.get(i, 0)
        usable = libc.malloc_usable_size(p) if p else 0
        return f"{op} {i} {ptr(p)} {usable} {brk_off()}"

    for line in lines:
        f = line.split()
        if not f:
            continue
        op, args = f[0], [int(x) for x in f[1:]]
        if op == "m":
            slots[args[0]] = libc.malloc(args[1])
            out.append(alloc_line(op, args[0]))
        elif op == "f":
            libc.free(slots.pop(args[0], 0))
            out.append(f"f {args[0]} {brk_off()}")
        elif op in "Fg":
            libc.free(slots.get(args[0], 0) + (args[1] if op == "g" else 0))
            out.append(f"{op} {args[0]} {brk_off()}")
        elif op == "c":
            slots[args[0]] = libc.calloc(args[1], args[2])
            out.append(alloc_line(op, args[0]))
        elif op == "r":
            q = libc.realloc(slots.get(args[0], 0), args[1])
            if q or args[1] == 0:
                slots[args[0]] = q
            out.append(alloc_line(op, args[0]))
        elif op in "al":
            slots[args[0]] = libc.memalign(args[1], args[2])
            out.append(alloc_line(op, args[0]))
        elif op == "x":
            err, p = libc.posix_memalign(args[1], args[2])
            if not err:
                slots[args[0]] = p
            out.append(alloc_line(op, args[0]) + f" ret={err}")
        elif op == "u":
            out.append(alloc_line(op, args[0]))
        elif op == "t":
            out.append(f"t {libc.malloc_trim(args[0])} {brk_off()}")
        elif op == "o":
            out.append(f"o {libc.mallopt(args[0], args[1])} {brk_off()}")
        elif op == "i":
            mi = libc.mallinfo2()
            out.append("i " + " ".join(str(getattr(mi, k)) for k in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "fsmblks", "uordblks",
                "fordblks", "keepcost")))
        elif op == "b":
            libc.sbrk(args[0])              # the program's own sbrk shares libc's __curbrk
            out.append(f"b {brk_off()}")
        elif op == "B":
            try:
                got = libc.process.mmap(initial + args[0], args[1], PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE)
                out.append(f"B {0 if got == initial + args[0] else 1}")
            except OSError as e:
                out.append(f"B {e.errno}")
        elif op == "s":
            out.extend(libc.malloc_stats().splitlines())
        elif op == "P":
            out.append("P")                 # the model's loads of code and output never fault
        elif op in "Zz":
            now = proc.rusage()[0]
            out.append("Z" if op == "Z" else f"z {now - fault_base[0]}")
            fault_base[0] = now
        elif op == "w":
            if args[1]:
                proc.touch(slots.get(args[0], 0), args[1], write=True)
            out.append(f"w {args[0]}")
        elif op == "M":
            lo, hi = (initial + args[0]) & -4096, (initial + args[0] + args[1] + 4095) & -4096
            try:
                count = sum(proc.mincore(lo, hi - lo))
            except OSError:
                count = -1
            out.append(f"M {args[0]} {count}")
        elif op == "W":
            proc.store(slots.get(args[0], 0) + args[1], (args[2] & (1 << 64) - 1).to_bytes(8, "little"))
            out.append(f"W {args[0]}")
        else:
            raise ValueError(f"trace: unknown operation {line!r}")
    return out


# -- the host side --------------------------------------------------------------------------

def host_skip_reason():
    """Why this machine cannot run the driver (None when it can): Linux, glibc 2.36, a C compiler."""
    if not sys.platform.startswith("linux"):
        return "the malloc driver needs Linux"
    if platform.machine() != "x86_64":
        return f"the model is x86_64's malloc; this machine is {platform.machine()}"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        version = libc.gnu_get_libc_version().decode()
    except (OSError, AttributeError):
        return "this C library is not glibc"
    if version != GLIBC_VERSION:
        return f"the model is glibc {GLIBC_VERSION}'s malloc; this machine has glibc {version}"
    if not (shutil.which("cc") or shutil.which("gcc")):
        return "no C compiler (cc) to build the malloc driver"
    return None


def build_driver():
    """Compile malloc_driver.c (cc -O0 -fno-builtin, so every call reaches glibc); the executable's path."""
    from ..linux.scenario import compile_cached
    return compile_cached(DRIVER_SOURCE, "malloc_driver", ("-O0", "-fno-builtin"))


def run_host_raw(trace):
    """Run `trace` on this machine's glibc: (exit status, stdout lines, stderr text).

    The driver runs in a fresh process with an empty environment, so no
    GLIBC_TUNABLES or MALLOC_* variable changes glibc's defaults.  A status
    of -6 is SIGABRT: glibc found its heap corrupted and printed why on stderr.
    """
    text = trace if isinstance(trace, str) else "\n".join(trace)
    proc = subprocess.run([build_driver()], input=text.encode(), capture_output=True,
                          env={}, check=False)
    return proc.returncode, proc.stdout.decode().splitlines(), proc.stderr.decode()


def run_host(trace):
    """Run `trace` on this machine's glibc; returns the driver's report as lines."""
    text = trace if isinstance(trace, str) else "\n".join(trace)
    proc = subprocess.run([build_driver()], input=text.encode(), capture_output=True,
                          env={}, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"malloc_driver failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    out = proc.stdout.decode().splitlines()
    if proc.stderr:
        out.extend(proc.stderr.decode().splitlines())
    return out


# -- random traces --------------------------------------------------------------------------

SIZE_CLASSES = [          # (weight, low, high): tcache, fastbin, small, large, around the mmap threshold
    (30, 0, 128),
    (20, 129, 1032),
    (15, 1033, 4096),
    (15, 4097, 64 * 1024),
    (8, 64 * 1024, 200 * 1024),
    (4, 200 * 1024, 2 << 20),
]


PROFILES = {               # size classes for random_trace(profile=...)
    "mixed": SIZE_CLASSES,
    "small": [(50, 0, 128), (50, 129, 1032)],                       # tcache, fastbins, small bins
    "bins": [(20, 0, 1032), (50, 1033, 16384), (30, 16385, 120000)],  # the unsorted bin, large bins
    "big": [(30, 0, 4096), (40, 100000, 600000), (30, 600000, 8 << 20)],  # brk, mmap, thresholds, trim
}


def _random_size(rng, classes=SIZE_CLASSES):
    weights = [w for w, _, _ in classes]
    _, lo, hi = rng.choices(classes, weights)[0]
    return rng.randint(lo, hi)


MALLOPTS = [               # (param, values): M_MXFAST, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX
    (1, [0, 16, 64, 128, 160, 200]),
    (-1, [0, 4096, 65536, 1 << 20, -1]),
    (-2, [0, 4096, 1 << 20]),
    (-3, [0, 4096, 65536, 1 << 20, 64 << 20]),
    (-4, [0, 1, 4, 65536]),
]


def random_trace(seed, length=200, slots=40, trims=True, reallocs=True, aligned=True, mallopts=False,
                 profile="mixed", realloc_share=0.15, foreign_sbrk=False):
    """A seeded random trace mixing calls; `profile` names the sizes (PROFILES).

    With `foreign_sbrk`, the program now and then moves the break itself.
    """
    rng = random.Random(seed)
    classes = PROFILES[profile]

    def random_size(rng):
        return _random_size(rng, classes)

    live = set()
    lines = []
    for _ in range(length):
        r = rng.random()
        if mallopts and r < 0.02:
            param, values = rng.choice(MALLOPTS)
            lines.append(f"o {param} {rng.choice(values)}")
            continue
        if foreign_sbrk and r > 0.99:
            lines.append(f"b {rng.choice([16, 100, 4096, 8192, 65536])}")
            continue
        free_ids = [i for i in range(slots) if i not in live]
        if live and (r < 0.40 or not free_ids):
            i = rng.choice(sorted(live))
            if reallocs and rng.random() < realloc_share:
                lines.append(f"r {i} {random_size(rng) if rng.random() < 0.9 else 0}")
                if lines[-1].endswith(" 0"):
                    live.discard(i)
            else:
                lines.append(f"f {i}")
                live.discard(i)
            continue
        i = rng.choice(free_ids)
        k = rng.random()
        if k < 0.07:
            n = rng.randint(1, 64)
            lines.append(f"c {i} {n} {max(1, random_size(rng) // n)}")
        elif aligned and k < 0.12:
            # Alignments above a page only for requests that stay on the heap: an
            # mmapped chunk's alignment depends on where the kernel put the mapping
            # (and mallopt may lower the mmap threshold).
            align = 1 << rng.randint(3, 12 if mallopts else 16)
            size = random_size(rng)
            if align > 4096:
                size = rng.randint(0, DEFAULT_MMAP_THRESHOLD - align - 64)
            lines.append(f"a {i} {align} {size}")
        elif trims and k < 0.14:
            lines.append(f"t {rng.choice([0, 0, 4096, 65536, 1 << 20])}")
            continue
        else:
            lines.append(f"m {i} {random_size(rng)}")
        live.add(i)
    lines.append("i")
    return lines
