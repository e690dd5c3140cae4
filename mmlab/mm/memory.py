"""Page faults and user page tables: handle_mm_fault and every path it takes.

Models mm/memory.c (handle_mm_fault, handle_pte_fault, do_anonymous_page,
do_read_fault/do_fault_around, do_cow_fault, do_shared_fault, do_wp_page
and its wp_page_reuse/wp_page_copy/wp_page_shared, zap_pte_range,
copy_page_range), with arch/x86/mm/fault.c's access checks
(access_error, bad_area) and the rmap counting of mm/rmap.c.

The dispatch a fault goes through:

    handle_mm_fault -> __handle_mm_fault (allocate the PUD, PMD, PTE tables)
      -> handle_pte_fault
           pte none, anonymous VMA   -> do_anonymous_page   (read: zero page; write: new page)
           pte none, file VMA        -> do_fault
                read                 -> do_read_fault (do_fault_around, then filemap_fault)
                write, private       -> do_cow_fault
                write, shared        -> do_shared_fault
           write to a read-only pte  -> do_wp_page
                shared mapping       -> wp_page_shared
                exclusive anon page  -> wp_page_reuse
                otherwise            -> wp_page_copy

Each handler returns a VM_FAULT_* mask; the names of the handlers a fault
took are collected on its VmFault (vmf.path), so a figure can draw them.

File faults go through the page cache (mm/filemap.py): ->fault is
filemap_fault (with read-around and readahead, mm/readahead.py) for
disk files and shmem_fault for tmpfs; do_read_fault first maps the
uptodate cached pages around the fault (filemap_map_pages).  When
->fault drops the mmap lock to wait for I/O it returns VM_FAULT_RETRY
and do_fault takes the fault again (retry_fault says how it is counted);
vmf.path shows the try that completed it.

Page references (glossary: pfn a frame, pte an entry, vma a mapping):
- an anonymous page: refcount = mapcount = the PTEs that map it; PG_anon;
- a page-cache page: refcount = 1 (the cache) + the PTEs that map it;
- the zero page (m.zero_pfn): a reserved frame of the kernel image,
  mapped with _PAGE_SPECIAL and never counted (vm_normal_page is NULL).

Contents: m.page_contents maps a pfn to a bytearray of its 4096 bytes, made
when a load or store (p.load, p.store, glibc's headers) first reaches the
page through the TLB; every other page reads as zeros.  Loads and stores go
through a software TLB per mm (mm.tlb, see tlb_fill), which every change to
a present PTE must flush.

Transparent huge pages (m.thp_enabled, "madvise" by default): a fault in
an aligned 2 MiB range of an eligible anonymous VMA whose PMD is empty
takes one fault for the whole range (do_huge_pmd_anonymous_page): a read
maps the huge zero page, a write a new 2 MiB page.  NOTE: mmlab maps the
2 MiB with 512 PTEs (a PMD leaf would need every walker to know leaves)
and remembers, per mm, which ranges Linux would map with one PMD
(mm.thp_ranges); every fault count, frame and split follows that record,
so pagemap and getrusage agree with Linux, but the page is split into
order-0 pages at once (per-page reference counts) and the PTE table is
the one Linux deposits.

NOTE: not modelled here: swap, NUMA, userfaultfd, page_mkwrite's filesystem
work (only its effect: the page turns dirty), and the OOM killer (an
allocation that fails makes the access raise MemoryError).
"""
import numpy as np

from ..arch import PAGE_SHIFT, PAGE_SIZE
from ..errors import (KernelBug, InvariantError, SegmentationFault, SEGV_MAPERR, SEGV_ACCERR, SI_KERNEL,
                      BusError, BUS_ADRERR)
from ..trace import traced, note
from ..uapi import (GFP_HIGHUSER_MOVABLE, GFP_TRANSHUGE, GFP_TRANSHUGE_LIGHT, __GFP_ZERO, __GFP_COMP,
                    __GFP_MOVABLE)
from . import page_alloc, pgtable, filemap
from .page_alloc import (PG_anon, PG_lru, PG_swapbacked, PG_dirty, PG_uptodate, PG_referenced,
                         PG_mlocked, FRAME_RESERVED)
from .pgtable import (_PAGE_PRESENT, _PAGE_RW, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_SPECIAL,
                      _PAGE_PROTNONE, _PAGE_SOFT_DIRTY, PTE_PFN_MASK, PTRS_PER_PTE, pte_pfn,
                      pte_none, pte_present, pte_write, pfn_pte, pte_mkdirty,
                      pte_mkwrite, pte_mkyoung, pte_wrprotect, pte_modify, pte_mkold, pte_mkclean)
from .vma import (VM_READ, VM_WRITE, VM_EXEC, VM_SHARED, VM_MAYWRITE, VM_GROWSDOWN, VM_PFNMAP,
                  VM_IO, VM_MIXEDMAP, VM_HUGETLB,
                  VM_HUGEPAGE, VM_NOHUGEPAGE, anon_vma_prepare, expand_downwards)

# vm_fault_t (include/linux/mm_types.h)
VM_FAULT_OOM = 0x000001
VM_FAULT_SIGBUS = 0x000002
VM_FAULT_MAJOR = 0x000004
VM_FAULT_SIGSEGV = 0x000040
VM_FAULT_NOPAGE = 0x000100
VM_FAULT_LOCKED = 0x000200
VM_FAULT_RETRY = 0x000400
VM_FAULT_FALLBACK = 0x000800
VM_FAULT_DONE_COW = 0x001000
VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV

# enum fault_flag
FAULT_FLAG_WRITE = 1 << 0
FAULT_FLAG_TRIED = 1 << 5
FAULT_FLAG_USER = 1 << 6

# PG_anon_exclusive: this mm alone may write the anon page without a copy.
# NOTE: Linux keeps PageAnonExclusive in a page-flag bit it shares with
# PG_mappedtodisk; mmlab gives it a bit of its own.
PG_anon_exclusive = 1 << 27

USER_PAGE_FLAGS = (PG_anon | PG_anon_exclusive | PG_lru | PG_swapbacked | PG_dirty | PG_uptodate
                   | PG_referenced | PG_mlocked)

FAULT_AROUND_BYTES = 65536            # /sys/kernel/debug/fault_around_bytes default
USER_TOP = 1 << 47                    # the end of the user half (4-level paging)

_PRESENT_BITS = np.uint64(_PAGE_PRESENT | _PAGE_PROTNONE)
_RW = np.uint64(_PAGE_RW)


def memory_init(m):
    """Boot: the zero page, the page-contents store and this file's invariant check.

    empty_zero_page sits in the kernel image's bss: a reserved frame, never
    allocated or freed, shared by every read of untouched anonymous memory.
    """
    m.zero_pfn = pgtable.INIT_TOP_PGT_PFN + 1
    if m.mem_map.state_[m.zero_pfn] != FRAME_RESERVED:
        raise KernelBug(f"memory_init: zero page {m.zero_pfn:#x} is not in the reserved image")
    m.page_contents = {}
    m.page_owner_file = {}              # cache pfn -> (file, index): the page's ->mapping, ->index
    m.fault_around_bytes = FAULT_AROUND_BYTES
    m.thp_pmd_maps = {}                 # THP head pfn -> PMD mappings (folio_entire_mapcount)
    m.checks.append(check)
    m.checks.append(check_tlb)


# -- the fault context ----------------------------------------------------------

class VmFault:
    """struct vm_fault: one fault being handled.

    `path` lists the handlers taken, in order, for display and tests.
    """

    __slots__ = ("vma", "address", "flags", "pgoff", "ptep", "orig_pte", "path", "machine", "ret")

    def __init__(self, vma, address, flags):
        self.vma = vma
        self.address = address & ~(PAGE_SIZE - 1)
        self.flags = flags
        self.pgoff = vma.vm_pgoff + ((self.address - vma.vm_start) >> PAGE_SHIFT)
        self.ptep = None
        self.orig_pte = 0
        self.path = []
        self.machine = vma.vm_mm.machine
        self.ret = 0

    @property
    def write(self):
        return bool(self.flags & FAULT_FLAG_WRITE)

    def __repr__(self):
        return f"<vm_fault {self.address:#x} {'write' if self.write else 'read'}: {' > '.join(self.path)}>"


def ensure_pgd(mm):
    """mm_alloc_pgd, done on first need: the mm's PGD; 0 or -ENOMEM.

    NOTE: Linux gives an mm its PGD when the mm is made (mm_init); mmlab
    waits for the first fault so that address spaces nobody touches cost
    no table pages.
    """
    if mm.pgd is not None:
        return 0
    return pgtable.mm_alloc_pgd(mm)


# -- page references (mm/rmap.c, include/linux/mm.h) ---------------------------

def get_page(m, pfn):
    m.mem_map.refcount_[pfn] += 1


def put_page(m, pfn):
    """folio_put: drop a reference; the last one frees the page and forgets its contents."""
    mem = m.mem_map
    if mem.refcount_[pfn] > 1:
        mem.refcount_[pfn] -= 1
        return
    mem.flags_[pfn] &= ~USER_PAGE_FLAGS
    m.page_contents.pop(pfn, None)
    page_alloc.free_pages(m, pfn, 0)


def folio_add_new_anon_rmap(m, pfn):
    """folio_add_new_anon_rmap + folio_add_lru_vma: a new anonymous page, mapped once, exclusive."""
    mem = m.mem_map
    mem.mapcount_[pfn] = 1
    mem.flags_[pfn] |= PG_anon | PG_anon_exclusive | PG_lru | PG_swapbacked
    m.node_stat["nr_anon_pages"] += 1


def folio_add_file_rmap(m, pfn):
    """folio_add_file_rmap_pte + get_page: one more PTE maps a cache page."""
    mem = m.mem_map
    mem.refcount_[pfn] += 1
    mem.mapcount_[pfn] += 1
    if mem.mapcount_[pfn] == 1:
        m.node_stat["nr_mapped"] += 1


