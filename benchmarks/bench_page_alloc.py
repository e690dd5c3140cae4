"""The buddy allocator (mmlab/mm/page_alloc.py): boot, and alloc/free pairs per second.

Targets: Machine(ram="64GiB") boots in under 1 s and adds under 1 GiB to a
fresh process; order-0 alloc_pages/free_pages pairs run at 200,000 a
second or more, both in the worst case (a fresh machine, where each pair
splits an order-10 block down to one page and merges it back) and with a
working set of 2,000 held pages replaced at random.
"""
import random

from benchmarks import Figure, benchmark, rate, rate_of_working_set, run_child
from mmlab import Machine
from mmlab.uapi import GFP_KERNEL

PAIRS_TARGET = 200_000
N_PAIRS = 50_000

BOOT_CHILD = """
import json, resource, time
from mmlab import Machine
Machine(ram="64MiB")                    # warm the import and code paths, not the memory
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
m = Machine(ram="64GiB")
elapsed = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "rss_kib": after - before}))
"""


@benchmark
def boot_64gib():
    """Machine(ram="64GiB"): boot time and peak memory added, each in a fresh process."""
    runs = [run_child(BOOT_CHILD) for _ in range(3)]
    seconds = min(r["seconds"] for r in runs)
    mib = max(r["rss_kib"] for r in runs) / 1024          # ru_maxrss is in KiB on Linux
    return [Figure('Machine(ram="64GiB") boot', seconds, "s", target=1.0, better="lower",
                   note="best of 3 fresh processes"),
            Figure('Machine(ram="64GiB") peak RSS added', mib, "MiB", target=1024, better="lower",
                   note="ru_maxrss growth over a process that has imported mmlab")]


def pair_worst(m):
    """One page out and back on a fresh machine: a full split of an order-10 block, then a full merge."""
    m.free_pages(m.alloc_pages(0, GFP_KERNEL), 0)


def working_set(pcp, size=2000, seed=1):
    """A machine holding `size` order-0 pages, and a step that frees one at random and allocates another."""
    m = Machine(ram="4GiB", pcp=pcp)
    held = [m.alloc_pages(0, GFP_KERNEL) for _ in range(size)]
    rng = random.Random(seed)
    choose = rng.randrange

    def step(_):
        i = choose(size)
        m.free_pages(held[i], 0)
        held[i] = m.alloc_pages(0, GFP_KERNEL)
    return step, m


MIXED_ORDERS = [0] * 8 + [1] * 4 + [2] * 2 + [3] + [4, 9, 10]


def mixed_set(size=500, seed=2):
    """A machine holding `size` blocks of mixed orders, and a step that replaces one at random."""
    m = Machine(ram="4GiB")
    rng = random.Random(seed)
    held = []
    for _ in range(size):
        order = rng.choice(MIXED_ORDERS)
        held.append((m.alloc_pages(order, GFP_KERNEL), order))

    def step(_):
        i = rng.randrange(size)
        pfn, order = held[i]
        m.free_pages(pfn, order)
        order = rng.choice(MIXED_ORDERS)
        held[i] = (m.alloc_pages(order, GFP_KERNEL), order)
    return step, m




@benchmark
def order0_pairs():
    """alloc_pages(0)/free_pages pairs per second: worst case and a 2,000-page working set."""
    worst_pcp = rate(pair_worst, N_PAIRS, setup=lambda: Machine(ram="4GiB"))
    ws_pcp = rate_of_working_set(lambda: working_set(pcp=True), N_PAIRS)
    worst = rate(pair_worst, N_PAIRS, setup=lambda: Machine(ram="4GiB", pcp=False))
    ws = rate_of_working_set(lambda: working_set(pcp=False), N_PAIRS)
    return [
        Figure("order-0 pairs, fresh machine", worst_pcp, "pairs/s", PAIRS_TARGET,
               note="Linux's setup (per-CPU lists): the CPU's list serves the pair"),
        Figure("order-0 pairs, 2,000-page working set", ws_pcp, "pairs/s", PAIRS_TARGET),
        Figure("order-0 pairs, fresh machine, pcp=False", worst, "pairs/s", None,
               note="the buddy allocator alone: split 10 + merge 10 every pair"),
        Figure("order-0 pairs, 2,000-page working set, pcp=False", ws, "pairs/s", None),
    ]


@benchmark
def mixed_order_pairs():
    """Free one of 500 held blocks of mixed orders (0-4, 9, 10) and allocate another, per second."""
    per_s = rate_of_working_set(mixed_set, N_PAIRS)
    return [Figure("mixed-order pairs, 500-block working set", per_s, "pairs/s", None,
                   note="orders 0 (8/18), 1 (4/18), 2 (2/18), 3, 4, 9, 10 (1/18 each)")]
