"""SLUB and kmalloc (mmlab/mm/slub.py): examples that define the behaviour.

Geometry first (what /sys/kernel/slab shows), then kmalloc's size classes,
the fast and slow paths as traces, the partial lists and min_partial,
kmalloc_large, ksize/krealloc, /proc/slabinfo and meminfo, and the ways a
caller can get it wrong.
"""
import pytest

from mmlab import Machine, KernelBug
from mmlab.arch import PAGE_OFFSET, PAGE_SIZE, MAX_DMA_PFN
from mmlab.mm import slub
from mmlab.mm.slub import (SLAB_HWCACHE_ALIGN, SLAB_TYPESAFE_BY_RCU,
                           SLAB_RED_ZONE, ZERO_SIZE_PTR)
from mmlab.uapi import (GFP_KERNEL, GFP_DMA, GFP_ATOMIC, __GFP_RECLAIMABLE, __GFP_ACCOUNT,
                        __GFP_DMA32, __GFP_NOWARN, GFP_KERNEL_ACCOUNT)

SLUB_CALLS = {"kmalloc", "slab_alloc_node", "___slab_alloc", "get_partial", "new_slab",
              "allocate_slab", "kfree", "do_slab_free", "__slab_free", "put_cpu_partial",
              "__put_partials", "deactivate_slab", "discard_slab", "__free_slab", "flush_all",
              "__flush_cpu_slab", "kmem_cache_alloc", "kmem_cache_free", "__kmalloc_large_node",
              "free_large_kmalloc", "kmem_cache_shrink", "__kmem_cache_do_shrink"}


@pytest.fixture
def m():
    return Machine(ram="256MiB", cpus=2, pcp=False)


def slub_calls(t):
    """The slub functions a trace called, in order (the page allocator's are left out)."""
    return [name for name in t.calls() if name in SLUB_CALLS]


def geometry(s):
    """A cache's geometry as (object_size, slab_size, align, order, objs_per_slab, min_partial, cpu_partial)."""
    g = s.sysfs()
    return (g["object_size"], g["slab_size"], g["align"], g["order"], g["objs_per_slab"],
            g["min_partial"], g["cpu_partial"])


# -- geometry -----------------------------------------------------------------------

# What /sys/kernel/slab/kmalloc-*/ shows on this 2-CPU host (and any 2-CPU 6.x kernel).
KMALLOC_GEOMETRY_2CPUS = [
    # name           object  slot  align order objs minp cpup
    ("kmalloc-8",        8,     8,    8,   0, 512,  5, 120),
    ("kmalloc-16",      16,    16,   16,   0, 256,  5, 120),
    ("kmalloc-32",      32,    32,   32,   0, 128,  5, 120),
    ("kmalloc-64",      64,    64,   64,   0,  64,  5, 120),
    ("kmalloc-96",      96,    96,   32,   0,  42,  5, 120),   # largest power of 2 dividing 96
    ("kmalloc-128",    128,   128,  128,   0,  32,  5, 120),
    ("kmalloc-192",    192,   192,   64,   0,  21,  5, 120),   # 4096 % 192 = 64 wasted
    ("kmalloc-256",    256,   256,  256,   0,  16,  5,  52),
    ("kmalloc-512",    512,   512,  512,   1,  16,  5,  52),   # 12 objects need 6 KiB: order 1
    ("kmalloc-1k",    1024,  1024, 1024,   2,  16,  5,  24),
    ("kmalloc-2k",    2048,  2048, 2048,   3,  16,  5,  24),
    ("kmalloc-4k",    4096,  4096, 4096,   3,   8,  6,   6),   # min_partial ilog2(4096)/2 = 6
    ("kmalloc-8k",    8192,  8192, 8192,   3,   4,  6,   6),   # slab_max_order 3 caps it
]


