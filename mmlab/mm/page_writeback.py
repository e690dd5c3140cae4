"""Dirty pages and writeback: what a write through a shared file mapping leaves to do.

Models mm/page-writeback.c (folio_mark_dirty's accounting, folio_clear_dirty_for_io,
folio_start_writeback / folio_end_writeback, write_cache_pages) and the
flusher of fs/fs-writeback.c (wb_workfn: periodic writeback of inodes
dirty for longer than vm.dirty_expire_centisecs, every
vm.dirty_writeback_centisecs, and background writeback above
vm.dirty_background_ratio), on the simulated clock.

A shared writable mapping of a disk file:

    write fault (do_shared_fault / wp_page_shared): the page is dirtied
        (PG_dirty, NR_FILE_DIRTY, the inode on the dirty list with its
        dirtied_when); the PTE is writable: later writes take no fault;
    writeback (msync(MS_SYNC), the flusher, reclaim's pageout, fadvise
        DONTNEED): folio_clear_dirty_for_io write-protects and cleans
        every PTE (folio_mkclean), the page goes under PG_writeback and a
        write request to the disk; when it completes the page is clean;
    the next write through the mapping faults again (wp_page_shared), so
        the filesystem hears of every page that turns dirty.

NOTE: simplified.  No dirty throttling (balance_dirty_pages), no per-bdi
or per-memcg thresholds, no inode metadata or journal writes (ext4's
fsync also commits the journal); background writeback writes the oldest
inodes whole.  tmpfs and shmem pages are dirty without being counted
(noop_dirty_folio), as in Linux, and never written.
"""
from ..arch import PAGE_SHIFT
from ..trace import traced, note
from .page_alloc import PG_dirty, PG_writeback
from . import filemap

DIRTY_EXPIRE_CENTISECS = 3000           # vm.dirty_expire_centisecs
DIRTY_WRITEBACK_CENTISECS = 500         # vm.dirty_writeback_centisecs
DIRTY_BACKGROUND_RATIO = 10             # vm.dirty_background_ratio (percent of available memory)
NS_PER_CENTISEC = 10_000_000


def writeback_init(m):
    """The flusher's state: the dirty inodes in the order they became dirty, and its next wakeup."""
    m.dirty_expire_centisecs = DIRTY_EXPIRE_CENTISECS
    m.dirty_writeback_centisecs = DIRTY_WRITEBACK_CENTISECS
    m.dirty_background_ratio = DIRTY_BACKGROUND_RATIO
    m.b_dirty = {}                      # File -> dirtied_when (ns), oldest first (wb->b_dirty)
    m.wb_next_ns = None                 # when the flusher wakes next (None: nothing dirty)
    m.wb_stats = dict(periodic=0, background=0, pages_written=0)


# -- dirtying ------------------------------------------------------------------------------

def folio_mark_dirty(m, file, index, pfn):
    """folio_mark_dirty: PG_dirty; for a disk file also NR_FILE_DIRTY, the dirty tag and the inode's
    place on the flusher's list (__mark_inode_dirty).  True if the page was clean.

    The dirty flag belongs to the folio: a store into one page of a large
    folio dirties all its pages, so NR_FILE_DIRTY grows by the folio's size
    and writeback writes it whole (seen on Linux 6.18: one store into a
    16-page readahead folio made 64 kB dirty).
    """
    head_index, nr = filemap.folio_range(file, index, pfn)
    if nr == 1:
        return page_mark_dirty(m, file, index, pfn)
    pages = file.i_mapping.pages
    dirtied = False
    for i in range(head_index, head_index + nr):
        if i in pages:
            dirtied |= page_mark_dirty(m, file, i, pages[i])
    return dirtied


def page_mark_dirty(m, file, index, pfn):
    """folio_mark_dirty's work for one page of the folio."""
    flags = m.mem_map.flags_
    if flags[pfn] & PG_dirty:
        return False
    flags[pfn] |= PG_dirty
    if filemap.is_shmem(file):
        return True                     # noop_dirty_folio: no accounting, no writeback
    filemap.mapping_of(file).dirty.add(index)
    m.node_stat["nr_dirty"] += 1
    m.node_stat["nr_dirtied"] += 1
    if file not in m.b_dirty:
        m.b_dirty[file] = m.clock_ns
        if m.wb_next_ns is None:
            # wb_wakeup_delayed: the flusher looks again after dirty_writeback_interval.
            m.wb_next_ns = m.clock_ns + m.dirty_writeback_centisecs * NS_PER_CENTISEC
    return True


def folio_account_cleaned(m, mapping, index):
    """folio_account_cleaned: a dirty page leaves the count (it is being dropped or written)."""
    mapping.dirty.discard(index)
    m.node_stat["nr_dirty"] -= 1
    if not mapping.dirty:
        m.b_dirty.pop(mapping.host, None)


def folio_cancel_dirty(m, file, index, pfn):
    """folio_cancel_dirty: truncation drops a dirty page without writing it."""
    m.mem_map.flags_[pfn] &= ~PG_dirty
    folio_account_cleaned(m, file.i_mapping, index)


def folio_clear_dirty_for_io(m, file, index, pfn):
    """folio_clear_dirty_for_io: write-protect and clean every PTE (folio_mkclean), then clear PG_dirty."""
    from . import memory
    memory.folio_mkclean(m, pfn)
    m.mem_map.flags_[pfn] &= ~PG_dirty
    folio_account_cleaned(m, file.i_mapping, index)


# -- writing -----------------------------------------------------------------------------------

def write_pages(file, indexes):
    """write_cache_pages for the given dirty indexes: clean them for I/O and send contiguous runs to
    the disk as write bios (folio_start_writeback on each).  Returns the pages written."""
    from ..block import REQ_OP_WRITE
    import numpy as np
    m = file.machine
    mapping = file.i_mapping
    flags = m.mem_map.flags_
    runs = []
    for index in sorted(indexes):
        pfn = mapping.pages.get(index)
        if pfn is None or not flags[pfn] & PG_dirty or flags[pfn] & PG_writeback:
            continue
        folio_clear_dirty_for_io(m, file, index, pfn)
        flags[pfn] |= PG_writeback
        m.mem_map.refcount_[pfn] += 1            # the bio's reference
        m.node_stat["nr_writeback"] += 1
        data = m.page_contents.get(pfn)
        if data is not None:
            file.disk_data[index] = bytes(data)
        else:
            file.disk_data.pop(index, None)
        if runs and runs[-1][0] + len(runs[-1][1]) == index:
            runs[-1][1].append(pfn)
        else:
            runs.append((index, [pfn]))
    n = 0
    for first, run in runs:
        reqs = m.disk.submit_bio(REQ_OP_WRITE, filemap.file_sector(file, first), run, end_page_writeback)
        for req in reqs:
            m.mem_map.io_done[np.asarray(req.pages, dtype=np.int64)] = req.done_ns
        n += len(run)
    if n:
        m.wb_stats["pages_written"] += n
        note(m, "writeback: %s, %d page(s) in %d run(s)", file.path, n, len(runs))
    return n


def end_page_writeback(m, req):
    """folio_end_writeback: the write is on the disk; the page is clean and idle again."""
    flags = m.mem_map.flags_
    for pfn in req.pages:
        flags[pfn] &= ~PG_writeback
        m.mem_map.refcount_[pfn] -= 1
    m.node_stat["nr_writeback"] -= len(req.pages)
    m.node_stat["nr_written"] += len(req.pages)


def filemap_fdatawrite_range(file, start, end):
    """__filemap_fdatawrite_range (WB_SYNC_NONE): start writing the dirty pages of bytes [start, end]."""
    mapping = file.i_mapping
    if mapping is None or not mapping.dirty:
        return 0
    first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    return write_pages(file, [i for i in mapping.dirty if first <= i <= last])


def filemap_fdatawait_range(file, start, end):
    """filemap_fdatawait_range: sleep until no page of bytes [start, end] is under writeback."""
    m = file.machine
    mapping = file.i_mapping
    first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    flags = m.mem_map.flags_
    t = m.clock_ns
    for index, pfn in mapping.pages.items():
        if first <= index <= last and flags[pfn] & PG_writeback:
            t = max(t, int(m.mem_map.io_done[pfn]))
    filemap.advance_to(m, t)


@traced(fmt={"file": lambda f: f.path}, result=str)
def file_write_and_wait_range(file, start, end):
    """file_write_and_wait_range: write the dirty pages of bytes [start, end] and wait for them; 0."""
    filemap.run_pending(file.machine)
    filemap_fdatawrite_range(file, start, end)
    filemap_fdatawait_range(file, start, end)
    return 0


# -- the flusher -------------------------------------------------------------------------------

def background_thresh(m):
    """domain_dirty_limits' background threshold: dirty_background_ratio of the dirtyable memory."""
    free = sum(z.nr_free_pages for z in m.zones)
    dirtyable = free + m.node_stat["nr_inactive_file"] + m.node_stat["nr_active_file"]
    return dirtyable * m.dirty_background_ratio // 100


@traced(result=lambda r: None)
def wb_workfn(m):
    """wb_workfn at its periodic wakeup: background writeback if over the threshold, then write every
    inode dirty for longer than dirty_expire (wb_check_old_data_flush); sleep again if dirt remains."""
    now = m.clock_ns
    m.wb_next_ns = None
    if m.node_stat["nr_dirty"] > background_thresh(m):
        m.wb_stats["background"] += 1
        for file in list(m.b_dirty):
            if m.node_stat["nr_dirty"] <= background_thresh(m):
                break
            filemap_fdatawrite_range(file, 0, (1 << 63) - 1)
    expire = m.dirty_expire_centisecs * NS_PER_CENTISEC
    old = [f for f, when in m.b_dirty.items() if when + expire <= now]
    if old:
        m.wb_stats["periodic"] += 1
        note(m, "wb_workfn: %d inode(s) dirty for over %d cs", len(old), m.dirty_expire_centisecs)
    for file in old:
        filemap_fdatawrite_range(file, 0, (1 << 63) - 1)
    if m.b_dirty:
        m.wb_next_ns = now + m.dirty_writeback_centisecs * NS_PER_CENTISEC


__all__ = ["folio_mark_dirty", "folio_clear_dirty_for_io", "write_pages", "file_write_and_wait_range",
           "wb_workfn", "DIRTY_EXPIRE_CENTISECS", "DIRTY_WRITEBACK_CENTISECS"]
