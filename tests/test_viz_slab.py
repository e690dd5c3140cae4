"""mmlab.viz.slab, the KmallocExplorer widget and the slab probes.

The figures are read back (the lines' data, the patches, the bars, the
titles and labels) and compared with the machine's caches; the text views
are compared as whole strings; the widget is driven by calling its handlers,
and must show errors instead of raising.  The probes parse the model's
/proc/slabinfo and, where the host allows, the kernel's.
"""
import matplotlib
matplotlib.use("Agg")
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mmlab import Machine
from mmlab.linux import probes
from mmlab.linux.probes import HostUnavailable, parse_slabinfo, parse_sys_slab_value
from mmlab.mm import slub
from mmlab.uapi import GFP_KERNEL, __GFP_NOWARN
from mmlab.viz import slab as V
from mmlab.widgets import KmallocExplorer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def m():
    return Machine(ram="256MiB", cpus=2, seed=0)


def assert_labelled(fig, ax=None):
    """Every figure has a title and labelled axes."""
    ax = ax or fig.axes[0]
    assert isinstance(fig, Figure)
    assert ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()


def slot_patches(fig):
    """The filled rectangles of a slab strip: (x, row, width, facecolor as hex)."""
    out = []
    for p in fig.axes[0].patches:
        if isinstance(p, Rectangle) and p.get_fill():
            colour = matplotlib.colors.to_hex(p.get_facecolor())
            out.append((p.get_x(), round(p.get_y()), p.get_width(), colour))
    return out


# -- waste over the request size ---------------------------------------------------------