@pytest.mark.parametrize("row", KMALLOC_GEOMETRY_2CPUS, ids=[r[0] for r in KMALLOC_GEOMETRY_2CPUS])
def test_kmalloc_geometry_two_cpus(m, row):
    # every kmalloc cache as a 2-CPU Linux 6.x lays it out
    assert geometry(m.slub.find(row[0])) == row[1:]


@pytest.mark.parametrize("prefix", ["kmalloc-rcl-", "dma-kmalloc-", "kmalloc-cg-"])
def test_kmalloc_type_families_share_geometry(m, prefix):
    # the rcl, dma and cg families are laid out like the normal caches
    for name, *rest in KMALLOC_GEOMETRY_2CPUS:
        assert geometry(m.slub.find(prefix + name[len("kmalloc-"):])) == tuple(rest)


@pytest.mark.parametrize("cpus, name, order, objects", [
    (1, "kmalloc-512", 0, 8),       # min_objects 4*(fls(1)+1) = 8: 4 KiB holds them
    (1, "kmalloc-1k", 1, 8),        # 8 objects of 1 KiB need order 1
    (4, "kmalloc-256", 0, 16),      # min_objects 16: 16 * 256 = 4 KiB
    (4, "kmalloc-512", 1, 16),
    (64, "kmalloc-128", 0, 32),     # min_objects 32: 32 * 128 = 4 KiB
    (64, "kmalloc-256", 1, 32),     # big machines get order-1 kmalloc-256
    (64, "kmalloc-2k", 3, 16),      # slab_max_order 3 caps the order, min_objects shrinks to fit
])
def test_order_grows_with_cpu_count(cpus, name, order, objects):
    # calculate_order: min_objects = 4 * (fls(nr_cpus) + 1)
    s = Machine(ram="256MiB", cpus=cpus, pcp=False).slub.find(name)
    assert (s.order, s.objects) == (order, objects)


@pytest.mark.parametrize("size, order, objects", [
    (1, 0, 512),        # rounded up to a pointer: 8 bytes
    (100, 0, 39),       # 104-byte slots: 4096 // 104, 40 bytes wasted
    (700, 2, 23),       # 704-byte slots; 12 of them need order 2, which wastes 192
    (3000, 3, 10),      # only 10 fit in order 3; 2768 wasted fails 1/16, passes 1/8
    (5000, 3, 6),       # only 6 fit in order 3; 2768 wasted passes at 1/8
    (20000, 3, 1),      # one object per order-3 slab; 12768 wasted passes only at 1/2
    (40000, 4, 1),      # larger than slab_max_order: get_order(size)
])
def test_calculate_order_for_created_caches(m, size, order, objects):
    # calculate_order with the 1/16, 1/8, 1/4, 1/2 waste fractions and the fallback
    s = m.kmem_cache_create(f"sz{size}", size)
    assert (s.order, s.objects) == (order, objects)


@pytest.mark.parametrize("size, align, flags, slot, offset", [
    (24, 0, 0, 24, 8),                          # free pointer in the middle: ALIGN_DOWN(12, 8)
    (72, 0, SLAB_HWCACHE_ALIGN, 128, 32),       # a cache line (kmem_cache_node's layout)
    (20, 0, SLAB_HWCACHE_ALIGN, 32, 8),         # small objects share lines: align 32
    (232, 0, SLAB_HWCACHE_ALIGN, 256, 112),     # kmem_cache's own layout
    (100, 64, 0, 128, 48),                      # an explicit alignment
    (64, 0, SLAB_TYPESAFE_BY_RCU, 72, 64),      # RCU: the free pointer goes after the object
])
def test_calculate_sizes(m, size, align, flags, slot, offset):
    # calculate_alignment and calculate_sizes: slot size and free pointer offset
    s = m.kmem_cache_create("geo", size, align, flags)
    assert (s.size, s.offset) == (slot, offset)


