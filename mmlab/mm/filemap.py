"""A minimal page cache: one address_space per file, page index -> pfn.

Models the parts of mm/filemap.c and mm/shmem.c the fault path needs:
filemap_get_folio (a lookup), the allocation a cache miss makes
(filemap_alloc_folio + filemap_add_folio), filemap_fault and shmem_fault.

Every cache page holds one reference for the cache itself; each PTE that
maps it adds a reference and a mapcount.  Cache pages count in the node's
nr_file_pages (Cached in /proc/meminfo), tmpfs and shmem pages also in
nr_shmem (Shmem).

NOTE: no readahead, no writeback and no eviction yet (a later issue): a
disk-file miss brings in the one page asked for, and filemap_fault reports
it as a major fault, as Linux does for any page that was not in the cache
when the fault began.  tmpfs and shmem have no backing store, so their
misses are minor faults (shmem_fault allocates a zeroed page).
"""
from ..arch import PAGE_SHIFT, PAGE_SIZE
from ..trace import note
from ..uapi import GFP_HIGHUSER_MOVABLE, __GFP_ZERO
from . import page_alloc
from .page_alloc import PG_uptodate, PG_lru, PG_swapbacked, PG_dirty, PG_referenced

VM_FAULT_MAJOR = 0x0004
VM_FAULT_SIGBUS = 0x0002
VM_FAULT_OOM = 0x0001


class AddressSpace:
    """struct address_space: a file's cached pages (i_pages), page index -> pfn."""

    __slots__ = ("host", "pages", "machine")

    def __init__(self, host):
        self.host = host
        self.machine = host.machine
        self.pages = {}

    @property
    def nrpages(self):
        return len(self.pages)

    def __repr__(self):
        return f"<address_space {self.host.path!r}: {len(self.pages)} pages>"


def is_shmem(file):
    """shmem_mapping: tmpfs and shared anonymous memory live only in the page cache."""
    return file.backing in ("tmpfs", "shmem")


def mapping_of(file):
    """file->f_mapping, created on first use."""
    if file.i_mapping is None:
        file.i_mapping = AddressSpace(file)
    return file.i_mapping


def file_pages(file):
    """i_size in pages, rounded up: the first index past the end of the file."""
    return (file.size + PAGE_SIZE - 1) >> PAGE_SHIFT


def filemap_get_folio(file, index):
    """filemap_get_folio: the cached page at index, or None."""
    if file.i_mapping is None:
        return None
    return file.i_mapping.pages.get(index)


def filemap_add_folio(file, index):
    """filemap_alloc_folio + filemap_add_folio: a new cache page at index; its pfn, or None.

    The cache holds the page's one reference.
    """
    m = file.machine
    pfn = page_alloc.alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE | __GFP_ZERO)
    if pfn is None:
        return None
    mapping_of(file).pages[index] = pfn
    mem = m.mem_map
    mem.flags_[pfn] |= PG_uptodate | PG_lru | (PG_swapbacked if is_shmem(file) else 0)
    m.node_stat["nr_file_pages"] += 1
    if is_shmem(file):
        m.node_stat["nr_shmem"] += 1
    m.page_owner_file[pfn] = (file, index)
    note(m, "filemap_add_folio: %s[%d] -> pfn %#x", file.path, index, pfn)
    return pfn


def filemap_fault(file, index):
    """filemap_fault / shmem_fault: the cache page for a fault at index.

    Returns (pfn, ret): ret is 0, VM_FAULT_MAJOR (a disk page that was not
    cached), VM_FAULT_SIGBUS (past the end of the file) or VM_FAULT_OOM.
    """
    if index >= file_pages(file):
        return None, VM_FAULT_SIGBUS
    pfn = filemap_get_folio(file, index)
    if pfn is not None:
        file.machine.mem_map.flags_[pfn] |= PG_referenced
        return pfn, 0
    pfn = filemap_add_folio(file, index)
    if pfn is None:
        return None, VM_FAULT_OOM
    return pfn, (0 if is_shmem(file) else VM_FAULT_MAJOR)


def truncate_inode_pages(file):
    """truncate_inode_pages: drop every unmapped cache page of a file (its last reference)."""
    mapping = file.i_mapping
    if mapping is None:
        return
    m = file.machine
    for index, pfn in list(mapping.pages.items()):
        if m.mem_map.mapcount_[pfn]:
            continue
        delete_from_page_cache(file, index)


def delete_from_page_cache(file, index):
    """delete_from_page_cache + folio_put: the page leaves the cache and, unreferenced, is freed."""
    m = file.machine
    pfn = file.i_mapping.pages.pop(index)
    m.node_stat["nr_file_pages"] -= 1
    if is_shmem(file):
        m.node_stat["nr_shmem"] -= 1
    del m.page_owner_file[pfn]
    from .memory import put_page
    m.mem_map.flags_[pfn] &= ~(PG_uptodate | PG_lru | PG_swapbacked | PG_dirty | PG_referenced)
    put_page(m, pfn)


def vfs_fsync_range(file, start, end):
    """vfs_fsync_range: write back dirty pages of [start, end]; here, mark them clean.

    NOTE: no I/O is modelled; writeback only clears PG_dirty.
    """
    file = getattr(file, "file", file)          # an OpenFile (vma->vm_file) or its inode
    mapping = file.i_mapping
    if mapping is None:
        return 0
    m = file.machine
    for index, pfn in mapping.pages.items():
        if start >> PAGE_SHIFT <= index <= end >> PAGE_SHIFT:
            m.mem_map.flags_[pfn] &= ~PG_dirty
    return 0
