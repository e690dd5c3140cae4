"""mmlab.viz.vmalloc, the vmallocinfo probe and VmallocExplorer: pictures checked against the model.

Every figure is read back (the class array behind the space map, the line
segments from pages to frames, titles and labels) and compared with what
the machine says through its own calls: vmalloc_to_pfn, find_vm_area,
/proc/vmallocinfo, the lazy counter.  The cost counters are checked against
numbers worked out by hand from the chapter's rules.  The explorer is
driven by calling its button handlers.
"""
import matplotlib
matplotlib.use("Agg")
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from mmlab import Machine
from mmlab.arch import PAGE_SIZE, PAGE_OFFSET, VMALLOC_START, VMALLOC_END
from mmlab.linux import probes
from mmlab.mm import vmalloc as vm
from mmlab.viz import vmalloc as V
from mmlab.widgets import VmallocExplorer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def m1():
    """One CPU: no vmap pools, so a purge returns ranges straight to the free tree."""
    return Machine(ram="256MiB", cpus=1, seed=0, pcp=False)


@pytest.fixture
def m2():
    return Machine(ram="256MiB", cpus=2, seed=0)


def four_areas(m):
    """Areas of 1, 2, 4 and 1 pages at +0x0, +0x2000, +0x5000, +0xa000."""
    return [m.vmalloc(n * PAGE_SIZE, caller=f"a{i}+0x0/0x10") for i, n in enumerate((1, 2, 4, 1))]


def assert_labelled(ax):
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


# -- the space, page by page ------------------------------------------------------------

def test_space_classes_of_busy_areas(m1):
    four_areas(m1)
    cells = V.space_classes(m1, npages=16, cols=16)
    M, G, F = V.MAPPED, V.GUARD, V.FREE
    assert cells.tolist() == [M, G, M, M, G, M, M, M, M, G, M, G, F, F, F, F]


def test_space_classes_lazy_then_free(m1):
    a, b, c, d = four_areas(m1)
    m1.vfree(b)
    cells = V.space_classes(m1, npages=16, cols=16)
    assert cells[2:5].tolist() == [V.LAZY] * 3                        # b's 2 pages and guard wait
    assert np.count_nonzero(cells == V.LAZY) == m1.vmap.vmap_lazy_nr  # the picture counts what the kernel counts
    vm.purge_vmap_area_lazy(m1)
    assert V.space_classes(m1, npages=16, cols=16)[2:5].tolist() == [V.FREE] * 3


def test_space_classes_pooled_on_two_cpus(m2):
    a, b, c, d = four_areas(m2)
    m2.vfree(c)
    vm.purge_vmap_area_lazy(m2)                                       # 5 pages: a pool, not the tree
    assert V.space_classes(m2, npages=16, cols=16)[5:10].tolist() == [V.POOLED] * 5
    assert (c, c + 5 * PAGE_SIZE) not in V.free_ranges(m2)


def test_space_classes_read_the_page_tables(m1):
    a = m1.vmalloc(3 * PAGE_SIZE)
    va = m1.vmap.busy[a]
    saved, va.vm = va.vm, None                                        # a reserved range with no vm_struct
    try:
        vm.vunmap_range_noflush(m1, a, a + 3 * PAGE_SIZE)             # and nothing mapped
        assert V.space_classes(m1, npages=4, cols=4).tolist() == [V.UNMAPPED] * 4
    finally:
        va.vm = saved


def test_space_text(m1):
    a, b, c, d = four_areas(m1)
    m1.vfree(b)
    assert V.space_text(m1, cols=32) == "+0x000000 #guuu####g#g...................."
    assert V.space_text(m1, start=VMALLOC_START + 0x4000, npages=8, cols=4) == "+0x004000 u###\n+0x008000 #g#g"


def test_used_extent_covers_every_range(m1):
    assert V.used_extent(m1, 64) == 64                                # nothing used: one row
    m1.vmalloc(100 * PAGE_SIZE)
    assert V.used_extent(m1, 64) == 128                               # 101 pages: two rows
    assert V.used_extent(m1, 32) == 128


