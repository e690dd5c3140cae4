"""The file LRU lists and reclaim (mmlab/mm/vmscan.py) under memory pressure."""
import pytest

from mmlab import Machine
from mmlab.arch import PAGE_SIZE
from mmlab.mm import filemap, vmscan
from mmlab.uapi import PROT_READ, PROT_WRITE, MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE, O_RDWR

PG = PAGE_SIZE


@pytest.fixture
def m():
    return Machine(ram="64MiB", seed=0)


def free_pages(m):
    return sum(z.nr_free_pages for z in m.zones)


def squeeze(m, p, mib):
    """Allocate and write mib MiB of anonymous memory (the allocator reclaims as it must)."""
    a = p.mmap(0, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
    p.touch(a, mib << 20, write=True)
    return a


def test_new_cache_pages_are_inactive(m):
    # lru_add: a page read once is on the inactive list, referenced
    m.fs.create("/data/f", 64 * PG)
    p = m.spawn()
    p.pread(p.open("/data/f"), PG, 0)
    assert m.node_stat["nr_inactive_file"] == 4 and m.node_stat["nr_active_file"] == 0


def test_second_use_activates(m):
    # folio_mark_accessed: referenced + used again = active
    m.fs.create("/data/f", 64 * PG)
    p = m.spawn()
    fd = p.open("/data/f")
    p.pread(fd, PG, 0)
    p.pread(fd, PG, 10 * PG)
    p.pread(fd, PG, 0)
    assert m.node_stat["nr_active_file"] == 1
    assert m.mem_map.flags_[m.fs.lookup("/data/f").i_mapping.pages[0]] & vmscan.PG_active


def test_rereading_the_same_page_does_not_activate(m):
    # filemap_read marks a folio once when a read continues in the page the last one ended in
    m.fs.create("/data/f", 64 * PG)
    p = m.spawn()
    fd = p.open("/data/f")
    p.pread(fd, 100, 0)
    p.pread(fd, 100, 100)
    assert m.node_stat["nr_active_file"] == 0


def test_reclaim_keeps_the_cache_within_ram(m):
    # reading 3x RAM through the cache: reclaim keeps evicting; every invariant holds
    f = m.fs.create("/data/big", 192 << 20)
    p = m.spawn()
    fd = p.open("/data/big")
    for off in range(0, 192 << 20, 1 << 20):
        p.pread(fd, 1 << 20, off)
    m.check()
    assert m.reclaim_stats["pgsteal"] > 0
    assert len(filemap.cached_indexes(f)) < (64 << 20) // PG


def test_anon_pressure_evicts_clean_cache(m):
    # anonymous memory takes the place of clean page-cache pages
    m.fs.create("/data/f", 32 << 20)
    p = m.spawn()
    fd = p.open("/data/f")
    for off in range(0, 32 << 20, 1 << 20):
        p.pread(fd, 1 << 20, off)
    cached = m.node_stat["nr_file_pages"]
    squeeze(m, p, 20)
    m.check()
    assert m.node_stat["nr_file_pages"] < cached
    assert m.node_stat["nr_anon_pages"] >= 20 * 256


def test_unmapped_pages_go_before_mapped_touched_ones(m):
    # a mapped page whose PTE was used gets a second trip (FOLIOREF_KEEP); unmapped ones go first
    m.fs.create("/data/mapped", 2 << 20)
    fb = m.fs.create("/data/plain", 24 << 20)
    p = m.spawn()
    a = p.mmap(0, 2 << 20, PROT_READ, MAP_SHARED, p.open("/data/mapped"), 0)
    p.touch(a, 2 << 20)                     # oldest on the list, mapped, young PTEs
    fd = p.open("/data/plain")
    for off in range(0, 24 << 20, 1 << 20):
        p.pread(fd, 1 << 20, off)
    vmscan.shrink_node(m, 1024)             # 4 MiB
    m.check()
    assert p.mincore(a, 2 << 20) == [True] * 512
    assert len(filemap.cached_indexes(fb)) <= (24 << 20) // PG - 1024


def test_mapped_pages_are_unmapped_before_eviction(m):
    # try_to_unmap: an evicted page is mapped nowhere; touching it again is a major fault
    f = m.fs.create("/data/f", 1 << 20)
    p = m.spawn()
    a = p.mmap(0, 1 << 20, PROT_READ, MAP_SHARED, p.open("/data/f"), 0)
    p.touch(a, 1 << 20)
    for _ in range(4):                      # the PTEs' accessed bits are used up, then the pages go
        vmscan.shrink_node(m, 256)
    m.check()
    assert filemap.cached_indexes(f) == []
    assert m.node_stat["nr_mapped"] == 0
    before = p.rusage()[1]
    p.touch(a, PG)
    assert p.rusage()[1] == before + 1


def test_dirty_pages_are_written_before_eviction(m):
    # pageout: a dirty page is written back, and freed on a later pass
    f = m.fs.create("/data/f", 64 * PG)
    p = m.spawn()
    a = p.mmap(0, 64 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, p.open("/data/f", O_RDWR), 0)
    p.store(a, b"keep me")
    p.munmap(a, 64 * PG)
    vmscan.shrink_node(m, 64)
    m.idle(10**9)
    vmscan.shrink_node(m, 64)
    m.check()
    assert m.disk.stats["writes"] >= 1
    assert filemap.cached_indexes(f) == []
    fd = p.open("/data/f")
    assert p.pread(fd, 7, 0) == b"keep me"


def test_out_of_memory_without_cache_still_fails(m):
    # nothing left to reclaim: the fault reports out of memory
    p = m.spawn()
    with pytest.raises(MemoryError):
        squeeze(m, p, 80)


def test_drop_caches_frees_frames(m):
    # the frames come back to the buddy allocator
    m.fs.create("/data/f", 8 << 20)
    p = m.spawn()
    fd = p.open("/data/f")
    m.drain_all_pages()
    free0 = free_pages(m)
    for off in range(0, 8 << 20, 1 << 20):
        p.pread(fd, 1 << 20, off)
    m.drop_caches(1)
    m.drain_all_pages()
    assert free_pages(m) == free0


def test_pageout_leaves_dirty_pages_dirty(m):
    # MADV_PAGEOUT of dirty shared-file pages: unmapped, but only kswapd writes file pages from reclaim,
    # so they stay cached and dirty until the flusher (seen on Linux 6.18: cachestat dirty 64 before and after)
    from mmlab.uapi import MADV_PAGEOUT
    f = m.fs.create("/data/f", 64 * PG)
    p = m.spawn()
    a = p.mmap(0, 64 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, p.open("/data/f", O_RDWR), 0)
    for i in range(64):
        p.store(a + i * PG, b"d")
    writes = m.disk.stats["writes"]
    p.madvise(a, 64 * PG, MADV_PAGEOUT)
    info = m.proc.meminfo_dict()
    assert (info["Dirty"], len(filemap.cached_indexes(f)), m.disk.stats["writes"]) == (256, 64, writes)
    assert all(p.mincore(a, 64 * PG))                        # still resident in the page cache
    assert p.pagemap(a) >> 63 == 0                           # but no longer mapped
    m.check()
