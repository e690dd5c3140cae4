"""The page cache: one address_space per file, page index -> pfn, filled by timed I/O.

Models mm/filemap.c (and the parts of mm/shmem.c the fault path needs):
the lookup (filemap_get_folio), adding pages (filemap_add_folio), the
read path of read(2)/pread(2) (filemap_read, filemap_get_pages), the mmap
fault path (filemap_fault with do_sync_mmap_readahead and
do_async_mmap_readahead), fault-around (filemap_map_pages), removal
(delete_from_page_cache, invalidate_mapping_pages, truncate) and
mincore's view of it (mincore_page).

A page's life in the cache of a disk file:

    readahead adds it: PG_locked, not uptodate, one reference for the
    cache and one for the read I/O; the device completes the request at a
    known time (mmlab/block.py), then end_page_read sets PG_uptodate,
    unlocks it and drops the I/O reference.  A task that needs a locked
    page waits: the machine's clock (m.clock_ns) jumps to the completion.

Every cache page holds one reference for the cache; each PTE that maps it
adds a reference and a mapcount; a page under I/O (PG_locked for a read,
PG_writeback for a write) holds one more.  Cache pages count in the
node's nr_file_pages (Cached in /proc/meminfo); tmpfs and shmem pages also
in nr_shmem (Shmem).  Disk-file pages sit on the file LRU lists
(mm/vmscan.py); shmem pages, swap-backed, would be on the anon lists.

tmpfs and shmem have no backing store and no readahead: shmem_fault
allocates a zeroed page (a minor fault), and reading a hole of a tmpfs
file returns zeros without caching anything, as Linux does.

Time (the simulated clock, m.clock_ns): besides I/O waits, each fault on
a file mapping costs FAULT_NS of CPU, each read(2)/pread(2) SYSCALL_NS
plus COPY_NS_PER_PAGE per page copied.  NOTE: round figures for a
current x86 machine (a minor file fault with fault-around is about a
microsecond; copy_to_user runs near 10 GB/s); anonymous faults and other
system calls cost no simulated time.
"""
import itertools

import numpy as np

from ..arch import PAGE_SHIFT, PAGE_SIZE
from ..errors import KernelBug, InvariantError
from ..trace import traced, note
from ..uapi import GFP_HIGHUSER_MOVABLE, __GFP_ZERO
from ..block import REQ_OP_READ
from . import page_alloc
from .page_alloc import (PG_uptodate, PG_lru, PG_swapbacked, PG_dirty, PG_referenced, PG_locked,
                         PG_writeback, PG_active, PG_readahead, PG_anon)

VM_FAULT_OOM = 0x0001
VM_FAULT_SIGBUS = 0x0002
VM_FAULT_MAJOR = 0x0004
VM_FAULT_RETRY = 0x0400

FAULT_FLAG_TRIED = 1 << 5       # enum fault_flag: the second try of a fault

FAULT_NS = 1000                 # CPU time of one file-mapping fault
SYSCALL_NS = 200                # entry and exit of a read(2)/pread(2)
COPY_NS_PER_PAGE = 400          # copy_to_user of 4 KiB
MMAP_LOTSAMISS = 100            # read-around stops above this many mmap misses
HPAGE_PMD_ORDER = 9
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER

# PG_workingset: the page was evicted recently and came back (mm/workingset.c).
PG_workingset = 1 << 9

CACHE_PAGE_FLAGS = (PG_uptodate | PG_lru | PG_swapbacked | PG_dirty | PG_referenced | PG_locked
                    | PG_writeback | PG_active | PG_readahead | PG_workingset)


class AddressSpace:
    """struct address_space: a file's cached pages (i_pages), page index -> pfn.

    `dirty` holds the indexes tagged PAGECACHE_TAG_DIRTY; `host` is the
    inode (fs.File).
    """

    __slots__ = ("host", "pages", "dirty", "machine")

    def __init__(self, host):
        self.host = host
        self.machine = host.machine
        self.pages = {}
        self.dirty = set()

    @property
    def nrpages(self):
        return len(self.pages)

    def __repr__(self):
        return f"<address_space {self.host.path!r}: {len(self.pages)} pages>"


def filemap_init(m):
    """Boot: the clock, the disk, the per-page I/O completion times, the LRU and writeback state."""
    from ..block import BlockDevice
    m.clock_ns = 0
    m.disk = BlockDevice(m, "vda")
    m.mem_map.add_field("io_done", np.int64)       # when the I/O a locked page waits for completes
    m.mem_map.add_field("folio_order", np.int8)    # a large folio's order, on its first page
    m.mem_map.add_field("folio_off", np.int16)     # a page's distance from its large folio's first page
    vmscan.vmscan_init(m)
    page_writeback.writeback_init(m)
    m.checks.append(check)


# -- the clock ---------------------------------------------------------------------

def next_event(m):
    """The time of the next thing the kernel does on its own: an I/O completion or the flusher."""
    t = m.disk.next_done
    w = m.wb_next_ns
    if t is None:
        return w
    if w is None:
        return t
    return min(t, w)


