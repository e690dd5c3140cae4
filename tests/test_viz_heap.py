"""mmlab.viz.heap and HeapStepper: pictures of glibc's heap, checked against the model.

Every text and figure is read back and compared with what the model's
malloc says through its own views (chunks, tcache_chunks, bin_chunks,
mallinfo2, mp_) or with numbers worked out by hand from glibc's rules.
The trace runner is compared with mmlab.libc.replay, and, where this
machine has glibc 2.36 and a compiler, with the real glibc.  The stepper
is driven by calling its button handlers.
"""
import matplotlib
matplotlib.use("Agg")
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from matplotlib.figure import Figure

from mmlab import Machine
from mmlab.libc import GlibcAbort
from mmlab.libc.replay import replay, run_host, host_skip_reason
from mmlab.uapi import M_MMAP_THRESHOLD
from mmlab.viz import heap as H
from mmlab.widgets import HeapStepper

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def m():
    return Machine(ram="256MiB", cpus=2, seed=0)


def run(m, trace):
    """A fresh process of m, the trace run on it step by step."""
    p = m.spawn("a.out")
    return p, list(H.replay_steps(p.libc, trace))


def assert_labelled(ax):
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


LIFO = """
a = malloc(24)
b = malloc(24)
c = malloc(24)
free(a)
free(b)
d = malloc(24)
"""


# -- snapshots and text ------------------------------------------------------------------------

def test_no_heap_before_the_first_malloc(m):
    libc = m.spawn("a.out").libc
    view = H.snapshot(libc)
    assert (view.base, view.brk, view.top, view.chunks, view.heap_size) == (0, None, None, (), 0)
    assert H.heap_text(libc) == "(no heap yet)"
    assert H.bins_text(libc) == "(every list is empty)"


def test_snapshot_is_frozen(m):
    libc = m.spawn("a.out").libc
    a = libc.malloc(100)
    view = H.snapshot(libc, names={a: "a"})
    libc.free(a)                                                   # the view keeps the old state
    assert view.state(a - 16) == "inuse"
    assert H.snapshot(libc).state(a - 16) == "tcache"
    assert H.snapshot(view) is view                                # a view is its own snapshot


def test_snapshot_leaves_no_trace(m):
    libc = m.spawn("a.out").libc
    libc.malloc(100)
    with m.trace() as t:
        H.heap_text(libc)                                          # reading the heap calls nothing traced
    assert t.events == []


def test_snapshot_refuses_other_things(m):
    with pytest.raises(TypeError):
        H.snapshot(m)


def test_heap_text_after_one_malloc(m):
    libc = m.spawn("a.out").libc
    a = libc.malloc(100)
    assert H.heap_text(libc, names={a: "a"}) == "\n".join([
        "   offset     size  state",
        "     +0x0    0x290  inuse     tcache_perthread_struct",   # tcache_init's chunk comes first
        "   +0x290     0x70  inuse     a",                          # request2size(100) = 0x70
        "   +0x300  0x20d00  top",                                  # the rest of 0x21000
        " +0x21000           the break"])


def test_tcache_is_lifo_in_text(m):
    p, steps = run(m, LIFO)
    assert H.bins_text(steps[4].view) == "tcache[0] (chunks of 0x20): +0x2b0 (0x20) -> +0x290 (0x20)"
    assert steps[5].result == steps[1].result                      # d is b: last freed, first reused
    assert steps[4].view.lists[steps[1].result - 16] == ("tcache", 0, 0)
    assert steps[4].view.lists[steps[0].result - 16] == ("tcache", 0, 1)


def test_lists_agree_with_the_model_views(m):
    p, steps = run(m, [f"t{k} = malloc(40)" for k in range(9)] + ["g = malloc(24)", "s = malloc(2000)",
                                                                    "h = malloc(24)"]
                   + [f"free(t{k})" for k in range(9)] + ["free(s)"])
    view, libc = steps[-1].view, p.libc
    assert [c for c, w in view.lists.items() if w[0] == "tcache"] == [
        c for lst in libc.tcache_chunks().values() for c in lst]
    assert sorted(c for c, w in view.lists.items() if w[0] == "fastbin") == sorted(libc.fastbin_chunks()[1])
    assert [c for c, w in view.lists.items() if w[0] == "unsorted"] == libc.bin_chunks()[1]
    for c in view.chunks:                                          # each chunk's state matches its list
        kind = view.lists.get(c.addr, (c.state,))[0]
        assert c.state == kind or (c.state == "inuse" and kind == "inuse")