def test_constructor_moves_free_pointer_and_runs_per_slab(m):
    # a ctor's work must survive free, so the free pointer goes after the object
    seen = []
    s = m.kmem_cache_create("ctor", 64, ctor=seen.append)
    assert (s.size, s.offset) == (72, 64)
    a = s.alloc()
    assert len(seen) == s.objects and a == seen[0]          # every slot constructed at slab creation
    s.free(a)
    s.alloc()
    assert len(seen) == s.objects                           # not again at allocation


def test_failing_constructor_changes_nothing(m, unchanged):
    # a ctor that raises: the new slab's pages go back and the error reaches the caller
    def ctor(addr):
        raise RuntimeError("ctor failed")
    s = m.kmem_cache_create("badctor", 64, ctor=ctor)
    with unchanged(m), pytest.raises(RuntimeError):
        s.alloc()
    assert s.node[0].nr_slabs == 0


def test_rcu_cache_with_freeptr_offset_keeps_slot_size(m):
    # kmem_cache_args.freeptr_offset: the free pointer inside the object
    s = m.kmem_cache_create("rcu", 64, flags=SLAB_TYPESAFE_BY_RCU, freeptr_offset=8)
    assert (s.size, s.offset, m.ksize(s.alloc())) == (64, 8, 64)


# -- kmalloc's size classes ---------------------------------------------------------

@pytest.mark.parametrize("size, name", [
    (1, "kmalloc-8"), (8, "kmalloc-8"), (9, "kmalloc-16"), (17, "kmalloc-32"),
    (24, "kmalloc-32"),                 # no kmalloc-24 on x86_64
    (33, "kmalloc-64"), (65, "kmalloc-96"), (96, "kmalloc-96"), (97, "kmalloc-128"),
    (129, "kmalloc-192"), (192, "kmalloc-192"), (193, "kmalloc-256"), (257, "kmalloc-512"),
    (513, "kmalloc-1k"), (1025, "kmalloc-2k"), (2049, "kmalloc-4k"), (4097, "kmalloc-8k"),
    (8192, "kmalloc-8k"),
])
def test_kmalloc_index(m, size, name):
    # kmalloc_index: the cache a size goes to, and ksize tells the slot
    addr = m.kmalloc(size)
    assert m.slub.slabs[(addr - PAGE_OFFSET) >> 12].cache.name == name
    assert m.ksize(addr) == m.slub.find(name).size == slub.kmalloc_size_roundup(m, size)


@pytest.mark.parametrize("gfp, name", [
    (GFP_KERNEL, "kmalloc-64"),
    (GFP_KERNEL | __GFP_RECLAIMABLE, "kmalloc-rcl-64"),
    (GFP_KERNEL_ACCOUNT, "kmalloc-cg-64"),
    (GFP_KERNEL | GFP_DMA, "dma-kmalloc-64"),
    (GFP_KERNEL | GFP_DMA | __GFP_ACCOUNT, "dma-kmalloc-64"),      # DMA wins
    (GFP_ATOMIC, "kmalloc-64"),
])
def test_kmalloc_type(m, gfp, name):
    # kmalloc_type: the gfp flags pick the family
    addr = m.kmalloc(64, gfp)
    assert m.slub.slabs[(addr - PAGE_OFFSET) >> 12].cache.name == name


def test_dma_kmalloc_comes_from_zone_dma(m):
    # dma-kmalloc slabs are allocated with GFP_DMA: below 16 MiB
    addr = m.kmalloc(100, GFP_KERNEL | GFP_DMA)
    assert (addr - PAGE_OFFSET) >> 12 < MAX_DMA_PFN


def test_kmalloc_zero_returns_zero_size_ptr(m):
    # kmalloc(0) is ZERO_SIZE_PTR, not NULL; kfree and ksize accept it and NULL
    assert m.kmalloc(0) == ZERO_SIZE_PTR == 16
    m.kfree(ZERO_SIZE_PTR)
    m.kfree(0)
    assert (m.ksize(0), m.ksize(ZERO_SIZE_PTR)) == (0, 0)
    assert m.node_stat["nr_slab_unreclaimable"] == 0


