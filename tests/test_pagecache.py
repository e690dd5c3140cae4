"""The page cache seen through system calls: pread, mincore, madvise, fadvise, msync, drop_caches.

Bad input: each failing call raises what Linux returns (or TypeError /
ValueError naming the parameter) and changes nothing.
"""
import pytest

from mmlab import Machine
from mmlab.arch import PAGE_SIZE
from mmlab.mm import filemap
from mmlab.uapi import (PROT_READ, PROT_WRITE, MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, O_RDWR, O_WRONLY,
                        MADV_DONTNEED, MADV_FREE, MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED,
                        MS_SYNC, MS_ASYNC, POSIX_FADV_DONTNEED, POSIX_FADV_NORMAL, POSIX_FADV_WILLNEED,
                        POSIX_FADV_SEQUENTIAL, POSIX_FADV_NOREUSE)

PG = PAGE_SIZE
EBADF, EINVAL, ESPIPE = 9, 22, 29


@pytest.fixture
def env():
    m = Machine(ram="128MiB", seed=0)
    f = m.fs.create("/data/file", 256 * PG)
    p = m.spawn("a.out")
    fd = p.open("/data/file", O_RDWR)
    return m, p, f, fd


def state(m, f):
    """What a failed call must leave as it was."""
    return (filemap.cached_indexes(f), m.clock_ns, dict(m.disk.stats), dict(m.node_stat))


# -- pread and read ---------------------------------------------------------------------------

def test_pread_returns_the_bytes_and_clips_at_eof(env):
    # 100 bytes asked 50 before the end: 50 come back; past the end: nothing
    m, p, f, fd = env
    assert len(p.pread(fd, 100, 256 * PG - 50)) == 50
    assert p.pread(fd, 100, 256 * PG) == b""


def test_pread_waits_for_the_disk(env):
    # a miss takes at least the SSD's latency of simulated time; a second read of it none
    m, p, f, fd = env
    p.pread(fd, PG, 0)
    t = m.clock_ns
    assert t >= 90_000
    p.pread(fd, PG, 0)
    assert m.clock_ns - t < 10_000


def test_read_moves_the_position(env):
    # read(2) goes on where the last ended
    m, p, f, fd = env
    p.read(fd, 10)
    p.read(fd, 10)
    assert p.fds[fd].f_pos == 20


def test_written_data_survives_eviction(env):
    # a store through a shared mapping, msync, drop_caches: pread reads it back from the disk
    m, p, f, fd = env
    a = p.mmap(0, 256 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    p.store(a + 5 * PG + 7, b"hello")
    p.msync(a, 256 * PG, MS_SYNC)
    p.munmap(a, 256 * PG)
    m.drop_caches(1)
    assert filemap.cached_indexes(f) == []
    assert p.pread(fd, 5, 5 * PG + 7) == b"hello"


def test_tmpfs_pread_of_a_hole_caches_nothing():
    # shmem_file_read_iter: a hole reads as zeros, no page is allocated, no I/O
    m = Machine(ram="128MiB")
    f = m.fs.create("/dev/shm/x", 16 * PG)
    p = m.spawn()
    fd = p.open("/dev/shm/x")
    assert p.pread(fd, 4 * PG, 0) == bytes(4 * PG)
    assert (filemap.cached_indexes(f), m.disk.stats["reads"]) == ([], 0)


@pytest.mark.parametrize("call, exc", [
    (lambda p, fd: p.pread(99, PG, 0), OSError),            # EBADF: no such descriptor
    (lambda p, fd: p.pread(fd, PG, -1), OSError),           # EINVAL: negative offset
    (lambda p, fd: p.pread(fd, -1, 0), ValueError),         # a negative length
    (lambda p, fd: p.pread(fd, "1", 0), TypeError),         # not an int
    (lambda p, fd: p.pread(0, PG, 0), OSError),             # ESPIPE: the terminal
    (lambda p, fd: p.read(99, PG), OSError),                # EBADF
])
def test_pread_bad_input_changes_nothing(env, call, exc):
    m, p, f, fd = env
    before = state(m, f)
    with pytest.raises(exc):
        call(p, fd)
    assert state(m, f) == before


def test_pread_errnos(env):
    # the errno each failure carries
    m, p, f, fd = env
    wfd = p.open("/data/file", O_WRONLY)
    cases = [(lambda: p.pread(99, 1, 0), EBADF), (lambda: p.pread(wfd, 1, 0), EBADF),
             (lambda: p.pread(fd, 1, -5), EINVAL), (lambda: p.pread(99, 1, -5), EINVAL),
             (lambda: p.pread(0, 1, 0), ESPIPE)]
    for call, errno in cases:
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno


# -- fadvise ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, errno", [
    ((99, 0, 0, POSIX_FADV_WILLNEED), EBADF),       # no such descriptor
    ((None, 0, 0, 7), EINVAL),                      # unknown advice
    ((None, 0, 0, -1), EINVAL),                     # unknown advice
    ((None, 0, -1, POSIX_FADV_WILLNEED), EINVAL),   # negative length
])
def test_fadvise_errors_change_nothing(env, args, errno):
    m, p, f, fd = env
    args = tuple(fd if a is None else a for a in args)
    before = state(m, f)
    with pytest.raises(OSError) as e:
        p.fadvise(*args)
    assert e.value.errno == errno
    assert state(m, f) == before