@pytest.mark.parametrize("where, short, long", [
    (("tcache", 0, 1), "t0#1", "tcache[0] #1"),                    # second from the head of tcache bin 0
    (("fastbin", 3, 0), "f3#0", "fastbin[3] #0"),
    (("unsorted", 1, 2), "u#2", "unsorted #2"),                    # one unsorted bin: no index
    (("smallbin", 31, 0), "s31#0", "small bin 31 #0"),
    (("largebin", 66, 0), "l66#0", "large bin 66 #0"),
])
def test_list_label(where, short, long):
    assert H.list_label(where, short=True) == short
    assert H.list_label(where) == long


def test_heap_text_after_brk_fails(m):
    # A mapping in the heap's way: the rest of the heap is an mmapped stand-in, printed at its address.
    from mmlab.uapi import PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE
    p = m.spawn("a.out")
    libc = p.libc
    libc.malloc(24)
    p.mmap(libc.mp.sbrk_base + 0x40000, 4096, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE)
    libc.malloc(100_000)
    c = libc.malloc(100_000)
    lines = H.heap_text(libc).splitlines()
    k = lines.index(" +0x21000           the break")
    assert [line.split()[2] for line in lines[k - 2:k]] == ["fencepost", "fencepost"]
    assert lines[k + 1].split()[:3] == [f"{c - 16:#x}", "0x186b0", "inuse"]
    assert lines[-1].split()[2] == "top"


def test_mmapped_chunks_in_text(m):
    p, steps = run(m, "a = malloc(24)\nbig = malloc(200000)")
    assert H.heap_text(steps[-1].view).splitlines()[-1] == "     mmap  0x31000  mmapped   big"
    assert steps[-1].view.mapping_of(steps[-1].result) == (steps[-1].result - 16, 0x31000)


# -- traces: parsing, running, the kernel's part ------------------------------------------------------

@pytest.mark.parametrize("line, call", [
    ("p = malloc(24)", ("malloc", "p", (24,))),                    # C
    ("  q=calloc(10, 0x10);", ("calloc", "q", (10, 16))),          # spaces, hex, a semicolon
    ("p = realloc(p, 100)", ("realloc", "p", (100,))),
    ("p = memalign(64, 100)", ("memalign", "p", (64, 100))),
    ("free(p)", ("free", "p", ())),                                # C's free keeps the dangling value
    ("malloc_trim(4096)", ("malloc_trim", None, (4096,))),
    ("mallopt(M_MMAP_THRESHOLD, 4096)", ("mallopt", None, (M_MMAP_THRESHOLD, 4096))),
    ("m 3 24", ("malloc", "p3", (24,))),                           # the driver's language
    ("f 3", ("free", "p3", (1,))),                                 # the driver's f clears the slot
    ("c 1 10 10", ("calloc", "p1", (10, 10))),
    ("o -3 4096", ("mallopt", None, (-3, 4096))),
    ("a = malloc(1_000)", ("malloc", "a", (1000,))),               # a pointer named like the driver's 'a'
])
def test_parse_call(line, call):
    got = H.parse_call(line)
    assert (got.op, got.name, got.args) == call


@pytest.mark.parametrize("line", ["", "   ", "# a comment"])
def test_parse_call_skips_blank_lines(line):
    assert H.parse_call(line) is None


@pytest.mark.parametrize("line", [
    "p = mallok(3)",                    # no such function
    "p = malloc(x)",                    # not a number
    "p = realloc(q, 10)",               # realloc must assign to its own pointer
    "free(p, q)",                       # two arguments
    "m 1",                              # the driver's malloc takes two numbers
    "x = malloc_trim(0)",               # malloc_trim returns no pointer
])
def test_parse_call_errors(line):
    with pytest.raises(ValueError):
        H.parse_call(line)


def test_to_driver():
    assert H.to_driver("a = malloc(3)\nfree(a)\nb = calloc(2, 8)\np7 = malloc(5)\nf 7\nmalloc_trim(0)") == [
        "m 0 3", "F 0", "c 1 2 8", "m 7 5", "f 7", "t 0"]