@pytest.mark.parametrize("kwargs, error", [
    ({"cols": 0}, ValueError),                        # no columns
    ({"start": VMALLOC_START + 1}, ValueError),       # not page aligned
    ({"start": PAGE_OFFSET}, ValueError),             # not in the vmalloc space
    ({"npages": 0}, ValueError),                      # nothing to show
    ({"cols": "64"}, TypeError),                      # not an int
])
def test_space_window_errors(m1, kwargs, error):
    with pytest.raises(error):
        V.space_classes(m1, **kwargs)


def test_vmalloc_space_figure_shows_the_classes(m2):
    a, b, c, d = four_areas(m2)
    m2.vfree(c)
    fig = V.vmalloc_space(m2, npages=64, cols=32)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert_labelled(ax)
    grid = np.asarray(ax.images[0].get_array())
    assert grid.shape == (2, 32)
    assert grid.ravel().tolist() == V.space_classes(m2, npages=64, cols=32).tolist()
    labels = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert {"free", "mapped page", "guard page", "unpurged (lazily freed)"} <= set(labels)
    outlines = [p for p in ax.patches if not p.get_fill()]
    assert len(outlines) == 3                                         # one per busy area in view


def test_vmalloc_space_pads_a_short_last_row(m1):
    m1.vmalloc(PAGE_SIZE)
    grid = np.asarray(V.vmalloc_space(m1, npages=40, cols=32).axes[0].images[0].get_array())
    assert grid.ravel().tolist()[40:] == [V.BEYOND] * 24


# -- the frames behind an allocation ------------------------------------------------------

def scattered(m):
    """Free every other one of 64 held pages, so that a vmalloc gets non-adjacent frames."""
    held = [m.alloc_pages(0) for _ in range(64)]
    for pfn in held[::2]:
        m.free_pages(pfn, 0)


def test_page_frames_of_a_vmalloc_area(m1):
    scattered(m1)
    a = m1.vmalloc(16 * PAGE_SIZE)
    kind, base, pfns = V.page_frames(m1, a + 5 * PAGE_SIZE + 7)       # any address inside the area
    assert (kind, base) == ("vmalloc", a)
    assert pfns == vm.find_vm_area(m1, a).pages + [None]              # the pages, then the guard
    assert V.contiguous_runs(pfns) == 16                              # no two neighbours in RAM


def test_page_frames_of_a_kmalloc(m1):
    k = m1.kmalloc(64 * 1024)
    kind, base, pfns = V.page_frames(m1, k)
    first = m1.virt_to_phys(k) >> 12
    assert (kind, base, pfns) == ("kmalloc", k, list(range(first, first + 16)))
    assert V.contiguous_runs(pfns) == 1


@pytest.mark.parametrize("pfns, runs", [
    ([5, 6, 7, None], 1),                 # contiguous, then a guard
    ([5, 7, 8], 2),                       # a gap
    ([8, 7], 2),                          # descending frames are not one run
    ([None], 0),                          # nothing mapped
])
def test_contiguous_runs(pfns, runs):
    assert V.contiguous_runs(pfns) == runs


def test_page_frames_errors(m1):
    with pytest.raises(ValueError, match="no busy vmalloc area"):
        V.page_frames(m1, VMALLOC_START)
    with pytest.raises(ValueError, match="neither"):
        V.page_frames(m1, 0x1000)


def test_area_frames_draws_a_line_per_mapped_page(m1):
    scattered(m1)
    a = m1.vmalloc(16 * PAGE_SIZE)
    fig = V.area_frames(m1, a)
    ax = fig.axes[0]
    assert_labelled(ax)
    assert "16 pages in 16 physically contiguous runs" in ax.get_title()
    lines = [c for c in ax.collections if isinstance(c, LineCollection)][0]
    segments = lines.get_segments()
    assert len(segments) == 16                                        # none for the guard page
    pfns = vm.find_vm_area(m1, a).pages
    tops = [seg[0][0] for seg in segments]
    bottoms = [seg[1][0] for seg in segments]
    assert tops == [i + 0.5 for i in range(16)]                       # one per virtual page, in order
    assert np.argsort(bottoms).tolist() == np.argsort(pfns).tolist()  # frames placed by pfn


