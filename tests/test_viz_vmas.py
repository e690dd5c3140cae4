"""mmlab.viz.vmas, mmlab.widgets.vmas and mmlab.linux.procmaps: pictures of an address space,
checked against the model.

Every figure is read back (its panels, the rectangles drawn for VMAs, their
widths, titles and labels) and compared with what the process says through
p.vmas, p.maps() and p.brk.  The maple-tree drawing is checked for the
structure's rules (ranges cover the whole index space once, leaves of at
most 16, internal nodes of at most 10, the largest gap carried up), on
random address spaces too.  The widgets are driven by calling their
handlers; the layout probe is compared with a real process when the host
can run it.
"""
import matplotlib
matplotlib.use("Agg")
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from matplotlib.patches import Rectangle

from mmlab import Machine
from mmlab.arch import PAGE_SIZE, MiB, GiB
from mmlab.linux import procmaps
from mmlab.uapi import (PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC, MAP_PRIVATE, MAP_SHARED,
                        MAP_ANONYMOUS, MAP_FIXED, MAP_GROWSDOWN, MAP_FIXED_NOREPLACE)
from mmlab.viz import vmas as V
from mmlab.widgets import VmaPlayground, BrkSlider
from mmlab.widgets.vmas import parse_prot, free_window, maps_lines

P = PAGE_SIZE
PNG = b"\x89PNG\r\n\x1a\n"
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
FIXED = ANON | MAP_FIXED


@pytest.fixture
def m():
    return Machine(ram="256MiB", seed=0)


@pytest.fixture
def p(m):
    return m.spawn("a.out")


@pytest.fixture
def base(p):
    """A free window above mmap_base, as the playground picks it."""
    return free_window(p, 64)


def rects(ax):
    """The filled rectangles an axes holds (VMA boxes and slots), in drawing order."""
    return [r for r in ax.patches if isinstance(r, Rectangle)]


def assert_labelled(ax):
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


# -- kinds, snapshots and text --------------------------------------------------------------

def test_kinds_of_a_fresh_process(p):
    kinds = [a.kind for a in V.snapshot(p)]
    assert kinds == ["program"] * 5 + ["anonymous"] + ["library"] * 5 + ["anonymous"] * 2 + \
        ["special"] * 3 + ["library"] * 5 + ["stack"]


def test_kinds_of_heap_shared_file_and_none(p, m, base):
    p.brk(p.mm.start_brk + 2 * P)
    m.fs.create("/tmp/data", 8 * P)
    fd = p.open("/tmp/data")
    p.mmap(base, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)             # shared anonymous
    p.mmap(base + 2 * P, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0)      # another file
    p.mmap(base + 4 * P, P, PROT_NONE, FIXED)                               # no access
    kinds = {a.name or "anon@" + hex(a.start - base): a.kind for a in V.snapshot(p, base, base + 8 * P)}
    assert kinds == {"/dev/zero (deleted)": "shared anonymous", "/tmp/data": "file", "anon@0x4000": "no access"}
    assert [a.kind for a in V.snapshot(p) if a.name == "[heap]"] == ["heap"]


def test_snapshot_is_frozen_while_views_are_live(p, base):
    p.mmap(base, 3 * P, RW, FIXED)
    before = V.snapshot(p, base, base + 3 * P)
    view = [v for v in p.vmas if v.vm_start == base][0]
    p.mprotect(base + P, P, PROT_READ)
    assert (view.vm_start, view.vm_end) == (base + P, base + 2 * P)  # the live view moved (to the middle)
    assert [(a.start - base, a.end - base, a.perms) for a in before] == [(0, 3 * P, "rw-p")]
    assert V.shape(V.snapshot(p, base, base + 3 * P), base) == "0-1 rw-p, 1-2 r--p, 2-3 rw-p"


def test_shape_matches_the_scenario_runners_form(p, base, m):
    m.fs.create("/tmp/f", 16 * P)
    fd = p.open("/tmp/f")
    p.mmap(base, 2 * P, RW, FIXED)
    p.mmap(base + 3 * P, P, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 2 * P)
    assert V.shape(V.snapshot(p, base, base + 8 * P), base) == "0-2 rw-p, 3-4 r--s f@2"
    p.brk(p.mm.start_brk + P)
    assert V.shape(V.snapshot(p, p.mm.start_brk, p.mm.start_brk + P), p.mm.start_brk) == "0-1 rw-p [heap]"