def test_replay_steps_agree_with_the_driver_language(m):
    # The same trace through replay_steps and through mmlab.libc.replay: the same pointers and breaks.
    trace = LIFO + "big = malloc(300000)\nx = calloc(10, 100)\nx = realloc(x, 5000)\nfree(big)\nfree(x)"
    p, steps = run(m, trace)
    q = m.spawn("b.out")
    report = replay(q.libc, H.to_driver(trace))
    base = p.libc.mp.sbrk_base
    for step, line in zip(steps, report[1:]):
        if step.call.op != "free":
            where = line.split()[2]
            if where.startswith("heap+"):
                assert step.result - base == int(where[5:], 16)
            else:
                assert where == "mmap+0x10" and step.view.mapping_of(step.result)
    m.check()


def test_double_free_in_c_is_caught(m):
    p = m.spawn("a.out")
    with pytest.raises(GlibcAbort, match="double free detected in tcache 2"):
        list(H.replay_steps(p.libc, "x = malloc(3)\nfree(x)\nfree(x)"))
    m.check()                                                      # the heap is whole after the abort


def test_driver_free_clears_the_slot(m):
    p, steps = run(m, "m 0 3\nf 0\nf 0")                           # free(NULL) the second time
    assert [s.result for s in steps[1:]] == [None, None]


def test_kernel_calls_of_each_path(m):
    p, steps = run(m, "a = malloc(24)\nb = malloc(24)\nbig = malloc(200000)\nfree(big)\nmalloc_trim(0)")
    kinds = [[k for k, _ in H.kernel_calls(s.trace)] for s in steps]
    assert kinds == [["brk", "brk"],                               # brk(0) asks; then the heap is made
                     [],                                           # split top: no system call
                     ["mmap"],                                     # above the threshold
                     ["munmap"],                                   # an mmapped chunk goes back at once
                     ["brk"]]                                      # malloc_trim(0) lowers the break
    assert H.kernel_calls(steps[0].trace)[0][1] == f"__do_sys_brk(brk=0) = {p.libc.mp.sbrk_base:#x}"


def test_call_path_cuts_the_kernel(m):
    p, steps = run(m, "a = malloc(24)")
    shallow, deep = H.call_path(steps[0].trace), H.call_path(steps[0].trace, kernel_depth=1)
    assert "__do_sys_brk(brk=0)" in shallow and "do_brk_flags" not in shallow
    assert "do_brk_flags(vma=None" in deep                         # one level into the kernel
    assert "mm=" not in deep and "av=" not in deep                 # the arguments every call repeats
    assert shallow.splitlines()[0] == f"__libc_malloc(nbytes=24) = {steps[0].result:#x}"
    assert "· " not in H.call_path(steps[0].trace, notes=False)


def test_result_text(m):
    p, steps = run(m, "a = malloc(24)\nbig = malloc(200000)\nfree(a)\nn = malloc(-1)\nmallopt(M_MMAP_THRESHOLD, 4096)")
    texts = [H.result_text(s) for s in steps]
    assert texts[0] == f"{steps[0].result:#x} (heap +0x2a0)"
    assert texts[1] == f"{steps[1].result:#x} (an mmapped chunk)"
    assert texts[2:] == ["done", "NULL", "1"]


# -- usage ---------------------------------------------------------------------------------------------

def test_usage_adds_up_to_the_arena(m):
    p, steps = run(m, [f"t{k} = malloc(40)" for k in range(9)] + ["s = malloc(2000)", "g = malloc(24)"]
                   + [f"free(t{k})" for k in range(9)] + ["free(s)", "big = malloc(400000)"])
    before, u = H.usage(steps[-2].view), H.usage(steps[-1].view)
    assert u["in_use"] + u["cached"] + u["binned"] + u["top"] + u["fencepost"] == p.libc.mallinfo2().arena
    assert before["cached"] == 9 * 0x30                            # seven in the tcache, two in a fastbin
    assert before["binned"] == 0x7e0                               # s, in the unsorted bin
    # A large request consolidates the fastbins first: t7 and t8 merge with s, just above them.
    assert (u["cached"], u["binned"]) == (7 * 0x30, 2 * 0x30 + 0x7e0)
    assert u["mmapped"] == p.libc.mp.mmapped_mem == 0x62000
    assert u["heap"] == p.libc.curbrk - p.libc.mp.sbrk_base


