"""vmalloc (mmlab/mm/vmalloc.py): examples that define the behaviour.

Where areas go (lowest fit from VMALLOC_START, one guard page after each),
what they are made of (order-0 pages from the buddy allocator, a page array
kmalloc'd or vmalloc'd by its size, kernel PTEs), how vfree frees them
(pages at once, the address range lazily, purged in batches, pooled per
vmap node), /proc/vmallocinfo and VmallocUsed, huge mappings and kvmalloc,
the trace, and the ways a caller can get it wrong.
"""
import pytest

from mmlab import Machine, KernelBug
from mmlab.arch import PAGE_SIZE, PAGE_OFFSET, VMALLOC_START, VMALLOC_END
from mmlab.mm import vmalloc as vm
from mmlab.mm import pgtable as pt
from mmlab.uapi import GFP_KERNEL, GFP_ATOMIC, __GFP_ZERO

KiB, MiB = 1 << 10, 1 << 20
START = VMALLOC_START
VMALLOC_CALLS = {"__vmalloc_node_range", "__get_vm_area_node", "alloc_vmap_area", "__alloc_vmap_area",
                 "__vmalloc_area_node", "vm_area_alloc_pages", "vmap_pages_range", "vfree",
                 "remove_vm_area", "free_vmap_area_noflush", "__purge_vmap_area_lazy", "__kvmalloc_node"}


@pytest.fixture
def m():
    return Machine(ram="256MiB", cpus=2, pcp=False)


@pytest.fixture
def m1():
    """One CPU: one vmap node and no pools, so purged ranges go straight back to the free tree."""
    return Machine(ram="256MiB", cpus=1, pcp=False)


def free_pages(m):
    return sum(z.nr_free_pages for z in m.zones)


def area(m, addr):
    return vm.find_vm_area(m, addr)


def info(m):
    return m.proc.vmallocinfo().splitlines()


# -- where areas go ------------------------------------------------------------------

def test_first_vmalloc_is_at_vmalloc_start(m):
    assert m.vmalloc(PAGE_SIZE) == START


def test_guard_page_between_consecutive_areas(m):
    a, b, c = m.vmalloc(PAGE_SIZE), m.vmalloc(3 * PAGE_SIZE), m.vmalloc(PAGE_SIZE)
    assert b - a == 2 * PAGE_SIZE                                   # one page + one guard page
    assert c - b == 4 * PAGE_SIZE                                   # three pages + guard
    assert m.vmalloc_to_pfn(a + PAGE_SIZE) is None                  # the guard maps nothing
    assert area(m, b).size == 4 * PAGE_SIZE                         # vm_struct size counts the guard


def test_size_rounds_up_to_pages(m):
    a = m.vmalloc(1)
    assert area(m, a).nr_pages == 1 and area(m, a).size == 2 * PAGE_SIZE
    b = m.vmalloc(PAGE_SIZE + 1)
    assert area(m, b).nr_pages == 2
    assert area(m, b).requested_size == PAGE_SIZE + 1


def test_freed_range_waits_for_a_purge(m1):
    m = m1
    a, b, c = (m.vmalloc(PAGE_SIZE) for _ in range(3))
    m.vfree(b)
    assert info(m)[-1] == f"0x{b:016x}-0x{b + 2 * PAGE_SIZE:016x}    8192 unpurged vm_area"
    assert m.vmap.vmap_lazy_nr == 2                                 # one page and its guard
    assert m.vmalloc(PAGE_SIZE) == c + 2 * PAGE_SIZE                # the hole is not yet free
    assert vm.purge_vmap_area_lazy(m)
    assert m.vmap.vmap_lazy_nr == 0
    assert m.vmalloc(PAGE_SIZE) == b                                # lowest fit reuses the hole
    m.check()


def test_lowest_fit_skips_a_hole_too_small(m1):
    m = m1
    b, c = m.vmalloc(PAGE_SIZE), m.vmalloc(PAGE_SIZE)
    m.vfree(b)
    vm.purge_vmap_area_lazy(m)
    d = m.vmalloc(2 * PAGE_SIZE)                                    # needs 3 pages; the hole has 2
    assert d == c + 2 * PAGE_SIZE
    e = m.vmalloc(PAGE_SIZE)
    assert e == b                                                   # but a one-page area fits
    m.check()