def advance_to(m, t):
    """Let the clock run to t, completing I/O and running periodic writeback on the way, in time order."""
    while True:
        e = next_event(m)
        if e is None or e > t:
            break
        if e > m.clock_ns:
            m.clock_ns = e
        if m.disk.next_done is not None and m.disk.next_done <= m.clock_ns:
            m.disk.complete_until(m.clock_ns)
        if m.wb_next_ns is not None and m.wb_next_ns <= m.clock_ns:
            page_writeback.wb_workfn(m)
    if t > m.clock_ns:
        m.clock_ns = t


def cpu(m, ns):
    """Spend ns of CPU time (the clock moves; I/O completes meanwhile)."""
    t = m.clock_ns + ns
    e = next_event(m)
    if e is None or e > t:
        m.clock_ns = t
    else:
        advance_to(m, t)


def folio_wait_locked(m, pfn):
    """folio_wait_locked: sleep until the read I/O of a locked page completes; returns the ns waited."""
    if not m.mem_map.flags_[pfn] & PG_locked:
        return 0
    start = m.clock_ns
    advance_to(m, int(m.mem_map.io_done[pfn]))
    if m.mem_map.flags_[pfn] & PG_locked:
        raise KernelBug(f"folio_wait_locked: pfn {pfn:#x} still locked after its I/O completed")
    note(m, "folio_wait_locked: waited %d ns for pfn %#x", m.clock_ns - start, pfn)
    return m.clock_ns - start


def run_pending(m):
    """Complete what is due by now (called on entry to every page-cache path)."""
    e = next_event(m)
    if e is not None and e <= m.clock_ns:
        advance_to(m, m.clock_ns)


# -- the cache itself -------------------------------------------------------------------

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
    """filemap_get_folio: the cached page at index (uptodate or not), or None."""
    if file.i_mapping is None:
        return None
    return file.i_mapping.pages.get(index)


def cached_indexes(file):
    """The sorted page indexes of a file that are in the page cache (uptodate or under read I/O)."""
    if file.i_mapping is None:
        return []
    return sorted(file.i_mapping.pages)


def uptodate_indexes(file):
    """The sorted page indexes whose data is in memory (what mincore reports)."""
    if file.i_mapping is None:
        return []
    flags = file.machine.mem_map.flags_
    return sorted(i for i, pfn in file.i_mapping.pages.items() if flags[pfn] & PG_uptodate)


def folio_test_uptodate(m, pfn):
    return bool(m.mem_map.flags_[pfn] & PG_uptodate)


def folio_test_readahead(m, pfn):
    return bool(m.mem_map.flags_[pfn] & PG_readahead)


def folio_clear_readahead(m, pfn):
    m.mem_map.flags_[pfn] &= ~PG_readahead


def folio_test_writeback(m, pfn):
    return bool(m.mem_map.flags_[pfn] & PG_writeback)


def readahead_gfp_mask():
    """readahead_gfp_mask: the mapping's GFP_HIGHUSER_MOVABLE (plus NORETRY|NOWARN, no effect here)."""
    return GFP_HIGHUSER_MOVABLE


def filemap_alloc_folio(m):
    """filemap_alloc_folio: a page for the cache, or None (reclaim runs first if memory is short)."""
    return page_alloc.alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE)


def filemap_alloc_folios(m, n):
    """filemap_alloc_folio n times: up to n pages (fewer when memory runs out).

    NOTE: one alloc_pages_bulk call where Linux allocates folio by folio;
    the pages and watermarks come out the same.
    """
    pfns = []
    while len(pfns) < n:
        got = page_alloc.alloc_pages_bulk(m, GFP_HIGHUSER_MOVABLE, n - len(pfns))
        if not got:
            break
        pfns.extend(got)
    return pfns


def add_to_cache(file, index, pfns, flags):
    """__filemap_add_folio for pages at index, index+1, ...: cache them, account them, put them on the LRU."""
    m = file.machine
    mapping = mapping_of(file)
    n = len(pfns)
    shmem = is_shmem(file)
    if shmem:
        flags |= PG_lru                 # on the anon LRU in Linux (swap-backed); on no list here
    if n == 1:
        pfn = pfns[0]
        if index in mapping.pages:
            raise KernelBug(f"filemap_add_folio: {file.path}[{index}] is cached already")
        mapping.pages[index] = pfn
        m.page_owner_file[pfn] = (file, index)
        m.mem_map.flags_[pfn] |= flags | (PG_swapbacked if shmem else 0)
    else:
        idx = range(index, index + n)
        mapping.pages.update(zip(idx, pfns))
        m.page_owner_file.update(zip(pfns, zip(itertools.repeat(file), idx)))
        arr = np.asarray(pfns, dtype=np.int64)
        m.mem_map.flags[arr] |= np.uint32(flags | (PG_swapbacked if shmem else 0))
    m.node_stat["nr_file_pages"] += n
    if shmem:
        m.node_stat["nr_shmem"] += n
    else:
        vmscan.folio_add_lru(m, pfns)


