"""BuddyPlayground: allocate and free blocks by hand and watch the buddy allocator split and merge.

    from mmlab.widgets import BuddyPlayground
    BuddyPlayground(m)

Choose an order and GFP flags, press Allocate: the playground calls
m.alloc_pages under m.trace() and shows the change in /proc/buddyinfo, a
picture of the block's neighbourhood frame by frame, and the kernel path
taken (expand splitting a larger block).  Select an allocation and press
Free to watch free_one_page merge it with its buddies; Reset frees every
allocation the playground made.

Everything it shows is text or a PNG, so the playground also runs without
a browser: call allocate(), free_selected() and reset() and read
`message`, `buddyinfo_text`, `trace_text`.
"""
import ipywidgets as W
import numpy as np

from ..errors import KernelBug
from ..mm.page_alloc import FRAME_FREE
from ..uapi import gfp_name
from ..viz import buddy_blocks
from ..viz import frames as F
from ..viz.text import buddyinfo_change
from .common import parse_gfp, figure_png, pre, error_html, info_html, strip_tags, Explorer

GFP_CHOICES = ["GFP_KERNEL", "GFP_ATOMIC", "GFP_HIGHUSER_MOVABLE", "GFP_KERNEL | __GFP_RECLAIMABLE",
               "GFP_KERNEL | GFP_DMA32", "GFP_KERNEL | GFP_DMA", "GFP_NOWAIT"]


