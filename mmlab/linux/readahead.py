"""Readahead scenarios run on this machine's kernel and on the model, side by side.

A scenario is a list of op lines over one 64 MiB file (FILE_PAGES pages) on a
disk filesystem; readahead_driver.c runs them on the host, run_model() through
a Machine, and both answer one line an op:

    map [PAGE N]             mmap the file (or N pages from PAGE), PROT_READ,
                             MAP_SHARED; ops name file pages              -> "ok"
    touch PAGE N             read a byte of each of N pages               -> "flt MIN MAJ"
    pread PAGE COUNT LEN     COUNT back-to-back preads of LEN bytes        -> "flt MIN MAJ"
    madvise PAGE N ADVICE    on the mapping                                -> "ret 0"
    fadvise PAGE N ADVICE    posix_fadvise on the fd                       -> "ret 0"
    mincore                  page-cache residency, once read I/O is done   -> "res 0-4,7168-9216"

Before the ops the file (written and fsynced once a process) has its cache dropped with
POSIX_FADV_DONTNEED (checked empty with mincore) and opened again, so its
file_ra_state starts fresh with ra_pages = read_ahead_kb / 4 of the disk.
Ranges are page indexes, end excluded.  Fault counts are getrusage deltas.

Measured on this machine (Linux 6.18, ext4 on virtio /dev/vda, rotational,
max_sectors_kb 4096 so bdi->io_pages = 1024; k = 8192, the middle of the
16384-page file; every row the same in 5 runs of each value):

=============================  ===============================  ===============================  =====================================
scenario (ops)                 read_ahead_kb 8192 (ra 2048)     read_ahead_kb 128 (ra 32)        kernel path (mm/filemap.c, readahead.c)
=============================  ===============================  ===============================  =====================================
read-around (touch k)          1 maj; 7168-9216                 1 maj; 8176-8208                 do_sync_mmap_readahead: start k-ra/2,
                                                                                                 size ra, async ra/4, order 0
read-around unaligned (k+5)    1 maj; 7173-9221                 1 maj; 8181-8213                 centred exactly (k+5 - ra/2), not aligned
read-around at start (touch 0) 1 maj; 0-2048                    1 maj; 0-32                      start clamped at 0
read-around at EOF (16383)     1 maj; 15359-16384               1 maj; 16367-16384               page_cache_ra_order: limit = last page
                                                                                                 of i_size; the window is cut, not moved
MADV_NORMAL                    1 maj; 7168-9216                 1 maj; 8176-8208                 as read-around
MADV_RANDOM                    1 maj; 8192-8193                 1 maj; 8192-8193                 VM_RAND_READ: no readahead, filemap_fault
                                                                                                 adds the one order-0 folio
MADV_SEQUENTIAL                1 maj; 8192-10240                1 maj; 8192-8224                 VM_SEQ_READ: page_cache_sync_ra(ra); no
                                                                                                 history -> do_page_cache_ra(k, ra)
MADV_SEQUENTIAL stream         1 maj 0-2048; 63 min; 1 min      1 maj 0-32; 0; 1 min 0-64;       index 0: get_init_ra_size(ra, ra) = ra,
  (0; 1..ra/2-1; ra/2; ..; ra)   0-4096; 63 min; 1 min 0-6144   0; 1 min 0-96                    async ra/2; then page_cache_async_ra
MADV_WILLNEED (whole file)     0-2048; touch 0: 1 min           0-1024; touch 0: 1 min           force_page_cache_ra caps at
                                                                                                 max(bdi->io_pages = 1024, ra)
MADV_WILLNEED 64 pages at k    8192-8256; 1 min                 8192-8256; 1 min                 madvise_willneed -> vfs_fadvise(WILLNEED)
mmap sequential                1 maj 0-2048; 95 min; 1 min      1 maj 0-32; 1 min; 1 min 0-64;   read-around, PG_readahead at 3/4; there
  (0; 1..3ra/4-1; 3ra/4; ..;     0-4096; 31 min; 1 min 0-6144   0; 1 min 0-96                    do_async_mmap_readahead ->
  ra)                                                                                            page_cache_async_ra (order 2, then 4)
read-around past a small       1 maj; 7168-9216                 1 maj; 8176-8208                 read-around is in file pages: it does not
  mapping (16 pages at k)                                                                        stop at the VMA (only fault-around does)
MADV_DONTNEED keeps the cache  8192-8256; 1 min; 8192-8256;     the same                         zap_page_range only unmaps; the touch
  (WILLNEED 64; touch 16;        touch 16: 1 min                                                 maps the 16 back with one minor fault
  DONTNEED 64)
MADV_PAGEOUT evicts mapped     8192-8256; 1 min; 8208-8256;     the same                         madvise_pageout -> reclaim_pages frees
  (WILLNEED 64; touch 16;        touch k: 1 MAJ                                                  the clean folios it unmapped; the cached
  PAGEOUT 64)                                                                                    but unmapped 48 stay
MADV_HUGEPAGE read-around      1 maj 8192-9216; 0; 1 min        1 maj 8192-9216; 0; 1 min;       VM_HUGEPAGE: index aligned to 512, two
  (touch k+5; k..k+511;          8192-10240; 0                  8192-9216; 0 (also at 0 KiB)     order-9 folios, PMD-mapped (do_set_pmd);
  k+512; k+513..k+1023)                                                                          async at the mark: see the note below
mmap sequential, long (every   0-2048; 95+1 min 0-4096; 31+1    0-32; 1+1 min 0-64; 0+1 0-96;    the same path through order-2 and
  page to 3ra, settling at each  min 0-6144; 127+1 min 0-8192;   1+1 0-128; 1+1 0-160             order-4 folios: fault-around still
  mark)                          127+1 min 0-10240                                               maps 16 pages a fault
pread first window (4 KiB @0)  0-4                              0-4                              page_cache_sync_ra at index 0:
                                                                                                 get_init_ra_size(1, ra) = 4
pread first window 64 KiB      0-64                             0-32                             get_init_ra_size(16, ra): 64 / ra
pread ramp-up (0; 1; 2-4;      0-4; 0-20; 0-80; 0-768           0-4; 0-12; 0-16; 0-160           page_cache_async_ra: get_next_ra_size,
  5-104)                                                                                         order += 2, end rounded down
pread random (4 KiB @k)        8192-8193                        8192-8193                        no prev_pos, no cached history:
                                                                                                 do_page_cache_ra(req_count)
pread sequential from middle   8192-8193; 8192-8197;            8192-8193; 8192-8197;            k+1 follows prev_pos: initial window 4;
  (k; k+1; k+2..k+4)             8192-8212                        8192-8204                      async end rounded down to 4 pages
pread 1 MiB at 0               0-512                            0-512                            get_init_ra_size(256, 2048) = 512; at 128
                                                                                                 KiB an oversize read: max_pages =
                                                                                                 min(req, io_pages) = 256, mark 128 hit
                                                                                                 in the same read -> async 256-512
pread stream with a random     0-80; +3000-3001; 0-320          0-16; +3000-3001; 0-32           a random read between does not break
  read (0; 1-7; 3000; 8-23)                                                                      the stream: page_cache_async_ra checks
                                                                                                 the mark, not prev_pos
pread ramp at EOF (16344;      16344-16349; 16344-16384;        the same                         windows past i_size are cut at the last
  16345; 16346-16383; 64 KiB     16344-16384                                                     page (do_page_cache_ra / ra_order limit)
  at 16382)
read-around then pread at the  1 maj 7168-9216; 7168-11264      1 maj 8176-8208; 8176-8240       pread reaches the mmap window's
  mark (pread k + ra/4)                                                                          PG_readahead: one file_ra_state for both
FADV_SEQUENTIAL read-around    1 maj; 6144-10240                1 maj; 8160-8224                 generic_fadvise: f_ra.ra_pages = 2 * bdi
FADV_SEQUENTIAL pread          0-4                              0-4                              first window depends on the request
FADV_RANDOM pread (4 KiB; 64)  0-1; 0-16                        0-1; 0-16                        FMODE_RANDOM: force_page_cache_ra(req)
FADV_RANDOM mmap               1 maj; 7168-9216                 1 maj; 8176-8208                 FMODE_RANDOM is not VM_RAND_READ
FADV_WILLNEED (whole file)     0-2048                           0-1024                           force_page_cache_ra, same cap
FADV_WILLNEED 64 pages at k    8192-8256                        8192-8256                        force_page_cache_readahead(range)
FADV_DONTNEED inside large     0-768; 0-768; 32-768             0-160; 0-160; 32-160             find_lock_entries omits large folios not
  folios (pread 0-104; DONTNEED                                                                  wholly in the range: 34-39 lie in the
  34-39; DONTNEED 0-31)                                                                          order-4 folio 32-48, 0-31 is 8 whole ones
FADV_DONTNEED keeps mapped     8192-8256; 1 min; 8192-8208      8192-8256; 1 min; 8192-8208      mapping_try_invalidate skips mapped
  (WILLNEED 64 at k; touch k;                                                                    folios: the 16 fault-around mapped
  DONTNEED all)                                                                                  (no PG_readahead: force_page_cache_ra)
=============================  ===============================  ===============================  =====================================
(pread and fadvise take no faults: 0 maj each; "min" counts the touch ops' minor faults.)
MADV_HUGEPAGE (host THP enabled = madvise): do_sync_mmap_readahead's VM_HUGEPAGE branch, taken
before the ra_pages check, reads 2 * HPAGE_PMD_NR pages from the fault's 2 MiB-aligned index as
order-9 folios (ra->order = HPAGE_PMD_ORDER; ra->start is not set), marks the second; the retried
fault maps the first with one PMD (filemap_map_pmd), so the rest of it takes no fault.  The fault on
the mark finds ra->start stale (expected 512, not 8704): page_cache_async_ra rebuilds the window
from page_cache_next_miss: at 8192 KiB 9216 + 1024 (2048 trimmed to align 2048), at 128 KiB the
next miss is more than max_pages away, so nothing.
MEASURED below also holds read_ahead_kb 0 and 512.  At 0 (ra_pages 0) read-around, MADV_SEQUENTIAL
and FADV_SEQUENTIAL read the faulting page alone (do_sync_mmap_readahead returns early), every page
a pread misses is read by itself (page_cache_sync_ra forces 1 page: a 64 KiB pread caches 0-16),
and WILLNEED still reads 0-1024 (max(io_pages, 0)).  At 512 the pread ramp is 0-4, 0-20, 0-48, 0-192.

mmap sequential, step by step (read_ahead_kb 8192, ra_pages 2048): touch 0 -> 0 min 1 maj, 0-2048
(the read-around window, PG_readahead on page 1536 = start + size - async_size, async_size = 512);
touch 1..1535 -> 95 min (fault-around maps 16 pages a fault, filemap_map_pages skips the
PG_readahead folio); touch 1536 -> 1 min, 0-4096 (page_cache_async_ra: start 2048, size
ra_pages, order 2, marked on 2048); touch 1537..2047 -> 31 min; touch 2048 -> 1 min, 0-6144.
The async-readahead fault drops the VMA lock and retries (VM_FAULT_RETRY), but the x86 fault
handler sets FAULT_FLAG_TRIED on a VMA-lock retry only if the first try was VM_FAULT_MAJOR, so
mm_account_fault counts it minor.  The miss is major: filemap_fault returns VM_FAULT_MAJOR.

Large folios (ext4 has them since 6.16): they do not change where the sync windows end, since
page_cache_sync_ra and read-around set ra->order = 0 (order-0 folios); each async window adds 2
to the order (capped by ilog2(size) and the mapping's max order), and page_cache_async_ra
rounds the window's end down to a multiple of 1 << min(order, ffs(max_pages) - 1): that is why
the 128 KiB ramp stops at 16 (end 28 rounded down to 16) and the 8 MiB one at 768 (800 -> 768).
ra_alloc_folio rounds the PG_readahead mark down to the folio's first page.  Folio sizes seen
through /proc/self/pagemap and /proc/kpageflags (compound head/tail) at read_ahead_kb 8192: after
the pread ramp, 0-4 in 4 order-0 folios, 4-24 order 2, 24-32 order 3, 32-96 order 4, 96-128 order 5,
128-384 order 6, 384-512 order 7, 512-768 order 8 (page_cache_ra_order splits an index not aligned
to the new order at __ffs(index)); after mmap sequential, 0-2048 order 0 (read-around),
2048-4096 order 2, 4096-6144 order 4.  Residency is the same as with order-0 folios except for
the rounded-down ends.

Left out as unstable (timing): POSIX_FADV_DONTNEED right after a read-around miss keeps what the
miss's fault-around mapped, which is every page of the 16-page window whose read had finished when
the retried fault ran: at read_ahead_kb 8192 8192-8193 in 3 runs of 4 and 8192-8208 in the other
(at 128 always 8192-8200,8201-8208: page 8200 carries PG_readahead, which filemap_map_pages never
maps).  The scenarios that touch right after a miss (mmap sequential, the streams) were stable in
every run: the first request of the window covers the 16 pages.  mmap_miss (MMAP_LOTSAMISS) is not
covered: fault-around hits pay the counter back, so a plain mapping never reaches 100 misses.

mincore() counts a page once its folio is uptodate, so before each mincore the driver polls until
it sees as many pages as cachestat(2) counts in the cache (uptodate or still being read).  pread's minflt is host noise (once in ~10 runs a 1 appears: the kernel's copy
to the user buffer, e.g. after page migration), so only its majflt (always 0: pread waits for
I/O but takes no fault) is compared.

NOTE: /proc/sys/vm/drop_caches is not writable in this sandbox; POSIX_FADV_DONTNEED after
fsync empties the file's cache every time (checked with mincore before each scenario).
read_ahead_kb of the file's disk is written only under with_read_ahead_kb(), which holds a
file lock (LOCK_PATH) and restores the old value at once (and, if its holder was killed, the next
holder restores it from SAVED_PATH); other programs reading that disk meanwhile see the changed
window.  host_read_ahead_kb() reads under the same lock.
"""
import atexit
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from ..arch import PAGE_SIZE
from ..uapi import PROT_READ, PROT_NONE, MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED
from . import scenario as _sc