def filemap_add_folio(file, index):
    """filemap_alloc_folio + filemap_add_folio of a page whose data is at hand: a new uptodate page.

    Used where the data comes from memory, not from the disk (shmem_fault's
    zeroed page, a page a test puts in the cache).  Returns the pfn, or None.
    """
    m = file.machine
    pfn = page_alloc.alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE | __GFP_ZERO)
    if pfn is None:
        return None
    add_to_cache(file, index, [pfn], PG_uptodate)
    note(m, "filemap_add_folio: %s[%d] -> pfn %#x", file.path, index, pfn)
    return pfn


def set_folio_orders(m, index, pfns, folios):
    """Remember the order of each large folio readahead laid out, on its first page.

    NOTE: the model's folios are order-0 pages; this is what makes a
    PMD-size folio mappable with one fault (filemap_map_pmd).
    """
    mem = m.mem_map
    for head, k in folios:
        if k and head - index + (1 << k) <= len(pfns):
            mem.folio_order_[pfns[head - index]] = k
            arr = np.asarray(pfns[head - index:head - index + (1 << k)], dtype=np.int64)
            mem.folio_off[arr] = np.arange(1 << k, dtype=np.int16)


def folio_head(file, index, pfn):
    """page_folio: the first page of the folio holding this page (itself for an order-0 folio);
    (index, pfn)."""
    off = file.machine.mem_map.folio_off_[pfn]
    if not off:
        return index, pfn
    return index - off, file.i_mapping.pages[index - off]


def filemap_add_folios_locked(file, index, pfns, mark=None):
    """filemap_add_folio for new pages that readahead will read: locked, not uptodate.

    `mark`, if not None, is the index that gets PG_readahead.
    """
    add_to_cache(file, index, pfns, PG_locked)
    if mark is not None and index <= mark < index + len(pfns):
        file.machine.mem_map.flags_[pfns[mark - index]] |= PG_readahead


# -- read I/O ---------------------------------------------------------------------------

def file_sector(file, index):
    """The disk sector holding page `index` of a disk file (its extent starts at file.sector)."""
    return file.sector + (index << (PAGE_SHIFT - 9))


def submit_read(file, index, pfns):
    """->readahead / ->read_folio: one read bio for the locked pages at index.. (mpage_readahead).

    Each page takes a reference for the I/O; its data (what was last
    written back, else zeros) is what the device will return.
    """
    m = file.machine
    arr = np.asarray(pfns, dtype=np.int64)
    mem = m.mem_map
    mem.refcount[arr] += 1
    if file.disk_data:
        for k, pfn in enumerate(pfns):
            data = file.disk_data.get(index + k)
            if data is not None:
                m.page_contents[pfn] = bytearray(data)
    reqs = m.disk.submit_bio(REQ_OP_READ, file_sector(file, index), pfns, end_page_read)
    if len(reqs) == 1:
        mem.io_done[arr] = reqs[0].done_ns
    else:
        for req in reqs:
            mem.io_done[np.asarray(req.pages, dtype=np.int64)] = req.done_ns
    note(m, "submit_read: %s[%d..%d] in %d request(s)", file.path, index, index + len(pfns) - 1, len(reqs))


def end_page_read(m, req):
    """mpage_read_end_io / folio_end_read: the pages are uptodate, unlocked, the I/O reference dropped."""
    arr = np.asarray(req.pages, dtype=np.int64)
    mem = m.mem_map
    mem.flags[arr] = (mem.flags[arr] | np.uint32(PG_uptodate)) & np.uint32(~PG_locked & 0xffffffff)
    mem.refcount[arr] -= 1          # locked pages never leave the cache, so the cache's ref remains


# -- lookups the fault and read paths make ----------------------------------------------

def folio_mark_accessed(m, pfn):
    vmscan.folio_mark_accessed(m, pfn)


def mark_accessed_batch(m, pfns):
    """folio_mark_accessed on each page of a read batch: one numpy step when none was referenced yet."""
    if len(pfns) < 4:
        for pfn in pfns:
            vmscan.folio_mark_accessed(m, pfn)
        return
    flags = m.mem_map.flags
    arr = np.asarray(pfns, dtype=np.int64)
    f = flags[arr]
    if not np.any(f & np.uint32(PG_referenced)):
        flags[arr] = f | np.uint32(PG_referenced)
        return
    for pfn in pfns:
        vmscan.folio_mark_accessed(m, pfn)


def filemap_get_read_batch(file, index, max_index):
    """filemap_get_read_batch: the cached pages from index on, stopping at a gap, after a page that
    is not uptodate or is marked PG_readahead, or past max_index.  A list of pfns (from index)."""
    mapping = file.i_mapping
    if mapping is None:
        return []
    got = list(map(mapping.pages.get, range(index, max_index + 1)))
    if None in got:
        got = got[:got.index(None)]
    if not got:
        return got
    f = file.machine.mem_map.flags[np.asarray(got, dtype=np.int64)]
    stop = np.flatnonzero((f & np.uint32(PG_uptodate | PG_readahead)) != np.uint32(PG_uptodate))
    if len(stop):
        got = got[:int(stop[0]) + 1]
    return got