def test_freelist_is_address_ordered_and_lifo(m):
    # a new slab hands out slots in address order; a freed object is the next one out
    a, b, c = m.kmalloc(64), m.kmalloc(64), m.kmalloc(64)
    assert (b - a, c - b, a % PAGE_SIZE) == (64, 64, 0)
    m.kfree(b)
    assert m.kmalloc(64) == b


def test_random_freelist_is_a_seeded_permutation():
    # CONFIG_SLAB_FREELIST_RANDOM: a shuffled slab, the same for the same seed
    def first_slab(seed):
        mach = Machine(ram="256MiB", seed=seed, pcp=False)
        mach.slub.freelist_random = True
        return [mach.kmalloc(64) for _ in range(64)]
    a, b = first_slab(1), first_slab(1)
    base = min(a)
    assert a == b and sorted(x - base for x in a) == list(range(0, 4096, 64)) and a != sorted(a)


# -- fast and slow paths ----------------------------------------------------------------

def test_first_kmalloc_takes_the_slow_path_to_a_new_slab(m):
    # no CPU slab, no partial slab: ___slab_alloc -> get_partial (none) -> new_slab
    with m.trace() as t:
        m.kmalloc(64)
    assert slub_calls(t) == ["kmalloc", "slab_alloc_node", "___slab_alloc", "get_partial",
                             "new_slab", "allocate_slab"]
    assert "alloc_pages" in t.calls()


def test_second_kmalloc_takes_the_fast_path(m):
    # the CPU's freelist has the next object: no slow path, no page allocator
    m.kmalloc(64)
    with m.trace() as t:
        m.kmalloc(64)
    assert t.calls() == ["kmalloc", "slab_alloc_node"]
    assert any("fast path" in n for n in t.notes())


def test_free_to_own_cpu_slab_is_the_fast_path(m):
    # do_slab_free: the object goes straight onto this CPU's freelist
    a = m.kmalloc(64)
    with m.trace() as t:
        m.kfree(a)
    assert t.calls() == ["kfree", "do_slab_free"]


def test_other_cpu_frees_into_a_frozen_slab(m):
    # CPU 1 frees CPU 0's object: __slab_free onto slab->freelist; CPU 0 refills from it
    objs = [m.kmalloc(64) for _ in range(64)]         # CPU 0's slab is now full
    m.current_cpu = 1
    with m.trace() as t:
        m.kfree(objs[5])
    assert slub_calls(t) == ["kfree", "do_slab_free", "__slab_free"]
    assert any("FREE_FROZEN" in n for n in t.notes())
    m.current_cpu = 0
    with m.trace() as t:
        again = m.kmalloc(64)
    assert again == objs[5]
    assert slub_calls(t) == ["kmalloc", "slab_alloc_node", "___slab_alloc"]
    assert any("ALLOC_REFILL" in n for n in t.notes())
    m.check()


def test_full_slab_gets_a_free_and_goes_to_the_cpu_partial_list(m):
    # __slab_free of a full, unfrozen slab: put_cpu_partial
    objs = [m.kmalloc(64) for _ in range(65)]         # slab 1 full and given up, slab 2 current
    with m.trace() as t:
        m.kfree(objs[0])
    assert slub_calls(t) == ["kfree", "do_slab_free", "__slab_free", "put_cpu_partial"]
    c = m.slub.find("kmalloc-64").cpu_slab[0]
    assert [sl.state for sl in c.partial] == ["cpu_partial"]


def test_cpu_slab_full_then_cpu_partial_slab_is_used(m):
    # ___slab_alloc: a full CPU slab is dropped (DEACTIVATE_BYPASS), the CPU partial slab taken
    objs = [m.kmalloc(64) for _ in range(128)]        # two full slabs
    m.kfree(objs[3])                                  # slab 1 to the CPU partial list
    with m.trace() as t:
        assert m.kmalloc(64) == objs[3]
    assert slub_calls(t) == ["kmalloc", "slab_alloc_node", "___slab_alloc"]
    assert any("DEACTIVATE_BYPASS" in n for n in t.notes())
    assert any("CPU_PARTIAL_ALLOC" in n for n in t.notes())


