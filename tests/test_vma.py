"""VMAs (mmlab/mm/vma.py): the ordered set, lookups, merging, splitting, anon_vma sharing.

Examples that define when Linux merges two VMAs (same flags, same struct
file, following offsets, compatible anon_vma), when it splits one
(munmap or mprotect of part of it) and how mprotect merges the pieces back;
the lookups the maple tree answers (find_vma and friends, the free gaps);
the /proc/pid/maps line; the trace of a merge.  Each test works in a window
reserved PROT_NONE above every mapping, so its addresses are exact.
"""
import pytest

from mmlab import InvariantError
from mmlab.arch import PAGE_SIZE
from mmlab.mm import vma as V
from mmlab.mm.vma import VM_DONTEXPAND
from mmlab.process import show_map_vma
from mmlab.uapi import (PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED,
                        MAP_ANONYMOUS, MAP_FIXED, MAP_NORESERVE, O_RDWR)

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
FIXED = ANON | MAP_FIXED


@pytest.fixture
def w(fenced_window):
    """A free 64-page window, fenced by shared pages that never merge with anything."""
    return fenced_window(64)


def layout(p, base, pages=64):
    """The window's VMAs as (first page, last page + 1, perms), relative to base."""
    out = []
    for v in p.mm.vmas_in(base, base + pages * P):
        out.append(((v.vm_start - base) // P, (v.vm_end - base) // P, v.perms))
    return out


# -- lookups -------------------------------------------------------------------------

def test_lookups_on_a_known_layout(p, w):
    p.mmap(w + 2 * P, 2 * P, RW, FIXED)
    p.mmap(w + 8 * P, P, PROT_READ, FIXED)
    a, b = p.mm.vma_lookup(w + 2 * P), p.mm.vma_lookup(w + 8 * P)
    mm = p.mm
    assert mm.find_vma(w) is a                                      # find_vma: next VMA above
    assert mm.find_vma(w + 3 * P + 5) is a                          # an address inside
    assert mm.find_vma(w + 4 * P) is b                              # vm_end is exclusive
    assert mm.vma_lookup(w + 4 * P) is None                         # lookup: only a containing VMA
    assert mm.find_vma_prev(w + 5 * P) == (b, a)                    # (next, prev)
    assert mm.find_vma_intersection(w, w + 2 * P) is None           # touching is not intersecting
    assert mm.find_vma_intersection(w, w + 2 * P + 1) is a
    assert mm.vma_next(a) is b and mm.vma_prev(b) is a              # neighbours
    assert mm.vmas_in(w, w + 9 * P) == [a, b]                       # for_each_vma_range
    assert mm.index(b) == mm.index(a) + 1                           # positions in address order
    assert mm.at(mm.index(a)) is a


def test_holes_are_the_gaps_between_vmas(p, w):
    p.mmap(w + 2 * P, 2 * P, RW, FIXED)
    holes = [h for h in p.mm.holes() if w - P <= h[0] < w + 65 * P]
    assert holes == [(w, w + 2 * P), (w + 4 * P, w + 64 * P)]       # below and above the VMA


def test_find_vma_above_everything_is_none(p):
    assert p.mm.find_vma(0x7ffffffff000) is None                    # nothing at TASK_SIZE
    assert p.mm.find_vma(0).vm_start == p.mm.start_code - 0x1000    # the program's first page


# -- merging a new mapping -----------------------------------------------------------

def test_new_mapping_extends_prev(p, w):
    p.mmap(w, 2 * P, RW, FIXED)
    p.mmap(w + 2 * P, 3 * P, RW, FIXED)
    assert layout(p, w) == [(0, 5, "rw-p")]                         # one VMA


def test_new_mapping_extends_next(p, w):
    p.mmap(w + 3 * P, 2 * P, RW, FIXED)
    before = p.mm.vma_lookup(w + 3 * P)
    p.mmap(w, 3 * P, RW, FIXED)
    assert layout(p, w) == [(0, 5, "rw-p")]
    assert p.mm.vma_lookup(w) is before                             # next grew down: same VMA object
    assert before.vm_pgoff == w // P                                # and took the new range's pgoff


def test_new_mapping_bridges_prev_and_next(p, w):
    p.mmap(w, P, RW, FIXED)
    p.mmap(w + 2 * P, P, RW, FIXED)
    n = p.mm.map_count
    p.mmap(w + P, P, RW, FIXED)
    assert layout(p, w) == [(0, 3, "rw-p")]
    assert p.mm.map_count == n - 1                                  # prev grew over next, next freed


def test_different_protection_does_not_merge(p, w):
    p.mmap(w, P, RW, FIXED)
    p.mmap(w + P, P, PROT_READ, FIXED)
    assert layout(p, w) == [(0, 1, "rw-p"), (1, 2, "r--p")]


def test_noreserve_does_not_merge_with_accounted(p, w):
    p.mmap(w, P, RW, FIXED)                                         # VM_ACCOUNT
    p.mmap(w + P, P, RW, FIXED | MAP_NORESERVE)                     # VM_NORESERVE instead
    assert len(layout(p, w)) == 2


def test_file_pages_must_follow(m, p, w):
    m.fs.create("/data", 64 * P)
    fd = p.open("/data", O_RDWR)
    p.mmap(w, 2 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0)
    p.mmap(w + 2 * P, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 2 * P)    # next offset: merges
    p.mmap(w + 3 * P, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 9 * P)    # a jump: does not
    assert layout(p, w) == [(0, 3, "r--p"), (3, 4, "r--p")]


def test_two_opens_of_one_file_do_not_merge(m, p, w):
    m.fs.create("/data", 64 * P)
    fd1, fd2 = p.open("/data"), p.open("/data")
    p.mmap(w, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd1, 0)
    p.mmap(w + P, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd2, P)           # same file, other struct file
    assert len(layout(p, w)) == 2


def test_anonymous_next_to_file_does_not_merge(m, p, w):
    m.fs.create("/data", 64 * P)
    fd = p.open("/data")
    p.mmap(w, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0)
    p.mmap(w + P, P, PROT_READ, FIXED)
    assert len(layout(p, w)) == 2


def test_shared_anonymous_mappings_never_merge(p, w):
    p.mmap(w, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
    p.mmap(w + P, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)            # each its own shmem object
    assert len(layout(p, w)) == 2


def test_special_mappings_never_merge(p):
    kinds = [v.name for v in p.vmas if v.vm_flags & VM_DONTEXPAND]
    assert kinds == ["[vvar]", "[vvar_vclock]", "[vdso]"]          # adjacent, same flags for two, apart


# -- splitting and merging back -----------------------------------------------------------

def test_munmap_middle_splits_in_two(p, w):
    p.mmap(w, 6 * P, RW, FIXED)
    p.munmap(w + 2 * P, 2 * P)
    assert layout(p, w) == [(0, 2, "rw-p"), (4, 6, "rw-p")]
    assert p.mm.vma_lookup(w + 4 * P).vm_pgoff == (w + 4 * P) // P      # pgoff follows the split


def test_mprotect_middle_splits_in_three_and_merges_back(p, w):
    p.mmap(w, 6 * P, RW, FIXED)
    p.mprotect(w + 2 * P, 2 * P, PROT_READ)
    assert layout(p, w) == [(0, 2, "rw-p"), (2, 4, "r--p"), (4, 6, "rw-p")]
    p.mprotect(w + 2 * P, 2 * P, RW)
    assert layout(p, w) == [(0, 6, "rw-p")]                          # prev absorbs middle and next


def test_mprotect_edge_moves_the_boundary(p, w):
    p.mmap(w, 2 * P, PROT_READ, FIXED)
    p.mmap(w + 2 * P, 2 * P, RW, FIXED)
    p.mprotect(w + 2 * P, P, PROT_READ)                              # left edge of the RW VMA
    assert layout(p, w) == [(0, 3, "r--p"), (3, 4, "rw-p")]           # prev absorbs the start
    p.mprotect(w + 2 * P, P, RW)
    assert layout(p, w) == [(0, 2, "r--p"), (2, 4, "rw-p")]           # next absorbs the end


def test_munmap_of_a_first_page_frees_the_original_vma(p, w):
    p.mmap(w, 4 * P, RW, FIXED)
    vma = p.mm.vma_lookup(w)
    p.munmap(w, P)                          # __split_vma at the end: the new VMA is the part above
    assert p.mm.vma_lookup(w + P) is not vma and (vma.vm_start, vma.vm_end) == (w, w + P)


def test_munmap_of_a_last_page_keeps_the_original_vma(p, w):
    p.mmap(w, 4 * P, RW, FIXED)
    vma = p.mm.vma_lookup(w)
    p.munmap(w + 3 * P, P)                  # __split_vma at the start: the new VMA is the part below
    assert p.mm.vma_lookup(w) is not vma and (vma.vm_start, vma.vm_end) == (w + 3 * P, w + 4 * P)


# -- anon_vma ----------------------------------------------------------------------------

def test_different_anon_vmas_block_a_merge(p, w):
    p.mmap(w, 2 * P, RW, FIXED)
    p.mmap(w + 2 * P, 2 * P, PROT_READ, FIXED)
    V.anon_vma_prepare(p.mm.vma_lookup(w))                           # as a write fault would
    V.anon_vma_prepare(p.mm.vma_lookup(w + 2 * P))                   # flags differ in VM_ACCOUNT: own one
    assert p.mm.vma_lookup(w).anon_vma is not p.mm.vma_lookup(w + 2 * P).anon_vma
    p.mprotect(w + 2 * P, 2 * P, RW)                                 # same flags now, still two
    assert layout(p, w) == [(0, 2, "rw-p"), (2, 4, "rw-p")]


def test_anon_vma_is_shared_with_a_compatible_neighbour(p, w):
    p.mmap(w, 2 * P, RW, FIXED | MAP_NORESERVE)
    p.mmap(w + 2 * P, 2 * P, PROT_READ, FIXED | MAP_NORESERVE)       # flags differ in rwx only
    av = V.anon_vma_prepare(p.mm.vma_lookup(w))
    assert V.anon_vma_prepare(p.mm.vma_lookup(w + 2 * P)) is av       # find_mergeable_anon_vma
    p.mprotect(w + 2 * P, 2 * P, RW)
    assert layout(p, w) == [(0, 4, "rw-p")]                          # so they merge back


def test_new_mapping_merges_with_a_faulted_neighbour(p, w):
    p.mmap(w, P, RW, FIXED)
    av = V.anon_vma_prepare(p.mm.vma_lookup(w))
    p.mmap(w + P, P, RW, FIXED)
    merged = p.mm.vma_lookup(w + P)
    assert layout(p, w) == [(0, 2, "rw-p")] and merged.anon_vma is av


def test_split_pieces_share_the_anon_vma(p, w):
    p.mmap(w, 3 * P, RW, FIXED)
    av = V.anon_vma_prepare(p.mm.vma_lookup(w))
    p.munmap(w + P, P)
    assert p.mm.vma_lookup(w).anon_vma is av and p.mm.vma_lookup(w + 2 * P).anon_vma is av


# -- views and maps lines ----------------------------------------------------------------

def test_vma_views_are_read_only(p):
    v = p.vmas[0]
    with pytest.raises(AttributeError):
        v.vm_start = 0
    assert v.perms == "r--p" and v.vm_file.path == "/home/user/a.out"


def test_maps_line_pads_the_name_to_column_73(p):
    line = p.maps().splitlines()[0]
    assert line.index("/home/user/a.out") == 73                     # seq_pad to 72, then a space
    assert line.split()[3] == "fe:00"                                # the disk's device


def test_maps_line_without_a_name_ends_with_a_space(p, w):
    p.mmap(w, P, RW, FIXED)
    line = show_map_vma(p.mm.vma_lookup(w))
    assert line == f"{w:08x}-{w + P:08x} rw-p 00000000 00:00 0 \n"


def test_maps_line_with_a_long_header_keeps_one_space(m, p, w):
    f = m.fs.create("/big", 1 << 40)
    f.ino = 10 ** 20                                                 # header longer than 72 columns
    fd = p.open("/big")
    p.mmap(w, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0x123456789000)
    line = show_map_vma(p.mm.vma_lookup(w))
    assert line.endswith(f" {10 ** 20}  /big\n")                     # the header's space and seq_pad's


def test_vmflags_as_smaps_prints_them(p, w):
    p.mmap(w, P, RW, FIXED)
    assert p.mm.vma_lookup(w).vmflags == "rd wr mr mw me ac"
    stack = [v for v in p.vmas if v.name == "[stack]"][0]
    assert stack.vmflags == "rd wr mr mw me gd ac"
    vvar = [v for v in p.vmas if v.name == "[vvar]"][0]
    assert vvar.vmflags == "rd mr pf io de dd"


# -- the trace -------------------------------------------------------------------------------

def test_trace_of_a_merge(m, p, w):
    p.mmap(w, P, RW, FIXED)
    with m.trace() as t:
        p.mmap(w + P, P, RW, FIXED)
    assert t.calls() == ["do_mmap", "__get_unmapped_area", "mmap_region", "vma_merge_new_range",
                         "vma_expand"]
    assert "vma_merge: extended prev" in t.notes()


def test_trace_of_mprotect_split(m, p, w):
    p.mmap(w, 3 * P, RW, FIXED)
    with m.trace() as t:
        p.mprotect(w + P, P, PROT_READ)
    assert t.calls() == ["do_mprotect_pkey", "mprotect_fixup", "vma_modify",
                         "vma_merge_existing_range", "split_vma", "__split_vma", "split_vma",
                         "__split_vma"]


# -- the checker ---------------------------------------------------------------------------

def test_check_catches_an_unmerged_pair(m, p, w):
    p.mmap(w, 2 * P, RW, FIXED)
    vma = p.mm.vma_lookup(w)
    V.split_vma(vma, w + P, 0)                                      # a split nobody merged back
    with pytest.raises(InvariantError, match="vma-merged"):
        m.check()


def test_check_catches_a_wrong_counter(m, p):
    p.mm.total_vm += 1
    with pytest.raises(InvariantError, match="vma-counters: .*total_vm"):
        m.check()


def test_check_catches_a_vma_moved_behind_the_trees_back(m, p, w):
    p.mmap(w, 2 * P, RW, FIXED)
    p.mm.vma_lookup(w).vm_end += P
    with pytest.raises(InvariantError, match="vma-tree"):
        m.check()


def test_check_catches_a_commit_count_drift(m, p):
    m.committed_pages += 1
    with pytest.raises(InvariantError, match="vma-commit"):
        m.check()
