"""mmap, munmap, mprotect, madvise, mlock, msync (mmlab/mm/mmap.py): examples that define them.

Where mmap puts a mapping (top-down below mmap_base, a free hint rounded
down, 2 MiB alignment for large anonymous and ext4 file mappings, the
stack guard gap), MAP_FIXED and MAP_FIXED_NOREPLACE, every errno Linux
gives for these calls, the commit charge (VM_ACCOUNT, Committed_AS), shared
anonymous memory, hugetlb mappings, and that a failed call changes nothing
(except where Linux itself changes part: mprotect over a hole).
Every rule here was checked on the reference machine (Linux 6.18).
"""
import errno

import pytest

from mmlab.arch import PAGE_SIZE, TASK_SIZE, MiB, GiB
from mmlab.mm import vma as V
from mmlab.mm.vma import VM_LOCKED, VM_ACCOUNT, VM_NOHUGEPAGE, VM_DONTCOPY, VM_HUGEPAGE
from mmlab.mm.mmap import RLIMIT_AS               # not in mmlab.uapi yet
from mmlab.uapi import *

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
FIXED = ANON | MAP_FIXED


@pytest.fixture
def w(fenced_window):
    """A free 256-page window, fenced by shared pages that merge with nothing."""
    return fenced_window(256)


def state(m, p):
    """Everything a call could change: the maps, the counters, the commit charge."""
    mm = p.mm
    return (p.maps(), mm.total_vm, mm.data_vm, mm.exec_vm, mm.stack_vm, mm.locked_vm,
            m.committed_pages, mm.brk, mm.def_flags)


def fails(m, p, code, call, *args):
    """call(*args) raises OSError(code) and changes nothing."""
    before = state(m, p)
    with pytest.raises(OSError) as e:
        call(*args)
    assert e.value.errno == code, errno.errorcode[e.value.errno]
    assert state(m, p) == before
    m.check()
    return True