def test_other_cpu_takes_node_partial_slab(m):
    # get_partial: CPU 1 takes the slab CPU 0 left on the node's partial list
    s = m.slub.find("kmalloc-64")
    a = m.kmalloc(64)
    slub.flush_all(s)                                 # CPU 0's slab, one object used, to the node
    assert s.node[0].nr_partial == 1
    m.current_cpu = 1
    with m.trace() as t:
        b = m.kmalloc(64)
    assert slub_calls(t) == ["kmalloc", "slab_alloc_node", "___slab_alloc", "get_partial"]
    assert b == a + 64 and s.node[0].nr_partial == 0


def test_empty_slabs_beyond_min_partial_are_discarded(m):
    # 8 slabs of 16 one-KiB objects; freeing 7 of them slab by slab on one CPU:
    # each full slab's first free puts it on the CPU partial list (3 slabs max),
    # a fourth drains the list to the node, and once the node keeps min_partial
    # (5) slabs, the next empty slab goes back to the page allocator.
    s = m.kmem_cache_create("t1k", 1024)
    assert (s.objects, s.min_partial, s.cpu_partial_slabs) == (16, 5, 3)
    objs = [s.alloc() for _ in range(128)]
    n, c = s.node[0], s.cpu_slab[0]
    history = []
    for k in range(7):
        for a in objs[16 * k:16 * k + 16]:
            s.free(a)
        history.append((n.nr_slabs, n.nr_partial, len(c.partial)))
    assert history == [(8, 0, 1), (8, 0, 2), (8, 0, 3),   # onto the CPU partial list
                       (8, 3, 1),                          # drained: 3 empty slabs to the node
                       (8, 3, 2), (8, 3, 3),
                       (7, 5, 1)]                          # node reaches 5: the 3rd is discarded
    m.check()
    assert s.shrink() == 1 and (n.nr_slabs, n.nr_partial) == (1, 0)    # the full CPU slab stays
    for a in objs[112:]:
        s.free(a)
    assert s.shrink() == 0 and n.nr_slabs == 0
    m.check()


def test_slab_left_on_node_partial_below_min_partial(m):
    # an empty slab on the node partial list stays while the node keeps < min_partial
    s = m.slub.find("kmalloc-64")
    objs = [m.kmalloc(64) for _ in range(64)]
    slub.flush_all(s)                                 # the full slab leaves CPU 0: on no list
    m.current_cpu = 1
    m.kfree(objs[0])                                  # full slab -> CPU 1's partial list
    slub.flush_all(s)                                 # -> node partial list
    with m.trace() as t:
        for a in objs[1:]:
            m.kfree(a)
    assert any("kept, the node has only 1 partial slabs" in x for x in t.notes())
    assert s.node[0].nr_slabs == 1
    assert s.shrink() == 0 and s.node[0].nr_slabs == 0


def test_shrink_and_destroy_give_every_page_back(m):
    # kmem_cache_shrink frees empty slabs; destroy frees the cache's own objects too
    before = m.proc.buddyinfo()
    s = m.kmem_cache_create("gone", 300)
    objs = [s.alloc() for _ in range(100)]
    for a in objs:
        s.free(a)
    s.destroy()
    for cache in m.slub.slab_caches:
        cache.shrink()
    assert m.proc.buddyinfo() == before
    assert m.node_stat["nr_slab_unreclaimable"] == m.node_stat["nr_slab_reclaimable"] == 0
    m.check()


def test_kmem_cache_create_allocates_from_the_boot_caches(m):
    # struct kmem_cache, its kmem_cache_node and its name come from slabs
    with m.trace() as t:
        m.kmem_cache_create("mine", 40)
    assert [c for c in t.calls() if c in ("kmalloc", "kmem_cache_alloc")] == [
        "kmalloc", "kmem_cache_alloc", "kmem_cache_alloc"]
    info = {line.split()[0]: line.split() for line in m.proc.slabinfo().splitlines()[2:]}
    assert info["kmem_cache"][1:3] == ["16", "16"] and info["kmem_cache_node"][1:3] == ["32", "32"]
    assert info["kmalloc-8"][1] == "512"                # "mine\0" is 5 bytes