def test_purged_neighbours_merge(m1):
    m = m1
    addrs = [m.vmalloc(PAGE_SIZE) for _ in range(4)]
    for a in addrs[1:3]:
        m.vfree(a)
    vm.purge_vmap_area_lazy(m)
    assert (addrs[1], addrs[3]) in list(m.vmap.free)                # one free block of 4 pages
    assert m.vmalloc(3 * PAGE_SIZE) == addrs[1]
    m.check()


def test_pools_keep_a_range_for_its_own_size(m):
    a, b, c = (m.vmalloc(PAGE_SIZE) for _ in range(3))              # 2 CPUs: 2 vmap nodes
    m.vfree(b)
    vm.purge_vmap_area_lazy(m)
    assert m.vmalloc(2 * PAGE_SIZE) == c + 2 * PAGE_SIZE            # another size: the free tree
    assert m.vmalloc(PAGE_SIZE) == b                                # same size: node 0's pool
    m.check()


def test_full_decay_returns_pooled_ranges(m):
    a, b, c = (m.vmalloc(PAGE_SIZE) for _ in range(3))
    m.vfree(b)
    vm.purge_vmap_area_lazy(m)
    assert len(m.vmap.nodes[0].pool[1]) == 1                        # pool of 2-page ranges
    vm.reclaim_and_purge_vmap_areas(m)                              # what a failing search does
    assert len(m.vmap.nodes[0].pool[1]) == 0
    assert (b, c) in list(m.vmap.free)
    m.check()


def test_lazy_threshold_triggers_a_purge(m):
    assert vm.lazy_max_pages(m) == 2 * 8192                         # fls(2 CPUs) * 32 MiB
    a, b = m.vmalloc(40 * MiB), m.vmalloc(40 * MiB)
    m.vfree(a)
    # 10240 pages and a guard, and the page array's area: 80 KiB of pointers, 20 pages and a guard.
    assert m.vmap.vmap_lazy_nr == 10241 + 21 and m.vmap.nr_purges == 0
    with m.trace() as t:
        m.vfree(b)                                                  # 20482 > 16384 pages
    assert "__purge_vmap_area_lazy" in t.calls()
    assert m.vmap.nr_purges == 1
    # vfree frees the page array after the purge: its range is the one left waiting.
    assert m.vmap.vmap_lazy_nr == 21
    assert [line.split()[1:] for line in info(m)] == [["86016", "unpurged", "vm_area"]]
    m.check()


def test_vmallocinfo_lists_nodes_in_turn(m):
    # Two nodes, 16-page zones taken in turn: 0x0-0x10000 node 0, 0x10000-0x20000 node 1, ...
    addrs = [m.vmalloc(8 * PAGE_SIZE, caller=f"a{i}+0x0/0x10") for i in range(5)]
    assert [a - START for a in addrs] == [0, 0x9000, 0x12000, 0x1b000, 0x24000]
    callers = [line.split()[2] for line in info(m)]
    assert callers == ["a0+0x0/0x10", "a1+0x0/0x10", "a4+0x0/0x10", "a2+0x0/0x10", "a3+0x0/0x10"]


# -- what an area is made of -------------------------------------------------------

def test_pages_come_from_the_buddy_allocator(m):
    free = free_pages(m)
    slab = m.proc.meminfo_dict()["Slab"]
    a = m.vmalloc(16 * PAGE_SIZE)
    pages = area(m, a).pages
    assert len(set(pages)) == 16
    assert all(m.mem_map.refcount[p] == 1 and m.mem_map.order[p] == 0 for p in pages)
    tables = 3                                                      # PUD, PMD, PTE under init_mm
    assert free - free_pages(m) == 16 + tables + (m.proc.meminfo_dict()["Slab"] - slab) // 4
    m.vfree(a)
    assert free - free_pages(m) == tables + (m.proc.meminfo_dict()["Slab"] - slab) // 4
    m.check()


def test_virtually_contiguous_over_scattered_frames(m):
    held = [m.alloc_pages(0) for _ in range(64)]
    for pfn in held[::2]:                                           # free every other page
        m.free_pages(pfn, 0)
    a = m.vmalloc(16 * PAGE_SIZE)
    pfns = [m.vmalloc_to_pfn(a + i * PAGE_SIZE) for i in range(16)]
    assert pfns == area(m, a).pages                                 # the walk finds the array's pages
    assert all(abs(p - q) != 1 for p, q in zip(pfns, pfns[1:]))     # no two neighbours in RAM
    assert m.vmalloc_to_pfn(a + 5 * PAGE_SIZE + 123) == pfns[5]     # any byte of a page
    m.check()


def test_vmalloc_to_page_walks_the_page_tables(m):
    a = m.vmalloc(2 * PAGE_SIZE)
    path = pt.walk(m.init_mm, a + PAGE_SIZE)
    assert [name for name, _, _ in path] == ["pgd", "pud", "pmd", "pte"]
    assert path[-1][2] == pt.pfn_pte(m.vmalloc_to_page(a + PAGE_SIZE), pt.PAGE_KERNEL)
    with m.trace() as t:
        m.vmalloc_to_page(a)
    assert t.calls() == []                                          # no side table: a plain walk


def test_page_array_kmalloc_up_to_a_page(m):
    a = m.vmalloc(512 * PAGE_SIZE, caller="edge_init+0x10/0x80")   # 512 pointers: 4096 bytes
    v = area(m, a)
    assert PAGE_OFFSET <= v.pages_addr < VMALLOC_START              # kmalloc'd
    assert m.ksize(v.pages_addr) == 4096
    assert info(m) == [f"0x{a:016x}-0x{a + 513 * PAGE_SIZE:016x} 2101248 edge_init+0x10/0x80 "
                       "pages=512 vmalloc N0=512"]


def test_page_array_vmalloced_above_a_page(m):
    a = m.vmalloc(513 * PAGE_SIZE, caller="big_init+0x10/0x80")    # 4104 bytes of pointers
    v = area(m, a)
    assert vm.is_vmalloc_addr(v.pages_addr)                         # "vpages"
    assert v.pages_addr == a + 514 * PAGE_SIZE                      # reserved after the area
    assert info(m) == [
        f"0x{a:016x}-0x{a + 514 * PAGE_SIZE:016x} 2105344 big_init+0x10/0x80 pages=513 vmalloc vpages N0=513",
        f"0x{v.pages_addr:016x}-0x{v.pages_addr + 3 * PAGE_SIZE:016x}   12288 big_init+0x10/0x80 "
        "pages=2 vmalloc N0=2"]
    assert m.vmalloc_nr_pages() == 515                              # the array's pages count too
    assert m.proc.meminfo_dict()["VmallocUsed"] == 515 * 4
    m.vfree(a)                                                      # frees the array's area too
    assert m.vmalloc_nr_pages() == 0
    assert [line.split()[-2:] for line in info(m)] == [["unpurged", "vm_area"]] * 2
    m.check()


def test_vmallocinfo_line_layout(m):
    a = m.vmalloc(20 * KiB, caller="kernel_clone+0x94/0x3e0")
    assert m.proc.vmallocinfo() == (f"0x{a:016x}-0x{a + 0x6000:016x}   24576 kernel_clone+0x94/0x3e0 "
                                    "pages=5 vmalloc N0=5\n")


def test_default_caller_names_the_python_function(m):
    m.vmalloc(PAGE_SIZE)
    assert info(m)[0].split()[2] == "test_default_caller_names_the_python_function+0x0/0x0"


def test_vzalloc_zeroes_its_pages(m):
    with m.trace() as t:
        m.vzalloc(PAGE_SIZE)
    gfps = [e.args["gfp"] for e in t.events if e.kind == "call" and e.func == "vm_area_alloc_pages"]
    assert gfps and gfps[0] & __GFP_ZERO


def test_meminfo_vmallocused_follows(m):
    assert m.proc.meminfo_dict()["VmallocUsed"] == 0
    a = m.vmalloc(10 * PAGE_SIZE)
    assert m.proc.meminfo_dict()["VmallocUsed"] == 40
    m.vfree(a)
    assert m.proc.meminfo_dict()["VmallocUsed"] == 0


def test_vfree_unmaps_but_keeps_kernel_tables(m):
    a = m.vmalloc(4 * PAGE_SIZE)
    tables = m.node_stat["nr_page_table_pages"]
    m.vfree(a)
    assert all(m.vmalloc_to_pfn(a + i * PAGE_SIZE) is None for i in range(4))
    assert m.node_stat["nr_page_table_pages"] == tables            # vunmap never frees kernel tables
    m.check()


# -- huge mappings and kvmalloc ------------------------------------------------------