def test_kmalloc_waste_lines_are_ksize_minus_size(m):
    # the solid line is ksize - size for every request; the dashed one adds the tail share
    fig = V.kmalloc_waste(m)
    top, bottom = fig.axes
    assert top.get_title() and top.get_ylabel()                       # the panels share the x axis
    assert bottom.get_xlabel() and bottom.get_ylabel()
    def curves(ax):                                     # the plotted lines, not the class marks
        return [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    slot_line, share_line = curves(top)
    x, y = slot_line.get_data()
    waste = dict(zip(x.tolist(), y.tolist()))
    for size in (1, 8, 9, 65, 100, 129, 193, 1025, 8192):
        assert waste[size] == slub.kmalloc_size_roundup(m, size) - size
    x, y = share_line.get_data()
    share = dict(zip(x.tolist(), y.tolist()))
    assert share[96] == pytest.approx(4096 / 42 - 96)       # kmalloc-96's 64-byte tail, shared
    assert share[64] == 0                                             # kmalloc-64 has no tail
    x, y = curves(bottom)[0].get_data()
    percent = dict(zip(x.tolist(), y.tolist()))
    assert percent[33] == pytest.approx(100 * 31 / 64)


def test_kmalloc_waste_reaches_kmalloc_large(m):
    # past 8 KiB the requests are whole-page blocks, with their orders as classes
    fig = V.kmalloc_waste(m, 1 << 16)
    x, y = fig.axes[0].get_lines()[0].get_data()
    waste = dict(zip(x.tolist(), y.tolist()))
    assert waste[8193] == 16384 - 8193
    assert waste[20000] == 32768 - 20000
    assert V.size_classes(m, 1 << 16)[-3:] == [(16384, "order 2"), (32768, "order 3"),
                                               (65536, "order 4")]


def test_size_classes_and_footprint(m):
    # the thirteen kmalloc classes, smallest first; slot and per-object cost
    assert [size for size, _ in V.size_classes(m)] == [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024,
                                                       2048, 4096, 8192]
    assert V.size_classes(m, 100) == [(8, "kmalloc-8"), (16, "kmalloc-16"), (32, "kmalloc-32"),
                                      (64, "kmalloc-64"), (96, "kmalloc-96"), (128, "kmalloc-128")]
    assert V.kmalloc_footprint(m, 150) == (192, 4096 / 21)
    assert V.kmalloc_footprint(m, 9000) == (16384, 16384.0)
    assert V.kmalloc_cache(m, 100).name == "kmalloc-128"


@pytest.mark.parametrize("call, error", [
    (lambda m: V.kmalloc_waste(m, 8), ValueError),                  # too short a range
    (lambda m: V.kmalloc_waste(m, (4 << 20) + 1), ValueError),      # beyond KMALLOC_MAX_SIZE
    (lambda m: V.kmalloc_cache(m, 0), ValueError),
    (lambda m: V.kmalloc_cache(m, 8193), ValueError),               # a large kmalloc has no cache
    (lambda m: V.kmalloc_footprint(m, "64"), TypeError),
])
def test_waste_bad_arguments(m, call, error):
    with pytest.raises(error):
        call(m)


# -- a slab slot by slot --------------------------------------------------------------------

def test_slot_states_follow_the_freelists(m):
    # LIFO on the CPU freelist; a remote free goes to the slab's freelist, taken after
    objs = [m.kmalloc(128) for _ in range(6)]
    m.kfree(objs[1])
    m.kfree(objs[4])
    m.current_cpu = 1
    m.kfree(objs[2])
    m.current_cpu = 0
    states, next_out = V.slot_states(V.slab_of(m, objs[0]))
    assert states[:7] == ["allocated", "free, CPU freelist", "free, slab freelist", "allocated",
                          "free, CPU freelist", "allocated", "free, CPU freelist"]
    assert next_out[:7] == [0, 2, 29, 0, 1, 0, 3]      # 4 then 1, then slots 6..31, then 2
    assert [m.kmalloc(128) for _ in range(2)] == [objs[4], objs[1]]


def test_slab_text(m):
    # one character per slot, '^' under the next out
    objs = [m.kmalloc(256) for _ in range(6)]
    m.kfree(objs[3])
    m.kfree(objs[1])
    assert V.slab_text(m, objs[0], per_row=16) == (
        "kmalloc-256 slab at pfn 0x2800: order 0, 16 slots of 256 bytes, 4 allocated, CPU 0's slab\n"
        "   0  #:#:##::::::::::\n"
        "       ^\n"
        "# allocated  : free on the CPU freelist  . free on the slab freelist  ^ next out")
    assert V.slab_text(m, m.slub.find("kmalloc-8")) == "no slab"


def test_slab_strip_draws_every_slot_and_the_tail(m):
    # a 700-byte cache: order 2, 23 slots, one crossing each page boundary, a 192-byte tail
    s = m.kmem_cache_create("t700", 700)
    objs = [s.alloc() for _ in range(7)]
    fig = V.slab_strip(m, objs[5])
    assert_labelled(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["pfn 0x2810", "pfn 0x2811", "pfn 0x2812",
                                                            "pfn 0x2813"]
    patches = slot_patches(fig)
    allocated = [p for p in patches if p[3] == V.SLOT_COLORS["allocated"]]
    free = [p for p in patches if p[3] == V.SLOT_COLORS["free, CPU freelist"]]
    tail = [p for p in patches if p[3] == V.SLOT_COLORS["unused tail"]]
    assert sum(p[2] for p in allocated) == 7 * 704
    assert sum(p[2] for p in free) == 16 * 704
    assert tail == [(4096 - 192, 3, 192, V.SLOT_COLORS["unused tail"])]
    assert (3520, 0, 576, V.SLOT_COLORS["allocated"]) in allocated      # slot 5 runs off page 0 ...
    assert (0, 1, 128, V.SLOT_COLORS["allocated"]) in allocated         # ... into page 1
    outlines = [p for p in ax.patches if not p.get_fill()]
    assert [(p.get_x(), round(p.get_y()), p.get_width()) for p in outlines] == [(3520, 0, 576),
                                                                                (0, 1, 128)]
    labels = [t.get_text() for t in ax.texts]
    assert labels == [str(k) for k in range(1, 17)]         # the free slots, in order out


def test_slab_strip_of_a_cache_and_its_errors(m):
    # a cache draws its CPU slab; bad inputs raise ValueError naming the problem
    a = m.kmalloc(64)
    fig = V.slab_strip(m, m.slub.find("kmalloc-64"))
    assert "kmalloc-64 slab at pfn" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].texts][:2] == ["1", "2"]
    with pytest.raises(ValueError, match="no slab yet"):
        V.slab_strip(m, m.slub.find("kmalloc-96"))
    with pytest.raises(ValueError, match="not the start of a slot"):
        V.slab_strip(m, a, highlight=a + 8)
    with pytest.raises(ValueError, match="not in a slab page"):
        V.slab_strip(m, m.kmalloc(20000))