def test_strip_marks_every_vma_start(p, base):
    p.mmap(base, 3 * P, RW, FIXED)
    p.mprotect(base + P, P, PROT_READ)
    p.mmap(base + 4 * P, P, PROT_READ | PROT_EXEC, FIXED)
    p.mmap(base + 5 * P, P, PROT_NONE, FIXED)
    assert V.strip(p, base, 8) == "wrw.x-..\n^^^ ^^"


def test_layout_text_has_a_line_per_vma_and_per_hole(p):
    areas = V.snapshot(p)
    holes = sum(1 for a, b in zip(areas, areas[1:]) if b.start > a.end)
    lines = V.layout_text(p).splitlines()
    assert len(lines) == len(areas) + holes
    assert sum("hole of" in line for line in lines) == holes == 3      # bss..libs, the vDSO's hole, the stack
    assert lines[0].startswith(f"{areas[0].start:012x}-{areas[0].end:012x} r--p     4 KiB  program")


def test_size_text_reaches_exbibytes():
    assert V.size_text(4096) == "4 KiB"                             # small sizes as arch.human prints them
    assert V.size_text(1 << 60) == "1 EiB"                          # beyond TiB
    assert V.size_text(3 << 49) == "1.5 PiB"


# -- the broken-axis map ----------------------------------------------------------------------

def test_clusters_of_a_fresh_process(p):
    groups = V.clusters(p)
    assert [V.cluster_title(g) for g in groups] == ["the program", "the mmap area", "the stack"]
    assert [len(g) for g in groups] == [5, 16, 1]


def test_address_space_draws_every_vma_to_scale(p):
    p.brk(p.mm.start_brk + 5 * P)
    fig = V.address_space(p)
    groups = V.clusters(p)[::-1]
    assert len(fig.axes) == len(groups) == 4                        # stack, mmap area, heap, program
    for ax, group in zip(fig.axes, groups):
        boxes = rects(ax)
        assert [(r.get_x(), r.get_width()) for r in boxes] == [(a.start, a.end - a.start) for a in group]
        assert ax.get_xlim() == (group[0].start, group[-1].end)
        assert ax.get_ylabel() == V.cluster_title(group)
    assert fig.axes[-1].get_xlabel()
    assert "23 VMAs" in fig._suptitle.get_text()
    holes = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_text().startswith("hole of")]
    assert len(holes) == 3 and all("axis broken" in h for h in holes)


def test_address_space_refuses_an_empty_process():
    with pytest.raises(ValueError):
        V.address_space([])


# -- before and after ----------------------------------------------------------------------------

def test_vma_change_draws_a_split(p, base):
    p.mmap(base, 3 * P, RW, FIXED)
    before = V.snapshot(p, base, base + 4 * P)
    p.mprotect(base + P, P, PROT_READ)
    after = V.snapshot(p, base, base + 4 * P)
    fig = V.vma_change(before, after, base, base + 4 * P, op="mprotect", highlight=(base + P, base + 2 * P))
    ax = fig.axes[0]
    boxes = rects(ax)
    rows = {}
    for r in boxes[:-1]:                                            # the last one is the highlight
        rows.setdefault(r.get_y(), []).append((r.get_x(), r.get_width()))
    assert rows == {1.1: [(0, 3)], 0.1: [(0, 1), (1, 1), (2, 1)]}
    assert (boxes[-1].get_x(), boxes[-1].get_width()) == (1, 1)
    assert ax.get_title() == "mprotect: 1 VMA becomes 3"
    assert_labelled(ax)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["after\n3 VMAs", "before\n1 VMA"]


def test_vma_change_window_from_the_vmas_and_errors(p, base):
    p.mmap(base, 2 * P, RW, FIXED)
    fig = V.vma_change(p, V.snapshot(p, base, base + 2 * P))
    assert fig.axes[0].get_xlim()[1] > 1000                          # the whole address space, in pages
    with pytest.raises(ValueError):
        V.vma_change([], [])                                        # nothing to frame the window
    with pytest.raises(ValueError):
        V.vma_change([], [], lo=base, hi=base)                      # an empty window


# -- the maple tree --------------------------------------------------------------------------------

