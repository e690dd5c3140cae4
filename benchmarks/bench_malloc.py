"""glibc malloc on the model (mmlab/libc/malloc.py): random malloc/free replay, operations per second.

Target: 100,000 operations a second or more replaying a random program of
malloc and free over 256 slots, with sizes spread as programs spread them:
half tcache/fastbin sizes (1-128 bytes), 30% up to 1032 bytes (tcache and
small bins), 17% up to 8 KiB (small and large bins, the unsorted bin's
sorting), 3% up to 300 KiB (top growth through brk, mmap, the dynamic
threshold and trims).  The process is a real model process (m.spawn), so
brk and mmap run the kernel model's system calls.
"""
import random

from benchmarks import Figure, benchmark
from mmlab import Machine

OPS_TARGET = 100_000
N_OPS = 100_000
SLOTS = 256


def random_program(seed, n=N_OPS, slots=SLOTS, large=0.03):
    """(is_free, slot, size) steps: a slot that holds a block is freed, an empty one gets a new block."""
    rng = random.Random(seed)
    held = [False] * slots
    steps = []
    for _ in range(n):
        i = rng.randrange(slots)
        if held[i]:
            steps.append((True, i, 0))
        else:
            r = rng.random()
            if r < 0.5:
                size = rng.randint(1, 128)
            elif r < 0.8:
                size = rng.randint(129, 1032)
            elif r < 1 - large:
                size = rng.randint(1033, 8192)
            else:
                size = rng.randint(8193, 300_000)
            steps.append((False, i, size))
        held[i] = not held[i]
    return steps


def replay_rate(steps, repeat=3):
    """Best of `repeat` replays on fresh processes, in operations per second; checks the heap after."""
    import time
    best = 0.0
    for _ in range(repeat):
        m = Machine(ram="1GiB")
        libc = m.spawn().libc
        malloc, free = libc.malloc, libc.free
        slots = [0] * SLOTS
        start = time.perf_counter()
        for is_free, i, size in steps:
            if is_free:
                free(slots[i])
            else:
                slots[i] = malloc(size)
        best = max(best, len(steps) / (time.perf_counter() - start))
        m.check()
    return best


@benchmark
def malloc_free_replay():
    """Random malloc/free replay: mixed sizes, small sizes only, and tcache-only pairs."""
    mixed = replay_rate(random_program(1))
    small = replay_rate(random_program(2, large=0.0))
    pairs = replay_rate([(False, 0, 24), (True, 0, 0)] * (N_OPS // 2))
    return [
        Figure("random malloc/free replay, mixed sizes", mixed, "ops/s", OPS_TARGET,
               note="256 slots; 3% of blocks 8-300 KiB (brk, mmap, trim)"),
        Figure("random malloc/free replay, sizes up to 8 KiB", small, "ops/s", OPS_TARGET),
        Figure("malloc(24)/free pairs (tcache)", pairs, "ops/s", None,
               note="the fast path: tcache_get and tcache_put"),
    ]