def test_usage_history(m):
    p, steps = run(m, "a = malloc(100)\nbig = malloc(200000)\nb = calloc(10, 30)\nfree(big)\nfree(a)")
    rows = H.usage_history(steps)
    assert [r["where"] for r in rows] == ["heap", "mmap", "heap", None, None]
    assert [r["request"] for r in rows] == [100, 200000, 300, None, None]
    assert [r["requested"] for r in rows] == [100, 100, 400, 400, 300]   # heap allocations only
    assert [r["mmap_threshold"] for r in rows] == [0x20000, 0x20000, 0x20000, 0x31000, 0x31000]
    assert rows[3]["trim_threshold"] == 2 * 0x31000                # the dynamic rule


# -- figures ---------------------------------------------------------------------------------------------

def chunk_patches(fig):
    return [pt for pt in fig.axes[0].patches if (pt.get_gid() or "").startswith("chunk ")]


def test_heap_strip_draws_every_chunk(m):
    p, steps = run(m, LIFO + "big = malloc(200000)")
    view = steps[-1].view
    fig = H.heap_strip(view, highlight=steps[-1].result)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert_labelled(ax)
    patches = chunk_patches(fig)
    assert [pt.get_gid() for pt in patches] == [f"chunk {c.addr:#x} {c.state}" for c in view.chunks] + [
        f"chunk {steps[-1].result - 16:#x} mmapped"]
    for pt in patches:
        state = pt.get_gid().split()[-1]
        assert matplotlib.colors.same_color(pt.get_facecolor(), H.STATE_COLORS[state])
    outline = [pt for pt in ax.patches if pt.get_gid() == "highlight"]
    assert len(outline) == 1 and outline[0].get_x() == patches[-1].get_x()     # big is outlined
    brk = [ln for ln in ax.lines if ln.get_gid() == "break"][0]
    top = patches[len(view.chunks) - 1]
    assert brk.get_xdata()[0] == top.get_x() + top.get_width()                # the break ends top
    labels = {t.get_text() for lg in fig.legends for t in lg.get_texts()}
    assert labels == {H.STATE_LABELS[s] for s in ("inuse", "tcache", "top", "mmapped")}
    assert "t0#0" in [t.get_text() for t in ax.texts]              # d's old neighbour a sits in tcache bin 0


def test_heap_strip_scales(m):
    p, steps = run(m, "a = malloc(24)\nb = malloc(1000)")
    view = steps[-1].view
    widths = [pt.get_width() for pt in chunk_patches(H.heap_strip(view, scale="bytes"))]
    assert widths == [float(c.size) for c in view.chunks]          # in proportion
    widths = [pt.get_width() for pt in chunk_patches(H.heap_strip(view, scale="log"))]
    assert widths == [1.0 + c.size.bit_length() - 5 for c in view.chunks]
    with pytest.raises(ValueError):
        H.heap_strip(view, scale="linear")


def test_heap_strip_into_given_axes(m):
    import matplotlib.pyplot as plt
    p, steps = run(m, LIFO)
    fig, ax = plt.subplots()
    assert H.heap_strip(steps[-1].view, ax=ax, title="mine") is fig
    assert ax.get_title() == "mine"
    plt.close(fig)


def test_fragmentation_figure_draws_the_history(m):
    p, steps = run(m, [f"p{k} = malloc(2000)" for k in range(50)] + [f"free(p{k})" for k in range(50)])
    history = H.usage_history(steps)
    fig = H.fragmentation(history)
    ax = fig.axes[0]
    assert_labelled(ax)
    heap_line = [ln for ln in ax.lines if ln.get_label().startswith("heap size")][0]
    assert list(heap_line.get_ydata()) == [r["heap"] / 1024 for r in history] + [history[-1]["heap"] / 1024]
    with pytest.raises(ValueError):
        H.fragmentation([])


def test_thresholds_figure(m):
    p, steps = run(m, "big = malloc(200000)\nfree(big)\nbig = malloc(200000)")
    fig = H.thresholds(H.usage_history(steps))
    ax = fig.axes[0]
    assert_labelled(ax)
    line = [ln for ln in ax.lines if ln.get_label() == "mmap_threshold"][0]
    assert list(line.get_ydata()) == [0x20000, 0x31000, 0x31000]
    points = {c.get_label(): c.get_offsets().tolist() for c in ax.collections}
    assert points["a request served from its own mmap"] == [[1, 200000]]
    assert points["a request served from the heap"] == [[3, 200000]]


