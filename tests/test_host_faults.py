"""Differential tests: the same fault scenario on this machine's kernel and on the model.

Each scenario is a list of fault_driver ops (mmlab/linux/faults.py); the
host's answers (getrusage fault deltas, /proc/self/pagemap frames renamed
by first appearance, signals) must equal the model's line for line.  File
cases use tmpfs (/dev/shm), whose page cache holds order-0 pages, so counts
are exact; on ext4, large folios and readahead make the real counts smaller.
Skips off Linux x86_64, without a C compiler, or without root (pagemap).
"""
import os

import pytest

from mmlab.linux import faults

REASON = faults.host_skip_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"host fault tests: {REASON}")

RW, R = 3, 1
ANON, SHANON, PRIV, SHARED = 0x22, 0x21, 0x2, 0x1
MAP_POPULATE = 0x8000
MADV_POPULATE_READ, MADV_POPULATE_WRITE = 22, 23
MADV_HUGEPAGE = 14
THP = open("/sys/kernel/mm/transparent_hugepage/enabled").read() if os.path.exists(
    "/sys/kernel/mm/transparent_hugepage/enabled") else ""
SHM = f"/dev/shm/mmlab-faults-{os.getpid()}"

SCENARIOS = {
    # anonymous read maps the zero page; a write then copies it (do_wp_page), one fault a page
    "anon read, then write": [f"map 0 8 {RW} {ANON} -", "touch 0 0 8 0", "pfn 0 0", "pfn 0 7",
                              "touch 0 0 8 1", "pfn 0 0", "pfn 0 7", "touch 0 0 8 1"],
    # anonymous write allocates directly
    "anon write": [f"map 0 8 {RW} {ANON} -", "touch 0 0 8 1", "pfn 0 3", "touch 0 0 8 0"],
    # fork: COW on the child's side, the parent reuses once the child is gone
    "fork cow then reuse": [f"map 0 4 {RW} {ANON} -", "touch 0 0 4 1", "pfn 0 0", "pfn 0 1",
                            "fork", "pfn 0 0", "touch 0 0 1 1", "pfn 0 0", "pfn 0 1", "touch 0 1 1 0",
                            "exit", "pfn 0 0", "touch 0 0 4 1", "pfn 0 0"],
    # fork: the parent writes (copies), the child still sees the old frame
    "fork parent copies": [f"map 0 2 {RW} {ANON} -", "touch 0 0 2 1", "pfn 0 0", "fork",
                           "touch 0 0 2 0", "exit", "touch 0 0 2 1"],
    # a VMA without anon_vma (only read: the zero page) is not copied: the child faults again
    "fork without anon_vma": [f"map 0 4 {RW} {ANON} -", "touch 0 0 4 0", "fork", "pfn 0 0",
                              "touch 0 0 4 0", "pfn 0 0", "exit", "touch 0 0 4 0"],
    # shared anonymous memory is shmem: shared across fork, not copied
    "shared anon across fork": [f"map 0 4 {RW} {SHANON} -", "touch 0 0 4 1", "pfn 0 2", "fork",
                                "touch 0 0 4 0", "pfn 0 2", "touch 0 0 4 1", "exit", "touch 0 0 4 1"],
    # tmpfs private read of cached pages: fault-around, 16 pages a fault
    "tmpfs read fault-around": [f"file {SHM} 64 1", f"map 0 64 {R} {PRIV} {SHM}", "touch 0 5 1 0",
                                "pfn 0 0", "pfn 0 15", "pfn 0 16", "touch 0 0 64 0"],
    # fault-around clipped to a short VMA
    "tmpfs fault-around short vma": [f"file {SHM} 64 1", f"map 0 5 {R} {PRIV} {SHM}",
                                     "touch 0 0 5 0"],
    # tmpfs holes: shmem_fault allocates on every read, nothing to fault around
    "tmpfs holes read": [f"file {SHM} 8 0", f"map 0 8 {R} {SHARED} {SHM}", "touch 0 0 8 0",
                         "touch 0 0 8 0"],
    # private file write: do_cow_fault; read then write: do_wp_page copies the cache page
    "tmpfs private write": [f"file {SHM} 32 1", f"map 0 32 {RW} {PRIV} {SHM}", "touch 0 0 4 1",
                            "touch 0 16 4 0", "pfn 0 16", "touch 0 16 4 1", "pfn 0 16"],
    # shared file write: do_shared_fault, the cache page itself, no writenotify on tmpfs
    "tmpfs shared write": [f"file {SHM} 32 1", f"map 0 32 {RW} {SHARED} {SHM}", "touch 0 0 32 1",
                           f"map 1 32 {R} {SHARED} {SHM}", "touch 1 0 32 0", "pfn 0 3", "pfn 1 3"],
    # SIGBUS past the end of a file: fault-around maps the two file pages, the third page faults
    "sigbus past eof": [f"file {SHM} 2 1", f"map 0 4 {R} {PRIV} {SHM}", "touch 0 0 4 0", "pfn 0 1",
                        "touch 0 3 1 0"],
    # SIGSEGV: protection, then no mapping; nothing is charged
    "segv accerr and maperr": [f"map 0 2 {R} {ANON} -", "touch 0 0 1 1", "prot 0 0", "touch 0 0 1 0",
                               "unmap 0", "touch 0 0 1 0"],
    # mprotect to writable keeps exclusive anon pages writable: no fault after
    "mprotect round trip": [f"map 0 4 {RW} {ANON} -", "touch 0 0 2 1", "touch 0 2 2 0", "prot 0 1",
                            "prot 0 3", "touch 0 0 4 1"],
    # populate: MAP_POPULATE, MADV_POPULATE_READ/WRITE, mlock charge faults to the caller
    "map populate": [f"map 0 16 {RW} {ANON | MAP_POPULATE} -", "touch 0 0 16 1"],
    "madv populate write": [f"map 0 16 {RW} {ANON} -", f"advise 0 0 16 {MADV_POPULATE_WRITE}",
                            "touch 0 0 16 1"],
    "madv populate read": [f"map 0 16 {RW} {ANON} -", f"advise 0 0 16 {MADV_POPULATE_READ}",
                           "pfn 0 0", "touch 0 0 16 1"],
    "mlock": [f"map 0 16 {RW} {ANON} -", "touch 0 0 4 0", "lock 0", "touch 0 0 16 1"],
    # THP (enabled=madvise): MADV_HUGEPAGE on aligned 2 MiB: one fault; a read maps the huge zero
    # page, a write after it gets a whole THP; fork splits on the child's writes; reuse after exit
    "thp": [f"map 0 1024 {RW} {ANON} -", f"advise 0 0 1024 {MADV_HUGEPAGE}", "touch 0 0 1 0", "pfn 0 0",
            "pfn 0 1", "pfn 0 600", "touch 0 0 512 0", "touch 0 5 1 1", "pfn 0 4", "pfn 0 5",
            "touch 0 0 512 1", "touch 0 512 512 1", "pfn 0 512", "pfn 0 513", "fork",
            "touch 0 512 512 1", "exit", "touch 0 512 512 1", "fork", "touch 0 0 1 1", "pfn 0 1",
            "exit", "touch 0 0 512 1", "unmap 0"],
    # mlockall(MCL_FUTURE): later mappings are populated at mmap, so touching them takes no fault
    "mlockall future": ["lockall 2", f"map 0 16 {RW} {ANON} -", "touch 0 0 16 1", f"map 1 8 {R} {ANON} -",
                        "touch 1 0 8 0", "pfn 1 0"],
    # mlockall(MCL_CURRENT): writable private memory is faulted in for writing (no COW left), read-only
    # memory maps the zero page; mlockall(MCL_FUTURE|MCL_ONFAULT) populates nothing
    "mlockall current": [f"map 0 16 {RW} {ANON} -", "touch 0 0 4 0", f"map 1 4 {R} {ANON} -", "lockall 1",
                         "touch 0 0 16 1", "touch 1 0 4 0", "pfn 1 0", "lockall 6", f"map 2 8 {RW} {ANON} -",
                         "touch 2 0 8 1"],
    # stack growth: touches below a MAP_GROWSDOWN VMA extend it a page at a time, one fault each
    # (what lies below the 64-page hole moves with ASLR, so the touches stay inside it)
    "stack growth": [f"map 0 16 {RW} {ANON | 0x100} -", "touch 0 0 1 1", "hole 0 64", "below 0 8 1",
                     "below 0 12 0", "below 0 60 1", "touch 0 0 16 0"],
    # without MADV_HUGEPAGE: 4 KiB faults
    "thp madvise mode, no advice": [f"map 0 512 {RW} {ANON} -", "touch 0 0 512 1"],
    # an unaligned, short VMA cannot hold a THP even with the advice
    "thp short vma": [f"map 0 300 {RW} {ANON} -", f"advise 0 0 300 {MADV_HUGEPAGE}", "touch 0 0 300 1"],
}


@pytest.fixture(autouse=True)
def cleanup():
    yield
    if os.path.exists(SHM):
        os.unlink(SHM)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_model_agrees_with_kernel(name):
    script = SCENARIOS[name]
    if name.startswith("thp") and "[madvise]" not in THP:
        pytest.skip(f"THP cases assume enabled=madvise (this machine: {THP.strip()!r})")
    host = faults.run_host(script)
    if os.path.exists(SHM):
        os.unlink(SHM)
    model = faults.run_model(script)
    assert model == host, f"{name}:\n" + "\n".join(
        f"{s:28} host {h:12} model {mo}{'' if h == mo else '   <--'}"
        for s, h, mo in zip(["(fork/exit)"] * 0 + script + [""] * 10, host, model))
