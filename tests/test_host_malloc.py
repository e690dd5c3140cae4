"""Differential tests: the model's malloc against this machine's glibc 2.36, line for line.

mmlab/libc/malloc_driver.c is compiled here (cc -O0) and replays each trace
in a fresh process; mmlab.libc.replay runs the same trace on a fresh model
process.  Both print, for every call, the pointer's offset from the initial
break (or inside its own mapping), malloc_usable_size and the break, and
mallinfo2's counters where the trace asks: the two reports must be equal.
Skips, saying why, off Linux, without a C compiler or with another glibc.
"""
import pytest

from mmlab import Machine, SegmentationFault
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


# -- page faults: glibc's stores into fresh pages fault there as here ---------------------------
#
# The driver first populates every mapping but the heap (P), so the faults it
# counts (getrusage ru_minflt, Z ... z) are malloc's own and the program's
# touches (w): none from ld.so, lazy binding, libc's code pages or the
# driver's output buffer, which the model has no counterpart for.

FAULTS = [
    # (name, trace)
    ("first malloc: the heap's first page", ["P", "Z", "m 0 24", "z"]),
    ("malloc(200000): mmap, one fault for the header", ["P", "m 9 24", "Z", "m 0 200000", "z"]),
    ("first call mmaps: the tcache's page and the header's", ["P", "Z", "m 0 200000", "z"]),
    ("100 small mallocs", ["P", "Z"] + [f"m {k} 40" for k in range(100)] + ["z"]),
    ("malloc(1 MiB) then touching it", ["P", "m 9 24", "Z", "m 0 1048576", "z", "w 0 1048576", "z"]),
    ("a heap chunk touched, freed, trimmed, taken again", [
        "P", "m 9 24", "Z", "m 0 120000", "m 1 120000", "z", "w 0 120000", "z", "f 1", "f 0", "z",
        "t 0", "z", "m 2 100000", "z", "w 2 100000", "z"]),
    ("calloc clears reused pages, not fresh ones", [
        "P", "Z", "m 0 24", "m 1 120000", "m 2 120000", "w 2 120000", "z", "f 2", "f 1", "t 0", "z",
        "c 3 1 130000", "z", f"M 0 {0x40000}"]),
    ("realloc of an mmapped chunk: mremap moves the pages, no fault", [
        "P", "m 9 24", "Z", "m 0 300000", "w 0 300000", "z", "r 0 900000", "z", "w 0 900000", "z"]),
    ("malloc_trim drops the pages inside free chunks", [
        "P", "Z", "m 0 24", "m 1 60000", "m 2 24", "w 1 60000", "z", "f 1", "t 0", "z",
        f"M 0 {0x21000}", "m 3 60000", "w 3 60000", "z"]),
    # mallopt(M_PERTURB): alloc_perturb fills what was asked for, free_perturb the freed chunk, so
    # every page of a block faults at malloc; the tcache paths fill nothing
    ("M_PERTURB fills at malloc and free", ["o -6 65", "P", "Z", "m 0 100000", "z", "m 1 24", "z", "f 0", "z"]),
    ("M_PERTURB through every bin", ["o -6 170", "P", "Z"] + [f"m {k} {n}" for k, n in enumerate(
        [24, 40, 100, 500, 2000, 5000, 30000])] + ["z"] + [f"f {k}" for k in range(7)] + ["z"]
        + [f"m {k} 40" for k in range(10, 20)] + [f"f {k}" for k in range(10, 20)] + ["z"]),
    ("M_PERTURB with calloc and realloc", ["o -6 1", "P", "Z", "c 0 10 100", "z", "c 1 1 200000", "z",
                                           "f 1", "z", "r 0 5000", "z"]),
]


@pytest.mark.parametrize("name,trace", FAULTS, ids=[f[0] for f in FAULTS])
def test_faults(machine, name, trace):
    agree(machine, trace)


@pytest.mark.parametrize("profile", ["mixed", "small", "bins", "big"])
@pytest.mark.parametrize("seed", range(6000, 6004))
def test_faults_of_every_call(machine, profile, seed):
    # the minor faults of each call, one by one, on random traces
    trace = random_trace(seed, length=150, slots=40, profile=profile)
    agree(machine, ["P", "Z"] + [x for line in trace for x in (line, "z")])


# -- corruption: the program overwrites a header; glibc reads it back and aborts ---------------

CORRUPTIONS = [
    # (name, trace: W ID OFF VALUE stores over malloc's metadata, then the call that trips on it)
    ("size below MINSIZE", ["m 0 24", "W 0 -8 17", "F 0"]),
    ("size not a multiple of 16", ["m 0 100", "W 0 -8 105", "F 0"]),
    ("size wrapping past the address space", ["m 0 100", "W 0 -8 -4095", "F 0"]),
    ("PREV_INUSE of the next chunk cleared", ["m 0 2000", "m 1 24", "W 1 -8 32", "F 0"]),
    ("next chunk's size zeroed (normal)", [f"m {k} 2000" for k in range(8)] + ["m 9 24"]
     + [f"f {k}" for k in range(7)] + ["W 7 2008 1", "F 7"]),
    ("top's size enlarged", ["m 0 24", "W 0 24 1099511627777", "m 1 4000"]),
    ("an mmapped chunk's prev_size", ["m 0 200000", "W 0 -16 8", "F 0"]),
    ("a tcache link made misaligned", ["m 0 24", "m 1 24", "F 1", "F 0", "W 0 0 8", "m 2 24", "m 3 24"]),
    ("a fastbin chunk's size changed", [f"m {k} 40" for k in range(9)] + [f"f {k}" for k in range(7)]
     + ["F 7", "W 7 -8 33", "m 10 24"] + [f"m {k} 40" for k in range(11, 19)]),
    # glibc's release-build assert()s: the "House of Orange" check of top in sysmalloc
    ("top's size shrunk (sysmalloc assert)", ["m 0 24", "W 0 24 33", "m 1 100000"]),
    ("top's PREV_INUSE cleared (sysmalloc assert)", ["m 0 24", "W 0 24 3408", "m 1 4096"]),
    # ... and _int_malloc's: the chunk the binmap finds is smaller than the request
    ("a binned chunk's size shrunk (_int_malloc assert)", ["m 0 2000", "m 1 24", "F 0", "m 2 3000", "W 0 -8 257",
                                                           "m 3 500"]),
    ("a large-bin chunk marked NON_MAIN_ARENA (_int_malloc assert)", [
        "m 0 2000", "m 1 24", "m 2 1990", "m 3 24", "F 0", "m 4 3000", "W 0 -8 2021", "F 2", "m 5 3000"]),
    ("an unsorted chunk's bk made NULL (SIGSEGV)", ["m 0 2000", "m 1 24", "F 0", "W 0 8 0", "m 2 3000"]),
    ("an unsorted chunk's bk redirected", ["m 0 2000", "m 1 24", "m 2 2000", "m 3 24", "F 0", "W 0 8 -48",
                                           "m 4 3000"]),
]


@pytest.mark.parametrize("name,trace", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corruption(machine, name, trace):
    status, out, err = run_host_raw(trace)
    p = machine.spawn()
    if status == -11:                                    # SIGSEGV: glibc followed the bad pointer
        with pytest.raises(SegmentationFault):
            replay(p.libc, trace)
        return
    assert status == -6, (out, err)                      # SIGABRT, with glibc's message
    with pytest.raises(GlibcAbort) as info:
        replay(p.libc, trace)
    assert info.value.message == err.strip().splitlines()[-1]
