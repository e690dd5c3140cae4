"""Readahead windows, each derived by hand from Linux 6.18's mm/readahead.c and mm/filemap.c.

The comment on each case names the kernel function and the arithmetic
that gives the expected window; the model is only asked what it did.
ra_pages is read_ahead_kb / 4 (32 for the default 128 KiB); io_pages is
max_sectors_kb / 4 (320 for the presets' 1280 KiB).
"""
import pytest

from mmlab import Machine
from mmlab.arch import PAGE_SIZE
from mmlab.mm import filemap, readahead
from mmlab.mm.readahead import get_init_ra_size, get_next_ra_size, FileRaState
from mmlab.uapi import (PROT_READ, MAP_SHARED, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED,
                        POSIX_FADV_RANDOM, POSIX_FADV_SEQUENTIAL, POSIX_FADV_WILLNEED, POSIX_FADV_DONTNEED)

PG = PAGE_SIZE
FILE_PAGES = 4096                   # a 16 MiB file


def runs(indexes):
    """[(first, end)] of consecutive indexes, end excluded."""
    out = []
    for i in indexes:
        if out and out[-1][1] == i:
            out[-1][1] += 1
        else:
            out.append([i, i + 1])
    return [tuple(r) for r in out]


def setup(ra_kb=128, large_folios=True, pages=FILE_PAGES):
    m = Machine(ram="256MiB", seed=0)
    m.set_read_ahead_kb(ra_kb)
    m.fs.large_folios = large_folios
    f = m.fs.create("/data/file", pages * PG)
    p = m.spawn("reader")
    fd = p.open("/data/file")
    return m, p, f, fd


def resident(m, f):
    """Pages mincore would report once the I/O under way is done."""
    m.idle(10**9)
    return runs(filemap.uptodate_indexes(f))


def window(p, fd):
    return p.fds[fd].f_ra.window()


# -- the window arithmetic -------------------------------------------------------------

@pytest.mark.parametrize("size, max_pages, expected", [
    (1, 32, 4),         # get_init_ra_size: 1 <= 32/32: x4
    (2, 32, 4),         # roundup 2; 2 > 1, 2 <= 32/4: x2
    (3, 32, 8),         # roundup 4; 4 <= 8: x2
    (8, 32, 16),        # 8 <= 8: x2
    (9, 32, 32),        # roundup 16 > 8: max
    (32, 32, 32),       # the request is the window: max
    (1, 2048, 4),       # 1 <= 64: x4
    (16, 2048, 64),     # 16 <= 64: x4
    (100, 2048, 256),   # roundup 128; 128 <= 512: x2
])
def test_get_init_ra_size(size, max_pages, expected):
    assert get_init_ra_size(size, max_pages) == expected


@pytest.mark.parametrize("cur, max_pages, expected", [
    (1, 32, 4),         # get_next_ra_size: 1 < 32/16: x4
    (4, 32, 8),         # 4 >= 2, 4 <= 16: x2
    (16, 32, 32),       # 16 <= 16: x2
    (32, 32, 32),       # above max/2: max
    (64, 2048, 256),    # 64 < 128: x4
])
def test_get_next_ra_size(cur, max_pages, expected):
    ra = FileRaState(max_pages)
    ra.size = cur
    assert get_next_ra_size(ra, max_pages) == expected


# -- read(2) / pread(2): page_cache_sync_ra and page_cache_async_ra ----------------------------

def test_first_pread_of_4k_reads_4_pages():
    # page_cache_sync_ra at index 0: get_init_ra_size(1, 32) = 4, async_size = 4 - 1 = 3
    m, p, f, fd = setup()
    p.pread(fd, 4096, 0)
    assert window(p, fd) == (0, 4, 3)
    assert resident(m, f) == [(0, 4)]


def test_first_pread_marks_page_at_start_plus_size_minus_async():
    # the PG_readahead page is start + size - async_size = 1
    m, p, f, fd = setup()
    p.pread(fd, 4096, 0)
    marked = [i for i, pfn in f.i_mapping.pages.items() if m.mem_map.flags_[pfn] & filemap.PG_readahead]
    assert marked == [1]


@pytest.mark.parametrize("length, expected", [
    # init(16, 32) = 32 (16 > 8: max), async 32 - 16; the copy stops at the marker (16)
    # (filemap_get_read_batch), whose async readahead is (32, 32, 32)
    (16 * PG, ["start=0 size=32 async_size=16"]),
    (32 * PG, ["start=0 size=32 async_size=16", "start=32 size=32 async_size=32"]),
    # ractl_max_pages: 256 > 32 and io_pages 320 > 32: 256; init(256, 256) = 256, async 128;
    # at the marker 128: max_pages = min(128, 320), next(256, 128) = 128 < 256: size stays 256
    (256 * PG, ["start=0 size=256 async_size=128", "start=256 size=256 async_size=256"]),
])
def test_first_pread_windows(length, expected):
    m, p, f, fd = setup()
    with m.trace() as t:
        p.pread(fd, length, 0)
    assert [n for n in t.notes() if n.startswith("start=")] == expected


