"""Page tables: x86_64 four-level paging, 512 entries a level, in the kernel's names.

Models arch/x86/include/asm/pgtable_types.h, pgtable.h and pgalloc.h,
include/linux/pgtable.h, include/asm-generic/pgalloc.h and the page-table
parts of mm/memory.c (__pte_alloc, __pmd_alloc, __pud_alloc, free_pgd_range).

A 48-bit virtual address splits into four 9-bit indexes and a 12-bit offset:

    47       39 38       30 29       21 20       12 11          0
    | PGD index | PUD index | PMD index | PTE index |   offset    |

Every level is one page frame of 512 eight-byte entries.  An entry holds the
pfn of the next table, or in a leaf the pfn of the page itself, in bits
12..51, and flags in the other bits (_PAGE_PRESENT, _PAGE_RW, ...).  A PMD
entry with _PAGE_PSE set is a leaf that maps 2 MiB at once.  x86_64 also
has a fifth level, the P4D; with four-level paging it is folded into the
PGD, so p4d_offset returns the PGD entry itself.

Representation (glossary: pfn a page frame number, pte a page table entry):
- a table's memory is a numpy uint64 array of 512 entries, kept in
  m.page_tables under the table's pfn, as the frame's contents would be;
- a pointer to an entry (the kernel's pgd_t *, pud_t *, pmd_t *, pte_t *)
  is the pair (table pfn, index);
- an address space `mm` is any object with .machine, .pgd (the pfn of its
  PGD), .pgtables_bytes and .is_init_mm; PageTables is the smallest such
  object, and the kernel's init_mm (m.init_mm) is one.

Table pages come from the buddy allocator, zeroed, marked PGTY_TABLE and
counted in the node's nr_page_table_pages (PageTables in /proc/meminfo),
as pagetable_alloc and the pagetable_*_ctor functions do.  In Linux 6.18 the
kernel's own tables are constructed and counted the same way (mid-2025,
"mm: call ctor/dtor for kernel PTEs" made pte_alloc_one_kernel call
pagetable_pte_ctor; the PMD and PUD levels under init_mm always were).

NOTE: the kernel's PGD (init_top_pgt) is part of the kernel image, so it is
not allocated from the buddy allocator and not counted; mmlab places it in
a reserved frame of the image (INIT_TOP_PGT_PFN).  The direct map, the
kernel image mapping and the other fixed kernel regions are not modelled
in the tables: only what vmalloc and user address spaces map.
"""
import numpy as np

from ..arch import PAGE_SHIFT, PAGE_SIZE, PHYSICAL_START
from ..errors import KernelBug, InvariantError
from ..trace import traced, note, tracing
from ..uapi import GFP_KERNEL, __GFP_ZERO, __GFP_ACCOUNT
from . import page_alloc
from .page_alloc import PGTY_NONE, PGTY_TABLE, FRAME_ALLOCATED

# -- geometry (pgtable_64_types.h, 4-level paging) ---------------------------
PTRS_PER_PGD = PTRS_PER_PUD = PTRS_PER_PMD = PTRS_PER_PTE = 512
PGDIR_SHIFT = 39
PUD_SHIFT = 30
PMD_SHIFT = 21
PGDIR_SIZE = 1 << PGDIR_SHIFT           # 512 GiB
PUD_SIZE = 1 << PUD_SHIFT               # 1 GiB
PMD_SIZE = 1 << PMD_SHIFT               # 2 MiB
U64 = (1 << 64) - 1                     # unsigned long arithmetic wraps here
PGDIR_MASK = ~(PGDIR_SIZE - 1) & U64
PUD_MASK = ~(PUD_SIZE - 1) & U64
PMD_MASK = ~(PMD_SIZE - 1) & U64
KERNEL_PGD_BOUNDARY = PTRS_PER_PGD // 2  # PGD entries 256..511 map the kernel half

LEVEL_PTE, LEVEL_PMD, LEVEL_PUD, LEVEL_PGD = 1, 2, 3, 4
LEVEL_NAMES = {LEVEL_PGD: "pgd", LEVEL_PUD: "pud", LEVEL_PMD: "pmd", LEVEL_PTE: "pte"}

# -- entry bits (pgtable_types.h) --------------------------------------------
_PAGE_PRESENT = 0x001
_PAGE_RW = 0x002
_PAGE_USER = 0x004
_PAGE_PWT = 0x008
_PAGE_PCD = 0x010
_PAGE_ACCESSED = 0x020
_PAGE_DIRTY = 0x040
_PAGE_PSE = 0x080                       # a leaf above the PTE level (2 MiB or 1 GiB page)
_PAGE_GLOBAL = 0x100
_PAGE_SPECIAL = 0x200                   # _PAGE_SOFTW1: no struct page behind it
_PAGE_SOFT_DIRTY = 0x800                # _PAGE_SOFTW3
_PAGE_NX = 1 << 63
_PAGE_PROTNONE = _PAGE_GLOBAL           # PROT_NONE: not present to the MMU, present to Linux
__PHYSICAL_MASK_SHIFT = 52
PTE_PFN_MASK = ((1 << __PHYSICAL_MASK_SHIFT) - 1) & ~(PAGE_SIZE - 1)
PMD_PFN_MASK = PTE_PFN_MASK & PMD_MASK  # a 2 MiB leaf's frame is 2 MiB aligned
PTE_FLAGS_MASK = ~PTE_PFN_MASK & U64

# Table entries: x86 populates every level with _PAGE_TABLE, user bit
# included, for kernel tables as well (pmd_populate_kernel); the leaf's
# own bits decide who may access the page.
_PAGE_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY
_KERNPG_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY

# Protections (pgprot_t values) a leaf is made from.
PAGE_NONE = _PAGE_ACCESSED | _PAGE_PROTNONE
PAGE_SHARED = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX
PAGE_SHARED_EXEC = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED
PAGE_COPY_NOEXEC = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX
PAGE_COPY_EXEC = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED
PAGE_COPY = PAGE_COPY_NOEXEC
PAGE_READONLY = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX
PAGE_READONLY_EXEC = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED
PAGE_KERNEL = (_PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_GLOBAL
               | _PAGE_NX)
PAGE_KERNEL_RO = _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_GLOBAL | _PAGE_NX
PAGE_KERNEL_EXEC = PAGE_KERNEL & ~_PAGE_NX

_FLAG_NAMES = [(_PAGE_PRESENT, "P"), (_PAGE_RW, "RW"), (_PAGE_USER, "U"), (_PAGE_PWT, "PWT"),
               (_PAGE_PCD, "PCD"), (_PAGE_ACCESSED, "A"), (_PAGE_DIRTY, "D"), (_PAGE_PSE, "PSE"),
               (_PAGE_GLOBAL, "G"), (_PAGE_SPECIAL, "SPECIAL"), (_PAGE_SOFT_DIRTY, "SD"),
               (_PAGE_NX, "NX")]

# GFP for table pages (include/asm-generic/pgalloc.h).
GFP_PGTABLE_KERNEL = GFP_KERNEL | __GFP_ZERO
GFP_PGTABLE_USER = GFP_PGTABLE_KERNEL | __GFP_ACCOUNT

# The PGD of a process: two pages with page-table isolation configured (the
# second is the user-mode copy), as this machine's kernel and most
# distributions build it (CONFIG_MITIGATION_PAGE_TABLE_ISOLATION=y).
PGD_ALLOCATION_ORDER = 1

# init_top_pgt: the kernel's PGD, in the kernel image's data, 16 MiB in.
INIT_TOP_PGT_PFN = (PHYSICAL_START >> PAGE_SHIFT) + 0x1000

# pgtbl_mod_mask bits: which levels a kernel mapping call changed.
PGTBL_PGD_MODIFIED, PGTBL_P4D_MODIFIED, PGTBL_PUD_MODIFIED = 1 << 0, 1 << 1, 1 << 2
PGTBL_PMD_MODIFIED, PGTBL_PTE_MODIFIED = 1 << 3, 1 << 4


def pte_flags_name(entry):
    """The flags of an entry as text: 'P|RW|A|D|G|NX'."""
    return "|".join(name for bit, name in _FLAG_NAMES if entry & bit) or "0"


def ptr_str(ptr):
    """An entry pointer as the course prints it: table pfn and index, '0x2822[9]'."""
    return f"{ptr[0]:#x}[{ptr[1]}]" if ptr is not None else "NULL"


def mm_name(mm):
    return getattr(mm, "name", None) or type(mm).__name__


def entry_str(entry):
    """An entry as the course prints it: '0x8000000012345163 (pfn 0x12345 P|RW|A|D|G|NX)'."""
    if not entry:
        return "0 (none)"
    return f"{entry:#018x} (pfn {(entry & PTE_PFN_MASK) >> PAGE_SHIFT:#x} {pte_flags_name(entry)})"


# -- indexes and range steps (pgtable.h) --------------------------------------

def pgd_index(addr):
    return (addr >> PGDIR_SHIFT) & (PTRS_PER_PGD - 1)


def pud_index(addr):
    return (addr >> PUD_SHIFT) & (PTRS_PER_PUD - 1)


def pmd_index(addr):
    return (addr >> PMD_SHIFT) & (PTRS_PER_PMD - 1)


def pte_index(addr):
    return (addr >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)


def _addr_end(addr, end, size):
    """pgd_addr_end and friends: the next boundary of `size` after addr, or end if sooner.

    Computed in unsigned 64-bit arithmetic, as the kernel does, so that a
    range ending at the top of the address space (end == 0) works.
    """
    boundary = ((addr + size) & ~(size - 1)) & U64
    return boundary if (boundary - 1) & U64 < (end - 1) & U64 else end


def pgd_addr_end(addr, end):
    return _addr_end(addr, end, PGDIR_SIZE)


def pud_addr_end(addr, end):
    return _addr_end(addr, end, PUD_SIZE)


def pmd_addr_end(addr, end):
    return _addr_end(addr, end, PMD_SIZE)


# -- entry values (pgtable.h): plain ints ------------------------------------

def pfn_pte(pfn, prot):
    """pfn_pte: a leaf entry mapping frame pfn with protection bits prot."""
    return (pfn << PAGE_SHIFT) | prot


def pte_pfn(pte):
    return (pte & PTE_PFN_MASK) >> PAGE_SHIFT


def pmd_pfn(pmd):
    """pmd_pfn: the first frame of a 2 MiB leaf, or the frame of the PTE table below."""
    mask = PMD_PFN_MASK if pmd & _PAGE_PSE else PTE_PFN_MASK
    return (pmd & mask) >> PAGE_SHIFT


def pte_none(pte):
    return pte == 0


def pte_present(pte):
    """pte_present: mapped, or PROT_NONE (which Linux still counts as present)."""
    return bool(pte & (_PAGE_PRESENT | _PAGE_PROTNONE))


def pte_write(pte):
    return bool(pte & _PAGE_RW)


def pte_dirty(pte):
    return bool(pte & _PAGE_DIRTY)


def pte_young(pte):
    return bool(pte & _PAGE_ACCESSED)


def pte_exec(pte):
    return not pte & _PAGE_NX


def pte_special(pte):
    return bool(pte & _PAGE_SPECIAL)


def pte_mkyoung(pte):
    return pte | _PAGE_ACCESSED


def pte_mkold(pte):
    return pte & ~_PAGE_ACCESSED


