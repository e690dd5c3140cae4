"""mmlab.workloads: the stutter player, the readahead stepper and the shared-mapping writer, on the model.

These tests are examples of what chapter 10 teaches: each states a rule of Linux's readahead or
writeback and checks that the workload, using only the public API, sees it.
"""
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from mmlab.arch import PAGE_SIZE
from mmlab.uapi import MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED
from mmlab.workloads import (play, mbit, fresh_machine, video_paths, ReadaheadStepper, write_shared,
                             meminfo_kb, sweep_windows, advice_name, idle)

MIB = 1 << 20
CAM0 = video_paths(1)[0]


def small(disk="hdd", kb=128, size=4 * MIB, streams=1):
    # A fresh 128 MiB machine with `streams` files of `size` bytes on the chosen disk.
    return fresh_machine(disk, kb, size, streams, ram="128MiB")


# -- the player ------------------------------------------------------------------------------
def test_flat_out_plays_the_whole_file_without_stalls():
    r = play(small(), CAM0)
    assert r.played_bytes == 4 * MIB and len(r.chunks) == 16      # 16 chunks of 256 KiB
    assert r.stalls == 0 and r.stall_ns == 0                      # no deadlines, no stalls
    assert r.read_bytes == 4 * MIB                                # every byte read from disk once


def test_window_zero_reads_every_page_alone():
    r = play(small(kb=0, size=MIB), CAM0)
    assert r.majflt == 256 and r.read_requests == 256            # one fault, one 4 KiB read per page


def test_madv_random_reads_every_page_alone():
    r = play(small(size=MIB), CAM0, advice=MADV_RANDOM)
    assert r.majflt == 256 and r.read_requests == 256            # VM_RAND_READ: no read-around


def test_larger_window_fewer_requests_more_throughput():
    res = sweep_windows((32, 128, 1024), disks=("hdd",), size=4 * MIB, ram="128MiB")
    reqs = [res["hdd", kb].read_requests for kb in (32, 128, 1024)]
    rate = [res["hdd", kb].throughput for kb in (32, 128, 1024)]
    assert reqs[0] > reqs[1] > reqs[2]
    assert rate[0] < rate[1] < rate[2]


def test_two_streams_on_hdd_stutter_with_128k_and_not_with_8m():
    # The seed's story: several files read at once make the disk seek between them.
    slow = play(small("hdd", 128, 8 * MIB, streams=2), video_paths(2), bitrate=mbit(40), duration=1.0)
    fast = play(small("hdd", 8192, 8 * MIB, streams=2), video_paths(2), bitrate=mbit(40), duration=1.0)
    assert slow.stalls > 0
    assert fast.stalls == 0


def test_ssd_does_not_stutter_with_the_default_window():
    r = play(small("ssd", 128, 8 * MIB, streams=2), video_paths(2), bitrate=mbit(40), duration=1.0)
    assert r.stalls == 0


def test_the_clock_moves_at_least_the_playing_time():
    r = play(small("ssd"), CAM0, bitrate=mbit(40), duration=0.5)
    # 0.5 s of a 40 Mbit/s stream is 2.5 MB: 10 chunks of 256 KiB, nine periods of 52.4 ms after the first
    assert len(r.chunks) == 10
    assert r.elapsed_ns >= 9 * 256 * 1024 * 8 * 10**9 // mbit(40)


def test_play_uses_read_too():
    r = play(small(size=MIB), CAM0, via="read")
    assert r.played_bytes == MIB and r.majflt == 0               # read() takes no page faults


@pytest.mark.parametrize("kwargs", [
    dict(chunk=1000),                       # not a multiple of the page size
    dict(bitrate=0),                        # no bitrate
    dict(duration=1.0),                     # a duration needs a bitrate
    dict(via="splice"),                     # unknown way of reading
    dict(advice="SEQUENTIAL"),              # hints are numbers
])
def test_bad_arguments_fail_before_anything_happens(kwargs):
    m = small(size=MIB)
    before = m.clock_ns
    with pytest.raises((ValueError, TypeError)):
        play(m, CAM0, **kwargs)
    assert m.clock_ns == before


def test_unknown_file_is_a_value_error():
    with pytest.raises(ValueError):
        play(small(size=MIB), "/videos/none.mp4")


def test_advice_names():
    assert advice_name(None) == "none"
    assert advice_name((MADV_WILLNEED, MADV_SEQUENTIAL)) == "WILLNEED, SEQUENTIAL"


# -- the stepper: readahead windows, as mm/readahead.c and mm/filemap.c decide them -------------
def test_first_fault_reads_around_with_a_quarter_async():
    s = ReadaheadStepper(small(size=MIB), CAM0)
    step = s.access(0)
    # do_sync_mmap_readahead: start = max(0, 0 - 32/2), size = ra_pages, async_size = ra_pages / 4
    assert [(w.start, w.size, w.async_size) for w in step.windows] == [(0, 32, 8)]
    assert step.marker_pages == {24} and step.majflt == 1
    assert step.resident[:32] == [True] * 32 and not any(step.resident[32:])


