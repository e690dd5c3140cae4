"""copy_page_range allocates the child's page tables as Linux's copy_pte_range does."""
import os
import shutil
import sys

import pytest

from mmlab import Machine
from mmlab.arch import PAGE_SIZE
from mmlab.mm import pgtable
from mmlab.uapi import PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MADV_DONTFORK

PMD = 2 << 20


def child_pte_tables(c, start, end):
    return [t for t, *_ in pgtable.pte_tables(c.mm, start, end) if t is not None]


def test_fork_copies_an_empty_pte_table_of_a_vma_that_needs_copy():
    # Regression (model had no table): pages 0-3 of a 2 MiB block are MADV_DONTFORK and
    # written, the rest of the block is a VMA with an anon_vma but no entries.  Linux's
    # copy_pte_range allocates the child's table for it all the same (pte_alloc_map_lock
    # comes first), so VmPTE counts it; seen on Linux 6.18 through /proc/pid/status.
    m = Machine(ram="128MiB", seed=0)
    p = m.spawn("a.out")
    r = p.mmap(0, 3 * PMD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    a = (r + PMD - 1) & ~(PMD - 1)
    p.store(a + PMD, b"x")                                   # an anon_vma, a table in the next block
    p.madvise(a, 4 * PAGE_SIZE, MADV_DONTFORK)               # splits; the rest keeps the anon_vma
    p.touch(a, 4 * PAGE_SIZE, write=True)                    # the first block's table holds these only
    c = p.fork()
    assert len(child_pte_tables(c, a, a + 2 * PMD)) == 2     # both blocks' tables, one of them empty
    assert not any(pgtable.get_ptes(c.mm, a, a + PMD))       # and nothing in the first
    m.check()
    c.exit()
    p.exit()
    m.check()


def test_fork_copies_no_table_for_a_vma_without_anon_vma():
    m = Machine(ram="128MiB", seed=0)
    p = m.spawn("a.out")
    r = p.mmap(0, 3 * PMD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    a = (r + PMD - 1) & ~(PMD - 1)                           # a table of its own
    p.touch(a, 8 * PAGE_SIZE)                                # reads: the zero page, no anon_vma
    c = p.fork()
    assert len(child_pte_tables(p, a, a + PMD)) == 1         # the parent has the table
    assert child_pte_tables(c, a, a + PMD) == []             # vma_needs_copy is false: the child not
    m.check()


HOST_SCRIPT = r"""
import ctypes, mmap, os, sys
PMD = 2 << 20
buf = mmap.mmap(-1, 6 * PMD, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
off = -ctypes.addressof(ctypes.c_char.from_buffer(buf)) % PMD
buf[off + PMD] = 1
buf.madvise(mmap.MADV_DONTFORK, off, 4 * 4096)
for i in range(4 if int(sys.argv[1]) else 0):
    buf[off + i * 4096] = 1
vmpte = lambda: int([l for l in open("/proc/self/status") if l.startswith("VmPTE")][0].split()[1])
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, str(vmpte()).encode())
    os._exit(0)
os.waitpid(pid, 0)
print(vmpte(), int(os.read(r, 64)))
"""


def host_vmpte(heads):
    """(parent, child) VmPTE in kB on this kernel.

    Run without address-space randomisation (setarch -R) and with a fixed
    hash seed: with ASLR the interpreter's own mappings share page tables
    differently from run to run, and the difference between two runs
    wanders by several tables.
    """
    import subprocess
    out = subprocess.run(["setarch", "-R", sys.executable, "-c", HOST_SCRIPT, str(int(heads))],
                         capture_output=True, text=True, check=True, timeout=60,
                         env=dict(os.environ, PYTHONHASHSEED="0"))
    return tuple(int(x) for x in out.stdout.split())


def model_vmpte(heads):
    m = Machine(ram="128MiB", seed=0)
    p = m.spawn("a.out")
    r = p.mmap(0, 6 * PMD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    a = (r + PMD - 1) & ~(PMD - 1)
    p.store(a + PMD, b"x")
    p.madvise(a, 4 * PAGE_SIZE, MADV_DONTFORK)
    if heads:
        p.touch(a, 4 * PAGE_SIZE, write=True)
    c = p.fork()
    m.check()
    return p.mm.pgtables_bytes >> 10, c.mm.pgtables_bytes >> 10


def thp_always():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.exists("/proc/self/status"),
                    reason="needs Linux /proc/self/status (VmPTE)")
@pytest.mark.skipif(thp_always(), reason="THP enabled=always: the written page may be a huge page")
@pytest.mark.skipif(shutil.which("setarch") is None, reason="needs setarch (util-linux) to turn off ASLR")
def test_child_vmpte_grows_like_linux_for_an_empty_table():
    # Differential: the parent writes 4 MADV_DONTFORK pages in block 0 (X) or not (Y); the child's
    # VmPTE grows by the one empty table Linux copies for the rest of block 0, in both.
    hx, hy = host_vmpte(True), host_vmpte(False)
    mx, my = model_vmpte(True), model_vmpte(False)
    assert (hx[0] - hy[0], hx[1] - hy[1]) == (mx[0] - my[0], mx[1] - my[1]) == (4, 4)
