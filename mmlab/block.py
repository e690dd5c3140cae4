"""A block device with a request queue, on a simulated clock.

Models what the page cache sees of block/ (blk-mq, the request queue
limits in blk-settings.c) and of a disk's timing: a bio of contiguous
pages is split into requests of at most max_sectors_kb; each request is
served after the ones before it, taking the device's access latency (for
a hard disk, a seek and half a rotation unless it continues where the
head is) plus its bytes over the device's bandwidth.  A request completes
at a known time on the machine's clock (m.clock_ns); the pages it carries
stay locked (not uptodate) until then, and a task that needs one waits:
the clock jumps to the completion time.

    m.disk                      # "vda", the root filesystem's disk
    m.set_disk("hdd")           # change its timing: "hdd", "ssd" (SATA), "nvme"
    m.disk.stats                # reads, read_bytes, writes, write_bytes, busy_ns

Where the figures come from (one device of each kind, from its datasheet
or a common measurement; each is a typical value, not a law):
  - hdd: a 7200 rpm 3.5" SATA disk (Seagate BarraCuda ST1000DM010
    datasheet: average read seek < 8.5 ms, 210 MB/s max sustained; we take
    160 MB/s, the middle of the platter); half a rotation at 7200 rpm is
    4.17 ms, so a non-contiguous request costs 8.5 + 4.17 ms of access.
  - ssd: a SATA SSD (Samsung 870 EVO datasheet: 560 MB/s sequential read,
    98K IOPS at QD32; 4 KiB reads at QD1 take about 90 us).
  - nvme: a PCIe 4.0 NVMe SSD (Samsung 980 PRO datasheet: 7000 MB/s
    sequential read, 22K IOPS for 4 KiB random reads at QD1, i.e. ~45 us).
  - max_sectors_kb: 1280 for all three, Linux's default cap for a device
    that allows more (BLK_DEF_MAX_SECTORS_CAP, 2560 sectors,
    include/linux/blkdev.h); this course's virtio disk reports 4096.
  - read_ahead_kb: 128 (VM_READAHEAD_PAGES, include/linux/mm.h), for
    every preset, as Linux sets it for any disk without a larger io_opt.

NOTE: simplified.  One queue served in order, one request at a time (no
queue depth, no internal parallelism of SSDs, no I/O scheduler merging
or reordering, no plugging); writes cost what reads cost; a hard disk's
head is either where a request starts (no seek) or not (a full average
seek plus half a rotation).  Errors never happen.
"""
import heapq
import itertools

from .arch import PAGE_SHIFT
from .errors import require_int
from .trace import note

SECTOR_SHIFT = 9
NSEC_PER_SEC = 1_000_000_000

# preset -> (access latency ns, seek+rotation ns for a jump (hdd) or 0, bandwidth bytes/s,
#            max_sectors_kb, rotational)
PRESETS = {
    "hdd": dict(latency_ns=100_000, seek_ns=8_500_000 + 4_170_000, bandwidth=160_000_000,
                max_sectors_kb=1280, rotational=True),
    "ssd": dict(latency_ns=90_000, seek_ns=0, bandwidth=560_000_000,
                max_sectors_kb=1280, rotational=False),
    "nvme": dict(latency_ns=45_000, seek_ns=0, bandwidth=7_000_000_000,
                 max_sectors_kb=1280, rotational=False),
}
DEFAULT_PRESET = "ssd"
VM_READAHEAD_KB = 128           # VM_READAHEAD_PAGES * 4 KiB, the default read_ahead_kb

REQ_OP_READ, REQ_OP_WRITE = 0, 1


class Request:
    """struct request: one I/O the device serves, of contiguous sectors.

    `pages` are the pfns it carries (consecutive pages of one file);
    `end_io(m, req)` runs at completion (end_page_read / end_page_writeback).
    """

    __slots__ = ("op", "sector", "nr_bytes", "pages", "submit_ns", "start_ns", "done_ns", "end_io")

    def __init__(self, op, sector, nr_bytes, pages, end_io):
        self.op, self.sector, self.nr_bytes, self.pages, self.end_io = op, sector, nr_bytes, pages, end_io
        self.submit_ns = self.start_ns = self.done_ns = 0

    def __repr__(self):
        kind = "read" if self.op == REQ_OP_READ else "write"
        return (f"Request({kind} sector={self.sector} {self.nr_bytes >> 10} KiB, "
                f"done at {self.done_ns} ns)")