def pte_mkdirty(pte):
    return pte | _PAGE_DIRTY | _PAGE_SOFT_DIRTY


def pte_mkclean(pte):
    return pte & ~_PAGE_DIRTY


def pte_mkwrite(pte):
    """pte_mkwrite_novma."""
    return pte | _PAGE_RW


def pte_wrprotect(pte):
    return pte & ~_PAGE_RW


def pte_mkspecial(pte):
    return pte | _PAGE_SPECIAL


def pte_modify(pte, prot):
    """pte_modify: keep the frame, the accessed and dirty bits; take the rest from prot."""
    keep = PTE_PFN_MASK | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_SPECIAL
    return (pte & keep) | (prot & ~keep & U64)


pmd_none = pud_none = pgd_none = p4d_none = pte_none


def pmd_present(pmd):
    return bool(pmd & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE))


def pmd_leaf(pmd):
    """pmd_leaf: the entry maps a 2 MiB page instead of pointing to a PTE table."""
    return bool(pmd & _PAGE_PSE)


pud_leaf = pmd_leaf


def pmd_bad(pmd):
    """pmd_bad: a table entry whose flags, user and NX bits aside, are not _KERNPG_TABLE's."""
    return (pmd & PTE_FLAGS_MASK & ~(_PAGE_USER | _PAGE_NX)) != _KERNPG_TABLE


pud_bad = pgd_bad = pmd_bad


# -- address spaces -----------------------------------------------------------

class PageTables:
    """The page-table half of an mm_struct: its PGD and the bytes its tables use.

    `pgd` is the pfn of the PGD; `pgtables_bytes` counts the PTE, PMD and
    PUD tables of this mm (mm_pgtables_bytes, VmPTE in /proc/pid/status).
    Create one with new_mm(m); the kernel's own is m.init_mm.
    """

    __slots__ = ("machine", "pgd", "pgtables_bytes", "is_init_mm", "name")

    def __init__(self, machine, pgd, name, is_init_mm=False):
        self.machine = machine
        self.pgd = pgd
        self.pgtables_bytes = 0
        self.is_init_mm = is_init_mm
        self.name = name

    def __repr__(self):
        return f"<PageTables {self.name} pgd={self.pgd:#x}>" if self.pgd is not None else \
            f"<PageTables {self.name} (no PGD)>"


def pgtable_init(m):
    """Boot: the machine's table memory and init_mm, whose PGD is init_top_pgt in the image.

    m.page_tables maps a table's pfn to its 512 entries, m.page_table_level
    its level (4 = PGD ... 1 = PTE), m.pgd_list the PGDs of processes
    (x86's pgd_list, which kernel-half changes are copied to).
    """
    m.page_tables = {}
    m.page_table_level = {}
    m.pgd_list = []
    m.page_tables[INIT_TOP_PGT_PFN] = np.zeros(PTRS_PER_PGD, dtype=np.uint64)
    m.page_table_level[INIT_TOP_PGT_PFN] = LEVEL_PGD
    m.init_mm = PageTables(m, INIT_TOP_PGT_PFN, "init_mm", is_init_mm=True)
    m.checks.append(check)


# -- entry pointers: (table pfn, index) ---------------------------------------

def ptep_get(mm, ptep):
    """ptep_get (and pmdp_get, pudp_get, pgdp_get): read the entry a pointer points to."""
    pfn, i = ptep
    return int(mm.machine.page_tables[pfn][i])


pmdp_get = pudp_get = pgdp_get = p4dp_get = ptep_get


def set_entry(mm, ptep, value):
    """WRITE_ONCE(*ptep, value): the raw store set_pte, set_pmd and friends end in."""
    pfn, i = ptep
    mm.machine.page_tables[pfn][i] = value


def pgd_offset(mm, addr):
    """pgd_offset: the PGD entry that covers addr in this address space."""
    return (mm.pgd, pgd_index(addr))


def pgd_offset_k(m, addr):
    """pgd_offset_k: the kernel's (init_mm's) PGD entry for addr."""
    return (m.init_mm.pgd, pgd_index(addr))


def p4d_offset(mm, pgdp, addr):
    """p4d_offset: with four-level paging the P4D is folded, so this is the PGD entry."""
    return pgdp


def pud_offset(mm, p4dp, addr):
    """pud_offset: the PUD entry for addr in the table the P4D (PGD) entry points to."""
    return (pte_pfn(ptep_get(mm, p4dp)), pud_index(addr))


def pmd_offset(mm, pudp, addr):
    """pmd_offset: the PMD entry for addr in the table the PUD entry points to."""
    return (pte_pfn(ptep_get(mm, pudp)), pmd_index(addr))


def pte_offset_kernel(mm, pmdp, addr):
    """pte_offset_kernel / pte_offset_map: the PTE for addr in the table the PMD entry points to."""
    return (pte_pfn(ptep_get(mm, pmdp)), pte_index(addr))


pte_offset_map = pte_offset_kernel


# -- table pages (pagetable_alloc, pagetable_*_ctor, pagetable_dtor_free) -----

def pagetable_alloc(m, gfp, order=0):
    """pagetable_alloc: zeroed frames for a table; returns the pfn, or None."""
    return page_alloc.alloc_pages(m, order, gfp | __GFP_ZERO)


def pagetable_ctor(m, pfn, level, order=0):
    """__pagetable_ctor: mark the frame a table (PGTY_TABLE), count it, give it 512 empty entries."""
    m.mem_map.page_type_[pfn] = PGTY_TABLE
    m.node_stat["nr_page_table_pages"] += 1 << order
    m.page_tables[pfn] = np.zeros(PTRS_PER_PTE, dtype=np.uint64)
    m.page_table_level[pfn] = level