def test_pread_ramp_up_large_folios():
    # sync (0,4,3); marker 1 -> async (4,8,8), order 2; marker 4 -> start 12, next(8) = 16, order 4:
    # end 28 rounded down to 16 -> (12,4,4); marker 12 -> next(4) = 8, order 2+2 = 4 -> (16,8,8)
    m, p, f, fd = setup()
    seen = []
    for page in (0, 1, 4, 12):
        p.pread(fd, 4096, page * PG)
        seen.append(window(p, fd))
    assert seen == [(0, 4, 3), (4, 8, 8), (12, 4, 4), (16, 8, 8)]
    assert resident(m, f) == [(0, 24)]


def test_pread_ramp_up_order_0_folios():
    # without large folios ra->order is 0 at each async window: order 2, align 4: 28 stays 28
    m, p, f, fd = setup(large_folios=False)
    seen = []
    for page in (0, 1, 4, 12):
        p.pread(fd, 4096, page * PG)
        seen.append(window(p, fd))
    assert seen == [(0, 4, 3), (4, 8, 8), (12, 16, 16), (28, 32, 32)]


def test_pread_random_reads_one_page():
    # prev_pos -1: not sequential; page_cache_prev_miss finds 99 missing: contig 0 <= 1: do_page_cache_ra(1)
    m, p, f, fd = setup()
    p.pread(fd, 4096, 100 * PG)
    assert resident(m, f) == [(100, 101)]
    assert window(p, fd) == (0, 0, 0)                       # the window is not touched


def test_pread_after_random_read_is_sequential():
    # prev_pos = 101 * 4096 after the first read; index 101 - prev_index 101 = 0 <= 1: init(1) = 4
    m, p, f, fd = setup()
    p.pread(fd, 4096, 100 * PG)
    p.pread(fd, 4096, 101 * PG)
    assert window(p, fd) == (101, 4, 3)
    assert resident(m, f) == [(100, 105)]


def test_pread_with_readahead_off_reads_each_page_alone():
    # ra_pages 0: page_cache_sync_ra forces req_count = 1; 16 misses, 16 one-page requests
    m, p, f, fd = setup(ra_kb=0)
    p.pread(fd, 16 * PG, 0)
    assert resident(m, f) == [(0, 16)]
    assert m.disk.stats["reads"] == 16


def test_fadvise_random_pread_reads_the_request():
    # FMODE_RANDOM: page_cache_sync_ra -> force_page_cache_ra(16): pages 0..15 in one request
    m, p, f, fd = setup()
    p.fadvise(fd, 0, 0, POSIX_FADV_RANDOM)
    p.pread(fd, 16 * PG, 0)
    assert resident(m, f) == [(0, 16)]
    assert m.disk.stats["reads"] == 1


def test_fadvise_willneed_is_capped_at_io_pages():
    # force_page_cache_ra: min(4096, max(io_pages 320, ra_pages 32)) = 320 pages
    m, p, f, fd = setup()
    p.fadvise(fd, 0, 0, POSIX_FADV_WILLNEED)
    assert resident(m, f) == [(0, 320)]


def test_fadvise_willneed_cap_follows_read_ahead_kb():
    # ra_pages 2048 > io_pages 320: the cap is 2048 pages (8 MiB)
    m, p, f, fd = setup(ra_kb=8192)
    p.fadvise(fd, 0, 0, POSIX_FADV_WILLNEED)
    assert resident(m, f) == [(0, 2048)]


def test_fadvise_sequential_doubles_ra_pages():
    # generic_fadvise: f_ra.ra_pages = bdi->ra_pages * 2
    m, p, f, fd = setup()
    p.fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
    assert p.fds[fd].f_ra.ra_pages == 64


def test_set_read_ahead_kb_acts_on_files_opened_later():
    # file_ra_state_init copies bdi->ra_pages at open
    m, p, f, fd = setup()
    m.set_read_ahead_kb(512)
    fd2 = p.open("/data/file")
    assert (p.fds[fd].f_ra.ra_pages, p.fds[fd2].f_ra.ra_pages) == (32, 128)


# -- mmap faults: do_sync_mmap_readahead, do_async_mmap_readahead -----------------------------

