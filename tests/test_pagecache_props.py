"""Property tests: random file I/O, mappings, advice, writeback and memory pressure keep every invariant.

m.check() runs after every step: the page cache's own check (owners,
LRU lists, dirty tags, nr_dirty/nr_writeback, locked pages have I/O in
flight) and the rmap check (refcount = cache + mappings + I/O), so an
evicted page still mapped anywhere fails at once.  At the end, with every
process gone, writeback done and the cache dropped, every frame is free.
"""
import hypothesis.strategies as st
from hypothesis import settings, HealthCheck
from hypothesis.stateful import RuleBasedStateMachine, rule, invariant, precondition, initialize

from mmlab import Machine, SegmentationFault
from mmlab.arch import PAGE_SIZE
from mmlab.mm import filemap
from mmlab.uapi import (PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_NORESERVE, O_RDWR,
                        MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE,
                        MADV_COLD, MADV_PAGEOUT, MADV_HUGEPAGE, MS_SYNC, MS_ASYNC,
                        POSIX_FADV_NORMAL, POSIX_FADV_RANDOM, POSIX_FADV_SEQUENTIAL, POSIX_FADV_WILLNEED,
                        POSIX_FADV_DONTNEED, POSIX_FADV_NOREUSE)

PG = PAGE_SIZE
FILES = [("/data/a", 1100), ("/data/b", 300), ("/dev/shm/c", 64)]
MADVICE = [MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE, MADV_COLD,
           MADV_PAGEOUT, MADV_HUGEPAGE]
FADVICE = [POSIX_FADV_NORMAL, POSIX_FADV_RANDOM, POSIX_FADV_SEQUENTIAL, POSIX_FADV_WILLNEED,
           POSIX_FADV_DONTNEED, POSIX_FADV_NOREUSE]