def pagetable_dtor_free(m, pfn, order=0):
    """pagetable_dtor_free: uncount the table and give its frames back."""
    if m.mem_map.page_type_[pfn] != PGTY_TABLE:
        raise KernelBug(f"pagetable_dtor: pfn {pfn:#x} is not a page table")
    del m.page_tables[pfn]
    del m.page_table_level[pfn]
    m.mem_map.page_type_[pfn] = PGTY_NONE
    m.node_stat["nr_page_table_pages"] -= 1 << order
    page_alloc.free_pages(m, pfn, order)


def alloc_table(mm, level):
    """pte_alloc_one, pmd_alloc_one, pud_alloc_one: one constructed table page, or None.

    Tables of a process are charged to its memory cgroup (__GFP_ACCOUNT);
    the kernel's (init_mm's) are not.
    """
    m = mm.machine
    gfp = GFP_PGTABLE_KERNEL if mm.is_init_mm else GFP_PGTABLE_USER
    pfn = pagetable_alloc(m, gfp)
    if pfn is None:
        note(mm, "%s_alloc_one: out of memory", LEVEL_NAMES[level])
        return None
    pagetable_ctor(m, pfn, level)
    return pfn


def free_table(mm, pfn):
    """pte_free, pmd_free, pud_free."""
    pagetable_dtor_free(mm.machine, pfn)


def populate(mm, ptr, table_pfn):
    """pmd_populate, pud_populate, p4d_populate: point an empty entry at a new table."""
    set_entry(mm, ptr, (table_pfn << PAGE_SHIFT) | _PAGE_TABLE)


def sync_global_pgds(m, index):
    """sync_global_pgds: copy a changed kernel-half PGD entry of init_mm into every process's PGD.

    NOTE: x86_64 preallocates the PUD tables of the vmalloc area at boot
    (preallocate_vmalloc_pages) so that the kernel's PGD entries never
    change and need no copying; mmlab allocates them on first use and so
    copies them here, as the generic arch_sync_kernel_mappings path does.
    """
    value = m.page_tables[m.init_mm.pgd][index]
    for mm in m.pgd_list:
        m.page_tables[mm.pgd][index] = value


# -- allocating the levels (mm/memory.c) --------------------------------------

def install_table(mm, ptr, level, counted):
    """What __pud_alloc, __pmd_alloc and __pte_alloc share: a new table under an empty entry.

    Allocates the table, points the entry at it (pud_populate and
    friends) and, if `counted`, adds it to the mm's pgtables_bytes
    (mm_inc_nr_puds, _pmds, _ptes).  Returns the table's pfn, or None.
    """
    pfn = alloc_table(mm, level)
    if pfn is None:
        return None
    populate(mm, ptr, pfn)
    if counted:
        mm.pgtables_bytes += PAGE_SIZE
    note(mm, "__%s_alloc: %s table %#x for %s[%d]", LEVEL_NAMES[level], LEVEL_NAMES[level].upper(),
         pfn, LEVEL_NAMES[level + 1], ptr[1])
    return pfn


@traced(fmt={"mm": mm_name, "p4dp": ptr_str}, result=ptr_str)
def pud_alloc(mm, p4dp, addr):
    """pud_alloc / __pud_alloc: the PUD entry for addr, allocating the PUD table if missing.

    Returns the entry pointer, or None when no page is left for the table.
    A new kernel-half table in init_mm is copied into every process's PGD.
    """
    if pte_none(ptep_get(mm, p4dp)):
        if install_table(mm, p4dp, LEVEL_PUD, counted=True) is None:
            return None
        if mm.is_init_mm and p4dp[1] >= KERNEL_PGD_BOUNDARY:
            sync_global_pgds(mm.machine, p4dp[1])
    return pud_offset(mm, p4dp, addr)


@traced(fmt={"mm": mm_name, "pudp": ptr_str}, result=ptr_str)
def pmd_alloc(mm, pudp, addr):
    """pmd_alloc / __pmd_alloc: the PMD entry for addr, allocating the PMD table if missing."""
    if pte_none(ptep_get(mm, pudp)) and install_table(mm, pudp, LEVEL_PMD, counted=True) is None:
        return None
    return pmd_offset(mm, pudp, addr)


@traced(fmt={"mm": mm_name, "pmdp": ptr_str})
def pte_alloc(mm, pmdp):
    """pte_alloc / __pte_alloc (and __pte_alloc_kernel for init_mm): a PTE table under an empty PMD.

    Returns 0, or -ENOMEM when no page is left.  A process's PTE tables
    count in its pgtables_bytes (mm_inc_nr_ptes); the kernel's do not.
    """
    if pte_none(ptep_get(mm, pmdp)) and install_table(mm, pmdp, LEVEL_PTE,
                                                       counted=not mm.is_init_mm) is None:
        return -12
    return 0


def walk_alloc(mm, addr):
    """The PMD entry for addr, allocating the PUD and PMD tables on the way; None when out of memory."""
    pudp = pud_alloc(mm, p4d_offset(mm, pgd_offset(mm, addr), addr), addr)
    if pudp is None:
        return None
    return pmd_alloc(mm, pudp, addr)


def pte_alloc_map(mm, addr):
    """pte_alloc_map: the PTE pointer for addr, every table allocated on the way; None when out of memory."""
    pmdp = walk_alloc(mm, addr)
    if pmdp is None:
        return None
    if pmd_leaf(ptep_get(mm, pmdp)):
        raise KernelBug(f"pte_alloc_map: {addr:#x} is inside a 2 MiB mapping")
    if pte_alloc(mm, pmdp):
        return None
    return pte_offset_map(mm, pmdp, addr)


# -- leaf entries -------------------------------------------------------------

