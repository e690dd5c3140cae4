"""Page-cache pictures: the stutter experiment, madvise hints, readahead residency, writeback.

    from mmlab.viz import pagecache as PC
    PC.window_figure(stalls, flat, bitrate)    # stalls and throughput against read_ahead_kb, per disk
    PC.advice_figure(results)                  # stalls per madvise hint, per disk
    PC.chunk_timeline(result)                  # one playback: each chunk's wait, stalls in red
    PC.residency_strip(steps)                  # the page cache over time, windows and PG_readahead
    PC.writeback_figure(samples)               # Dirty and Writeback over time, msync marked

Every function reads results the workloads in mmlab.workloads returned
(PlayResult, RaStep, WritebackSample) and draws them; none runs the model.
"""
import numpy as np
from matplotlib.colors import ListedColormap, BoundaryNorm
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .style import new_axes, put_legend

DISK_COLORS = {"hdd": "#b5523b", "ssd": "#3b6fb5", "nvme": "#3b9b5b"}
DISK_NAMES = {"hdd": "HDD", "ssd": "SATA SSD", "nvme": "NVMe"}

# Page states in the residency strip, in drawing order.
RES_STATES = ("not cached", "cached", "read by this access", "PG_readahead", "accessed")
RES_COLORS = ("#f2f2f2", "#8fb8de", "#f3c77a", "#d62728", "#222222")


def _disk_color(disk):
    return DISK_COLORS.get(disk, "#777777")


def _window_axis(ax, windows):
    """x axis of readahead windows: log2 spacing, with 0 KiB placed one step left of the smallest."""
    pos = _window_positions(windows)
    ax.set_xticks([pos[w] for w in windows])
    ax.set_xticklabels([_kb_label(w) for w in windows], rotation=45, fontsize=8)
    ax.set_xlabel("readahead window (read_ahead_kb)")
    return pos


def _window_positions(windows):
    nonzero = sorted(w for w in windows if w > 0)
    base = np.log2(nonzero[0]) - 1 if nonzero else 0
    return {w: (np.log2(w) if w > 0 else base) for w in windows}


def _kb_label(kb):
    return f"{kb // 1024} MiB" if kb >= 1024 and kb % 1024 == 0 else f"{kb} KiB"


def _by_disk(results):
    """{disk: [(window_kb, result), ...] sorted by window} from {(disk, kb): result}."""
    out = {}
    for (disk, kb), r in results.items():
        out.setdefault(disk, []).append((kb, r))
    return {d: sorted(v, key=lambda kv: kv[0]) for d, v in out.items()}