def test_area_frames_caps_the_pages_drawn(m1):
    a = m1.vmalloc(600 * PAGE_SIZE)
    ax = V.area_frames(m1, a, max_pages=100).axes[0]
    assert "the first 100 of 601 pages" in ax.get_title()
    assert len([c for c in ax.collections if isinstance(c, LineCollection)][0].get_segments()) == 100


def test_compare_frames_one_row_each(m1):
    k, a = m1.kmalloc(16 * 1024), m1.vmalloc(16 * 1024)
    fig = V.compare_frames(m1, k, a, titles=["kmalloc", "vmalloc"])
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["kmalloc", "vmalloc"]
    with pytest.raises(ValueError):
        V.compare_frames(m1)


# -- walks and free ranges ----------------------------------------------------------------

def test_walk_text_ends_at_the_frame(m1):
    a = m1.vmalloc(2 * PAGE_SIZE)
    text = V.walk_text(m1, a + PAGE_SIZE)
    lines = text.splitlines()
    assert lines[0] == f"{a + PAGE_SIZE:#x}: pgd 402, pud 0, pmd 0, pte 1, offset 0x0"
    assert [line.split("[")[0].strip() for line in lines[1:5]] == ["pgd", "pud", "pmd", "pte"]
    assert lines[-1] == f"  -> frame {m1.vmalloc_to_pfn(a + PAGE_SIZE):#x}"
    assert V.walk_text(m1, a + 2 * PAGE_SIZE).splitlines()[-1] == "  -> not mapped: a fault"   # the guard


def test_free_ranges_are_clipped_to_the_vmalloc_space(m1):
    assert V.free_ranges(m1) == [(VMALLOC_START, VMALLOC_END + 1)]
    a, b, c, d = four_areas(m1)
    m1.vfree(b)
    assert V.free_ranges(m1) == [(d + 2 * PAGE_SIZE, VMALLOC_END + 1)]     # b waits: not free
    vm.purge_vmap_area_lazy(m1)
    assert V.free_ranges(m1) == [(b, c), (d + 2 * PAGE_SIZE, VMALLOC_END + 1)]


# -- the cost of a call -------------------------------------------------------------------

def test_call_cost_of_the_first_vmalloc(m2):
    cost = V.call_cost(m2, lambda: m2.vmalloc(PAGE_SIZE))
    assert cost["result"] == VMALLOC_START
    assert cost["page_tables"] == 3                                   # PUD, PMD and PTE tables
    assert cost["ptes"] == 1
    assert cost["held"] == PAGE_SIZE + 96 + 8                         # page, kmalloc-96, kmalloc-8
    assert cost["frames"] == 1 + 3 + 2                                # the page, the tables, two new slabs
    assert "vmap_pages_range" in cost["functions"] and cost["calls"] >= len(cost["functions"])


def test_held_bytes(m1):
    assert V.held_bytes(m1, 0) == 0                                   # NULL
    assert V.held_bytes(m1, m1.kmalloc(100)) == 128
    a = m1.vmalloc(513 * PAGE_SIZE)                                   # a vpages area: its array is 2 pages
    assert V.held_bytes(m1, a) == 513 * PAGE_SIZE + 96 + (2 * PAGE_SIZE + 96 + 16)
    with pytest.raises(ValueError):
        V.held_bytes(m1, a + PAGE_SIZE)


def test_allocation_costs_and_table():
    rows = V.allocation_costs([64, 64 * 1024], ram="128MiB")
    steady = {(r["size"], r["kind"]): r for r in rows}
    assert [(r["size"], r["kind"]) for r in rows] == [(64, "kmalloc"), (64, "vmalloc"),
                                                      (65536, "kmalloc"), (65536, "vmalloc")]
    assert steady[64, "kmalloc"]["frames"] == 0 and steady[64, "kmalloc"]["calls"] == 2  # the slab fast path
    assert steady[65536, "vmalloc"]["ptes"] == 16 and steady[65536, "kmalloc"]["ptes"] == 0
    assert steady[65536, "kmalloc"]["held"] == 65536
    table = V.cost_table(rows).splitlines()
    assert table[0].split() == ["size", "call", "bytes", "held", "frames", "tables", "PTEs", "calls", "functions"]
    assert table[2].split()[:4] == ["64", "B", "vmalloc", "4,200"]
    first = V.allocation_costs([PAGE_SIZE], kinds=("vmalloc",), ram="128MiB", warm=False)[0]
    assert first["page_tables"] == 3