def test_cache_table_and_lists(m):
    # the geometry table, and where each slab is after a remote free into a full slab
    assert V.cache_table([m.slub.find("kmalloc-192"), m.slub.find("kmalloc-8k")]).splitlines() == [
        "cache             object   slot align order  objs  tail min_partial cpu_partial",
        "kmalloc-192          192    192    64     0    21    64           5         120",
        "kmalloc-8k          8192   8192  8192     3     4     0           6           6"]
    objs = [m.kmalloc(64) for _ in range(65)]
    m.current_cpu = 1
    m.kfree(objs[0])
    m.kfree(objs[64])
    assert V.cache_lists(m.slub.find("kmalloc-64")) == (
        "kmalloc-64: 2 slabs, 63 objects allocated\n"
        "  CPU 0: slab 0x2801 (0/64), 63 on its freelist, 1 freed by others; partial: -\n"
        "  CPU 1: no slab; partial: 0x2800 (63/64)\n"
        "  node partial: -\n"
        "  full, on no list: -")


# -- paths from traces --------------------------------------------------------------------------

def test_alloc_paths_names_every_path(m):
    # one scenario that takes each path once (and the fast path in between)
    s = m.slub.find("kmalloc-64")
    with m.trace() as t:
        objs = [m.kmalloc(64) for _ in range(64)]       # new slab, then 63 fast
    assert V.alloc_paths(t) == ["new slab"] + ["fast"] * 63
    m.current_cpu = 1
    m.kfree(objs[0])                                    # into CPU 0's slab: refill next
    m.kfree(objs[1])
    m.current_cpu = 0
    with m.trace() as t:
        for _ in range(3):
            m.kmalloc(64)
    assert V.alloc_paths(t) == ["refill", "fast", "new slab"]
    m.kfree(objs[5])                                    # the old full slab: CPU 0's partial list
    for _ in range(63):
        m.kmalloc(64)
    with m.trace() as t:
        m.kmalloc(64)
    assert V.alloc_paths(t) == ["cpu partial"]
    m.kfree(objs[6])                                    # slab 0x2800 to CPU 0's partial list ...
    slub.flush_all(s)                                   # ... and from there to the node's
    with m.trace() as t:
        m.kmalloc(64)
        m.kmalloc(0)
        m.kmalloc(20000)
        m.kmalloc(8 << 20, GFP_KERNEL | __GFP_NOWARN)
        m.kfree(objs[7])                                # not an allocation: ignored
        m.kmem_cache_create("k", 40).alloc()            # kmalloc(name), 2 kmem_cache_allocs, alloc
    assert V.alloc_paths(t) == ["node partial", "zero", "large", "failed",
                                "new slab", "new slab", "new slab", "new slab"]
    m.check()


