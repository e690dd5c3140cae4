"""Faulting pages in on the kernel's behalf: populate, mlock and MADV_POPULATE_*.

Models mm/gup.c: __mm_populate, populate_vma_page_range, faultin_page_range
and the loop of __get_user_pages (follow_page_pte, then faultin_page when
the entry is missing or read-only for a write).  The faults go through
handle_mm_fault like a user's and are charged to the calling task
(mm_account_fault with no registers still counts min_flt and maj_flt).

The walk over VMAs and the errors (EFAULT for PROT_NONE, hugetlb without
huge pages, and SIGBUS past the end of a file) are vma.py's; this file does
the faulting.
"""
from ..trace import traced, note
from . import vma as _vma
from . import memory
from .vma import VM_LOCKONFAULT, VM_WRITE, VM_SHARED, VM_ACCESS_FLAGS, VM_HUGETLB, VM_IO, VM_PFNMAP

EFAULT, ENOMEM = 14, 12


def get_user_pages_range(vma, start, end, write):
    """__get_user_pages over [start, end) of one VMA: fault in what follow_page_pte cannot find.

    Returns 0, -EFAULT (SIGBUS: a page past the end of the file; the pages
    before it stay) or -ENOMEM.  NOTE: uses the same vectorised walk as
    user accesses (memory.access_vma_range).
    """
    if vma.vm_flags & VM_HUGETLB:
        return -EFAULT                       # no huge pages reserved (vm.nr_hugepages is 0)
    p = vma.vm_mm.owner
    try:
        memory.access_vma_range(p, vma, start, end, write)
    except memory.BusError:
        note(vma, "__get_user_pages: SIGBUS in %r", vma)
        return -EFAULT
    except MemoryError:
        return -ENOMEM
    return 0


@traced(fmt={"vma": repr, "start": hex, "end": hex})
def populate_vma_page_range(vma, start, end):
    """populate_vma_page_range: fault in [start, end) of one VMA for mlock and MAP_POPULATE.

    Writable private memory is faulted for writing (FOLL_WRITE: COW broken
    now), everything else for reading; VM_LOCKONFAULT ranges wait for real
    faults.  Returns 0 or -errno.
    """
    f = vma.vm_flags
    if f & VM_LOCKONFAULT:
        return 0
    write = f & (VM_WRITE | VM_SHARED) == VM_WRITE
    force = bool(f & VM_ACCESS_FLAGS)
    if not _vma.gup_vma_allows(vma, write, force):
        return -EFAULT
    return get_user_pages_range(vma, start, end, write)


@traced(fmt={"start": hex})
def mm_populate(mm, start, length, ignore_errors=True):
    """__mm_populate: populate_vma_page_range on every VMA of [start, start+len)."""
    end = start + length
    nstart = start
    while nstart < end:
        vma = mm.find_vma_intersection(nstart, end)
        if vma is None:
            break
        nend = min(end, vma.vm_end)
        if not vma.vm_flags & (VM_IO | VM_PFNMAP):
            ret = populate_vma_page_range(vma, max(nstart, vma.vm_start), nend)
            if ret < 0 and not ignore_errors:
                return ret
        nstart = nend
    return 0


@traced(fmt={"start": hex, "end": hex})
def faultin_page_range(mm, start, end, write):
    """faultin_page_range: MADV_POPULATE_READ/WRITE's fault-in of [start, end) (one VMA)."""
    vma = mm.find_vma_intersection(start, end)
    if vma is None:
        return -ENOMEM
    if vma.vm_flags & VM_HUGETLB:
        return -EFAULT
    return get_user_pages_range(vma, max(start, vma.vm_start), min(end, vma.vm_end), write)