def check_layout(p):
    """The structural rules of the drawn tree, and that it holds exactly p's VMAs."""
    levels = V.maple_layout(p)
    leaves = levels[-1]
    entries = [s for leaf in leaves for s in leaf.slots]
    assert entries[0][0] == 0 and entries[-1][1] == V.ULONG_MAX
    assert all(a[1] + 1 == b[0] for a, b in zip(entries, entries[1:]))          # contiguous, no overlap
    assert all(not (a[2] is None and b[2] is None) for a, b in zip(entries, entries[1:]))  # gaps not split
    assert [(s[0], s[1] + 1) for s in entries if s[2] is not None] == \
        [(v.vm_start, v.vm_end) for v in p.vmas]
    assert all(1 <= len(leaf) <= V.LEAF_SLOTS for leaf in leaves)
    assert len(levels[0]) == 1
    for upper, lower in zip(levels, levels[1:]):
        assert [c for n in upper for c in n.children] == lower                  # every node has one parent
        for n in upper:
            assert 2 <= len(n) <= V.ARANGE_SLOTS
            assert n.first == n.children[0].first and n.last == n.children[-1].last
            assert n.gap == max(c.gap for c in n.children)
            assert n.pivots == [c.last for c in n.children]
    biggest = max(s[1] - s[0] + 1 for s in entries if s[2] is None)
    assert levels[0][0].gap == biggest
    return levels


def test_maple_layout_of_a_fresh_process(p):
    levels = check_layout(p)
    assert [len(level) for level in levels] == [1, 2]              # 27 ranges: two leaves under a root
    assert [len(leaf) for leaf in levels[1]] == [14, 13]


def test_maple_layout_grows_a_level_past_160_ranges(p, base):
    for i in range(100):
        p.mmap(base + 2 * i * P, P, RW if i % 2 else PROT_READ, FIXED)
    levels = check_layout(p)
    assert len(levels) == 3
    assert V.maple_text(p).count("\n") + 1 == sum(len(level) for level in levels)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 6), st.sampled_from([RW, PROT_READ, PROT_NONE])),
                max_size=60))
def test_maple_layout_rules_hold_for_any_address_space(ops):
    m = Machine(ram="256MiB", seed=1)
    p = m.spawn("a.out")
    base = free_window(p, 256)
    for page, n, prot in ops:
        p.mmap(base + page * P, n * P, prot, FIXED)
        m.check()
    check_layout(p)


def test_maple_tree_figure_slots(p):
    fig = V.maple_tree(p)
    ax = fig.axes[0]
    levels = V.maple_layout(p)
    leaves = levels[-1]
    internal = sum(len(level) for level in levels[:-1])
    assert len(rects(ax)) == len(leaves) * V.LEAF_SLOTS + internal * V.ARANGE_SLOTS
    assert ax.get_title() == "A drawing of the maple tree for 22 VMAs: 27 ranges in 2 leaves, height 2"
    assert_labelled(ax)
    assert sum(t.get_text().startswith("gap ") for t in ax.texts) == 5     # one label per gap slot


def test_tree_heights():
    assert V.tree_heights(1) == (1, 2, 1)                         # one VMA: two gaps and it, one leaf
    assert V.tree_heights(22) == (5, 9, 2)                        # a small process
    assert V.tree_heights(65530) == (16, 31, 5)                   # vm.max_map_count VMAs


# -- the heap -----------------------------------------------------------------------------------------

def test_heap_state_and_limit_agree_with_brk(p):
    start = p.mm.start_brk
    p.mmap(start + 8 * P, P, RW, ANON | MAP_FIXED_NOREPLACE)
    _, brk, heap, above = V.heap_state(p)
    assert heap is None and brk == start and above.start == start + 8 * P
    limit = V.brk_limit(p, above)
    assert limit == start + 7 * P
    assert p.brk(limit + 1) == start                                # one byte too far: refused
    assert p.brk(limit) == limit                                    # the limit itself: granted
    _, _, heap, _ = V.heap_state(p)
    assert (heap.start, heap.end) == (start, limit)


def test_brk_limit_below_a_stack_keeps_the_guard_gap(p, m):
    start = p.mm.start_brk
    stack = start + 512 * P
    p.mmap(stack, 16 * P, RW, ANON | MAP_FIXED_NOREPLACE | MAP_GROWSDOWN)
    above = V.heap_state(p)[3]
    limit = V.brk_limit(p, above)
    assert limit == stack - m.stack_guard_gap - P
    assert p.brk(limit + P) == start and p.brk(limit) == limit