def test_path_timeline(m):
    # one mark per allocation, on its path's row; unknown paths are refused
    paths = ["new slab", "fast", "fast", "refill", "fast"]
    fig = V.path_timeline(paths)
    assert_labelled(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fast", "refill", "new slab"]
    rows = {r: sorted(int(x) for x, _ in c.get_offsets()) for r, c in enumerate(ax.collections)}
    assert rows == {0: [1, 2, 4], 1: [3], 2: [0]}
    assert "2 slow, 3 fast" in ax.get_title()
    with pytest.raises(ValueError, match="'slow'"):
        V.path_timeline(["fast", "slow"])


def test_trace_outline_hides_the_page_allocator(m):
    # alloc_pages shows with its result; what it calls does not
    with m.trace() as t:
        m.kmalloc(100)
    outline = V.trace_outline(t).splitlines()
    assert outline[-2].strip().startswith("alloc_pages(order=0")
    assert outline[-1].strip() == ("· allocate_slab: kmalloc-128 slab at pfn 0x2800, order 0, "
                                   "32 objects of 128 bytes")
    assert "rmqueue" not in V.trace_outline(t) and "rmqueue" in str(t)


# -- /proc/slabinfo as data and as a figure ------------------------------------------------------

def test_parse_slabinfo_reads_the_models_file(m):
    # every line of the model's file, as numbers, newest cache first
    m.kmalloc(64)
    rows = parse_slabinfo(m.proc.slabinfo())
    assert list(rows)[:2] == ["kmalloc_buckets", "kmalloc-cg-8k"]
    assert rows["kmalloc-64"] == {"active_objs": 64, "num_objs": 64, "objsize": 64, "objperslab": 64,
                                  "pagesperslab": 1, "limit": 0, "batchcount": 0, "sharedfactor": 0,
                                  "active_slabs": 1, "num_slabs": 1, "sharedavail": 0}
    assert len(rows) == 4 * 13 + 3


@pytest.mark.parametrize("text", [
    "",                                                             # empty
    "slabinfo - version: 1.1\n",                                    # another version
    "slabinfo - version: 2.1\nfoo 1 2 3\n",                         # a short line
    "slabinfo - version: 2.1\nfoo 1 2 3 4 5 : tunables 0 0 0 : slabdata 1 x 0\n",   # not a number
])
def test_parse_slabinfo_refuses_other_text(text):
    with pytest.raises(ValueError):
        parse_slabinfo(text)


def test_parse_sys_slab_value():
    assert parse_sys_slab_value("2048 N0=2048\n") == 2048
    assert parse_sys_slab_value("1\n") == 1
    assert parse_sys_slab_value("224(7) C0=96(3) C1=128(4)\n") == "224(7) C0=96(3) C1=128(4)"
    assert parse_sys_slab_value("\n") == ""


def test_slab_usage_bars_are_the_rows(m):
    # three bars per cache: slab pages, slots, active objects, in KiB
    objs = [m.kmalloc(500) for _ in range(20)]
    for a in objs[:3]:
        m.kfree(a)
    m.slub.find("kmalloc-512").shrink()
    fig = V.slab_usage(parse_slabinfo(m.proc.slabinfo()))
    assert_labelled(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["kmalloc-512"]
    assert [round(b.get_width(), 3) for b in ax.patches] == [16.0, 16.0, 17 * 512 / 1024]
    assert fig.legends and [t.get_text() for t in fig.legends[0].get_texts()][0] == "slab pages"


def test_drawing_changes_nothing(m, unchanged):
    # every picture and text only reads the machine
    objs = [m.kmalloc(100) for _ in range(5)]
    with unchanged(m):
        before = m.proc.slabinfo()
        V.kmalloc_waste(m)
        V.slab_strip(m, objs[2])
        V.slab_text(m, objs[0])
        V.cache_lists(m.slub.find("kmalloc-128"))
        V.slab_usage(parse_slabinfo(m.proc.slabinfo()))
        assert m.proc.slabinfo() == before


# -- the widget --------------------------------------------------------------------------------

def test_explorer_shows_the_cache_of_a_size(m):
    # moving the slider describes the cache; nothing is allocated
    k = KmallocExplorer(m, size=100)
    assert k.info_text.splitlines()[:4] == [
        "kmalloc(100, GFP_KERNEL) goes to kmalloc-128",
        "  slot 128 bytes (ksize), aligned to 128",
        "  slab: order 0 (1 page), 32 objects, 0 bytes of unused tail",
        "  waste: 28 bytes per object (21.9% of the slot)"]
    k.size.value = 150
    assert k.size_box.value == 150 and "goes to kmalloc-192" in k.info_text
    k.size_box.value = 9000                             # beyond the cache sizes
    assert k.size.value == 9000 and "an order-2 block" in k.info_text
    k.size_box.value = 0
    assert "ZERO_SIZE_PTR" in k.info_text
    assert m.node_stat["nr_slab_unreclaimable"] == 0


def test_explorer_kmalloc_and_kfree_drive_the_machine(m):
    # allocate twice (slow, then fast), free one, see the picture of the slab
    k = KmallocExplorer(m, size=192)
    k.alloc_button.click()
    k.kmalloc()
    assert [(a - k.held[0][0], size) for a, size, _ in k.held] == [(0, 192), (192, 192)]
    assert k.last_path == "fast" and "fast path" in k.message
    assert "slab_alloc_node" in k.trace_text
    assert "2 of 21 allocated" in k.info_text
    assert k.picture.value.tobytes().startswith(PNG)
    k.selected.value = 0
    k.free_button.click()
    assert len(k.held) == 1 and "fast path: onto this CPU's freelist" in k.message
    assert slub.live_objects(m.slub.find("kmalloc-192")) == 1
    m.check()


def test_explorer_remote_free_and_large(m):
    # a free from CPU 1 takes the slow path; a 20,000-byte kmalloc is drawn as its block
    k = KmallocExplorer(m, size=64)
    k.kmalloc()
    k.cpu.value = 1
    assert m.current_cpu == 1
    k.selected.value = 0
    k.kfree_selected()
    assert "slow path (__slab_free)" in k.message
    k.cpu.value = 0
    k.size_box.value = 20000
    k.kmalloc()
    assert k.last_path == "large" and m.ksize(k.held[-1][0]) == 32768
    assert k.picture.value.tobytes().startswith(PNG)
    k.address.value = hex(k.held[-1][0])
    k.kfree_address()
    assert k.held == [] and "its pages go back" in k.message
    m.check()


@pytest.mark.parametrize("setup, press, shown", [
    (lambda k: setattr(k.gfp, "value", "GFP_FOO"), "kmalloc", "not a GFP flag"),
    (lambda k: setattr(k.address, "value", "hello"), "kfree_address", "not a number"),
    (lambda k: setattr(k.address, "value", "0x1000"), "kfree_address", "not a direct-map address"),
    (lambda k: None, "kfree_selected", "select an object"),
])
def test_explorer_shows_errors_instead_of_raising(m, unchanged, setup, press, shown):
    # bad input: a message, and the machine as it was
    k = KmallocExplorer(m)
    setup(k)
    with unchanged(m):
        getattr(k, press)()
    assert shown in k.message


def test_explorer_double_free_is_a_message(m, unchanged):
    # the second kfree of an address shows SLUB's report, changes nothing
    k = KmallocExplorer(m, size=64)
    k.kmalloc()
    k.address.value = hex(k.held[0][0])
    k.kfree_address()
    with unchanged(m):
        assert k.kfree_address() is None
    assert "Object already free" in k.message and k.message.startswith("Error:")


def test_explorer_above_4mib_returns_null(m):
    # kmalloc(4 MiB + 1) is NULL: nothing held
    k = KmallocExplorer(m)
    k.size_box.value = (4 << 20) + 1
    k.kmalloc()
    assert k.held == [] and k.last_path == "failed" and "returned NULL" in k.message
    assert "more than KMALLOC_MAX_SIZE" in k.info_text


# -- the host's slab caches --------------------------------------------------------------------

def test_sys_slab_refuses_bad_names():
    for name in ("", "../etc", ".", 5):
        with pytest.raises(ValueError):
            probes.sys_slab(name)


@pytest.mark.host("slabinfo")
def test_host_slabinfo_parses():
    # every line of this kernel's /proc/slabinfo, with kmalloc-64 as the model lays it out
    rows = probes.slabinfo()
    assert len(rows) > 50
    assert {k: rows["kmalloc-64"][k] for k in ("objsize", "objperslab", "pagesperslab")} == {
        "objsize": 64, "objperslab": 64, "pagesperslab": 1}
    assert all(r["active_objs"] <= r["num_objs"] for r in rows.values())


@pytest.mark.host("sys_slab")
def test_host_sys_slab_matches_the_model():
    # /sys/kernel/slab/kmalloc-256 has the geometry the model computes for this CPU count
    host = probes.sys_slab("kmalloc-256")
    model = Machine(ram="256MiB", cpus=present_cpus(), seed=0).slub.find("kmalloc-256").sysfs()
    for field in ("object_size", "slab_size", "align", "order", "objs_per_slab", "min_partial",
                  "cpu_partial"):
        assert host[field] == model[field], field
    with pytest.raises(HostUnavailable, match="no slab cache"):
        probes.sys_slab("no-such-cache")


def present_cpus():
    """num_present_cpus, from /sys/devices/system/cpu/present ('0-1' is 2)."""
    count = 0
    for part in probes.read_text("/sys/devices/system/cpu/present").strip().split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count