def filemap_create_folio(f, index):
    """filemap_create_folio: no readahead brought the page: add one and read it, synchronously."""
    file = f.file
    m = file.machine
    pfn = filemap_alloc_folio(m)
    if pfn is None:
        return None
    filemap_add_folios_locked(file, index, [pfn])
    submit_read(file, index, [pfn])
    folio_wait_locked(m, pfn)
    return pfn


@traced(fmt={"f": lambda f: f.file.path})
def filemap_get_pages(f, pos, count):
    """filemap_get_pages: the cache pages for the next part of a read at pos; a list of pfns from
    pos's page on.

    A miss starts synchronous readahead (page_cache_sync_ra with the
    request's size in pages); reaching a PG_readahead page starts the
    next window (page_cache_async_ra); a page still being read is waited
    for.  Returns [] only if memory ran out.
    """
    file = f.file
    m = file.machine
    index = pos >> PAGE_SHIFT
    last_index = (pos + count + PAGE_SIZE - 1) >> PAGE_SHIFT
    batch = filemap_get_read_batch(file, index, last_index - 1)
    if not batch:
        readahead.page_cache_sync_ra(readahead.ReadaheadControl(f, index), last_index - index)
        batch = filemap_get_read_batch(file, index, last_index - 1)
    if not batch:
        pfn = filemap_create_folio(f, index)
        return [] if pfn is None else [pfn]
    last_i, last_pfn = index + len(batch) - 1, batch[-1]
    if folio_test_readahead(m, last_pfn):
        readahead.page_cache_async_ra(readahead.ReadaheadControl(f, last_i), last_pfn, last_index - last_i)
    if not folio_test_uptodate(m, last_pfn):
        # filemap_update_page: wait for the read under way.
        folio_wait_locked(m, last_pfn)
    return batch


def copy_out(m, pfns, first_off, nbytes):
    """copy_folio_to_iter for consecutive pages: nbytes from first_off in the first page on."""
    contents = m.page_contents
    if not contents or contents.keys().isdisjoint(pfns):
        return bytes(nbytes)                # no page holds stored bytes: all zeros
    out = bytearray(nbytes)
    pos = 0
    off = first_off
    for pfn in pfns:
        n = min(PAGE_SIZE - off, nbytes - pos)
        if n <= 0:
            break
        data = contents.get(pfn)
        if data is not None:
            out[pos:pos + n] = data[off:off + n]
        pos += n
        off = 0
    return bytes(out)


@traced(fmt={"f": lambda f: f.file.path}, result=lambda b: f"{len(b)} bytes")
def filemap_read(f, pos, count):
    """filemap_read: read(2) of a disk file through the page cache; the bytes read.

    Batch by batch: filemap_get_pages, folio_mark_accessed on each page
    (the first of a batch only if the last read did not end in it), copy
    out; finally ra->prev_pos is the position after the last byte copied.
    """
    file = f.file
    m = file.machine
    ra = f.f_ra
    last_pos = ra.prev_pos
    chunks = []
    isize = file.size
    end = min(pos + count, isize)
    while pos < end:
        batch = filemap_get_pages(f, pos, end - pos)
        if not batch:
            break                                   # -ENOMEM: what was read so far
        isize = file.size
        end = min(end, isize)
        first = pos >> PAGE_SHIFT
        n = min(len(batch), ((end - 1) >> PAGE_SHIFT) - first + 1)
        pfns = batch[:n]
        # A read that goes on in the page the last one ended in does not mark it again.
        if (pos >> PAGE_SHIFT) != ((last_pos - 1) >> PAGE_SHIFT):
            mark_accessed_batch(m, pfns)
        else:
            mark_accessed_batch(m, pfns[1:])
        stop = min(end, (first + n) << PAGE_SHIFT)
        chunks.append(copy_out(m, pfns, pos & (PAGE_SIZE - 1), stop - pos))
        cpu(m, COPY_NS_PER_PAGE * len(pfns))
        pos = stop
        last_pos = pos
    ra.prev_pos = last_pos
    return b"".join(chunks)


def shmem_file_read(f, pos, count):
    """shmem_file_read_iter: cached pages are copied, holes read as zeros (nothing is cached)."""
    file = f.file
    m = file.machine
    end = min(pos + count, file.size)
    out = bytearray(max(0, end - pos))
    mapping = file.i_mapping
    a = pos
    while a < end:
        i = a >> PAGE_SHIFT
        off = a & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - off, end - a)
        pfn = mapping.pages.get(i) if mapping is not None else None
        if pfn is not None:
            data = m.page_contents.get(pfn)
            if data is not None:
                out[a - pos:a - pos + n] = data[off:off + n]
        a += n
    cpu(m, COPY_NS_PER_PAGE * ((len(out) + PAGE_SIZE - 1) >> PAGE_SHIFT))
    return bytes(out)


def vfs_read(f, pos, count):
    """vfs_read -> ->read_iter: generic_file_read_iter for disk files, shmem for tmpfs; the bytes."""
    m = f.file.machine
    run_pending(m)
    cpu(m, SYSCALL_NS)
    if count == 0 or pos >= f.file.size:
        return b""
    if is_shmem(f.file):
        return shmem_file_read(f, pos, count)
    return filemap_read(f, pos, count)


