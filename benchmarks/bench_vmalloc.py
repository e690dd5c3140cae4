"""vmalloc (mmlab/mm/vmalloc.py): vmalloc/vfree pairs per second.

Target: 20,000 vmalloc(64 KiB)/vfree pairs a second or more.  Each pair
reserves a 17-page range (from a vmap node's pool once ranges have been
purged), kzallocs the vm_struct, kmallocs a 128-byte page array, takes 16
order-0 pages from the page allocator, writes 16 PTEs, then undoes it all,
the range going to the lazy list (a purge every ~960 pairs).  The machine
runs with and without per-CPU page lists; the page allocator's share of the
time is reported beside it, since 32 page-allocator calls make most of a
pair.  vmalloc(4 KiB) pairs and 4 MiB huge (PMD-mapped) pairs are reported
for information.
"""
import time

from benchmarks import Figure, benchmark, rate
from mmlab import Machine
from mmlab.mm import page_alloc, vmalloc as vm
from mmlab.uapi import GFP_KERNEL, __GFP_NOWARN, __GFP_HIGHMEM

PAIRS_TARGET = 20_000
N_PAIRS = 20_000
SIZE = 64 << 10


def warm_machine(pcp):
    """A machine on which the page tables, slabs and a vmap pool for 64 KiB already exist."""
    m = Machine(ram="1GiB", cpus=2, pcp=pcp)
    for _ in range(2000):
        m.vfree(m.vmalloc(SIZE))
    return m


def pairs(pcp, size=SIZE, n=N_PAIRS, alloc=None):
    """Pairs per second of alloc(size)/vfree on a warm machine, checked afterwards (untimed)."""
    made = []

    def setup():
        m = warm_machine(pcp)
        made.append(m)
        return m
    if alloc is None:
        per_s = rate(lambda m: m.vfree(m.vmalloc(size)), n, setup=setup)
    else:
        per_s = rate(lambda m: m.vfree(alloc(m, size)), n, setup=setup)
    for m in made:
        m.check()
    return per_s


def page_allocator_share(pcp, n=5000):
    """Seconds per pair spent in 16 alloc_pages and 16 free_pages calls alone, as vmalloc makes them."""
    m = warm_machine(pcp)
    gfp = GFP_KERNEL | __GFP_HIGHMEM | __GFP_NOWARN
    alloc, free = page_alloc.alloc_pages, page_alloc.free_pages
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            pages = [alloc(m, 0, gfp) for _ in range(16)]
            for pfn in pages:
                free(m, pfn, 0)
        best = min(best, (time.perf_counter() - start) / n)
    m.check()
    return best


@benchmark
def vmalloc_pairs():
    """vmalloc(64 KiB)/vfree pairs per second, without and with per-CPU page lists."""
    with_pcp = pairs(pcp=True)
    plain = pairs(pcp=False)
    share = page_allocator_share(pcp=True)
    small = pairs(pcp=True, size=4096)
    huge = pairs(pcp=True, size=4 << 20, n=500, alloc=vm.vmalloc_huge)
    return [
        Figure("vmalloc(64 KiB)/vfree pairs", with_pcp, "pairs/s", PAIRS_TARGET,
               note="Linux's setup: per-CPU page lists feed the bulk allocator"),
        Figure("vmalloc(64 KiB)/vfree pairs, pcp=False", plain, "pairs/s", None,
               note="the buddy allocator alone: every page split off and merged back"),
        Figure("of which 16 alloc_pages + 16 free_pages, pcp=True", share * 1e6, "us/pair", None,
               better="lower", note="the page allocator's calls alone, outside vmalloc"),
        Figure("vmalloc(4 KiB)/vfree pairs, pcp=True", small, "pairs/s", None),
        Figure("vmalloc_huge(4 MiB)/vfree pairs, pcp=True", huge, "pairs/s", None,
               note="two order-9 blocks, two PMD leaves"),
    ]
