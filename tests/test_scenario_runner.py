"""The differential scenario runner itself (mmlab.linux.scenario), without the model.

These tests show the scenario format, how the driver's output becomes a
window-relative report, what compare() and side_by_side() print, and that the
random generator is deterministic and safe.  The few that run the C driver
are marked host and skip without Linux or a C compiler.
"""
import errno
import json

import pytest

from mmlab.linux import scenario as sc
from mmlab.linux.scenario import Vma, Step, Report, P, U64, MiB
from mmlab.uapi import (PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED,
                        MAP_FIXED_NOREPLACE, MADV_DONTNEED)
from mmlab.errors import SegmentationFault, SEGV_ACCERR

RW = PROT_READ | PROT_WRITE
FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
HOST = sc.host_skip_reason()
needs_host = pytest.mark.skipif(HOST is not None, reason=f"host scenarios: {HOST}")


def mm(off, length, prot=RW, flags=FIXED, **kw):
    return {"op": "mmap", "off": off, "len": length, "prot": prot, "flags": flags, **kw}


# -- the scenario format ------------------------------------------------------------

def test_normalise_fills_defaults():
    s = sc.normalise({"ops": []})
    assert (s["base"], s["size"], s["reserve"], s["files"]) == ("mmap", 32 * MiB, True, {})


def test_normalise_brk_window_is_not_reserved_by_default():
    assert sc.normalise({"base": "brk", "ops": []})["reserve"] is False


@pytest.mark.parametrize("bad, words", [
    ({"ops": [{"op": "mremap"}]}, "unknown op"),                               # an op the runner lacks
    ({"base": "stack", "ops": []}, "base must be"),                            # no such window
    ({"base": "brk", "reserve": True, "ops": []}, "cannot reserve"),           # the heap grows into it
    ({"size": 3 * MiB, "ops": []}, "multiple of 2 MiB"),                       # windows are 2 MiB aligned
    ({"ops": [mm(0, P, file="nope")]}, "not in the scenario's files"),         # undeclared file
    ({"files": {"badfd": {"size": P}}, "ops": []}, "identifier other than"),   # reserved name
    ({"ops": [mm(40 * MiB, P)]}, "outside the window"),                        # MAP_FIXED past the margin
    ({"ops": [{"op": "mprotect", "off": 0, "len": 1 << 40, "prot": 1}]}, "outside the window"),  # to the stack
    ({"ops": [{"op": "madvise", "off": 0, "len": 1 << 40, "advice": 4}]}, "outside the window"),
    ({"ops": [{"op": "munmap", "off": 0, "len": 1 << 40}]}, "outside the window"),  # would unmap the stack
    ({"base": "brk", "ops": [{"op": "touch", "off": -P, "len": P}]}, "outside the window"),  # the data segment
    ({"base": "brk", "ops": [mm(-P, P)]}, "outside the window"),               # over the program's bss
    ({"ops": [mm(None, P)]}, "MAP_FIXED at address 0"),                        # not window-relative
])
def test_normalise_rejects(bad, words):
    with pytest.raises(ValueError, match=words):
        sc.normalise(bad)


@pytest.mark.parametrize("op", [
    mm(0, U64 - P),                                                   # PAGE_ALIGN overflows: ENOMEM first
    mm(0, 1 << 62),                                                   # longer than TASK_SIZE: ENOMEM first
    mm(1 << 45, P, flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE),   # never replaces anything
    mm(1 << 45, P, flags=MAP_PRIVATE | MAP_ANONYMOUS),                # only a hint
    {"op": "munmap", "off": 0, "len": 1 << 62},                       # > TASK_SIZE: EINVAL first
    {"op": "mprotect", "off": 0, "len": U64 - P, "prot": 1},          # wraps: ENOMEM first
    {"op": "madvise", "off": 1, "len": 1 << 40, "advice": 4},         # unaligned: EINVAL first
    {"op": "mlock", "off": 0, "len": U64 - P},                        # wraps: EINVAL first
])
def test_normalise_allows_absurd_arguments_the_kernel_refuses_first(op):
    assert sc.normalise({"ops": [op]})["ops"] == [op]