class BlockDevice:
    """struct gendisk + its request_queue: a disk with timing, limits and statistics.

    Attributes: name, preset, latency_ns, seek_ns, bandwidth (bytes/s),
    max_sectors_kb, rotational, read_ahead_kb (queue/read_ahead_kb, the
    bdi's ra_pages times 4), stats, and the requests in flight.
    """

    def __init__(self, machine, name="vda", preset=DEFAULT_PRESET):
        self.machine = machine
        self.name = name
        self.read_ahead_kb = VM_READAHEAD_KB
        self.set_preset(preset)
        self.busy_until = 0             # when the device finishes the last request queued
        self.head = 0                   # the sector after the last one served (the disk head)
        self.inflight = []              # heap of (done_ns, seq, Request)
        self._seq = itertools.count()
        self.next_done = None           # the earliest completion pending, or None
        self.stats = dict(reads=0, read_bytes=0, writes=0, write_bytes=0, busy_ns=0)

    def set_preset(self, preset):
        """Give the disk the timing of a preset ("hdd", "ssd", "nvme"); ValueError otherwise."""
        if not isinstance(preset, str):
            raise TypeError(f"preset must be a str, not {type(preset).__name__}")
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        self.preset = preset
        for k, v in PRESETS[preset].items():
            setattr(self, k, v)

    # -- limits the page cache reads (struct backing_dev_info, queue_limits) ----
    @property
    def ra_pages(self):
        """bdi->ra_pages: read_ahead_kb in pages."""
        return self.read_ahead_kb >> (PAGE_SHIFT - 10)

    @property
    def io_pages(self):
        """bdi->io_pages: the largest request in pages (max_sectors_kb), as blk_apply_bdi_limits sets it."""
        return self.max_sectors_kb >> (PAGE_SHIFT - 10)

    @io_pages.setter
    def io_pages(self, pages):
        self.max_sectors_kb = require_int("io_pages", pages, 1, 1 << 20) << (PAGE_SHIFT - 10)

    def set_read_ahead_kb(self, kb):
        """queue/read_ahead_kb (blockdev --setra): new files opened later get ra_pages = kb / 4."""
        # read_ahead_kb_store keeps whole pages (ra_pages = kb >> 2); the file reads back ra_pages * 4.
        kb = require_int("kb", kb, 0, 1 << 31)
        self.read_ahead_kb = (kb >> (PAGE_SHIFT - 10)) << (PAGE_SHIFT - 10)

    # -- submitting and completing ---------------------------------------------
    def submit_bio(self, op, sector, pages, end_io):
        """submit_bio: queue the I/O of `pages` (contiguous, starting at `sector`).

        The bio is split into requests of at most max_sectors_kb
        (bio_split_to_limits); each gets its completion time.  Returns the
        requests, in order.
        """
        per_req = self.io_pages or 1
        reqs = []
        for i in range(0, len(pages), per_req):
            chunk = pages[i:i + per_req]
            req = Request(op, sector + (i << (PAGE_SHIFT - SECTOR_SHIFT)), len(chunk) << PAGE_SHIFT,
                          chunk, end_io)
            self.queue_request(req)
            reqs.append(req)
        return reqs

    def service_ns(self, req):
        """How long the device takes for a request: access latency (a seek if the head must move) + transfer."""
        access = self.latency_ns
        if self.rotational and req.sector != self.head:
            access += self.seek_ns
        return access + req.nr_bytes * NSEC_PER_SEC // self.bandwidth

    def queue_request(self, req):
        """blk_mq_submit_bio, served in order: the request starts when the device is free."""
        now = self.machine.clock_ns
        req.submit_ns = now
        req.start_ns = max(now, self.busy_until)
        took = self.service_ns(req)
        req.done_ns = req.start_ns + took
        self.busy_until = req.done_ns
        self.head = req.sector + (req.nr_bytes >> SECTOR_SHIFT)
        st = self.stats
        st["busy_ns"] += took
        if req.op == REQ_OP_READ:
            st["reads"] += 1
            st["read_bytes"] += req.nr_bytes
        else:
            st["writes"] += 1
            st["write_bytes"] += req.nr_bytes
        heapq.heappush(self.inflight, (req.done_ns, next(self._seq), req))
        self.next_done = self.inflight[0][0]
        note(self, "submit %s: sector %d, %d KiB, done at %d ns", "read" if req.op == REQ_OP_READ
             else "write", req.sector, req.nr_bytes >> 10, req.done_ns)

    def complete_until(self, now):
        """blk_mq_complete_request for every request done by `now`, in completion order."""
        q = self.inflight
        while q and q[0][0] <= now:
            _, _, req = heapq.heappop(q)
            req.end_io(self.machine, req)
        self.next_done = q[0][0] if q else None

    def __repr__(self):
        return (f"BlockDevice({self.name!r}, {self.preset}, read_ahead_kb={self.read_ahead_kb}, "
                f"{len(self.inflight)} requests in flight)")


__all__ = ["BlockDevice", "Request", "PRESETS", "REQ_OP_READ", "REQ_OP_WRITE", "VM_READAHEAD_KB"]
