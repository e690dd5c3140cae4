"""brk (mmlab/mm/mmap.py, __do_sys_brk and do_brk_flags): examples that define it.

The program break starts at start_brk, a random page up to 1 GiB above the
page after the program's bss.  brk(addr) is the raw system call: it returns
the new break, or the unchanged one when it cannot move.  The break keeps
the exact value asked for while the heap VMA ends at the next page; the
heap grows by extending its VMA, never closer than a page to the next
mapping (stack_guard_gap to a stack); it shrinks by unmapping; RLIMIT_DATA
bounds it; mlockall(MCL_FUTURE) locks what it adds.  The sequence in
test_brk_sequence_as_on_the_reference_machine was run on Linux 6.18 with a
small C program and printed the same maps, line for line.
"""

from mmlab import Machine
from mmlab.arch import PAGE_SIZE, GiB
from mmlab.mm.vma import VM_LOCKED, vma_is_initial_heap
from mmlab.uapi import *

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED


def heap(p, s, lo=-16, hi=16):
    """The maps lines around start_brk s, as (start page, end page, perms, name) relative to s."""
    out = []
    for v in p.mm.vmas_in(s + lo * P, s + hi * P):
        out.append(((v.vm_start - s) // P, (v.vm_end - s) // P, v.perms, v.name))
    return out


def test_start_brk_is_random_within_1gib_after_the_bss(m):
    for _ in range(8):
        p = m.spawn("a.out")
        bss_end = p.mm.start_data + 0x250 - 0x3dd0 + 0x3dd0        # the program's last byte
        first = (bss_end + P - 1) // P * P + P                      # a page's gap after it
        assert first <= p.mm.start_brk < first + GiB
        assert p.brk(0) == p.mm.start_brk == p.mm.brk


def test_brk_is_deterministic_per_seed():
    a = Machine(ram="256MiB", seed=5).spawn("a.out")
    b = Machine(ram="256MiB", seed=5).spawn("a.out")
    c = Machine(ram="256MiB", seed=6).spawn("a.out")
    assert a.brk(0) == b.brk(0) != c.brk(0)


def test_no_heap_vma_until_the_break_moves(p):
    assert not any(v.name == "[heap]" for v in p.vmas)


def test_brk_sequence_as_on_the_reference_machine(m, p):
    s = p.brk(0)
    p.mmap(s - P, P, RW, FIXED)                                     # a page ending at start_brk
    assert heap(p, s) == [(-1, 0, "rw-p", "")]                      # not [heap]: strict overlap test
    assert p.brk(s + 1) == s + 1                                    # unaligned: kept as asked
    assert heap(p, s) == [(-1, 0, "rw-p", ""), (0, 1, "rw-p", "[heap]")]   # not merged with the page below
    assert p.brk(s + 2 * P) == s + 2 * P
    assert heap(p, s) == [(-1, 0, "rw-p", ""), (0, 2, "rw-p", "[heap]")]   # the heap VMA grew
    p.mmap(s + 3 * P, P, RW, FIXED)
    assert p.brk(s + 2 * P + 1) == s + 2 * P                        # would end a page from the next
    assert p.brk(s + 2 * P) == s + 2 * P                            # no change: fine
    assert p.brk(s + P + 1) == s + P + 1                            # same pages, new exact value
    assert p.brk(s + 2 * P) == s + 2 * P
    assert p.brk(s) == s                                            # shrink: unmapped
    assert heap(p, s) == [(-1, 0, "rw-p", ""), (3, 4, "rw-p", "")]
    assert p.brk(s - 1) == s                                        # below start_brk: refused
    p.munmap(s + 3 * P, P)
    assert p.brk(s + 5 * P) == s + 5 * P
    p.munmap(s + P, P)                                              # a hole in the heap
    assert heap(p, s) == [(-1, 0, "rw-p", ""), (0, 1, "rw-p", "[heap]"), (2, 5, "rw-p", "[heap]")]
    assert p.brk(s + 3 * P) == s + 3 * P                            # shrink splits the upper part
    assert heap(p, s) == [(-1, 0, "rw-p", ""), (0, 1, "rw-p", "[heap]"), (2, 3, "rw-p", "[heap]")]
    assert p.brk(s + 0x800) == s + 0x800
    assert heap(p, s) == [(-1, 0, "rw-p", ""), (0, 1, "rw-p", "[heap]")]
    assert p.brk(s + 5 * P) == s + 5 * P                            # regrows the first VMA
    assert heap(p, s) == [(-1, 0, "rw-p", ""), (0, 5, "rw-p", "[heap]")]
    m.check()


def test_shrinking_over_nothing_mapped_fails(p):
    s = p.brk(0)
    p.brk(s + 4 * P)
    p.munmap(s + 2 * P, 2 * P)
    assert p.brk(s + 2 * P) == s + 4 * P                            # nothing in [new, old): refused


def test_brk_growth_keeps_the_guard_gap_below_a_stack(p):
    s = p.brk(0)
    p.mmap(s + 300 * P, P, RW, FIXED | MAP_GROWSDOWN)               # its guard gap starts at 44 pages
    assert p.brk(s + 43 * P) == s + 43 * P                          # a page short of the gap: ok
    assert p.brk(s + 43 * P + 1) == s + 43 * P                      # newbrk + a page would enter it


def test_brk_refused_past_rlimit_data(m):
    p = m.spawn("a.out", rlimits={RLIMIT_DATA: (64 * P, 64 * P)})
    s = p.brk(0)
    data = p.mm.end_data - p.mm.start_data                          # counted against the limit too
    assert p.brk(s + 40 * P - data) == s + 40 * P - data            # check_data_rlimit allows it, and
    assert p.brk(s + 64 * P - data + 1) == s + 40 * P - data        # past the limit: refused
    assert p.brk(s + 60 * P - data) == s + 40 * P - data            # may_expand_vm: VmData too


def test_brk_grows_by_extending_one_vma(p):
    s = p.brk(0)
    n = p.mm.map_count
    for k in range(1, 20):
        assert p.brk(s + k * 1000) == s + k * 1000
    assert p.mm.map_count == n + 1 and p.mm.data_vm


def test_heap_is_charged_and_counted_as_data(m, p):
    s = p.brk(0)
    c, d = m.committed_pages, p.mm.data_vm
    p.brk(s + 10 * P)
    assert m.committed_pages == c + 10 and p.mm.data_vm == d + 10
    p.brk(s)
    assert m.committed_pages == c and p.mm.data_vm == d


def test_mlockall_future_locks_the_heap(p):
    p.mlockall(MCL_FUTURE)
    s = p.brk(0)
    p.brk(s + 3 * P)
    v = p.mm.vma_lookup(s)
    assert v.vm_flags & VM_LOCKED and p.mm.locked_vm == 3


def test_mlockall_future_growth_past_memlock_is_refused(p):
    p.setrlimit(RLIMIT_MEMLOCK, (2 * P, 2 * P))
    p.mlockall(MCL_FUTURE)
    s = p.brk(0)
    assert p.brk(s + 2 * P) == s + 2 * P
    assert p.brk(s + 3 * P) == s + 2 * P                            # check_brk_limits: EAGAIN inside


def test_heap_label_follows_start_brk_and_brk(p):
    s = p.brk(0)
    p.brk(s + 2 * P)
    assert [v.name for v in p.vmas].count("[heap]") == 1
    v = p.mm.vma_lookup(s)
    assert vma_is_initial_heap(v)
    p.brk(s)
    assert not any(v.name == "[heap]" for v in p.vmas)


def test_brk_trace(m, p):
    s = p.brk(0)
    with m.trace() as t:
        p.brk(s + P)
    assert t.calls() == ["__do_sys_brk", "__get_unmapped_area", "do_brk_flags"]
    with m.trace() as t:
        p.brk(s + 2 * P)
    assert t.calls() == ["__do_sys_brk", "__get_unmapped_area", "do_brk_flags",
                         "vma_merge_new_range", "vma_expand"]
    assert "vma_merge: extended prev" in t.notes()