@pytest.mark.parametrize("op, text", [
    (mm(0x2000, P), "mmap(+0x2000, 0x1000, rw-, PRIVATE|FIXED|ANON)"),
    (mm(None, P, PROT_READ, MAP_SHARED, file="f", pgoff=2), "mmap(NULL, 0x1000, r--, SHARED, f, 0x2000)"),
    (mm(0, P, flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE),
     "mmap(+0x0, 0x1000, rw-, PRIVATE|FIXED_NOREPLACE|ANON)"),
    (mm(0, P, flags=MAP_ANONYMOUS | 0x80000000), "mmap(+0x0, 0x1000, rw-, type=0x0|ANON|0x80000000)"),
    ({"op": "munmap", "off": P, "len": 2 * P}, "munmap(+0x1000, 0x2000)"),
    ({"op": "mprotect", "off": 0, "len": P, "prot": PROT_READ | 0x10}, "mprotect(+0x0, 0x1000, r--+0x10)"),
    ({"op": "madvise", "off": 0, "len": P, "advice": MADV_DONTNEED}, "madvise(+0x0, 0x1000, MADV_DONTNEED)"),
    ({"op": "madvise", "off": 0, "len": P, "advice": 999}, "madvise(+0x0, 0x1000, 999)"),
    ({"op": "touch", "off": 0, "len": P, "write": True}, "touch(+0x0, 0x1000, write)"),
    ({"op": "brk", "delta": -P}, "brk(brk-0x1000)"),
    ({"op": "brk", "to": 100}, "brk(base+0x64)"),
    ({"op": "brk"}, "brk(0)"),
])
def test_describe(op, text):
    assert sc.describe(op) == text


def test_shape_counts_pages_and_names_files():
    vmas = [Vma(0, 2 * P, "rw-p", None, 0, ""), Vma(2 * P, 3 * P, "r--s", "f", 5, ""),
            Vma(4 * P, 5 * P, "rw-p", "[heap]", 0, "")]
    assert sc.shape(vmas) == "0-2 rw-p, 2-3 r--s f@5, 4-5 rw-p [heap]"


def test_named_scenarios_are_valid_and_state_a_rule():
    for name, s in sc.NAMED.items():
        sc.normalise(s)
        assert s["rule"] and s["kernel"] and s["expect"], name
        assert all(0 <= i < len(s["ops"]) for i in s["expect"]), name


# -- the host side's parsing, on canned driver output ---------------------------------

BASE = 0x7f0000000000

CANNED = f"""B {BASE:x} 55aa00000000 55aa00000000
V {BASE:x}-{BASE + 0x2000000:x} ---p 00000000 00:00 0 
F  mr mw me nr 
.
R 3
R {BASE + 0x1000:x}
V {BASE:x}-{BASE + 0x1000:x} ---p 00000000 00:00 0 
F  mr mw me nr 
V {BASE + 0x1000:x}-{BASE + 0x3000:x} rw-s 00002000 fe:00 4242                       /var/tmp/x/0-f
F  rd wr sh mr mw me ms 
V {BASE + 0x3000:x}-{BASE + 0x4000:x} rw-s 00000000 00:01 77                         /dev/zero (deleted)
F  rd wr sh mr mw me ms 
V {BASE + 0x4000:x}-{BASE + 0x5000:x} rw-s 00001000 00:01 78                         /dev/zero (deleted)
F  rd wr sh mr mw me ms 
.
R 7f1000000000
.
R -{errno.ENOMEM}
.
R SEGV 2 {BASE + 0x1008:x}
.
R BUS 2 {BASE + 0x3000:x}
.
R {BASE + 0x10:x}
.
R 0
.
D
""".splitlines()