def test_cost_figure_is_labelled():
    rows = V.allocation_costs([64, 16 * 1024], ram="128MiB")
    fig = V.cost_figure(rows)
    for ax in fig.axes:
        assert_labelled(ax)
        assert len(ax.lines) == 2                                     # kmalloc and vmalloc
    assert fig.axes[0].lines[1].get_ydata().tolist() == [4200, 16512]


# -- traces ------------------------------------------------------------------------------

def test_trace_outline_collapses_runs(m1):
    a = m1.vmalloc(4 * PAGE_SIZE)
    with m1.trace() as t:
        m1.vfree(a)
    text = V.trace_outline(t, depth=1).splitlines()
    assert text[0].startswith("vfree(addr=")
    assert "  ... and 1 more call of kfree" in text
    assert "  ... and 1 more call of kfree" in text
    assert text[-1].startswith("(") and text[-1].endswith("deeper events not shown)")
    assert V.trace_outline(t, depth=0).splitlines()[0] == text[0]
    # In full, each free_pages has calls below it: the calls no longer follow one another, nothing collapses.
    assert V.trace_outline(t, depth=64) == str(t)


# -- the probe ---------------------------------------------------------------------------

HOST_LINES = """\
0x00000000d5e6a889-0x00000000fa692585   20480 irq_init_percpu_irqstack+0xca/0x100 vmap
0x00000000fa692585-0x000000006b9a8edc    8192 acpi_os_map_iomem+0x1bc/0x1e0 phys=0x00000000000a0000 ioremap
0x0000000088e2a2e6-0x000000005fb14695   20480 kernel_clone+0x94/0x3e0 pages=4 vmalloc N0=4
0x0000000012345678-0x0000000023456789 8392704 htab_map_alloc+0x2e4/0x5a0 pages=2048 vmalloc vpages N0=1024 N1=1024
0x000000003c0d5b1a-0x000000007e6a2b33    8192 unpurged vm_area
"""


def test_parse_vmallocinfo_host_lines():
    entries = probes.parse_vmallocinfo(HOST_LINES)
    assert [e["kind"] for e in entries] == ["area", "area", "area", "area", "unpurged"]
    assert entries[0]["words"] == ["vmap"] and entries[0]["pages"] is None
    assert entries[1]["phys"] == 0xa0000 and entries[1]["words"] == ["ioremap"]
    assert entries[2] == {"start": 0x88e2a2e6, "end": 0x5fb14695, "size": 20480, "kind": "area",
                          "caller": "kernel_clone+0x94/0x3e0", "pages": 4, "phys": None,
                          "words": ["vmalloc"], "nodes": {0: 4}}
    assert entries[3]["nodes"] == {0: 1024, 1: 1024} and entries[3]["words"] == ["vmalloc", "vpages"]
    assert entries[4]["caller"] is None and entries[4]["size"] == 8192


def test_parse_vmallocinfo_of_the_model(m1):
    a = m1.vmalloc(513 * PAGE_SIZE, caller="big_init+0x10/0x80")
    entries = probes.parse_vmallocinfo(m1.proc.vmallocinfo())
    assert [(e["start"], e["size"], e["caller"], e["pages"], e["words"]) for e in entries] == [
        (a, 514 * PAGE_SIZE, "big_init+0x10/0x80", 513, ["vmalloc", "vpages"]),
        (a + 514 * PAGE_SIZE, 3 * PAGE_SIZE, "big_init+0x10/0x80", 2, ["vmalloc"])]


@pytest.mark.parametrize("line", [
    "not a line at all",                                              # no range
    "0xffffc90000000000-0xffffc90000002000    8192 f+0x0/0x1 pages=1 vmalloc bogus",   # unknown field
])
def test_parse_vmallocinfo_rejects(line):
    with pytest.raises(ValueError):
        probes.parse_vmallocinfo(line)


@pytest.mark.host("vmallocinfo")
def test_host_vmallocinfo_probe():
    entries = probes.vmallocinfo()
    assert entries
    areas = [e for e in entries if "vmalloc" in e["words"] and e["pages"]]
    assert all(e["size"] == (e["pages"] + 1) * PAGE_SIZE for e in areas)   # the guard page, on the host