def stall_figure(results, ax=None, title=None):
    """Stall time (seconds the picture froze) against the readahead window, one line per disk.

    results: {(disk, read_ahead_kb): PlayResult} from sweep_windows with a bitrate.  Each point
    is annotated with the number of stalls.
    """
    fig, ax = new_axes(ax, (7, 3.6))
    windows = sorted({kb for _, kb in results})
    pos = _window_axis(ax, windows)
    for disk, rows in _by_disk(results).items():
        xs = [pos[kb] for kb, _ in rows]
        ys = [r.stall_ns / 1e9 for _, r in rows]
        ax.plot(xs, ys, "o-", color=_disk_color(disk), label=DISK_NAMES.get(disk, disk))
        for x, y, (_, r) in zip(xs, ys, rows):
            if r.stalls:
                ax.annotate(str(r.stalls), (x, y), textcoords="offset points", xytext=(0, 5),
                            ha="center", fontsize=7, color=_disk_color(disk))
    any_r = next(iter(results.values()))
    rate = f"{any_r.bitrate / 1e6:g} Mbit/s" if any_r.bitrate else "flat out"
    ax.set_title(title or f"Stutter against readahead window ({rate}; numbers: stalls)")
    ax.set_ylabel("time frozen (s)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def throughput_figure(results, bitrate=None, ax=None, title=None):
    """Flat-out throughput (MB/s) against the readahead window, one line per disk, log scale.

    results: {(disk, read_ahead_kb): PlayResult} from sweep_windows with bitrate=None.
    bitrate (bits/s, all streams together): drawn as a horizontal line, the rate a player needs.
    """
    fig, ax = new_axes(ax, (7, 3.6))
    windows = sorted({kb for _, kb in results})
    pos = _window_axis(ax, windows)
    for disk, rows in _by_disk(results).items():
        ax.plot([pos[kb] for kb, _ in rows], [r.throughput / 1e6 for _, r in rows], "o-",
                color=_disk_color(disk), label=DISK_NAMES.get(disk, disk))
    if bitrate:
        ax.axhline(bitrate / 8e6, color="#444444", ls="--", lw=1)
        ax.annotate(f"playback needs {bitrate / 8e6:g} MB/s", (pos[windows[0]], bitrate / 8e6),
                    textcoords="offset points", xytext=(2, 4), fontsize=8, color="#444444")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(title or "Sequential mmap read, flat out: throughput against readahead window")
    ax.set_ylabel("throughput (MB/s, log)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def window_figure(stalls, flat):
    """stall_figure and throughput_figure side by side (the chapter's main figure).

    stalls: sweep_windows results with a bitrate; flat: the same sweep flat out.  The bitrate
    line is the stalls' bitrate times their number of streams.
    """
    any_r = next(iter(stalls.values()))
    need = any_r.bitrate * any_r.streams
    each = f"{any_r.streams} × {any_r.bitrate / 1e6:g} Mbit/s" if any_r.streams > 1 else \
        f"{any_r.bitrate / 1e6:g} Mbit/s"
    fig, (a, b) = new_axes(None, (12, 4), ncols=2)
    stall_figure(stalls, ax=a, title=f"Time frozen playing {each} (numbers: stalls)")
    throughput_figure(flat, bitrate=need, ax=b, title="Flat-out throughput of the same files (MB/s, log)")
    fig.suptitle("A larger readahead window removes the stutter")
    return fig


def advice_figure(results, ax=None, metric="stall_ns", title=None):
    """Grouped bars: one group per hint, one bar per disk; the height is `metric`.

    results: {(disk, hint name): PlayResult} from sweep_advice.  metric: "stall_ns" (seconds
    frozen), "stalls" (count), "majflt" or "throughput" (MB/s).
    """
    fig, ax = new_axes(ax, (8, 3.6))
    disks = list(dict.fromkeys(d for d, _ in results))
    names = list(dict.fromkeys(n for _, n in results))
    scale = {"stall_ns": 1e-9, "throughput": 1e-6}.get(metric, 1)
    label = {"stall_ns": "time frozen (s)", "stalls": "stalls", "majflt": "major faults",
             "throughput": "throughput (MB/s)"}.get(metric)
    if label is None:
        raise ValueError(f"metric must be stall_ns, stalls, majflt or throughput, got {metric!r}")
    width = 0.8 / len(disks)
    x = np.arange(len(names))
    for j, disk in enumerate(disks):
        ys = [getattr(results[disk, n], metric) * scale if (disk, n) in results else 0 for n in names]
        bars = ax.bar(x + (j - (len(disks) - 1) / 2) * width, ys, width, color=_disk_color(disk),
                      label=DISK_NAMES.get(disk, disk))
        for bar, n in zip(bars, names):
            r = results.get((disk, n))
            if r is not None and metric == "stall_ns":
                ax.annotate(str(r.stalls), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            textcoords="offset points", xytext=(0, 2), ha="center", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=8, rotation=15)
    ax.set_xlabel("hint given to the mapping")
    ax.set_ylabel(label)
    any_r = next(iter(results.values()))
    rate = f"{any_r.bitrate / 1e6:g} Mbit/s" if any_r.bitrate else "flat out"
    ax.set_title(title or f"madvise hints, read_ahead_kb={any_r.read_ahead_kb}, {rate}"
                 + (" (numbers: stalls)" if metric == "stall_ns" else ""))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return fig


def chunk_timeline(result, ax=None, title=None):
    """One playback: each chunk's wait (ms) at the time it was asked for; stalls in red."""
    fig, ax = new_axes(ax, (9, 3))
    t = np.array([c.start_ns for c in result.chunks], dtype=float)
    t = (t - result.start_ns) / 1e9
    wait = np.array([c.wait_ns / 1e6 for c in result.chunks])
    colors = ["#d62728" if c.stalled else ("#999999" if c.index == 0 else "#3b6fb5")
              for c in result.chunks]
    ax.vlines(t, 0, wait, colors=colors, lw=1.5)
    ax.scatter(t, wait, c=colors, s=8, zorder=3)
    if result.bitrate:
        period = result.chunk * 8 / result.bitrate * 1e3
        ax.axhline(period, color="#444444", ls=":", lw=1)
        ax.annotate("one chunk's playing time", (t[0] if len(t) else 0, period), ha="left",
                    textcoords="offset points", xytext=(0, 3), fontsize=8, color="#444444")
    ax.set_xlabel("playback time (s, simulated clock)")
    ax.set_ylabel("wait for the chunk (ms)")
    ax.set_title(title or f"{result.disk.upper()}, read_ahead_kb={result.read_ahead_kb}, "
                 f"{result.advice}: {result.stalls} stalls, {result.stall_ns / 1e9:.2f} s frozen")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    handles = [Patch(color="#999999", label="start-up"), Patch(color="#3b6fb5", label="on time"),
               Patch(color="#d62728", label="stall")]
    ax.legend(handles=handles, fontsize=8, loc="upper right")
    return fig


def residency_matrix(steps, npages=None):
    """Rows = steps, columns = pages; each cell an index into RES_STATES (see residency_strip)."""
    if not steps:
        raise ValueError("steps: need at least one RaStep")
    n = npages or len(steps[0].resident)
    grid = np.zeros((len(steps), n), dtype=int)
    for row, s in enumerate(steps):
        grid[row] = np.array(s.resident[:n], dtype=int)               # 0 not cached, 1 cached
        for first, last in s.reads:
            lo, hi = max(0, first), min(n, last + 1)
            grid[row, lo:hi] = np.maximum(grid[row, lo:hi], 2)
        for mk in s.marker_pages:
            if mk < n:
                grid[row, mk] = 3
        grid[row, s.page:min(n, s.page + s.npages)] = 4
    return grid


def residency_strip(steps, npages=None, ax=None, title=None):
    """The page cache of one file over a run of accesses (mincore after each, one row per access).

    Pale: not cached.  Blue: cached.  Yellow: sent to the disk by this access (its I/O may
    still be in flight).  Red: the PG_readahead page of a window this access decided.  Black: the page accessed.  The y axis is the
    access number with the clock (ms) beside it.
    """
    grid = residency_matrix(steps, npages)
    fig, ax = new_axes(ax, (10, max(2.6, 1.4 + 0.22 * len(steps))))
    cmap = ListedColormap(RES_COLORS)
    norm = BoundaryNorm(np.arange(len(RES_STATES) + 1) - 0.5, len(RES_STATES))
    ax.imshow(grid, aspect="auto", interpolation="nearest", cmap=cmap, norm=norm,
              extent=(-0.5, grid.shape[1] - 0.5, len(steps) - 0.5, -0.5))
    ax.set_yticks(range(len(steps)))
    ax.set_yticklabels([f"{s.page} @ {s.clock_ns / 1e6:.1f} ms" for s in steps], fontsize=7)
    ax.set_xlabel("page of the file")
    ax.set_ylabel("page accessed @ clock after")
    ax.set_title(title or "Page-cache residency after each access (mincore)")
    own = ax.figure is fig and len(fig.axes) == 1
    put_legend(fig, ax, own, [Patch(facecolor=c, edgecolor="#999999", label=s)
                              for s, c in zip(RES_STATES, RES_COLORS)])
    return fig


def writeback_figure(samples, ax=None, title=None):
    """Dirty and Writeback (KiB, from /proc/meminfo) over time, and the bytes written to the disk.

    Vertical dotted lines mark msync calls.
    """
    fig, ax = new_axes(ax, (9, 3.4))
    t = np.array([s.t_ns for s in samples], dtype=float)
    t = (t - t[0]) / 1e9
    ax.step(t, [s.dirty_kb for s in samples], where="post", color="#d62728", label="Dirty (kB)")
    ax.step(t, [s.writeback_kb for s in samples], where="post", color="#ff9f1c", label="Writeback (kB)")
    ax.step(t, [s.written_bytes / 1024 for s in samples], where="post", color="#3b6fb5", ls="--",
            label="written to disk (KiB)")
    for s, x in zip(samples, t):
        if s.event == "msync":
            ax.axvline(x, color="#444444", ls=":", lw=1)
            ax.annotate("msync", (x, 0), textcoords="offset points", xytext=(3, 3), fontsize=8)
    ax.set_xlabel("time (s, simulated clock)")
    ax.set_ylabel("KiB")
    ax.set_title(title or "Dirty pages of a shared file mapping, and their writeback")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig
