"""Readahead: how many pages a page-cache miss brings in, and when the next batch starts.

Models mm/readahead.c of Linux 6.18: struct file_ra_state (one per open
file), the on-demand algorithm (page_cache_sync_ra on a miss,
page_cache_async_ra on reaching a page marked PG_readahead), the initial
window and its ramp-up (get_init_ra_size, get_next_ra_size),
page_cache_ra_order / do_page_cache_ra / page_cache_ra_unbounded, which
allocate the pages, add them to the page cache locked and start the I/O
(read_pages), and force_page_cache_ra (POSIX_FADV_WILLNEED,
MADV_WILLNEED, the readahead(2) call, and reads of a FMODE_RANDOM file).

The window, as the kernel's comment draws it:

                           |<----- async_size ---------|
        |------------------- size -------------------->|
        |==================#===========================|
        ^start             ^page marked with PG_readahead

Each decision is traced as a note "start=%d size=%d async_size=%d".

Glossary: ra is a file's FileRaState, ractl a ReadaheadControl (one
readahead request), index a page offset in the file, ra_pages the window
limit (read_ahead_kb / 4), io_pages the device's largest request
(max_sectors_kb / 4).

NOTE: large folios.  ext4 (since 6.16) and XFS cache file data in large
folios: page_cache_ra_order allocates folios of order ra->order (raised
by 2 at each async readahead, capped by the window and
MAX_PAGECACHE_ORDER), and page_cache_async_ra trims the window's end to
a multiple of 1 << min(ra->order, ffs(max_pages) - 1).  mmlab follows
that arithmetic for disk files (m.fs.large_folios, True by default), so
the windows and the resident pages are the kernel's, but stores every
folio as order-0 pages (a folio of order k is 2**k pages added and read
together, its PG_readahead on the first, remembered as one folio: a
store dirties it whole, DONTNEED drops it only whole): mincore, Dirty
and the bytes written back are the kernel's; /proc/kpageflags would see
other folio sizes.  With
m.fs.large_folios = False (a filesystem without large folios, or a
kernel before 6.16) every folio is order 0, ra->order stays 0 and the
async trim is always to a multiple of 4 pages; tmpfs has no readahead.
"""
from ..arch import PAGE_SHIFT
from ..trace import traced, note
from . import filemap

VM_READAHEAD_PAGES = 32         # 128 KiB (include/linux/mm.h)
RA_CHUNK_PAGES = (2 * 1024 * 1024) >> PAGE_SHIFT    # force_page_cache_ra's 2 MiB chunks
ULONG_MAX = (1 << 64) - 1

# f_mode bits for readahead (include/linux/fs.h)
FMODE_RANDOM = 0x1000
FMODE_NOREUSE = 0x800000


class FileRaState:
    """struct file_ra_state: the readahead state of one open file.

    start, size, async_size: the last window read (see the module's
    drawing); ra_pages: its limit, copied from the device at open;
    mmap_miss: page-cache misses of mmap faults lately (read-around stops
    above MMAP_LOTSAMISS); prev_pos: the byte after the last read (-1 at
    open); order: the folio order readahead last used.
    """

    __slots__ = ("start", "size", "async_size", "ra_pages", "mmap_miss", "prev_pos", "order")

    def __init__(self, ra_pages):
        self.start = self.size = self.async_size = 0
        self.ra_pages = ra_pages
        self.mmap_miss = 0
        self.prev_pos = -1
        self.order = 0

    def window(self):
        """(start, size, async_size)."""
        return (self.start, self.size, self.async_size)

    def __repr__(self):
        return (f"file_ra_state(start={self.start}, size={self.size}, async_size={self.async_size}, "
                f"ra_pages={self.ra_pages}, mmap_miss={self.mmap_miss}, prev_pos={self.prev_pos})")


def file_ra_state_init(f):
    """file_ra_state_init: at open, ra_pages comes from the device (bdi->ra_pages)."""
    return FileRaState(f.file.machine.disk.ra_pages if f.file.backing == "disk" else 0)


class ReadaheadControl:
    """struct readahead_control: one readahead request: the file, its ra state and the index reached."""

    __slots__ = ("file", "mapping", "ra", "_index", "_nr_pages", "machine", "inode")

    def __init__(self, f, index, ra=None):
        self.file = f                           # the OpenFile (struct file), or None
        self.inode = f.file
        self.mapping = filemap.mapping_of(f.file)
        self.ra = ra if ra is not None else f.f_ra
        self._index = index
        self._nr_pages = 0
        self.machine = f.file.machine

    def __repr__(self):
        return f"<ractl {self.inode.path!r} index={self._index}>"


def ra_fmt(ractl):
    return f"{ractl.inode.path}@{ractl._index}"


def note_window(ractl, ra):
    note(ractl, "start=%d size=%d async_size=%d", ra.start, ra.size, ra.async_size)


# -- allocating the pages and starting the I/O -----------------------------------------

MAX_PAGECACHE_ORDER = 9         # x86_64: min(MAX_XAS_ORDER, HPAGE_PMD_ORDER)


def read_pages(ractl, index, pfns):
    """read_pages: submit the new, locked pages at index.. as one bio (->readahead)."""
    if pfns:
        filemap.submit_read(ractl.inode, index, pfns)
        ractl._index = index + len(pfns)


def add_run(ractl, index, n, mark):
    """Allocate and add n locked pages at index (mark gets PG_readahead); returns the pages added.

    NOTE: the pages of a run are allocated in one alloc_pages_bulk call
    where Linux allocates folio by folio; fewer than n means memory ran out.
    """
    pfns = filemap.filemap_alloc_folios(ractl.machine, n)
    if pfns:
        filemap.filemap_add_folios_locked(ractl.inode, index, pfns, mark)
    return pfns


@traced(fmt={"ractl": ra_fmt})
def page_cache_ra_unbounded(ractl, nr_to_read, lookahead_size):
    """page_cache_ra_unbounded: add nr_to_read pages from ractl's index, locked, and read them.

    Pages already cached are skipped: the batch before one is submitted
    on its own.  The page at nr_to_read - lookahead_size gets
    PG_readahead (if it is new).  Stops early when memory runs out.
    """
    index = ractl._index
    mark = index + nr_to_read - lookahead_size if lookahead_size <= nr_to_read else None
    pages = filemap.mapping_of(ractl.inode).pages
    i = 0
    while i < nr_to_read:
        if index + i in pages:
            # Already present: go on after it (the batch before it was read on its own).
            i += 1
            ractl._index = index + i
            continue
        j = i + 1
        while j < nr_to_read and index + j not in pages:
            j += 1
        pfns = add_run(ractl, index + i, j - i, mark)
        read_pages(ractl, index + i, pfns)
        if len(pfns) < j - i:
            break                           # out of memory: what was added is being read
        i = j


def do_page_cache_ra(ractl, nr_to_read, lookahead_size):
    """do_page_cache_ra: page_cache_ra_unbounded, never past the page holding the file's last byte."""
    isize = ractl.inode.size
    if isize == 0:
        return
    end_index = (isize - 1) >> PAGE_SHIFT
    if ractl._index > end_index:
        return
    if nr_to_read > end_index - ractl._index:
        nr_to_read = end_index - ractl._index + 1
    page_cache_ra_unbounded(ractl, nr_to_read, lookahead_size)


def mapping_large_folio_support(file):
    """mapping_large_folio_support: ext4 (since 6.16) caches disk files in large folios; tmpfs by
    default does not.  m.fs.large_folios turns the ext4 behaviour off (as older kernels were)."""
    return file.backing == "disk" and file.machine.fs.large_folios


def ilog2(n):
    return n.bit_length() - 1


@traced(fmt={"ractl": ra_fmt})
def page_cache_ra_order(ractl, ra):
    """page_cache_ra_order: read the window ra describes, from ractl's index, in folios of ra->order.

    Folio orders: ra->order capped by the mapping's largest (MAX_PAGECACHE_ORDER)
    and ilog2(size), smaller where the index is not aligned to it or the
    folio would pass the window's or the file's end; the PG_readahead mark
    goes on the folio holding start + size - async_size.  A folio that
    meets a page already cached stops the loop, and the rest of the window
    is read page by page (do_page_cache_ra).  Without large folio support,
    ra->order is 0 and everything is read page by page.
    NOTE: mmlab keeps only order-0 pages: a folio of order k is 2**k pages
    added and read together, the mark on its first page.  Residency and
    windows are the kernel's; a fault on a marked folio's later page
    (rather than its first) starts no readahead here.
    """
    note_window(ractl, ra)
    inode = ractl.inode
    start = index = ractl._index
    if not mapping_large_folio_support(inode):
        ra.order = 0
        if ra.size > 0:
            do_page_cache_ra(ractl, ra.size, ra.async_size)
        return
    if inode.size == 0:
        return
    limit = min((inode.size - 1) >> PAGE_SHIFT, index + ra.size - 1)
    mark = index + ra.size - ra.async_size
    new_order = max(0, min(MAX_PAGECACHE_ORDER, ra.order, ilog2(ra.size) if ra.size else 0))
    ra.order = new_order
    pages = filemap.mapping_of(inode).pages
    run_start, run = index, 0
    folios = []                             # (index, order) of the folios laid out
    err = False
    while index <= limit:
        order = new_order
        if index & ((1 << order) - 1):
            order = ffs(index) - 1
        while order > 0 and index + (1 << order) - 1 > limit:
            order -= 1
        nr = 1 << order
        if not pages.keys().isdisjoint(range(index, index + nr)):
            err = True                      # filemap_add_folio: -EEXIST
            break
        run += nr
        folios.append((index, order))
        index += nr
        if mark is not None and index - nr <= mark < index:
            mark = index - nr               # ra_alloc_folio: the mark rounded down to the folio
    if run:
        pfns = add_run(ractl, run_start, run, mark if run_start <= mark < run_start + run else None)
        filemap.set_folio_orders(ractl.machine, run_start, pfns, folios)
        read_pages(ractl, run_start, pfns)
        if len(pfns) < run:
            return                          # -ENOMEM: page_cache_ra_order gives up
        ractl._index = index
    if not err:
        return
    # A page in the way: the rest of the window, page by page.
    if ra.size > index - start:
        do_page_cache_ra(ractl, ra.size - (index - start), ra.async_size)


