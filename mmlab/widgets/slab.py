"""KmallocExplorer: choose a size, see its kmalloc cache, allocate, and look at the slab.

    from mmlab.widgets import KmallocExplorer
    KmallocExplorer(m)

A size slider (or the box beside it) and GFP flags pick a kmalloc cache;
the explorer shows its name, slot size, slab order, objects per slab and
the bytes a request of that size wastes, and a picture of this CPU's slab
of the cache with the slot the next kmalloc would take outlined.  kmalloc
allocates for real (m.kmalloc under m.trace()) and says which path it took;
kfree gives back a held object, or any address typed in (a bad one shows
the KernelBug a real kernel would oops with).  A CPU menu sets
m.current_cpu, to free from another CPU than the one that allocated.

Everything it shows is text or a PNG, so it runs without a browser too:
set `size.value`, call kmalloc(), kfree_selected(), kfree_address() and
read `message`, `info_text`, `trace_text`, `held`, `last_path`.
"""
import ipywidgets as W

from ..arch import PAGE_SIZE, PAGE_OFFSET, PAGE_SHIFT
from ..errors import KernelBug
from ..mm import slub
from ..uapi import gfp_name
from ..viz import buddy_blocks
from ..viz import slab as V
from .common import parse_gfp, figure_png, pre, error_html, info_html, strip_tags, Explorer

GFP_CHOICES = ["GFP_KERNEL", "GFP_ATOMIC", "GFP_KERNEL | __GFP_RECLAIMABLE", "GFP_KERNEL_ACCOUNT",
               "GFP_KERNEL | GFP_DMA", "GFP_KERNEL | __GFP_ZERO"]
MAX_SIZE = 1 << 15          # the slider's end: past kmalloc-8k, into kmalloc_large