CANNED_SCENARIO = sc.normalise({"files": {"f": {"size": 4 * P}}, "ops": [
    mm(P, 2 * P, flags=MAP_SHARED | MAP_FIXED, file="f", pgoff=2),   # a file mapping inside the window
    mm(None, P, flags=MAP_PRIVATE | MAP_ANONYMOUS),                   # lands below mmap_base
    {"op": "mprotect", "off": 0, "len": 3 * P, "prot": 1},           # fails
    {"op": "touch", "off": 0x1008, "len": 1, "write": True},          # write to a read-only page
    {"op": "touch", "off": 0x3000, "len": 1},                         # past the end of a file
    {"op": "brk", "to": 0x10},                                        # a break relative to the base
    {"op": "touch", "off": 0, "len": P},                              # no fault
]})


def canned_report():
    return sc._HostParser(CANNED_SCENARIO, iter(CANNED), {(0xfe, 0, 4242): "f"}).report()


def test_parser_makes_addresses_relative_to_the_window():
    rep = canned_report()
    assert rep.base == BASE
    assert rep.setup == [Vma(0, 0x2000000, "---p", None, 0, "mr mw me nr")]
    assert rep.steps[0].ret == P


def test_parser_names_scenario_files_and_numbers_shared_anonymous_memory():
    vmas = canned_report().steps[0].vmas
    assert [(v.file, v.pgoff) for v in vmas] == [(None, 0), ("f", 2), ("shm#1", 0), ("shm#2", 1)]
    assert vmas[1].flags == "rd wr sh mr mw me ms"


@pytest.mark.parametrize("step, ret", [
    (1, "outside"),                 # an mmap placed outside the window
    (2, "ENOMEM"),                  # -errno becomes the errno's name
    (3, "SEGV_ACCERR@+0x1008"),     # si_code and si_addr of the fault
    (4, "SIGBUS@+0x3000"),          # BUS_ADRERR
    (5, 0x10),                      # brk returns the break, relative
    (6, "ok"),                      # a touch without a signal
])
def test_parser_return_values(step, ret):
    assert canned_report().steps[step].ret == ret


def test_parser_skips_a_scenario_whose_window_could_not_be_placed():
    lines = iter(["B fail", "D", "B next"])
    assert sc._HostParser(CANNED_SCENARIO, lines, {}).report() is None
    assert next(lines) == "B next"          # the next scenario's output is left in place


# -- compare() and the side-by-side table ------------------------------------------

def report(side, steps, setup=(), scenario=None):
    scenario = scenario or sc.normalise({"ops": [mm(0, P)] * len(steps)})
    return Report(side, scenario, 0, list(setup), [Step(*s) for s in steps])


A = Vma(0, P, "rw-p", None, 0, "rd wr mr mw me ac")
B = Vma(P, 2 * P, "rw-p", None, 0, "rd wr mr mw me ac")
AB = Vma(0, 2 * P, "rw-p", None, 0, "rd wr mr mw me ac")


def test_compare_equal_reports():
    assert sc.compare(report("host", [(0, [A])]), report("model", [(0, [A])])) == []


def test_compare_return_value():
    diffs = sc.compare(report("host", [(0, [A]), (P, [AB])]), report("model", [(0, [A]), ("ENOMEM", [AB])]))
    assert [(d.step, d.field, d.host, d.model) for d in diffs] == [(1, "ret", P, "ENOMEM")]
    assert str(diffs[0]) == "op 1 mmap(+0x0, 0x1000, rw-, PRIVATE|FIXED|ANON): ret: host +0x1000, model ENOMEM"


def test_compare_vmas_says_which_are_only_on_one_side():
    diffs = sc.compare(report("host", [(P, [AB])]), report("model", [(P, [A, B])]))
    assert [(d.step, d.field) for d in diffs] == [(0, "vmas")]
    assert str(diffs[0]).endswith("VMAs differ; host only: +0x0-+0x2000 rw-p [rd wr mr mw me ac]; "
                                  "model only: +0x0-+0x1000 rw-p [rd wr mr mw me ac], "
                                  "+0x1000-+0x2000 rw-p [rd wr mr mw me ac]")


def test_compare_setup():
    diffs = sc.compare(report("host", [], setup=[A]), report("model", [], setup=[]))
    assert [(d.step, str(d).split(":")[0]) for d in diffs] == [(-1, "setup")]