# -- kmalloc_large, ksize, krealloc -----------------------------------------------------

@pytest.mark.parametrize("size, order", [
    (8193, 2),                  # 3 pages needed: order 2
    (16384, 2),
    (16385, 3),
    (4 << 20, 10),              # KMALLOC_MAX_SIZE: the largest block
])
def test_kmalloc_large(m, size, order):
    # above 8 KiB kmalloc takes pages straight from the buddy allocator
    addr = m.kmalloc(size)
    pfn = (addr - PAGE_OFFSET) >> 12
    assert addr % (PAGE_SIZE << order) == 0
    assert m.ksize(addr) == PAGE_SIZE << order
    assert m.mem_map.page_type[pfn] == slub.PGTY_LARGE_KMALLOC
    assert m.node_stat["nr_slab_unreclaimable"] == 1 << order
    m.check()
    m.kfree(addr)
    assert m.node_stat["nr_slab_unreclaimable"] == 0
    m.check()


def test_kmalloc_above_4mib_fails_with_a_warning(m):
    # order 11 > MAX_PAGE_ORDER: WARN and NULL; __GFP_NOWARN silences it
    with m.trace() as t:
        assert m.kmalloc((4 << 20) + 1) == 0
    assert any(n.startswith("WARNING") for n in t.notes())
    with m.trace() as t:
        assert m.kmalloc(8 << 20, GFP_KERNEL | __GFP_NOWARN) == 0
    assert not any(n.startswith("WARNING") for n in t.notes())


def test_krealloc_in_place_and_moving(m):
    # krealloc keeps the object while the new size fits its slot, else moves it
    a = m.kmalloc(100)                                  # kmalloc-128
    assert m.krealloc(a, 128) == a                      # fits the 128-byte object
    assert m.krealloc(a, 8) == a                        # shrinking never moves
    b = m.krealloc(a, 129)                              # kmalloc-192
    assert b != a and m.ksize(b) == 192
    with pytest.raises(KernelBug):
        m.kfree(a)                                      # the old object was freed
    c = m.krealloc(b, 10000)                            # to kmalloc_large, order 2
    assert m.ksize(c) == 16384 and m.krealloc(c, 16384) == c
    assert m.krealloc(0, 50) != 0                       # NULL: a plain kmalloc
    assert m.krealloc(c, 0) == ZERO_SIZE_PTR            # size 0: kfree
    m.check()


def test_krealloc_failure_keeps_the_old_object(m):
    # a failing krealloc returns NULL and the old allocation is still live
    a = m.kmalloc(64)
    assert m.krealloc(a, 5 << 20, GFP_KERNEL | __GFP_NOWARN) == 0
    assert m.ksize(a) == 64
    m.kfree(a)


def test_kzalloc_and_kcalloc(m):
    # kzalloc is kmalloc | __GFP_ZERO; kcalloc checks n * size for overflow
    assert m.ksize(m.kzalloc(50)) == 64
    assert m.ksize(m.kcalloc(4, 16)) == 64
    assert m.kcalloc(1 << 33, 1 << 32) == 0            # overflows size_t: NULL
    assert m.kcalloc(0, 16) == ZERO_SIZE_PTR


# -- /proc -----------------------------------------------------------------------------------

SLABINFO_HEADER = [
    "slabinfo - version: 2.1",
    "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : "
    "tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>",
]