class BuddyPlayground(Explorer):
    """An explorer of alloc_pages and free_pages on machine m.

    Attributes a test or a notebook can read: `allocations` (the live
    (pfn, order, gfp) the playground holds), `last_trace` (the Trace of the
    last operation), and the texts shown: `message`, `buddyinfo_text`,
    `trace_text`.
    """

    def __init__(self, m, order=3, gfp="GFP_KERNEL"):
        self.m = m
        self.allocations = []
        self.last_trace = None
        self.start_buddyinfo = m.proc.buddyinfo()
        self.order = W.IntText(value=order, description="order", layout=W.Layout(width="140px"))
        self.gfp = W.Combobox(value=gfp, options=GFP_CHOICES, description="gfp", ensure_option=False,
                              layout=W.Layout(width="340px"))
        self.alloc_button = W.Button(description="Allocate", button_style="primary")
        self.selected = W.Select(options=[], rows=6, description="held",
                                 layout=W.Layout(width="420px"))
        self.free_button = W.Button(description="Free selected")
        self.reset_button = W.Button(description="Reset", button_style="warning",
                                     tooltip="free every allocation made here")
        self.status = W.HTML()
        self.buddyinfo = W.HTML()
        self.picture = W.Image(format="png", layout=W.Layout(max_width="720px"))
        self.trace = W.HTML(layout=W.Layout(max_height="520px", overflow="auto", width="auto"))
        self.alloc_button.on_click(self.allocate)
        self.free_button.on_click(self.free_selected)
        self.reset_button.on_click(self.reset)
        controls = W.VBox([W.HBox([self.order, self.gfp, self.alloc_button]),
                           W.HBox([self.selected, W.VBox([self.free_button, self.reset_button])]),
                           self.status])
        left = W.VBox([controls, self.buddyinfo, self.picture])
        right = W.VBox([W.HTML("<b>trace of the last operation</b>"), self.trace])
        self.widget = W.HBox([left, right])
        self.show_state("Choose an order and GFP flags, then Allocate.", self.first_free_window(), None)

    # -- what the learner sees -------------------------------------------------
    @property
    def buddyinfo_text(self):
        return strip_tags(self.buddyinfo.value)

    # -- the buttons -------------------------------------------------------------
    def allocate(self, _button=None):
        """Allocate: m.alloc_pages(order, gfp) under a trace."""
        before = self.m.proc.buddyinfo()
        try:
            order = self.order.value
            gfp = parse_gfp(self.gfp.value)
            with self.m.trace() as t:
                pfn = self.m.alloc_pages(order, gfp)
        except (ValueError, TypeError, KernelBug) as exc:
            return self.fail(exc)
        self.last_trace = t
        if pfn is None:
            return self.show_after(before, f"alloc_pages(order={order}, {gfp_name(gfp)}) returned NULL: "
                                   "no zone these flags allow has a free block that large above its "
                                   "watermark.", None, None)
        self.allocations.append((pfn, order, gfp))
        self.refresh_list(len(self.allocations) - 1)
        touched = max([e.args.get("high", 0) for e in t.events if e.func == "expand"], default=order)
        return self.show_after(before, f"alloc_pages(order={order}, {gfp_name(gfp)}) = pfn {pfn:#x}",
                               self.window(pfn, order, touched), (pfn, order))

    def free_selected(self, _button=None):
        """Free selected: m.free_pages(pfn, order) for the chosen allocation, under a trace."""
        index = self.selected.value
        if index is None or not 0 <= index < len(self.allocations):
            return self.fail("select an allocation to free first")
        pfn, order, _ = self.allocations[index]
        before = self.m.proc.buddyinfo()
        try:
            with self.m.trace() as t:
                self.m.free_pages(pfn, order)
        except (ValueError, TypeError, KernelBug) as exc:
            return self.fail(exc)
        self.last_trace = t
        del self.allocations[index]
        self.refresh_list(min(index, len(self.allocations) - 1))
        merged = F.block_at(self.m, pfn)
        touched = merged.order if merged is not None else order
        return self.show_after(before, f"free_pages(pfn={pfn:#x}, order={order})",
                               self.window(pfn, order, touched), (pfn, order))

    def reset(self, _button=None):
        """Reset: free every allocation the playground holds (and drain per-CPU lists if on)."""
        before = self.m.proc.buddyinfo()
        last = self.allocations[-1] if self.allocations else None
        freed = 0
        with self.m.trace() as t:
            try:
                while self.allocations:
                    pfn, order, _ = self.allocations[-1]
                    self.m.free_pages(pfn, order)
                    self.allocations.pop()
                    freed += 1
                if getattr(self.m, "pcp_enabled", False):
                    self.m.drain_all_pages()
            except (ValueError, TypeError, KernelBug) as exc:
                self.refresh_list(None)
                return self.fail(exc)
        self.last_trace = t
        self.refresh_list(None)
        window = self.window(last[0], last[1], last[1]) if last else self.first_free_window()
        return self.show_after(before, f"reset: freed {freed} allocation{'s' if freed != 1 else ''}",
                               window, None)

    # -- drawing -------------------------------------------------------------------
    def fail(self, exc):
        """Show an error instead of raising: the machine is unchanged (a failed call changes nothing)."""
        self.status.value = error_html(exc)
        return None

    def refresh_list(self, index):
        self.selected.options = [(f"pfn {pfn:#x}  order {order}  {gfp_name(gfp)}", i)
                                 for i, (pfn, order, gfp) in enumerate(self.allocations)]
        self.selected.value = index if index is not None and 0 <= index < len(self.allocations) else None

    def window(self, pfn, order, touched):
        """(start, npages) of the aligned window around the block, as large as the blocks touched."""
        w = F.window_order(order, touched)
        return pfn & ~((1 << w) - 1), 1 << w

    def first_free_window(self):
        """A window at the first free frame of the highest populated zone (where GFP_KERNEL starts)."""
        zone = F.populated_zones(self.m)[-1]
        state = self.m.mem_map.state[zone.zone_start_pfn:zone.zone_end_pfn]
        free = np.flatnonzero(state == FRAME_FREE)
        pfn = zone.zone_start_pfn + int(free[0]) if len(free) else zone.zone_start_pfn
        return pfn & ~63, 64

    def show_after(self, before, text, window, highlight):
        self.show_state(text, window, highlight)
        after = self.m.proc.buddyinfo()
        self.buddyinfo.value = ("<b>/proc/buddyinfo</b>\n" + pre(after) +
                                "<b>change</b>\n" + pre(buddyinfo_change(before, after)))
        self.trace.value = pre(self.last_trace if self.last_trace is not None else "")
        return text

    def show_state(self, text, window, highlight):
        self.status.value = info_html(text)
        self.buddyinfo.value = "<b>/proc/buddyinfo</b>\n" + pre(self.m.proc.buddyinfo())
        if window is None:          # nothing was allocated: keep the last picture
            return
        start, npages = window
        self.picture.value = figure_png(buddy_blocks(self.m, start, npages, highlight=highlight))

