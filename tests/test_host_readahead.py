"""Differential tests: readahead and madvise on this machine's kernel and on the model (issue #6).

Each scenario of mmlab/linux/readahead.py drops a 64 MiB ext4 file's cache with
POSIX_FADV_DONTNEED, touches it through mmap or pread (after madvise / posix_fadvise
hints), and reads residency with mincore.  The model, given the same read_ahead_kb,
must answer the same resident page ranges and the same fault counts, op for op.

- test_model_matches_recorded_host: the model against the figures recorded on this
  machine (Linux 6.18) at read_ahead_kb 0, 128 (Linux's default), 512 and 8192; runs
  anywhere, so learners without root or Linux see the comparison too.
- test_host_matches_model: live, this kernel against the model; at the disk's own
  read_ahead_kb, and (as root, with a writable queue/read_ahead_kb, restored at once)
  at 0, 128 and 512.
- test_host_matches_recorded: this kernel still gives the recorded figures (skips on
  another kernel release or disk, where they may rightly differ).
"""
import os

import pytest

from mmlab import Machine
from mmlab.linux import readahead as ra
from mmlab.process import Process

HOST_REASON = ra.host_skip_reason()
SET_RA_REASON = ra.set_ra_skip_reason()
MODEL_REASON = None if (hasattr(Machine, "set_read_ahead_kb") and hasattr(Process, "fadvise")
                        and hasattr(Process, "pread")) else "the page-cache model (helper C) is not built yet"
RECORDED_KERNEL = "6.18"
KBS = sorted(ra.MEASURED)


def recorded_cases():
    return [(kb, name) for kb in KBS for name in ra.names(kb)]


# Live runs at other read_ahead_kb values (set, then restored): all scenarios at Linux's default,
# and where 0 and 512 take other paths (readahead off; a 128-page window's ramp).
LIVE_EXTRA = {
    0: ["read-around", "MADV_SEQUENTIAL", "MADV_WILLNEED", "pread first window 64 KiB", "pread ramp-up",
        "FADV_SEQUENTIAL read-around"],
    512: ["read-around at EOF", "MADV_SEQUENTIAL stream", "mmap sequential", "pread ramp-up",
          "FADV_DONTNEED keeps mapped"],
}


def live_cases():
    host_kb = ra.host_read_ahead_kb() if HOST_REASON is None else ra.DEFAULT_READ_AHEAD_KB   # under the lock
    cases = [(None, name) for name in ra.names(host_kb)]
    cases += [(128, name) for name in ra.names(128)] if host_kb != 128 else []
    cases += [(kb, name) for kb, names in LIVE_EXTRA.items() if kb != host_kb for name in names]
    return cases


def case_id(case):
    kb, name = case
    return f"{'host' if kb is None else kb}-{name}"


# --- the model alone, against the recorded host figures ----------------------------------------

@pytest.mark.skipif(MODEL_REASON is not None, reason=f"model: {MODEL_REASON}")
@pytest.mark.parametrize("case", recorded_cases(), ids=case_id)
def test_model_matches_recorded_host(case):
    # every recorded scenario, op for op: resident ranges, fault counts, return values
    kb, name = case
    assert ra.run_model(name, kb, io_pages=ra.MEASURED_IO_PAGES).comparable() == ra.measured(name, kb)


# --- this kernel against the model -------------------------------------------------------------

@pytest.mark.skipif(HOST_REASON is not None, reason=f"host readahead: {HOST_REASON}")
@pytest.mark.skipif(MODEL_REASON is not None, reason=f"model: {MODEL_REASON}")
@pytest.mark.parametrize("case", live_cases(), ids=case_id)
def test_host_matches_model(case):
    # the same scenario and read_ahead_kb on both sides; None: the disk's own read_ahead_kb
    kb, name = case
    if kb is not None and SET_RA_REASON:
        pytest.skip(f"read_ahead_kb {kb}: {SET_RA_REASON}")
    host = ra.run_host(name, kb)
    model = ra.run_model(name, host.read_ahead_kb, io_pages=ra.host_io_pages())
    assert model.comparable() == host.comparable()


def this_machine_reason():
    if HOST_REASON:
        return HOST_REASON
    if not os.uname().release.startswith(RECORDED_KERNEL):
        return f"recorded on Linux {RECORDED_KERNEL}, this is {os.uname().release}"
    if ra.host_io_pages() != ra.MEASURED_IO_PAGES:
        return f"recorded with io_pages {ra.MEASURED_IO_PAGES}, this disk has {ra.host_io_pages()}"
    return None


def recorded_host_cases():
    # at the disk's own read_ahead_kb only (no root needed); the others follow from the two tests above
    kb = ra.host_read_ahead_kb() if HOST_REASON is None else ra.DEFAULT_READ_AHEAD_KB
    return [(kb, name) for name in ra.names(kb)] if kb in ra.MEASURED else []


@pytest.mark.skipif(this_machine_reason() is not None, reason=f"recorded figures: {this_machine_reason()}")
@pytest.mark.parametrize("case", recorded_host_cases(), ids=case_id)
def test_host_matches_recorded(case):
    # the table in mmlab/linux/readahead.py still holds on this kernel
    kb, name = case
    host = ra.run_host(name)
    assert host.read_ahead_kb == kb
    assert host.comparable() == ra.measured(name, kb)


