"""Property tests: random mappings, accesses, forks and exits keep every invariant.

m.check() runs after every step (rmap counts, page tables against VMAs,
meminfo counters, the buddy allocator); bad accesses raise
SegmentationFault and change nothing; when every process has exited and
the page cache is dropped, every frame is free again.
"""
import hypothesis.strategies as st
from hypothesis import settings, HealthCheck
from hypothesis.stateful import RuleBasedStateMachine, rule, invariant, precondition, initialize

from mmlab import Machine, SegmentationFault
from mmlab.arch import PAGE_SIZE
from mmlab.mm import filemap
from mmlab.uapi import (PROT_NONE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS,
                        O_RDWR, MADV_HUGEPAGE, MADV_POPULATE_WRITE, MREMAP_MAYMOVE)

PG = PAGE_SIZE
PROTS = [PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE]


class FaultMachine(RuleBasedStateMachine):
    @initialize()
    def boot(self):
        self.m = Machine(ram="128MiB", seed=1)
        self.free0 = sum(z.nr_free_pages for z in self.m.zones)
        self.m.fs.create("/dev/shm/file", 24 * PG)
        self.procs = [self.m.spawn("a.out")]
        self.regions = []                       # (start, pages) mapped in the first process at fork time

    def pick(self, data):
        return data.draw(st.sampled_from(self.procs))

    @rule(data=st.data(), pages=st.integers(1, 24), prot=st.sampled_from(PROTS),
          kind=st.sampled_from(["anon", "shanon", "file-private", "file-shared"]))
    def mmap(self, data, pages, prot, kind):
        p = self.pick(data)
        if kind in ("anon", "shanon"):
            flags = MAP_ANONYMOUS | (MAP_PRIVATE if kind == "anon" else MAP_SHARED)
            a = p.mmap(0, pages * PG, prot, flags)
        else:
            fd = p.open("/dev/shm/file", O_RDWR)
            a = p.mmap(0, pages * PG, prot, MAP_PRIVATE if kind == "file-private" else MAP_SHARED, fd, 0)
            p.close(fd)
        self.regions.append((a, pages))

    def region(self, data):
        a, pages = data.draw(st.sampled_from(self.regions))
        first = data.draw(st.integers(0, pages - 1))
        n = data.draw(st.integers(1, pages - first))
        return a + first * PG, n * PG

    @precondition(lambda self: self.regions)
    @rule(data=st.data(), write=st.booleans())
    def touch(self, data, write):
        p = self.pick(data)
        a, n = self.region(data)
        before = p.rusage()
        try:
            p.touch(a, n, write=write)
        except SegmentationFault:
            pass
        except Exception as e:                  # SIGBUS past the end of the file
            assert type(e).__name__ == "BusError", e
        assert p.rusage() >= before

    @precondition(lambda self: self.regions)
    @rule(data=st.data(), payload=st.binary(min_size=1, max_size=64))
    def store_load(self, data, payload):
        p = self.pick(data)
        a, n = self.region(data)
        one_page = (a >> 12) == ((a + len(payload) - 1) >> 12)
        before = (p.maps(), self.m.proc.meminfo(), p.rusage(), p.status()) if one_page else None
        try:
            p.store(a, payload)
        except SegmentationFault as e:
            if one_page:                        # a store refused outright changes nothing at all
                assert (p.maps(), self.m.proc.meminfo(), p.rusage(), p.status()) == before
            state = (p.maps(), self.m.proc.meminfo(), p.rusage())
            try:
                p.store(e.address, b"x")        # the page that refused refuses again, changing nothing
            except SegmentationFault:
                pass
            assert (p.maps(), self.m.proc.meminfo(), p.rusage()) == state
            return
        except Exception as e:
            assert type(e).__name__ == "BusError", e
            return
        assert p.load(a, len(payload)) == payload

    @precondition(lambda self: self.regions)
    @rule(data=st.data())
    def munmap(self, data):
        a, n = self.region(data)
        self.pick(data).munmap(a, n)

    @precondition(lambda self: self.regions)
    @rule(data=st.data(), prot=st.sampled_from(PROTS))
    def mprotect(self, data, prot):
        a, n = self.region(data)
        try:
            self.pick(data).mprotect(a, n, prot)
        except OSError:
            pass

    @rule(data=st.data())
    def huge_region(self, data):
        p = self.pick(data)
        hole = p.mmap(0, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        p.madvise(hole, 4 << 20, MADV_HUGEPAGE)
        self.regions.append((hole, 1024))

    @precondition(lambda self: self.regions)
    @rule(data=st.data(), advice=st.sampled_from([MADV_POPULATE_WRITE]))
    def populate_or_lock(self, data, advice):
        a, n = self.region(data)
        p = self.pick(data)
        try:
            if data.draw(st.booleans()):
                p.madvise(a, n, advice)
            else:
                p.mlock(a, n)
        except OSError:
            pass

    @precondition(lambda self: self.regions)
    @rule(data=st.data(), grow=st.integers(1, 8))
    def mremap(self, data, grow):
        a, n = self.region(data)
        try:
            self.pick(data).mremap(a, n, n + grow * PG, MREMAP_MAYMOVE)
        except OSError:
            pass

    @precondition(lambda self: len(self.procs) < 4)
    @rule(data=st.data())
    def fork(self, data):
        self.procs.append(self.pick(data).fork())

    @precondition(lambda self: len(self.procs) > 1)
    @rule(data=st.data())
    def exit(self, data):
        p = self.pick(data)
        p.exit()
        self.procs.remove(p)

    @invariant()
    def checked(self):
        if hasattr(self, "m"):
            self.m.check()

    def teardown(self):
        if not hasattr(self, "m"):
            return
        for p in self.procs:
            p.exit()
        self.m.check()
        filemap.truncate_inode_pages(self.m.fs.lookup("/dev/shm/file"))
        huge_zero = getattr(self.m, "huge_zero_pfn", None)
        if huge_zero is not None:                   # the huge zero page stays, as in Linux
            self.m.free_pages(huge_zero, 9)
            self.m.huge_zero_pfn = None
        self.m.drain_all_pages()
        self.m.check()
        assert self.m.node_stat["nr_anon_pages"] == self.m.node_stat["nr_file_pages"] == 0
        assert sum(z.nr_free_pages for z in self.m.zones) == self.free0     # no frame leaked


FaultMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
test_fault_machine = FaultMachine.TestCase