def test_heap_picture(p):
    start = p.mm.start_brk
    p.mmap(start + 8 * P, P, RW, ANON | MAP_FIXED_NOREPLACE)
    p.brk(start + 3 * P + 100)
    fig = V.heap_picture(p)
    ax = fig.axes[0]
    boxes = rects(ax)
    heap = [r for r in boxes if (r.get_x(), r.get_width()) == (0, 4)]
    assert len(heap) == 1                                            # [heap] is 4 pages: the break rounds up
    hatched = [r for r in boxes if r.get_hatch()]
    assert [(r.get_x(), r.get_width()) for r in hatched] == [(7, 1)]  # the last free page is not for the heap
    assert ax.get_title() == "The heap: [heap] is 4 pages, the break is 0x3064 bytes above start_brk"
    assert_labelled(ax)


def test_brk_steps_record_each_call(p, m):
    steps = V.brk_steps(p, [None, 3 * P, 5 * P + 1, 2 * P, -P, 0])
    assert [s["ret"] for s in steps] == [0, 3 * P, 5 * P + 1, 2 * P, 2 * P, 0]
    assert [s["heap"] for s in steps] == [None, (0, 3 * P), (0, 6 * P), (0, 2 * P), (0, 2 * P), None]
    assert steps[1]["calls"] == ["__do_sys_brk", "__get_unmapped_area", "do_brk_flags"]
    assert "vma_expand" in steps[2]["calls"]                         # the second growth extends the VMA
    assert steps[3]["calls"] == ["__do_sys_brk", "__split_vma"]
    assert steps[4]["calls"] == ["__do_sys_brk"] and "below start_brk" in steps[4]["notes"][0]
    assert p.mm.brk == p.mm.start_brk
    m.check()


def test_brk_timeline(p):
    fig = V.brk_timeline(V.brk_steps(p, [2 * P, 6 * P, 4 * P]))
    ax = fig.axes[0]
    assert [r.get_height() for r in rects(ax)] == [8, 24, 16]       # the heap VMA in KiB after each call
    assert_labelled(ax)
    with pytest.raises(ValueError):
        V.brk_timeline([])


def test_start_brk_histogram_counts_every_exec(m):
    from mmlab.process import A_OUT
    last = A_OUT.loads[-1]
    offsets = []
    for _ in range(50):
        q = m.spawn("a.out")
        end = q.load_bias + last.vaddr + last.memsz
        offsets.append(q.mm.start_brk - (-(-end // P) * P + P))
        q.exit()
    assert all(0 <= o < GiB and o % P == 0 for o in offsets)        # the window arch_randomize_brk draws from
    fig = V.start_brk_histogram({"model": offsets, "twice": offsets + offsets})
    ax = fig.axes[0]
    heights = [sum(p.get_path().vertices[:, 1]) for p in ax.patches[1:]]    # the step outlines
    assert len(ax.patches) == 3 and heights[1] == 2 * heights[0]
    assert_labelled(ax)
    with pytest.raises(ValueError):
        V.start_brk_histogram({"empty": []})


# -- the widgets ------------------------------------------------------------------------------------------

def test_parse_prot():
    assert parse_prot("rw-") == RW                                  # as maps writes it
    assert parse_prot("r-x") == PROT_READ | PROT_EXEC
    assert parse_prot("---") == PROT_NONE
    assert parse_prot("PROT_READ|PROT_WRITE") == RW                 # by name
    for bad in ("rwz", "rwxx", "PROT_BOGUS", ""):
        with pytest.raises(ValueError):
            parse_prot(bad)


def test_free_window_is_free_and_above_mmap_base(p):
    b = free_window(p, 32)
    assert b % (2 * MiB) == 0 and b >= p.mm.mmap_base
    assert not [v for v in p.vmas if v.vm_end > b - 8 * MiB and v.vm_start < b + 32 * P + 8 * MiB]
    with pytest.raises(ValueError):
        free_window(p, 1 << 40)


def test_playground_merge_split_and_file_offsets(p, m):
    pg = VmaPlayground(p, pages=16)
    steps = [
        (("mmap", 0, 4), "0-4 rw-p"),
        (("mmap", 4, 2, "r--"), "0-4 rw-p, 4-6 r--p"),
        (("mprotect", 4, 2, "rw-"), "0-6 rw-p"),                            # merges back
        (("mprotect", 1, 1, "r--"), "0-1 rw-p, 1-2 r--p, 2-6 rw-p"),        # splits in three
        (("mmap", 8, 2, "rw-", "private file", "MAP_FIXED", False, 3),
         "0-1 rw-p, 1-2 r--p, 2-6 rw-p, 8-10 rw-p playground.dat@3"),
        (("mmap", 10, 2, "rw-", "private file", "MAP_FIXED", False, 5),
         "0-1 rw-p, 1-2 r--p, 2-6 rw-p, 8-12 rw-p playground.dat@3"),      # offsets continue: merged
        (("munmap", 0, 16), ""),
    ]
    for args, want in steps:
        pg.do(*args)
        assert pg.window_shape == want, args
        m.check()
    assert len(pg.history) == len(steps)
    assert pg.history[3] == ("mprotect(+0x1000, 0x1000, PROT_READ)", "= 0")
    assert pg.picture.value.tobytes().startswith(PNG)
    assert pg.window_strip == "." * 16 + "\n"                     # no VMA starts: an empty second line


def test_playground_shows_the_path_and_the_maps_lines(p, m):
    pg = VmaPlayground(p, pages=8)
    pg.do("mmap", 0, 2)
    pg.do("mmap", 2, 1)
    assert "vma_merge_new_range" in pg.trace_text and "vma_merge: extended prev" in pg.trace_text
    assert pg.maps_text == maps_lines(p, pg.base, pg.end)
    assert pg.maps_text.startswith(f"{pg.base:x}-{pg.base + 3 * P:x} rw-p 00000000 00:00 0")
    assert "1 VMA" in pg.message
    fig = pg.figure()
    assert fig.axes[0].get_title() == "mmap(+0x2000, 0x1000, PROT_READ|PROT_WRITE, " \
                                      "MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS): 1 VMA becomes 1"


def test_playground_failures_show_and_change_nothing(p, m):
    pg = VmaPlayground(p, pages=8)
    pg.do("mmap", 0, 2)
    maps = p.maps()
    pg.do("mprotect", 4, 1)                                          # nothing mapped there
    assert "failed: ENOMEM" in pg.message
    pg.do("mmap", 1, 1, where="MAP_FIXED_NOREPLACE")
    assert "failed: EEXIST" in pg.message
    assert pg.do("mprotect", 0, 1, prot="rwz") is None and "Error" in pg.message
    assert p.maps() == maps
    pg.do("mmap", 0, 1, where="no address")                          # lands below mmap_base
    assert "outside the window" in pg.message and pg.window_shape == "0-2 rw-p"
    pg.do("madvise", 0, 1, advice="MADV_DONTFORK")
    assert pg.window_shape == "0-1 rw-p, 1-2 rw-p"                   # a flag only smaps shows
    m.check()


def test_brk_slider_moves_and_refuses(p, m):
    bs = BrkSlider(p, obstacle=8)
    start = p.mm.start_brk
    assert bs.obstacle == start + 8 * P
    assert bs.move(4 * P) == "brk(start_brk + 0x4000) = start_brk + 0x4000: moved"
    assert bs.heap_text.split()[0] == f"{start:x}-{start + 4 * P:x}"
    assert bs.move(7 * P + 1) == "brk(start_brk + 0x7001) = start_brk + 0x4000: refused: brk returned the old break"
    assert bs.move(-P).endswith("refused: brk returned the old break")
    bs.slider.value = 100                                            # the slider calls move()
    assert bs.message == "brk(start_brk + 0x64) = start_brk + 0x64: moved"
    assert bs.trace_text.startswith("__do_sys_brk(") and "__split_vma" in bs.trace_text
    assert p.mm.brk == start + 100 and len(bs.steps) == 4
    assert bs.picture.value.tobytes().startswith(PNG) and bs.timeline.value.tobytes().startswith(PNG)
    bs.move(0)
    assert bs.heap_text == "(no [heap] VMA)"
    m.check()


def test_brk_slider_with_a_stack_above(p, m):
    bs = BrkSlider(p, obstacle=("stack", 300))
    assert bs.move(300 * P - m.stack_guard_gap - P).endswith("moved")     # 43 pages: the most it may grow
    assert bs.move(300 * P - m.stack_guard_gap).endswith("refused: brk returned the old break")


# -- the maps parser and the layout probe ------------------------------------------------------------

def test_parse_maps_reads_the_models_maps(p):
    lines = procmaps.parse_maps(p.maps())
    assert len(lines) == len(p.vmas) + 1                            # and [vsyscall]
    assert [(x.start, x.end, x.perms) for x in lines[:-1]] == [(v.vm_start, v.vm_end, v.perms) for v in p.vmas]
    libc = [x for x in lines if x.name.endswith("libc.so.6")]
    assert [x.offset for x in libc] == [0, 0x26000, 0x17c000, 0x1cf000, 0x1d3000]
    assert lines[-1] == procmaps.MapsLine(0xffffffffff600000, 0xffffffffff601000, "--xp", 0, "00:00", 0,
                                          "[vsyscall]")
    with pytest.raises(ValueError):
        procmaps.parse_maps("not a maps line")


def test_layout_rows_and_kinds_agree_with_the_figures(p):
    rows = procmaps.layout_rows(p.maps())
    assert [r[0] for r in rows[:-1]] == [a.kind for a in V.snapshot(p)]
    assert rows[-1][:2] == ("special", "[vsyscall]")
    assert rows[0] == ("program", "a.out", "r--p", 1, 0, None)


def test_parse_probe_output():
    text = ("brk 0x5555a000\nend 0x55555558050\n"
            "stat 42 (a b) R " + " ".join(["0"] * 41) + " 100 200 300 0 0 0 0 0\nmaps\n"
            "55555554000-55555555000 r--p 00000000 fe:00 1 /x\n")
    out = procmaps.parse_probe(text)
    assert (out["brk"], out["end"]) == (0x5555a000, 0x55555558050)
    assert (out["start_data"], out["end_data"], out["start_brk"]) == (100, 200, 300)
    assert out["maps"].startswith("55555554000-")
    assert procmaps.brk_offsets([{"start_brk": 0x5555555a000 + 7 * P, "end": 0x55555558050}]) == [7 * P]


def probe_or_skip():
    reason = procmaps.skip_reason()
    if reason:
        pytest.skip(reason)
    from mmlab.process import LIBC
    import os
    if os.path.getsize("/usr/lib/x86_64-linux-gnu/libc.so.6") != LIBC.size:
        pytest.skip("this machine's libc is not the reference glibc 2.36 build")


@pytest.mark.host
def test_a_real_process_has_the_models_layout(p):
    probe_or_skip()
    host = procmaps.layout_rows(procmaps.run_probe()["maps"])
    model = procmaps.layout_rows(p.maps())
    same = lambda rows: [(k, "" if k == "program" else n, perms, pages, off) for k, n, perms, pages, off, _ in rows]
    assert same(host) == same(model)                                # the VMAs, their sizes and offsets
    assert [r[5] for r in host[6:-2]] == [r[5] for r in model[6:-2]]  # the holes inside the mmap area


@pytest.mark.host
def test_start_brk_lies_in_the_randomisation_window():
    probe_or_skip()
    runs = procmaps.run_probe(8)
    offsets = procmaps.brk_offsets(runs)
    assert all(0 <= o < GiB and o % P == 0 for o in offsets)
    assert all(r["brk"] == r["start_brk"] for r in runs)             # nothing moved the break before main
    assert len(set(offsets)) > 1                                      # randomised per exec


# -- regressions found while writing chapter 04 -----------------------------------------------

def test_failed_second_split_leaves_two_alike_vmas_and_check_passes(p, m, base):
    # vma_modify: at vm.max_map_count the split at start is kept and the split at end refused;
    # Linux leaves two identical VMAs side by side, and m.check() must accept that state.
    p.mmap(base, 3 * P, RW, FIXED)
    m.max_map_count = p.mm.map_count + 1
    with pytest.raises(OSError):
        p.mprotect(base + P, P, PROT_READ)
    assert V.shape(V.snapshot(p, base, base + 3 * P), base) == "0-1 rw-p, 1-3 rw-p"
    m.max_map_count = 65530
    m.check()
