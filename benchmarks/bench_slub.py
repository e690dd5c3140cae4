"""SLUB and kmalloc (mmlab/mm/slub.py): kmalloc/kfree pairs per second.

Target: 200,000 kmalloc/kfree pairs a second or more, both for the pair the
fast paths serve (kmalloc(64) then kfree of it: this CPU's freelist out and
back) and for a working set of 2,000 objects of random sizes up to 8 KiB
replaced at random on two CPUs, which also exercises the slow paths (CPU
partial lists, node partial lists, new and discarded slabs).  kmalloc_large
pairs and kmem_cache_alloc/free pairs are reported beside them.
"""
import random

from benchmarks import Figure, benchmark, rate, rate_of_working_set
from mmlab import Machine

PAIRS_TARGET = 200_000
N_PAIRS = 100_000


def working_set(size=2000, max_bytes=8192, seed=1):
    """A machine holding `size` kmalloc objects and a step replacing one at random, CPU chosen at random."""
    m = Machine(ram="1GiB", cpus=2)
    rng = random.Random(seed)
    held = [m.kmalloc(rng.randrange(1, max_bytes + 1)) for _ in range(size)]
    # The random choices are drawn before timing: the figure is kmalloc's, not random's.
    picks = [(rng.randrange(size), rng.randrange(1, max_bytes + 1)) for _ in range(N_PAIRS)]
    it = iter(picks)
    kmalloc, kfree = m.kmalloc, m.kfree

    def step(_):
        i, nbytes = next(it)
        m.current_cpu = i & 1
        kfree(held[i])
        held[i] = kmalloc(nbytes)
    return step, m




@benchmark
def kmalloc_pairs():
    """kmalloc/kfree pairs per second: fast path, a random working set, kmalloc_large, a kmem_cache."""
    def fast(m):
        m.kfree(m.kmalloc(64))

    def large(m):
        m.kfree(m.kmalloc(20000))

    def cache_pair(s):
        s.free(s.alloc())

    fast_rate = rate(fast, N_PAIRS, setup=lambda: Machine(ram="1GiB"))
    ws_rate = rate_of_working_set(working_set, N_PAIRS)
    large_rate = rate(large, N_PAIRS // 4, setup=lambda: Machine(ram="1GiB"))
    cache_rate = rate(cache_pair, N_PAIRS,
                      setup=lambda: Machine(ram="1GiB").kmem_cache_create("bench", 200))
    return [
        Figure("kmalloc(64)/kfree pairs (fast paths)", fast_rate, "pairs/s", PAIRS_TARGET),
        Figure("kmalloc/kfree, 2,000 objects of 1-8192 bytes, 2 CPUs", ws_rate, "pairs/s",
               PAIRS_TARGET, note="random sizes and CPUs: slow paths, new and discarded slabs"),
        Figure("kmalloc(20000)/kfree pairs (kmalloc_large)", large_rate, "pairs/s", None,
               note="an order-3 block from the buddy allocator and back each time"),
        Figure("kmem_cache_alloc/free pairs (200-byte cache)", cache_rate, "pairs/s", None),
    ]
