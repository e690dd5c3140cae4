"""Page-fault scenarios run on this machine's kernel and on the model, side by side.

A scenario is a list of op lines (see fault_driver.c for the language):

    map 0 16 3 34 -        16 pages, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS
    touch 0 0 16 1         write one byte to each page   -> "flt 16 0"
    pfn 0 3                the frame of page 3           -> "pfn F0" (canonical)
    rss0 ... rss           RssAnon, RssShmem change      -> "rss 64 0" (kB)

run_host(script) runs it through the compiled driver, run_model(script)
through a Machine; both give the same kind of answer lines, with frame
numbers renamed by first appearance ("Z" the zero page, "-" not present,
"F0", "F1", ... the rest), so the two can be compared line by line.
Fault counts are getrusage deltas on the host and p.rusage() deltas here.
"""
import os
import subprocess

from ..arch import PAGE_SIZE
from ..errors import SegmentationFault
from ..uapi import PROT_NONE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED, MAP_NORESERVE, O_RDONLY, O_RDWR
from ..uapi import PROT_WRITE, MAP_SHARED
from . import scenario as _sc

DRIVER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_driver.c")
ALIGN = 2 << 20
# Every script starts by finding the zero page: a read of fresh anonymous memory maps it.
PRELUDE = ["map 63 1 1 34 -", "touch 63 0 1 0", "pfn 63 0"]


def host_skip_reason():
    """Why the host side cannot run, or None: Linux x86_64, a C compiler, root for pagemap frames."""
    reason = _sc.host_skip_reason()
    if reason:
        return reason
    if os.geteuid() != 0:
        return "not root: /proc/self/pagemap hides frame numbers"
    if not os.path.isdir("/dev/shm"):
        return "no /dev/shm (tmpfs) for the file cases"
    return None


def build_driver():
    """The compiled fault driver (cached by source hash)."""
    return _sc.compile_cached(DRIVER_SOURCE, "fault_driver", ("-O1",))


def canonical(lines):
    """Rename frame numbers by first appearance; the prelude's frame is the zero page 'Z'."""
    names = {}
    out = []
    for i, line in enumerate(lines):
        if line.startswith("pfn "):
            value = line.split()[1]
            if value == "-1":
                line = "pfn -"
            else:
                if i == len(PRELUDE) - 1:
                    names[value] = "Z"
                line = "pfn " + names.setdefault(value, f"F{len(names)}")
        out.append(line)
    return out[len(PRELUDE):]


def run_host(script, timeout=60):
    """Run the script on this machine's kernel; the canonical answer lines."""
    text = "\n".join(PRELUDE + list(script)) + "\n"
    res = subprocess.run([build_driver()], input=text, capture_output=True, text=True, timeout=timeout)
    return canonical(res.stdout.splitlines())