def folio_remove_rmap(m, pfn):
    """folio_remove_rmap_pte: one PTE fewer maps the page; uncount it when the last goes."""
    mem = m.mem_map
    mem.mapcount_[pfn] -= 1
    if mem.mapcount_[pfn] == 0:
        if mem.flags_[pfn] & PG_anon:
            m.node_stat["nr_anon_pages"] -= 1
        else:
            m.node_stat["nr_mapped"] -= 1
    elif mem.mapcount_[pfn] < 0:
        raise KernelBug(f"folio_remove_rmap: pfn {pfn:#x} mapcount below 0")


def vm_normal_page(m, pte):
    """vm_normal_page: the page behind a present pte, or None for a special one (the zero page)."""
    return None if pte & _PAGE_SPECIAL else pte_pfn(pte)


def is_zero_pfn(m, pfn):
    return pfn == m.zero_pfn


def alloc_anon_page(vmf):
    """vma_alloc_zeroed_movable_folio: a zeroed order-0 page for user memory, or None."""
    return page_alloc.alloc_pages(vmf.machine, 0, GFP_HIGHUSER_MOVABLE | __GFP_ZERO)


def copy_user_page(m, dst, src):
    """copy_user_highpage: dst gets src's bytes (only stored contents need copying)."""
    data = m.page_contents.get(src)
    if data is not None:
        m.page_contents[dst] = bytearray(data)


# -- x86 fault entry (arch/x86/mm/fault.c) -------------------------------------

def access_error(write, vma):
    """access_error: may this access touch the VMA?  Writes need VM_WRITE, reads any access bit."""
    if write:
        return not vma.vm_flags & VM_WRITE
    return not vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC)


def lock_mm_and_find_vma(mm, address):
    """lock_mm_and_find_vma: the VMA covering address, growing a stack down to it; or None."""
    vma = mm.find_vma(address)
    if vma is None:
        return None
    if vma.vm_start <= address:
        return vma
    if not vma.vm_flags & VM_GROWSDOWN:
        return None
    if expand_downwards(vma, address):
        return None
    note(mm, "expand_stack: %r grows down to %#x", vma, address & ~(PAGE_SIZE - 1))
    return vma


def find_user_vma(mm, address, write):
    """do_user_addr_fault's checks: the VMA to fault in, or SegmentationFault (nothing changed).

    A non-canonical address (bits 63..47 not all equal) never reaches the
    page-fault handler: the CPU raises #GP, and exc_general_protection
    sends SIGSEGV as SI_KERNEL with address 0.
    """
    if address >> 47 not in (0, (1 << 17) - 1):
        raise SegmentationFault(0, SI_KERNEL, f"{address:#x} is not canonical: a general protection fault")
    vma = lock_mm_and_find_vma(mm, address)
    if vma is None:
        raise SegmentationFault(address, SEGV_MAPERR, "no mapping covers the address")
    if access_error(write, vma):
        raise SegmentationFault(address, SEGV_ACCERR,
                                f"{'write' if write else 'read'} to a {vma.perms} mapping")
    return vma


def mm_account_fault(p, ret):
    """mm_account_fault: charge a handled fault to the task (majflt or minflt)."""
    if ret & (VM_FAULT_RETRY | VM_FAULT_ERROR):
        return
    if ret & VM_FAULT_MAJOR:
        p.maj_flt += 1
    else:
        p.min_flt += 1


def raise_fault_error(vmf, ret):
    """mm_fault_error: what an error result becomes for the user."""
    if ret & VM_FAULT_OOM:
        raise MemoryError(f"page fault at {vmf.address:#x}: out of memory (the OOM killer would run)")
    if ret & VM_FAULT_SIGBUS:
        raise BusError(vmf.address, BUS_ADRERR, "no page behind the mapping")
    raise SegmentationFault(vmf.address, SEGV_ACCERR, "fault handler refused")


# -- handle_mm_fault --------------------------------------------------------------

@traced(fmt={"vma": repr, "address": hex})
def handle_mm_fault(vma, address, flags, p=None):
    """handle_mm_fault: resolve one fault at address in vma; returns the VmFault (ret, path).

    The caller checked the access (find_user_vma or GUP's check_vma_flags).
    The fault is charged to process p (the task that took it), as
    mm_account_fault does; vmf.ret carries the VM_FAULT_* mask.
    """
    vmf = VmFault(vma, address, flags)
    vmf.ret = __handle_mm_fault(vmf)
    if p is not None:
        mm_account_fault(p, vmf.ret)
    return vmf


def fault_result(vmf):
    return vmf.ret


def __handle_mm_fault(vmf):
    """__handle_mm_fault: walk down to the PTE, allocating tables, then handle_pte_fault."""
    mm = vmf.vma.vm_mm
    if ensure_pgd(mm):
        return VM_FAULT_OOM
    if thp_vma_allowable(vmf.vma, vmf.address) and pmd_is_none(mm, vmf.address):
        # An empty PMD in an eligible range: one fault for 2 MiB.
        ret = do_huge_pmd_anonymous_page(vmf)
        if not ret & VM_FAULT_FALLBACK:
            return ret
    ptep = pgtable.pte_alloc_map(mm, vmf.address)
    if ptep is None:
        return VM_FAULT_OOM
    vmf.ptep = ptep
    vmf.orig_pte = pgtable.ptep_get(mm, ptep)
    return handle_pte_fault(vmf)


def handle_pte_fault(vmf):
    """handle_pte_fault: dispatch on the entry found and the kind of access."""
    vmf.path.append("handle_pte_fault")
    pte = vmf.orig_pte
    if pte_none(pte):
        # Nothing mapped yet: anonymous memory or a file page.
        if vmf.vma.is_anonymous():
            return do_anonymous_page(vmf)
        return do_fault(vmf)
    if not pte_present(pte):
        raise KernelBug(f"handle_pte_fault: swap entry {pte:#x} (no swap is modelled)")
    if vmf.write and not pte_write(pte):
        # A write to a read-only entry: copy-on-write, or dirty tracking.
        return do_wp_page(vmf)
    # A spurious fault (another thread fixed it): only the young/dirty bits change.
    pte = pte_mkyoung(pte)
    if vmf.write:
        pte = pte_mkdirty(pte)
    pgtable.set_entry(vmf.vma.vm_mm, vmf.ptep, pte)
    return 0


def set_pte(vmf, pte):
    pgtable.set_pte_at(vmf.vma.vm_mm, vmf.address, vmf.ptep, pte)


@traced(fmt={"vmf": repr})
def do_anonymous_page(vmf):
    """do_anonymous_page: first touch of anonymous memory.

    A read maps the shared zero page read-only (special, uncounted); a write
    gives the VMA an anon_vma, allocates a zeroed page and maps it writable
    and dirty.  Returns 0 or VM_FAULT_OOM.
    """
    vmf.path.append("do_anonymous_page")
    vma, m = vmf.vma, vmf.machine
    if vma.vm_flags & VM_SHARED:
        return VM_FAULT_SIGBUS          # shared anonymous memory is shmem, never here
    if not vmf.write:
        note(vma, "do_anonymous_page: read maps the zero page")
        set_pte(vmf, pgtable.pte_mkspecial(pfn_pte(m.zero_pfn, vma.vm_page_prot)))
        return 0
    anon_vma_prepare(vma)
    pfn = alloc_anon_page(vmf)
    if pfn is None:
        return VM_FAULT_OOM
    folio_add_new_anon_rmap(m, pfn)
    pte = pfn_pte(pfn, vma.vm_page_prot)
    if vma.vm_flags & VM_WRITE:
        pte = pte_mkwrite(pte_mkdirty(pte))
    set_pte(vmf, pte)
    return 0


def do_fault(vmf):
    """do_fault: a file page (or shmem) not yet mapped: read, private write or shared write.

    When ->fault dropped the mmap lock for I/O (VM_FAULT_RETRY), the fault
    is taken again, as do_user_addr_fault does; see retry_fault for how
    the retry is counted.
    """
    vma = vmf.vma
    if vma.vm_file is None or vma.vm_flags & (VM_PFNMAP | VM_IO | VM_HUGETLB):
        vmf.path.append("do_fault")
        note(vma, "do_fault: %r has no ->fault", vma)
        return VM_FAULT_SIGBUS
    filemap.cpu(vmf.machine, filemap.FAULT_NS)
    attempt = 1
    depth = len(vmf.path)
    while True:
        ret = do_fault_once(vmf)
        if not ret & VM_FAULT_RETRY:
            break
        retry_fault(vmf, ret, attempt)
        del vmf.path[depth:]            # vmf.path shows the try that completed the fault
        attempt += 1
    if vmf.flags & FAULT_FLAG_TRIED:
        ret |= VM_FAULT_MAJOR           # mm_account_fault: a fault retried with FAULT_FLAG_TRIED is major
    return ret


def do_fault_once(vmf):
    """One try of do_fault's dispatch."""
    if not vmf.write:
        return do_read_fault(vmf)
    if not vmf.vma.vm_flags & VM_SHARED:
        return do_cow_fault(vmf)
    return do_shared_fault(vmf)


def retry_fault(vmf, ret, attempt):
    """do_user_addr_fault's retry after VM_FAULT_RETRY: the fault is taken again from the top.

    x86 first tries under the per-VMA lock; a retry from there goes on
    under the mmap lock and gets FAULT_FLAG_TRIED only if the first try
    was VM_FAULT_MAJOR (a page-cache miss); any later retry gets it.
    mm_account_fault counts a fault major if its last try returned
    VM_FAULT_MAJOR or had FAULT_FLAG_TRIED: so a fault that started async
    readahead or slept on a page already being read is minor, one that
    missed the cache is major.
    NOTE: GUP (populate, mlock) retries always with FAULT_FLAG_TRIED in
    Linux; mmlab's GUP faults take the user path and its rule.
    """
    if attempt > 1 or ret & VM_FAULT_MAJOR:
        vmf.flags |= FAULT_FLAG_TRIED
    note(vmf.vma, "do_fault: VM_FAULT_RETRY, try %d%s", attempt + 1,
         " with FAULT_FLAG_TRIED" if vmf.flags & FAULT_FLAG_TRIED else "")
    vmf.orig_pte = pgtable.ptep_get(vmf.vma.vm_mm, vmf.ptep)


def vma_file(vma):
    """The inode (fs File) behind a VMA's open file."""
    return vma.vm_file.file