def set_pte_at(mm, addr, ptep, pte):
    """set_pte_at: install a leaf entry."""
    note(mm, "set_pte_at: %#x -> %s", addr, entry_str(pte))
    set_entry(mm, ptep, pte)


def set_ptes(mm, addr, ptep, pte, nr):
    """set_ptes: map nr consecutive pages from pte's frame on, within one PTE table."""
    pfn, i = ptep
    if i + nr > PTRS_PER_PTE:
        raise KernelBug(f"set_ptes: {nr} entries from index {i} cross the end of the table")
    flags = pte & PTE_FLAGS_MASK
    first = pte_pfn(pte)
    values = ((np.arange(first, first + nr, dtype=np.uint64) << np.uint64(PAGE_SHIFT))
              | np.uint64(flags))
    mm.machine.page_tables[pfn][i:i + nr] = values
    note(mm, "set_ptes: %d entries at %#x, pfn %#x.. flags %s", nr, addr, first, pte_flags_name(pte))


def pte_clear(mm, addr, ptep):
    """pte_clear: empty an entry."""
    set_entry(mm, ptep, 0)


def ptep_get_and_clear(mm, addr, ptep):
    """ptep_get_and_clear: empty an entry and return what it held."""
    old = ptep_get(mm, ptep)
    set_entry(mm, ptep, 0)
    return old


def ptep_set_wrprotect(mm, addr, ptep):
    """ptep_set_wrprotect: clear the write bit (fork's copy-on-write)."""
    set_entry(mm, ptep, pte_wrprotect(ptep_get(mm, ptep)))


def ptep_test_and_clear_young(mm, addr, ptep):
    """ptep_test_and_clear_young: clear the accessed bit; return whether it was set."""
    old = ptep_get(mm, ptep)
    set_entry(mm, ptep, pte_mkold(old))
    return pte_young(old)


def pmd_set_huge(mm, pmdp, pfn, prot):
    """pmd_set_huge: make a PMD entry a 2 MiB leaf mapping frames pfn..pfn+511."""
    set_entry(mm, pmdp, (pfn << PAGE_SHIFT) | prot | _PAGE_PSE)
    return 1


def pmd_clear_huge(mm, pmdp):
    """pmd_clear_huge: empty a PMD entry if it is a 2 MiB leaf; return 1 if it was."""
    if pmd_leaf(ptep_get(mm, pmdp)):
        set_entry(mm, pmdp, 0)
        return 1
    return 0


def pmd_free_pte_page(mm, pmdp, addr):
    """pmd_free_pte_page: free an emptied PTE table so the PMD can become a 2 MiB leaf."""
    pfn = pte_pfn(ptep_get(mm, pmdp))
    if np.any(mm.machine.page_tables[pfn]):
        return 0
    set_entry(mm, pmdp, 0)
    free_table(mm, pfn)
    note(mm, "pmd_free_pte_page: PTE table %#x freed for a 2 MiB mapping at %#x", pfn, addr)
    return 1


# -- looking up ---------------------------------------------------------------

def walk(mm, addr):
    """The entries a hardware walk of addr reads, top down: [(level name, pointer, value), ...].

    Stops at the first empty entry or at a leaf.  For the course: it prints
    the path an address takes through the four tables.
    """
    path = []
    ptr = pgd_offset(mm, addr)
    for level in (LEVEL_PGD, LEVEL_PUD, LEVEL_PMD, LEVEL_PTE):
        value = ptep_get(mm, ptr)
        path.append((LEVEL_NAMES[level], ptr, value))
        if level == LEVEL_PTE or pte_none(value) or (level != LEVEL_PGD and pmd_leaf(value)):
            break
        index = (pud_index, pmd_index, pte_index)[LEVEL_PGD - level](addr)
        ptr = (pte_pfn(value), index)
    return path


def follow_pfn(mm, addr):
    """The frame addr is mapped to, or None: a software walk that understands 2 MiB and 1 GiB leaves."""
    m = mm.machine
    tables = m.page_tables
    entry = int(tables[mm.pgd][pgd_index(addr)])
    if not entry & _PAGE_PRESENT:
        return None
    entry = int(tables[pte_pfn(entry)][pud_index(addr)])
    if not entry & _PAGE_PRESENT:
        return None
    if entry & _PAGE_PSE:
        return ((entry & PTE_PFN_MASK & PUD_MASK) >> PAGE_SHIFT) + ((addr & ~PUD_MASK) >> PAGE_SHIFT)
    entry = int(tables[pte_pfn(entry)][pmd_index(addr)])
    if not entry & _PAGE_PRESENT:
        return None
    if entry & _PAGE_PSE:
        return pmd_pfn(entry) + ((addr & ~PMD_MASK & U64) >> PAGE_SHIFT)
    entry = int(tables[pte_pfn(entry)][pte_index(addr)])
    if not pte_present(entry):
        return None
    return pte_pfn(entry)


def pte_tables(mm, start, end, alloc=False):
    """The PTE tables that cover [start, end), one PMD step at a time.

    Returns a list of (table pfn, first index, last index + 1, address of
    the first entry), with None for a table that does not exist; with
    alloc=True every missing table is allocated on the way, and None is
    returned if one cannot be had (the tables allocated so far stay, as in
    Linux).  A 2 MiB leaf on the way raises KernelBug.  The building block
    of the batch helpers below, which read or write many entries with one
    numpy operation per table.
    """
    out = []
    addr = start
    while addr < end:
        nxt = pmd_addr_end(addr, end)
        i = pte_index(addr)
        j = i + ((nxt - addr) >> PAGE_SHIFT)
        pmdp = lookup_pmd(mm, addr)
        if pmdp is None and alloc:
            pmdp = walk_alloc(mm, addr)
            if pmdp is None:
                return None
        pmd = ptep_get(mm, pmdp) if pmdp is not None else 0
        if pmd & _PAGE_PSE:
            raise KernelBug(f"pte_tables: {addr:#x} is inside a 2 MiB mapping")
        if not pmd and alloc:
            if pte_alloc(mm, pmdp):
                return None
            pmd = ptep_get(mm, pmdp)
        out.append((pte_pfn(pmd) if pmd else None, i, j, addr))
        addr = nxt
    return out