def test_fadvise_type_errors(env):
    # a wrong type names the parameter
    m, p, f, fd = env
    with pytest.raises(TypeError, match="advice"):
        p.fadvise(fd, 0, 0, "WILLNEED")


def test_fadvise_dontneed_drops_clean_unmapped_whole_pages(env):
    # pages 0..3 cached; DONTNEED of bytes 100 .. 3*4096+99: only whole pages 1 and 2 go
    m, p, f, fd = env
    p.pread(fd, 4 * PG, 0)
    m.idle(10**9)
    cached = set(filemap.cached_indexes(f))
    p.fadvise(fd, 100, 3 * PG, POSIX_FADV_DONTNEED)
    assert cached - set(filemap.cached_indexes(f)) == {1, 2}


def test_fadvise_dontneed_whole_file(env):
    # len 0: to the end of the file
    m, p, f, fd = env
    p.pread(fd, 64 * PG, 0)
    m.idle(10**9)
    p.fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    assert filemap.cached_indexes(f) == []


def test_fadvise_dontneed_starts_writeback_and_keeps_dirty_pages(env):
    # __filemap_fdatawrite_range first: the dirty page is under writeback, so it stays
    m, p, f, fd = env
    a = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    p.store(a, b"x")
    p.munmap(a, PG)
    p.fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    assert 0 in filemap.cached_indexes(f)
    assert m.proc.meminfo_dict()["Writeback"] == 4 and m.proc.meminfo_dict()["Dirty"] == 0


def test_fadvise_normal_resets_ra_pages(env):
    # SEQUENTIAL doubles, NORMAL restores bdi->ra_pages
    m, p, f, fd = env
    p.fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
    p.fadvise(fd, 0, 0, POSIX_FADV_NORMAL)
    assert p.fds[fd].f_ra.ra_pages == 32


def test_fadvise_on_tmpfs_is_ignored():
    # noop_backing_dev_info: valid advice returns 0, nothing happens
    m = Machine(ram="128MiB")
    f = m.fs.create("/dev/shm/x", 16 * PG)
    p = m.spawn()
    fd = p.open("/dev/shm/x")
    assert p.fadvise(fd, 0, 0, POSIX_FADV_WILLNEED) == 0
    assert filemap.cached_indexes(f) == []
    assert p.fadvise(fd, 0, 0, POSIX_FADV_NOREUSE) == 0


# -- mincore ------------------------------------------------------------------------------------

def test_mincore_reports_cache_residency_not_mappings(env):
    # pages read by pread are resident in any mapping of the file, mapped or not
    m, p, f, fd = env
    p.pread(fd, PG, 0)                          # window 0..3
    m.idle(10**9)
    a = p.mmap(0, 8 * PG, PROT_READ, MAP_SHARED, fd, 0)
    assert p.mincore(a, 8 * PG) == [True] * 4 + [False] * 4
    assert p.rusage() == (0, 0)                 # mincore faults nothing in


def test_mincore_anon_is_pte_presence(env):
    # anonymous memory: present entries only
    m, p, f, fd = env
    a = p.mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.store(a + PG, b"x")
    assert p.mincore(a, 4 * PG) == [False, True, False, False]


def test_mincore_unaligned_is_einval(env):
    # do_mincore: start must be page aligned
    m, p, f, fd = env
    a = p.mmap(0, 4 * PG, PROT_READ, MAP_SHARED, fd, 0)
    with pytest.raises(OSError) as e:
        p.mincore(a + 1, PG)
    assert e.value.errno == EINVAL


# -- madvise ------------------------------------------------------------------------------------

def test_madv_dontneed_anon_refaults_zero(env):
    # the page is freed; the next read maps the zero page and reads zeros
    m, p, f, fd = env
    a = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.store(a, b"data")
    anon = m.node_stat["nr_anon_pages"]
    p.madvise(a, PG, MADV_DONTNEED)
    assert m.node_stat["nr_anon_pages"] == anon - 1
    assert p.load(a, 4) == bytes(4)


