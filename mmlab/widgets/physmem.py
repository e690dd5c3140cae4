"""PhysMemExplorer: look over physical memory, zone by zone, zooming into a range.

    from mmlab.widgets import PhysMemExplorer
    PhysMemExplorer(m)

A zone menu picks the span to show (or all memory), a range slider zooms
into part of it, and a colouring menu switches between frame states
(majority or mixed per cell) and pageblock migrate types.  Under the
picture, a summary counts the frames in the range by state.  It only draws
what mmlab.viz draws; set `zone.value` or `range.value` (or call show())
to drive it without a browser.
"""
import ipywidgets as W

from ..arch import PAGE_SHIFT
from ..viz import physmem_map, pageblock_map
from ..viz import frames as F
from ..viz.style import size_of_frames
from .common import figure_png, pre, error_html, strip_tags, Explorer

COLOURINGS = [("frame state (majority)", "majority"), ("frame state (mixed)", "mixed"),
              ("pageblock migrate type", "pageblock")]


class PhysMemExplorer(Explorer):
    """A zone menu, a zoom range slider over pfns, and the physical map of the range."""

    def __init__(self, m, zone=None, colouring="majority"):
        self.m = m
        self._quiet = False
        self.zone = W.Dropdown(options=[("all memory", None)] + [(z.name, z.name) for z in
                                                                  F.populated_zones(m)],
                               value=zone, description="zone")
        self.colouring = W.Dropdown(options=COLOURINGS, value=colouring, description="colour by")
        self.range = W.IntRangeSlider(min=0, max=m.max_pfn, value=(0, m.max_pfn), description="pfns",
                                      continuous_update=False, readout=False,
                                      layout=W.Layout(width="640px"))
        self.range_label = W.HTML()
        self.status = W.HTML()
        self.picture = W.Image(format="png", layout=W.Layout(max_width="900px"))
        self.summary = W.HTML()
        self.zone.observe(self.on_zone, names="value")
        self.range.observe(self.on_range, names="value")
        self.colouring.observe(self.on_range, names="value")
        self.widget = W.VBox([W.HBox([self.zone, self.colouring]), W.HBox([self.range, self.range_label]),
                              self.status, self.picture, self.summary])
        self.on_zone()

    @property
    def summary_text(self):
        return strip_tags(self.summary.value)

    # -- events ------------------------------------------------------------------
    def on_zone(self, _change=None):
        """A new zone: the slider spans it, zoomed out fully."""
        lo, hi = F.pfn_range(self.m, zone=self.zone.value)
        self._quiet = True
        try:
            self.range.max = max(self.range.max, hi)
            self.range.min = lo
            self.range.max = hi
            self.range.step = max(1, 1 << max(0, ((hi - lo) // 1024).bit_length() - 1))
            self.range.value = (lo, hi)
        finally:
            self._quiet = False
        self.redraw()

    def on_range(self, _change=None):
        if not self._quiet:
            self.redraw()

    def show(self, start_pfn=None, end_pfn=None, zone=None):
        """Select a zone (optional) and a range of pfns, as if set with the controls."""
        if zone is not None and zone != self.zone.value:
            self.zone.value = zone
        lo, hi = self.range.value
        self.range.value = (lo if start_pfn is None else start_pfn, hi if end_pfn is None else end_pfn)
        return self

    # -- drawing -----------------------------------------------------------------
    def redraw(self):
        start, end = self.range.value
        if end <= start:
            self.status.value = error_html("the range is empty: move the slider's ends apart")
            return
        self.status.value = ""
        self.range_label.value = (f"<code>{start << PAGE_SHIFT:#x}-{end << PAGE_SHIFT:#x}</code> "
                                  f"({size_of_frames(end - start)})")
        how = self.colouring.value
        try:
            if how == "pageblock":
                fig = pageblock_map(self.m, start, end)
            else:
                fig = physmem_map(self.m, start, end, how=how)
        except (ValueError, TypeError) as exc:
            self.status.value = error_html(exc)
            return
        self.picture.value = figure_png(fig)
        counts = F.state_counts(self.m, start, end)
        lines = [f"pfn {start:#x}-{end:#x}: {end - start:,} frames ({size_of_frames(end - start)})"]
        zones = [z.name for z in F.populated_zones(self.m) if z.zone_start_pfn < end and z.zone_end_pfn > start]
        lines.append(f"zones: {', '.join(zones) or 'none'}")
        lines += [f"  {name:<13s}{n:>12,} frames" for name, n in counts.items() if n or name != "per-cpu list"]
        self.summary.value = pre("\n".join(lines))