FILE_PAGES = 16384                      # 64 MiB: several 8 MiB windows fit
MIDDLE = FILE_PAGES // 2
DRIVER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "readahead_driver.c")
LOCK_PATH = os.path.join(tempfile.gettempdir(), "mmlab-read_ahead_kb.lock")
SAVED_PATH = os.path.join(tempfile.gettempdir(), "mmlab-read_ahead_kb.saved")
DEFAULT_READ_AHEAD_KB = 128             # VM_READAHEAD_PAGES * 4 KiB: Linux's default
ALIGN = 2 << 20
SETTLE_NS = 1_000_000_000               # the model lets 1 s pass before a mincore (the host waits too)

# madvise / posix_fadvise advice, Linux's numbers
MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED = 0, 1, 2, 3, 4
MADV_HUGEPAGE, MADV_PAGEOUT = 14, 21
FADV_NORMAL, FADV_RANDOM, FADV_SEQUENTIAL, FADV_WILLNEED, FADV_DONTNEED = 0, 1, 2, 3, 4


# --- scenarios ---------------------------------------------------------------------------------

def _mmap_sequential(ra):
    """Stream through the mapping, stopping at each PG_readahead mark (3/4 into read-around)."""
    mark = ra - ra // 4
    return ["map", "touch 0 1", "mincore", f"touch 1 {mark - 1}", "mincore", f"touch {mark} 1",
            "mincore", f"touch {mark + 1} {ra - mark - 1}", f"touch {ra} 1", "mincore"]