# --- the host probe itself ---------------------------------------------------------------------

@pytest.mark.skipif(SET_RA_REASON is not None, reason=f"read_ahead_kb: {SET_RA_REASON}")
def test_with_read_ahead_kb_restores():
    # the value is set inside the block and the old one is back after it
    old = ra.host_read_ahead_kb()
    new = 256 if old != 256 else 512
    with ra.with_read_ahead_kb(new) as kb:
        with open(os.path.join(ra.disk_queue(ra.test_dir()), "read_ahead_kb")) as f:
            assert kb == new and int(f.read()) == new
    assert ra.host_read_ahead_kb() == old


@pytest.mark.skipif(SET_RA_REASON is not None, reason=f"read_ahead_kb: {SET_RA_REASON}")
def test_with_read_ahead_kb_restores_on_error():
    # an exception inside the block still restores the old value
    old = ra.host_read_ahead_kb()
    with pytest.raises(KeyError):
        with ra.with_read_ahead_kb(old + 4):
            raise KeyError("boom")
    assert ra.host_read_ahead_kb() == old


def test_with_read_ahead_kb_bad_value():
    # a negative or non-int value fails before anything is written
    with pytest.raises(ValueError, match="kb"):
        with ra.with_read_ahead_kb(-1):
            pass
    with pytest.raises(ValueError, match="kb"):
        with ra.with_read_ahead_kb("8192"):
            pass


@pytest.mark.skipif(HOST_REASON is not None, reason=f"host readahead: {HOST_REASON}")
def test_host_scenario_starts_from_empty_cache():
    # run_host raises unless mincore saw nothing after DONTNEED; one MADV_RANDOM touch reads one page
    r = ra.run_host("MADV_RANDOM")
    assert r.resident == ((ra.MIDDLE, ra.MIDDLE + 1),)
    assert r.faults == (0, 1)


def test_script_bad_input():
    # unknown names and streams without a window fail, naming the parameter
    with pytest.raises(ValueError, match="name"):
        ra.script("no such scenario", 128)
    with pytest.raises(ValueError, match="read_ahead_kb"):
        ra.script("mmap sequential", 0)


def test_ranges_round_trip():
    # mincore bools -> ranges, and the driver's text -> the same ranges
    assert ra.ranges([False, True, True, False, True]) == ((1, 3), (4, 5))      # two runs
    assert ra.ranges([]) == ()                                                   # nothing
    assert ra.ranges([True] * 3) == ((0, 3),)                                    # to the end
    assert ra.parse_ranges("1-3,4-5") == ((1, 3), (4, 5))                        # driver text
    assert ra.parse_ranges("-") == ()                                            # driver: none


def test_evicted_detects_shrinking_residency():
    # a page gone between two mincore looks is reclaim (retry), unless DONTNEED came between
    grew = ra.Result(["mincore", "mincore"], [("res", ((0, 4),)), ("res", ((0, 8),))])
    shrank = ra.Result(["mincore", "mincore"], [("res", ((0, 4),)), ("res", ((0, 2),))])
    dropped = ra.Result(["mincore", "fadvise 0 0 4", "mincore"],
                        [("res", ((0, 4),)), ("ret", 0), ("res", ((0, 2),))])
    paged_out = ra.Result(["mincore", "madvise 0 4 21", "mincore"],
                          [("res", ((0, 4),)), ("ret", 0), ("res", ((2, 4),))])
    assert not ra.evicted(grew)
    assert not ra.evicted(paged_out)
    assert ra.evicted(shrank)
    assert not ra.evicted(dropped)


def test_recorded_table_covers_every_scenario():
    # every scenario that applies at a recorded read_ahead_kb has its figures, one answer an op
    for kb in KBS:
        assert sorted(ra.MEASURED[kb]) == sorted(ra.names(kb))
        for name in ra.names(kb):
            assert len(ra.measured(name, kb)) == len(ra.script(name, kb))


@pytest.mark.skipif(SET_RA_REASON is not None, reason=f"read_ahead_kb: {SET_RA_REASON}")
def test_with_read_ahead_kb_recovers_after_a_killed_holder():
    # a holder killed (SIGKILL) while the value was changed: the next holder restores it first
    import subprocess
    import sys
    old = ra.host_read_ahead_kb()
    code = ("import os, signal; from mmlab.linux import readahead as ra\n"
            f"with ra.with_read_ahead_kb({old + 8}):\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", code])
    with ra.with_read_ahead_kb() as kb:
        assert kb == old
    assert not os.path.exists(ra.SAVED_PATH)


@pytest.mark.skipif(HOST_REASON is not None, reason=f"host readahead: {HOST_REASON}")
def test_remove_stale_files():
    # a scenario directory whose process is gone is removed; a live process's stays
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    gone = os.path.join(ra.test_dir(), f"mmlab-readahead-{dead}-test")
    alive = os.path.join(ra.test_dir(), f"mmlab-readahead-{os.getpid()}-test")
    os.makedirs(gone)
    os.makedirs(alive)
    try:
        ra.remove_stale_files()
        assert not os.path.exists(gone)
        assert os.path.isdir(alive)
    finally:
        os.rmdir(alive)
