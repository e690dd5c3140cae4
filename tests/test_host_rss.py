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


MLOCK_HOST = r"""
import ctypes, mmap
libc = ctypes.CDLL(None, use_errno=True)
def mlocked():
    try:                                # fold the per-CPU counter deltas first (vmstat_refresh)
        with open("/proc/sys/vm/stat_refresh", "w") as f:
            f.write("1")
    except OSError:
        pass
    return int([l for l in open("/proc/meminfo") if l.startswith("Mlocked:")][0].split()[1])
n = 64
buf = mmap.mmap(-1, n * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
for i in range(0, n * 4096, 4096):
    buf[i] = 1
before = mlocked()
assert libc.mlock(ctypes.c_void_p(addr), ctypes.c_size_t(32 * 4096)) == 0, ctypes.get_errno()
locked = mlocked()
assert libc.munlock(ctypes.c_void_p(addr), ctypes.c_size_t(32 * 4096)) == 0
print(locked - before, mlocked() - before)
"""


def mlocked_deltas_model():
    m = Machine(ram="256MiB")
    p = m.spawn("a.out")
    a = p.mmap(0, 64 << 12, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.touch(a, 64 << 12, write=True)
    mlocked = lambda: m.proc.meminfo_dict()["Mlocked"]
    before = mlocked()
    p.mlock(a, 32 << 12)
    locked = mlocked()
    p.munlock(a, 32 << 12)
    m.check()
    return locked - before, mlocked() - before


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="needs Linux /proc/meminfo")
@pytest.mark.skipif(not os.access("/proc/sys/vm/stat_refresh", os.W_OK),
                    reason="needs root: /proc/sys/vm/stat_refresh folds the per-CPU counter deltas, "
                           "without which Mlocked lags by up to a vmstat threshold per CPU")
def test_mlocked_agrees_with_this_kernel():
    # mlock of 32 written pages: Mlocked grows by 128 kB (mlock_folio), munlock gives them back
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", MLOCK_HOST], capture_output=True, text=True, timeout=60)
    if out.returncode:
        pytest.skip(f"mlock refused on this host: {out.stderr.strip().splitlines()[-1]}")
    host = tuple(int(x) for x in out.stdout.split())
    assert mlocked_deltas_model() == host == (128, 0)


def test_lru_lists_count_anon_shmem_and_locked_pages():
    # anon and shmem pages are inactive anon; mlocked ones move to unevictable; zoneinfo's zones add up
    m = Machine(ram="256MiB")
    p = m.spawn("a.out")
    a = p.mmap(0, 64 << 12, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    s = p.mmap(0, 16 << 12, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    p.touch(a, 64 << 12, write=True)
    p.touch(s, 16 << 12, write=True)
    p.mlock(s, 4 << 12)
    info = m.proc.meminfo_dict()
    assert (info["Inactive(anon)"], info["Active(anon)"], info["Unevictable"], info["Mlocked"]) == \
        ((64 + 12) * 4, 0, 16, 16)
    zones = [line.split()[1] for line in m.proc.zoneinfo().splitlines() if "nr_zone_inactive_anon" in line]
    assert sum(int(v) for v in zones) == (64 + 12)
    p.munmap(s, 16 << 12)
    assert m.proc.meminfo_dict()["Mlocked"] == 0
    m.check()