def _mmap_sequential_long(ra):
    """Every page through three async windows (order-2 and order-4 folios at 8 MiB), letting the
    reads finish at each mark, so fault-around never meets a folio still being read."""
    mark = ra - ra // 4
    return ["map", "touch 0 1", "mincore", f"touch 1 {mark - 1}", f"touch {mark} 1", "mincore",
            f"touch {mark + 1} {ra - mark - 1}", f"touch {ra} 1", "mincore", f"touch {ra + 1} {ra - 1}",
            f"touch {2 * ra} 1", "mincore", f"touch {2 * ra + 1} {ra - 1}", f"touch {3 * ra} 1", "mincore"]


def _madv_sequential_stream(ra):
    """MADV_SEQUENTIAL from page 0: the initial window, then async readahead at its mark."""
    half = ra // 2
    return ["map", f"madvise 0 {FILE_PAGES} {MADV_SEQUENTIAL}", "touch 0 1", "mincore",
            f"touch 1 {half - 1}", f"touch {half} 1", "mincore", f"touch {half + 1} {ra - half - 1}",
            f"touch {ra} 1", "mincore"]


# name -> function of ra_pages (the fd's window when opened) -> op lines
SCENARIOS = {
    "read-around": lambda ra: ["map", f"touch {MIDDLE} 1", "mincore"],
    "read-around unaligned": lambda ra: ["map", f"touch {MIDDLE + 5} 1", "mincore"],
    "read-around at start": lambda ra: ["map", "touch 0 1", "mincore"],
    "read-around at EOF": lambda ra: ["map", f"touch {FILE_PAGES - 1} 1", "mincore"],
    "MADV_NORMAL": lambda ra: ["map", f"madvise 0 {FILE_PAGES} {MADV_NORMAL}", f"touch {MIDDLE} 1", "mincore"],
    "MADV_RANDOM": lambda ra: ["map", f"madvise 0 {FILE_PAGES} {MADV_RANDOM}", f"touch {MIDDLE} 1", "mincore"],
    "MADV_SEQUENTIAL": lambda ra: ["map", f"madvise 0 {FILE_PAGES} {MADV_SEQUENTIAL}", f"touch {MIDDLE} 1",
                                   "mincore"],
    "MADV_SEQUENTIAL stream": _madv_sequential_stream,
    "MADV_WILLNEED": lambda ra: ["map", f"madvise 0 {FILE_PAGES} {MADV_WILLNEED}", "mincore", "touch 0 1"],
    "MADV_WILLNEED 64 pages": lambda ra: ["map", f"madvise {MIDDLE} 64 {MADV_WILLNEED}", "mincore",
                                          f"touch {MIDDLE} 1"],
    "mmap sequential": _mmap_sequential,
    "mmap sequential, long": _mmap_sequential_long,
    "pread first window": lambda ra: ["pread 0 1 4096", "mincore"],
    "pread first window 64 KiB": lambda ra: ["pread 0 1 65536", "mincore"],
    "pread ramp-up": lambda ra: ["pread 0 1 4096", "mincore", "pread 1 1 4096", "mincore", "pread 2 3 4096",
                                 "mincore", "pread 5 100 4096", "mincore"],
    "pread random": lambda ra: [f"pread {MIDDLE} 1 4096", "mincore"],
    "pread sequential from middle": lambda ra: [f"pread {MIDDLE} 1 4096", "mincore", f"pread {MIDDLE + 1} 1 4096",
                                                "mincore", f"pread {MIDDLE + 2} 3 4096", "mincore"],
    "pread 1 MiB at 0": lambda ra: ["pread 0 1 1048576", "mincore"],
    "pread stream with a random read": lambda ra: ["pread 0 1 4096", "pread 1 7 4096", "mincore",
                                                   "pread 3000 1 4096", "mincore", "pread 8 16 4096", "mincore"],
    "pread ramp at EOF": lambda ra: [f"pread {FILE_PAGES - 40} 1 4096", f"pread {FILE_PAGES - 39} 1 4096", "mincore",
                                     f"pread {FILE_PAGES - 38} 38 4096", "mincore", f"pread {FILE_PAGES - 2} 1 65536",
                                     "mincore"],
    "read-around then pread at the mark": lambda ra: ["map", f"touch {MIDDLE} 1", "mincore",
                                                      f"pread {MIDDLE + ra // 4} 1 4096", "mincore"],
    "read-around past a small mapping": lambda ra: [f"map {MIDDLE} 16", f"touch {MIDDLE} 1", "mincore"],
    "MADV_DONTNEED keeps the cache": lambda ra: ["map", f"madvise {MIDDLE} 64 {MADV_WILLNEED}", "mincore",
                                                 f"touch {MIDDLE} 16", f"madvise {MIDDLE} 64 {MADV_DONTNEED}",
                                                 "mincore", f"touch {MIDDLE} 16"],
    "MADV_PAGEOUT evicts mapped": lambda ra: ["map", f"madvise {MIDDLE} 64 {MADV_WILLNEED}", "mincore",
                                              f"touch {MIDDLE} 16", f"madvise {MIDDLE} 64 {MADV_PAGEOUT}",
                                              "mincore", f"touch {MIDDLE} 1"],
    "MADV_HUGEPAGE read-around": lambda ra: ["map", f"madvise 0 {FILE_PAGES} {MADV_HUGEPAGE}",
                                             f"touch {MIDDLE + 5} 1", "mincore", f"touch {MIDDLE} 512",
                                             f"touch {MIDDLE + 512} 1", "mincore", f"touch {MIDDLE + 513} 511",
                                             "mincore"],
    "FADV_SEQUENTIAL read-around": lambda ra: [f"fadvise 0 0 {FADV_SEQUENTIAL}", "map", f"touch {MIDDLE} 1",
                                               "mincore"],
    "FADV_SEQUENTIAL pread": lambda ra: [f"fadvise 0 0 {FADV_SEQUENTIAL}", "pread 0 1 4096", "mincore"],
    "FADV_RANDOM pread": lambda ra: [f"fadvise 0 0 {FADV_RANDOM}", "pread 0 1 4096", "mincore",
                                     "pread 0 1 65536", "mincore"],
    "FADV_RANDOM mmap": lambda ra: [f"fadvise 0 0 {FADV_RANDOM}", "map", f"touch {MIDDLE} 1", "mincore"],
    "FADV_WILLNEED": lambda ra: [f"fadvise 0 {FILE_PAGES} {FADV_WILLNEED}", "mincore"],
    "FADV_WILLNEED 64 pages": lambda ra: [f"fadvise {MIDDLE} 64 {FADV_WILLNEED}", "mincore"],
    "FADV_DONTNEED inside large folios": lambda ra: ["pread 0 1 4096", "pread 1 104 4096", "mincore",
                                                     f"fadvise 34 6 {FADV_DONTNEED}", "mincore",
                                                     f"fadvise 0 32 {FADV_DONTNEED}", "mincore"],
    # WILLNEED first: touching an uptodate, unmarked range maps all 16 fault-around pages, which
    # right after a read-around miss depends on how much of the read I/O has completed
    "FADV_DONTNEED keeps mapped": lambda ra: ["map", f"fadvise {MIDDLE} 64 {FADV_WILLNEED}", "mincore",
                                              f"touch {MIDDLE} 1", f"fadvise 0 0 {FADV_DONTNEED}", "mincore"],
}


