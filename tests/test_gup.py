"""Populate: MAP_POPULATE, MADV_POPULATE_READ/WRITE, mlock and mlockall fault pages in (mm/gup.c).

The faults are charged to the calling process, as Linux charges GUP faults
(mm_account_fault without registers still counts min_flt).
"""
import pytest

from mmlab.arch import PAGE_SIZE
from mmlab.uapi import (PROT_NONE, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS,
                        MAP_POPULATE, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MCL_CURRENT,
                        MCL_FUTURE, MLOCK_ONFAULT)

PG = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


@pytest.fixture
def p(m):
    return m.spawn("a.out", uid=0)


def test_map_populate_writes_private_writable_memory(m, p):
    a = p.mmap(0, 16 * PG, RW, ANON | MAP_POPULATE)
    assert p.rusage() == (16, 0)                                # 16 write faults, charged to p
    assert m.node_stat["nr_anon_pages"] == 16
    assert p.touch(a, 16 * PG, write=True) == 0
    m.check()


def test_map_populate_read_only_maps_the_zero_page(m, p):
    a = p.mmap(0, 4 * PG, PROT_READ, ANON | MAP_POPULATE)
    assert p.rusage() == (4, 0)
    assert all(p.pagemap(a + i * PG) & ((1 << 55) - 1) == m.zero_pfn for i in range(4))


def test_madv_populate_read_then_write(m, p):
    a = p.mmap(0, 8 * PG, RW, ANON)
    p.madvise(a, 8 * PG, MADV_POPULATE_READ)
    assert p.rusage() == (8, 0)
    p.madvise(a, 8 * PG, MADV_POPULATE_WRITE)
    assert p.rusage() == (16, 0)                                # each zero page copied
    m.check()


def test_madv_populate_write_on_read_only_is_einval(m, p):
    a = p.mmap(0, PG, PROT_READ, ANON)
    with pytest.raises(OSError) as e:
        p.madvise(a, PG, MADV_POPULATE_WRITE)
    assert e.value.errno == 22


def test_mlock_populates_and_counts_only_missing_pages(m, p):
    a = p.mmap(0, 8 * PG, RW, ANON)
    p.touch(a, 2 * PG, write=True)
    p.mlock(a, 8 * PG)
    assert p.rusage() == (8, 0)                                 # 2 before, 6 by mlock
    m.check()


def test_mlock_onfault_populates_nothing(m, p):
    a = p.mmap(0, 8 * PG, RW, ANON)
    p.mlock2(a, 8 * PG, MLOCK_ONFAULT)
    assert p.rusage() == (0, 0)


def test_mlockall_future_populates_new_mappings(m, p):
    p.mlockall(MCL_CURRENT | MCL_FUTURE)
    before = p.rusage()[0]
    p.mmap(0, 4 * PG, RW, ANON)
    assert p.rusage()[0] - before == 4                          # VM_LOCKED: mm_populate at mmap
    m.check()


def test_populate_shared_anon_reads_shmem_pages(m, p):
    p.mmap(0, 4 * PG, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE)
    assert m.node_stat["nr_shmem"] == 4 and p.rusage() == (4, 0)


def test_mlock_prot_none_is_enomem_and_faults_nothing(m, p):
    a = p.mmap(0, 2 * PG, PROT_NONE, ANON)
    with pytest.raises(OSError):
        p.mlock(a, 2 * PG)
    assert p.rusage() == (0, 0)