@traced(fmt={"ractl": ra_fmt})
def force_page_cache_ra(ractl, nr_to_read):
    """force_page_cache_ra: read nr_to_read pages from ractl's index, with no window logic.

    Capped at max(io_pages, ra_pages) pages (the device's largest request
    or the readahead window, whichever is larger), read in 2 MiB chunks.
    """
    m = ractl.machine
    max_pages = max(m.disk.io_pages, ractl.ra.ra_pages)
    if nr_to_read > max_pages:
        note(ractl, "force_page_cache_ra: %d pages capped to max(io_pages, ra_pages) = %d",
             nr_to_read, max_pages)
        nr_to_read = max_pages
    index = ractl._index
    while nr_to_read:
        chunk = min(RA_CHUNK_PAGES, nr_to_read)
        ractl._index = index
        note(ractl, "start=%d size=%d async_size=%d", index, chunk, 0)
        do_page_cache_ra(ractl, chunk, 0)
        index += chunk
        nr_to_read -= chunk


# -- the window sizes --------------------------------------------------------------

def roundup_pow_of_two(n):
    return 1 << (n - 1).bit_length() if n > 1 else 1


def get_init_ra_size(size, max_pages):
    """get_init_ra_size: the first window: the request rounded up to a power of two, x4 if small, x2 if medium."""
    newsize = roundup_pow_of_two(size)
    if newsize <= max_pages // 32:
        return newsize * 4
    if newsize <= max_pages // 4:
        return newsize * 2
    return max_pages


def get_next_ra_size(ra, max_pages):
    """get_next_ra_size: the next window: x4 while small, x2 up to max/2, then max."""
    cur = ra.size
    if cur < max_pages // 16:
        return 4 * cur
    if cur <= max_pages // 2:
        return 2 * cur
    return max_pages


def ractl_max_pages(ractl, req_size):
    """ractl_max_pages: the window limit; a request larger than ra_pages may use up to io_pages."""
    max_pages = ractl.ra.ra_pages
    io_pages = ractl.machine.disk.io_pages
    if req_size > max_pages and io_pages > max_pages:
        max_pages = min(req_size, io_pages)
    return max_pages


def page_cache_prev_miss(mapping, index, max_scan):
    """page_cache_prev_miss: the first index at or below `index` not cached, looking back max_scan pages.

    Returns ULONG_MAX when the scan wraps below 0 (everything down to page 0 is cached).
    """
    pages = mapping.pages
    for k in range(max_scan):
        i = index - k
        if i < 0:
            return ULONG_MAX
        if i not in pages:
            return i
    return index - max_scan


def page_cache_next_miss(mapping, index, max_scan):
    """page_cache_next_miss: the first index at or above `index` not cached, looking max_scan pages."""
    pages = mapping.pages
    for k in range(max_scan):
        if index + k not in pages:
            return index + k
    return index + max_scan


# -- on-demand readahead ------------------------------------------------------------