def lookup_pmd(mm, addr):
    """The PMD entry pointer for addr if the PGD and PUD entries lead to a PMD table, else None."""
    tables = mm.machine.page_tables
    pgd = int(tables[mm.pgd][(addr >> PGDIR_SHIFT) & (PTRS_PER_PGD - 1)])
    if not pgd:
        return None
    pud = int(tables[(pgd & PTE_PFN_MASK) >> PAGE_SHIFT][(addr >> PUD_SHIFT) & (PTRS_PER_PUD - 1)])
    if not pud or pud & _PAGE_PSE:
        return None
    return ((pud & PTE_PFN_MASK) >> PAGE_SHIFT, (addr >> PMD_SHIFT) & (PTRS_PER_PMD - 1))


def get_ptes(mm, start, end):
    """Every PTE of the pages in [start, end) as a numpy uint64 array (0 where no table exists).

    start and end must be page aligned.  Pages under a 2 MiB leaf read as
    the 4 KiB entries that would map them (the leaf's flags without PSE).
    """
    check_range("get_ptes", start, end)
    out = np.zeros((end - start) >> PAGE_SHIFT, dtype=np.uint64)
    tables = mm.machine.page_tables
    addr = start
    while addr < end:
        nxt = pmd_addr_end(addr, end)
        lo = (addr - start) >> PAGE_SHIFT
        hi = (nxt - start) >> PAGE_SHIFT
        pmdp = lookup_pmd(mm, addr)
        if pmdp is not None:
            pmd = ptep_get(mm, pmdp)
            i = pte_index(addr)
            if pmd_leaf(pmd):
                first = pmd_pfn(pmd) + i
                flags = np.uint64(pmd & PTE_FLAGS_MASK & ~_PAGE_PSE)
                out[lo:hi] = (np.arange(first, first + hi - lo, dtype=np.uint64)
                              << np.uint64(PAGE_SHIFT)) | flags
            elif not pte_none(pmd):
                out[lo:hi] = tables[pte_pfn(pmd)][i:i + hi - lo]
        addr = nxt
    return out


def set_ptes_range(mm, start, ptes):
    """Write PTE values for consecutive pages from start on, allocating tables as needed.

    `ptes` is a sequence of entry values (numpy uint64 works best).  Returns
    0, or -ENOMEM if a table could not be allocated (entries before that
    point are written).  Refuses (KernelBug) to overwrite a present entry
    with another present one, as set_pte_at's checks do.
    """
    ptes = np.asarray(ptes, dtype=np.uint64)
    end = start + (len(ptes) << PAGE_SHIFT)
    check_range("set_ptes_range", start, end)
    pieces = pte_tables(mm, start, end, alloc=True)
    if pieces is None:
        return -12
    tables = mm.machine.page_tables
    for pfn, i, j, addr in pieces:
        old = tables[pfn][i:j]
        if np.count_nonzero(old):               # (count_nonzero is numpy's quickest test on a short slice)
            new = ptes[(addr - start) >> PAGE_SHIFT:][:j - i]
            if ((old != 0) & (new != 0) & (old != new)).any():
                raise KernelBug(f"set_ptes_range: a present entry near {addr:#x} would be overwritten")
    for pfn, i, j, addr in pieces:
        lo = (addr - start) >> PAGE_SHIFT
        tables[pfn][i:j] = ptes[lo:lo + j - i]
        if tracing(mm):
            note(mm, "set_pte_at: %d entries at %#x..%#x in PTE table %#x", j - i, addr,
                 addr + ((j - i) << PAGE_SHIFT), pfn)
    return 0


def clear_ptes_range(mm, start, end):
    """Empty every PTE of [start, end) (vunmap_pte_range, zap's clearing); tables stay.

    Returns the old values as a numpy array, as ptep_get_and_clear would
    one by one.
    """
    check_range("clear_ptes_range", start, end)
    old = np.zeros((end - start) >> PAGE_SHIFT, dtype=np.uint64)
    tables = mm.machine.page_tables
    for pfn, i, j, addr in pte_tables(mm, start, end):
        if pfn is None:
            continue
        lo = (addr - start) >> PAGE_SHIFT
        old[lo:lo + j - i] = tables[pfn][i:j]
        tables[pfn][i:j] = 0
    return old


def check_range(fn, start, end):
    if start & (PAGE_SIZE - 1) or end & (PAGE_SIZE - 1) or end < start:
        raise ValueError(f"{fn}: [{start:#x}, {end:#x}) is not a page-aligned range")


# -- freeing tables (mm/memory.c free_pgd_range) ------------------------------

def detach_table(mm, ptr, fn, addr):
    """What the free_*_range functions end with: clear the entry, free the table below, uncount it.

    (pmd_clear + pte_free_tlb + mm_dec_nr_ptes, and the same one and two
    levels up.)  Returns the freed table's pfn.
    """
    pfn = pte_pfn(ptep_get(mm, ptr))
    level = mm.machine.page_table_level[pfn]
    set_entry(mm, ptr, 0)
    free_table(mm, pfn)
    mm.pgtables_bytes -= PAGE_SIZE
    note(mm, "%s: %s table %#x at %#x", fn, LEVEL_NAMES[level].upper(), pfn, addr)
    return pfn


