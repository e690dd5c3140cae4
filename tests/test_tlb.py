"""The software TLB (mm.tlb, mmlab/mm/memory.py): loads and stores that hit it, and every flush.

A load or store caches its translation; one that hits the TLB walks no
table and takes no fault.  Whatever changes or removes a present PTE
(munmap, brk, mprotect, fork's write-protection, copy-on-write, mremap,
MADV_DONTNEED, exit, THP) must flush it, or a later access would use a
stale frame: each case below stores, changes the mapping, and checks what
the next access sees and that m.check() (check_tlb) still holds.  A
hypothesis state machine mixes them all against a byte-level reference.
"""
import hypothesis.strategies as st
import pytest
from hypothesis import settings, HealthCheck
from hypothesis.stateful import RuleBasedStateMachine, rule, invariant, initialize, precondition

from mmlab import Machine, SegmentationFault, InvariantError
from mmlab.arch import PAGE_SIZE
from mmlab.mm import memory, pgtable
from mmlab.uapi import (PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MADV_DONTNEED,
                        MREMAP_MAYMOVE)

PG = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def cached(p, addr):
    """The TLB entry for addr's page, or None."""
    return memory.mm_tlb(p.mm).get(addr >> 12)


def test_a_store_caches_its_translation(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"abc")
    e = cached(p, a)
    assert e is not None and e.store_ok                        # writable and dirty
    assert e.pfn == p.pagemap(a) & memory.PM_PFRAME_MASK
    assert p.load(a, 3) == b"abc"
    m.check()


def test_a_hit_walks_no_table(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"x")
    with m.trace() as t:
        p.store(a + 8, b"y")
        p.load(a, 9)
    assert "handle_mm_fault" not in t.calls()                  # no fault on a hit
    assert p.rusage() == (1, 0)


def test_a_load_of_fresh_memory_caches_the_zero_page(m, p):
    a = p.mmap(0, PG, RW, ANON)
    assert p.load(a, 4) == bytes(4)
    e = cached(p, a)
    assert e.pfn == m.zero_pfn and not e.store_ok              # loads only
    p.store(a, b"z")                                           # copy-on-write of the zero page
    assert cached(p, a).pfn != m.zero_pfn and cached(p, a).store_ok
    assert p.rusage() == (2, 0)
    m.check()


def test_munmap_flushes(m, p):
    a = p.mmap(0, 2 * PG, RW, ANON)
    p.store(a, b"x")
    p.munmap(a, 2 * PG)
    assert cached(p, a) is None
    with pytest.raises(SegmentationFault):
        p.load(a)
    m.check()


def test_mprotect_flushes(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"x")
    p.mprotect(a, PG, PROT_READ)
    with pytest.raises(SegmentationFault):
        p.store(a, b"y")                                       # the cached entry allowed stores
    assert p.load(a) == b"x"
    m.check()


def test_madvise_dontneed_flushes(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"x")
    p.madvise(a, PG, MADV_DONTNEED)
    assert p.load(a) == b"\0"                                  # a fresh zero page, not the old frame
    m.check()


def test_brk_shrink_flushes(m, p):
    base = p.brk(0)
    p.brk(base + 2 * PG)
    p.store(base + PG, b"x")
    p.brk(base)
    p.brk(base + 2 * PG)
    assert p.load(base + PG) == b"\0"
    m.check()


def test_fork_write_protects_the_parent(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"x")
    c = p.fork()
    assert cached(p, a) is None                                # flushed with the write-protection
    p.store(a, b"y")                                           # copy-on-write: the child keeps its byte
    assert c.load(a) == b"x" and p.load(a) == b"y"
    m.check()


def test_copy_on_write_flushes_the_old_frame(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"x")
    c = p.fork()
    c.load(a)                                                  # the child caches the shared frame
    c.store(a, b"c")                                           # wp_page_copy: a new frame
    assert cached(c, a).pfn == c.pagemap(a) & memory.PM_PFRAME_MASK
    assert p.load(a) == b"x"
    m.check()


def test_mremap_moves_flush_the_old_range(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"moved")
    p.mmap(a + PG, PG, RW, ANON | 0x10)                        # MAP_FIXED: no room to grow in place
    b = p.mremap(a, PG, 4 * PG, MREMAP_MAYMOVE)
    assert b != a and p.load(b, 5) == b"moved"
    assert cached(p, a) is None
    m.check()


def test_exit_flushes_everything(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"x")
    p.exit()
    assert not memory.mm_tlb(p.mm)
    m.check()


