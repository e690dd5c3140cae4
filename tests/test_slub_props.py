"""Property tests of SLUB: random kmalloc/kfree/krealloc and kmem_cache traffic on several CPUs.

After every step m.check() holds (slab pages, freelists, lists, accounting)
and the model's own view of what is live matches the test's.  At the end
everything is freed, every created cache destroyed and every cache shrunk:
then every page is back, and the buddy allocator looks as it did at boot.
"""
import hypothesis.strategies as st
from hypothesis import settings, HealthCheck
from hypothesis.stateful import RuleBasedStateMachine, rule, precondition, invariant

from mmlab import Machine, KernelBug
from mmlab.mm import slub
from mmlab.uapi import GFP_KERNEL, GFP_DMA, __GFP_RECLAIMABLE, __GFP_ACCOUNT, GFP_ATOMIC

SIZES = st.one_of(st.integers(0, 256), st.integers(0, 8192), st.integers(8193, 70000),
                  st.sampled_from([8, 64, 96, 192, 4096, 8192]))
GFPS = st.sampled_from([GFP_KERNEL, GFP_KERNEL | __GFP_RECLAIMABLE, GFP_KERNEL | GFP_DMA,
                        GFP_KERNEL | __GFP_ACCOUNT, GFP_ATOMIC])
FLAGS = st.sampled_from([0, slub.SLAB_HWCACHE_ALIGN, slub.SLAB_RECLAIM_ACCOUNT,
                         slub.SLAB_TYPESAFE_BY_RCU, slub.SLAB_CACHE_DMA])


class SlubTraffic(RuleBasedStateMachine):
    """Live kmalloc objects in `kmalloced`, live cache objects in `cached`, caches in `caches`."""

    pcp = False

    def __init__(self):
        super().__init__()
        self.m = Machine(ram="128MiB", cpus=3, pcp=self.pcp)
        self.boot_buddyinfo = self.m.proc.buddyinfo()
        self.kmalloced = []             # (address, size asked)
        self.cached = []                # (cache, address)
        self.caches = []
        self.serial = 0

    @rule(cpu=st.integers(0, 2))
    def switch_cpu(self, cpu):
        self.m.current_cpu = cpu

    @rule(size=SIZES, gfp=GFPS)
    def kmalloc(self, size, gfp):
        addr = self.m.kmalloc(size, gfp)
        assert addr != 0                # 128 MiB never runs out here
        if size == 0:
            assert addr == slub.ZERO_SIZE_PTR
            return
        assert self.m.ksize(addr) >= size
        assert all(addr != a for a, _ in self.kmalloced)
        self.kmalloced.append((addr, size))

    @precondition(lambda self: self.kmalloced)
    @rule(i=st.integers(0, 10 ** 6))
    def kfree(self, i):
        addr, _ = self.kmalloced.pop(i % len(self.kmalloced))
        self.m.kfree(addr)

    @precondition(lambda self: self.kmalloced)
    @rule(i=st.integers(0, 10 ** 6), size=SIZES)
    def krealloc(self, i, size):
        j = i % len(self.kmalloced)
        addr, _ = self.kmalloced[j]
        new = self.m.krealloc(addr, size)
        if size == 0:
            assert new == slub.ZERO_SIZE_PTR
            self.kmalloced.pop(j)
            return
        assert new and self.m.ksize(new) >= size
        self.kmalloced[j] = (new, size)

    @precondition(lambda self: self.kmalloced)
    @rule(i=st.integers(0, 10 ** 6))
    def double_kfree_is_refused(self, i):
        addr, _ = self.kmalloced.pop(i % len(self.kmalloced))
        self.m.kfree(addr)
        before = self.m.proc.slabinfo()
        try:
            self.m.kfree(addr)
        except KernelBug:
            pass
        else:
            raise AssertionError("a double kfree went through")
        assert self.m.proc.slabinfo() == before

    @precondition(lambda self: len(self.caches) < 4)
    @rule(size=st.integers(1, 20000), align=st.sampled_from([0, 8, 16, 64, 512]), flags=FLAGS)
    def create_cache(self, size, align, flags):
        self.serial += 1
        s = self.m.kmem_cache_create(f"prop{self.serial}", size, align, flags)
        assert s is not None and s.size >= size and s.size % max(align, 8) == 0
        self.caches.append(s)

    @precondition(lambda self: self.caches)
    @rule(i=st.integers(0, 10 ** 6), n=st.integers(1, 40))
    def cache_alloc(self, i, n):
        s = self.caches[i % len(self.caches)]
        for _ in range(n):
            addr = s.alloc()
            assert addr
            self.cached.append((s, addr))

    @precondition(lambda self: self.cached)
    @rule(i=st.integers(0, 10 ** 6))
    def cache_free(self, i):
        s, addr = self.cached.pop(i % len(self.cached))
        s.free(addr)

    @precondition(lambda self: self.caches)
    @rule(i=st.integers(0, 10 ** 6))
    def destroy_cache(self, i):
        s = self.caches[i % len(self.caches)]
        if any(c is s for c, _ in self.cached):
            before = self.m.proc.slabinfo()
            try:
                s.destroy()
            except KernelBug:
                pass
            else:
                raise AssertionError("destroyed a cache with live objects")
            assert self.m.proc.slabinfo() == before
            return
        s.destroy()
        self.caches.remove(s)

    @rule(i=st.integers(0, 10 ** 6))
    def shrink(self, i):
        caches = self.m.slub.slab_caches
        caches[i % len(caches)].shrink()

    @invariant()
    def consistent(self):
        self.m.check()
        live = sum(s.sysfs()["objects"] for s in self.m.slub.slab_caches)
        small = sum(1 for addr, _ in self.kmalloced
                    if self.m.ksize(addr) <= slub.KMALLOC_MAX_CACHE_SIZE)   # not kmalloc_large
        # every live object is one the test holds, plus each created cache's three
        # (its kmem_cache, kmem_cache_node and name)
        assert live == small + len(self.cached) + 3 * len(self.caches)

    def teardown(self):
        m = self.m
        for addr, _ in self.kmalloced:
            m.kfree(addr)
        for s, addr in self.cached:
            s.free(addr)
        for s in self.caches:
            s.destroy()
        m.check()
        for s in m.slub.slab_caches:
            s.shrink()
        m.check()
        assert m.node_stat["nr_slab_reclaimable"] == m.node_stat["nr_slab_unreclaimable"] == 0
        assert not m.slub.slabs and not m.slub.large
        m.drain_all_pages()                 # with per-CPU lists, freed slab pages wait there
        assert m.proc.buddyinfo() == self.boot_buddyinfo


TestSlubTraffic = SlubTraffic.TestCase
TestSlubTraffic.settings = settings(max_examples=30, stateful_step_count=40, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow])


class SlubTrafficPcp(SlubTraffic):
    """The same traffic with per-CPU page lists in front of the buddy allocator (Linux's own setup)."""
    pcp = True


TestSlubTrafficPcp = SlubTrafficPcp.TestCase
TestSlubTrafficPcp.settings = TestSlubTraffic.settings