def do_fault_around_window(vmf):
    """The [from, to] PTE indexes do_fault_around maps: fault_around_bytes, aligned, clipped.

    The window is aligned to its size inside the page table and never
    leaves the VMA or the page table.
    """
    nr_pages = vmf.machine.fault_around_bytes >> PAGE_SHIFT
    pte_off = pgtable.pte_index(vmf.address)
    vma_off = vmf.pgoff - vmf.vma.vm_pgoff
    from_pte = max(pte_off & ~(nr_pages - 1), pte_off - min(pte_off, vma_off))
    to_pte = min(from_pte + nr_pages, PTRS_PER_PTE, pte_off + vmf.vma.pages - vma_off) - 1
    return from_pte, to_pte


@traced(fmt={"vmf": repr})
def do_fault_around(vmf):
    """do_fault_around + filemap_map_pages: map the cached pages around the fault, read-only.

    Only pages in the page cache, uptodate, not locked, not marked
    PG_readahead and inside the file are mapped (next_uptodate_folio),
    and only where the PTE is empty.  Each page found counts as a hit
    against the file's mmap_miss.  Returns VM_FAULT_NOPAGE if the faulting
    page itself was mapped (no ->fault needed), else 0.
    """
    vma, m = vmf.vma, vmf.machine
    file = vma_file(vma)
    from_pte, to_pte = do_fault_around_window(vmf)
    pte_off = pgtable.pte_index(vmf.address)
    first = vmf.pgoff - pte_off                 # the file index of PTE slot 0
    if filemap_map_pmd(vmf, first + from_pte):
        return VM_FAULT_NOPAGE
    mem = m.mem_map
    flags, refcount, mapcount = mem.flags_, mem.refcount_, mem.mapcount_
    table = m.page_tables[vmf.ptep[0]]
    prot = vma.vm_page_prot
    ret = mapped = hits = newly = 0
    for slot, pfn in filemap.next_uptodate_pages(file, first + from_pte, first + to_pte, from_pte):
        if not flags[pfn] & filemap.PG_workingset:
            hits += 1
        if table[slot]:
            continue
        # folio_add_file_rmap_pte + folio_ref_inc, then set_pte_range.
        refcount[pfn] += 1
        mapcount[pfn] += 1
        newly += mapcount[pfn] == 1
        table[slot] = (pfn << PAGE_SHIFT) | prot
        mapped += 1
        if slot == pte_off:
            ret = VM_FAULT_NOPAGE
    m.node_stat["nr_mapped"] += newly
    if not filemap.is_shmem(file):
        filemap.mmap_miss_account(vma.vm_file, hits)
    note(vma, "do_fault_around: ptes %d..%d, %d cached pages mapped", from_pte, to_pte, mapped)
    return ret


def filemap_map_pmd(vmf, start_pgoff):
    """filemap_map_pmd + do_set_pmd: a PMD-size folio at the fault-around start is mapped whole.

    Needs an empty PMD, the VMA to hold the aligned 2 MiB with matching
    file alignment (thp_vma_suitable_order) and no VM_NOHUGEPAGE.
    NOTE: mmlab maps the folio's 512 pages with 512 PTEs of an otherwise
    empty table (a PMD leaf would need every page-table walker to know
    leaves); faults, mincore and the rmap counts are Linux's.
    """
    found = filemap.pmd_mappable_folio(vma_file(vmf.vma), start_pgoff)
    return found is not None and do_set_pmd(vmf, *found)


def do_set_pmd(vmf, head, pfns):
    """do_set_pmd: map a PMD-size file folio (first index head, its pages pfns) whole; True if done."""
    vma, m = vmf.vma, vmf.machine
    if vma.vm_flags & VM_NOHUGEPAGE:
        return False
    haddr = vmf.address & PMD_MASK
    if haddr < vma.vm_start or haddr + PMD_SIZE > vma.vm_end:
        return False
    if vma.vm_start + ((head - vma.vm_pgoff) << PAGE_SHIFT) != haddr:
        return False                            # the file's 2 MiB is not the VMA's 2 MiB
    table = m.page_tables[vmf.ptep[0]]
    if np.any(table):
        return False                            # pmd_none: no PTE in use under this PMD
    arr = np.asarray(pfns, dtype=np.int64)
    mem = m.mem_map
    mem.refcount[arr] += 1
    mem.mapcount[arr] += 1
    m.node_stat["nr_mapped"] += int(np.count_nonzero(mem.mapcount[arr] == 1))
    table[:] = (arr.astype(np.uint64) << np.uint64(PAGE_SHIFT)) | np.uint64(vma.vm_page_prot)
    note(vma, "filemap_map_pmd: %s[%d..%d] mapped whole at %#x", vma_file(vma).path, head,
         head + len(pfns) - 1, haddr)
    return True


def should_fault_around(vmf):
    """should_fault_around: the file maps pages in bulk (->map_pages) and the window exceeds a page."""
    return vmf.machine.fault_around_bytes >> PAGE_SHIFT > 1


def do_page_fault_file(vmf):
    """__do_fault: vma->vm_ops->fault for vmf.pgoff; (pfn, ret), pfn None with VM_FAULT_RETRY or an error.

    The path records which ->fault ran: shmem_fault (tmpfs, shared
    anonymous memory: it allocates a zeroed page for a hole) or
    filemap_fault (a disk file: the page cache, reading it in if needed).
    """
    vmf.path.append("shmem_fault" if filemap.is_shmem(vma_file(vmf.vma)) else "filemap_fault")
    return filemap.vma_fault(vmf)


@traced(fmt={"vmf": repr})
def do_read_fault(vmf):
    """do_read_fault: fault-around first; if that missed the page, ->fault and map it read-only."""
    vmf.path.append("do_read_fault")
    if should_fault_around(vmf):
        vmf.path.append("do_fault_around")
        if do_fault_around(vmf):
            return 0
    pfn, ret = do_page_fault_file(vmf)
    if pfn is None:
        return ret
    return ret | finish_fault(vmf, pfn)


def finish_fault(vmf, pfn):
    """finish_fault / set_pte_range: map the cache page; a write fault maps it dirty and writable.

    A read of a page in a PMD-size folio under an empty PMD maps the whole
    folio (do_set_pmd).
    """
    vma, m = vmf.vma, vmf.machine
    if not pte_none(pgtable.ptep_get(vma.vm_mm, vmf.ptep)):
        return VM_FAULT_NOPAGE              # fault-around or a racing fault mapped it already
    if not vmf.write and m.mem_map.folio_order_[pfn] | m.mem_map.folio_off_[pfn]:
        found = filemap.pmd_folio_of(vma_file(vma), vmf.pgoff, pfn)
        if found is not None and do_set_pmd(vmf, *found):
            return 0
    folio_add_file_rmap(m, pfn)
    pte = pfn_pte(pfn, vma.vm_page_prot)
    if vmf.write:
        pte = pte_mkdirty(pte)
        if vma.vm_flags & VM_WRITE:
            pte = pte_mkwrite(pte)
    set_pte(vmf, pte)
    return 0


@traced(fmt={"vmf": repr})
def do_cow_fault(vmf):
    """do_cow_fault: a write to a private file page: copy the cache page into a new anonymous one.

    Steps: anon_vma_prepare; allocate the copy; ->fault for the cache page
    (a major fault if it came from disk); copy; map the copy writable;
    drop the cache page's fault reference.
    """
    vmf.path.append("do_cow_fault")
    vma, m = vmf.vma, vmf.machine
    anon_vma_prepare(vma)
    new = alloc_anon_page(vmf)
    if new is None:
        return VM_FAULT_OOM
    src, ret = do_page_fault_file(vmf)
    if src is None:
        page_alloc.free_pages(m, new, 0)        # an error, or VM_FAULT_RETRY: try again from the top
        return ret
    copy_user_page(m, new, src)
    folio_add_new_anon_rmap(m, new)
    pte = pte_mkwrite(pte_mkdirty(pfn_pte(new, vma.vm_page_prot)))
    set_pte(vmf, pte)
    return ret | VM_FAULT_DONE_COW


@traced(fmt={"vmf": repr})
def do_shared_fault(vmf):
    """do_shared_fault: a write to a shared file page: map the cache page itself, dirty.

    A filesystem that tracks dirty pages (->page_mkwrite, ext4) hears of
    the write first; fault_dirty_shared_page marks the page dirty.
    """
    vmf.path.append("do_shared_fault")
    pfn, ret = do_page_fault_file(vmf)
    if pfn is None:
        return ret
    if vmf.vma.vm_ops.page_mkwrite:
        vmf.path.append("do_page_mkwrite")
    ret |= finish_fault(vmf, pfn)
    fault_dirty_shared_page(vmf, pfn)
    return ret


def fault_dirty_shared_page(vmf, pfn):
    """fault_dirty_shared_page: the page is dirty now (folio_mark_dirty: writeback will see it)."""
    from . import page_writeback
    file, index = vmf.machine.page_owner_file[pfn]
    if page_writeback.folio_mark_dirty(vmf.machine, file, index, pfn):
        note(vmf.vma, "fault_dirty_shared_page: %s[%d] dirty", file.path, index)


# -- write-protect faults ------------------------------------------------------

@traced(fmt={"vmf": repr})
def do_wp_page(vmf):
    """do_wp_page: a write to a present, read-only entry.

    Shared mappings make the page writable (wp_page_shared); an anonymous
    page only this mm maps is reused (wp_page_reuse); everything else, the
    zero page and file pages of private mappings included, is copied
    (wp_page_copy).
    """
    vmf.path.append("do_wp_page")
    vma, m = vmf.vma, vmf.machine
    ranges = getattr(vma.vm_mm, "thp_ranges", None)
    haddr = vmf.address & PMD_MASK
    if ranges and haddr in ranges:
        # A PMD-mapped THP (or the huge zero page): wp_huge_pmd first.
        if not do_huge_pmd_wp_page(vmf, haddr, ranges[haddr]) & VM_FAULT_FALLBACK:
            return 0
    pfn = vm_normal_page(m, vmf.orig_pte)
    if vma.vm_flags & VM_SHARED:
        # Shared mapping: the page is the file's; only dirty tracking is left.
        return wp_page_shared(vmf, pfn)
    if pfn is not None and m.mem_map.flags_[pfn] & PG_anon and wp_can_reuse_anon_folio(m, pfn):
        # Exclusive anonymous page: nobody else can see a write, so write in place.
        m.mem_map.flags_[pfn] |= PG_anon_exclusive
        return wp_page_reuse(vmf)
    # Zero page, a file page of a private mapping, or an anon page shared since fork.
    return wp_page_copy(vmf, pfn)