def test_slabinfo_layout(m):
    # the header, the column widths, and the boot caches oldest last
    m.kmalloc(64)
    lines = m.proc.slabinfo().splitlines()
    assert lines[:2] == SLABINFO_HEADER
    assert "kmalloc-64            64     64     64   64    1 : tunables    0    0    0 : slabdata      1      1      0" in lines
    assert [line.split()[0] for line in lines[-3:]] == ["kmalloc-96", "kmem_cache_node", "kmem_cache"]
    assert lines[2].split()[0] == "kmalloc_buckets"
    assert len(lines) == 2 + 2 + 4 * 13 + 1


def test_slabinfo_counts_cpu_freelists_as_active(m):
    # get_slabinfo: only free objects on the node partial list are inactive
    s = m.slub.find("kmalloc-256")
    a = m.kmalloc(256)
    line = next(x for x in m.proc.slabinfo().splitlines() if x.startswith("kmalloc-256 "))
    assert line.split()[1:3] == ["16", "16"]            # 15 free objects on CPU 0's freelist
    slub.flush_all(s)                                   # now on the node partial list
    line = next(x for x in m.proc.slabinfo().splitlines() if x.startswith("kmalloc-256 "))
    assert line.split()[1:3] == ["1", "16"]
    m.kfree(a)


def test_created_cache_is_listed_first_under_its_own_name(m):
    # no merging: a 64-byte cache is its own line, at the head of slab_caches
    m.kmem_cache_create("my_cache", 64)
    assert m.proc.slabinfo().splitlines()[2].split()[:6] == ["my_cache", "0", "0", "64", "64", "1"]


def test_meminfo_slab_counters(m):
    # Slab = SReclaimable + SUnreclaim; large kmalloc counts as unreclaimable
    m.kmalloc(64)                                       # one page
    m.kmalloc(64, GFP_KERNEL | __GFP_RECLAIMABLE)       # one reclaimable page
    m.kmalloc(512)                                      # an order-1 slab
    m.kmalloc(9000)                                     # an order-2 large kmalloc
    info = m.proc.meminfo_dict()
    assert (info["SUnreclaim"], info["SReclaimable"], info["Slab"]) == (28, 4, 32)


# -- bad input: clear errors, nothing changed ---------------------------------------------------

@pytest.fixture
def m_with_objects(m):
    """A machine holding a few kmalloc objects, a large kmalloc and a page."""
    m.objs = [m.kmalloc(64) for _ in range(3)]
    m.big = m.kmalloc(20000)
    m.page = m.alloc_pages(0)
    return m


@pytest.mark.parametrize("call, error", [
    (lambda m: m.kmalloc(-1), ValueError),
    (lambda m: m.kmalloc(1 << 64), ValueError),
    (lambda m: m.kmalloc("64"), TypeError),
    (lambda m: m.kmalloc(64.0), TypeError),
    (lambda m: m.kmalloc(True), TypeError),
    (lambda m: m.kmalloc(64, gfp=1 << 40), ValueError),
    (lambda m: m.kfree("0x10"), TypeError),
    (lambda m: m.kfree(m.objs[0] + 8), KernelBug),                  # inside an object
    (lambda m: m.kfree(m.objs[0] + 4096 - 8), KernelBug),           # a free slot of the slab
    (lambda m: m.kfree(m.big + 4096), KernelBug),                   # inside a large kmalloc
    (lambda m: m.kfree(m.page_address(m.page)), KernelBug),         # a page from alloc_pages
    (lambda m: m.kfree(0xffffc90000001000), KernelBug),             # a vmalloc address
    (lambda m: m.kfree(PAGE_OFFSET + (m.max_pfn << 12)), KernelBug),  # beyond RAM
    (lambda m: m.kfree(0x1000), KernelBug),                         # a user address
    (lambda m: m.ksize(m.objs[0] + 1), KernelBug),
    (lambda m: m.krealloc(m.objs[0] + 1, 100), KernelBug),
    (lambda m: m.kcalloc(-1, 8), ValueError),
])
def test_bad_calls_fail_and_change_nothing(m_with_objects, unchanged, call, error):
    # each refused call leaves memory, slabs and /proc as they were
    m = m_with_objects
    before = m.proc.slabinfo()
    with unchanged(m), pytest.raises(error):
        call(m)
    assert m.proc.slabinfo() == before


