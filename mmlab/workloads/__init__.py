"""Workloads: programs that run on a Machine through its public API and report what they saw.

    from mmlab.workloads import fresh_machine, video_paths, play, mbit
    m = fresh_machine("hdd", read_ahead_kb=128, size=16 << 20, streams=2)
    r = play(m, video_paths(2), bitrate=mbit(80))        # two files side by side
    r.stalls, r.stall_ns, r.majflt, r.throughput

    ReadaheadStepper(m, path)   one read or fault at a time: its windows, marker, residency
    write_shared(m, path, ...)  stores through MAP_SHARED, msync, and Dirty/Writeback over time

A workload is user space: it opens, maps, touches and advises, and reads the
simulated clock (m.clock_ns), the fault counts (p.rusage()) and the disk's
counters (m.disk.stats) as a program would read clock_gettime, getrusage and
/sys/block/*/stat.  It never reaches into the model's private state, so what
it measures is what the model's kernel did.  No matplotlib here: the figures
are in mmlab.viz.pagecache.
"""
from .player import (ChunkRecord, PlayResult, play, sweep_windows, sweep_advice, mbit, idle,
                     WINDOWS_KB, ADVICE, advice_name, fresh_machine, video_paths)
from .writer import WritebackSample, write_shared, meminfo_kb
from .stepper import ReadaheadStepper, RaStep, Window, windows_of, reads_of, residency_text

__all__ = ["ChunkRecord", "PlayResult", "play", "sweep_windows", "sweep_advice", "mbit", "idle",
           "WINDOWS_KB", "ADVICE", "advice_name", "WritebackSample", "write_shared", "meminfo_kb",
           "ReadaheadStepper", "RaStep", "Window", "windows_of", "reads_of", "residency_text",
           "fresh_machine", "video_paths"]