def wp_can_reuse_anon_folio(m, pfn):
    """wp_can_reuse_anon_folio: exclusive already, or our reference is the only one left."""
    mem = m.mem_map
    return bool(mem.flags_[pfn] & PG_anon_exclusive) or mem.refcount_[pfn] == 1


def wp_page_reuse(vmf):
    """wp_page_reuse: make the entry writable, young and dirty; no copy."""
    vmf.path.append("wp_page_reuse")
    pte = pte_mkwrite(pte_mkdirty(pte_mkyoung(vmf.orig_pte)))
    pgtable.set_entry(vmf.vma.vm_mm, vmf.ptep, pte)
    note(vmf.vma, "wp_page_reuse: %#x written in place", vmf.address)
    return 0


def wp_page_shared(vmf, pfn):
    """wp_page_shared: ->page_mkwrite if the filesystem has one, then reuse and mark dirty."""
    vmf.path.append("wp_page_shared")
    ret = wp_page_reuse(vmf)
    if pfn is not None and pfn in vmf.machine.page_owner_file:
        fault_dirty_shared_page(vmf, pfn)
    return ret


def wp_page_copy(vmf, old):
    """wp_page_copy: give this mapping its own copy of the page.

    High level logic flow:
    - anon_vma_prepare; allocate a page (zeroed for the zero page, else a copy);
    - map the new page writable and dirty in place of the old entry;
    - drop the old page's mapping and reference (none for the zero page).
    """
    vmf.path.append("wp_page_copy")
    vma, m = vmf.vma, vmf.machine
    anon_vma_prepare(vma)
    new = alloc_anon_page(vmf)
    if new is None:
        return VM_FAULT_OOM
    if old is not None:
        copy_user_page(m, new, old)
    folio_add_new_anon_rmap(m, new)
    pte = pte_mkwrite(pte_mkdirty(pte_mkyoung(pfn_pte(new, vma.vm_page_prot))))
    pgtable.set_entry(vma.vm_mm, vmf.ptep, pte)
    flush_tlb_page(vma.vm_mm, vmf.address)          # ptep_clear_flush: the old page may be cached
    if old is not None:
        folio_remove_rmap(m, old)
        put_page(m, old)
    note(vma, "wp_page_copy: %#x gets pfn %#x (was %s)", vmf.address, new,
         "the zero page" if old is None else f"pfn {old:#x}")
    return 0


# -- transparent huge pages (mm/huge_memory.c) ---------------------------------------

HPAGE_PMD_NR = PTRS_PER_PTE
PMD_SIZE = pgtable.PMD_SIZE
PMD_MASK = pgtable.PMD_MASK


def thp_ranges(mm):
    """The 2 MiB ranges Linux would map with a PMD: haddr -> head pfn (None: the huge zero page)."""
    r = getattr(mm, "thp_ranges", None)
    if r is None:
        r = mm.thp_ranges = {}
    return r


def thp_vma_allowed(vma):
    """thp_vma_allowable_order's VMA half: anonymous private, and the sysfs mode allows it."""
    f = vma.vm_flags
    mode = vma.vm_mm.machine.thp_enabled
    if not vma.is_anonymous() or f & (VM_SHARED | VM_NOHUGEPAGE) or mode == "never":
        return False
    return mode == "always" or bool(f & VM_HUGEPAGE)


def thp_vma_allowable(vma, addr):
    """thp_vma_allowable_order: the VMA allows THP and holds the whole aligned 2 MiB around addr."""
    haddr = addr & PMD_MASK
    return thp_vma_allowed(vma) and haddr >= vma.vm_start and haddr + PMD_SIZE <= vma.vm_end


def pmd_is_none(mm, addr):
    """pmd_none(*pmd): no PTE table (and no huge mapping) under the PMD entry for addr."""
    pmdp = pgtable.lookup_pmd(mm, addr)
    return pmdp is None or not pgtable.ptep_get(mm, pmdp)


def thp_gfp(vma):
    """vma_thp_gfp_mask under defrag=madvise: direct reclaim only for MADV_HUGEPAGE VMAs.

    NOTE: without __GFP_COMP: mmlab splits the block into order-0 pages at once.
    """
    gfp = GFP_TRANSHUGE if vma.vm_flags & VM_HUGEPAGE else GFP_TRANSHUGE_LIGHT
    return (gfp & ~__GFP_COMP) | __GFP_ZERO


def get_huge_zero_page(m):
    """mm_get_huge_zero_folio: the huge zero page, allocated on first use; its pfn or None."""
    pfn = getattr(m, "huge_zero_pfn", None)
    if pfn is None:
        pfn = page_alloc.alloc_pages(m, 9, (GFP_TRANSHUGE | __GFP_ZERO) & ~(__GFP_MOVABLE | __GFP_COMP))
        if pfn is None:
            return None
        m.huge_zero_pfn = pfn
    return pfn


def is_huge_zero_pfn(m, pfn):
    z = getattr(m, "huge_zero_pfn", None)
    return z is not None and z <= pfn < z + HPAGE_PMD_NR


def map_pmd_range(vmf, haddr, values):
    """Write the 512 entries of [haddr, haddr+2 MiB) (the stand-in for one PMD leaf)."""
    mm = vmf.vma.vm_mm
    pfn, i = pgtable.pte_offset_map(mm, pgtable.lookup_pmd(mm, haddr), haddr)
    vmf.machine.page_tables[pfn][i:i + HPAGE_PMD_NR] = values
    flush_tlb_range(mm, haddr, haddr + PMD_SIZE)


def alloc_thp(vmf):
    """vma_alloc_folio(order 9): a zeroed 2 MiB block, split into 512 anonymous pages; head pfn or None."""
    m = vmf.machine
    head = page_alloc.alloc_pages(m, 9, thp_gfp(vmf.vma))
    if head is None:
        return None
    page_alloc.split_page(m, head, 9)
    mem = m.mem_map
    mem.mapcount[head:head + HPAGE_PMD_NR] = 1
    mem.flags[head:head + HPAGE_PMD_NR] |= np.uint32(PG_anon | PG_anon_exclusive | PG_lru | PG_swapbacked)
    m.node_stat["nr_anon_pages"] += HPAGE_PMD_NR
    return head


def thp_pmd_map(m, mm, haddr, head):
    """Record a PMD mapping of a THP (NR_ANON_THPS counts THPs mapped by at least one PMD)."""
    thp_ranges(mm)[haddr] = head
    if head is not None:
        maps = m.thp_pmd_maps
        maps[head] = maps.get(head, 0) + 1
        if maps[head] == 1:
            m.node_stat["nr_anon_transparent_hugepages"] += 1


def split_huge_pmd(m, mm, haddr):
    """__split_huge_pmd: the 2 MiB range is mapped by PTEs from now on."""
    head = thp_ranges(mm).pop(haddr)
    note(mm, "split_huge_pmd: %#x", haddr)
    if head is not None:
        maps = m.thp_pmd_maps
        maps[head] -= 1
        if not maps[head]:
            del maps[head]
            m.node_stat["nr_anon_transparent_hugepages"] -= 1


def split_huge_pmds(mm, start, end, keep_whole=False):
    """split_huge_pmd on every THP range [start, end) overlaps (keep_whole: only partial overlaps)."""
    ranges = getattr(mm, "thp_ranges", None)
    if not ranges:
        return
    for haddr in [h for h in ranges if h < end and h + PMD_SIZE > start]:
        if keep_whole and start <= haddr and haddr + PMD_SIZE <= end:
            continue
        split_huge_pmd(mm.machine, mm, haddr)


def vma_adjust_trans_huge(mm, addr):
    """vma_adjust_trans_huge: a VMA is cut at addr; a THP range straddling the cut is split."""
    if addr & ~PMD_MASK:
        split_huge_pmds(mm, addr, addr + 1)


def thp_pte_values(pfn, prot):
    return (np.arange(pfn, pfn + HPAGE_PMD_NR, dtype=np.uint64) << np.uint64(PAGE_SHIFT)) | np.uint64(prot)


@traced(fmt={"vmf": repr})
def do_huge_pmd_anonymous_page(vmf):
    """do_huge_pmd_anonymous_page: the first fault in an empty, eligible 2 MiB range.

    A read maps the huge zero page (use_zero_page is 1), a write a new
    zeroed 2 MiB page, in one fault.  VM_FAULT_FALLBACK when no 2 MiB block
    is free: the fault is retried with 4 KiB pages.
    """
    vmf.path.append("do_huge_pmd_anonymous_page")
    vma, m = vmf.vma, vmf.machine
    mm = vma.vm_mm
    haddr = vmf.address & PMD_MASK
    anon_vma_prepare(vma)
    if pgtable.walk_alloc(mm, haddr) is None or pgtable.pte_alloc_map(mm, haddr) is None:
        return VM_FAULT_OOM                 # (the table Linux deposits beside the PMD)
    if not vmf.write:
        zero = get_huge_zero_page(m)
        if zero is None:
            return VM_FAULT_FALLBACK
        map_pmd_range(vmf, haddr, thp_pte_values(zero, pgtable.pte_mkspecial(vma.vm_page_prot)))
        thp_pmd_map(m, mm, haddr, None)
        note(vma, "do_huge_pmd_anonymous_page: huge zero page at %#x", haddr)
        return 0
    head = alloc_thp(vmf)
    if head is None:
        note(vma, "do_huge_pmd_anonymous_page: no 2 MiB block, fall back to 4 KiB")
        return VM_FAULT_FALLBACK
    prot = vma.vm_page_prot
    if vma.vm_flags & VM_WRITE:
        prot = pte_mkwrite(pte_mkdirty(prot))
    map_pmd_range(vmf, haddr, thp_pte_values(head, prot))
    thp_pmd_map(m, mm, haddr, head)
    note(vma, "do_huge_pmd_anonymous_page: THP %#x at %#x", head, haddr)
    return 0