class KmallocExplorer(Explorer):
    """Size → cache, geometry and waste; kmalloc and kfree on machine m, with the slab drawn.

    Attributes a test or a notebook can read: `held` (the live (addr, size,
    gfp) the explorer allocated), `last_trace` and `last_path` (the path of
    the last kmalloc, one of mmlab.viz.slab.PATHS), and the texts shown:
    `message`, `info_text`, `trace_text`.
    """

    def __init__(self, m, size=100, gfp="GFP_KERNEL"):
        self.m = m
        self.held = []
        self.last_trace = None
        self.last_path = None
        self.last_addr = None
        self.size = W.IntSlider(value=size, min=1, max=MAX_SIZE, description="size",
                                continuous_update=False, layout=W.Layout(width="420px"))
        self.size_box = W.BoundedIntText(value=size, min=0, max=slub.KMALLOC_MAX_SIZE + 1,
                                         layout=W.Layout(width="110px"))
        self.gfp = W.Combobox(value=gfp, options=GFP_CHOICES, description="gfp",
                              ensure_option=False, layout=W.Layout(width="360px"))
        self.cpu = W.Dropdown(options=[(f"CPU {c}", c) for c in range(m.cpus)], value=m.current_cpu,
                              description="on", layout=W.Layout(width="140px"))
        self.alloc_button = W.Button(description="kmalloc", button_style="primary")
        self.selected = W.Select(options=[], rows=5, description="held",
                                 layout=W.Layout(width="460px"))
        self.free_button = W.Button(description="kfree selected")
        self.address = W.Text(placeholder="0xffff888...", description="address",
                              layout=W.Layout(width="300px"))
        self.free_address_button = W.Button(description="kfree address", button_style="warning")
        self.status = W.HTML()
        self.info = W.HTML()
        self.picture = W.Image(format="png", layout=W.Layout(max_width="860px"))
        self.trace = W.HTML(layout=W.Layout(max_height="420px", overflow="auto"))
        self.size.observe(self.on_slider, names="value")
        self.size_box.observe(self.on_box, names="value")
        self.gfp.observe(self.on_change, names="value")
        self.cpu.observe(self.on_cpu, names="value")
        self.alloc_button.on_click(self.kmalloc)
        self.free_button.on_click(self.kfree_selected)
        self.free_address_button.on_click(self.kfree_address)
        self.widget = W.VBox([
            W.HBox([self.size, self.size_box, self.gfp]),
            W.HBox([self.cpu, self.alloc_button]),
            W.HBox([self.selected, self.free_button]),
            W.HBox([self.address, self.free_address_button]),
            self.status, self.info, self.picture,
            W.HTML("<b>trace of the last operation</b>"), self.trace])
        self.status.value = info_html("Choose a size, then kmalloc.")
        self.redraw()

    # -- what the learner sees -------------------------------------------------------
    @property
    def info_text(self):
        return strip_tags(self.info.value)

    # -- the controls --------------------------------------------------------------------
    def on_slider(self, _change=None):
        if self.size_box.value != self.size.value:
            self.size_box.value = self.size.value
        self.redraw()

    def on_box(self, _change=None):
        """The box takes any size (0, or past the slider's end too); the slider follows if it can."""
        value = self.size_box.value
        if 1 <= value <= MAX_SIZE and self.size.value != value:
            self.size.value = value             # redraws through on_slider
        else:
            self.redraw()

    def on_change(self, _change=None):
        self.redraw()

    def on_cpu(self, _change=None):
        self.m.current_cpu = self.cpu.value
        self.status.value = info_html(f"kernel calls now run on CPU {self.cpu.value}")
        self.redraw()

    def kmalloc(self, _button=None):
        """kmalloc: m.kmalloc(size, gfp) under a trace; the object joins the held list."""
        size = self.size_box.value
        try:
            gfp = parse_gfp(self.gfp.value)
            with self.m.trace() as t:
                addr = self.m.kmalloc(size, gfp)
        except (ValueError, TypeError, KernelBug) as exc:
            return self.fail(exc)
        self.last_trace = t
        self.last_path = V.alloc_paths(t)[0]
        if not addr:
            text = f"kmalloc({size}, {gfp_name(gfp)}) returned NULL"
        elif addr == slub.ZERO_SIZE_PTR:
            text = (f"kmalloc(0) = ZERO_SIZE_PTR ({addr}): not NULL, but any access faults; "
                    "nothing to hold")
        else:
            self.held.append((addr, size, gfp))
            self.last_addr = addr
            self.refresh_list(len(self.held) - 1)
            phys = self.m.virt_to_phys(addr)
            text = (f"kmalloc({size}, {gfp_name(gfp)}) = {addr:#x}, physical {phys:#x}; "
                    f"{self.last_path} path ({V.PATH_MEANINGS[self.last_path]})")
        return self.show(text, t)

    def kfree_selected(self, _button=None):
        """kfree the held object chosen in the list."""
        index = self.selected.value
        if index is None or not 0 <= index < len(self.held):
            return self.fail("select an object to free first")
        addr = self.held[index][0]
        result = self.free(addr)
        if result is not None:
            del self.held[index]
            self.refresh_list(min(index, len(self.held) - 1))
        return result

    def kfree_address(self, _button=None):
        """kfree the address typed in: a held object, or anything else (to see kfree refuse it)."""
        text = self.address.value.strip()
        try:
            addr = int(text, 0)
        except ValueError:
            return self.fail(f"address: {text!r} is not a number (write it as 0xffff888...)")
        result = self.free(addr)
        if result is not None:
            self.held = [h for h in self.held if h[0] != addr]
            self.refresh_list(None)
        return result

    def free(self, addr):
        try:
            with self.m.trace() as t:
                self.m.kfree(addr)
        except (ValueError, TypeError, KernelBug) as exc:
            return self.fail(exc)
        self.last_trace = t
        if self.last_addr == addr:
            self.last_addr = None
        calls = t.calls()
        if "__slab_free" in calls:
            how = "slow path (__slab_free): not this CPU's slab"
        elif "do_slab_free" in calls:
            how = "fast path: onto this CPU's freelist"
        elif "free_large_kmalloc" in calls:
            how = "a large kmalloc: its pages go back to the page allocator"
        else:
            how = "NULL or ZERO_SIZE_PTR: nothing to do"
        return self.show(f"kfree({addr:#x}): {how}", t, highlight_addr=addr)

    # -- drawing -----------------------------------------------------------------------------
    def fail(self, exc):
        """Show an error instead of raising; the call changed nothing."""
        self.status.value = error_html(exc)
        return None

    def refresh_list(self, index):
        self.selected.options = [(f"{addr:#x}  kmalloc({size})  {gfp_name(gfp)}", i)
                                 for i, (addr, size, gfp) in enumerate(self.held)]
        self.selected.value = index if index is not None and 0 <= index < len(self.held) else None

    def show(self, text, t, highlight_addr=None):
        self.status.value = info_html(text)
        self.trace.value = pre(V.trace_outline(t))
        self.redraw(highlight_addr)
        return text

    def describe(self, size, gfp):
        """The text under the controls: the cache a size goes to, its geometry and the waste."""
        m = self.m
        if size == 0:
            return "kmalloc(0) returns ZERO_SIZE_PTR (16): no memory at all", None
        if size > slub.KMALLOC_MAX_SIZE:
            return (f"kmalloc({size:,}): more than KMALLOC_MAX_SIZE ({slub.KMALLOC_MAX_SIZE:,}): "
                    "the order would exceed MAX_PAGE_ORDER: kmalloc warns, returns NULL"), None
        if size > slub.KMALLOC_MAX_CACHE_SIZE:
            order = slub.get_order(size)
            block = PAGE_SIZE << order
            share = 100 * (block - size) / block
            return (f"kmalloc({size:,}) is above 8 KiB: kmalloc_large, no cache\n"
                    f"  an order-{order} block from the page allocator: {block:,} bytes "
                    f"({1 << order} pages)\n"
                    f"  waste: {block - size:,} bytes ({share:.1f}% of the block)"), None
        s = slub.kmalloc_slab(m, size, gfp)
        tail = (PAGE_SIZE << s.order) - s.objects * s.size
        lines = [f"kmalloc({size:,}, {gfp_name(gfp)}) goes to {s.name}",
                 f"  slot {s.size} bytes (ksize), aligned to {s.align}",
                 f"  slab: order {s.order} ({1 << s.order} page{'s' if s.order else ''}), "
                 f"{s.objects} objects, {tail} bytes of unused tail",
                 f"  waste: {s.size - size} bytes per object "
                 f"({100 * (s.size - size) / s.size:.1f}% of the slot)"]
        c = s.cpu_slab[m.current_cpu]
        if c.slab is None:
            lines.append(f"  CPU {m.current_cpu} has no {s.name} slab: "
                         "the next kmalloc takes the slow path")
        elif c.freelist:
            nxt = c.slab.address(c.freelist[-1])
            lines.append(f"  CPU {m.current_cpu}'s slab at pfn {c.slab.pfn:#x}: "
                         f"{c.slab.nr_allocated()} of {c.slab.objects} allocated; "
                         f"the next kmalloc takes {nxt:#x} by the fast path")
        else:
            lines.append(f"  CPU {m.current_cpu}'s slab at pfn {c.slab.pfn:#x} has an empty CPU "
                         "freelist: the next kmalloc takes the slow path")
        lines.append(f"  {s.name} holds {len(s.slabs)} slab{'s' if len(s.slabs) != 1 else ''}, "
                     f"{slub.live_objects(s)} objects allocated")
        return "\n".join(lines), s

    def redraw(self, highlight_addr=None):
        """Describe the chosen size's cache, and draw the slab (or large block) that matters now."""
        size = self.size_box.value
        try:
            gfp = parse_gfp(self.gfp.value)
            text, s = self.describe(size, gfp)
        except (ValueError, TypeError) as exc:
            self.info.value = ""
            return self.fail(exc)
        self.info.value = pre(text)
        fig = None
        last = self.last_addr
        if last is not None and slub.virt_to_slab(self.m, last, "redraw") is None and \
                size > slub.KMALLOC_MAX_CACHE_SIZE:
            pfn = (last - PAGE_OFFSET) >> PAGE_SHIFT
            fig = buddy_blocks(self.m, pfn, 1 << int(self.m.mem_map.order[pfn]),
                               highlight=(pfn, int(self.m.mem_map.order[pfn])))
        elif s is not None:
            slab = V.slab_of(self.m, s)
            if slab is not None:
                fig = V.slab_strip(self.m, slab, highlight=self.highlight_in(slab, highlight_addr))
        self.picture.value = figure_png(fig) if fig is not None else b""
        return text

    def highlight_in(self, slab, addr):
        """The slot to outline: the object just allocated or freed if here, else the next one out."""
        for a in (addr, self.last_addr):
            if a is not None and slab.base <= a < slab.base + (PAGE_SIZE << slab.order):
                return a
        states, next_out = V.slot_states(slab)
        if 1 in next_out:
            return slab.address(next_out.index(1))
        return None