def mapped(ra_kb=128, **kw):
    m, p, f, fd = setup(ra_kb, **kw)
    a = p.mmap(0, FILE_PAGES * PG, PROT_READ, MAP_SHARED, fd, 0)
    return m, p, f, fd, a


def test_read_around_is_centred_on_the_fault():
    # read-around: start = 100 - 32/2 = 84, size 32, async_size 32/4 = 8
    m, p, f, fd, a = mapped()
    p.touch(a + 100 * PG, 1)
    assert window(p, fd) == (84, 32, 8)
    assert resident(m, f) == [(84, 116)]


def test_read_around_at_start_clamps_at_0():
    # max_t(long, 0, 5 - 16) = 0
    m, p, f, fd, a = mapped()
    p.touch(a + 5 * PG, 1)
    assert resident(m, f) == [(0, 32)]


def test_read_around_at_eof_is_cut():
    # start 4079; do_page_cache_ra stops at the page holding the last byte (4095)
    m, p, f, fd, a = mapped()
    p.touch(a + 4095 * PG, 1)
    assert resident(m, f) == [(4079, 4096)]


def test_read_around_miss_is_one_major_fault():
    # filemap_fault: not cached: VM_FAULT_MAJOR; retried with FAULT_FLAG_TRIED
    m, p, f, fd, a = mapped()
    p.touch(a + 100 * PG, 1)
    assert p.rusage() == (0, 1)


def test_madv_random_reads_one_page():
    # do_sync_mmap_readahead: VM_RAND_READ: no readahead; filemap_fault reads the page alone
    m, p, f, fd, a = mapped()
    p.madvise(a, FILE_PAGES * PG, MADV_RANDOM)
    p.touch(a + 100 * PG, 1)
    assert resident(m, f) == [(100, 101)]


def test_madv_sequential_reads_ahead_from_the_fault():
    # VM_SEQ_READ: page_cache_sync_ra(ra_pages) at 100 with no history: do_page_cache_ra(32)
    m, p, f, fd, a = mapped()
    p.madvise(a, FILE_PAGES * PG, MADV_SEQUENTIAL)
    p.touch(a + 100 * PG, 1)
    assert resident(m, f) == [(100, 132)]


def test_madv_willneed_whole_file_is_capped():
    # madvise_willneed -> vfs_fadvise(WILLNEED) -> force_page_cache_ra: 320 pages
    m, p, f, fd, a = mapped()
    p.madvise(a, FILE_PAGES * PG, MADV_WILLNEED)
    assert resident(m, f) == [(0, 320)]


def test_madv_willneed_range():
    # exactly the 64 pages asked for, from the mapping's file offset
    m, p, f, fd, a = mapped()
    p.madvise(a + 1000 * PG, 64 * PG, MADV_WILLNEED)
    assert resident(m, f) == [(1000, 1064)]


def test_fadvise_random_does_not_stop_read_around():
    # FMODE_RANDOM is for read(2); the fault path looks at VM_RAND_READ only
    m, p, f, fd, a = mapped()
    p.fadvise(fd, 0, 0, POSIX_FADV_RANDOM)
    p.touch(a + 100 * PG, 1)
    assert resident(m, f) == [(84, 116)]


def test_async_mmap_readahead_at_the_marker():
    # read-around at 0: (0,32,8), marker 24; the fault at 24: page_cache_async_ra: expected
    # 0 + 32 - 8 = 24: start 32, size max(32, next(32)) = 32, all async
    m, p, f, fd, a = mapped()
    p.touch(a, 24 * PG)
    before = p.rusage()
    p.touch(a + 24 * PG, 1)
    assert window(p, fd) == (32, 32, 32)
    assert resident(m, f) == [(0, 64)]
    assert (p.rusage()[0] - before[0], p.rusage()[1] - before[1]) == (1, 0)   # minor: no FAULT_FLAG_TRIED


def test_fault_around_skips_the_marker_page():
    # next_uptodate_folio skips PG_readahead folios: page 24 stays unmapped after faults on 0 and 16
    m, p, f, fd, a = mapped()
    p.touch(a, 24 * PG)
    assert p.mincore(a + 24 * PG, PG) == [True]              # cached ...
    assert p.pagemap(a + 24 * PG) == 0                       # ... but not mapped


def test_mmap_sequential_faults():
    # touch 0: 1 major (read-around 0..31); 1..23: fault-around maps 16 a fault: 1 minor at 16;
    # 24: the marker, 1 minor
    m, p, f, fd, a = mapped()
    steps = []
    for start, n in ((0, 1), (1, 23), (24, 1)):
        before = p.rusage()
        p.touch(a + start * PG, n * PG)
        after = p.rusage()
        steps.append((after[0] - before[0], after[1] - before[1]))
    assert steps == [(0, 1), (1, 0), (1, 0)]


