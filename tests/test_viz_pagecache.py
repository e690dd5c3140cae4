"""mmlab.viz.pagecache and the ReadaheadExplorer: the chapter 10 figures, drawn from workload results."""
import pytest

from mmlab.viz import pagecache as PC
from mmlab.workloads import ChunkRecord, PlayResult, RaStep, Window, WritebackSample, residency_text


def result(disk="hdd", kb=128, stalls=(), bitrate=40_000_000, advice="none", n=5, period=52_000_000):
    # A synthetic PlayResult: n chunks, a period apart; the chunks listed in `stalls` 30 ms late.
    chunks, t = [], 0
    for k in range(n):
        late = 30_000_000 if k in stalls else 0
        chunks.append(ChunkRecord(k, t, t, t + 1_000 + late, 1 if late else 0, bool(late)))
        t += period + late
    return PlayResult(path="/videos/cam0.mp4", streams=1, disk=disk, read_ahead_kb=kb, advice=advice,
                      via="mmap", bitrate=bitrate, chunk=256 * 1024, tolerance_ns=1_000_000,
                      start_ns=0, end_ns=chunks[-1].done_ns, minflt=10, majflt=len(stalls),
                      read_requests=8, read_bytes=2 << 20, file_size=64 << 20, chunks=chunks)


def test_play_result_counts_stalls_after_startup():
    r = result(stalls=(0, 2, 3))
    assert r.stalls == 2                        # the start-up chunk never counts
    assert r.stall_ns == 2 * 30_001_000         # two chunks, 30 ms late plus 1 us of faults each
    assert r.startup_ns == 30_001_000           # chunk 0's wait
    assert r.played_bytes == 5 * 256 * 1024


def test_stall_figure_has_title_labels_and_one_line_per_disk():
    res = {(d, kb): result(d, kb, stalls=(1,) if kb < 512 else ()) for d in ("hdd", "ssd")
           for kb in (0, 128, 512, 8192)}
    fig = PC.stall_figure(res)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.lines) == 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0 KiB", "128 KiB", "512 KiB", "8 MiB"]


def test_window_positions_put_zero_left_of_the_smallest():
    pos = PC._window_positions([0, 16, 128])
    assert pos[0] < pos[16] < pos[128] and pos[16] - pos[0] == 1


def test_throughput_figure_draws_the_bitrate_line():
    res = {("hdd", kb): result("hdd", kb, bitrate=None) for kb in (32, 128)}
    fig = PC.throughput_figure(res, bitrate=40_000_000)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() and ax.get_ylabel()
    assert any("needs 5 MB/s" in t.get_text() for t in ax.texts)     # 40 Mbit/s is 5 MB/s


def test_window_figure_has_two_panels():
    st = {("hdd", kb): result("hdd", kb) for kb in (0, 128)}
    flat = {("hdd", kb): result("hdd", kb, bitrate=None) for kb in (0, 128)}
    fig = PC.window_figure(st, flat)
    assert len(fig.axes) == 2 and fig._suptitle.get_text()


def test_advice_figure_bars_per_disk_and_hint():
    res = {(d, n): result(d, advice=n, stalls=(1,)) for d in ("hdd", "ssd") for n in ("none", "RANDOM")}
    fig = PC.advice_figure(res)
    ax = fig.axes[0]
    assert len(ax.patches) == 4 and ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["none", "RANDOM"]


def test_advice_figure_rejects_an_unknown_metric():
    with pytest.raises(ValueError):
        PC.advice_figure({("hdd", "none"): result()}, metric="speed")


def test_chunk_timeline_colours_stalls_red():
    fig = PC.chunk_timeline(result(stalls=(2,)))
    ax = fig.axes[0]
    assert ax.get_title().startswith("HDD") and "1 stalls" in ax.get_title()


def steps():
    # Two accesses of an 8-page file: a fault on page 0 reading 0..3 with PG_readahead on 2, then page 2
    # reaching the mark, which reads 4..7 asynchronously (still in flight: not resident).
    w = Window("do_sync_mmap_readahead", 0, 4, 2)
    s0 = RaStep(0, 1, 0, 9_000_000, 0, 1, ["do_sync_mmap_readahead"], [w], [True] * 4 + [False] * 4,
                [(0, 3)])
    w2 = Window("page_cache_async_ra", 4, 4, 4)
    s1 = RaStep(2, 1, 9_000_000, 9_001_000, 1, 0, ["page_cache_async_ra"], [w2], [True] * 4 + [False] * 4,
                [(4, 7)])
    return [s0, s1]


def test_window_marker_is_start_plus_size_minus_async():
    assert Window("x", 0, 32, 8).marker == 24
    assert Window("x", 32, 32, 32).marker == 32
    assert Window("x", 5, 1, 0).marker is None          # no async part: no PG_readahead


def test_residency_matrix_states():
    g = PC.residency_matrix(steps())
    assert g.shape == (2, 8)
    assert list(g[0]) == [4, 2, 3, 2, 0, 0, 0, 0]       # accessed, window, marker, window, not cached
    assert list(g[1]) == [1, 1, 4, 1, 3, 2, 2, 2]       # cached, accessed, the new window and its marker


def test_residency_strip_has_title_labels_and_a_row_per_step():
    fig = PC.residency_strip(steps())
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.get_yticklabels()) == 2


def test_residency_text_marks_cached_marker_and_access():
    text = residency_text(steps()[0])
    assert text.splitlines() == ["    0 ##R#....", "      ^"]
    text = residency_text(steps()[1])                   # 4..7 requested, still in flight; marker on 4
    assert text.splitlines() == ["    0 ####R~~~", "        ^"]


def test_writeback_figure_marks_msync():
    s = [WritebackSample(0, 0, 0, 0, "start"), WritebackSample(10**9, 8, 0, 0, "store 1"),
         WritebackSample(2 * 10**9, 0, 0, 8192, "msync")]
    fig = PC.writeback_figure(s)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.lines) >= 4                           # three curves and the msync line
    assert any(t.get_text() == "msync" for t in ax.texts)


def test_residency_matrix_needs_steps():
    with pytest.raises(ValueError):
        PC.residency_matrix([])


# -- the ReadaheadExplorer widget, driven without a browser ------------------------------------
def test_explorer_steps_through_read_around_and_the_marker():
    from mmlab.widgets.pagecache import ReadaheadExplorer
    x = ReadaheadExplorer(disk="hdd", read_ahead_kb=128, via="mmap", hint="none", pages_per_access=8)
    assert "nothing cached yet" in x.text
    first = x.next()
    assert first.startswith("page 0:") and "do_sync_mmap_readahead: pages 0..31" in first
    x.next(), x.next()
    assert x.next().startswith("page 24:") and "page_cache_async_ra" in x.text     # the marker
    assert x.picture.value                                                          # a PNG was drawn


def test_explorer_reset_with_random_hint_faults_every_page():
    from mmlab.widgets.pagecache import ReadaheadExplorer
    x = ReadaheadExplorer()
    x.reset(disk="ssd", hint="RANDOM")
    assert (x.disk.value, x.hint.value) == ("ssd", "RANDOM")
    assert "majflt 8; no readahead" in x.next()                                     # 8 pages, 8 reads


def test_explorer_skip_jumps_ahead():
    from mmlab.widgets.pagecache import ReadaheadExplorer
    x = ReadaheadExplorer(pages_per_access=8)
    x.next()
    assert x.skip().startswith("page 72:")                                          # 8 + 64
