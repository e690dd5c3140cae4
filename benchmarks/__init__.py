"""mmlab's performance benchmarks, run by `python -m benchmarks` (make bench).

Each subsystem adds a module here named bench_<subsystem>.py (bench_page_alloc,
bench_slub, bench_vmalloc, bench_mmap, bench_faults, bench_malloc,
bench_pagecache, ...) holding functions marked @benchmark.  A benchmark
function takes no arguments and returns a list of Figure, each a number
measured beside the target it must meet:

    from benchmarks import benchmark, Figure, rate

    @benchmark
    def kmalloc_pairs():
        m = Machine(ram="1GiB")
        per_s = rate(lambda: m.kfree(m.kmalloc(64)), 100_000)
        return [Figure("kmalloc(64)/kfree pairs", per_s, "pairs/s", target=200_000)]

`python -m benchmarks` imports every bench_*.py, runs each benchmark and
prints one table; `-k WORD` runs those whose module or function name holds
WORD, `--strict` exits 1 when a figure misses its target, `--json FILE`
writes the figures out.  Tests never assert on timings; this is the place.
"""
import dataclasses
import json
import os
import subprocess
import sys
import time

REGISTRY = []           # (module name, function), in the order they were defined


@dataclasses.dataclass
class Figure:
    """One measured number and its target.

    `better` is "higher" (rates) or "lower" (times, memory); a figure with
    target None is reported for information only.
    """
    name: str
    value: float
    unit: str
    target: float = None
    better: str = "higher"
    note: str = ""

    def met(self):
        """True when the target is met (or there is none)."""
        if self.target is None:
            return True
        return self.value >= self.target if self.better == "higher" else self.value <= self.target

    def shown(self, value):
        if value is None:
            return "-"
        if self.unit == "s":
            return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
        if abs(value) >= 1000:
            return f"{value:,.0f} {self.unit}"
        return f"{value:.3g} {self.unit}"

    def target_text(self):
        if self.target is None:
            return "(report only)"
        return ("≥ " if self.better == "higher" else "< ") + self.shown(self.target)


def benchmark(fn):
    """Register a benchmark function (no arguments, returns a list of Figure)."""
    REGISTRY.append((fn.__module__.rpartition(".")[2], fn))
    return fn


def best_time(fn, repeat=3):
    """The shortest of `repeat` wall-clock timings of fn(), in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def rate(step, n, repeat=3, setup=None):
    """Calls per second of step(), the best of `repeat` runs of n calls.

    `setup`, if given, runs before each run (not timed) and its result is
    passed to step as its only argument.
    """
    best = 0.0
    for _ in range(repeat):
        state = setup() if setup else None
        args = (state,) if setup else ()
        start = time.perf_counter()
        for _ in range(n):
            step(*args)
        elapsed = time.perf_counter() - start
        best = max(best, n / elapsed)
    return best



def rate_of_working_set(make, n, repeat=3):
    """Steps per second of a working-set benchmark.

    `make()` returns (step, machine); each repeat builds a fresh one, times
    n calls of step, and checks the machine afterwards (untimed), so a fast
    but wrong model cannot post a figure.
    """
    made = []

    def setup():
        step, m = make()
        made.append(m)
        return step
    per_s = rate(lambda step: step(None), n, repeat=repeat, setup=setup)
    for m in made:
        m.check()
    return per_s

def run_child(code, timeout=300):
    """Run Python `code` in a fresh interpreter and return the JSON it prints last.

    For figures that need a clean process, such as the memory a call adds to
    a process that has only imported mmlab.
    """
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