def test_compare_can_ignore_vm_flags():
    other = A._replace(flags="rd wr mr mw me")
    h, m = report("host", [(0, [A])]), report("model", [(0, [other])])
    assert len(sc.compare(h, m)) == 1
    assert sc.compare(h, m, fields=("ret", "vmas_noflags")) == []


def test_compare_does_not_count_the_return_of_a_skipped_op():
    h = report("host", [("ok", [A])])
    m = report("model", [(None, [A], "model has no p.touch yet")])
    assert sc.compare(h, m) == []


def test_side_by_side_marks_differences_and_skips():
    s = sc.normalise({"name": "demo", "reserve": False,
                      "ops": [mm(0, P), {"op": "touch", "off": 0, "len": P}, mm(P, P)]})
    h = report("host", [(0, [A]), ("ok", [A]), (P, [AB])], scenario=s)
    m = report("model", [(0, [A]), (None, [A], "model has no p.touch yet"), (P, [A, B])], scenario=s)
    text = sc.side_by_side(s, host=h, model=m)
    lines = text.splitlines()
    assert lines[0] == "demo: mmap window of 32 MiB; offsets relative to it"
    assert "touch(+0x0, 0x1000, read)   (model: model has no p.touch yet)" in text
    assert any(line.startswith("2     mmap(+0x1000") and line.endswith("<-- differs") for line in lines)
    assert lines[-1] == "1 difference"


def test_side_by_side_shows_one_side_when_the_other_cannot_run():
    s = sc.normalise({"reserve": False, "ops": [mm(0, P)]})
    text = sc.side_by_side(s, host="no C compiler", model=report("model", [(0, [A])], scenario=s))
    assert text.splitlines()[1].split() == ["(cannot", "run:", "no", "C", "compiler)", "model"]
    assert text.splitlines()[-1].split() == ["+0x0-+0x1000", "rw-p", "[rd", "wr", "mr", "mw", "me", "ac]"]
    assert "difference" not in text and "differs" not in text


# -- the model side's adapter, on a stand-in process -------------------------------

class FakeVma:
    def __init__(self, start, end, flags, perms, file=None, pgoff=0):
        self.vm_start, self.vm_end, self.vm_flags, self.perms = start, end, flags, perms
        self.vm_file, self.vm_pgoff = file, pgoff


class FakeFile:
    def __init__(self, path, inode):
        self.path, self.inode = path, inode