def do_huge_pmd_wp_page(vmf, haddr, head):
    """do_huge_pmd_wp_page: a write to a read-only PMD mapping.

    The huge zero page is replaced by a new THP (do_huge_zero_wp_pmd); a
    THP nobody else maps is reused whole; anything else is split and the
    4 KiB page copied.  Returns VM_FAULT_FALLBACK when the 4 KiB path must go on.
    """
    vmf.path.append("do_huge_pmd_wp_page")
    vma, m = vmf.vma, vmf.machine
    mm = vma.vm_mm
    if head is None:
        new = alloc_thp(vmf)
        if new is not None:
            split_huge_pmd(m, mm, haddr)
            prot = pte_mkwrite(pte_mkdirty(vma.vm_page_prot))
            map_pmd_range(vmf, haddr, thp_pte_values(new, prot))
            thp_pmd_map(m, mm, haddr, new)
            note(vma, "do_huge_zero_wp_pmd: THP %#x replaces the huge zero page", new)
            return 0
        # __split_huge_zero_page_pmd: the small zero page in each PTE, then the 4 KiB path.
        split_huge_pmd(m, mm, haddr)
        zero = pgtable.pte_mkspecial(pfn_pte(m.zero_pfn, vma.vm_page_prot))
        map_pmd_range(vmf, haddr, np.full(HPAGE_PMD_NR, zero, dtype=np.uint64))
        vmf.orig_pte = zero
        return VM_FAULT_FALLBACK
    mem = m.mem_map
    if np.all(mem.refcount[head:head + HPAGE_PMD_NR] == 1):
        ptes = pgtable.get_ptes(mm, haddr, haddr + PMD_SIZE)
        ptes |= np.uint64(_PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_SOFT_DIRTY)
        map_pmd_range(vmf, haddr, ptes)
        mem.flags[head:head + HPAGE_PMD_NR] |= np.uint32(PG_anon_exclusive)
        note(vma, "do_huge_pmd_wp_page: THP %#x reused", head)
        return 0
    split_huge_pmd(m, mm, haddr)
    return VM_FAULT_FALLBACK


# -- user accesses: the MMU, then the fault handler --------------------------------

def pte_fault_needed(ptes, write):
    """Which entries the MMU refuses (a numpy mask): not present, or read-only for a write."""
    present = (ptes & np.uint64(_PAGE_PRESENT)) != 0
    if write:
        return ~present | ((ptes & _RW) == 0)
    return ~present


def mmu_access(mm, start, end, write):
    """What the MMU does on accesses that do not fault: set accessed (and dirty) in the entries."""
    bits = _PAGE_ACCESSED | (_PAGE_DIRTY if write else 0)
    tables = mm.machine.page_tables
    for pfn, i, j, _ in pgtable.pte_tables(mm, start, end):
        if pfn is None:
            continue
        t = tables[pfn][i:j]
        ok = (t & np.uint64(_PAGE_PRESENT)) != 0
        if write:
            ok &= (t & _RW) != 0
        t[ok] |= np.uint64(bits)


def fault_in_page(p, vma, addr, write):
    """One fault, as do_user_addr_fault takes it: handle, charge, turn errors into signals."""
    vmf = handle_mm_fault(vma, addr, FAULT_FLAG_USER | (FAULT_FLAG_WRITE if write else 0), p)
    ret = fault_result(vmf)
    if ret & VM_FAULT_ERROR:
        raise_fault_error(vmf, ret)
    return vmf


def user_access(p, addr, length, write):
    """Touch every page of [addr, addr+length) in order, as a program's loads or stores would.

    Pages whose entries allow the access take no fault; the others fault,
    one fault per page (fewer where fault-around maps pages ahead).  A bad
    access raises SegmentationFault after the pages before it were touched.
    Returns the number of faults taken.
    """
    mm = p.mm
    start = addr & ~(PAGE_SIZE - 1)
    end = (addr + length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    before = p.min_flt + p.maj_flt
    a = start
    while a < end:
        vma = find_user_vma(mm, a, write)
        stop = min(end, vma.vm_end)
        access_vma_range(p, vma, a, stop, write)
        a = stop
    return p.min_flt + p.maj_flt - before


def access_vma_range(p, vma, start, end, write):
    """The pages of [start, end) inside one VMA, accessed in order.

    The vectorised path: the entries are read with one numpy operation;
    empty entries of a plain anonymous VMA are filled in bulk (zero page
    for reads, new pages for writes), one fault charged per page, which is
    what Linux takes for order-0 anonymous memory; the rest fault page by
    page through handle_mm_fault.
    """
    mm = vma.vm_mm
    if ensure_pgd(mm):
        raise MemoryError("out of memory for a PGD")
    ptes = pgtable.get_ptes(mm, start, end)
    need = pte_fault_needed(ptes, write)
    if need.any():
        idx = np.flatnonzero(need)
        if vma.is_anonymous() and not vma.vm_flags & VM_SHARED and not thp_vma_allowed(vma):
            none = idx[ptes[idx] == 0]
            if len(none) > 1:
                anon_fault_bulk(p, vma, start, none, write)
                ptes = pgtable.get_ptes(mm, start, end)
                idx = np.flatnonzero(pte_fault_needed(ptes, write))
        for i in idx.tolist():
            a = start + (i << PAGE_SHIFT)
            pte = pgtable_get_one(mm, a)
            if pte & _PAGE_PRESENT and (not write or pte & _PAGE_RW):
                continue                    # fault-around mapped it already
            fault_in_page(p, vma, a, write)
    mmu_access(mm, start, end, write)


def pgtable_get_one(mm, addr):
    pmdp = pgtable.lookup_pmd(mm, addr)
    if pmdp is None:
        return 0
    pmd = pgtable.ptep_get(mm, pmdp)
    if not pmd:
        return 0
    return int(mm.machine.page_tables[pte_pfn(pmd)][pgtable.pte_index(addr)])


@traced(fmt={"vma": repr, "start": hex}, result=None)
def anon_fault_bulk(p, vma, start, idx, write):
    """do_anonymous_page for many empty entries of one anonymous VMA at once.

    The same result as len(idx) faults one after another: reads map the
    zero page, writes get zeroed pages (alloc_pages_bulk), each a minor
    fault.  NOTE: a vectorised shortcut of mmlab's; Linux takes each fault
    on its own.  Out of memory: the pages allocated so far are mapped,
    then MemoryError.
    """
    m, mm = vma.vm_mm.machine, vma.vm_mm
    n = len(idx)
    note(vma, "do_anonymous_page x%d (%s) from %#x", n, "write" if write else "read", start)
    if not write:
        pte = pgtable.pte_mkspecial(pfn_pte(m.zero_pfn, vma.vm_page_prot))
        set_sparse(mm, start, idx, np.full(n, pte, dtype=np.uint64))
        p.min_flt += n
        return
    anon_vma_prepare(vma)
    pfns = []
    while len(pfns) < n:
        got = page_alloc.alloc_pages_bulk(m, GFP_HIGHUSER_MOVABLE | __GFP_ZERO, n - len(pfns))
        if not got:
            break
        pfns.extend(got)
    k = len(pfns)
    arr = np.asarray(pfns, dtype=np.int64)
    mem = m.mem_map
    mem.mapcount[arr] = 1
    mem.flags[arr] |= np.uint32(PG_anon | PG_anon_exclusive | PG_lru | PG_swapbacked)
    m.node_stat["nr_anon_pages"] += k
    prot = vma.vm_page_prot
    if vma.vm_flags & VM_WRITE:
        prot = pte_mkwrite(pte_mkdirty(prot))
    values = (arr.astype(np.uint64) << np.uint64(PAGE_SHIFT)) | np.uint64(prot)
    set_sparse(mm, start, idx[:k], values)
    p.min_flt += k
    if k < n:
        raise MemoryError(f"page fault at {start + (int(idx[k]) << PAGE_SHIFT):#x}: out of memory")


def set_sparse(mm, start, idx, values):
    """Write entries at page indexes idx (relative to start), allocating tables on the way."""
    if not len(idx):
        return
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    base = start + (lo << PAGE_SHIFT)
    pieces = pgtable.pte_tables(mm, base, start + (hi << PAGE_SHIFT), alloc=True)
    if pieces is None:
        raise MemoryError("out of memory for page tables")
    tables = mm.machine.page_tables
    rel = idx - lo
    for pfn, i, j, addr in pieces:
        off = (addr - base) >> PAGE_SHIFT
        sel = (rel >= off) & (rel < off + j - i)
        if sel.any():
            tables[pfn][i + rel[sel] - off] = values[sel]


# -- the TLB and contents: loads and stores ---------------------------------------
#
# A software TLB per mm (mm.tlb: vpn -> TlbEntry), as the CPU keeps one per
# address space: a load or store whose page is in it touches neither the
# page tables nor the fault handler.  An entry is made by a walk that
# succeeded (faulting first if it must), only once the walk has set the
# entry's accessed bit, and for a store its dirty bit; it says whether
# stores may use it (the PTE was writable and already dirty).  Whoever
# changes or removes a present PTE must flush the page from the TLB
# (flush_tlb_range, flush_tlb_page, flush_tlb_mm), as Linux's
# ptep_clear_flush and tlb_finish_mmu do; check_tlb proves in m.check()
# that every entry still agrees with the page tables.
#
# Each entry also carries the page's contents (the bytearray in
# m.page_contents, made on the first access through the TLB; the zero
# pages read as ZERO_PAGE_BYTES) and a view of them as 64-bit words, so a
# hot path (malloc's chunk headers) reads and writes a word with one dict
# lookup and one index.
#
# NOTE: a real TLB holds some 1,500 entries and evicts the least recently
# used; mmlab's holds TLB_ENTRIES and is emptied whole when full.  Each
# flush that drops entries, and each eviction, advances mm.tlb_gen, so a
# cache built on the TLB (libc's page views) knows when to forget.

TLB_ENTRIES = 1024
ZERO_PAGE_BYTES = bytes(PAGE_SIZE)
ZERO_PAGE_WORDS = memoryview(ZERO_PAGE_BYTES).cast("Q")


class TlbEntry(tuple):
    """One cached translation: (pfn, words, store_ok, page).

    words is a 64-bit view of page, the page's contents; store_ok says the
    PTE was writable and dirty when cached, so a store needs no walk.
    """

    __slots__ = ()
    pfn = property(lambda self: self[0])
    words = property(lambda self: self[1])
    store_ok = property(lambda self: self[2])
    page = property(lambda self: self[3])


def mm_tlb(mm):
    """The mm's TLB (made empty on first use)."""
    tlb = mm.__dict__.get("tlb")
    if tlb is None:
        tlb = mm.tlb = {}
        mm.tlb_gen = 0
    return tlb


def page_contents_of(m, pfn):
    """The bytearray holding pfn's bytes, made (zeroed) on first need; the zero pages share ZERO_PAGE_BYTES."""
    page = m.page_contents.get(pfn)
    if page is None:
        if pfn == m.zero_pfn or is_huge_zero_pfn(m, pfn):
            return ZERO_PAGE_BYTES
        page = m.page_contents[pfn] = bytearray(PAGE_SIZE)
    return page


def tlb_fill(p, addr, write):
    """The MMU's page walk after a TLB miss: fault if the entry refuses the access, set its
    accessed (and, for a store, dirty) bit, and cache the translation; returns the TlbEntry.

    A bad access raises SegmentationFault (the TLB and tables unchanged).
    """
    mm = p.mm
    tlb = mm_tlb(mm)
    pte = pgtable_get_one(mm, addr) if mm.pgd is not None else 0
    if not pte & _PAGE_PRESENT or (write and not pte & _PAGE_RW):
        vma = find_user_vma(mm, addr, write)
        fault_in_page(p, vma, addr, write)
        pte = pgtable_get_one(mm, addr)
    bits = _PAGE_ACCESSED | (_PAGE_DIRTY if write else 0)
    if pte & bits != bits:
        pte = mark_accessed(mm, addr, write)
    m = p.machine
    pfn = pte_pfn(pte)
    page = page_contents_of(m, pfn)
    store_ok = bool(pte & _PAGE_RW and pte & _PAGE_DIRTY) and page is not ZERO_PAGE_BYTES
    words = ZERO_PAGE_WORDS if page is ZERO_PAGE_BYTES else memoryview(page).cast("Q")
    entry = TlbEntry((pfn, words, store_ok, page))
    if len(tlb) >= TLB_ENTRIES:
        tlb.clear()                     # NOTE: full: evict everything (see above)
        tlb_dropped(mm)
    tlb[addr >> PAGE_SHIFT] = entry
    return entry


def tlb_lookup(p, tlb, addr, write):
    """The TLB entry for an access to addr: a hit, or tlb_fill's page walk (and fault)."""
    e = tlb.get(addr >> PAGE_SHIFT)
    if e is None or (write and not e[2]):
        e = tlb_fill(p, addr, write)
    return e


def translate(p, addr, write):
    """The frame behind addr after the access a load or store makes (faulting if it must)."""
    return tlb_lookup(p, mm_tlb(p.mm), addr, write)[0]


def user_pages(p, addr, size, write):
    """Each page's part of [addr, addr+size), faulted in order: (page bytes, offset, position, length).

    All pages are looked up before the caller copies a byte, so an access
    that runs into a page it may not touch raises SegmentationFault with
    nothing copied; the pages before the bad one keep the faults they took.
    """
    tlb = mm_tlb(p.mm)
    pieces = []
    pos = 0
    while pos < size:
        a = addr + pos
        off = a & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - off, size - pos)
        pieces.append((tlb_lookup(p, tlb, a, write)[3], off, pos, n))
        pos += n
    return pieces


def user_store(p, addr, data):
    """A program's stores: write data at addr, faulting page by page.

    Nothing is written unless every page may be, as one x86 store
    instruction behaves (user_pages).
    """
    data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    for page, off, pos, n in user_pages(p, addr, len(data), True):
        page[off:off + n] = data[pos:pos + n]


def user_load(p, addr, size):
    """copy_from_user, as a program's loads: size bytes from addr, faulting page by page."""
    return b"".join(page[off:off + n] for page, off, _, n in user_pages(p, addr, size, False))


def mark_accessed(mm, addr, write):
    """The MMU's accessed and dirty bits for one access; returns the entry as it is now."""
    pmdp = pgtable.lookup_pmd(mm, addr)
    table = mm.machine.page_tables[pte_pfn(pgtable.ptep_get(mm, pmdp))]
    i = pgtable.pte_index(addr)
    table[i] |= np.uint64(_PAGE_ACCESSED | (_PAGE_DIRTY if write else 0))
    return int(table[i])


def flush_tlb_range(mm, start, end):
    """flush_tlb_range: forget the cached translations of [start, end) (after their PTEs changed)."""
    tlb = mm.__dict__.get("tlb")
    if not tlb:
        return
    lo = start >> PAGE_SHIFT
    hi = (end + PAGE_SIZE - 1) >> PAGE_SHIFT
    if hi - lo <= len(tlb):
        pop = tlb.pop
        gone = [v for v in range(lo, hi) if pop(v, None) is not None]
    else:
        gone = [v for v in tlb if lo <= v < hi]
        for v in gone:
            del tlb[v]
    if gone:
        tlb_dropped(mm)


def flush_tlb_page(mm, addr):
    """flush_tlb_page (ptep_clear_flush's flush): forget one page's translation."""
    tlb = mm.__dict__.get("tlb")
    if tlb and tlb.pop(addr >> PAGE_SHIFT, None) is not None:
        tlb_dropped(mm)


def flush_tlb_mm(mm):
    """flush_tlb_mm: forget every cached translation of the address space."""
    tlb = mm.__dict__.get("tlb")
    if tlb:
        tlb.clear()
        tlb_dropped(mm)


def tlb_dropped(mm):
    """The TLB lost entries: advance mm.tlb_gen and tell every cache built on it
    (mm.tlb_notifiers, weak references to callables, as mmu_notifier_invalidate_range does)."""
    mm.tlb_gen += 1
    for ref in mm.__dict__.get("tlb_notifiers", ()):
        fn = ref()
        if fn is not None:
            fn()


def check_tlb(m):
    """Every TLB entry agrees with the page tables (a missed flush fails here).

    The PTE is present and maps the entry's frame; an entry that allows
    stores has a writable, dirty PTE; the entry's contents are the frame's
    own (m.page_contents, or the zero page's).  The accessed bit may have
    been cleared since (folio_referenced): x86 clears it without a flush,
    so a cached page keeps being used without setting it again.
    """
    for p in list(m.processes.values()):
        mm = p.mm
        tlb = mm.__dict__.get("tlb")
        if not tlb:
            continue
        if len(tlb) > TLB_ENTRIES:
            raise InvariantError(f"tlb: pid {p.pid} caches {len(tlb)} entries, more than {TLB_ENTRIES}")
        for vpn, (pfn, words, store_ok, page) in tlb.items():
            addr = vpn << PAGE_SHIFT
            pte = pgtable_get_one(mm, addr) if mm.pgd is not None else 0
            where = f"pid {p.pid} {addr:#x}"
            if not pte & _PAGE_PRESENT or pte_pfn(pte) != pfn:
                raise InvariantError(f"tlb: {where} caches pfn {pfn:#x}, the PTE is {pte:#x}")
            if store_ok and not (pte & _PAGE_RW and pte & _PAGE_DIRTY):
                raise InvariantError(f"tlb: {where} allows stores but its PTE is {pte:#x}")
            want = m.page_contents.get(pfn)
            if want is None and (pfn == m.zero_pfn or is_huge_zero_pfn(m, pfn)):
                want = ZERO_PAGE_BYTES
            if page is not want or words.obj is not page:
                raise InvariantError(f"tlb: {where} holds contents that are not pfn {pfn:#x}'s")


# -- unmapping (zap_page_range) and protection ------------------------------------------

def zap_pte_range(mm, start, end):
    """zap_pte_range: clear the entries of [start, end), dropping each page's mapping and reference.

    A dirty entry of a file page marks the page dirty (set_page_dirty) before it goes.
    """
    m = mm.machine
    tables = m.page_tables
    mem = m.mem_map
    for tpfn, i, j, _ in pgtable.pte_tables(mm, start, end):
        if tpfn is None:
            continue
        old = tables[tpfn][i:j].copy()
        tables[tpfn][i:j] = 0
        live = old[((old & _PRESENT_BITS) != 0) & ((old & np.uint64(_PAGE_SPECIAL)) == 0)]
        for pte in live.tolist():
            pfn = pte_pfn(pte)
            if pte & _PAGE_DIRTY and not mem.flags_[pfn] & PG_anon:
                zap_dirty_file_page(m, pfn)
            folio_remove_rmap(m, pfn)
            put_page(m, pfn)
    flush_tlb_range(mm, start, end)


def zap_dirty_file_page(m, pfn):
    """zap_present_folio_ptes: a dirty PTE of a file page dirties the page (folio_mark_dirty)."""
    from . import page_writeback
    owner = m.page_owner_file.get(pfn)
    if owner is not None:
        page_writeback.folio_mark_dirty(m, owner[0], owner[1], pfn)
    else:
        m.mem_map.flags_[pfn] |= PG_dirty


@traced(fmt={"mm": pgtable.mm_name, "start": hex, "end": hex})
def unmap_region(mm, vmas, start, end, floor, ceiling):
    """unmap_region: zap the entries of the VMAs within [start, end), then free_pgtables."""
    ranges = []
    for vma in vmas:
        s, e = max(start, vma.vm_start), min(end, vma.vm_end)
        if s < e:
            split_huge_pmds(mm, s, e)
            zap_pte_range(mm, s, e)
            ranges.append((s, e))
    pgtable.free_pgtables(mm, ranges, floor, ceiling)


