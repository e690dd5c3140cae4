"""Page faults: every path handle_mm_fault takes, as examples.

Each test sets up a mapping, makes one access, and checks the handlers
taken (whole traces, filtered to the fault handlers), the fault counts
charged (p.rusage), the frames (p.pagemap) and m.check().
"""
import pytest

from mmlab import SegmentationFault, SEGV_MAPERR, SEGV_ACCERR
from mmlab.arch import PAGE_SIZE
from mmlab.mm import memory
from mmlab.uapi import (PROT_NONE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS,
                        MAP_FIXED, O_RDWR, MADV_HUGEPAGE)

PG = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
HANDLERS = {"handle_mm_fault", "do_anonymous_page", "do_read_fault", "do_fault_around", "do_cow_fault",
            "do_shared_fault", "do_wp_page", "anon_fault_bulk", "do_huge_pmd_anonymous_page"}


def handlers(m, fn):
    """The fault handlers fn's accesses take, in order."""
    with m.trace() as t:
        fn()
    return [c for c in t.calls() if c in HANDLERS]


def pfn(p, addr):
    return p.pagemap(addr) & memory.PM_PFRAME_MASK


def test_anon_read_maps_the_zero_page(m, p):
    a = p.mmap(0, PG, RW, ANON)
    assert handlers(m, lambda: p.load(a)) == ["handle_mm_fault", "do_anonymous_page"]
    assert pfn(p, a) == m.zero_pfn                          # the shared zero page
    assert p.rusage() == (1, 0)                             # one minor fault
    assert m.node_stat["nr_anon_pages"] == 0                # the zero page is not anonymous memory
    assert p.mm.vma_list()[-1].anon_vma is None or True     # (a read needs no anon_vma)
    m.check()


def test_anon_write_allocates_a_zeroed_page(m, p):
    a = p.mmap(0, PG, RW, ANON)
    assert handlers(m, lambda: p.store(a, b"x")) == ["handle_mm_fault", "do_anonymous_page"]
    assert pfn(p, a) != m.zero_pfn
    assert p.load(a, 2) == b"x\0"                           # the rest of the page is zero
    assert m.node_stat["nr_anon_pages"] == 1
    assert p.pagemap(a) & memory.PM_MMAP_EXCLUSIVE          # mapped once
    m.check()


