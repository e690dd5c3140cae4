"""Differential tests of /proc/pid/status's RssAnon and RssShmem (mm_rss) against this kernel.

The fault driver reads its own /proc/self/status around each scenario's
accesses (ops rss0 and rss, mmlab/linux/fault_driver.c); the model counts
the same scenario's entries.  The zero page counts nowhere, a tmpfs page
counts as shmem even through a private mapping, a COW copy replaces its
original in the count, and the child of a fork counts what it inherited.
RssFile is left out of the host comparison: the driver's own code pages
come and go in it (fault-around windows move with ASLR).
"""
import os

import pytest

from mmlab import Machine
from mmlab.linux import faults
from mmlab.uapi import PROT_READ, PROT_WRITE, PROT_NONE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS

REASON = faults.host_skip_reason()
RW, R = 3, 1
ANON, SHANON, PRIV, SHARED = 0x22, 0x21, 0x2, 0x1
SHM = f"/dev/shm/mmlab-rss-{os.getpid()}"

SCENARIOS = {
    # reads of fresh anonymous memory map the zero page: no RSS; writes count a page each
    "anon read then write": [f"map 0 64 {RW} {ANON} -", "rss0", "touch 0 0 64 0", "rss",
                             "touch 0 0 64 1", "rss"],
    # shared anonymous memory is shmem
    "shared anon": [f"map 0 16 {RW} {SHANON} -", "rss0", "touch 0 0 16 1", "rss"],
    # a tmpfs file counts as shmem (swap-backed) even mapped private; a private write moves it to anon
    "tmpfs private": [f"file {SHM} 16 1", f"map 0 16 {RW} {PRIV} {SHM}", "rss0", "touch 0 0 16 0", "rss",
                      "touch 0 0 4 1", "rss"],
    # munmap takes the pages out of the count
    "munmap": [f"map 0 32 {RW} {ANON} -", "rss0", "touch 0 0 32 1", "rss", "unmap 0", "rss"],
    # PROT_NONE keeps the pages mapped, and counted
    "mprotect none": [f"map 0 8 {RW} {ANON} -", "rss0", "touch 0 0 8 1", "prot 0 0", "rss"],
    # a child counts the anonymous pages it shares; a COW copy replaces one, a shared read adds one
    "fork": [f"map 0 8 {RW} {ANON} -", f"map 1 4 {RW} {SHANON} -", "touch 0 0 8 1", "touch 1 0 4 1",
             "fork", "rss0", "touch 0 0 8 1", "rss", "touch 1 0 4 0", "rss", "exit"],
}


@pytest.mark.skipif(REASON is not None, reason=f"host rss tests: {REASON}")
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_rss_agrees_with_this_kernel(name):
    script = SCENARIOS[name]
    try:
        host = faults.run_host(script)
    finally:
        if os.path.exists(SHM):
            os.unlink(SHM)
    assert faults.run_model(script) == host


def test_rss_counts_by_kind():
    # the model alone: 3 anon pages written, 2 zero-page reads, 1 shared page
    m = Machine(ram="256MiB")
    p = m.spawn("a.out")
    a = p.mmap(0, 5 << 12, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    s = p.mmap(0, 1 << 12, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    p.touch(a, 3 << 12, write=True)
    p.touch(a + (3 << 12), 2 << 12)
    p.touch(s, 1 << 12, write=True)
    lines = dict(line.split(":\t") for line in p.status().splitlines())
    assert [lines[k].strip() for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem")] == \
        ["16 kB", "12 kB", "0 kB", "4 kB"]
    p.mprotect(a, 5 << 12, PROT_NONE)
    assert lines["RssAnon"] == dict(line.split(":\t") for line in p.status().splitlines())["RssAnon"]
    m.check()