def window(p, base, pages=256):
    return [((v.vm_start - base) // P, (v.vm_end - base) // P, v.perms)
            for v in p.mm.vmas_in(base, base + pages * P)]


# -- where mappings go -----------------------------------------------------------------

def test_first_mappings_go_top_down_below_the_libraries(p):
    a = p.mmap(0, 64 * P, RW, ANON)
    b = p.mmap(0, 64 * P, PROT_READ, ANON)
    assert b == a - 64 * P                                          # each just below the last
    assert a + 64 * P <= p.mm.mmap_base


def test_free_hint_is_used_rounded_down(p, w):
    assert p.mmap(w + 5 * P + 123, P, RW, ANON) == w + 5 * P


def test_taken_hint_is_ignored(p, w):
    p.mmap(w, P, RW, FIXED)
    a = p.mmap(w + 100, P, RW, ANON)
    assert not w <= a < w + 256 * P                                 # searched top-down instead


def test_anonymous_multiple_of_2mib_is_2mib_aligned(p):
    p.mmap(0, P, PROT_READ, ANON)                                   # unalign the top of the free space
    for length in (2 * MiB, 4 * MiB, 6 * MiB):
        assert p.mmap(0, length, RW, ANON) % (2 * MiB) == 0         # THP-aligned


def test_other_lengths_are_not_aligned(p):
    p.mmap(0, P, PROT_READ, ANON)
    low = p.mm.vma_list()[5].vm_start                                 # the lowest mmap-area VMA
    a = p.mmap(0, 3 * MiB, RW, ANON)
    assert a == low - 3 * MiB - P or a % (2 * MiB) != 0             # just below, unaligned


def lowest(p):
    """Map 16 pages (more than any hole near the libraries): they land below everything."""
    return p.mmap(0, 16 * P, PROT_READ, ANON)


def test_2mib_alignment_rounds_up_inside_the_padded_gap(p):
    top = lowest(p)
    a = p.mmap(0, 4 * MiB, RW, ANON)
    padded = top - 6 * MiB                                          # searched for len + 2 MiB
    assert padded % (2 * MiB) and a == padded + (-padded) % (2 * MiB)


def test_2mib_alignment_of_an_aligned_gap_takes_its_top(p):
    x = (lowest(p) - 4 * MiB) // (2 * MiB) * (2 * MiB)              # a page at a 2 MiB boundary
    p.mmap(x, P, PROT_READ, FIXED)                                  # below it, 2 MiB-aligned free space
    a = p.mmap(0, 4 * MiB, RW, ANON)
    assert a == x - 6 * MiB + 2 * MiB                               # found at x - 6 MiB, moved up


def test_2mib_alignment_only_without_a_hint(p):
    free = p.mmap(0, 8 * MiB, PROT_NONE, ANON | MAP_NORESERVE)
    p.munmap(free, 8 * MiB)
    hint = free + MiB + P                                           # free, and not aligned
    assert p.mmap(hint, 2 * MiB, RW, ANON) == hint                  # the hint wins


def test_shared_anonymous_is_not_aligned(p):
    top = lowest(p)
    assert p.mmap(0, 2 * MiB, RW, MAP_SHARED | MAP_ANONYMOUS) == top - 2 * MiB


def test_map_stack_is_still_aligned_but_marked_nohugepage(p):
    p.mmap(0, P, PROT_READ, ANON)
    a = p.mmap(0, 2 * MiB, RW, ANON | MAP_STACK)
    assert a % (2 * MiB) == 0 and p.mm.vma_lookup(a).vm_flags & VM_NOHUGEPAGE


def test_ext4_file_mappings_align_to_their_offset(m, p):
    m.fs.create("/data", 16 * MiB)
    fd = p.open("/data")
    p.mmap(0, P, PROT_READ, ANON)
    assert p.mmap(0, 3 * MiB, PROT_READ, MAP_PRIVATE, fd, 0) % (2 * MiB) == 0
    assert p.mmap(0, 4 * MiB, PROT_READ, MAP_PRIVATE, fd, P) % (2 * MiB) == P     # address ≡ offset
    small = p.mmap(0, MiB, PROT_READ, MAP_PRIVATE, fd, 0)
    assert small % (2 * MiB) != 0                                   # under 2 MiB: no alignment


def test_tmpfs_file_mappings_are_not_aligned(m, p):
    m.fs.create("/dev/shm/x", 16 * MiB)
    fd = p.open("/dev/shm/x", O_RDWR)
    top = lowest(p)
    assert p.mmap(0, 4 * MiB, RW, MAP_SHARED, fd, 0) == top - 4 * MiB


def test_growsdown_mapping_keeps_the_guard_gap_free_below(p):
    s = p.mmap(0, 4 * P, RW, ANON | MAP_GROWSDOWN)
    a = p.mmap(0, P, RW, ANON)
    assert a + P <= s - 256 * P                                     # stack_guard_gap: 1 MiB


def test_hint_in_the_guard_gap_is_refused(p):
    s = p.mmap(0, 4 * P, RW, ANON | MAP_GROWSDOWN)
    assert p.mmap(s - 2 * P, P, RW, ANON) != s - 2 * P


def test_map_32bit_goes_below_2gib(p):
    a = p.mmap(0, P, RW, ANON | MAP_32BIT)
    assert 0x40000000 <= a < 0x80000000


# -- MAP_FIXED ----------------------------------------------------------------------------

def test_map_fixed_at_the_same_address_twice_does_not_fail(p, w):
    assert p.mmap(w, 4 * P, RW, FIXED) == w
    assert p.mmap(w, 4 * P, PROT_READ, FIXED) == w                  # replaces the first
    assert window(p, w) == [(0, 4, "r--p")]


def test_map_fixed_unmaps_what_it_overlaps(p, w):
    p.mmap(w, 8 * P, RW, FIXED)
    p.mmap(w + 2 * P, 2 * P, PROT_READ, FIXED)
    assert window(p, w) == [(0, 2, "rw-p"), (2, 4, "r--p"), (4, 8, "rw-p")]


def test_map_fixed_over_an_identical_mapping_merges_back(p, w):
    p.mmap(w, 8 * P, RW, FIXED)
    n = p.mm.map_count
    p.mmap(w + 2 * P, 2 * P, RW, FIXED)
    assert window(p, w) == [(0, 8, "rw-p")] and p.mm.map_count == n


def test_map_fixed_noreplace_over_a_mapping_fails_eexist(m, p, w):
    p.mmap(w + 4 * P, P, RW, FIXED)
    assert fails(m, p, errno.EEXIST, p.mmap, w, 8 * P, RW, ANON | MAP_FIXED_NOREPLACE)


def test_map_fixed_noreplace_in_a_free_range_maps(p, w):
    assert p.mmap(w, 8 * P, RW, ANON | MAP_FIXED_NOREPLACE) == w


# -- errno: every way these calls fail ----------------------------------------------------

def test_mmap_errors(m, p, w):
    m.fs.create("/ro", 64 * P)
    ro = p.open("/ro", O_RDONLY)
    wo = p.open("/ro", O_WRONLY)
    E = errno
    assert fails(m, p, E.EINVAL, p.mmap, 0, 0, RW, ANON)                        # length 0
    assert fails(m, p, E.EINVAL, p.mmap, 0, P, RW, MAP_ANONYMOUS)               # neither SHARED nor PRIVATE
    assert fails(m, p, E.EINVAL, p.mmap, 0, P, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS)  # not for anon
    assert fails(m, p, E.EINVAL, p.mmap, 0, P, RW, 0x04 | MAP_ANONYMOUS)        # an unknown type
    assert fails(m, p, E.EINVAL, p.mmap, 0, P, RW, ANON, -1, 123)               # offset not page aligned
    assert fails(m, p, E.EINVAL, p.mmap, w + 1, P, RW, FIXED)                   # MAP_FIXED, unaligned
    assert fails(m, p, E.EINVAL, p.mmap, w + 1, P, RW, ANON | MAP_FIXED_NOREPLACE)
    assert fails(m, p, E.EINVAL, p.mmap, 0, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN)
    assert fails(m, p, E.EINVAL, p.mmap, 0, P, PROT_READ, MAP_PRIVATE | MAP_GROWSDOWN, ro, 0)
    assert fails(m, p, E.ENOMEM, p.mmap, 0, (1 << 64) - 1, RW, ANON)            # length wraps
    assert fails(m, p, E.ENOMEM, p.mmap, 0, 1 << 47, RW, ANON)                  # more than TASK_SIZE
    assert fails(m, p, E.ENOMEM, p.mmap, TASK_SIZE, P, RW, FIXED)               # above TASK_SIZE
    assert fails(m, p, E.ENOMEM, p.mmap, TASK_SIZE - P, 2 * P, RW, FIXED)       # across it
    assert fails(m, p, E.ENOMEM, p.mmap, 0, GiB, RW, ANON)                      # more than RAM, charged
    assert fails(m, p, E.EPERM, p.mmap, 0, P, RW, FIXED)                        # below vm.mmap_min_addr
    assert fails(m, p, E.EBADF, p.mmap, 0, P, PROT_READ, MAP_PRIVATE, 99, 0)    # no such fd
    assert fails(m, p, E.EBADF, p.mmap, 0, P, PROT_READ, MAP_PRIVATE, -1, 0)    # fd -1 without ANON
    assert fails(m, p, E.ENODEV, p.mmap, 0, P, PROT_READ, MAP_PRIVATE, 1, 0)    # a terminal
    assert fails(m, p, E.EACCES, p.mmap, 0, P, RW, MAP_SHARED, ro, 0)           # shared write, read-only fd
    assert fails(m, p, E.EACCES, p.mmap, 0, P, PROT_READ, MAP_PRIVATE, wo, 0)   # write-only fd
    assert fails(m, p, E.EOPNOTSUPP, p.mmap, 0, P, PROT_READ, MAP_SHARED_VALIDATE | 0x200, ro, 0)
    assert fails(m, p, E.EOVERFLOW, p.mmap, 0, 2 * P, PROT_READ, MAP_PRIVATE, ro, (1 << 64) - P)
    assert fails(m, p, E.ENOMEM, p.mmap, 0, 2 * MiB, RW, ANON | MAP_HUGETLB)    # no huge pages
    assert fails(m, p, E.EINVAL, p.mmap, 0, P, RW, ANON | MAP_HUGETLB | (12 << 26))  # no 4 KiB hstate
    assert fails(m, p, E.EINVAL, p.mmap, w + P, 2 * MiB, RW, FIXED | MAP_HUGETLB | MAP_NORESERVE)


def test_anonymous_mappings_ignore_the_fd(p):
    assert p.mmap(0, P, RW, ANON, 99, 0)                            # any fd, even a bad one


def test_map_shared_ignores_unknown_flags_but_validate_refuses(m, p):
    m.fs.create("/f", 64 * P)
    fd = p.open("/f", O_RDWR)
    assert p.mmap(0, P, RW, MAP_SHARED | 0x200, fd, 0)               # silently ignored
    assert p.mmap(0, P, RW, MAP_SHARED_VALIDATE | MAP_POPULATE, fd, 0)  # known: accepted


def test_map_sync_is_refused_by_ext4_without_dax(m, p, w):
    m.fs.create("/f", 64 * P)
    fd = p.open("/f", O_RDWR)
    with pytest.raises(OSError) as e:
        p.mmap(0, P, RW, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0)
    assert e.value.errno == errno.EOPNOTSUPP
    p.mmap(w, 4 * P, RW, FIXED)
    with pytest.raises(OSError):
        p.mmap(w, 4 * P, RW, MAP_SHARED_VALIDATE | MAP_SYNC | MAP_FIXED, fd, 0)
    assert window(p, w) == []                                        # refused late: the old pages are gone


def test_max_map_count(m, p, w):
    m.max_map_count = p.mm.map_count
    p.mmap(w, P, RW, FIXED)                                         # at the limit: do_mmap checks ">"
    assert p.mm.map_count == m.max_map_count + 1                    # so a process can pass it by one
    assert fails(m, p, errno.ENOMEM, p.mmap, w + 2 * P, P, RW, FIXED)


def test_munmap_split_refused_at_max_map_count(m, p, w):
    p.mmap(w, 3 * P, RW, FIXED)
    m.max_map_count = p.mm.map_count
    assert fails(m, p, errno.ENOMEM, p.munmap, w + P, P)           # would make three pieces
    p.munmap(w, P)                                                  # trimming an end is allowed
    assert window(p, w) == [(1, 3, "rw-p")]


def test_munmap_errors(m, p, w):
    E = errno
    assert fails(m, p, E.EINVAL, p.munmap, w + 1, P)                # unaligned
    assert fails(m, p, E.EINVAL, p.munmap, w, 0)                    # length 0
    assert fails(m, p, E.EINVAL, p.munmap, w, 1 << 63)              # past TASK_SIZE
    assert p.munmap(0x100000000, P) == 0                            # nothing there: fine


def test_mprotect_errors(m, p, w):
    m.fs.create("/ro", 64 * P)
    ro = p.open("/ro")
    p.mmap(w, 4 * P, PROT_READ, MAP_SHARED | MAP_FIXED, ro, 0)
    E = errno
    assert fails(m, p, E.EINVAL, p.mprotect, w + 1, P, PROT_READ)   # unaligned
    assert fails(m, p, E.EINVAL, p.mprotect, w, P, 0x10)            # unknown prot bit
    assert fails(m, p, E.EINVAL, p.mprotect, w, P, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP)
    assert fails(m, p, E.EINVAL, p.mprotect, w, P, PROT_READ | PROT_GROWSDOWN)  # not a stack
    assert fails(m, p, E.ENOMEM, p.mprotect, w + 8 * P, P, PROT_READ)  # nothing mapped
    assert fails(m, p, E.ENOMEM, p.mprotect, w, 1 << 64 - 1, PROT_READ)  # wraps around
    assert fails(m, p, E.EACCES, p.mprotect, w, P, RW)              # read-only fd: no VM_MAYWRITE
    assert p.mprotect(w, 0, PROT_NONE) == 0                         # length 0 does nothing
    assert p.mprotect(w, P, PROT_READ | 0x8) == 0                   # PROT_SEM is accepted


def test_mprotect_over_a_hole_changes_what_precedes_it(m, p, w):
    p.mmap(w, 8 * P, PROT_READ, FIXED)
    p.munmap(w + 4 * P, P)
    with pytest.raises(OSError) as e:
        p.mprotect(w, 8 * P, RW)
    assert e.value.errno == errno.ENOMEM
    assert window(p, w) == [(0, 4, "rw-p"), (5, 8, "r--p")]          # before the hole: changed
    m.check()


def test_mprotect_starting_in_a_hole_changes_nothing(m, p, w):
    p.mmap(w + P, 2 * P, PROT_READ, FIXED)
    assert fails(m, p, errno.ENOMEM, p.mprotect, w, 3 * P, RW)


def test_mprotect_growsdown_extends_to_the_vma_start(p):
    s = p.mmap(0, 4 * P, RW, ANON | MAP_GROWSDOWN)
    p.mprotect(s + 2 * P, P, PROT_READ | PROT_GROWSDOWN)
    assert p.mm.vma_lookup(s).perms == "r--p" and p.mm.vma_lookup(s).vm_end == s + 3 * P


# -- the commit charge -----------------------------------------------------------------------

def test_private_writable_mappings_are_charged(m, p):
    c = m.committed_pages
    a = p.mmap(0, 10 * P, RW, ANON)
    assert m.committed_pages == c + 10 and p.mm.vma_lookup(a).vm_flags & VM_ACCOUNT
    p.mmap(0, 10 * P, PROT_READ, ANON)                              # read-only: not charged
    p.mmap(0, 10 * P, RW, ANON | MAP_NORESERVE)                     # MAP_NORESERVE: not charged
    assert m.committed_pages == c + 10
    p.munmap(a, 10 * P)
    assert m.committed_pages == c


def test_mprotect_writable_charges_and_read_only_gives_back_if_never_written(m, p):
    c = m.committed_pages
    a = p.mmap(0, 4 * P, PROT_NONE, ANON)
    p.mprotect(a, 4 * P, RW)
    assert m.committed_pages == c + 4
    p.mprotect(a, 4 * P, PROT_READ)                                 # no anon_vma yet: uncharged
    assert m.committed_pages == c and not p.mm.vma_lookup(a).vm_flags & VM_ACCOUNT
    p.mprotect(a, 4 * P, RW)
    V.anon_vma_prepare(p.mm.vma_lookup(a))                          # written to
    p.mprotect(a, 4 * P, PROT_READ)
    assert m.committed_pages == c + 4                               # the charge stays


def test_overcommit_never_refuses_past_commit_limit(m, p):
    m.overcommit_memory = 2
    limit = V.vm_commit_limit(m)
    assert fails(m, p, errno.ENOMEM, p.mmap, 0, limit * P, RW, ANON)
    assert fails(m, p, errno.ENOMEM, p.mmap, 0, limit * P, RW, ANON | MAP_NORESERVE)  # ignored in mode 2
    assert p.mmap(0, limit * P, PROT_READ, ANON)                    # read-only: never charged


def test_overcommit_always_allows_anything(m, p):
    m.overcommit_memory = 1
    assert p.mmap(0, 64 * GiB, RW, ANON)


# -- shared anonymous memory and hugetlb ------------------------------------------------------

def test_shared_anonymous_is_a_deleted_dev_zero(m, p):
    c = m.committed_pages
    a = p.mmap(0, 4 * P, RW, MAP_SHARED | MAP_ANONYMOUS)
    line = [l for l in p.maps().splitlines() if l.startswith(f"{a:08x}")][0]
    assert line.split()[1:4] == ["rw-s", "00000000", "00:01"] and line.endswith("/dev/zero (deleted)")
    assert m.committed_pages == c + 4                               # the object is charged as a whole
    p.munmap(a + P, P)                                              # two pieces still hold it
    assert m.committed_pages == c + 4
    p.munmap(a, 4 * P)
    assert m.committed_pages == c                                   # the last unmap frees it


def test_shared_file_opened_read_only_maps_as_s_without_vm_shared(m, p):
    m.fs.create("/ro", 4 * P)
    fd = p.open("/ro")
    a = p.mmap(0, P, PROT_READ, MAP_SHARED, fd, 0)
    v = p.mm.vma_lookup(a)
    assert v.perms == "r--s" and v.vmflags == "rd mr me ms"          # VM_MAYSHARE only


def test_hugetlb_noreserve_maps_an_anon_hugepage_file(p):
    a = p.mmap(0, 3 * MiB, RW, ANON | MAP_HUGETLB | MAP_NORESERVE)
    v = p.mm.vma_lookup(a)
    assert a % (2 * MiB) == 0 and v.vm_end - v.vm_start == 4 * MiB  # rounded up to huge pages
    assert v.vmflags == "rd wr mr mw me de nr ht" and v.vm_file.path == "/anon_hugepage (deleted)"


def test_hugetlb_splits_only_at_huge_page_boundaries(m, p):
    a = p.mmap(0, 4 * MiB, RW, ANON | MAP_HUGETLB | MAP_NORESERVE)
    assert fails(m, p, errno.EINVAL, p.munmap, a + P, P)
    assert fails(m, p, errno.EINVAL, p.mprotect, a, P, PROT_READ)
    p.mprotect(a, 2 * MiB, PROT_READ)
    assert p.mm.vma_lookup(a).vm_end == a + 2 * MiB


# -- madvise --------------------------------------------------------------------------------

def test_madvise_changes_flags_and_splits_like_mprotect(p, w):
    p.mmap(w, 6 * P, RW, FIXED)
    p.madvise(w + 2 * P, 2 * P, MADV_DONTFORK)
    assert [v.vm_flags & VM_DONTCOPY != 0 for v in p.mm.vmas_in(w, w + 6 * P)] == [False, True, False]
    p.madvise(w + 2 * P, 2 * P, MADV_DOFORK)
    assert window(p, w) == [(0, 6, "rw-p")]                          # merged back


def test_madvise_skips_holes_but_reports_enomem(p, w):
    p.mmap(w, 2 * P, RW, FIXED)
    p.mmap(w + 3 * P, 2 * P, RW, FIXED)
    with pytest.raises(OSError) as e:
        p.madvise(w, 5 * P, MADV_HUGEPAGE)
    assert e.value.errno == errno.ENOMEM
    assert all(v.vm_flags & VM_HUGEPAGE for v in p.mm.vmas_in(w, w + 5 * P))     # both sides changed


def test_madvise_errors(m, p, w):
    p.mmap(w, 2 * P, PROT_NONE, FIXED)
    E = errno
    assert fails(m, p, E.EINVAL, p.madvise, w, P, 999)              # unknown advice
    assert fails(m, p, E.EINVAL, p.madvise, w + 1, P, MADV_NORMAL)  # unaligned
    assert fails(m, p, E.EINVAL, p.madvise, w, P, MADV_POPULATE_READ)   # PROT_NONE cannot fault
    assert fails(m, p, E.ENOMEM, p.madvise, w + 8 * P, P, MADV_NORMAL)  # nothing mapped
    assert fails(m, p, E.EPERM, p.madvise, w, P, MADV_HWPOISON)     # needs CAP_SYS_ADMIN
    assert p.madvise(w, 0, MADV_DONTNEED) == 0


def test_madvise_wipeonfork_only_on_private_anonymous(m, p):
    a = p.mmap(0, P, RW, MAP_SHARED | MAP_ANONYMOUS)
    assert fails(m, p, errno.EINVAL, p.madvise, a, P, MADV_WIPEONFORK)


# -- mlock -------------------------------------------------------------------------------------

def test_mlock_sets_vm_locked_and_counts_it(p, w):
    p.mmap(w, 4 * P, RW, FIXED)
    p.mlock(w + P, 2 * P)
    assert [v.vm_flags & VM_LOCKED != 0 for v in p.mm.vmas_in(w, w + 4 * P)] == [False, True, False]
    assert p.mm.locked_vm == 2
    p.munlock(w + P, 2 * P)
    assert window(p, w) == [(0, 4, "rw-p")] and p.mm.locked_vm == 0


def test_mlock_past_rlimit_memlock_fails_for_users_not_root(m, p, w):
    p.mmap(w, 4 * P, RW, FIXED)
    p.setrlimit(RLIMIT_MEMLOCK, (2 * P, 2 * P))
    assert fails(m, p, errno.ENOMEM, p.mlock, w, 4 * P)
    root = m.spawn("b.out", uid=0, rlimits={RLIMIT_MEMLOCK: (0, 0)})
    a = root.mmap(0, 4 * P, RW, ANON)
    assert root.mlock(a, 4 * P) == 0                                # CAP_IPC_LOCK


def test_mlock_with_no_memlock_allowance_is_eperm(m):
    p = m.spawn("a.out", rlimits={RLIMIT_MEMLOCK: (0, 0)})
    a = p.mmap(0, P, RW, ANON)
    assert fails(m, p, errno.EPERM, p.mlock, a, P)


def test_mlock_of_prot_none_locks_but_fails_to_populate(m, p, w):
    p.mmap(w, 2 * P, PROT_NONE, FIXED)
    with pytest.raises(OSError) as e:
        p.mlock(w, 2 * P)
    assert e.value.errno == errno.ENOMEM                            # EFAULT from GUP, as ENOMEM
    assert p.mm.vma_lookup(w).vm_flags & VM_LOCKED                  # but the VMA is locked


def test_mlock_over_a_hole_fails(m, p, w):
    p.mmap(w, P, RW, FIXED)
    p.mmap(w + 2 * P, P, RW, FIXED)
    with pytest.raises(OSError) as e:
        p.mlock(w, 3 * P)
    assert e.value.errno == errno.ENOMEM


def test_mlockall_future_locks_later_mappings(p):
    p.mlockall(MCL_FUTURE)
    a = p.mmap(0, P, RW, ANON)
    assert p.mm.vma_lookup(a).vm_flags & VM_LOCKED and p.mm.def_flags & VM_LOCKED
    p.munlockall()
    assert p.mm.def_flags == 0 and not p.mm.vma_lookup(a).vm_flags & VM_LOCKED


def test_mlockall_current_skips_special_mappings(p):
    p.mlockall(MCL_CURRENT)
    for v in p.vmas:
        assert bool(v.vm_flags & VM_LOCKED) == (v.name not in ("[vvar]", "[vvar_vclock]", "[vdso]"))
    assert p.mm.locked_vm == p.mm.total_vm - 8                      # all but the vDSO's 8 pages


def test_mlockall_errors(m, p):
    assert fails(m, p, errno.EINVAL, p.mlockall, 0)
    assert fails(m, p, errno.EINVAL, p.mlockall, MCL_ONFAULT)       # ONFAULT needs CURRENT or FUTURE
    assert fails(m, p, errno.EINVAL, p.mlockall, 8)
    p.setrlimit(RLIMIT_MEMLOCK, (P, P))
    assert fails(m, p, errno.ENOMEM, p.mlockall, MCL_CURRENT)       # total_vm past the limit


# -- msync -------------------------------------------------------------------------------------

def test_msync_errors(m, p, w):
    p.mmap(w, 2 * P, RW, FIXED)
    E = errno
    assert fails(m, p, E.EINVAL, p.msync, w, P, MS_SYNC | MS_ASYNC)
    assert fails(m, p, E.EINVAL, p.msync, w + 1, P, MS_SYNC)
    assert fails(m, p, E.EINVAL, p.msync, w, P, 8)
    assert fails(m, p, E.ENOMEM, p.msync, w + 4 * P, P, MS_SYNC)
    assert p.msync(w, 2 * P, MS_SYNC) == 0
    p.mlock(w, P)
    assert fails(m, p, E.EBUSY, p.msync, w, P, MS_INVALIDATE)


# -- parameters -------------------------------------------------------------------------------

def test_wrong_types_name_the_parameter(p):
    with pytest.raises(TypeError, match="length"):
        p.mmap(0, "4096", RW, ANON)
    with pytest.raises(TypeError, match="prot"):
        p.mprotect(0x10000, P, 1.0)
    with pytest.raises(ValueError, match="addr"):
        p.munmap(-4096, P)
    with pytest.raises(TypeError, match="fd"):
        p.mmap(0, P, RW, ANON, None)


def test_exited_process_makes_no_calls(m, p):
    p.exit()
    assert p.pid not in m.processes and m.committed_pages == 0
    from mmlab import KernelBug
    with pytest.raises(KernelBug):
        p.mmap(0, P, RW, ANON)
    m.check()


# -- mremap (every case below printed the same maps on the reference machine) ----------------

def test_mremap_grows_in_place_when_the_next_pages_are_free(p, w):
    p.mmap(w + 30 * P, 4 * P, RW, FIXED)
    assert p.mremap(w + 30 * P, 4 * P, 8 * P) == w + 30 * P
    assert window(p, w) == [(30, 38, "rw-p")]


def test_mremap_without_room_and_without_maymove_fails(m, p, w):
    p.mmap(w + 30 * P, 8 * P, RW, FIXED)
    p.mmap(w + 40 * P, 2 * P, PROT_READ, FIXED)
    assert fails(m, p, errno.ENOMEM, p.mremap, w + 30 * P, 8 * P, 12 * P)


def test_mremap_shrink_unmaps_the_tail(p, w):
    p.mmap(w + 30 * P, 8 * P, RW, FIXED)
    assert p.mremap(w + 30 * P, 8 * P, 2 * P) == w + 30 * P
    assert window(p, w) == [(30, 32, "rw-p")]


def test_mremap_fixed_moves_and_replaces(p, w):
    p.mmap(w + 30 * P, 2 * P, RW, FIXED)
    p.mmap(w + 61 * P, 2 * P, PROT_READ, FIXED)
    assert p.mremap(w + 30 * P, 2 * P, 3 * P, MREMAP_MAYMOVE | MREMAP_FIXED, w + 60 * P) == w + 60 * P
    assert window(p, w) == [(60, 63, "rw-p")]                        # what was at 61 is gone


def test_mremap_move_merges_an_unwritten_mapping_at_its_new_place(p, w):
    p.mmap(w + 30 * P, 2 * P, RW, FIXED)
    p.mmap(w + 40 * P, 2 * P, RW, FIXED)
    p.mremap(w + 40 * P, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, w + 32 * P)
    assert window(p, w) == [(30, 34, "rw-p")]                        # pgoff follows the new address


def test_mremap_move_keeps_a_written_mappings_pgoff(p, w):
    p.mmap(w + 30 * P, 2 * P, RW, FIXED)
    p.mmap(w + 40 * P, 2 * P, RW, FIXED)
    V.anon_vma_prepare(p.mm.vma_lookup(w + 40 * P))
    p.mremap(w + 40 * P, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, w + 32 * P)
    assert window(p, w) == [(30, 32, "rw-p"), (32, 34, "rw-p")]      # its pages know their old offsets


def test_mremap_fixed_moves_several_vmas_keeping_gaps(p, w):
    p.mmap(w + 30 * P, 2 * P, RW, FIXED)
    p.mmap(w + 33 * P, 2 * P, PROT_READ, FIXED)
    assert p.mremap(w + 30 * P, 6 * P, 6 * P, MREMAP_MAYMOVE | MREMAP_FIXED, w + 100 * P) == w + 100 * P
    assert window(p, w) == [(100, 102, "rw-p"), (103, 105, "r--p")]  # Linux 6.17+


def test_mremap_dontunmap_leaves_the_source_mapped(p, w):
    p.mmap(w + 80 * P, 2 * P, RW, FIXED)
    flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP | MREMAP_FIXED
    assert p.mremap(w + 80 * P, 2 * P, 2 * P, flags, w + 90 * P) == w + 90 * P
    assert window(p, w) == [(80, 82, "rw-p"), (90, 92, "rw-p")]
    assert p.mm.vma_lookup(w + 80 * P).vm_flags & VM_ACCOUNT          # still charged, as 6.18 does


def test_mremap_errors(m, p, w):
    p.mmap(w + 60 * P, P, RW, FIXED)
    p.mmap(w + 61 * P, 2 * P, PROT_READ, FIXED)
    E, MM, FX = errno, MREMAP_MAYMOVE, MREMAP_FIXED
    assert fails(m, p, E.EINVAL, p.mremap, w + 60 * P, P, 2 * P, MM | FX, w + 60 * P)   # overlap
    assert fails(m, p, E.EINVAL, p.mremap, w + 60 * P, P, P, 8)                       # unknown flag
    assert fails(m, p, E.EINVAL, p.mremap, w + 60 * P, P, P, FX, w + 100 * P)          # FIXED needs MAYMOVE
    assert fails(m, p, E.EINVAL, p.mremap, w + 60 * P + 1, P, P)                       # unaligned
    assert fails(m, p, E.EINVAL, p.mremap, w + 60 * P, P, 0)                           # new length 0
    assert fails(m, p, E.EINVAL, p.mremap, w + 60 * P, 0, P, MM)                       # duplicate private
    assert fails(m, p, E.EFAULT, p.mremap, w + 200 * P, P, P)                          # nothing mapped
    assert fails(m, p, E.EFAULT, p.mremap, w + 60 * P, 2 * P, 4 * P, MM)               # past the VMA's end


def test_map_fixed_refused_after_gathering_leaves_the_split(m, p, w):
    """As on the reference machine: the old VMA was split before RLIMIT_AS said no."""
    p.mmap(w + 8 * P, 4 * P, RW, FIXED)
    p.setrlimit(RLIMIT_AS, ((p.mm.total_vm + 2) * P, RLIM_INFINITY))
    with pytest.raises(OSError) as e:
        p.mmap(w + 10 * P, 16 * P, PROT_READ, FIXED)
    assert e.value.errno == errno.ENOMEM
    assert window(p, w) == [(8, 10, "rw-p"), (10, 12, "rw-p")]       # unmerged, as Linux leaves it
    m.check()                                                       # and the checker knows it may