# What this machine answered (Linux 6.18, ext4 on /dev/vda, io_pages 1024), driver lines per op,
# the same in 5 runs each; "flt - 0": pread's minflt is not compared.
# Learners without root or Linux compare the model with these (tests/test_host_readahead.py).
MEASURED_IO_PAGES = 1024
MEASURED = {
    128: {
        'read-around': ['ok', 'flt 0 1', 'res 8176-8208'],
        'read-around unaligned': ['ok', 'flt 0 1', 'res 8181-8213'],
        'read-around at start': ['ok', 'flt 0 1', 'res 0-32'],
        'read-around at EOF': ['ok', 'flt 0 1', 'res 16367-16384'],
        'MADV_NORMAL': ['ok', 'ret 0', 'flt 0 1', 'res 8176-8208'],
        'MADV_RANDOM': ['ok', 'ret 0', 'flt 0 1', 'res 8192-8193'],
        'MADV_SEQUENTIAL': ['ok', 'ret 0', 'flt 0 1', 'res 8192-8224'],
        'MADV_SEQUENTIAL stream': ['ok', 'ret 0', 'flt 0 1', 'res 0-32', 'flt 0 0', 'flt 1 0', 'res 0-64', 'flt 0 0', 'flt 1 0', 'res 0-96'],
        'MADV_WILLNEED': ['ok', 'ret 0', 'res 0-1024', 'flt 1 0'],
        'MADV_WILLNEED 64 pages': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0'],
        'mmap sequential': ['ok', 'flt 0 1', 'res 0-32', 'flt 1 0', 'res 0-32', 'flt 1 0', 'res 0-64', 'flt 0 0', 'flt 1 0', 'res 0-96'],
        'mmap sequential, long': ['ok', 'flt 0 1', 'res 0-32', 'flt 1 0', 'flt 1 0', 'res 0-64', 'flt 0 0', 'flt 1 0', 'res 0-96', 'flt 1 0', 'flt 1 0', 'res 0-128', 'flt 1 0', 'flt 1 0', 'res 0-160'],
        'pread first window': ['flt - 0', 'res 0-4'],
        'pread first window 64 KiB': ['flt - 0', 'res 0-32'],
        'pread ramp-up': ['flt - 0', 'res 0-4', 'flt - 0', 'res 0-12', 'flt - 0', 'res 0-16', 'flt - 0', 'res 0-160'],
        'pread random': ['flt - 0', 'res 8192-8193'],
        'pread sequential from middle': ['flt - 0', 'res 8192-8193', 'flt - 0', 'res 8192-8197', 'flt - 0', 'res 8192-8204'],
        'pread 1 MiB at 0': ['flt - 0', 'res 0-512'],
        'pread stream with a random read': ['flt - 0', 'flt - 0', 'res 0-16', 'flt - 0', 'res 0-16,3000-3001', 'flt - 0', 'res 0-32,3000-3001'],
        'pread ramp at EOF': ['flt - 0', 'flt - 0', 'res 16344-16349', 'flt - 0', 'res 16344-16384', 'flt - 0', 'res 16344-16384'],
        'read-around then pread at the mark': ['ok', 'flt 0 1', 'res 8176-8208', 'flt - 0', 'res 8176-8240'],
        'read-around past a small mapping': ['ok', 'flt 0 1', 'res 8176-8208'],
        'MADV_DONTNEED keeps the cache': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8192-8256', 'flt 1 0'],
        'MADV_PAGEOUT evicts mapped': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8208-8256', 'flt 0 1'],
        'MADV_HUGEPAGE read-around': ['ok', 'ret 0', 'flt 0 1', 'res 8192-9216', 'flt 0 0', 'flt 1 0', 'res 8192-9216', 'flt 0 0', 'res 8192-9216'],
        'FADV_SEQUENTIAL read-around': ['ret 0', 'ok', 'flt 0 1', 'res 8160-8224'],
        'FADV_SEQUENTIAL pread': ['ret 0', 'flt - 0', 'res 0-4'],
        'FADV_RANDOM pread': ['ret 0', 'flt - 0', 'res 0-1', 'flt - 0', 'res 0-16'],
        'FADV_RANDOM mmap': ['ret 0', 'ok', 'flt 0 1', 'res 8176-8208'],
        'FADV_WILLNEED': ['ret 0', 'res 0-1024'],
        'FADV_WILLNEED 64 pages': ['ret 0', 'res 8192-8256'],
        'FADV_DONTNEED inside large folios': ['flt - 0', 'flt - 0', 'res 0-160', 'ret 0', 'res 0-160', 'ret 0', 'res 32-160'],
        'FADV_DONTNEED keeps mapped': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8192-8208'],
    },
    8192: {
        'read-around': ['ok', 'flt 0 1', 'res 7168-9216'],
        'read-around unaligned': ['ok', 'flt 0 1', 'res 7173-9221'],
        'read-around at start': ['ok', 'flt 0 1', 'res 0-2048'],
        'read-around at EOF': ['ok', 'flt 0 1', 'res 15359-16384'],
        'MADV_NORMAL': ['ok', 'ret 0', 'flt 0 1', 'res 7168-9216'],
        'MADV_RANDOM': ['ok', 'ret 0', 'flt 0 1', 'res 8192-8193'],
        'MADV_SEQUENTIAL': ['ok', 'ret 0', 'flt 0 1', 'res 8192-10240'],
        'MADV_SEQUENTIAL stream': ['ok', 'ret 0', 'flt 0 1', 'res 0-2048', 'flt 63 0', 'flt 1 0', 'res 0-4096', 'flt 63 0', 'flt 1 0', 'res 0-6144'],
        'MADV_WILLNEED': ['ok', 'ret 0', 'res 0-2048', 'flt 1 0'],
        'MADV_WILLNEED 64 pages': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0'],
        'mmap sequential': ['ok', 'flt 0 1', 'res 0-2048', 'flt 95 0', 'res 0-2048', 'flt 1 0', 'res 0-4096', 'flt 31 0', 'flt 1 0', 'res 0-6144'],
        'mmap sequential, long': ['ok', 'flt 0 1', 'res 0-2048', 'flt 95 0', 'flt 1 0', 'res 0-4096', 'flt 31 0', 'flt 1 0', 'res 0-6144', 'flt 127 0', 'flt 1 0', 'res 0-8192', 'flt 127 0', 'flt 1 0', 'res 0-10240'],
        'pread first window': ['flt - 0', 'res 0-4'],
        'pread first window 64 KiB': ['flt - 0', 'res 0-64'],
        'pread ramp-up': ['flt - 0', 'res 0-4', 'flt - 0', 'res 0-20', 'flt - 0', 'res 0-80', 'flt - 0', 'res 0-768'],
        'pread random': ['flt - 0', 'res 8192-8193'],
        'pread sequential from middle': ['flt - 0', 'res 8192-8193', 'flt - 0', 'res 8192-8197', 'flt - 0', 'res 8192-8212'],
        'pread 1 MiB at 0': ['flt - 0', 'res 0-512'],
        'pread stream with a random read': ['flt - 0', 'flt - 0', 'res 0-80', 'flt - 0', 'res 0-80,3000-3001', 'flt - 0', 'res 0-320,3000-3001'],
        'pread ramp at EOF': ['flt - 0', 'flt - 0', 'res 16344-16349', 'flt - 0', 'res 16344-16384', 'flt - 0', 'res 16344-16384'],
        'read-around then pread at the mark': ['ok', 'flt 0 1', 'res 7168-9216', 'flt - 0', 'res 7168-11264'],
        'read-around past a small mapping': ['ok', 'flt 0 1', 'res 7168-9216'],
        'MADV_DONTNEED keeps the cache': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8192-8256', 'flt 1 0'],
        'MADV_PAGEOUT evicts mapped': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8208-8256', 'flt 0 1'],
        'MADV_HUGEPAGE read-around': ['ok', 'ret 0', 'flt 0 1', 'res 8192-9216', 'flt 0 0', 'flt 1 0', 'res 8192-10240', 'flt 0 0', 'res 8192-10240'],
        'FADV_SEQUENTIAL read-around': ['ret 0', 'ok', 'flt 0 1', 'res 6144-10240'],
        'FADV_SEQUENTIAL pread': ['ret 0', 'flt - 0', 'res 0-4'],
        'FADV_RANDOM pread': ['ret 0', 'flt - 0', 'res 0-1', 'flt - 0', 'res 0-16'],
        'FADV_RANDOM mmap': ['ret 0', 'ok', 'flt 0 1', 'res 7168-9216'],
        'FADV_WILLNEED': ['ret 0', 'res 0-2048'],
        'FADV_WILLNEED 64 pages': ['ret 0', 'res 8192-8256'],
        'FADV_DONTNEED inside large folios': ['flt - 0', 'flt - 0', 'res 0-768', 'ret 0', 'res 0-768', 'ret 0', 'res 32-768'],
        'FADV_DONTNEED keeps mapped': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8192-8208'],
    },
    0: {
        'read-around': ['ok', 'flt 0 1', 'res 8192-8193'],
        'read-around unaligned': ['ok', 'flt 0 1', 'res 8197-8198'],
        'read-around at start': ['ok', 'flt 0 1', 'res 0-1'],
        'read-around at EOF': ['ok', 'flt 0 1', 'res 16383-16384'],
        'MADV_NORMAL': ['ok', 'ret 0', 'flt 0 1', 'res 8192-8193'],
        'MADV_RANDOM': ['ok', 'ret 0', 'flt 0 1', 'res 8192-8193'],
        'MADV_SEQUENTIAL': ['ok', 'ret 0', 'flt 0 1', 'res 8192-8193'],
        'MADV_WILLNEED': ['ok', 'ret 0', 'res 0-1024', 'flt 1 0'],
        'MADV_WILLNEED 64 pages': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0'],
        'pread first window': ['flt - 0', 'res 0-1'],
        'pread first window 64 KiB': ['flt - 0', 'res 0-16'],
        'pread ramp-up': ['flt - 0', 'res 0-1', 'flt - 0', 'res 0-2', 'flt - 0', 'res 0-5', 'flt - 0', 'res 0-105'],
        'pread random': ['flt - 0', 'res 8192-8193'],
        'pread sequential from middle': ['flt - 0', 'res 8192-8193', 'flt - 0', 'res 8192-8194', 'flt - 0', 'res 8192-8197'],
        'pread 1 MiB at 0': ['flt - 0', 'res 0-256'],
        'pread stream with a random read': ['flt - 0', 'flt - 0', 'res 0-8', 'flt - 0', 'res 0-8,3000-3001', 'flt - 0', 'res 0-24,3000-3001'],
        'pread ramp at EOF': ['flt - 0', 'flt - 0', 'res 16344-16346', 'flt - 0', 'res 16344-16384', 'flt - 0', 'res 16344-16384'],
        'read-around then pread at the mark': ['ok', 'flt 0 1', 'res 8192-8193', 'flt - 0', 'res 8192-8193'],
        'read-around past a small mapping': ['ok', 'flt 0 1', 'res 8192-8193'],
        'MADV_DONTNEED keeps the cache': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8192-8256', 'flt 1 0'],
        'MADV_PAGEOUT evicts mapped': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8208-8256', 'flt 0 1'],
        'MADV_HUGEPAGE read-around': ['ok', 'ret 0', 'flt 0 1', 'res 8192-9216', 'flt 0 0', 'flt 1 0', 'res 8192-9216', 'flt 0 0', 'res 8192-9216'],
        'FADV_SEQUENTIAL read-around': ['ret 0', 'ok', 'flt 0 1', 'res 8192-8193'],
        'FADV_SEQUENTIAL pread': ['ret 0', 'flt - 0', 'res 0-1'],
        'FADV_RANDOM pread': ['ret 0', 'flt - 0', 'res 0-1', 'flt - 0', 'res 0-16'],
        'FADV_RANDOM mmap': ['ret 0', 'ok', 'flt 0 1', 'res 8192-8193'],
        'FADV_WILLNEED': ['ret 0', 'res 0-1024'],
        'FADV_WILLNEED 64 pages': ['ret 0', 'res 8192-8256'],
        'FADV_DONTNEED inside large folios': ['flt - 0', 'flt - 0', 'res 0-105', 'ret 0', 'res 0-34,40-105', 'ret 0', 'res 32-34,40-105'],
        'FADV_DONTNEED keeps mapped': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8192-8208'],
    },
    512: {
        'read-around': ['ok', 'flt 0 1', 'res 8128-8256'],
        'read-around unaligned': ['ok', 'flt 0 1', 'res 8133-8261'],
        'read-around at start': ['ok', 'flt 0 1', 'res 0-128'],
        'read-around at EOF': ['ok', 'flt 0 1', 'res 16319-16384'],
        'MADV_NORMAL': ['ok', 'ret 0', 'flt 0 1', 'res 8128-8256'],
        'MADV_RANDOM': ['ok', 'ret 0', 'flt 0 1', 'res 8192-8193'],
        'MADV_SEQUENTIAL': ['ok', 'ret 0', 'flt 0 1', 'res 8192-8320'],
        'MADV_SEQUENTIAL stream': ['ok', 'ret 0', 'flt 0 1', 'res 0-128', 'flt 3 0', 'flt 1 0', 'res 0-256', 'flt 3 0', 'flt 1 0', 'res 0-384'],
        'MADV_WILLNEED': ['ok', 'ret 0', 'res 0-1024', 'flt 1 0'],
        'MADV_WILLNEED 64 pages': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0'],
        'mmap sequential': ['ok', 'flt 0 1', 'res 0-128', 'flt 5 0', 'res 0-128', 'flt 1 0', 'res 0-256', 'flt 1 0', 'flt 1 0', 'res 0-384'],
        'mmap sequential, long': ['ok', 'flt 0 1', 'res 0-128', 'flt 5 0', 'flt 1 0', 'res 0-256', 'flt 1 0', 'flt 1 0', 'res 0-384', 'flt 7 0', 'flt 1 0', 'res 0-512', 'flt 7 0', 'flt 1 0', 'res 0-640'],
        'pread first window': ['flt - 0', 'res 0-4'],
        'pread first window 64 KiB': ['flt - 0', 'res 0-32'],
        'pread ramp-up': ['flt - 0', 'res 0-4', 'flt - 0', 'res 0-20', 'flt - 0', 'res 0-48', 'flt - 0', 'res 0-192'],
        'pread random': ['flt - 0', 'res 8192-8193'],
        'pread sequential from middle': ['flt - 0', 'res 8192-8193', 'flt - 0', 'res 8192-8197', 'flt - 0', 'res 8192-8212'],
        'pread 1 MiB at 0': ['flt - 0', 'res 0-512'],
        'pread stream with a random read': ['flt - 0', 'flt - 0', 'res 0-48', 'flt - 0', 'res 0-48,3000-3001', 'flt - 0', 'res 0-64,3000-3001'],
        'pread ramp at EOF': ['flt - 0', 'flt - 0', 'res 16344-16349', 'flt - 0', 'res 16344-16384', 'flt - 0', 'res 16344-16384'],
        'read-around then pread at the mark': ['ok', 'flt 0 1', 'res 8128-8256', 'flt - 0', 'res 8128-8384'],
        'read-around past a small mapping': ['ok', 'flt 0 1', 'res 8128-8256'],
        'MADV_DONTNEED keeps the cache': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8192-8256', 'flt 1 0'],
        'MADV_PAGEOUT evicts mapped': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8208-8256', 'flt 0 1'],
        'MADV_HUGEPAGE read-around': ['ok', 'ret 0', 'flt 0 1', 'res 8192-9216', 'flt 0 0', 'flt 1 0', 'res 8192-9216', 'flt 0 0', 'res 8192-9216'],
        'FADV_SEQUENTIAL read-around': ['ret 0', 'ok', 'flt 0 1', 'res 8064-8320'],
        'FADV_SEQUENTIAL pread': ['ret 0', 'flt - 0', 'res 0-4'],
        'FADV_RANDOM pread': ['ret 0', 'flt - 0', 'res 0-1', 'flt - 0', 'res 0-16'],
        'FADV_RANDOM mmap': ['ret 0', 'ok', 'flt 0 1', 'res 8128-8256'],
        'FADV_WILLNEED': ['ret 0', 'res 0-1024'],
        'FADV_WILLNEED 64 pages': ['ret 0', 'res 8192-8256'],
        'FADV_DONTNEED inside large folios': ['flt - 0', 'flt - 0', 'res 0-192', 'ret 0', 'res 0-192', 'ret 0', 'res 32-192'],
        'FADV_DONTNEED keeps mapped': ['ok', 'ret 0', 'res 8192-8256', 'flt 1 0', 'ret 0', 'res 8192-8208'],
    },
}