def test_madv_dontneed_file_pages_stay_cached(env):
    # zapping the PTEs leaves the page cache alone
    m, p, f, fd = env
    a = p.mmap(0, 32 * PG, PROT_READ, MAP_SHARED, fd, 0)
    p.touch(a, 32 * PG)
    p.madvise(a, 32 * PG, MADV_DONTNEED)
    assert m.node_stat["nr_mapped"] == 0
    assert p.mincore(a, 32 * PG) == [True] * 32


def test_madv_free_keeps_data_until_reclaim(env):
    # lazy free: the bytes are still there right after; reclaim drops the page; the next read is zero
    m, p, f, fd = env
    a = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.store(a, b"data")
    p.madvise(a, PG, MADV_FREE)
    assert p.load(a, 4) == b"data"
    assert m.lazyfree
    from mmlab.mm import vmscan
    vmscan.shrink_lazyfree(m, 32)
    assert p.load(a, 4) == bytes(4)


def test_madv_free_then_write_keeps_the_page(env):
    # a write after MADV_FREE re-dirties the page: reclaim keeps it
    m, p, f, fd = env
    a = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.store(a, b"data")
    p.madvise(a, PG, MADV_FREE)
    p.store(a, b"more")
    from mmlab.mm import vmscan
    assert vmscan.shrink_lazyfree(m, 32) == 0
    assert p.load(a, 4) == b"more"


def test_madv_free_on_file_mapping_is_einval(env):
    # MADV_FREE is for private anonymous memory
    m, p, f, fd = env
    a = p.mmap(0, PG, PROT_READ, MAP_SHARED, fd, 0)
    with pytest.raises(OSError) as e:
        p.madvise(a, PG, MADV_FREE)
    assert e.value.errno == EINVAL


def test_madv_cold_deactivates(env):
    # an active page mapped once goes to the inactive list
    m, p, f, fd = env
    p.pread(fd, PG, 0)
    p.pread(fd, PG, 8 * PG)
    p.pread(fd, PG, 0)                            # second use: active
    assert m.node_stat["nr_active_file"] == 1
    a = p.mmap(0, PG, PROT_READ, MAP_SHARED, fd, 0)
    p.touch(a, PG)
    p.madvise(a, PG, MADV_COLD)
    assert m.node_stat["nr_active_file"] == 0


def test_madv_pageout_evicts_clean_file_page(env):
    # MADV_PAGEOUT: unmapped and freed now
    m, p, f, fd = env
    a = p.mmap(0, PG, PROT_READ, MAP_SHARED, fd, 0)
    p.touch(a, PG)
    p.madvise(a, PG, MADV_PAGEOUT)
    assert 0 not in filemap.cached_indexes(f)
    assert p.pagemap(a) == 0


@pytest.mark.parametrize("args, errno", [
    ((1, PG, MADV_WILLNEED), EINVAL),          # unaligned start
    ((0, PG, 999), EINVAL),                    # unknown advice
])
def test_madvise_bad_input_changes_nothing(env, args, errno):
    m, p, f, fd = env
    a = p.mmap(0, 32 * PG, PROT_READ, MAP_SHARED, fd, 0)
    before = state(m, f)
    with pytest.raises(OSError) as e:
        p.madvise(a + args[0], args[1], args[2])
    assert e.value.errno == errno
    assert state(m, f) == before


# -- dirty pages and writeback -------------------------------------------------------------------