# -- the stepper ------------------------------------------------------------------------------------------

STEPPER_TRACE = """
a = malloc(24)
b = malloc(24)
free(a)
c = malloc(24)
big = malloc(200000)
free(big)
"""


def test_stepper_walks_the_trace(m):
    s = HeapStepper(STEPPER_TRACE, m)
    assert s.message == "step 0 of 6: the process before its first call"
    assert s.heap_text == "(no heap yet)" and s.kernel_text == ""
    s.next_button.click()                                          # the button calls next()
    assert s.index == 1 and s.slider.value == 1
    assert s.kernel_text.splitlines()[0].startswith("__do_sys_brk(brk=0)")
    assert s.goto(4) == f"step 4 of 6: c = malloc(24) → {s.steps[3].result:#x} (heap +0x2a0)"
    assert s.kernel_text == "no system call: malloc served it alone"
    assert "tcache_get: bin 0" in s.path_text
    s.next()
    assert s.kernel_text.startswith("do_mmap(")
    s.next(); s.next()                                             # stays at the last step
    assert s.index == 6 and s.kernel_text.startswith("do_vmi_munmap(")
    s.back_button.click()
    assert s.index == 5
    s.reset_button.click()
    assert s.index == 0 and s.slider.value == 0
    s.slider.value = 3                                             # the slider moves too
    assert s.index == 3 and "tcache[0] (chunks of 0x20)" in s.bins_text
    assert bytes(s.image.value).startswith(PNG)
    assert isinstance(s.figure(), Figure)
    m.check()


def test_stepper_reports_errors(m):
    s = HeapStepper("a = malloc(1)", m)
    assert s.load("a = mallok(3)").startswith("Error: trace: cannot read")
    assert len(s.steps) == 1                                       # nothing was run
    s.load("x = malloc(3)\nfree(x)\nfree(x)")
    assert len(s.steps) == 2 and "double free detected in tcache 2" in s.error
    s.goto(2)
    assert "glibc aborts: free(): double free detected in tcache 2" in s.message
    with pytest.raises(ValueError):
        s.goto(3)
    m.check()


def test_stepper_load_uses_a_fresh_process(m):
    s = HeapStepper("a = malloc(24)", m)
    first = s.process
    s.source.value = "a = malloc(24)\nb = malloc(24)"
    s.load_button.click()
    assert not first.alive and s.process.alive
    assert s.steps[0].result - s.process.libc.mp.sbrk_base == 0x2a0
    assert len(s.steps) == 2


# -- properties ------------------------------------------------------------------------------------------

@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 9), st.sampled_from([0, 24, 40, 100, 1000, 2000, 5000, 70000,
                                                               140000, 300000]), st.booleans()),
                min_size=1, max_size=40))
def test_views_agree_with_the_model_after_every_step(ops):
    m = Machine(ram="256MiB", cpus=2, seed=0)
    lines, live = [], set()
    for slot, size, free in ops:
        if free and slot in live:
            lines.append(f"free(p{slot})")
            live.discard(slot)
        else:
            lines.append(f"p{slot} = malloc({size})")
            live.add(slot)
    p = m.spawn("a.out")
    for step in H.replay_steps(p.libc, lines):
        view, u = step.view, H.usage(step.view)
        assert u["in_use"] + u["cached"] + u["binned"] + u["top"] + u["fencepost"] == view.mallinfo.arena
        assert sum(length for _, length in view.mmapped) == view.mallinfo.hblkhd
        assert set(view.names.values()) == {f"p{k}" for k in live_after(lines[:step.index])}
        m.check()


def live_after(lines):
    live = set()
    for line in lines:
        call = H.parse_call(line)
        (live.discard if call.op == "free" else live.add)(int(call.name[1:]))
    return live


# -- against this machine's glibc ---------------------------------------------------------------------------

HOST = host_skip_reason()


@pytest.mark.host
@pytest.mark.skipif(HOST is not None, reason=HOST or "")
def test_to_driver_traces_agree_with_glibc(m):
    trace = LIFO + STEPPER_TRACE.replace("a =", "e =").replace("(a)", "(e)") + "mallopt(M_MMAP_THRESHOLD, 4096)\n" \
        + "x = malloc(5000)\nfree(x)\nmalloc_trim(0)"
    lines = H.to_driver(trace) + ["i"]
    assert replay(m.spawn("a.out").libc, lines) == run_host(lines)