def measured(name, read_ahead_kb):
    """The recorded host answers of scenario `name` at this read_ahead_kb, parsed like run_host's."""
    return [("flt", "-", int(line.split()[2])) if line.startswith("flt -") else parse_answer(line)
            for line in MEASURED[read_ahead_kb][name]]


# These walk up to PG_readahead marks inside the window, so need a window of a few pages.
STREAMS = frozenset({"mmap sequential", "mmap sequential, long", "MADV_SEQUENTIAL stream"})


def names(read_ahead_kb):
    """The scenarios that make sense with this read_ahead_kb (the streams need ra_pages >= 4)."""
    return [n for n in SCENARIOS if n not in STREAMS or read_ahead_kb // 4 >= 4]


def script(name, read_ahead_kb):
    """The op lines of scenario `name` for a disk with this read_ahead_kb."""
    if name not in SCENARIOS:
        raise ValueError(f"script: name: unknown scenario {name!r}")
    if name not in names(read_ahead_kb):
        raise ValueError(f"script: read_ahead_kb: {name!r} needs read_ahead_kb >= 16, not {read_ahead_kb}")
    return SCENARIOS[name](read_ahead_kb // 4)


# --- answers -----------------------------------------------------------------------------------

@dataclass
class Result:
    """What one run of a scenario answered: one parsed answer per op.

    answers: ("flt", minflt, majflt) | ("res", ((start, end), ...)) | ("ret", r) | ("ok",)
    """
    ops: list
    answers: list
    read_ahead_kb: int = None           # the disk's read_ahead_kb while the scenario ran

    @property
    def resident(self):
        """The residency the last mincore reported: a tuple of (start, end) page ranges."""
        return next(a[1] for a in reversed(self.answers) if a[0] == "res")

    @property
    def residencies(self):
        """Every mincore answer, in order."""
        return [a[1] for a in self.answers if a[0] == "res"]

    @property
    def faults(self):
        """(minflt, majflt) summed over the touch ops (pread minflt is host noise: not counted)."""
        pairs = [a[1:] for op, a in zip(self.ops, self.answers) if op.startswith("touch")]
        return (sum(p[0] for p in pairs), sum(p[1] for p in pairs))

    def comparable(self):
        """The answers a differential test compares: pread's minflt left out (see the module doc)."""
        out = []
        for op, a in zip(self.ops, self.answers):
            out.append(("flt", "-", a[2]) if op.startswith("pread") and a[0] == "flt" else a)
        return out


def parse_ranges(text):
    """'0-4,7168-9216' -> ((0, 4), (7168, 9216)); '-' -> ()."""
    if text == "-":
        return ()
    return tuple(tuple(int(x) for x in part.split("-")) for part in text.split(","))


def ranges(flags):
    """A list of bools (mincore) -> tuple of (start, end) ranges of the True runs."""
    out, start = [], None
    for i, f in enumerate(list(flags) + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    return tuple(out)


def parse_answer(line):
    """One driver answer line -> tuple (see Result)."""
    kind, *rest = line.split()
    if kind == "flt":
        return ("flt", int(rest[0]), int(rest[1]))
    if kind == "res":
        return ("res", parse_ranges(rest[0]))
    if kind == "ret":
        return ("ret", int(rest[0]))
    if kind == "ok":
        return ("ok",)
    raise RuntimeError(f"readahead_driver: {line.strip()}")


# --- the host ----------------------------------------------------------------------------------

def disk_queue(path):
    """/sys/block/<disk>/queue of the block device holding path (the whole disk for a partition)."""
    st = os.stat(path)
    sysdev = os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if os.path.exists(os.path.join(sysdev, "partition")):
        sysdev = os.path.dirname(sysdev)
    return os.path.join(sysdev, "queue")


def test_dir():
    """A directory on a disk filesystem for the scenario file (never tmpfs: it has no readahead)."""
    for d in ("/var/tmp", tempfile.gettempdir(), os.path.expanduser("~")):
        if os.path.isdir(d) and os.access(d, os.W_OK) and _sc._fs_type(d) not in ("tmpfs", "ramfs", None):
            return d
    return None


def host_skip_reason():
    """Why the host side cannot run, or None: Linux x86_64, a C compiler, a disk-backed directory."""
    reason = _sc.host_skip_reason()
    if reason:
        return reason
    d = test_dir()
    if d is None:
        return "no writable directory on a disk filesystem (tmpfs has no readahead)"
    if not os.path.exists(os.path.join(disk_queue(d), "read_ahead_kb")):
        return f"{d} is not on a block device with a queue/read_ahead_kb"
    return None


def set_ra_skip_reason():
    """Why read_ahead_kb cannot be changed here, or None (needs root and a writable sysfs file)."""
    reason = host_skip_reason()
    if reason:
        return reason
    if os.geteuid() != 0:
        return "not root: cannot write queue/read_ahead_kb"
    if not os.access(os.path.join(disk_queue(test_dir()), "read_ahead_kb"), os.W_OK):
        return "queue/read_ahead_kb is read-only here"
    return None


def host_read_ahead_kb():
    """read_ahead_kb of the disk under test_dir(), read under the lock (never a value a
    scenario set for a while: see with_read_ahead_kb)."""
    with with_read_ahead_kb() as kb:
        return kb


def _read_ahead_kb_now():
    with open(os.path.join(disk_queue(test_dir()), "read_ahead_kb")) as f:
        return int(f.read())


def host_io_pages():
    """bdi->io_pages of that disk: queue/max_sectors_kb in pages (the cap force_page_cache_ra allows)."""
    with open(os.path.join(disk_queue(test_dir()), "max_sectors_kb")) as f:
        return int(f.read()) * 1024 // PAGE_SIZE


def _write_read_ahead_kb(path, kb):
    with open(path, "w") as f:
        f.write(str(kb))


@contextlib.contextmanager
def with_read_ahead_kb(kb=None):
    """Hold the read_ahead_kb lock; set it to kb (if given) and restore the old value on exit.

    The old value is also kept in SAVED_PATH while changed, so that if a holder was killed
    before restoring (a test run hitting its timeout), the next holder puts it back first.
    """
    if kb is not None and (not isinstance(kb, int) or isinstance(kb, bool) or kb < 0):
        raise ValueError(f"with_read_ahead_kb: kb must be an int >= 0, not {kb!r}")
    path = os.path.join(disk_queue(test_dir()), "read_ahead_kb")
    with open(LOCK_PATH, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(SAVED_PATH):      # a holder died with the value changed
            with open(SAVED_PATH) as f:
                _write_read_ahead_kb(path, int(f.read()))
            os.unlink(SAVED_PATH)
        old = _read_ahead_kb_now()
        try:
            if kb is not None and kb != old:
                with open(SAVED_PATH, "w") as f:
                    f.write(str(old))
                _write_read_ahead_kb(path, kb)
            yield _read_ahead_kb_now()
        finally:
            if _read_ahead_kb_now() != old:
                _write_read_ahead_kb(path, old)
            if os.path.exists(SAVED_PATH):
                os.unlink(SAVED_PATH)


def build_driver():
    """The compiled readahead driver (cached by source hash)."""
    return _sc.compile_cached(DRIVER_SOURCE, "readahead_driver", ("-O1",))


def evicted(result):
    """Did a page vanish between two mincore looks with no POSIX_FADV_DONTNEED or MADV_PAGEOUT
    between?  (reclaim did it)"""
    seen = set()
    for op, a in zip(result.ops, result.answers):
        name, *args = op.split()
        if (name, args[-1:]) in (("fadvise", [str(FADV_DONTNEED)]), ("madvise", [str(MADV_PAGEOUT)])):
            seen = set()
        elif a[0] == "res":
            now = {i for s, e in a[1] for i in range(s, e)}
            if not seen <= now:
                return True
            seen = now
    return False


def run_host(name, read_ahead_kb=None, timeout=120, tries=3):
    """Run scenario `name` on this machine; read_ahead_kb None keeps the disk's own value.

    Takes scenario_file() (written and fsynced once a process), drops its cache, checks that
    mincore sees nothing, opens it and runs the ops.  Returns a Result.  A run in which reclaim took
    pages away (memory pressure from other programs: seen once in ~200 runs here) is run again,
    up to `tries` times in all.
    """
    for _ in range(tries - 1):
        result = run_host_once(name, read_ahead_kb, timeout)
        if not evicted(result):
            return result
    return run_host_once(name, read_ahead_kb, timeout)


_scenario_dir = None


def remove_stale_files():
    """Remove the scenario directories of processes gone without their atexit (pytest-xdist
    workers end with os._exit); their names carry the owner's pid."""
    for entry in os.listdir(test_dir()):
        parts = entry.split("-")
        if entry.startswith("mmlab-readahead-") and len(parts) == 4 and parts[2].isdigit():
            try:
                os.kill(int(parts[2]), 0)
            except ProcessLookupError:
                shutil.rmtree(os.path.join(test_dir(), entry), ignore_errors=True)
            except PermissionError:
                pass                    # alive, someone else's


def scenario_file(driver, timeout=120):
    """The FILE_PAGES-page file the scenarios read, written and fsynced once a process.

    Writing 64 MiB costs more than a scenario; every run drops the cache anyway.  The
    directory under test_dir() goes when the process exits.
    """
    global _scenario_dir
    if _scenario_dir is None or not os.path.isdir(_scenario_dir):
        remove_stale_files()
        _scenario_dir = tempfile.mkdtemp(prefix=f"mmlab-readahead-{os.getpid()}-", dir=test_dir())
        atexit.register(shutil.rmtree, _scenario_dir, True)
    path = os.path.join(_scenario_dir, "file")
    if not os.path.exists(path) or os.path.getsize(path) != FILE_PAGES * PAGE_SIZE:
        done = subprocess.run([driver, path, str(FILE_PAGES)], input="create\n", capture_output=True,
                              text=True, timeout=timeout)
        if done.stdout.split() != ["ok"]:
            raise RuntimeError(f"readahead_driver create: {done.stdout.strip()} {done.stderr.strip()[:200]}")
    return path


def run_host_once(name, read_ahead_kb=None, timeout=120):
    """One run of scenario `name` on this machine (see run_host)."""
    reason = host_skip_reason()
    if reason:
        raise _sc.HostUnavailable(reason)
    driver = build_driver()
    path = scenario_file(driver, timeout)
    with with_read_ahead_kb(read_ahead_kb) as kb:
        ops = script(name, kb)
        text = "\n".join(["drop", "open"] + ops) + "\n"
        done = subprocess.run([driver, path, str(FILE_PAGES)], input=text, capture_output=True,
                              text=True, timeout=timeout)
    lines = done.stdout.splitlines()
    if len(lines) != len(ops) + 2 or lines[:2] != ["res -", "ok"]:
        raise RuntimeError(f"run_host {name!r}: the driver said {lines[:2]} {done.stderr.strip()[:200]}"
                           " (the cache must be empty after POSIX_FADV_DONTNEED)")
    return Result(ops, [parse_answer(line) for line in lines[2:]], kb)


# --- the model ---------------------------------------------------------------------------------

class _ModelRun:
    """The same ops on a Machine: one process, one fd, one mapping, as the driver has."""

    def __init__(self, read_ahead_kb, disk_io_pages=None):
        from ..machine import Machine
        from ..uapi import POSIX_FADV_DONTNEED
        self.m = Machine(ram="512MiB", seed=0)
        self.m.set_read_ahead_kb(read_ahead_kb)
        if disk_io_pages is not None:
            # bdi->io_pages comes from the queue's max_sectors_kb (the host's is 4096 here)
            self.m.disk.max_sectors_kb = disk_io_pages * PAGE_SIZE // 1024
        self.m.fs.create("/var/tmp/file", FILE_PAGES * PAGE_SIZE, backing="disk")
        self.p = self.m.spawn("readahead_driver")
        self.fd = self.p.open("/var/tmp/file")
        self.p.fadvise(self.fd, 0, 0, POSIX_FADV_DONTNEED)
        self.addr = None
        if any(self.mincore()):
            raise RuntimeError("run_model: the cache is not empty after POSIX_FADV_DONTNEED")

    def map_aligned(self, first=0, n=FILE_PAGES):
        """mmap file pages [first, first + n) PROT_READ, MAP_SHARED with file page i at base + i
        pages, base 2 MiB aligned (as the driver does); returns base."""
        r = self.p.mmap(0, FILE_PAGES * PAGE_SIZE + ALIGN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
        a = (r + ALIGN - 1) & ~(ALIGN - 1)
        self.p.mmap(a + first * PAGE_SIZE, n * PAGE_SIZE, PROT_READ, MAP_SHARED | MAP_FIXED, self.fd,
                    first * PAGE_SIZE)
        return a

    def mincore(self):
        """Residency of the whole file through a temporary mapping, once read I/O is done.

        The driver waits for the host's I/O to settle; here simulated time passes instead
        (SETTLE_NS), so every read in flight completes, as mincore counts only uptodate pages.
        """
        size = FILE_PAGES * PAGE_SIZE
        self.p.nanosleep(SETTLE_NS)
        a = self.p.mmap(0, size, PROT_READ, MAP_SHARED, self.fd, 0)
        try:
            return self.p.mincore(a, size)
        finally:
            self.p.munmap(a, size)

    def faults(self, fn):
        before = self.p.rusage()
        fn()
        after = self.p.rusage()
        return ("flt", after[0] - before[0], after[1] - before[1])

    def op(self, line):
        """Run one op line; its answer tuple."""
        name, *args = line.split()
        a = [int(x) for x in args]
        if name == "map":
            self.addr = self.map_aligned(*a)
            return ("ok",)
        if name == "touch":
            return self.faults(lambda: [self.p.load(self.addr + (a[0] + i) * PAGE_SIZE, 1) for i in range(a[1])])
        if name == "pread":
            return self.faults(lambda: [self.p.pread(self.fd, a[2], a[0] * PAGE_SIZE + i * a[2])
                                        for i in range(a[1])])
        if name == "madvise":
            return ("ret", self.p.madvise(self.addr + a[0] * PAGE_SIZE, a[1] * PAGE_SIZE, a[2]) or 0)
        if name == "fadvise":
            return ("ret", self.p.fadvise(self.fd, a[0] * PAGE_SIZE, a[1] * PAGE_SIZE, a[2]) or 0)
        if name == "mincore":
            return ("res", ranges(self.mincore()))
        raise ValueError(f"run_model: unknown op {line!r}")


def run_model(name, read_ahead_kb, io_pages=None):
    """Run scenario `name` on a fresh Machine with this read_ahead_kb; a Result like run_host's.

    io_pages, if given, sets the model disk's max_sectors_kb to match (the host's
    queue/max_sectors_kb in pages), which bounds force_page_cache_ra as bdi->io_pages does.
    """
    run = _ModelRun(read_ahead_kb, io_pages)
    ops = script(name, read_ahead_kb)
    return Result(ops, [run.op(line) for line in ops], read_ahead_kb)


def main(argv=None):
    """python -m mmlab.linux.readahead [read_ahead_kb ...]: print the host table."""
    kbs = [int(x) for x in (argv if argv is not None else sys.argv[1:])] or [None]
    for kb in kbs:
        for name in names(kb if kb is not None else host_read_ahead_kb()):
            r = run_host(name, kb)
            print(f"{kb or host_read_ahead_kb():>5} {name:30} {r.comparable()}")


if __name__ == "__main__":
    main()