# -- the mmap fault path ---------------------------------------------------------------

@traced(fmt={"vmf": repr}, result=lambda r: None)
def do_sync_mmap_readahead(vmf):
    """do_sync_mmap_readahead: a fault missed the cache; read around it (or ahead, or nothing).

    - VM_HUGEPAGE (MADV_HUGEPAGE): two PMD-size folios from the 2 MiB
      boundary below the fault, whatever ra_pages is;
    - VM_RAND_READ (MADV_RANDOM) on a non-executable mapping, or readahead
      off: nothing; filemap_fault reads the one page;
    - VM_SEQ_READ (MADV_SEQUENTIAL): page_cache_sync_ra of ra_pages;
    - mmap_miss above MMAP_LOTSAMISS: nothing (this file's faults mostly miss);
    - VM_EXEC: from the fault up to ra_pages, inside the VMA, no async tail;
    - otherwise read-around: ra_pages centred on the fault (start =
      pgoff - ra_pages/2, clamped at 0), async tail ra_pages/4.
    Returns True if the mmap lock was dropped for I/O (the fault will retry).
    """
    f = vmf.vma.vm_file
    ra = f.f_ra
    vm_flags = vmf.vma.vm_flags
    ractl = readahead.ReadaheadControl(f, vmf.pgoff)
    if vm_flags & VM_HUGEPAGE:
        # Even with readahead off: two PMD-size folios from the fault's 2 MiB boundary (one if
        # VM_RAND_READ), the second marked; ra->start is left as it was.
        ractl._index &= ~(HPAGE_PMD_NR - 1)
        ra.size = HPAGE_PMD_NR * (1 if vm_flags & VM_RAND_READ else 2)
        ra.async_size = HPAGE_PMD_NR
        ra.order = HPAGE_PMD_ORDER
        readahead.page_cache_ra_order(ractl, ra)
        return True
    if vm_flags & (VM_RAND_READ | VM_EXEC) == VM_RAND_READ:
        note(vmf.vma, "do_sync_mmap_readahead: VM_RAND_READ, no readahead")
        return False
    if not ra.ra_pages:
        note(vmf.vma, "do_sync_mmap_readahead: ra_pages 0, no readahead")
        return False
    if vm_flags & VM_SEQ_READ:
        readahead.page_cache_sync_ra(ractl, ra.ra_pages)
        return True
    if ra.mmap_miss < MMAP_LOTSAMISS * 10:
        ra.mmap_miss += 1
    if ra.mmap_miss > MMAP_LOTSAMISS:
        note(vmf.vma, "do_sync_mmap_readahead: mmap_miss %d > MMAP_LOTSAMISS, no read-around", ra.mmap_miss)
        return False
    if vm_flags & VM_EXEC:
        # exec_folio_order() is 0 on x86: from the fault, ra_pages, inside the VMA.
        start = max(vmf.pgoff, vmf.vma.vm_pgoff)
        ra_end = min(start + ra.ra_pages, vmf.vma.vm_pgoff + vmf.vma.pages)
        ra.order = 0
        ra.start, ra.size, ra.async_size = start, ra_end - start, 0
    else:
        ra.start = max(0, vmf.pgoff - ra.ra_pages // 2)
        ra.size = ra.ra_pages
        ra.async_size = ra.ra_pages // 4
        ra.order = 0
    ractl._index = ra.start
    readahead.page_cache_ra_order(ractl, ra)
    return True


@traced(fmt={"vmf": repr, "pfn": hex}, result=lambda r: None)
def do_async_mmap_readahead(vmf, pfn):
    """do_async_mmap_readahead: a fault found its page cached; a hit lowers mmap_miss, and a page
    marked PG_readahead starts the next window.  Returns True if the mmap lock was dropped."""
    f = vmf.vma.vm_file
    ra = f.f_ra
    m = vmf.machine
    if vmf.vma.vm_flags & VM_RAND_READ or not ra.ra_pages:
        return False
    if not m.mem_map.flags_[pfn] & PG_locked and ra.mmap_miss:
        ra.mmap_miss -= 1
    _, head = folio_head(f.file, vmf.pgoff, pfn)
    if folio_test_readahead(m, head):
        readahead.page_cache_async_ra(readahead.ReadaheadControl(f, vmf.pgoff), head, ra.ra_pages)
        return True
    return False


@traced(fmt={"vmf": repr}, result=lambda r: f"pfn={r[0]:#x} ret={r[1]:#x}" if r[0] is not None
        else f"ret={r[1]:#x}")
def filemap_fault(vmf):
    """filemap_fault: the cache page for a fault at vmf.pgoff of a disk file; (pfn, ret).

    - past the end of the file: VM_FAULT_SIGBUS;
    - cached: try async readahead (unless this is the retry); a page
      still being read is waited for;
    - not cached: VM_FAULT_MAJOR; do_sync_mmap_readahead; the page (or a
      new one read by itself) is waited for.
    Whenever the mmap lock was dropped for I/O (readahead started, or a
    wait), the fault returns VM_FAULT_RETRY without a page and is taken
    again (do_fault); otherwise ret is 0 or VM_FAULT_MAJOR with the page.
    """
    file = vmf.vma.vm_file.file
    m = vmf.machine
    index = vmf.pgoff
    if index >= file_pages(file):
        return None, VM_FAULT_SIGBUS
    pfn = filemap_get_folio(file, index)
    ret = 0
    dropped = False
    if pfn is not None:
        if not vmf.flags & FAULT_FLAG_TRIED:
            dropped = do_async_mmap_readahead(vmf, pfn)
    else:
        ret = VM_FAULT_MAJOR
        note(vmf.vma, "filemap_fault: %s[%d] not cached: major fault", file.path, index)
        dropped = do_sync_mmap_readahead(vmf)
        pfn = filemap_get_folio(file, index)
        if pfn is None:
            # __filemap_get_folio(FGP_CREAT): a page of our own, read synchronously
            # (page_not_uptodate: filemap_read_folio drops the mmap lock for the I/O).
            pfn = filemap_alloc_folio(m)
            if pfn is None:
                return None, (ret | VM_FAULT_RETRY) if dropped else VM_FAULT_OOM
            filemap_add_folios_locked(file, index, [pfn])
            submit_read(file, index, [pfn])
            dropped = True
    if m.mem_map.flags_[pfn] & PG_locked:
        # lock_folio_maybe_drop_mmap: the page is under read I/O; drop the lock and sleep on it.
        folio_wait_locked(m, pfn)
        dropped = True
    if dropped:
        return None, ret | VM_FAULT_RETRY
    return pfn, ret


@traced(fmt={"vmf": repr}, result=lambda r: f"pfn={r[0]:#x}" if r[0] is not None else f"ret={r[1]:#x}")
def shmem_fault(vmf):
    """shmem_fault: the tmpfs/shmem page at vmf.pgoff, allocated zeroed on first touch (minor)."""
    file = vmf.vma.vm_file.file
    index = vmf.pgoff
    if index >= file_pages(file):
        return None, VM_FAULT_SIGBUS
    pfn = filemap_get_folio(file, index)
    if pfn is not None:
        vmf.machine.mem_map.flags_[pfn] |= PG_referenced
        return pfn, 0
    pfn = filemap_add_folio(file, index)
    if pfn is None:
        return None, VM_FAULT_OOM
    return pfn, 0


def vma_fault(vmf):
    """vma->vm_ops->fault: filemap_fault for disk files, shmem_fault for tmpfs and shmem."""
    file = vmf.vma.vm_file.file
    run_pending(vmf.machine)
    if is_shmem(file):
        return shmem_fault(vmf)
    return filemap_fault(vmf)


def next_uptodate_pages(file, start_pgoff, end_pgoff, first_slot=0):
    """next_uptodate_folio over [start_pgoff, end_pgoff]: the pages fault-around may map: cached,
    uptodate, not locked, not PG_readahead, inside the file.  A list of (slot, pfn), slot counting
    from first_slot at start_pgoff."""
    mapping = file.i_mapping
    end_pgoff = min(end_pgoff, file_pages(file) - 1)
    if mapping is None or end_pgoff < start_pgoff:
        return []
    flags = file.machine.mem_map.flags_
    get = mapping.pages.get
    out = []
    slot = first_slot
    offs = file.machine.mem_map.folio_off_
    for i in range(start_pgoff, end_pgoff + 1):
        pfn = get(i)
        if pfn is not None and flags[pfn] & _MAPPABLE == PG_uptodate:
            # The folio's flags (PG_readahead is on its first page) decide for all its pages.
            if not offs[pfn] or flags[get(i - offs[pfn])] & _MAPPABLE == PG_uptodate:
                out.append((slot, pfn))
        slot += 1
    return out


_MAPPABLE = PG_uptodate | PG_locked | PG_readahead


def pmd_mappable_folio(file, start_pgoff):
    """filemap_map_pmd's test: the folio holding start_pgoff is PMD-size, uptodate, idle and unmarked;
    its first page index and the pfns of its pages, or None."""
    mapping = file.i_mapping
    head = start_pgoff & ~(HPAGE_PMD_NR - 1)
    if mapping is None:
        return None
    pfn = mapping.pages.get(head)
    mem = file.machine.mem_map
    if pfn is None or mem.folio_order_[pfn] != HPAGE_PMD_ORDER:
        return None
    if mem.flags_[pfn] & _MAPPABLE != PG_uptodate or head + HPAGE_PMD_NR > file_pages(file):
        return None
    pfns = [mapping.pages.get(i) for i in range(head, head + HPAGE_PMD_NR)]
    if None in pfns:
        return None
    return head, pfns


def pmd_folio_of(file, index, pfn):
    """The PMD-size folio holding page `index` (any flags): (first index, pfns), or None."""
    head_index, head = folio_head(file, index, pfn)
    if file.machine.mem_map.folio_order_[head] != HPAGE_PMD_ORDER:
        return None
    pfns = [file.i_mapping.pages.get(i) for i in range(head_index, head_index + HPAGE_PMD_NR)]
    return None if None in pfns else (head_index, pfns)


def mmap_miss_account(f, hits):
    """filemap_map_pages' end: pages fault-around mapped count as hits against mmap_miss."""
    ra = f.f_ra
    ra.mmap_miss = 0 if hits >= ra.mmap_miss else ra.mmap_miss - hits


# -- removal: truncate, invalidate, drop_caches --------------------------------------------

def delete_from_page_cache(file, index):
    """delete_from_page_cache + folio_put: the page leaves the cache and, unreferenced, is freed.

    The caller made sure nothing maps it and no I/O holds it.
    """
    m = file.machine
    mapping = file.i_mapping
    mem = m.mem_map
    if mem.folio_order_[mapping.pages[index]] or mem.folio_off_[mapping.pages[index]]:
        split_folio(file, index, mapping.pages[index])
    pfn = mapping.pages.pop(index)
    f = mem.flags_[pfn]
    if f & (PG_locked | PG_writeback) or mem.mapcount_[pfn]:
        mapping.pages[index] = pfn
        raise KernelBug(f"delete_from_page_cache: {file.path}[{index}] is locked, under writeback or mapped")
    if f & PG_dirty and not is_shmem(file):
        page_writeback.folio_account_cleaned(m, mapping, index)
    mapping.dirty.discard(index)
    m.node_stat["nr_file_pages"] -= 1
    if is_shmem(file):
        m.node_stat["nr_shmem"] -= 1
    else:
        vmscan.lruvec_del_folio(m, pfn)
    del m.page_owner_file[pfn]
    mem.flags_[pfn] &= ~CACHE_PAGE_FLAGS
    mem.folio_order_[pfn] = 0
    mem.folio_off_[pfn] = 0
    memory.put_page(m, pfn)


def mapping_evict_folio(m, pfn):
    """mapping_evict_folio's test: a clean, unmapped page not under I/O may go."""
    mem = m.mem_map
    return not (mem.flags_[pfn] & (PG_dirty | PG_writeback | PG_locked)) and mem.mapcount_[pfn] == 0


def split_folio(file, index, pfn):
    """split_folio: the large folio holding page index becomes order-0 pages (its PG_readahead stays
    on its first page).  NOTE: Linux reclaims a large folio whole or splits it first; mmlab frees
    page by page, so a folio losing a page is split."""
    mem = file.machine.mem_map
    first, nr = folio_range(file, index, pfn)
    for i in range(first, first + nr):
        q = file.i_mapping.pages.get(i)
        if q is not None:
            mem.folio_order_[q] = 0
            mem.folio_off_[q] = 0


def folio_range(file, index, pfn):
    """The (first index, number of pages) of the folio holding page index."""
    head_index, head = folio_head(file, index, pfn)
    return head_index, 1 << file.machine.mem_map.folio_order_[head]


@traced(fmt={"file": lambda f: f.path}, result=str)
def invalidate_mapping_pages(file, start, end):
    """invalidate_mapping_pages (mapping_try_invalidate): drop the clean, unmapped, idle folios lying
    wholly inside pages [start, end]; how many pages went.

    A large folio that begins before start or ends after end is left whole
    (find_lock_entries omits it); dirty, mapped, locked and writeback
    folios stay, as Linux leaves them.
    """
    mapping = file.i_mapping
    if mapping is None or is_shmem(file):
        return 0
    m = file.machine
    n = 0
    if end - start + 1 > len(mapping.pages):
        candidates = sorted(i for i in mapping.pages if start <= i <= end)
    else:
        candidates = [i for i in range(start, end + 1) if i in mapping.pages]
    done = set()
    for index in candidates:
        if index in done or index not in mapping.pages:
            continue
        first, nr = folio_range(file, index, mapping.pages[index])
        pages = [first + k for k in range(nr)]
        done.update(pages)
        if first < start or first + nr - 1 > end:
            continue
        pfns = [mapping.pages.get(i) for i in pages]
        if None in pfns or not all(mapping_evict_folio(m, pfn) for pfn in pfns):
            continue
        for i in pages:
            delete_from_page_cache(file, i)
        n += nr
    return n


def truncate_inode_pages(file):
    """truncate_inode_pages: drop every unmapped cache page of a file (waiting for I/O under way)."""
    mapping = file.i_mapping
    if mapping is None:
        return
    truncate_pagecache_range(file, 0)


def truncate_pagecache_range(file, first):
    """truncate_inode_pages_range from page `first`: wait for I/O, write nothing back, drop the pages.

    Mapped pages stay (the caller unmapped what it had to: unmap_mapping_range).
    """
    m = file.machine
    mapping = file.i_mapping
    if mapping is None:
        return
    for index in sorted(i for i in mapping.pages if i >= first):
        pfn = mapping.pages[index]
        mem = m.mem_map
        if mem.flags_[pfn] & (PG_locked | PG_writeback):
            advance_to(m, int(mem.io_done[pfn]))
        if mem.mapcount_[pfn]:
            continue
        if mem.flags_[pfn] & PG_dirty and not is_shmem(file):
            page_writeback.folio_cancel_dirty(m, file, index, pfn)
        delete_from_page_cache(file, index)


def drop_pagecache(m):
    """drop_pagecache_sb for every filesystem: invalidate_mapping_pages(0, -1) on every disk file."""
    n = 0
    for file in list(m.fs.files.values()) + list(m.fs.unlinked_files()):
        if file.i_mapping is not None and not is_shmem(file):
            n += invalidate_mapping_pages(file, 0, (1 << 64) - 1)
    return n


# -- mincore ---------------------------------------------------------------------------------

def mincore_page(file, index):
    """mincore_page: is the page at index in the cache and uptodate?"""
    pfn = filemap_get_folio(file, index)
    if pfn is None:
        return False
    return bool(file.machine.mem_map.flags_[pfn] & PG_uptodate)


# -- fsync -----------------------------------------------------------------------------------

def vfs_fsync_range(file, start, end):
    """vfs_fsync_range: write back the dirty pages of bytes [start, end] and wait for them; 0."""
    file = getattr(file, "file", file)          # an OpenFile (vma->vm_file) or its inode
    if file.i_mapping is None or is_shmem(file):
        return 0
    return page_writeback.file_write_and_wait_range(file, start, end)


# -- invariants ---------------------------------------------------------------------------

def check(m):
    """Invariants of the page cache; raises InvariantError naming the broken one.

    - cache: every cached page is an allocated frame, owned by (file, index)
      as the file's mapping says, with PG_uptodate or PG_locked (under read);
    - io: PG_locked pages have a read in flight, and its completion is not
      in the past;
    - lru: a disk-file page is on exactly one file LRU list, PG_active iff
      on the active one; shmem pages on none; list counters match;
    - dirty: PG_dirty disk pages are the mappings' dirty tags, and
      nr_dirty / nr_writeback count them;
    - folio: a page recorded as part of a large folio has that folio's
      first page cached, large enough to hold it.
    """
    mem = m.mem_map
    owners = m.page_owner_file
    nr_dirty = nr_wb = 0
    seen = 0
    for file in set(f for f, _ in owners.values()):
        mapping = file.i_mapping
        if mapping is None:
            raise InvariantError(f"cache: {file.path} owns pages but has no mapping")
        for index, pfn in mapping.pages.items():
            seen += 1
            if owners.get(pfn) != (file, index):
                raise InvariantError(f"cache: {file.path}[{index}] -> pfn {pfn:#x}, owned by {owners.get(pfn)}")
            if mem.state_[pfn] != page_alloc.FRAME_ALLOCATED:
                raise InvariantError(f"cache: {file.path}[{index}] pfn {pfn:#x} is not an allocated frame")
            f = mem.flags_[pfn]
            if f & PG_anon:
                raise InvariantError(f"cache: {file.path}[{index}] pfn {pfn:#x} is marked anonymous")
            if not f & (PG_uptodate | PG_locked):
                raise InvariantError(f"cache: {file.path}[{index}] is neither uptodate nor being read")
            if f & PG_locked and (f & PG_uptodate or mem.io_done[pfn] <= m.clock_ns):
                raise InvariantError(f"io: {file.path}[{index}] locked but its read is done")
            off = mem.folio_off_[pfn]
            if off:
                head = mapping.pages.get(index - off)
                if head is None or (1 << mem.folio_order_[head]) <= off:
                    raise InvariantError(f"folio: {file.path}[{index}] is page {off} of a folio that "
                                         f"does not hold it")
            if is_shmem(file):
                if vmscan.on_lru(m, pfn):
                    raise InvariantError(f"lru: shmem page {file.path}[{index}] is on a file LRU list")
                continue
            if f & PG_dirty:
                nr_dirty += 1
                if index not in mapping.dirty:
                    raise InvariantError(f"dirty: {file.path}[{index}] is PG_dirty but not tagged dirty")
            elif index in mapping.dirty:
                raise InvariantError(f"dirty: {file.path}[{index}] is tagged dirty but clean")
            if f & PG_writeback:
                nr_wb += 1
        for index in mapping.dirty:
            if index not in mapping.pages:
                raise InvariantError(f"dirty: {file.path}[{index}] is tagged dirty but not cached")
    if seen != len(owners):
        raise InvariantError(f"cache: {len(owners)} owned pages, {seen} in the mappings")
    if m.node_stat["nr_dirty"] != nr_dirty:
        raise InvariantError(f"stats: nr_dirty is {m.node_stat['nr_dirty']}, the pages say {nr_dirty}")
    if m.node_stat["nr_writeback"] != nr_wb:
        raise InvariantError(f"stats: nr_writeback is {m.node_stat['nr_writeback']}, the pages say {nr_wb}")
    vmscan.check_lru(m)


__all__ = ["AddressSpace", "filemap_get_folio", "filemap_add_folio", "filemap_fault", "filemap_read",
           "cached_indexes", "uptodate_indexes", "invalidate_mapping_pages", "truncate_inode_pages",
           "delete_from_page_cache", "mincore_page", "vfs_fsync_range", "drop_pagecache"]


# The files this one calls into, and which call into it (imported last: they import this module).
from . import vmscan, readahead, page_writeback, memory  # noqa: E402
from .vma import VM_RAND_READ, VM_SEQ_READ, VM_EXEC, VM_HUGEPAGE  # noqa: E402