def free_pte_range(mm, pmdp, addr):
    """free_pte_range: detach and free the PTE table under a PMD entry."""
    detach_table(mm, pmdp, "free_pte_range", addr)


def free_pmd_range(mm, pudp, addr, end, floor, ceiling):
    """free_pmd_range: free the PTE tables of [addr, end), then the PMD table if nothing else can use it.

    floor and ceiling bound the addresses other mappings still use (the end
    of the previous VMA and the start of the next); a table that also
    covers them must stay.
    """
    start = addr
    pmd_table = pte_pfn(ptep_get(mm, pudp))
    while True:
        nxt = pmd_addr_end(addr, end)
        pmdp = (pmd_table, pmd_index(addr))
        if not pmd_none_or_clear_bad(mm, pmdp):
            free_pte_range(mm, pmdp, addr)
        addr = nxt
        if addr == end:
            break
    if upper_table_free(start, end, floor, ceiling, PUD_MASK):
        detach_table(mm, pudp, "free_pmd_range", start & PUD_MASK)


def free_pud_range(mm, p4dp, addr, end, floor, ceiling):
    """free_pud_range: free the PMD levels of [addr, end), then the PUD table if nothing else can use it."""
    start = addr
    pud_table = pte_pfn(ptep_get(mm, p4dp))
    while True:
        nxt = pud_addr_end(addr, end)
        pudp = (pud_table, pud_index(addr))
        if not pmd_none_or_clear_bad(mm, pudp):
            free_pmd_range(mm, pudp, addr, nxt, floor, ceiling)
        addr = nxt
        if addr == end:
            break
    if upper_table_free(start, end, floor, ceiling, PGDIR_MASK):
        detach_table(mm, p4dp, "free_pud_range", start & PGDIR_MASK)    # the folded P4D: a PGD entry


def upper_table_free(start, end, floor, ceiling, mask):
    """The test free_pmd_range and free_pud_range end with: may the table covering start go?

    It may when the whole region it maps lies within [floor, ceiling); a
    ceiling of 0 means the top of the address space.
    """
    start &= mask
    if start < floor:
        return False
    if ceiling:
        ceiling &= mask
        if not ceiling:
            return False
    return (end - 1) & U64 <= (ceiling - 1) & U64


def pmd_none_or_clear_bad(mm, ptr):
    """pmd_none_or_clear_bad (and the pud, p4d, pgd forms): True if there is no table to free below.

    A corrupt entry is a kernel bug; Linux reports it (pmd_ERROR) and
    clears it, mmlab refuses.
    """
    value = ptep_get(mm, ptr)
    if pte_none(value):
        return True
    if pmd_leaf(value) or pmd_bad(value):
        raise KernelBug(f"free_pgd_range: bad entry {entry_str(value)} in table {ptr[0]:#x}[{ptr[1]}]")
    return False


@traced(fmt={"mm": mm_name})
def free_pgd_range(mm, addr, end, floor, ceiling):
    """free_pgd_range: free the page tables that map only [addr, end).

    Every PTE in the range must already be empty (zap_page_range cleared
    them).  PTE tables wholly inside [floor, ceiling) after rounding to
    2 MiB are freed, and so are PMD and PUD tables whose whole span lies in
    [floor, ceiling): those the neighbouring mappings still use stay.
    NOTE: Linux gathers the freed tables in an mmu_gather and frees them
    after the TLB flush; mmlab frees them at once.
    """
    addr &= PMD_MASK
    if addr < floor:
        addr += PMD_SIZE
        if not addr & U64:
            return
    if ceiling:
        ceiling &= PMD_MASK
        if not ceiling:
            return
    if (end - 1) & U64 > (ceiling - 1) & U64:
        end -= PMD_SIZE
    if addr > (end - 1) & U64:
        return
    while True:
        nxt = pgd_addr_end(addr, end)
        pgdp = pgd_offset(mm, addr)
        if not pmd_none_or_clear_bad(mm, pgdp):
            free_pud_range(mm, p4d_offset(mm, pgdp, addr), addr, nxt, floor, ceiling)
        addr = nxt
        if addr == end:
            break


def free_pgtables(mm, ranges, floor, ceiling):
    """free_pgtables: free the tables of unmapped regions, gathering neighbours into one call.

    `ranges` are the (start, end) of the removed VMAs in address order;
    floor is the end of the mapping before them (0 if none) and ceiling the
    start of the one after (0 if none).  Regions closer than 2 MiB share a
    call, as Linux gathers nearby VMAs.
    """
    ranges = list(ranges)
    i = 0
    while i < len(ranges):
        start, stop = ranges[i]
        i += 1
        while i < len(ranges) and ranges[i][0] <= stop + PMD_SIZE:
            stop = ranges[i][1]
            i += 1
        next_start = ranges[i][0] if i < len(ranges) else ceiling
        free_pgd_range(mm, start, stop, floor, next_start)


# -- whole address spaces -----------------------------------------------------

def pgd_alloc(mm):
    """pgd_alloc: a new PGD for mm, its kernel half copied from init_mm; the pfn, or None.

    The PGD is PGD_ALLOCATION_ORDER pages (the second being the user copy
    page-table isolation switches to), all counted as page tables.  mm
    joins m.pgd_list, so later kernel-half changes reach it.
    """
    m = mm.machine
    pfn = pagetable_alloc(m, GFP_PGTABLE_USER, PGD_ALLOCATION_ORDER)
    if pfn is None:
        return None
    pagetable_ctor(m, pfn, LEVEL_PGD, PGD_ALLOCATION_ORDER)
    # pgd_ctor / clone_pgd_range: the kernel half is shared by every process.
    kernel = m.page_tables[m.init_mm.pgd]
    m.page_tables[pfn][KERNEL_PGD_BOUNDARY:] = kernel[KERNEL_PGD_BOUNDARY:]
    m.pgd_list.append(mm)
    return pfn


