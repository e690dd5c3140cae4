"""The block device model (mmlab/block.py): presets, request splitting, timing, statistics."""
import pytest

from mmlab import Machine
from mmlab.arch import PAGE_SIZE
from mmlab.block import PRESETS, REQ_OP_READ

PG = PAGE_SIZE


@pytest.fixture
def m():
    return Machine(ram="128MiB", seed=0)


def read(m, sector, npages):
    done = []
    reqs = m.disk.submit_bio(REQ_OP_READ, sector, list(range(npages)), lambda mm, req: done.append(req))
    return reqs, done


def test_presets_exist():
    # the three kinds the course compares
    assert set(PRESETS) >= {"hdd", "ssd", "nvme"}


def test_default_disk(m):
    # vda, a SATA SSD, read_ahead_kb 128 (VM_READAHEAD_PAGES), max_sectors_kb 1280 (io_pages 320)
    assert (m.disk.name, m.disk.preset, m.disk.read_ahead_kb, m.disk.io_pages) == ("vda", "ssd", 128, 320)


def test_set_disk_changes_timing(m):
    # the preset's latency and bandwidth replace the old ones
    m.set_disk("hdd")
    assert (m.disk.preset, m.disk.bandwidth, m.disk.rotational) == ("hdd", PRESETS["hdd"]["bandwidth"], True)


@pytest.mark.parametrize("bad, exc", [
    ("floppy", ValueError),     # not a preset
    (3, TypeError),             # not a name
])
def test_set_disk_bad_preset(m, bad, exc):
    with pytest.raises(exc, match="preset"):
        m.set_disk(bad)
    assert m.disk.preset == "ssd"                           # nothing changed


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), ("128", TypeError), (1.5, TypeError)])
def test_set_read_ahead_kb_bad(m, bad, exc):
    with pytest.raises(exc):
        m.set_read_ahead_kb(bad)
    assert m.disk.read_ahead_kb == 128


def test_bio_is_split_at_max_sectors_kb(m):
    # 2 MiB = 512 pages; 320 pages a request: 320 + 192
    reqs, _ = read(m, 2048, 512)
    assert [len(r.pages) for r in reqs] == [320, 192]
    assert reqs[1].sector == 2048 + 320 * 8


def test_requests_complete_in_order_on_the_clock(m):
    # the second request starts when the first is done; completion runs its end_io
    reqs, done = read(m, 2048, 512)
    assert reqs[0].done_ns < reqs[1].done_ns
    assert reqs[1].start_ns == reqs[0].done_ns
    m.idle(reqs[0].done_ns - m.clock_ns)
    assert done == [reqs[0]]
    m.idle(10**9)
    assert done == reqs


def test_ssd_service_time(m):
    # latency + bytes / bandwidth: 90 us + 128 KiB / 560 MB/s
    reqs, _ = read(m, 2048, 32)
    assert reqs[0].done_ns - reqs[0].start_ns == 90_000 + 32 * PG * 10**9 // 560_000_000


def test_hdd_seeks_only_when_the_head_moves(m):
    # a request continuing where the last ended pays no seek; a jump pays seek + half a rotation
    m.set_disk("hdd")
    (first,), _ = read(m, 2048, 32)
    (contig,), _ = read(m, 2048 + 32 * 8, 32)
    (jump,), _ = read(m, 10**6, 32)
    transfer = 32 * PG * 10**9 // PRESETS["hdd"]["bandwidth"]
    assert contig.done_ns - contig.start_ns == PRESETS["hdd"]["latency_ns"] + transfer
    assert jump.done_ns - jump.start_ns == PRESETS["hdd"]["latency_ns"] + PRESETS["hdd"]["seek_ns"] + transfer


def test_stats_count_requests_and_bytes(m):
    # two requests of one bio, all bytes
    read(m, 2048, 512)
    st = m.disk.stats
    assert (st["reads"], st["read_bytes"], st["writes"]) == (2, 512 * PG, 0)
    assert st["busy_ns"] > 0


def test_io_pages_is_settable(m):
    # bdi->io_pages follows max_sectors_kb (this host's vda: 4096 KiB -> 1024 pages)
    m.disk.io_pages = 1024
    assert m.disk.max_sectors_kb == 4096


def test_idle_moves_the_clock(m):
    # nothing else to do: the clock just moves
    assert m.idle(5000) == 5000 and m.clock_ns == 5000


def test_files_have_consecutive_extents(m):
    # each disk file its own extent, one after another (so reading two files seeks on a disk)
    a = m.fs.create("/data/a", 3 << 20)
    b = m.fs.create("/data/b", 1 << 20)
    assert b.sector >= a.sector + (3 << 20) // 512


def test_read_ahead_kb_keeps_whole_pages():
    # read_ahead_kb_store: ra_pages = kb >> 2; reading the file back shows ra_pages << 2
    from mmlab import Machine
    m = Machine(ram="128MiB")
    for kb, shown in ((3, 0), (130, 128), (8192, 8192)):
        m.set_read_ahead_kb(kb)
        assert (m.disk.read_ahead_kb, m.disk.ra_pages) == (shown, shown // 4)