@traced(fmt={"ractl": ra_fmt})
def page_cache_sync_ra(ractl, req_count):
    """page_cache_sync_ra: a read (or fault) missed the cache at ractl's index; start a window there.

    - FMODE_RANDOM, or readahead off (ra_pages 0): read just what was
      asked (force_page_cache_ra; 1 page when readahead is off);
    - start of file, a request larger than the window, or a sequential
      miss (index at or one past prev_pos's page): a fresh window,
      get_init_ra_size(req_count), async tail = size - req_count;
    - otherwise count the cached pages just before index: no history
      means a random read (read just req_count, no state change);
      history means an interleaved stream (a window of history + request,
      async_size 1; doubled history if cached from page 0).
    """
    ra, index = ractl.ra, ractl._index
    do_forced_ra = ractl.file is not None and bool(ractl.file.f_mode & FMODE_RANDOM)
    if not ra.ra_pages:
        req_count = 1
        do_forced_ra = True
    if do_forced_ra:
        note(ractl, "page_cache_sync_ra: %s: read %d page(s) as asked",
             "readahead off" if not ra.ra_pages else "FMODE_RANDOM", req_count)
        force_page_cache_ra(ractl, req_count)
        return
    max_pages = ractl_max_pages(ractl, req_count)
    prev_index = (ra.prev_pos & ULONG_MAX) >> PAGE_SHIFT
    if index == 0 or req_count > max_pages or ((index - prev_index) & ULONG_MAX) <= 1:
        # Start of file, oversized read, or a sequential cache miss.
        ra.start = index
        ra.size = get_init_ra_size(req_count, max_pages)
        ra.async_size = ra.size - req_count if ra.size > req_count else ra.size >> 1
    else:
        miss = page_cache_prev_miss(ractl.mapping, index - 1, max_pages)
        contig_count = (index - miss - 1) & ULONG_MAX
        if contig_count <= req_count:
            # A standalone small random read: read it as is; the window is untouched.
            note(ractl, "page_cache_sync_ra: random read of %d page(s) at %d", req_count, index)
            do_page_cache_ra(ractl, req_count, 0)
            return
        if miss == ULONG_MAX:
            contig_count *= 2           # cached from the start: a long stream
        ra.start = index
        ra.size = min(contig_count + req_count, max_pages)
        ra.async_size = 1
    ra.order = 0
    ractl._index = ra.start
    page_cache_ra_order(ractl, ra)


@traced(fmt={"ractl": ra_fmt, "pfn": hex})
def page_cache_async_ra(ractl, pfn, req_count):
    """page_cache_async_ra: a read reached a page marked PG_readahead; read the next window now.

    If the page is where the last window put its mark, the stream is
    sequential: the next window starts after it, ramped up
    (get_next_ra_size), all of it async.  Otherwise (interleaved
    streams) the window is rebuilt from the cached pages after the mark.
    The window's end is trimmed to a multiple of 1 << min(order + 2,
    ffs(max_pages) - 1) pages.
    """
    ra, index = ractl.ra, ractl._index
    if not ra.ra_pages:
        return
    m = ractl.machine
    if filemap.folio_test_writeback(m, pfn):
        return                          # PG_readahead shares its bit with PG_reclaim
    filemap.folio_clear_readahead(m, pfn)
    max_pages = ractl_max_pages(ractl, req_count)
    nr = 1 << m.mem_map.folio_order_[pfn]             # folio_nr_pages
    expected = ra.start + ra.size - ra.async_size
    expected -= expected % nr
    if index == expected:
        ra.start += ra.size
        ra.size = max(ra.size, get_next_ra_size(ra, max_pages))
    else:
        start = page_cache_next_miss(ractl.mapping, index + 1, max_pages)
        if not start or start - index > max_pages:
            return
        note(ractl, "page_cache_async_ra: marker at %d, expected %d: window rebuilt", index, expected)
        ra.start = start
        ra.size = start - index         # the old async_size
        ra.size += req_count
        ra.size = get_next_ra_size(ra, max_pages)
    ra.order += 2
    align = 1 << min(ra.order, ffs(max_pages) - 1)
    end = ra.start + ra.size
    aligned_end = end - end % align
    if aligned_end > ra.start:
        ra.size -= end - aligned_end
    ra.async_size = ra.size
    ractl._index = ra.start
    page_cache_ra_order(ractl, ra)


def ffs(x):
    """ffs: the 1-based position of the lowest set bit (0 for 0)."""
    return (x & -x).bit_length()


# -- entry points for madvise and fadvise -----------------------------------------------

def force_page_cache_readahead(f, index, nr_to_read):
    """force_page_cache_readahead: force_page_cache_ra for an open file from index."""
    force_page_cache_ra(ReadaheadControl(f, index), nr_to_read)


__all__ = ["FileRaState", "ReadaheadControl", "file_ra_state_init", "page_cache_sync_ra",
           "page_cache_async_ra", "page_cache_ra_order", "page_cache_ra_unbounded",
           "force_page_cache_ra", "force_page_cache_readahead", "get_init_ra_size",
           "get_next_ra_size", "VM_READAHEAD_PAGES", "FMODE_RANDOM", "FMODE_NOREUSE"]
