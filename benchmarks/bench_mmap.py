"""The address space (mmlab/mm/vma.py, mm/mmap.py): system calls with 10,000 VMAs mapped.

Targets: with 10,000 VMAs in the process, mmap+munmap pairs run at 50,000 a
second or more, and find_vma answers 500,000 lookups a second or more.
The 10,000 VMAs are one-page anonymous mappings of alternating protection
(so none merge), placed top-down as a program's mmaps would be.  Two pair
figures: a mapping unlike its neighbour (a new VMA, then its removal), and
one like it (a merge that extends the neighbour, then a split back), which
is what malloc's mmap'd chunks mostly see.  Spawning a process and moving
the break are reported without targets.

Rates are calls per second of this process's CPU time (time.process_time),
the best of three runs: the model is single-threaded, and on a shared
machine wall-clock time also counts whatever else runs on the CPUs.
"""
import itertools
import random
import time

from benchmarks import Figure, benchmark
from mmlab import Machine
from mmlab.uapi import PROT_READ, PROT_WRITE, PROT_EXEC, MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE

N_VMAS = 10_000
PAIRS_TARGET = 50_000
FIND_TARGET = 500_000
ANON = MAP_PRIVATE | MAP_ANONYMOUS


CPU_NOTE = "per CPU second of this process, best of 3"


def rate(step, n, repeat=3):
    """Calls of step() per second of CPU time, the best of `repeat` runs of n calls."""
    best = 0.0
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(n):
            step()
        best = max(best, n / max(time.process_time() - start, 1e-9))
    return best


def process_with_vmas(n=N_VMAS):
    """A process holding n extra one-page VMAs that cannot merge."""
    m = Machine(ram="1GiB")
    p = m.spawn("a.out")
    for i in range(n):
        p.mmap(0, 4096, PROT_READ if i % 2 else PROT_READ | PROT_WRITE, ANON | MAP_NORESERVE)
    return m, p


@benchmark
def mmap_munmap_pairs():
    """mmap(0, 4 KiB) then munmap of it, with 10,000 VMAs mapped: new VMA, and merge + split."""
    m, p = process_with_vmas()
    assert p.mm.map_count >= N_VMAS
    lowest_prot = PROT_READ if (N_VMAS - 1) % 2 else PROT_READ | PROT_WRITE

    def new_vma():
        p.munmap(p.mmap(0, 4096, PROT_READ | PROT_EXEC, ANON), 4096)

    def merge_split():
        p.munmap(p.mmap(0, 4096, lowest_prot, ANON | MAP_NORESERVE), 4096)

    figures = [Figure("mmap+munmap pairs, new VMA (10,000 VMAs)", rate(new_vma, 20_000), "pairs/s",
                      target=PAIRS_TARGET, note=CPU_NOTE),
               Figure("mmap+munmap pairs, merge and split (10,000 VMAs)", rate(merge_split, 20_000),
                      "pairs/s", target=PAIRS_TARGET, note=CPU_NOTE)]
    m.check()
    return figures


@benchmark
def find_vma_lookups():
    """find_vma at random addresses among 10,000 VMAs (hits and misses)."""
    m, p = process_with_vmas()
    mm = p.mm
    vmas = mm.vma_list()
    rng = random.Random(1)
    addrs = [rng.randrange(v.vm_start - 4096, v.vm_end) for v in rng.sample(vmas, 5000)]
    nxt = itertools.cycle(addrs).__next__
    find = mm.find_vma
    per_s = rate(lambda: find(nxt()), 200_000)
    return [Figure("find_vma (10,000 VMAs)", per_s, "lookups/s", target=FIND_TARGET, note=CPU_NOTE)]


@benchmark
def spawn_and_brk():
    """m.spawn (exec plus ld.so's 15 system calls) and brk grow/shrink pairs, for information."""
    m = Machine(ram="1GiB")
    spawns = rate(lambda: m.spawn("a.out").exit(), 300)
    p = m.spawn("a.out")
    base = p.brk(0)
    brks = rate(lambda: (p.brk(base + 40960), p.brk(base)), 20_000)
    return [Figure("spawn + exit", spawns, "processes/s", note=CPU_NOTE),
            Figure("brk grow + shrink pairs", brks, "pairs/s", note=CPU_NOTE)]
