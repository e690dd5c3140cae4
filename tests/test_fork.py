"""fork: dup_mmap and copy_page_range, and copy-on-write on either side."""
from mmlab.arch import PAGE_SIZE
from mmlab.mm import memory
from mmlab.uapi import PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MADV_DONTFORK, \
    MADV_WIPEONFORK

PG = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def frame(p, a):
    return p.pagemap(a) & memory.PM_PFRAME_MASK


def test_fork_copies_vmas_and_maps(m):
    p = m.spawn("a.out")
    c = p.fork()
    assert c.maps() == p.maps()                                 # the same layout
    assert c.pid != p.pid and c.pid in m.processes
    m.check()


def test_fork_shares_anon_pages_write_protected(m):
    p = m.spawn("a.out")
    a = p.mmap(0, 2 * PG, RW, ANON)
    p.store(a, b"parent")
    c = p.fork()
    f = frame(p, a)
    assert frame(c, a) == f                                     # one frame, two mappings
    assert m.mem_map.mapcount[f] == 2 and m.mem_map.refcount[f] == 2
    assert not memory.pgtable_get_one(p.mm, a) & memory._PAGE_RW   # both write-protected
    assert not memory.pgtable_get_one(c.mm, a) & memory._PAGE_RW
    m.check()


def test_child_write_copies_parent_keeps(m):
    p = m.spawn("a.out")
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"one")
    c = p.fork()
    c.store(a, b"two")
    assert (p.load(a, 3), c.load(a, 3)) == (b"one", b"two")
    assert frame(p, a) != frame(c, a)
    assert c.rusage() == (1, 0)                                 # one COW fault in the child
    m.check()


def test_parent_write_copies_child_keeps(m):
    p = m.spawn("a.out")
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"old")
    c = p.fork()
    p.store(a, b"new")
    assert (p.load(a, 3), c.load(a, 3)) == (b"new", b"old")
    m.check()


def test_reuse_without_copy_when_the_other_side_has_gone(m):
    p = m.spawn("a.out")
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"x")
    f = frame(p, a)
    p.fork().exit()
    with m.trace() as t:
        p.store(a, b"y")
    assert "wp_page_copy" not in str(t) and frame(p, a) == f    # wp_page_reuse: same frame
    m.check()


def test_vma_without_anon_vma_is_not_copied(m):
    p = m.spawn("a.out")
    a = p.mmap(0, PG, RW, ANON)
    p.load(a)                                                   # zero page: no anon_vma
    c = p.fork()
    assert c.pagemap(a) == 0                                    # the child faults it again
    assert c.touch(a, PG) == 1


def test_shared_mapping_is_shared(m):
    p = m.spawn("a.out")
    a = p.mmap(0, PG, RW, MAP_SHARED | MAP_ANONYMOUS)
    p.store(a, b"s")
    c = p.fork()
    c.store(a, b"t")
    assert p.load(a) == b"t"
    m.check()


def test_dontfork_and_wipeonfork(m):
    p = m.spawn("a.out")
    a = p.mmap(0, PG, RW, ANON)
    b = p.mmap(0, PG, RW, ANON)
    p.store(a, b"a")
    p.store(b, b"b")
    p.madvise(a, PG, MADV_DONTFORK)
    p.madvise(b, PG, MADV_WIPEONFORK)
    c = p.fork()
    assert c.mm.find_vma_intersection(a, a + PG) is None        # not copied at all
    assert c.load(b) == b"\0"                                   # copied empty
    m.check()


def test_exit_of_both_frees_everything(m):
    free = sum(z.nr_free_pages for z in m.zones)
    p = m.spawn("a.out")
    a = p.mmap(0, 8 * PG, RW, ANON)
    p.touch(a, 8 * PG, write=True)
    c = p.fork()
    c.touch(a, 4 * PG, write=True)
    p.exit()
    m.check()
    c.exit()
    m.drain_all_pages()
    m.check()
    assert sum(z.nr_free_pages for z in m.zones) == free
