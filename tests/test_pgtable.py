"""x86_64 page tables (mmlab/mm/pgtable.py): examples that define the behaviour.

The layout of an address, the bits of an entry, how tables are allocated
(buddy pages of type PGTY_TABLE, counted in PageTables), the batch helpers,
freeing tables with free_pgd_range's floor and ceiling, the kernel half that
every process shares, and the ways a caller can get it wrong.
"""
import numpy as np
import pytest

from mmlab import Machine, KernelBug, InvariantError
from mmlab.arch import PAGE_SIZE, VMALLOC_START
from mmlab.mm import pgtable as pt
from mmlab.mm.page_alloc import PGTY_TABLE, PGTY_NONE, FRAME_ALLOCATED, FRAME_RESERVED
from mmlab.mm.pgtable import (PAGE_KERNEL, PAGE_SHARED, PAGE_READONLY, _PAGE_TABLE, _PAGE_PRESENT,
                              _PAGE_RW, _PAGE_USER, _PAGE_ACCESSED, _PAGE_PSE,
                              _PAGE_GLOBAL, _PAGE_NX, PMD_SIZE, PUD_SIZE, PGDIR_SIZE)

USER = 0x7f0000000000            # a user address, 2 MiB aligned


@pytest.fixture
def m():
    return Machine(ram="256MiB", cpus=2, pcp=False)


def table_pages(m):
    return m.node_stat["nr_page_table_pages"]


# -- the layout of an address and of an entry -----------------------------------