class PageCacheMachine(RuleBasedStateMachine):
    @initialize(disk=st.sampled_from(["hdd", "ssd", "nvme"]), ra_kb=st.sampled_from([0, 16, 128, 512]))
    def boot(self, disk, ra_kb):
        self.m = Machine(ram="64MiB", seed=2)
        self.m.drain_all_pages()
        self.free0 = sum(z.nr_free_pages for z in self.m.zones)
        self.m.set_disk(disk)
        self.m.set_read_ahead_kb(ra_kb)
        for path, pages in FILES:
            self.m.fs.create(path, pages * PG)
        self.procs = [self.m.spawn("a.out")]
        self.fds = []                           # (process, fd, path)
        self.maps = []                          # (process, addr, pages)

    def proc(self, data):
        return data.draw(st.sampled_from(self.procs))

    @rule(data=st.data(), which=st.sampled_from(FILES))
    def open(self, data, which):
        p = self.proc(data)
        self.fds.append((p, p.open(which[0], O_RDWR), which))

    @precondition(lambda self: self.fds)
    @rule(data=st.data(), shared=st.booleans(), write=st.booleans())
    def mmap(self, data, shared, write):
        p, fd, (path, pages) = data.draw(st.sampled_from(self.fds))
        first = data.draw(st.integers(0, pages - 1))
        n = data.draw(st.integers(1, min(pages - first, data.draw(st.sampled_from([16, 128, 1100])))))
        prot = PROT_READ | (PROT_WRITE if write else 0)
        a = p.mmap(0, n * PG, prot, MAP_SHARED if shared else MAP_PRIVATE, fd, first * PG)
        self.maps.append((p, a, n))

    def region(self, data):
        p, a, n = data.draw(st.sampled_from(self.maps))
        first = data.draw(st.integers(0, n - 1))
        k = data.draw(st.integers(1, n - first))
        return p, a + first * PG, k * PG

    @precondition(lambda self: self.maps)
    @rule(data=st.data(), write=st.booleans())
    def touch(self, data, write):
        p, a, n = self.region(data)
        try:
            p.touch(a, n, write=write)
        except SegmentationFault:
            pass                                # a write to a read-only mapping: nothing changed

    @precondition(lambda self: self.maps)
    @rule(data=st.data(), payload=st.binary(min_size=1, max_size=32))
    def store_load(self, data, payload):
        p, a, n = self.region(data)
        try:
            p.store(a, payload)
        except SegmentationFault:
            return
        assert p.load(a, len(payload)) == payload

    @precondition(lambda self: self.fds)
    @rule(data=st.data(), length=st.integers(0, 300 * PG))
    def pread(self, data, length):
        p, fd, (path, pages) = data.draw(st.sampled_from(self.fds))
        off = data.draw(st.integers(0, pages * PG + PG))
        got = p.pread(fd, length, off)
        assert len(got) == max(0, min(length, pages * PG - off))

    @precondition(lambda self: self.fds)
    @rule(data=st.data(), advice=st.sampled_from(FADVICE))
    def fadvise(self, data, advice):
        p, fd, (path, pages) = data.draw(st.sampled_from(self.fds))
        off = data.draw(st.integers(0, pages * PG))
        p.fadvise(fd, off, data.draw(st.integers(0, pages * PG)), advice)

    @precondition(lambda self: self.maps)
    @rule(data=st.data(), advice=st.sampled_from(MADVICE))
    def madvise(self, data, advice):
        p, a, n = self.region(data)
        try:
            p.madvise(a, n, advice)
        except OSError as e:
            assert e.errno in (22, 12)          # MADV_FREE on a file mapping; a part unmapped since

    @precondition(lambda self: self.maps)
    @rule(data=st.data(), sync=st.booleans())
    def msync(self, data, sync):
        p, a, n = self.region(data)
        try:
            p.msync(a, n, MS_SYNC if sync else MS_ASYNC)
        except OSError as e:
            assert e.errno == 12                # a part unmapped since

    @precondition(lambda self: self.maps)
    @rule(data=st.data())
    def munmap(self, data):
        p, a, n = self.region(data)
        p.munmap(a, n)

    @rule(ns=st.sampled_from([10**5, 10**7, 6 * 10**9, 40 * 10**9]))
    def sleep(self, ns):
        self.m.idle(ns)

    @rule(mode=st.sampled_from([1, 2, 3]))
    def drop_caches(self, mode):
        self.m.drop_caches(mode)

    @rule(data=st.data(), mib=st.integers(4, 24))
    def pressure(self, data, mib):
        """Anonymous memory until reclaim runs (or memory runs out), then give it back."""
        p = self.proc(data)
        a = p.mmap(0, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
        try:
            p.touch(a, mib << 20, write=True)
        except MemoryError:
            pass
        self.m.check()
        p.munmap(a, mib << 20)

    @precondition(lambda self: len(self.procs) < 3)
    @rule(data=st.data())
    def fork(self, data):
        parent = self.proc(data)
        child = parent.fork()
        self.procs.append(child)
        self.fds += [(child, fd, w) for (q, fd, w) in self.fds if q is parent]
        self.maps += [(child, a, n) for (q, a, n) in self.maps if q is parent]

    @precondition(lambda self: len(self.procs) > 1)
    @rule(data=st.data())
    def exit(self, data):
        p = self.proc(data)
        p.exit()
        self.procs.remove(p)
        self.fds = [x for x in self.fds if x[0] is not p]
        self.maps = [x for x in self.maps if x[0] is not p]

    @invariant()
    def checked(self):
        if hasattr(self, "m"):
            self.m.check()

    def teardown(self):
        if not hasattr(self, "m"):
            return
        m = self.m
        for p in self.procs:
            p.exit()
        m.check()
        m.idle(60 * 10**9)                      # the flusher writes everything dirty
        m.drop_caches(3)
        for path, _ in FILES:
            if path.startswith("/dev/shm/"):
                filemap.truncate_inode_pages(m.fs.lookup(path))
        m.lazyfree.clear()
        huge_zero = getattr(m, "huge_zero_pfn", None)
        if huge_zero is not None:
            m.free_pages(huge_zero, 9)
            m.huge_zero_pfn = None
        m.drain_all_pages()
        m.check()
        assert m.node_stat["nr_file_pages"] == m.node_stat["nr_dirty"] == m.node_stat["nr_writeback"] == 0
        assert sum(z.nr_free_pages for z in m.zones) == self.free0      # no frame leaked


PageCacheMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None,
                                              suppress_health_check=[HealthCheck.too_slow])
test_pagecache_machine = PageCacheMachine.TestCase
