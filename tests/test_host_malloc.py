"""Differential tests: the model's malloc against this machine's glibc 2.36, line for line.

mmlab/libc/malloc_driver.c is compiled here (cc -O0) and replays each trace
in a fresh process; mmlab.libc.replay runs the same trace on a fresh model
process.  Both print, for every call, the pointer's offset from the initial
break (or inside its own mapping), malloc_usable_size and the break, and
mallinfo2's counters where the trace asks: the two reports must be equal.
Skips, saying why, off Linux, without a C compiler or with another glibc.
"""
import pytest

from mmlab import Machine
from mmlab.libc import GlibcAbort
from mmlab.libc.replay import (replay, run_host, run_host_raw, random_trace, host_skip_reason)
from mmlab.libc.scenarios import SCENARIOS

REASON = host_skip_reason()
pytestmark = [pytest.mark.host(), pytest.mark.skipif(REASON is not None, reason=REASON or "")]


@pytest.fixture(scope="module")
def machine():
    return Machine(ram="256MiB")


def model(machine, trace):
    """Replay on a fresh process of the model; check every invariant after."""
    p = machine.spawn()
    out = replay(p.libc, trace)
    machine.check()
    if hasattr(p, "exit"):
        p.exit()
    return out


def agree(machine, trace):
    got, want = model(machine, trace), run_host(trace)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"line {k} ({trace[k - 1] if k else 'start'}): model {g!r}, glibc {w!r}"
    assert len(got) == len(want)


def test_driver_starts_with_no_heap():
    assert run_host(["i"]) == ["start arena=0", "i 0 1 0 0 0 0 0 0 0"]   # no malloc before main()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(machine, name):
    agree(machine, SCENARIOS[name][1])


@pytest.mark.parametrize("seed", range(300))
def test_random_trace(machine, seed):
    agree(machine, random_trace(seed, length=200))


@pytest.mark.parametrize("seed", range(1000, 1060))
def test_random_trace_with_mallopt(machine, seed):
    agree(machine, random_trace(seed, length=300, mallopts=True))


@pytest.mark.parametrize("seed", range(2000, 2006))
def test_long_random_trace(machine, seed):
    agree(machine, random_trace(seed, length=2000, slots=150))


@pytest.mark.parametrize("profile", ["small", "bins", "big"])
@pytest.mark.parametrize("seed", range(3000, 3025))
def test_random_trace_profile(machine, profile, seed):
    # small: tcache, fastbins, small bins; bins: the unsorted bin and large bins;
    # big: brk growth, mmap, the dynamic threshold, trims
    agree(machine, random_trace(seed, length=400, slots=80, profile=profile))


@pytest.mark.parametrize("seed", range(4000, 4025))
def test_random_trace_realloc_heavy(machine, seed):
    agree(machine, random_trace(seed, length=400, slots=60, realloc_share=0.6))


@pytest.mark.parametrize("seed", range(5000, 5025))
def test_random_trace_with_foreign_sbrk(machine, seed):
    agree(machine, random_trace(seed, length=400, foreign_sbrk=True))


def test_malloc_stats(machine):
    trace = SCENARIOS["mmap_threshold"][1] + ["s"]
    agree(machine, trace)


# -- misuse: glibc aborts with a message; the model raises GlibcAbort with the same one ----------

MISUSE = [
    # (name, trace ending in the bad call)
    ("double free in tcache", ["m 0 24", "F 0", "F 0"]),
    ("double free in fastbin", [f"m {k} 40" for k in range(8)] + [f"f {k}" for k in range(7)]
     + ["F 7", "F 7"]),
    ("double free of a normal chunk", ["m 0 2000", "m 1 24", "F 0", "F 0"]),
    ("double free into top", ["m 0 24", "m 1 2000", "F 1", "F 1"]),
    ("misaligned pointer", ["m 0 24", "g 0 8"]),
    ("pointer inside a chunk", ["m 0 100", "g 0 16"]),
    ("pointer inside an mmapped chunk", ["m 0 200000", "g 0 4096"]),
]


@pytest.mark.parametrize("name,trace", MISUSE, ids=[m[0] for m in MISUSE])
def test_misuse(machine, name, trace):
    status, out, err = run_host_raw(trace)
    assert status == -6                                  # SIGABRT
    p = machine.spawn()
    with pytest.raises(GlibcAbort) as info:
        replay(p.libc, trace)
    assert info.value.message == err.strip().splitlines()[-1]
    machine.check()                                      # the model's heap is still whole