def test_address_layout():
    addr = (3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0x123
    assert pt.pgd_index(addr) == 3                                  # bits 39..47
    assert pt.pud_index(addr) == 5                                  # bits 30..38
    assert pt.pmd_index(addr) == 7                                  # bits 21..29
    assert pt.pte_index(addr) == 9                                  # bits 12..20
    assert pt.pgd_index(VMALLOC_START) == 402                       # vmalloc's first PGD slot


def test_addr_end_steps():
    assert pt.pmd_addr_end(0x1000, 0x400000) == PMD_SIZE            # next 2 MiB boundary
    assert pt.pmd_addr_end(0x1000, 0x3000) == 0x3000                # end comes first
    assert pt.pud_addr_end(PUD_SIZE - 0x1000, 2 * PUD_SIZE) == PUD_SIZE
    assert pt.pgd_addr_end((1 << 64) - PGDIR_SIZE, 0) == 0          # end 0 is the top, unsigned


def test_entry_bits_are_x86s():
    assert PAGE_KERNEL == 0x8000000000000163                        # P|RW|A|D|G|NX
    assert _PAGE_TABLE == 0x67                                      # P|RW|U|A|D
    assert PAGE_SHARED == _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX
    assert (_PAGE_PSE, _PAGE_GLOBAL, _PAGE_NX) == (0x80, 0x100, 1 << 63)
    pte = pt.pfn_pte(0x12345, PAGE_KERNEL)
    assert pte == 0x8000000012345163                                # pfn in bits 12..51
    assert pt.pte_pfn(pte) == 0x12345
    assert pt.pte_flags_name(pte) == "P|RW|A|D|G|NX"
    assert pt.entry_str(0) == "0 (none)"


def test_entry_helpers():
    pte = pt.pfn_pte(7, PAGE_READONLY)
    assert pt.pte_present(pte) and not pt.pte_write(pte)            # read-only, user
    assert pt.pte_write(pt.pte_mkwrite(pte))
    assert not pt.pte_write(pt.pte_wrprotect(pt.pte_mkwrite(pte)))
    assert pt.pte_dirty(pt.pte_mkdirty(pte)) and not pt.pte_dirty(pt.pte_mkclean(pt.pte_mkdirty(pte)))
    assert pt.pte_young(pte) and not pt.pte_young(pt.pte_mkold(pte))
    assert not pt.pte_exec(pte) and pt.pte_exec(pt.pfn_pte(7, pt.PAGE_READONLY_EXEC))
    assert pt.pte_present(pt.pfn_pte(7, pt.PAGE_NONE))              # PROT_NONE is present to Linux
    assert pt.pte_pfn(pt.pte_modify(pt.pte_mkdirty(pte), PAGE_SHARED)) == 7
    assert pt.pte_dirty(pt.pte_modify(pt.pte_mkdirty(pte), PAGE_SHARED))   # mprotect keeps D
    assert pt.pte_none(0) and not pt.pte_none(pte)


# -- init_mm and process PGDs ------------------------------------------------------

def test_init_mm_pgd_is_in_the_kernel_image(m):
    pgd = m.init_mm.pgd
    assert pgd == pt.INIT_TOP_PGT_PFN
    assert m.mem_map.state[pgd] == FRAME_RESERVED                    # part of the image, not the buddy's
    assert m.page_table_level[pgd] == pt.LEVEL_PGD
    assert table_pages(m) == 0                                      # not counted in PageTables
    assert m.proc.meminfo_dict()["PageTables"] == 0


def test_pgd_alloc_counts_two_pages(m):
    free = sum(z.nr_free_pages for z in m.zones)
    mm = pt.new_mm(m, "a.out")
    assert m.mem_map.page_type[mm.pgd] == PGTY_TABLE
    assert table_pages(m) == 2                                      # PGD_ALLOCATION_ORDER 1 (PTI)
    assert m.proc.meminfo_dict()["PageTables"] == 8
    assert sum(z.nr_free_pages for z in m.zones) == free - 2
    assert mm in m.pgd_list
    m.check()
    pt.pgd_free(mm)
    assert table_pages(m) == 0 and mm not in m.pgd_list
    assert sum(z.nr_free_pages for z in m.zones) == free
    m.check()


def test_pte_alloc_map_builds_three_levels(m):
    mm = pt.new_mm(m)
    with m.trace() as t:
        ptep = pt.pte_alloc_map(mm, USER + 0x5000)
    assert [c for c in t.calls() if c in ("pud_alloc", "pmd_alloc", "pte_alloc")] == \
        ["pud_alloc", "pmd_alloc", "pte_alloc"]
    assert ptep[1] == 5                                             # the PTE index
    assert table_pages(m) == 2 + 3                                  # PGD pair, PUD, PMD, PTE
    assert mm.pgtables_bytes == 3 * PAGE_SIZE                       # VmPTE counts PUD, PMD, PTE
    levels = sorted(m.page_table_level[p] for p in m.page_table_level if p != m.init_mm.pgd)
    assert levels == [1, 2, 3, 4]
    assert pt.pte_alloc_map(mm, USER + 0x6000)[0] == ptep[0]        # same table, nothing new
    assert table_pages(m) == 5
    path = pt.walk(mm, USER + 0x5000)
    assert [name for name, _, _ in path] == ["pgd", "pud", "pmd", "pte"]
    assert all(value & 0xfff == _PAGE_TABLE for _, _, value in path[:3])
    m.check()


def test_set_pte_at_and_clear(m):
    mm = pt.new_mm(m)
    page = m.alloc_pages(0)
    ptep = pt.pte_alloc_map(mm, USER)
    pt.set_pte_at(mm, USER, ptep, pt.pfn_pte(page, PAGE_SHARED))
    assert pt.ptep_get(mm, ptep) == pt.pfn_pte(page, PAGE_SHARED)
    assert pt.follow_pfn(mm, USER + 0x123) == page
    assert pt.follow_pfn(mm, USER + PAGE_SIZE) is None              # the next PTE is empty
    m.check()
    assert pt.ptep_test_and_clear_young(mm, USER, ptep)             # was young
    assert not pt.ptep_test_and_clear_young(mm, USER, ptep)
    pt.ptep_set_wrprotect(mm, USER, ptep)
    assert not pt.pte_write(pt.ptep_get(mm, ptep))
    assert pt.ptep_get_and_clear(mm, USER, ptep) & pt.PTE_PFN_MASK == page << 12
    assert pt.ptep_get(mm, ptep) == 0
    m.free_pages(page, 0)
    m.check()


def test_set_ptes_maps_consecutive_frames(m):
    mm = pt.new_mm(m)
    block = m.alloc_pages(2)
    ptep = pt.pte_alloc_map(mm, USER)
    pt.set_ptes(mm, USER, ptep, pt.pfn_pte(block, PAGE_SHARED), 4)
    assert [pt.follow_pfn(mm, USER + i * PAGE_SIZE) for i in range(5)] == \
        [block, block + 1, block + 2, block + 3, None]
    m.check()


def test_batch_helpers_cross_a_pmd_boundary(m):
    mm = pt.new_mm(m)
    start = USER + PMD_SIZE - 2 * PAGE_SIZE                         # two pages each side of 2 MiB
    frames = [m.alloc_pages(0) for _ in range(4)]
    ptes = [pt.pfn_pte(f, PAGE_SHARED) for f in frames]
    assert pt.set_ptes_range(mm, start, np.array(ptes, dtype=np.uint64)) == 0
    assert table_pages(m) == 2 + 4                                  # PUD, PMD, two PTE tables
    got = pt.get_ptes(mm, start - PAGE_SIZE, start + 5 * PAGE_SIZE)
    assert got.tolist() == [0] + ptes + [0]
    pieces = pt.pte_tables(mm, start, start + 4 * PAGE_SIZE)
    assert [(i, j) for _, i, j, _ in pieces] == [(510, 512), (0, 2)]
    m.check()
    old = pt.clear_ptes_range(mm, start, start + 4 * PAGE_SIZE)
    assert old.tolist() == ptes
    assert not pt.get_ptes(mm, start, start + 4 * PAGE_SIZE).any()
    assert table_pages(m) == 6                                      # clearing keeps the tables
    m.check()


def test_get_ptes_reads_a_2mib_leaf_as_small_ptes(m):
    mm = m.init_mm
    block = m.alloc_pages(9)
    addr = VMALLOC_START + 4 * PMD_SIZE
    pmdp = pt.walk_alloc(mm, addr)
    pt.pmd_set_huge(mm, pmdp, block, PAGE_KERNEL)
    got = pt.get_ptes(mm, addr + PAGE_SIZE, addr + 3 * PAGE_SIZE)
    assert got.tolist() == [pt.pfn_pte(block + 1, PAGE_KERNEL), pt.pfn_pte(block + 2, PAGE_KERNEL)]
    assert pt.follow_pfn(mm, addr + 511 * PAGE_SIZE) == block + 511
    with pytest.raises(KernelBug, match="2 MiB"):
        pt.set_ptes_range(mm, addr, [pt.pfn_pte(block, PAGE_KERNEL)])
    assert pt.pmd_clear_huge(mm, pmdp) == 1
    assert pt.follow_pfn(mm, addr) is None


# -- freeing tables ---------------------------------------------------------------

def test_free_pgd_range_frees_every_level(m):
    mm = pt.new_mm(m)
    pt.pte_alloc_map(mm, USER)
    assert table_pages(m) == 5
    with m.trace() as t:
        pt.free_pgd_range(mm, USER, USER + PAGE_SIZE, 0, 0)
    assert table_pages(m) == 2                                      # only the PGD is left
    assert mm.pgtables_bytes == 0
    assert "free_pte_range: PTE table" in str(t) and "free_pud_range: PUD table" in str(t)
    m.check()
    pt.pgd_free(mm)
    assert table_pages(m) == 0
    m.check()


def test_free_pgd_range_keeps_tables_neighbours_use(m):
    mm = pt.new_mm(m)
    pt.pte_alloc_map(mm, USER)                                      # the range to free
    pt.pte_alloc_map(mm, USER + PMD_SIZE)                           # a neighbour, next 2 MiB
    assert table_pages(m) == 2 + 4
    # The neighbour starts at USER + PMD_SIZE: that is the ceiling.
    pt.free_pgd_range(mm, USER, USER + PAGE_SIZE, 0, USER + PMD_SIZE)
    assert table_pages(m) == 2 + 3                                  # one PTE table gone; PMD, PUD stay
    assert pt.follow_pfn(mm, USER) is None
    assert pt.lookup_pmd(mm, USER + PMD_SIZE) is not None
    m.check()


def test_free_pgd_range_keeps_a_pte_table_shared_within_2mib(m):
    mm = pt.new_mm(m)
    pt.pte_alloc_map(mm, USER)
    # A neighbour in the same 2 MiB (ceiling USER + 64 KiB) keeps the PTE table.
    pt.free_pgd_range(mm, USER, USER + PAGE_SIZE, 0, USER + 0x10000)
    assert table_pages(m) == 5
    m.check()


def test_free_pgtables_gathers_nearby_ranges(m):
    mm = pt.new_mm(m)
    for addr in (USER, USER + PMD_SIZE, USER + 8 * PMD_SIZE):
        pt.pte_alloc_map(mm, addr)
    assert table_pages(m) == 2 + 2 + 3
    with m.trace() as t:
        pt.free_pgtables(mm, [(USER, USER + PAGE_SIZE), (USER + PMD_SIZE, USER + PMD_SIZE + PAGE_SIZE),
                              (USER + 8 * PMD_SIZE, USER + 8 * PMD_SIZE + PAGE_SIZE)], 0, 0)
    assert t.calls().count("free_pgd_range") == 2                   # the first two share a call
    assert table_pages(m) == 2
    m.check()


# -- the kernel half --------------------------------------------------------------

def test_kernel_tables_count_in_pagetables(m):
    before = m.proc.meminfo_dict()["PageTables"]
    addr = m.vmalloc(PAGE_SIZE)
    assert m.proc.meminfo_dict()["PageTables"] == before + 12       # PUD, PMD, PTE under init_mm
    assert m.init_mm.pgtables_bytes == 2 * PAGE_SIZE                # PUD and PMD; kernel PTEs uncounted
    assert pt.follow_pfn(m.init_mm, addr) is not None


def test_kernel_half_is_copied_to_every_process(m):
    early = pt.new_mm(m, "early")
    m.vmalloc(PAGE_SIZE)                                            # a new kernel PGD entry
    late = pt.new_mm(m, "late")
    index = pt.pgd_index(VMALLOC_START)
    kernel = m.page_tables[m.init_mm.pgd][index]
    assert kernel != 0
    assert m.page_tables[early.pgd][index] == kernel                # sync_global_pgds
    assert m.page_tables[late.pgd][index] == kernel                 # clone_pgd_range
    m.check()


# -- failures -----------------------------------------------------------------------

def test_out_of_memory_keeps_what_was_built(m):
    mm = pt.new_mm(m)
    held = []
    while True:                                                     # leave exactly one free page
        pfn = m.alloc_pages(0)
        if pfn is None:
            break
        held.append(pfn)
    m.free_pages(held.pop(), 0)
    assert pt.pte_alloc_map(mm, USER) is None                       # PUD got the page; PMD did not
    assert table_pages(m) == 2 + 1                                  # the PUD stays, as in Linux
    m.check()


@pytest.mark.parametrize("call, error", [
    (lambda m, mm: pt.get_ptes(mm, USER + 1, USER + PAGE_SIZE), ValueError),      # unaligned start
    (lambda m, mm: pt.get_ptes(mm, USER + PAGE_SIZE, USER), ValueError),          # end below start
    (lambda m, mm: pt.set_ptes(mm, USER, (0, 510), pt.pfn_pte(1, PAGE_SHARED), 3), KernelBug),  # crosses
    (lambda m, mm: pt.pgd_free(m.init_mm), KernelBug),                            # the kernel's PGD
    (lambda m, mm: pt.pagetable_dtor_free(m, mm.pgd + 1), KernelBug),             # not a table page
])
def test_bad_calls_fail_and_change_nothing(m, unchanged, call, error):
    mm = pt.new_mm(m)
    with unchanged(m), pytest.raises(error):
        call(m, mm)


def test_pgd_free_refuses_live_user_tables(m, unchanged):
    mm = pt.new_mm(m)
    pt.pte_alloc_map(mm, USER)
    with unchanged(m), pytest.raises(KernelBug, match="still has user page tables"):
        pt.pgd_free(mm)


def test_set_ptes_range_refuses_to_overwrite(m, unchanged):
    mm = pt.new_mm(m)
    a, b = m.alloc_pages(0), m.alloc_pages(0)
    pt.set_ptes_range(mm, USER, [pt.pfn_pte(a, PAGE_SHARED)])
    with unchanged(m), pytest.raises(KernelBug, match="overwritten"):
        pt.set_ptes_range(mm, USER, [pt.pfn_pte(b, PAGE_SHARED)])


# -- the invariant check ----------------------------------------------------------

def test_check_finds_a_leaf_to_a_free_frame(m):
    mm = pt.new_mm(m)
    page = m.alloc_pages(0)
    pt.set_ptes_range(mm, USER, [pt.pfn_pte(page, PAGE_SHARED)])
    m.free_pages(page, 0)                                           # still mapped: a bug
    with pytest.raises(InvariantError, match="^leaves"):
        m.check()


def test_check_finds_a_miscounted_table(m):
    pt.new_mm(m)
    m.node_stat["nr_page_table_pages"] += 1
    with pytest.raises(InvariantError, match="^tables"):
        m.check()


def test_check_finds_a_stale_kernel_half(m):
    mm = pt.new_mm(m)
    m.page_tables[mm.pgd][300] = 0x1067
    with pytest.raises(InvariantError, match="^links"):
        m.check()


def test_table_frames_cannot_be_freed_as_pages(m):
    mm = pt.new_mm(m)
    ptep = pt.pte_alloc_map(mm, USER)
    with pytest.raises(KernelBug, match="table"):
        m.free_pages(ptep[0], 0)                                    # free_pages_prepare: in use as table
    assert m.mem_map.page_type[ptep[0]] == PGTY_TABLE
    assert m.mem_map.state[ptep[0]] == FRAME_ALLOCATED
    m.check()
    assert PGTY_NONE != PGTY_TABLE


def test_any_mm_with_the_fields_works(m):
    """The functions take any mm with machine, pgd, pgtables_bytes and is_init_mm (mm/vma.py's MM too)."""
    from mmlab.mm.vma import MM
    mm = MM(m)
    assert pt.mm_alloc_pgd(mm) == 0 and mm in m.pgd_list
    with m.trace() as t:
        ptep = pt.pte_alloc_map(mm, USER)
    assert "pud_alloc(mm=MM" in str(t)
    assert ptep is not None and mm.pgtables_bytes == 3 * PAGE_SIZE
    pt.free_pgd_range(mm, USER, USER + PAGE_SIZE, 0, 0)
    pt.pgd_free(mm)
    assert mm.pgd is None and table_pages(m) == 0
    m.check()