def test_double_kfree_is_caught(m, unchanged):
    # the second kfree of an object is a KernelBug, as SLUB debugging reports it
    a, b = m.kmalloc(64), m.kmalloc(64)
    m.kfree(a)
    with unchanged(m), pytest.raises(KernelBug, match="Object already free"):
        m.kfree(a)
    m.kfree(b)
    with pytest.raises(KernelBug, match="Object already free"):
        m.kfree(b)
    big = m.kmalloc(10000)
    m.kfree(big)
    with pytest.raises(KernelBug):
        m.kfree(big)


@pytest.mark.parametrize("args, error", [
    (("", 64), ValueError),
    (("a b", 64), ValueError),                 # spaces confuse /proc/slabinfo readers
    ((5, 64), TypeError),
    (("x", 0), ValueError),
    (("x", -8), ValueError),
    (("x", (4 << 20) + 1), ValueError),         # larger than KMALLOC_MAX_SIZE
    (("x", 64, 3), ValueError),                 # align not a power of two
    (("x", 64, 0, SLAB_RED_ZONE), ValueError),  # debugging is not modelled
    (("x", 64, 0, 1 << 30), ValueError),        # not a flag
    (("kmalloc-64", 64), ValueError),           # the name is taken
    (("x", 64, 0, 0, 42), TypeError),           # ctor not callable
])
def test_kmem_cache_create_bad_arguments(m, unchanged, args, error):
    # kmem_cache_create refuses bad names, sizes, alignments and flags before allocating
    before = m.proc.slabinfo()
    with unchanged(m), pytest.raises(error):
        m.kmem_cache_create(*args)
    assert m.proc.slabinfo() == before


def test_destroy_with_live_objects_is_refused(m, unchanged):
    # "Slab cache still has objects": KernelBug, and the cache still works
    s = m.kmem_cache_create("busy", 128)
    a = s.alloc()
    before = m.proc.slabinfo()
    with unchanged(m), pytest.raises(KernelBug, match="still has objects"):
        s.destroy()
    assert m.proc.slabinfo() == before
    s.free(a)
    s.destroy()
    with pytest.raises(KernelBug):
        s.alloc()                               # a destroyed cache
    with pytest.raises(KernelBug):
        s.destroy()
    assert m.slub.find("busy") is None
    m.check()


def test_kmem_cache_free_checks_the_cache(m, unchanged):
    # an object of another cache, or a kmalloc_large, is refused
    s = m.kmem_cache_create("one", 64)
    a = m.kmalloc(64)
    big = m.kmalloc(10000)
    with unchanged(m), pytest.raises(KernelBug, match="Wrong slab cache"):
        s.free(a)
    with unchanged(m), pytest.raises(KernelBug, match="not a Slab page"):
        s.free(big)


def test_boot_caches_cannot_be_destroyed(m, unchanged):
    # the kmalloc caches live as long as the kernel
    with unchanged(m), pytest.raises(KernelBug):
        m.slub.find("kmalloc-64").destroy()


def test_out_of_memory_returns_null(unchanged):
    # when the page allocator has nothing, kmalloc returns 0 and warns
    m = Machine(ram="64MiB", pcp=False)
    while m.alloc_pages(0, GFP_ATOMIC) is not None:
        pass
    with unchanged(m):
        with m.trace() as t:
            assert m.kmalloc(64) == 0
            assert m.kmalloc(20000) == 0
    assert any(n.startswith("SLUB: Unable to allocate memory") for n in t.notes())


def test_gfp_dma32_is_fixed_up_with_a_warning(m):
    # kmalloc_fix_flags: slab cannot honour __GFP_DMA32; Linux warns and strips it
    with m.trace() as t:
        addr = m.kmalloc(64, GFP_KERNEL | __GFP_DMA32)
    assert addr and any("Unexpected gfp" in n for n in t.notes())