def test_fault_in_the_middle_reads_around_it():
    s = ReadaheadStepper(small(size=MIB), CAM0)
    step = s.access(100)
    assert [(w.start, w.size) for w in step.windows] == [(84, 32)]     # 100 - 16


def test_reaching_the_marker_starts_async_readahead():
    s = ReadaheadStepper(small(size=MIB), CAM0)
    s.access(0)
    step = s.access(24)
    assert "page_cache_async_ra" in step.calls
    assert [(w.start, w.size, w.async_size) for w in step.windows] == [(32, 32, 32)]
    assert step.majflt == 0


def test_madv_sequential_uses_the_ondemand_window():
    s = ReadaheadStepper(small(size=MIB), CAM0, advice=MADV_SEQUENTIAL)
    step = s.access(0)
    # page_cache_sync_ra(ra_pages) at index 0: get_init_ra_size(32, 32) = 32, async_size = 32 >> 1
    assert [(w.start, w.size, w.async_size) for w in step.windows][-1] == (0, 32, 16)


def test_first_small_pread_window():
    s = ReadaheadStepper(small(size=MIB), CAM0, via="read")
    step = s.access(0)
    # get_init_ra_size(1, 32) = 4; async_size = 4 - 1: PG_readahead on page 1
    assert [(w.start, w.size, w.async_size) for w in step.windows] == [(0, 4, 3)]
    assert step.marker_pages == {1}


def test_willneed_is_capped():
    m = small(size=16 * MIB)
    s = ReadaheadStepper(m, CAM0, advice=MADV_WILLNEED)
    idle(m, s.p, 10**9)                                 # let the reads it started finish
    # force_page_cache_ra reads at most max(io_pages, ra_pages) pages: max(1280 KiB, 128 KiB) = 320 pages
    assert sum(s.residency()) == 320


def test_stepper_rejects_pages_outside_the_file():
    s = ReadaheadStepper(small(size=MIB), CAM0)
    with pytest.raises(ValueError):
        s.access(256)


# -- the writer: dirty pages of a shared mapping ----------------------------------------------------
def test_stores_dirty_pages_and_msync_writes_them_back():
    m = small(size=MIB)
    samples = write_shared(m, CAM0, pages=8, interval_ns=1_000_000, msync_at=8)
    before_sync = [s for s in samples if s.event == "store 7"][0]
    after_sync = [s for s in samples if s.event == "msync"][0]
    assert before_sync.dirty_kb == 8 * PAGE_SIZE // 1024       # eight dirty pages: 32 kB
    assert after_sync.dirty_kb == 0 and after_sync.writeback_kb == 0
    assert after_sync.written_bytes == 8 * PAGE_SIZE            # MS_SYNC waited for the writes
    m.check()


def test_meminfo_kb_reads_the_text():
    m = small(size=MIB)
    (dirty,) = meminfo_kb(m, "Dirty")
    assert dirty == 0
    with pytest.raises(KeyError):
        meminfo_kb(m, "NoSuchLine")


def test_madv_random_fault_reads_one_page_and_decides_no_window():
    s = ReadaheadStepper(small(size=MIB), CAM0, advice=MADV_RANDOM)
    step = s.access(100)
    assert step.windows == [] and step.reads == [(100, 100)] and step.majflt == 1


def test_willneed_then_sequential_makes_every_window_a_major_fault():
    # The seed's recipe: WILLNEED reads 320 pages at once, with no PG_readahead; the miss after them
    # is a VM_SEQ_READ sync readahead with no history beyond ra_pages: a "random" read of 32 pages,
    # again with no marker, so the next window is a miss too (checked on Linux 6.18 with the host driver).
    s = ReadaheadStepper(small(size=4 * MIB), CAM0, advice=(MADV_WILLNEED, MADV_SEQUENTIAL))
    assert [(w.start, w.size) for w in s.hint_windows] == [(0, 320)]
    idle(s.m, s.p, 10**9)
    steps = [s.access(pg, 8) for pg in range(320, 416, 8)]
    assert [st.page for st in steps if st.majflt] == [320, 352, 384]
    assert [w.async_size for st in steps for w in st.windows] == [0, 0, 0]


# -- property: any run of accesses keeps the machine consistent -------------------------------------

HINTS = [None, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(via=st.sampled_from(["mmap", "read"]), hint=st.sampled_from(HINTS), kb=st.sampled_from([0, 16, 128]),
       accesses=st.lists(st.tuples(st.integers(0, 127), st.integers(1, 16)), min_size=1, max_size=12))
def test_accesses_keep_the_machine_consistent(via, hint, kb, accesses):
    s = ReadaheadStepper(small(kb=kb, size=128 * PAGE_SIZE), CAM0, via=via, advice=hint)
    m = s.m
    m.check()
    cached = set()
    for page, n in accesses:
        before = m.clock_ns
        step = s.access(page, n)
        m.check()
        now = {i for i, r in enumerate(step.resident) if r}
        assert set(range(page, min(128, page + n))) <= now      # what was read is there once it returns
        assert cached <= now                                      # nothing evicted on an idle 128 MiB machine
        assert m.clock_ns >= before and step.majflt <= n          # time never runs back; at most a miss a page
        cached = now