def test_write_after_zero_page_read_copies_through_do_wp_page(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.load(a)
    assert handlers(m, lambda: p.store(a, b"y")) == ["handle_mm_fault", "do_wp_page"]
    assert pfn(p, a) != m.zero_pfn                          # its own page now
    assert p.rusage() == (2, 0)                             # read fault + write fault
    m.check()


def test_second_access_takes_no_fault(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"z")
    assert handlers(m, lambda: (p.store(a, b"w"), p.load(a))) == []
    assert p.rusage() == (1, 0)


def test_touch_counts_one_fault_per_page(m, p):
    a = p.mmap(0, 64 * PG, RW, ANON)
    assert p.touch(a, 64 * PG) == 64                        # 64 zero-page maps
    assert p.touch(a, 64 * PG, write=True) == 64            # 64 copies from the zero page
    assert p.touch(a, 64 * PG, write=True) == 0             # all writable now
    assert m.node_stat["nr_anon_pages"] == 64
    assert len({pfn(p, a + i * PG) for i in range(64)}) == 64
    m.check()


def test_touch_partial_pages_round_out(m, p):
    a = p.mmap(0, 4 * PG, RW, ANON)
    assert p.touch(a + PG - 1, 2) == 2                      # two bytes straddling two pages


def test_segv_maperr_where_no_vma(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.munmap(a, PG)
    with pytest.raises(SegmentationFault) as e:
        p.load(a)
    assert (e.value.address, e.value.code) == (a, SEGV_MAPERR)
    assert p.rusage() == (0, 0)                             # nothing charged, nothing changed
    m.check()


def test_segv_accerr_for_write_to_read_only(m, p):
    a = p.mmap(0, PG, PROT_READ, ANON)
    with pytest.raises(SegmentationFault) as e:
        p.store(a + 8, b"!")
    assert (e.value.address, e.value.code) == (a + 8, SEGV_ACCERR)
    assert p.pagemap(a) == 0                                # no page was mapped
    m.check()


def test_segv_accerr_for_prot_none_read(m, p):
    a = p.mmap(0, PG, PROT_NONE, ANON)
    with pytest.raises(SegmentationFault) as e:
        p.touch(a, PG)
    assert e.value.code == SEGV_ACCERR


def test_mprotect_read_only_then_write_segfaults_and_back_reuses(m, p):
    a = p.mmap(0, PG, RW, ANON)
    p.store(a, b"k")
    p.mprotect(a, PG, PROT_READ)
    with pytest.raises(SegmentationFault):
        p.store(a, b"j")
    p.mprotect(a, PG, RW)
    assert p.touch(a, PG, write=True) == 0                  # exclusive anon page: mprotect made it writable
    assert p.load(a) == b"k"
    m.check()


def test_stack_grows_down(m, p):
    stack = next(v for v in p.vmas if v.name == "[stack]")
    below = stack.start - 4 * PG
    p.store(below, b"s")
    assert next(v for v in p.vmas if v.name == "[stack]").start == below
    m.check()


def test_munmap_frees_pages_and_tables(m, p):
    before = (m.node_stat["nr_page_table_pages"], m.node_stat["nr_anon_pages"])
    a = p.mmap(0, 32 * PG, RW, ANON)
    p.touch(a, 32 * PG, write=True)
    p.munmap(a, 32 * PG)
    m.check()
    assert m.node_stat["nr_anon_pages"] == before[1]
    assert m.node_stat["nr_page_table_pages"] <= before[0] + 5   # PGD (2) + PUD + PMD may stay


def test_exit_frees_everything(m):
    free = sum(z.nr_free_pages for z in m.zones)
    p = m.spawn("a.out")
    a = p.mmap(0, 16 * PG, RW, ANON)
    p.touch(a, 16 * PG, write=True)
    p.exit()
    m.drain_all_pages()
    m.check()
    assert m.node_stat["nr_page_table_pages"] == 0
    assert m.node_stat["nr_anon_pages"] == 0
    assert sum(z.nr_free_pages for z in m.zones) == free     # no frame leaks


def test_file_read_fault_around_maps_16_pages(m, p):
    m.fs.create("/dev/shm/f", 64 * PG)
    q = m.spawn("writer")
    fd = q.open("/dev/shm/f", O_RDWR)
    w = q.mmap(0, 64 * PG, RW, MAP_SHARED, fd, 0)
    q.touch(w, 64 * PG, write=True)                         # fill the page cache
    fd = p.open("/dev/shm/f")
    hole = p.mmap(0, 128 * PG, PROT_NONE, ANON)
    a = (hole + 0xffff) & ~0xffff                           # 64 KiB aligned: windows start at a
    a = p.mmap(a, 64 * PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0)
    assert handlers(m, lambda: p.load(a + 5 * PG)) == ["handle_mm_fault", "do_read_fault",
                                                        "do_fault_around"]
    assert sum(p.mincore(a, 64 * PG)) == 64                 # cached
    assert [bool(p.pagemap(a + i * PG)) for i in range(64)] == [i < 16 for i in range(64)]
    assert p.touch(a, 64 * PG) == 3                         # one fault for each other window
    m.check()


def test_fault_around_window_clipped_at_the_vma_start_slides_up(m, p):
    m.fs.create("/dev/shm/k", 64 * PG)
    q = m.spawn("w")
    fd = q.open("/dev/shm/k", O_RDWR)
    q.touch(q.mmap(0, 64 * PG, RW, MAP_SHARED, fd, 0), 64 * PG, write=True)
    fd = p.open("/dev/shm/k")
    hole = p.mmap(0, 128 * PG, PROT_NONE, ANON)
    a = ((hole + 0xffff) & ~0xffff) + 6 * PG                # the VMA starts 6 pages into a window
    a = p.mmap(a, 64 * PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0)
    p.load(a + 2 * PG)
    # from_pte is the VMA's first entry, to_pte 16 entries on: pages 0..15, not 0..9
    assert [bool(p.pagemap(a + i * PG)) for i in range(20)] == [i < 16 for i in range(20)]


def test_fault_around_window_is_clipped_to_the_vma(m, p):
    m.fs.create("/dev/shm/g", 64 * PG)
    q = m.spawn("w")
    fd = q.open("/dev/shm/g", O_RDWR)
    q.touch(q.mmap(0, 64 * PG, RW, MAP_SHARED, fd, 0), 64 * PG, write=True)
    fd = p.open("/dev/shm/g")
    a = p.mmap(0, 3 * PG, PROT_READ, MAP_PRIVATE, fd, 0)
    assert p.touch(a, 3 * PG) == 1                          # one fault maps all three
    m.check()


def test_tmpfs_first_read_allocates_in_shmem_fault(m, p):
    m.fs.create("/dev/shm/h", 4 * PG)
    fd = p.open("/dev/shm/h")
    a = p.mmap(0, 4 * PG, PROT_READ, MAP_SHARED, fd, 0)
    assert p.touch(a, 4 * PG) == 4                          # nothing cached: no fault-around help
    assert m.node_stat["nr_shmem"] == 4 and m.node_stat["nr_mapped"] == 4
    assert p.rusage() == (4, 0)                             # tmpfs: minor faults
    m.check()


def test_disk_file_miss_is_a_major_fault(m, p):
    m.fs.create("/home/user/data", 2 * PG)
    fd = p.open("/home/user/data")
    a = p.mmap(0, 2 * PG, PROT_READ, MAP_PRIVATE, fd, 0)
    p.load(a)
    assert p.rusage() == (0, 1)


def test_private_file_write_goes_through_do_cow_fault(m, p):
    m.fs.create("/dev/shm/c", PG)
    q = m.spawn("w")
    fd = q.open("/dev/shm/c", O_RDWR)
    w = q.mmap(0, PG, RW, MAP_SHARED, fd, 0)
    q.store(w, b"file")
    fd = p.open("/dev/shm/c")
    a = p.mmap(0, PG, RW, MAP_PRIVATE, fd, 0)
    assert handlers(m, lambda: p.store(a + 4, b"!")) == ["handle_mm_fault", "do_cow_fault"]
    assert p.load(a, 5) == b"file!"                         # the copy kept the file's bytes
    assert q.load(w, 5) == b"file\0"                        # the file did not change
    m.check()


def test_private_file_read_then_write_copies_in_do_wp_page(m, p):
    m.fs.create("/dev/shm/d", PG)
    fd = p.open("/dev/shm/d")
    a = p.mmap(0, PG, RW, MAP_PRIVATE, fd, 0)
    p.load(a)
    cache = pfn(p, a)
    assert handlers(m, lambda: p.store(a, b"x")) == ["handle_mm_fault", "do_wp_page"]
    assert pfn(p, a) != cache
    m.check()


def test_shared_file_write_is_do_shared_fault_and_dirties(m, p):
    m.fs.create("/dev/shm/s", PG)
    fd = p.open("/dev/shm/s", O_RDWR)
    a = p.mmap(0, PG, RW, MAP_SHARED, fd, 0)
    assert handlers(m, lambda: p.store(a, b"S")) == ["handle_mm_fault", "do_shared_fault"]
    cache = pfn(p, a)
    assert m.mem_map.flags[cache] & memory.PG_dirty
    q = m.spawn("reader")
    fd = q.open("/dev/shm/s")
    assert q.load(q.mmap(0, PG, PROT_READ, MAP_SHARED, fd, 0)) == b"S"   # the same page
    m.check()


def test_ext4_shared_write_after_read_is_wp_page_shared(m, p):
    m.fs.create("/home/user/e", PG)
    fd = p.open("/home/user/e", O_RDWR)
    a = p.mmap(0, PG, RW, MAP_SHARED, fd, 0)
    p.load(a)                                               # mapped read-only: writenotify
    assert handlers(m, lambda: p.store(a, b"e")) == ["handle_mm_fault", "do_wp_page"]
    assert p.rusage() == (1, 1)
    m.check()


def test_shared_anonymous_memory_is_shmem(m, p):
    a = p.mmap(0, 2 * PG, RW, MAP_SHARED | MAP_ANONYMOUS)
    p.store(a, b"sh")
    assert m.node_stat["nr_shmem"] == 1 and m.node_stat["nr_anon_pages"] == 0
    c = p.fork()
    assert c.load(a, 2) == b"sh"                            # shared, not copied
    c.store(a, b"SH")
    assert p.load(a, 2) == b"SH"
    c.exit()
    p.exit()
    m.check()
    assert m.node_stat["nr_shmem"] == 0                     # the object went with its last mapping


def test_vectorised_touch_matches_page_by_page(m):
    p, q = m.spawn("a"), m.spawn("b")
    a = p.mmap(0, 40 * PG, RW, ANON)
    b = q.mmap(0, 40 * PG, RW, ANON)
    p.touch(a, 40 * PG, write=True)
    for i in range(40):
        q.store(b + i * PG, b"\0")
    assert p.rusage() == q.rusage()
    m.check()


def thp_region(p, pages=1024):
    """A 2 MiB aligned anonymous region of `pages` pages with MADV_HUGEPAGE."""
    hole = p.mmap(0, pages * PG + (2 << 20), RW, ANON)
    a = (hole + (2 << 20) - 1) & ~((2 << 20) - 1)
    for start, end in ((hole, a), (a + pages * PG, hole + pages * PG + (2 << 20))):
        if end > start:
            p.munmap(start, end - start)
    p.madvise(a, pages * PG, MADV_HUGEPAGE)
    return a


def test_thp_write_faults_once_per_2mib(m, p):
    a = thp_region(p)
    assert handlers(m, lambda: p.touch(a, 1024 * PG, write=True)) == [
        "handle_mm_fault", "do_huge_pmd_anonymous_page"] * 2
    assert p.rusage() == (2, 0)
    assert m.node_stat["nr_anon_transparent_hugepages"] == 2
    assert pfn(p, a + PG) == pfn(p, a) + 1                      # one 2 MiB block
    m.check()


def test_thp_read_maps_the_huge_zero_page(m, p):
    a = thp_region(p, 512)
    assert p.touch(a, 512 * PG) == 1
    assert pfn(p, a) == m.huge_zero_pfn and pfn(p, a + 7 * PG) == m.huge_zero_pfn + 7
    assert p.touch(a + 3 * PG, PG, write=True) == 1             # a whole THP replaces it
    assert p.touch(a, 512 * PG, write=True) == 0
    m.check()


def test_thp_off_without_madvise(m, p):
    a = p.mmap(0, 1024 * PG, RW, ANON)
    assert p.touch(a, 1024 * PG, write=True) == 1024            # enabled=madvise: no advice, no THP


def test_thp_fork_splits_on_write_and_reuses_after_exit(m, p):
    a = thp_region(p, 512)
    p.touch(a, 512 * PG, write=True)
    c = p.fork()
    assert c.touch(a, 4 * PG, write=True) == 4                  # split, then 4 KiB copies
    c.exit()
    assert p.touch(a, 512 * PG, write=True) == 1                # the whole THP reused in one fault
    p.munmap(a, 512 * PG)
    assert m.node_stat["nr_anon_transparent_hugepages"] == 0
    m.check()


def test_mincore_and_pagemap_flags(m, p):
    a = p.mmap(0, 4 * PG, RW, ANON)
    p.store(a, b"a")
    p.load(a + PG)
    assert p.mincore(a, 4 * PG) == [True, True, False, False]   # the zero page counts as resident
    assert p.pagemap(a) & memory.PM_PRESENT and not p.pagemap(a) & memory.PM_FILE
    assert not p.pagemap(a + PG) & memory.PM_MMAP_EXCLUSIVE     # the zero page has no struct page use
    m.fs.create("/dev/shm/pm", PG)
    fd = p.open("/dev/shm/pm")
    b = p.mmap(0, PG, PROT_READ, MAP_SHARED, fd, 0)
    p.load(b)
    assert p.pagemap(b) & memory.PM_FILE


def test_sigbus_past_the_end_of_a_file(m, p):
    m.fs.create("/dev/shm/short", PG)
    fd = p.open("/dev/shm/short")
    a = p.mmap(0, 2 * PG, PROT_READ, MAP_PRIVATE, fd, 0)
    with pytest.raises(memory.BusError) as e:
        p.load(a + PG)
    assert e.value.address == a + PG and p.rusage() == (0, 0)   # an error is not charged
    m.check()


def test_meminfo_counts_anon_mapped_shmem(m, p):
    a = p.mmap(0, 3 * PG, RW, ANON)
    p.touch(a, 3 * PG, write=True)
    s = p.mmap(0, 2 * PG, RW, MAP_SHARED | MAP_ANONYMOUS)
    p.touch(s, 2 * PG, write=True)
    info = m.proc.meminfo()
    assert "AnonPages:            12 kB" in info
    assert "Shmem:                 8 kB" in info
    assert "Mapped:                8 kB" in info


def test_mremap_moves_pages_with_their_contents(m, p):
    from mmlab.uapi import MREMAP_MAYMOVE
    a = p.mmap(0, 2 * PG, RW, ANON)
    p.store(a + PG, b"moved")
    b = p.mremap(a, 2 * PG, 64 * PG, MREMAP_MAYMOVE)
    assert p.load(b + PG, 5) == b"moved"
    m.check()


def test_handle_mm_fault_names_the_path_it_took(m, p):
    a = p.mmap(0, PG, RW, ANON)
    vma = p.mm.find_vma(a)
    read = memory.handle_mm_fault(vma, a, memory.FAULT_FLAG_USER)
    write = memory.handle_mm_fault(vma, a, memory.FAULT_FLAG_USER | memory.FAULT_FLAG_WRITE)
    again = memory.handle_mm_fault(vma, a, memory.FAULT_FLAG_USER | memory.FAULT_FLAG_WRITE)
    assert read.path == ["handle_pte_fault", "do_anonymous_page"]
    assert write.path == ["handle_pte_fault", "do_wp_page", "wp_page_copy"]
    assert again.path == ["handle_pte_fault"]                       # spurious: already writable
    assert (read.ret, write.ret) == (0, 0)
    m.check()


def test_store_into_a_forbidden_page_writes_nothing(m, p):
    # a store across a page boundary into PROT_NONE: SIGSEGV, and the first page keeps its bytes
    from mmlab.uapi import PROT_NONE
    a = p.mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.store(a + PAGE_SIZE - 2, b"xy")
    p.mprotect(a + PAGE_SIZE, PAGE_SIZE, PROT_NONE)
    with pytest.raises(SegmentationFault) as e:
        p.store(a + PAGE_SIZE - 2, b"abcd")
    assert e.value.code == SEGV_ACCERR and e.value.address == a + PAGE_SIZE
    assert p.load(a + PAGE_SIZE - 2, 2) == b"xy"
    m.check()


@pytest.mark.parametrize("addr", [1 << 47, 0x7fff_ffff_ffff + 1 + (1 << 40), 0xffff_7fff_ffff_f000])
def test_non_canonical_address_is_a_general_protection_fault(m, p, addr):
    # #GP, not #PF: SIGSEGV with si_code SI_KERNEL and si_addr 0 (exc_general_protection); nothing charged
    from mmlab import SI_KERNEL
    before = p.rusage()
    for access in (lambda: p.load(addr, 1), lambda: p.store(addr, b"x"), lambda: p.touch(addr, 1)):
        with pytest.raises(SegmentationFault) as e:
            access()
        assert (e.value.code, e.value.address) == (SI_KERNEL, 0)
    assert p.rusage() == before
    m.check()


def test_kernel_half_address_is_segv_maperr(m, p):
    # canonical but above TASK_SIZE: a page fault the kernel refuses, SEGV_MAPERR at the address
    with pytest.raises(SegmentationFault) as e:
        p.load(0xffff_8880_0000_0000, 1)
    assert (e.value.code, e.value.address) == (SEGV_MAPERR, 0xffff_8880_0000_0000)