def test_vmalloc_huge_maps_2mib_leaves(m):
    a = vm.vmalloc_huge(m, 4 * MiB)
    assert a % (2 * MiB) == 0
    v = area(m, a)
    assert v.page_order == 9 and v.nr_pages == 1024
    assert v.size == 4 * MiB + PAGE_SIZE                            # the guard page still follows
    path = pt.walk(m.init_mm, a)
    assert path[-1][0] == "pmd" and path[-1][2] & pt._PAGE_PSE
    first = m.vmalloc_to_pfn(a)
    assert m.vmalloc_to_pfn(a + 3 * PAGE_SIZE) == first + 3
    assert all(m.mem_map.refcount[p] == 1 for p in v.pages)        # split into order-0 pages
    m.check()
    m.vfree(a)
    assert m.vmalloc_to_pfn(a) is None
    m.check()


def test_huge_mapping_frees_an_empty_pte_table(m):
    a = m.vmalloc(PAGE_SIZE)                                        # a PTE table for [START, START+2M)
    m.vfree(a)
    vm.reclaim_and_purge_vmap_areas(m)
    tables = m.node_stat["nr_page_table_pages"]
    b = vm.vmalloc_huge(m, 2 * MiB)
    assert b == START                                               # the range is free again
    assert m.node_stat["nr_page_table_pages"] == tables - 1         # the emptied PTE table is freed
    m.check()


def test_kvmalloc_small_is_kmalloc(m):
    a = m.kvmalloc(100)
    assert PAGE_OFFSET <= a < VMALLOC_START
    assert m.ksize(a) == 128
    m.kvfree(a)
    assert not info(m)


def test_kvmalloc_falls_back_to_huge_vmalloc(m):
    a = m.kvmalloc(8 * MiB)                                         # above KMALLOC_MAX_SIZE (4 MiB)
    assert vm.is_vmalloc_addr(a) and a % (2 * MiB) == 0
    assert area(m, a).page_order == 9                               # kvmalloc allows huge mappings
    assert info(m)[0].split()[2] == "test_kvmalloc_falls_back_to_huge_vmalloc+0x0/0x0"
    m.kvfree(a)
    assert m.vmalloc_nr_pages() == 0
    m.check()


def test_kvmalloc_without_sleeping_gets_no_vmalloc(m, unchanged):
    with unchanged(m):
        assert m.kvmalloc(8 * MiB, GFP_ATOMIC) == 0                 # no __GFP_DIRECT_RECLAIM


def test_kmalloc_gfp_adjust():
    adjusted = vm.kmalloc_gfp_adjust(GFP_KERNEL, 2 * PAGE_SIZE)
    assert adjusted & vm.__GFP_NOWARN and not adjusted & vm.__GFP_DIRECT_RECLAIM
    assert vm.kmalloc_gfp_adjust(GFP_KERNEL, PAGE_SIZE) == GFP_KERNEL


# -- the trace ------------------------------------------------------------------------

def test_trace_shows_search_pages_and_ptes(m):
    m.vmalloc(2 * PAGE_SIZE)                                        # tables and slabs now exist
    with m.trace() as t:
        m.vmalloc(2 * PAGE_SIZE)
    assert [c for c in t.calls() if c in VMALLOC_CALLS] == [
        "__vmalloc_node_range", "__get_vm_area_node", "alloc_vmap_area", "__alloc_vmap_area",
        "__vmalloc_area_node", "vm_area_alloc_pages", "vmap_pages_range"]
    assert t.calls().count("alloc_pages") == 2                      # two order-0 pages
    notes = t.notes()
    assert any(n.startswith("find_vmap_lowest_match: free block") and "fits at" in n for n in notes)
    assert any(n.startswith("va_clip: LE_FIT") for n in notes)
    assert any(n.startswith("set_pte_at: 2 entries") for n in notes)


def test_trace_of_vfree(m):
    a = m.vmalloc(PAGE_SIZE)
    with m.trace() as t:
        m.vfree(a)
    assert [c for c in t.calls() if c in VMALLOC_CALLS] == ["vfree", "remove_vm_area",
                                                            "free_vmap_area_noflush"]
    assert t.calls().count("free_page_array") == 1                     # vfree's __free_page loop


# -- failures --------------------------------------------------------------------------

def test_vmalloc_zero_is_null(m, unchanged):
    with unchanged(m):
        assert m.vmalloc(0) == 0
    assert not info(m)