def test_mmap_miss_stops_read_around():
    # without fault-around no hit lowers mmap_miss: the 101st miss has mmap_miss 101 > MMAP_LOTSAMISS
    m, p, f, fd, a = mapped()
    m.fault_around_bytes = PG
    for i in range(101):
        p.touch(a + i * 40 * PG, 1)
    assert p.fds[fd].f_ra.mmap_miss == 101
    assert resident(m, f)[-1] == (4000, 4001)               # the last miss read its page alone


def test_trace_notes_each_window():
    # every readahead decision is a note "start=%d size=%d async_size=%d"
    m, p, f, fd = setup()
    with m.trace() as t:
        p.pread(fd, 4096, 0)
    assert "start=0 size=4 async_size=3" in t.notes()
    assert "page_cache_sync_ra" in t.calls() and "page_cache_ra_order" in t.calls()


def test_readahead_io_is_asynchronous():
    # after the async readahead at the marker, pages 32..63 are cached but not uptodate until the
    # device completes the request
    m, p, f, fd, a = mapped()
    p.touch(a, 25 * PG)
    assert filemap.cached_indexes(f) == list(range(64))
    assert filemap.uptodate_indexes(f) == list(range(32))
    assert p.mincore(a + 32 * PG, PG) == [False]
    m.idle(10**9)
    assert p.mincore(a + 32 * PG, PG) == [True]


def test_fault_on_a_page_under_io_waits_and_is_minor():
    # the page is cached but locked: lock_folio_maybe_drop_mmap sleeps, VM_FAULT_RETRY without
    # VM_FAULT_MAJOR: the retry is minor; the clock moves to the request's completion
    m, p, f, fd, a = mapped()
    p.touch(a, 25 * PG)
    pfn = f.i_mapping.pages[40]
    done = int(m.mem_map.io_done[pfn])
    before = p.rusage()
    p.touch(a + 40 * PG, 1)
    assert (p.rusage()[0] - before[0], p.rusage()[1] - before[1]) == (1, 0)
    assert m.clock_ns >= done


def test_readahead_module_names():
    # the functions the chapter and the trace name exist under their kernel names
    for name in ("page_cache_sync_ra", "page_cache_async_ra", "page_cache_ra_order", "force_page_cache_ra",
                 "page_cache_ra_unbounded", "get_init_ra_size", "get_next_ra_size"):
        assert callable(getattr(readahead, name))


def test_madv_hugepage_reads_two_pmd_folios():
    # do_sync_mmap_readahead, VM_HUGEPAGE: index rounded down to 512, size 2 * 512, async 512
    # (order 9): the fault at 1029 reads 1024..2047 and marks 1536
    m, p, f, fd, a = mapped()
    from mmlab.uapi import MADV_HUGEPAGE
    p.madvise(a, FILE_PAGES * PG, MADV_HUGEPAGE)
    p.touch(a + 1029 * PG, 1)
    assert resident(m, f) == [(1024, 2048)]
    assert p.rusage() == (0, 1)


def test_pmd_size_folio_is_mapped_whole():
    # filemap_map_pmd: the retried fault maps all 512 pages of the folio: no more faults there
    m, p, f, fd, a = mapped()
    from mmlab.uapi import MADV_HUGEPAGE
    p.madvise(a, FILE_PAGES * PG, MADV_HUGEPAGE)
    p.touch(a + 1029 * PG, 1)
    p.touch(a + 1024 * PG, 512 * PG)
    assert p.rusage() == (0, 1)
    assert m.node_stat["nr_mapped"] == 512


def test_fadvise_dontneed_leaves_large_folios_it_cuts():
    # find_lock_entries omits a folio partly outside the range: after the 4 KiB pread ramp (pages
    # 0..104) the cache is 0..159 in folios up to order 5; DONTNEED of 34..39 (inside the order-5
    # folio 32..63) drops nothing, DONTNEED of 0..31 drops exactly the folios there
    m, p, f, fd = setup()
    for page in range(105):
        p.pread(fd, 4096, page * PG)
    assert resident(m, f) == [(0, 160)]
    p.fadvise(fd, 34 * PG, 6 * PG, POSIX_FADV_DONTNEED)
    assert resident(m, f) == [(0, 160)]
    p.fadvise(fd, 0, 32 * PG, POSIX_FADV_DONTNEED)
    assert resident(m, f) == [(32, 160)]