# -- the explorer ------------------------------------------------------------------------

def test_explorer_allocate_free_purge(m2):
    x = VmallocExplorer(m2, size="16 KiB", caller="ex_init+0x0/0x10")
    assert x.allocate() == f"vmalloc(16384) = {VMALLOC_START:#x}, in a vmalloc area"
    x.alloc_button.click()
    x.allocate()
    assert [h[0] - VMALLOC_START for h in x.held] == [0, 0x5000, 0xa000]
    assert x.vmallocinfo_text.count("ex_init+0x0/0x10 pages=4 vmalloc") == 3
    x.selected.value = 1
    assert "the range waits for a purge (5 of 16384 lazy pages, was 0)" in x.free_selected()
    assert x.space.startswith("+0x000000 ####guuuuu####g.")
    assert "remove_vm_area(addr=" in x.trace_text
    x.allocate()
    assert x.held[-1][0] == VMALLOC_START + 0xf000                      # the lazy range is not reused
    assert x.purge() == "purged: 5 lazy pages freed after one TLB flush"
    assert x.purge() == "nothing to purge: no range waits"
    x.allocate()
    assert x.held[-1][0] == VMALLOC_START + 0x5000                      # the pool gives it back
    assert x.space_image.value.tobytes().startswith(PNG)
    assert x.frames_image.value.tobytes().startswith(PNG)
    m2.check()


def test_explorer_kvmalloc_small_is_kmalloc(m2):
    x = VmallocExplorer(m2, size="100", call="kvmalloc")
    assert x.allocate().endswith("in kmalloc memory (the direct map)")
    x.selected.value = 0
    assert x.free_selected().startswith("kvfree(")
    assert not x.held and not m2.proc.vmallocinfo()
    m2.check()


def test_explorer_vfree_that_purges():
    m = Machine(ram="128MiB", cpus=1, seed=0)
    x = VmallocExplorer(m, size="33MiB")                              # more than lazy_max_pages (8192)
    x.allocate()
    x.selected.value = 0
    assert "so this vfree purged every lazy range" in x.free_selected()
    m.check()


@pytest.mark.parametrize("size", ["3 pages", "", "-5"])
def test_explorer_bad_size_changes_nothing(m2, size):
    x = VmallocExplorer(m2)
    before = m2.proc.vmallocinfo()
    x.size.value = size
    assert x.allocate() is None
    assert x.message.startswith("Error:")
    assert m2.proc.vmallocinfo() == before and not x.held


def test_explorer_null_and_nothing_selected(m2):
    x = VmallocExplorer(m2, size="1GiB")                              # more than the machine's RAM
    assert "returned NULL" in x.allocate()
    assert x.free_selected() is None and "select an allocation" in x.message
    with pytest.raises(ValueError):
        VmallocExplorer(m2, call="kmalloc")
    m2.check()


# -- a property: the picture counts what the kernel counts ----------------------------------

@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cpus=st.sampled_from([1, 2]),
       steps=st.lists(st.tuples(st.sampled_from(["alloc", "free", "purge"]), st.integers(1, 40)), max_size=25))
def test_space_classes_agree_with_the_counters(cpus, steps):
    m = Machine(ram="128MiB", cpus=cpus, seed=0, pcp=False)
    held = []
    for op, n in steps:
        if op == "alloc":
            held.append(m.vmalloc(n * PAGE_SIZE))
        elif op == "free" and held:
            m.vfree(held.pop(n % len(held)))
        elif op == "purge":
            vm.purge_vmap_area_lazy(m)
        m.check()
        cells = V.space_classes(m)
        areas = [va for va in m.vmap.busy.values() if va.vm is not None]
        assert np.count_nonzero(cells == V.MAPPED) == m.vmalloc_nr_pages()
        assert np.count_nonzero(cells == V.GUARD) == len(areas)
        assert np.count_nonzero(cells == V.LAZY) == m.vmap.vmap_lazy_nr
        pooled = sum(va.size() for vn in m.vmap.nodes for pool in vn.pool for va in pool) >> 12
        assert np.count_nonzero(cells == V.POOLED) == pooled