def shared(env, pages=4):
    m, p, f, fd = env
    a = p.mmap(0, pages * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    return m, p, f, a


def test_shared_write_dirties_the_page(env):
    # do_shared_fault -> fault_dirty_shared_page: Dirty 4 kB
    m, p, f, a = shared(env)
    p.store(a, b"x")
    assert m.proc.meminfo_dict()["Dirty"] == 4


def test_msync_sync_writes_back_and_waits(env):
    # MS_SYNC: the write is on the disk when msync returns
    m, p, f, a = shared(env)
    p.store(a, b"x")
    p.store(a + PG, b"y")
    writes = m.disk.stats["writes"]
    p.msync(a, 4 * PG, MS_SYNC)
    mi = m.proc.meminfo_dict()
    assert (mi["Dirty"], mi["Writeback"]) == (0, 0)
    assert m.disk.stats["writes"] == writes + 1             # pages 0 and 1: one contiguous request
    assert m.disk.stats["write_bytes"] == 2 * PG


def test_msync_async_does_nothing(env):
    # MS_ASYNC starts no I/O since Linux 2.6.19
    m, p, f, a = shared(env)
    p.store(a, b"x")
    p.msync(a, 4 * PG, MS_ASYNC)
    assert m.proc.meminfo_dict()["Dirty"] == 4 and m.disk.stats["writes"] == 0


def test_write_after_writeback_faults_again(env):
    # folio_mkclean write-protected the PTE: the next store takes a write fault (wp_page_shared)
    m, p, f, a = shared(env)
    p.store(a, b"x")
    p.store(a, b"y")
    faults = sum(p.rusage())
    p.store(a, b"z")
    assert sum(p.rusage()) == faults                         # still writable: no fault
    p.msync(a, PG, MS_SYNC)
    p.store(a, b"w")
    assert sum(p.rusage()) == faults + 1
    assert m.proc.meminfo_dict()["Dirty"] == 4


def test_periodic_writeback_after_dirty_expire(env):
    # the flusher wakes every 5 s and writes inodes dirty for 30 s or more
    m, p, f, a = shared(env)
    p.store(a, b"x")
    p.nanosleep(29 * 10**9)
    assert m.proc.meminfo_dict()["Dirty"] == 4
    p.nanosleep(7 * 10**9)
    assert m.proc.meminfo_dict()["Dirty"] == 0 and m.disk.stats["writes"] == 1


def test_msync_bad_flags(env):
    # MS_ASYNC | MS_SYNC together is EINVAL
    m, p, f, a = shared(env)
    with pytest.raises(OSError) as e:
        p.msync(a, PG, MS_ASYNC | MS_SYNC)
    assert e.value.errno == EINVAL


# -- drop_caches and meminfo --------------------------------------------------------------------

def test_drop_caches_keeps_mapped_and_dirty(env):
    # only clean unmapped pages go; a mapped page and a dirty page stay
    m, p, f, fd = env
    a = p.mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    p.store(a, b"x")                                        # page 0: dirty and mapped
    p.pread(fd, PG, 100 * PG)                               # 100: clean, unmapped
    m.idle(10**9)
    m.drop_caches(3)
    assert filemap.cached_indexes(f) == [0]


def test_drop_caches_bad_mode(env):
    # 1, 2 or 3
    m, p, f, fd = env
    with pytest.raises(ValueError, match="mode"):
        m.drop_caches(4)


def test_meminfo_counts_the_cache(env):
    # Cached, Mapped, Active(file) + Inactive(file) from the node counters
    m, p, f, fd = env
    base = m.proc.meminfo_dict()
    a = p.mmap(0, 256 * PG, PROT_READ, MAP_SHARED, fd, 0)
    p.touch(a, 16 * PG)
    m.idle(10**9)
    mi = m.proc.meminfo_dict()
    assert mi["Cached"] - base["Cached"] == 32 * 4          # the read-around window
    assert mi["Mapped"] - base["Mapped"] == 16 * 4          # fault-around mapped 16
    assert mi["Active(file)"] + mi["Inactive(file)"] - base["Active(file)"] - base["Inactive(file)"] == 32 * 4


@pytest.mark.parametrize("length", [0, 2 * PG])
def test_fadvise_dontneed_negative_offset_drops_nothing(env, length):
    # generic_fadvise: start_index = (offset + PAGE_SIZE - 1) >> PAGE_SHIFT is stored in an unsigned
    # pgoff_t, so a negative offset starts past every page; returns 0 and drops (and writes) nothing
    m, p, f, fd = env
    p.pread(fd, 16 * PG, 0)
    m.idle(10**9)
    before = filemap.cached_indexes(f)
    writes = m.disk.stats["writes"]
    assert p.fadvise(fd, -PG, length, POSIX_FADV_DONTNEED) == 0
    assert filemap.cached_indexes(f) == before and m.disk.stats["writes"] == writes


def test_store_into_a_large_folio_dirties_the_whole_folio():
    # the pread ramp builds an order-4 folio at pages 32-47 (page_cache_async_ra); one store into it makes
    # 16 pages dirty, as on Linux 6.18 (cachestat: dirty 16), and msync writes them all
    from mmlab import Machine
    from mmlab.uapi import O_RDWR, PROT_READ, PROT_WRITE, MAP_SHARED, MS_SYNC
    m = Machine(ram="256MiB")
    p = m.spawn("a.out")
    m.fs.create("/data/v", 16 << 20)
    fd = p.open("/data/v", O_RDWR)
    for i in range(105):
        p.pread(fd, PG, i * PG)
    m.idle(10**9)
    a = p.mmap(0, 16 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    p.store(a + 40 * PG, b"x")
    assert m.proc.meminfo_dict()["Dirty"] == 64
    p.store(a + 1 * PG, b"x")                               # page 1 is an order-0 folio
    assert m.proc.meminfo_dict()["Dirty"] == 68
    written = m.disk.stats["write_bytes"]
    p.msync(a, 16 << 20, MS_SYNC)
    assert m.disk.stats["write_bytes"] - written == 17 * PG and m.proc.meminfo_dict()["Dirty"] == 0
    m.check()