def exit_mmap_tables(mm):
    """The end of exit_mmap: free every user page table, then the PGD (pgd_free)."""
    if mm.pgd is None:
        return
    pgtable.free_pgd_range(mm, 0, USER_TOP, 0, 0)
    pgtable.pgd_free(mm)
    flush_tlb_mm(mm)


@traced(fmt={"vma": repr, "start": hex, "end": hex})
def change_protection(vma, start, end):
    """change_protection: rewrite the present entries of [start, end) with vma->vm_page_prot.

    Write access is kept off where the page needs a fault first, but
    granted where no fault would do anything (MM_CP_TRY_CHANGE_WRITABLE):
    an exclusive anonymous page, or a dirty page of a shared mapping.
    """
    mm = vma.vm_mm
    m = mm.machine
    prot = vma.vm_page_prot
    try_writable = bool(vma.vm_flags & VM_WRITE) and not prot & _PAGE_RW
    split_huge_pmds(mm, start, end, keep_whole=True)
    tables = m.page_tables
    for tpfn, i, j, _ in pgtable.pte_tables(mm, start, end):
        if tpfn is None:
            continue
        t = tables[tpfn]
        for k in range(i, j):
            pte = int(t[k])
            if not pte & (_PAGE_PRESENT | _PAGE_PROTNONE):
                continue
            new = pte_modify(pte, prot)
            if try_writable and can_change_pte_writable(m, vma, new):
                new = pte_mkwrite(new)
            t[k] = new
    flush_tlb_range(mm, start, end)


def can_change_pte_writable(m, vma, pte):
    """can_change_pte_writable: may mprotect grant write access without a fault?"""
    if pte & _PAGE_SPECIAL or not pte & _PAGE_PRESENT:
        return False
    pfn = pte_pfn(pte)
    if not vma.vm_flags & VM_SHARED:
        return bool(m.mem_map.flags_[pfn] & PG_anon_exclusive)
    return bool(pte & _PAGE_DIRTY)


def move_page_tables(vma, old_addr, new_vma, new_addr, length):
    """move_page_tables: move the entries of [old_addr, +length) to new_addr (mremap)."""
    mm = vma.vm_mm
    split_huge_pmds(mm, old_addr, old_addr + length)
    old = pgtable.get_ptes(mm, old_addr, old_addr + length)
    pgtable.clear_ptes_range(mm, old_addr, old_addr + length)
    flush_tlb_range(mm, old_addr, old_addr + length)
    if np.count_nonzero(old):
        if pgtable.set_ptes_range(mm, new_addr, old):
            raise MemoryError("mremap: out of memory for page tables")


# -- fork: copy_page_range ------------------------------------------------------------

def vma_needs_copy(dst_vma, src_vma):
    """vma_needs_copy: entries are copied only where a later fault could not rebuild them."""
    if src_vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP):
        return True
    return src_vma.anon_vma is not None


def is_cow_mapping(flags):
    return flags & (VM_SHARED | VM_MAYWRITE) == VM_MAYWRITE


@traced(fmt={"dst_vma": repr, "src_vma": repr})
def copy_page_range(dst_vma, src_vma):
    """copy_page_range / copy_present_pte: the child's entries for one VMA; 0 or -ENOMEM.

    Anonymous pages become shared by both: one more mapping and reference,
    no longer exclusive, and in a COW mapping both entries lose write
    access, so the first write on either side copies (or reuses, if the
    other side has gone).  File pages gain a mapping; the zero page is
    copied as it is.  The child's entries are old (not accessed).
    """
    if not vma_needs_copy(dst_vma, src_vma):
        return 0
    src_mm, dst_mm = src_vma.vm_mm, dst_vma.vm_mm
    if src_mm.pgd is None:
        return 0
    if ensure_pgd(dst_mm):
        return -12
    m = src_mm.machine
    mem = m.mem_map
    start, end = src_vma.vm_start, src_vma.vm_end
    # copy_pte_range allocates the child's PTE table (pte_alloc_map_lock) before it reads
    # an entry, for every table the parent has in the range: an empty one is copied too.
    # NOTE: the PUD and PMD levels are allocated only on the way to such a table.
    for tpfn, i, j, addr in pgtable.pte_tables(src_mm, start, end):
        if tpfn is not None and \
                pgtable.pte_tables(dst_mm, addr, addr + ((j - i) << PAGE_SHIFT), alloc=True) is None:
            return -12
    ptes = pgtable.get_ptes(src_mm, start, end)
    idx = np.flatnonzero(ptes)
    if not len(idx):
        return 0
    cow = is_cow_mapping(src_vma.vm_flags)
    child = ptes.copy()
    for i in idx.tolist():
        pte = int(ptes[i])
        pfn = vm_normal_page(m, pte)
        if pfn is not None:
            get_page(m, pfn)
            mem.mapcount_[pfn] += 1
            if mem.flags_[pfn] & PG_anon:
                mem.flags_[pfn] &= ~PG_anon_exclusive
            if cow and pte & _PAGE_RW:
                pte = pte_wrprotect(pte)
                ptes[i] = pte
        if src_vma.vm_flags & VM_SHARED:
            pte = pte_mkclean(pte)
        child[i] = pte_mkold(pte)
    # The parent's entries first (write-protected), then the child's.
    tables = m.page_tables
    for tpfn, i, j, addr in pgtable.pte_tables(src_mm, start, end):
        if tpfn is not None:
            lo = (addr - start) >> PAGE_SHIFT
            tables[tpfn][i:j] = ptes[lo:lo + j - i]
    flush_tlb_range(src_mm, start, end)         # the parent's entries lost write access
    set_sparse(dst_mm, start, idx, child[idx])
    for haddr, head in list(getattr(src_mm, "thp_ranges", {}).items()):
        if start <= haddr < end:
            thp_pmd_map(m, dst_mm, haddr, head)     # copy_huge_pmd: the child maps it by PMD too
    return 0


# -- views: pagemap, mincore ------------------------------------------------------------

PM_PRESENT = 1 << 63
PM_FILE = 1 << 61
PM_MMAP_EXCLUSIVE = 1 << 56
PM_SOFT_DIRTY = 1 << 55
PM_PFRAME_MASK = (1 << 55) - 1


def pagemap_entry(p, addr):
    """pagemap_pte_to_pme: the 64-bit /proc/pid/pagemap entry of addr, as root reads it."""
    mm = p.mm
    pte = pgtable_get_one(mm, addr) if mm.pgd is not None else 0
    if not pte & (_PAGE_PRESENT | _PAGE_PROTNONE):
        return 0
    m = p.machine
    value = PM_PRESENT | pte_pfn(pte)
    pfn = vm_normal_page(m, pte)
    if pfn is not None:
        if not m.mem_map.flags_[pfn] & PG_anon:
            value |= PM_FILE
        if m.mem_map.mapcount_[pfn] == 1:
            value |= PM_MMAP_EXCLUSIVE
    if pte & _PAGE_SOFT_DIRTY:
        value |= PM_SOFT_DIRTY
    return value


def mincore(p, addr, length):
    """do_mincore: per page, is it resident?  Present entries, or cached file pages where none."""
    mm = p.mm
    start = addr
    end = addr + length
    out = []
    a = start
    while a < end:
        vma = mm.find_vma(a)
        if vma is None or vma.vm_start > a:
            raise OSError(12, "mincore: range not fully mapped")
        stop = min(end, vma.vm_end)
        ptes = pgtable.get_ptes(mm, a, stop) if mm.pgd is not None else \
            np.zeros((stop - a) >> PAGE_SHIFT, dtype=np.uint64)
        for k, pte in enumerate(ptes.tolist()):
            if pte & (_PAGE_PRESENT | _PAGE_PROTNONE):
                out.append(True)
            elif vma.vm_file is not None:
                # mincore_page: in the page cache and uptodate, mapped here or not.
                index = vma.vm_pgoff + ((a - vma.vm_start) >> PAGE_SHIFT) + k
                out.append(filemap.mincore_page(vma.vm_file.file, index))
            else:
                out.append(False)
        a = stop
    return out


# -- invariants -----------------------------------------------------------------

def check(m):
    """Invariants of user memory; raises InvariantError naming the broken one.

    - rmap: every page's mapcount equals the user entries that map it and
      its refcount equals mapcount plus one for the page cache;
    - vmas: every present user entry lies inside a VMA of its mm;
    - stats: nr_anon_pages, nr_mapped, nr_file_pages and nr_shmem agree
      with the pages.
    """
    def fail(name, text):
        raise InvariantError(f"{name}: {text}")

    mem = m.mem_map
    maps = np.zeros(m.max_pfn, dtype=np.int64)
    huge_zero = getattr(m, "huge_zero_pfn", None)
    for p in list(m.processes.values()):
        mm = p.mm
        if mm.pgd is None:
            continue
        addrs, ptes = user_leaves(m, mm)
        if not len(addrs):
            continue
        starts = np.array([v.vm_start for v in mm.vma_list()], dtype=np.uint64)
        ends = np.array([v.vm_end for v in mm.vma_list()], dtype=np.uint64)
        k = np.searchsorted(starts, addrs, side="right") - 1
        inside = (k >= 0) & (addrs < ends[np.maximum(k, 0)])
        if not inside.all():
            fail("vmas", f"pid {p.pid}: {int(addrs[~inside][0]):#x} is mapped but in no VMA")
        pfns = ((ptes & np.uint64(PTE_PFN_MASK)) >> np.uint64(PAGE_SHIFT)).astype(np.int64)
        special = (ptes & np.uint64(_PAGE_SPECIAL)) != 0
        zero_ok = pfns == m.zero_pfn
        if huge_zero is not None:
            zero_ok |= (pfns >= huge_zero) & (pfns < huge_zero + HPAGE_PMD_NR)
        if np.any(special & ~zero_ok):
            fail("rmap", f"pid {p.pid}: a special entry maps pfn "
                 f"{int(pfns[special & ~zero_ok][0]):#x}, not a zero page")
        np.add.at(maps, pfns[~special], 1)
        for haddr in getattr(mm, "thp_ranges", {}):
            v = mm.find_vma(haddr)
            if v is None or v.vm_start > haddr or v.vm_end < haddr + PMD_SIZE:
                fail("vmas", f"pid {p.pid}: THP range {haddr:#x} is not inside one VMA")
    cache = np.zeros(m.max_pfn, dtype=np.int64)
    shmem = 0
    io_flags = np.uint32(filemap.PG_locked | filemap.PG_writeback)
    for pfn, (file, index) in m.page_owner_file.items():
        # The cache's reference, and one for a read (PG_locked) or write (PG_writeback) in flight.
        cache[pfn] = 1 + bool(mem.flags_[pfn] & io_flags)
        shmem += filemap.is_shmem(file)
    anon = (mem.flags & np.uint32(PG_anon)) != 0
    user = anon | (cache > 0) | (maps > 0)
    bad = np.flatnonzero(user & (mem.mapcount.astype(np.int64) != maps))
    if len(bad):
        pfn = int(bad[0])
        fail("rmap", f"pfn {pfn:#x}: mapcount {mem.mapcount[pfn]}, {maps[pfn]} entries map it")
    bad = np.flatnonzero(user & (mem.refcount.astype(np.int64) != maps + cache))
    if len(bad):
        pfn = int(bad[0])
        fail("rmap", f"pfn {pfn:#x}: refcount {mem.refcount[pfn]}, expected {maps[pfn] + cache[pfn]}")
    if np.any(anon & (maps == 0)):
        fail("rmap", f"anonymous pfn {int(np.flatnonzero(anon & (maps == 0))[0]):#x} is mapped nowhere")
    stats = {"nr_anon_pages": int(np.count_nonzero(anon & (maps > 0))),
             "nr_mapped": int(np.count_nonzero(~anon & (maps > 0))),
             "nr_file_pages": len(m.page_owner_file), "nr_shmem": shmem,
             "nr_anon_transparent_hugepages": len(m.thp_pmd_maps)}
    for name, value in stats.items():
        if m.node_stat[name] != value:
            fail("stats", f"{name} is {m.node_stat[name]}, the pages say {value}")