class ModelRun:
    """The model's side: one Machine, the process running the script, its regions."""

    def __init__(self, ram="512MiB", seed=0):
        from ..machine import Machine
        self.m = Machine(ram=ram, seed=seed)
        self.p = self.m.spawn("fault_driver", uid=0)
        self.stack = []
        self.base = {}
        self.len = {}

    def op(self, line):
        w = line.split()
        kind, args = w[0], w[1:]
        return getattr(self, "op_" + kind)(*args)

    def op_file(self, path, n, fill):
        from ..mm import filemap
        n = int(n)
        f = self.m.fs.create(path, n * PAGE_SIZE, backing="tmpfs")
        if int(fill):
            for i in range(n):
                if filemap.filemap_get_folio(f, i) is None:
                    filemap.filemap_add_folio(f, i)
        return "file"

    def op_map(self, id_, n, prot, flags, path):
        p, n, prot, flags = self.p, int(n) * PAGE_SIZE, int(prot), int(flags)
        fd = -1
        if path != "-":
            fd = p.open(path, O_RDWR if prot & PROT_WRITE and flags & MAP_SHARED else O_RDONLY)
        try:
            r = p.mmap(0, n + ALIGN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
            a = (r + ALIGN - 1) & ~(ALIGN - 1)
            self.base[id_] = p.mmap(a, n, prot, flags | MAP_FIXED, fd, 0)
            self.len[id_] = n
        except OSError:
            return "map failed"
        finally:
            if fd >= 0:
                p.close(fd)
        return "map"

    def _faults(self, fn):
        before = self.p.rusage()
        ret = fn()
        after = self.p.rusage()
        return after[0] - before[0], after[1] - before[1], ret

    def op_touch(self, id_, page, n, write):
        base = self.base[id_]
        try:
            mn, mj, _ = self._faults(lambda: self.p.touch(base + int(page) * PAGE_SIZE,
                                                          int(n) * PAGE_SIZE, bool(int(write))))
        except SegmentationFault as e:
            return f"sig {e.code} {(e.address - base) // PAGE_SIZE}"
        except Exception as e:          # SIGBUS (memory.BusError)
            if hasattr(e, "address") and "Bus" in type(e).__name__:
                return f"sig {100 + e.code} {(e.address - base) // PAGE_SIZE}"
            raise
        return f"flt {mn} {mj}"

    def op_hole(self, id_, n):
        base = self.base[id_]
        return f"ret {self._ret(lambda: self.p.munmap(base - int(n) * PAGE_SIZE, int(n) * PAGE_SIZE))}"

    def op_below(self, id_, n, write):
        base, p = self.base[id_], self.p
        before = p.rusage()
        try:
            for i in range(1, int(n) + 1):
                p.touch(base - i * PAGE_SIZE, 1, bool(int(write)))
        except SegmentationFault as e:
            return f"sig {e.code} {(e.address - base) // PAGE_SIZE}"      # page aligned: C's division agrees
        after = p.rusage()
        return f"flt {after[0] - before[0]} {after[1] - before[1]}"

    def op_pfn(self, id_, page):
        from ..mm import memory
        e = self.p.pagemap(self.base[id_] + int(page) * PAGE_SIZE)
        return f"pfn {e & memory.PM_PFRAME_MASK:x}" if e >> 63 else "pfn -1"

    def _ret(self, fn):
        try:
            fn()
            return 0
        except OSError:
            return -1

    def op_prot(self, id_, prot):
        return f"ret {self._ret(lambda: self.p.mprotect(self.base[id_], self.len[id_], int(prot)))}"

    def op_unmap(self, id_):
        return f"ret {self._ret(lambda: self.p.munmap(self.base[id_], self.len[id_]))}"

    def op_advise(self, id_, page, n, advice):
        a = self.base[id_] + int(page) * PAGE_SIZE
        mn, mj, r = self._faults(lambda: self._ret(
            lambda: self.p.madvise(a, int(n) * PAGE_SIZE, int(advice))))
        return f"flt {mn} {mj} ret {r}"

    def op_lock(self, id_):
        mn, mj, r = self._faults(lambda: self._ret(lambda: self.p.mlock(self.base[id_], self.len[id_])))
        return f"flt {mn} {mj} ret {r}"

    def op_lockall(self, flags):
        return f"ret {self._ret(lambda: self.p.mlockall(int(flags)))}"

    def _rss(self):
        from ..mm import memory
        r = memory.mm_rss(self.m, self.p.mm)
        return [r["anon"] * 4, r["shmem"] * 4]

    def op_rss0(self):
        self.rss_base = self._rss()
        return "rss0"

    def op_rss(self):
        return "rss " + " ".join(str(a - b) for a, b in zip(self._rss(), self.rss_base))

    def op_fork(self):
        self.stack.append(self.p)
        self.p = self.p.fork()
        return "fork"

    def op_exit(self):
        self.p.exit()
        self.p = self.stack.pop()
        return "exit"


def run_model(script, check=True):
    """Run the script on a fresh model machine; the canonical answer lines (m.check() after each op)."""
    run = ModelRun()
    out = []
    for line in PRELUDE + list(script):
        out.append(run.op(line))
        if check:
            run.m.check()
    return canonical(out)
