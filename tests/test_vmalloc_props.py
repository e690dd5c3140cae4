"""Property tests of vmalloc: random vmalloc/vfree/kvmalloc sequences keep every invariant.

A hypothesis state machine boots a small machine (one or two CPUs, so with
and without vmap node pools; with or without per-CPU page lists), then
vmallocs sizes from one byte to a few tens of MiB (some more than is free),
vzallocs, vmalloc_huges and kvmallocs, frees held areas at random, purges,
and switches CPUs.  m.check() runs after every step: the free tree, busy,
lazy and pooled ranges tile the address space; every busy area maps its own
pages in order with its guard unmapped; the counters match.

At the end it frees everything and purges with a full pool decay: the
free space is one block again, as at boot, and vmalloc holds no page.
"""
from hypothesis import settings, strategies as st, HealthCheck, event
from hypothesis.stateful import RuleBasedStateMachine, rule, initialize, invariant

from mmlab import Machine
from mmlab.arch import PAGE_SIZE, VMALLOC_START, VMALLOC_END
from mmlab.mm import vmalloc as vm
from mmlab.mm.pgtable import U64

MiB = 1 << 20
sizes = st.one_of(st.integers(min_value=1, max_value=8 * PAGE_SIZE),        # a few pages
                  st.integers(min_value=1, max_value=600) .map(lambda n: n * PAGE_SIZE),  # vpages edge
                  st.integers(min_value=1, max_value=48).map(lambda n: n * MiB))        # large, may fail


class Vmalloc(RuleBasedStateMachine):
    """Random vmalloc traffic on a small machine; every step leaves the model consistent."""

    @initialize(ram=st.sampled_from(["64MiB", "128MiB"]), cpus=st.sampled_from([1, 2]), pcp=st.booleans())
    def boot(self, ram, cpus, pcp):
        self.m = Machine(ram=ram, cpus=cpus, pcp=pcp)
        self.held = {}                          # address -> (size asked, kind)

    def record(self, addr, size, kind, used_before):
        m = self.m
        if not addr:
            assert m.vmalloc_nr_pages() == used_before          # a failed call holds no pages
            event(f"{kind} failed")
            return
        if kind == "kvmalloc" and not vm.is_vmalloc_addr(addr):
            self.held[addr] = (size, kind)                      # kmalloc'd
            return
        area = vm.find_vm_area(m, addr)
        assert area is not None and area.addr == addr
        assert VMALLOC_START <= addr and addr + area.size <= VMALLOC_END
        assert area.nr_pages * PAGE_SIZE >= size                # covers the request
        for other in self.held:                                 # no overlap with held areas
            if vm.is_vmalloc_addr(other):
                o = vm.find_vm_area(m, other)
                assert addr + area.size <= other or other + o.size <= addr
        self.held[addr] = (size, kind)

    @rule(size=sizes)
    def vmalloc(self, size):
        used = self.m.vmalloc_nr_pages()
        self.record(self.m.vmalloc(size), size, "vmalloc", used)

    @rule(size=st.integers(min_value=1, max_value=4 * PAGE_SIZE))
    def vzalloc(self, size):
        used = self.m.vmalloc_nr_pages()
        self.record(self.m.vzalloc(size), size, "vzalloc", used)

    @rule(size=st.integers(min_value=1, max_value=5).map(lambda n: n * MiB))
    def vmalloc_huge(self, size):
        used = self.m.vmalloc_nr_pages()
        self.record(vm.vmalloc_huge(self.m, size), size, "vmalloc_huge", used)

    @rule(size=st.sampled_from([64, 3000, 3 * PAGE_SIZE, 5 * MiB, 9 * MiB]))
    def kvmalloc(self, size):
        used = self.m.vmalloc_nr_pages()
        self.record(self.m.kvmalloc(size), size, "kvmalloc", used)

    @rule(pick=st.integers(min_value=0, max_value=1 << 16))
    def free(self, pick):
        """Free one held allocation (the pick-th in address order); nothing when none is held."""
        if self.held:
            addr = sorted(self.held)[pick % len(self.held)]
            self.held.pop(addr)
            self.m.kvfree(addr)
            assert vm.find_vm_area(self.m, addr) is None

    @rule()
    def purge(self):
        vm.purge_vmap_area_lazy(self.m)
        assert self.m.vmap.vmap_lazy_nr == 0

    @rule(cpu=st.integers(min_value=0, max_value=1))
    def switch_cpu(self, cpu):
        self.m.current_cpu = cpu % self.m.cpus

    @invariant()
    def consistent(self):
        self.m.check()

    def teardown(self):
        """Free everything, purge fully: the vmalloc space is one free block again."""
        m = self.m
        for addr in sorted(self.held):
            m.kvfree(addr)
        self.held = {}
        vm.reclaim_and_purge_vmap_areas(m)
        m.check()
        assert m.vmalloc_nr_pages() == 0
        assert list(m.vmap.free) == [(1, U64)]
        assert not m.proc.vmallocinfo()


Vmalloc.TestCase.settings = settings(
    max_examples=30, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
test_vmalloc_state_machine = Vmalloc.TestCase