def mm_rss(m, mm):
    """get_mm_counter for MM_ANONPAGES, MM_FILEPAGES and MM_SHMEMPAGES: pages mapped, by kind.

    Linux keeps these counters as entries are set and cleared; mmlab counts
    the entries when asked, which gives what the counters hold: each
    present, non-special entry counts once (a page mapped twice counts
    twice), anonymous by PG_anon, shmem by PG_swapbacked (mm_counter_file),
    the rest file.  The zero pages are special and count nowhere; a THP
    counts its 512 pages, as add_mm_counter(HPAGE_PMD_NR) does.
    """
    if mm.pgd is None:
        return {"anon": 0, "file": 0, "shmem": 0}
    _, ptes = user_leaves(m, mm)
    ptes = ptes[(ptes & np.uint64(_PAGE_SPECIAL)) == 0]        # PROT_NONE entries still map their page
    flags = m.mem_map.flags[((ptes & np.uint64(PTE_PFN_MASK)) >> np.uint64(PAGE_SHIFT)).astype(np.int64)]
    anon = (flags & np.uint32(PG_anon)) != 0
    shmem = ~anon & ((flags & np.uint32(PG_swapbacked)) != 0)
    return {"anon": int(anon.sum()), "shmem": int(shmem.sum()),
            "file": int(len(flags) - anon.sum() - shmem.sum())}


def user_leaves(m, mm):
    """Every present leaf entry of mm's user half: (addresses, entries) as numpy uint64 arrays."""
    addrs, ptes = [], []
    tables = m.page_tables
    pgd = tables[mm.pgd][:pgtable.KERNEL_PGD_BOUNDARY]
    for i in np.flatnonzero(pgd).tolist():
        pud_t = tables[pte_pfn(int(pgd[i]))]
        for j in np.flatnonzero(pud_t).tolist():
            pmd_t = tables[pte_pfn(int(pud_t[j]))]
            for k in np.flatnonzero(pmd_t).tolist():
                pte_t = tables[pte_pfn(int(pmd_t[k]))]
                n = np.flatnonzero(pte_t & _PRESENT_BITS)
                if len(n):
                    base = (i << 39) | (j << 30) | (k << 21)
                    addrs.append(np.uint64(base) + (n.astype(np.uint64) << np.uint64(PAGE_SHIFT)))
                    ptes.append(pte_t[n])
    if not addrs:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint64)
    return np.concatenate(addrs), np.concatenate(ptes)


# -- the page cache's side of the page tables (rmap walks, writeback, reclaim, madvise) --------

def lookup_ptep(mm, addr):
    """The PTE pointer (table pfn, index) for addr if a PTE table covers it, else None."""
    if mm.pgd is None:
        return None
    pmdp = pgtable.lookup_pmd(mm, addr)
    if pmdp is None:
        return None
    pmd = pgtable.ptep_get(mm, pmdp)
    if not pmd or not pmd & _PAGE_PRESENT:
        return None
    return (pte_pfn(pmd), pgtable.pte_index(addr))


def pte_maps(pte, pfn):
    """Does a present, normal PTE map this frame?"""
    return bool(pte & (_PAGE_PRESENT | _PAGE_PROTNONE)) and not pte & _PAGE_SPECIAL and pte_pfn(pte) == pfn


def unmap_file_pte(mm, vma, addr, ptep, pfn):
    """try_to_unmap_one for a cache page: clear the PTE (a dirty one dirties the page), drop the mapping."""
    m = mm.machine
    old = pgtable.ptep_get_and_clear(mm, addr, ptep)
    flush_tlb_page(mm, addr)
    if old & _PAGE_DIRTY:
        zap_dirty_file_page(m, pfn)
    folio_remove_rmap(m, pfn)
    put_page(m, pfn)


def folio_mkclean(m, pfn):
    """folio_mkclean: write-protect and clean every shared PTE mapping the page (page_vma_mkclean_one),
    so the next write faults (wp_page_shared) and dirties the page again.  Returns the PTEs cleaned."""
    from . import vmscan
    n = 0
    tables = m.page_tables
    for mm, vma, addr, (t, i) in vmscan.rmap_walk_file(m, pfn):
        if not vma.vm_flags & VM_SHARED:
            continue
        pte = int(tables[t][i])
        if pte & (_PAGE_RW | _PAGE_DIRTY):
            tables[t][i] = pte_mkclean(pte_wrprotect(pte))
            flush_tlb_page(mm, addr)
            n += 1
    return n


def unmap_mapping_range(file, first):
    """unmap_mapping_range: clear every PTE that maps a page of the file at index >= first (truncate)."""
    m = file.machine
    for p in list(m.processes.values()):
        mm = p.mm
        if mm.pgd is None:
            continue
        for vma in mm.vma_list():
            if vma.vm_file is None or vma.vm_file.file is not file:
                continue
            lo = max(first, vma.vm_pgoff)
            hi = vma.vm_pgoff + vma.pages
            if lo >= hi:
                continue
            start = vma.vm_start + ((lo - vma.vm_pgoff) << PAGE_SHIFT)
            zap_file_ptes(mm, start, vma.vm_end, file)


def zap_file_ptes(mm, start, end, file):
    """zap_pte_range for the entries of [start, end) that map pages of `file` (private COW copies stay)."""
    m = mm.machine
    for a in range(start, end, PAGE_SIZE):
        ptep = lookup_ptep(mm, a)
        if ptep is None:
            continue
        pte = pgtable.ptep_get(mm, ptep)
        if not pte & (_PAGE_PRESENT | _PAGE_PROTNONE) or pte & _PAGE_SPECIAL:
            continue
        pfn = pte_pfn(pte)
        owner = m.page_owner_file.get(pfn)
        if owner is None or owner[0] is not file:
            continue
        unmap_file_pte(mm, None, a, ptep, pfn)


def madvise_free_pte_range(mm, start, end):
    """madvise_free_pte_range: exclusive anonymous pages of [start, end) become lazily freeable.

    Their PTEs turn clean and old (the page keeps its data until reclaim
    finds it still clean: a write in between re-dirties it and keeps it);
    shared pages (after fork) are left alone.  Returns the pages marked.
    """
    m = mm.machine
    mem = m.mem_map
    n = 0
    for a in range(start, end, PAGE_SIZE):
        ptep = lookup_ptep(mm, a)
        if ptep is None:
            continue
        pte = pgtable.ptep_get(mm, ptep)
        if not pte & _PAGE_PRESENT or pte & _PAGE_SPECIAL:
            continue
        pfn = pte_pfn(pte)
        if not mem.flags_[pfn] & PG_anon or mem.mapcount_[pfn] != 1:
            continue
        if (a & PMD_MASK) in getattr(mm, "thp_ranges", {}):
            continue                        # NOTE: a PMD-mapped THP would be split first; left alone here
        pgtable.set_entry(mm, ptep, pte_mkold(pte_mkclean(pte)))
        flush_tlb_page(mm, a)
        mem.flags_[pfn] &= ~(PG_dirty | PG_swapbacked)
        m.lazyfree[pfn] = (mm, a)
        m.lazyfree.move_to_end(pfn)
        n += 1
    return n


def lazyfree_discard(mm, addr, pfn):
    """try_to_unmap_one for a MADV_FREE page: still clean, so drop it (the next touch faults a zero
    page); re-dirtied (or remapped elsewhere since), keep it as ordinary anonymous memory.  True if freed."""
    m = mm.machine
    mem = m.mem_map
    ptep = lookup_ptep(mm, addr)
    if ptep is None or mm.owner is None or not mm.owner.alive:
        return False
    pte = pgtable.ptep_get(mm, ptep)
    if not pte_maps(pte, pfn) or not mem.flags_[pfn] & PG_anon:
        return False                        # unmapped or replaced since: nothing to do
    if pte & _PAGE_DIRTY or mem.flags_[pfn] & PG_dirty or mem.mapcount_[pfn] != 1 or mem.refcount_[pfn] != 1:
        mem.flags_[pfn] |= PG_swapbacked    # written again: an ordinary anonymous page once more
        return False
    pgtable.ptep_get_and_clear(mm, addr, ptep)
    flush_tlb_page(mm, addr)
    folio_remove_rmap(m, pfn)
    put_page(m, pfn)
    return True