def test_vmalloc_more_than_ram_is_null(m, unchanged):
    with unchanged(m):
        assert m.vmalloc(m.ram + PAGE_SIZE) == 0                    # exceeds total pages
    assert not info(m)


def test_out_of_pages_undoes_everything_but_the_lazy_range(m):
    free = free_pages(m)
    a = m.vmalloc(220 * MiB)                                        # under RAM, over what is free
    assert a == 0
    assert m.vmalloc_nr_pages() == 0
    # vfree undid it: the area's own range (over the lazy limit) was purged at once, the
    # page array's range (vmalloc'd, 110 pages and a guard) waits.
    assert [line.split()[1:] for line in info(m)] == [["454656", "unpurged", "vm_area"]]
    # Every page went back; only kmalloc slabs and kernel page tables stay, as in Linux.
    kept = m.node_stat["nr_page_table_pages"] + m.node_stat["nr_slab_unreclaimable"]
    assert free - free_pages(m) == kept
    m.check()


@pytest.mark.parametrize("size, error", [
    ("4096", TypeError),                # a string is not a size
    (4096.0, TypeError),                # nor a float
    (True, TypeError),                  # nor a bool
    (-1, ValueError),                   # negative
    (1 << 64, ValueError),              # above unsigned long
])
def test_vmalloc_bad_size(m, unchanged, size, error):
    with unchanged(m), pytest.raises(error, match="size"):
        m.vmalloc(size)


@pytest.mark.parametrize("caller", ["", "two words", 7])
def test_vmalloc_bad_caller(m, unchanged, caller):
    with unchanged(m), pytest.raises(TypeError, match="caller"):
        m.vmalloc(PAGE_SIZE, caller=caller)


def test_vfree_null_does_nothing(m, unchanged):
    with unchanged(m):
        m.vfree(0)


@pytest.mark.parametrize("addr, message", [
    (START, "nonexistent vm area"),                     # never allocated
    (START + 8, "bad address"),                         # inside an area, not its start
    (START + 2 * PAGE_SIZE, "nonexistent vm area"),     # the next area is not there
    (PAGE_OFFSET, "nonexistent vm area"),               # a direct-map (kmalloc) address
])
def test_vfree_of_a_foreign_address(m, unchanged, addr, message):
    if addr != START:
        m.vmalloc(PAGE_SIZE)
    before = info(m)
    with unchanged(m), pytest.raises(KernelBug, match=message):
        m.vfree(addr)
    assert info(m) == before


def test_double_vfree(m, unchanged):
    a = m.vmalloc(PAGE_SIZE)
    m.vfree(a)
    with unchanged(m), pytest.raises(KernelBug, match="Trying to vfree\\(\\) nonexistent vm area"):
        m.vfree(a)


def test_vfree_bad_type(m, unchanged):
    with unchanged(m), pytest.raises(TypeError, match="addr"):
        m.vfree("0xffffc90000000000")


@pytest.mark.parametrize("addr", [PAGE_OFFSET, 0, VMALLOC_END])
def test_vmalloc_to_page_outside_vmalloc(m, addr):
    with pytest.raises(KernelBug, match="not a vmalloc address"):
        m.vmalloc_to_page(addr)


def test_kvfree_of_a_foreign_address(m, unchanged):
    with unchanged(m), pytest.raises(KernelBug):
        m.kvfree(START)


@pytest.mark.parametrize("call, error", [
    (lambda m: m.vmalloc(PAGE_SIZE, gfp=-1), ValueError),                           # no such flags
    (lambda m: m.vmalloc(PAGE_SIZE, gfp=vm.__GFP_DMA | vm.__GFP_DMA32), ValueError),  # two zones
    (lambda m: m.vmalloc(PAGE_SIZE, gfp="GFP_KERNEL"), TypeError),                  # not an int
    (lambda m: m.kvmalloc(-5), ValueError),                                         # negative size
    (lambda m: m.kvmalloc(None), TypeError),                                        # no size
    (lambda m: m.kvfree(1.0), TypeError),                                           # not an address
    (lambda m: vm.vmalloc_huge(m, "2MiB"), TypeError),                              # a string
])
def test_bad_arguments_change_nothing(m, unchanged, call, error):
    with unchanged(m), pytest.raises(error):
        call(m)
    assert not info(m)