class FakeProcess:
    """Just enough of a process: a stack, one library, and mmap that records what it is asked."""

    STACK, LIB = 0x7ffc00000000, 0x7f0000001000

    def __init__(self):
        self.vmas = [FakeVma(self.LIB - P, self.LIB, 0x75, "r-xp"),
                     FakeVma(self.STACK, self.STACK + 33 * P, 0x173, "rw-p")]
        self.opened = {}

    def open(self, path, flags):
        self.opened[path] = flags
        return 3

    def brk(self, addr):
        return 0x555555559000

    def maps(self):
        return ""

    def mmap(self, addr, length, prot, flags, fd=-1, offset=0):
        if length == 0:
            raise OSError(errno.EINVAL, "zero length")
        file = FakeFile("/dev/zero (deleted)", 99) if flags & MAP_SHARED and fd == -1 else None
        if fd == 3:
            file = FakeFile("/var/tmp/mmlab-scenario/f", 7)
        self.vmas.append(FakeVma(addr, addr + length, 0x73, "rw-s" if flags & MAP_SHARED else "rw-p",
                                 file, offset // P))
        self.vmas.sort(key=lambda v: v.vm_start)
        return addr

    def mprotect(self, addr, length, prot):
        raise ValueError("mprotect: not in this fake")

    def touch(self, addr, length, write=False):
        raise SegmentationFault(addr, SEGV_ACCERR)


class FakeMachine:
    fs = type("FS", (), {"create": staticmethod(lambda path, size, backing: None)})()

    def check(self):
        pass


def fake_spawn(seed):
    return FakeMachine(), FakeProcess()


FAKE_SCENARIO = {"files": {"f": {"size": 4 * P, "mode": "ro"}}, "ops": [
    mm(0, 2 * P),                                               # 0: anonymous
    mm(2 * P, P, flags=MAP_SHARED | MAP_FIXED, file="f", pgoff=3),  # 1: the scenario's file
    mm(3 * P, P, flags=MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED),   # 2: shared anonymous
    mm(4 * P, 0),                                               # 3: an OSError
    {"op": "mprotect", "off": 0, "len": P, "prot": 1},           # 4: a model exception
    {"op": "touch", "off": 8, "len": 1, "write": True},          # 5: a segmentation fault
    {"op": "munmap", "off": 0, "len": P},                        # 6: p.munmap missing
]}


def test_model_window_goes_above_the_highest_mapping_below_the_stack():
    rep = sc.run_model(FAKE_SCENARIO, spawn=fake_spawn)
    assert rep.base == (FakeProcess.LIB + 8 * MiB + 2 * MiB - 1) // (2 * MiB) * (2 * MiB)
    assert rep.setup == [Vma(0, 32 * MiB, "rw-p", None, 0, "rd wr mr mw me")]   # the reservation


def test_model_adapter_results():
    steps = sc.run_model(FAKE_SCENARIO, spawn=fake_spawn).steps
    assert [s.ret for s in steps] == [0, 2 * P, 3 * P, "EINVAL", "ValueError: mprotect: not in this fake",
                                      "SEGV_ACCERR@+0x8", None]
    assert steps[6].skipped == "model has no p.munmap yet"


def test_model_adapter_labels_files():
    vmas = sc.run_model(FAKE_SCENARIO, spawn=fake_spawn).steps[2].vmas
    assert [(v.file, v.pgoff) for v in vmas if v.start >= 2 * P and v.end <= 4 * P] == [("f", 3), ("shm#1", 0)]


def test_model_runs_as_the_host_user():
    who = sc.host_identity()
    assert who["uid"] in (0, 1000) and who["rlimits"][8][0] > 0      # RLIMIT_MEMLOCK copied


def test_model_skip_reason_is_text_or_none():
    reason = sc.model_skip_reason()
    assert reason is None or "not built yet" in reason


# -- random scenarios -------------------------------------------------------------

def test_random_scenarios_are_deterministic():
    assert sc.random_scenario(5) == sc.random_scenario(5)
    assert sc.random_scenario(5) != sc.random_scenario(6)


def test_random_scenarios_are_valid_json_and_within_bounds():
    for seed in range(400):
        s = sc.random_scenario(seed)
        assert json.loads(json.dumps(s)) == s
        assert 5 <= len(s["ops"]) <= 30
        sc.normalise(s)                                 # no op may reach the driver's own memory
        assert {op["op"] for op in s["ops"]} <= sc.BASIC_OPS
        assert s["base"] == "brk" or not any(op["op"] == "brk" for op in s["ops"])


def test_random_scenarios_use_optional_ops_only_when_asked():
    ops = {op["op"] for seed in range(200) for op in sc.random_scenario(seed)["ops"]}
    assert ops == set(sc.BASIC_OPS)
    more = sc.BASIC_OPS | {"touch", "mlock", "munlock"}
    ops = {op["op"] for seed in range(200) for op in sc.random_scenario(seed, more)["ops"]}
    assert ops == set(more)


def test_random_scenarios_cover_the_interesting_cases():
    mmaps = [op for seed in range(300) for op in sc.random_scenario(seed)["ops"] if op["op"] == "mmap"]
    kinds = {
        "fixed": sum(op["flags"] & MAP_FIXED and not op["flags"] & MAP_FIXED_NOREPLACE for op in mmaps),
        "noreplace": sum(bool(op["flags"] & MAP_FIXED_NOREPLACE) for op in mmaps),
        "hint": sum(op["off"] is not None and not op["flags"] & (MAP_FIXED | MAP_FIXED_NOREPLACE) for op in mmaps),
        "null": sum(op["off"] is None for op in mmaps),
        "file": sum(op.get("file") not in (None, "badfd") for op in mmaps),
        "shared": sum(op["flags"] & 0xf == MAP_SHARED for op in mmaps),
        "2MiB": sum(op["len"] % (2 * MiB) == 0 and op["len"] > 0 for op in mmaps),
        "zero length": sum(op["len"] == 0 for op in mmaps),
        "bad fd": sum(op.get("file") == "badfd" for op in mmaps),
    }
    assert min(kinds.values()) >= 20, kinds


# -- the host driver ------------------------------------------------------------------

@needs_host
def test_driver_is_built_once():
    path = sc.build_driver()
    assert sc.build_driver() == path


@needs_host
def test_batching_leaks_nothing_between_scenarios():
    scenarios = [sc.random_scenario(seed) for seed in range(20)] + list(sc.NAMED.values())
    batch = sc.run_host(scenarios)
    for s, together in zip(scenarios[::4], batch[::4]):
        alone = sc.run_host([s])[0]
        assert alone.setup == together.setup, s["name"]
        assert alone.steps == together.steps, s["name"]


@needs_host
def test_host_is_deterministic():
    scenarios = [sc.random_scenario(seed, sc.BASIC_OPS | {"touch", "mlock", "munlock"}) for seed in range(60)]
    first, second = sc.run_host(scenarios), sc.run_host(scenarios)
    assert [r.steps for r in first] == [r.steps for r in second]


@needs_host
def test_host_window_is_above_mmap_base():
    s = {"reserve": False, "ops": [mm(None, P, flags=MAP_PRIVATE | MAP_ANONYMOUS),
                                   mm(4 * P, P, flags=MAP_PRIVATE | MAP_ANONYMOUS)]}
    rep = sc.run_host([s])[0]
    assert [st.ret for st in rep.steps] == ["outside", 4 * P]      # NULL lands below; a free hint is taken
    assert rep.base % (2 * MiB) == 0


@needs_host
def test_host_brk_window_starts_at_start_brk():
    rep = sc.run_host([{"base": "brk", "ops": [{"op": "brk"}]}])[0]
    assert (rep.info["start_brk"], rep.info["brk"], rep.steps[0].ret, rep.setup) == (0, 0, 0, [])


@needs_host
def test_host_files_are_on_the_filesystems_asked_for():
    rep = sc.run_host([{"files": {"d": {"size": P}, "t": {"size": P, "backing": "tmpfs"}}, "ops": [
        mm(0, P, flags=MAP_SHARED | MAP_FIXED, file="d"), mm(P, P, flags=MAP_SHARED | MAP_FIXED, file="t")]}])[0]
    assert rep.info["fs"]["tmpfs"] == "tmpfs" and rep.info["fs"]["disk"] not in ("tmpfs", "ramfs")
    assert [v.file for v in rep.steps[1].vmas][:2] == ["d", "t"]


@needs_host
def test_host_touch_reports_the_signal_and_where():
    rep = sc.run_host([{"reserve": True, "files": {"f": {"size": 100}}, "ops": [
        mm(0, 2 * P),
        {"op": "touch", "off": 0, "len": 2 * P, "write": True},      # ok: both pages written
        {"op": "touch", "off": P, "len": 2 * P},                      # reaches the PROT_NONE reservation
        {"op": "munmap", "off": 4 * P, "len": P},
        {"op": "touch", "off": 4 * P + 8, "len": 1},                  # a hole
        mm(6 * P, 2 * P, PROT_READ, MAP_SHARED | MAP_FIXED, file="f"),
        {"op": "touch", "off": 6 * P, "len": 2 * P},                  # the page after EOF
    ]}])[0]
    assert [st.ret for st in rep.steps][1:] == ["ok", "SEGV_ACCERR@+0x2000", 0, "SEGV_MAPERR@+0x4008",
                                                6 * P, "SIGBUS@+0x7000"]


def test_reports_are_plain_data():
    rep = sc.run_model(FAKE_SCENARIO, spawn=fake_spawn)
    data = rep.to_json()
    assert json.loads(json.dumps(data)) == data
    assert [0, 2 * P, "rw-p"] in [v[:3] for v in data["steps"][0]["vmas"]]     # op 0's mapping
    assert data["steps"][3]["ret"] == "EINVAL"