def test_thp_replacing_the_huge_zero_page_flushes(m, p):
    m.thp_enabled = "always"
    a = p.mmap(0, 4 << 20, RW, ANON)
    h = (a + (2 << 20) - 1) & ~((2 << 20) - 1)
    assert p.load(h + PG, 1) == b"\0"                          # the huge zero page, cached
    p.store(h, b"x")                                           # a THP replaces all 512 entries
    p.store(h + PG, b"y")
    assert p.load(h + PG, 1) == b"y"
    m.check()


def test_the_tlb_is_bounded(m, p):
    n = memory.TLB_ENTRIES + 10
    a = p.mmap(0, n * PG, RW, ANON)
    for i in range(n):
        p.store(a + i * PG, bytes([i & 0xff]))
    assert len(memory.mm_tlb(p.mm)) <= memory.TLB_ENTRIES    # emptied when full
    assert all(p.load(a + i * PG) == bytes([i & 0xff]) for i in range(0, n, 97))
    m.check()


def test_check_catches_a_missed_flush(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"x")
    pmdp = pgtable.lookup_pmd(p.mm, a)
    ptep = pgtable.pte_offset_map(p.mm, pmdp, a)
    pgtable.set_entry(p.mm, ptep, pgtable.pte_wrprotect(pgtable.ptep_get(p.mm, ptep)))   # no flush
    with pytest.raises(InvariantError, match="tlb"):
        m.check()


def test_flushes_tell_the_caches_built_on_the_tlb(m, p):
    libc = p.libc
    a = libc.malloc(200000)                                    # libc's views now hold the chunk's page
    assert (a >> 12) in libc.mem.rpages
    libc.free(a)                                               # munmap: the flush empties libc's views
    assert (a >> 12) not in libc.mem.rpages
    m.check()


# -- random programs against a byte-level reference ------------------------------------------

NPAGES = 6


class TlbMachine(RuleBasedStateMachine):
    """One process, one mapping of NPAGES pages (or none), a forked child now and then.

    `ref` holds what every byte of the mapping must read as; `child` the child
    and what its copy must read as (the parent's bytes at fork time, and the
    child's own stores since).
    """

    @initialize()
    def start(self):
        self.m = Machine(ram="128MiB")
        self.p = self.m.spawn()
        self.a = self.p.mmap(0, NPAGES * PG, RW, ANON)
        self.ref = bytearray(NPAGES * PG)
        self.writable = [True] * NPAGES
        self.child = None

    @rule(page=st.integers(0, NPAGES - 1), off=st.integers(0, PG - 8), data=st.binary(min_size=1, max_size=8))
    def store(self, page, off, data):
        addr = self.a + page * PG + off
        if not self.writable[page]:
            with pytest.raises(SegmentationFault):
                self.p.store(addr, data)
            return
        self.p.store(addr, data)
        self.ref[page * PG + off:page * PG + off + len(data)] = data

    @rule(page=st.integers(0, NPAGES - 1), off=st.integers(0, PG - 8))
    def load(self, page, off):
        addr = self.a + page * PG + off
        assert self.p.load(addr, 8) == bytes(self.ref[page * PG + off:page * PG + off + 8])

    @rule(page=st.integers(0, NPAGES - 1), write=st.booleans())
    def protect(self, page, write):
        self.p.mprotect(self.a + page * PG, PG, RW if write else PROT_READ)
        self.writable[page] = write

    @rule(page=st.integers(0, NPAGES - 1))
    def dontneed(self, page):
        self.p.madvise(self.a + page * PG, PG, MADV_DONTNEED)
        self.ref[page * PG:(page + 1) * PG] = bytes(PG)

    @precondition(lambda self: self.child is None)
    @rule()
    def fork(self):
        self.child = (self.p.fork(), bytes(self.ref))
        self.child_writable = list(self.writable)          # the child keeps the protections of fork time

    @precondition(lambda self: self.child is not None)
    @rule(page=st.integers(0, NPAGES - 1), data=st.binary(min_size=1, max_size=8))
    def child_store(self, page, data):
        c, frozen = self.child
        addr = self.a + page * PG
        if not self.child_writable[page]:
            with pytest.raises(SegmentationFault):
                c.store(addr, data)
            return
        c.store(addr, data)
        self.child = (c, frozen[:page * PG] + data + frozen[page * PG + len(data):])

    @precondition(lambda self: self.child is not None)
    @rule()
    def child_exit(self):
        c, frozen = self.child
        assert c.load(self.a, NPAGES * PG) == frozen            # the child never saw the parent's stores
        c.exit()
        self.child = None

    @invariant()
    def consistent(self):
        self.m.check()


TestTlb = TlbMachine.TestCase
TestTlb.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                            suppress_health_check=[HealthCheck.too_slow])