def mm_alloc_pgd(mm):
    """mm_alloc_pgd: give mm its PGD; 0, or -ENOMEM."""
    pfn = pgd_alloc(mm)
    if pfn is None:
        return -12
    mm.pgd = pfn
    return 0


def new_mm(m, name="mm"):
    """A bare address space (PageTables) with its own PGD, or None when out of memory."""
    mm = PageTables(m, None, name)
    return mm if mm_alloc_pgd(mm) == 0 else None


def pgd_free(mm):
    """pgd_free: release a PGD whose user half is already empty (free_pgtables ran)."""
    m = mm.machine
    if mm.is_init_mm:
        raise KernelBug("pgd_free: init_mm's PGD is part of the kernel image")
    if np.any(m.page_tables[mm.pgd][:KERNEL_PGD_BOUNDARY]):
        raise KernelBug(f"pgd_free: {mm.name} still has user page tables")
    m.pgd_list.remove(mm)
    pagetable_dtor_free(m, mm.pgd, PGD_ALLOCATION_ORDER)
    mm.pgd = None


# -- invariants ---------------------------------------------------------------

def check(m):
    """Invariants of the page tables; raises InvariantError naming the broken one.

    - tables: every table but init_top_pgt is an allocated frame of type
      PGTY_TABLE, and together they are the node's nr_page_table_pages;
    - links: every non-leaf entry points to a table one level down, each
      table below a PGD is pointed to exactly once (from init_mm for the
      kernel half), and every process's kernel half equals init_mm's;
    - leaves: every present leaf maps allocated frames.
    """
    def fail(name, text):
        raise InvariantError(f"{name}: {text}")

    mm_ = m.mem_map
    levels = m.page_table_level
    counted = 0
    pgds = {m.init_mm.pgd} | {mm.pgd for mm in m.pgd_list}
    for pfn, level in levels.items():
        if pfn == INIT_TOP_PGT_PFN:
            continue
        if mm_.state_[pfn] != FRAME_ALLOCATED or mm_.page_type_[pfn] != PGTY_TABLE:
            fail("tables", f"{LEVEL_NAMES[level]} table {pfn:#x} is not an allocated PGTY_TABLE frame")
        counted += 1 << (PGD_ALLOCATION_ORDER if level == LEVEL_PGD else 0)
        if level == LEVEL_PGD and pfn not in pgds:
            fail("tables", f"PGD {pfn:#x} belongs to no address space")
    if counted != m.node_stat["nr_page_table_pages"]:
        fail("tables", f"{counted} table pages, nr_page_table_pages {m.node_stat['nr_page_table_pages']}")
    kernel_half = m.page_tables[m.init_mm.pgd][KERNEL_PGD_BOUNDARY:]
    refs = {}
    for pfn, level in levels.items():
        entries = m.page_tables[pfn]
        if level == LEVEL_PGD and pfn != m.init_mm.pgd:
            if not np.array_equal(entries[KERNEL_PGD_BOUNDARY:], kernel_half):
                fail("links", f"PGD {pfn:#x}: kernel half differs from init_mm's")
            entries = entries[:KERNEL_PGD_BOUNDARY]
        present = entries[(entries & np.uint64(_PAGE_PRESENT | _PAGE_PROTNONE)) != 0]
        if not len(present):
            continue
        targets = (present & np.uint64(PTE_PFN_MASK)) >> np.uint64(PAGE_SHIFT)
        leaf = (present & np.uint64(_PAGE_PSE)) != 0 if level in (LEVEL_PMD, LEVEL_PUD) else \
            np.full(len(present), level == LEVEL_PTE)
        for t in targets[~leaf].tolist():
            if levels.get(t) != level - 1:
                fail("links", f"{LEVEL_NAMES[level]} table {pfn:#x} points to {t:#x}, "
                     f"not a {LEVEL_NAMES.get(level - 1, '?')} table")
            refs[t] = refs.get(t, 0) + 1
        check_leaves(m, fail, pfn, level, present[leaf])
    for pfn, level in levels.items():
        if level != LEVEL_PGD and refs.get(pfn, 0) != 1:
            fail("links", f"{LEVEL_NAMES[level]} table {pfn:#x} is pointed to {refs.get(pfn, 0)} times")


def check_leaves(m, fail, table, level, leaves):
    """Every frame a present leaf maps is allocated (2 MiB and 1 GiB leaves: every frame inside).

    The one exception is the zero page (m.zero_pfn, mm/memory.py): a
    reserved frame of the kernel image that user PTEs map as _PAGE_SPECIAL.
    """
    zero = getattr(m, "zero_pfn", None)
    if zero is not None and level == LEVEL_PTE and len(leaves):
        leaves = leaves[~(((leaves & np.uint64(_PAGE_SPECIAL)) != 0)
                          & (((leaves & np.uint64(PTE_PFN_MASK)) >> np.uint64(PAGE_SHIFT)) == zero))]
    if not len(leaves):
        return
    span = {LEVEL_PTE: 1, LEVEL_PMD: PTRS_PER_PTE, LEVEL_PUD: PTRS_PER_PTE * PTRS_PER_PMD}[level]
    mask = np.uint64(PTE_PFN_MASK & ~((span << PAGE_SHIFT) - 1))
    first = (leaves & mask) >> np.uint64(PAGE_SHIFT)
    frames = (first[:, None] + np.arange(span, dtype=np.uint64)[None, :]).ravel()
    if np.any(frames >= m.max_pfn) or np.any(m.mem_map.state[frames.astype(np.int64)] != FRAME_ALLOCATED):
        fail("leaves", f"{LEVEL_NAMES[level]} table {table:#x} maps a frame that is not allocated")
