"""Page faults (mmlab/mm/memory.py): a 1 GiB anonymous write-touch, and p.store calls.

Targets: the model's write-touch of 1 GiB of fresh anonymous memory
(262,144 faults, taken in bulk by anon_fault_bulk: one alloc_pages_bulk
and numpy page-table writes, the same end state as 262,144 single faults)
runs at 1,000,000 simulated faults a second or more, and
faster than this machine's kernel does the same touch, measured in the
same run through the fault driver (mmlab/linux/fault_driver.c: getrusage
counts and CLOCK_MONOTONIC around the loop); single p.store calls of 8
bytes to mapped memory run at 100,000 a second or more.  The rate of
faults taken one at a time through handle_mm_fault is reported beside
them, without a target.

The model's rate is per CPU second of this process (best of 3); the
kernel's is per wall-clock second of the driver's loop, which is all CPU
time in the kernel's fault path.
"""
import time

from benchmarks import Figure, benchmark
from mmlab import Machine
from mmlab.linux import faults
from mmlab.uapi import PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS

GIB = 1 << 30
PAGES = GIB >> 12
FAULTS_TARGET = 1_000_000
STORE_TARGET = 100_000


def model_touch():
    """Faults per CPU second of the model's 1 GiB write-touch, best of 3; and the fault count."""
    best, count = 0.0, 0
    for _ in range(3):
        m = Machine(ram="2GiB")
        p = m.spawn("a.out")
        a = p.mmap(0, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        start = time.process_time()
        count = p.touch(a, GIB, write=True)
        best = max(best, count / max(time.process_time() - start, 1e-9))
    return best, count


def host_touch():
    """Faults per second of this kernel's 1 GiB write-touch, best of 3; None off Linux/without cc."""
    if faults.host_skip_reason() and faults._sc.host_skip_reason():
        return None, None
    import subprocess
    best, count = 0.0, 0
    for _ in range(3):
        out = subprocess.run([faults.build_driver()], input=f"map 0 {PAGES} 3 34 -\nttouch 0 0 {PAGES} 1\n",
                             capture_output=True, text=True, timeout=120).stdout.split()
        count, seconds = int(out[2]), float(out[4])
        best = max(best, count / seconds)
    return best, count


def fault_by_fault(pages=16384):
    """Faults per CPU second when each fault goes through handle_mm_fault alone (a store per fresh page)."""
    best = 0.0
    for _ in range(3):
        m = Machine(ram="512MiB")
        p = m.spawn("a.out")
        a = p.mmap(0, pages << 12, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        start = time.process_time()
        for i in range(pages):
            p.store(a + (i << 12), b"x")
        best = max(best, pages / max(time.process_time() - start, 1e-9))
    return best


def store_rate(n=100_000):
    m = Machine(ram="256MiB")
    p = m.spawn("a.out")
    a = p.mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.touch(a, 1 << 20, write=True)
    best = 0.0
    for _ in range(3):
        start = time.process_time()
        for i in range(n):
            p.store(a + (i * 64) % (1 << 20), b"abcdefgh")
        best = max(best, n / max(time.process_time() - start, 1e-9))
    return best


@benchmark
def anon_write_touch():
    """1 GiB anonymous write-touch: model vs this machine's kernel; p.store calls."""
    model, n = model_touch()
    host, host_n = host_touch()
    figures = [Figure("model: 1 GiB write-touch", model, "faults/s", FAULTS_TARGET,
                      note=f"{n} faults")]
    if host is not None:
        figures.append(Figure("kernel: 1 GiB write-touch", host, "faults/s", None,
                              note=f"{host_n} faults (getrusage), same run"))
        figures.append(Figure("model / kernel speed", model / host, "x", 1.0))
    figures.append(Figure("model: one fault at a time", fault_by_fault(), "faults/s", None,
                          note="p.store to each fresh page: handle_mm_fault and do_anonymous_page per fault, "
                               "the path of every fault p.touch cannot batch"))
    figures.append(Figure("p.store(8 bytes) calls", store_rate(), "calls/s", STORE_TARGET))
    return figures
