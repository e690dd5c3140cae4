"""VmallocExplorer: allocate and free with vmalloc and watch the vmalloc space, the frames and the purge.

    from mmlab.widgets import VmallocExplorer
    VmallocExplorer(m)

Type a size ('16 KiB', '3MiB', '12288'), pick vmalloc, vzalloc or kvmalloc,
press Allocate: the explorer calls the machine under m.trace() and shows
/proc/vmallocinfo, the vmalloc space page by page (mapped pages, guard
pages, lazily freed and pooled ranges), the frames behind the new
allocation, and the outline of the kernel path.  Select an allocation and
press Free (kvfree) to see its range wait for a purge; Purge runs the lazy
purge the kernel's drain work would run, flushing the TLB once for every
waiting range.

Everything shown is text or a PNG, so the explorer also runs without a
browser: call allocate(), free_selected() and purge() and read `message`,
`vmallocinfo_text`, `space`, `trace_text`.
"""
import ipywidgets as W

from ..arch import parse_size
from ..errors import KernelBug
from ..mm import vmalloc as vm
from ..viz import vmalloc as V
from .common import figure_png, pre, error_html, info_html, Explorer

CALLS = ["vmalloc", "vzalloc", "kvmalloc"]
MAX_PICTURE_PAGES = 8192        # the space picture stops here (32 MiB of address space)


class VmallocExplorer(Explorer):
    """An explorer of vmalloc, vfree and the lazy purge on machine m.

    Attributes a test or a notebook can read: `held` (the live (addr, size,
    call) the explorer made), `last_trace` (the Trace of the last operation)
    and the texts shown: `message`, `vmallocinfo_text`, `space` (the
    vmalloc space as text), `trace_text`.
    """

    def __init__(self, m, size="16 KiB", call="vmalloc", caller="explorer_init+0x1c/0x80"):
        if call not in CALLS:
            raise ValueError(f"call must be one of {', '.join(CALLS)}, not {call!r}")
        self.m = m
        self.held = []
        self.last_trace = None
        self.size = W.Text(value=str(size), description="size", layout=W.Layout(width="200px"))
        self.call = W.Dropdown(options=CALLS, value=call, description="call", layout=W.Layout(width="200px"))
        self.caller = W.Text(value=caller, description="caller", layout=W.Layout(width="320px"))
        self.alloc_button = W.Button(description="Allocate", button_style="primary")
        self.selected = W.Select(options=[], rows=6, description="held", layout=W.Layout(width="460px"))
        self.free_button = W.Button(description="Free selected")
        self.purge_button = W.Button(description="Purge lazy ranges", button_style="warning",
                                     tooltip="__purge_vmap_area_lazy: one TLB flush, every waiting range freed")
        self.status = W.HTML()
        self.info = W.HTML(layout=W.Layout(max_height="220px", overflow="auto"))
        self.space_image = W.Image(format="png", layout=W.Layout(max_width="760px"))
        self.frames_image = W.Image(format="png", layout=W.Layout(max_width="760px"))
        self.trace = W.HTML(layout=W.Layout(max_height="560px", overflow="auto", width="auto"))
        self.alloc_button.on_click(self.allocate)
        self.free_button.on_click(self.free_selected)
        self.purge_button.on_click(self.purge)
        controls = W.VBox([W.HBox([self.size, self.call, self.caller, self.alloc_button]),
                           W.HBox([self.selected, W.VBox([self.free_button, self.purge_button])]),
                           self.status])
        left = W.VBox([controls, self.info, self.space_image, self.frames_image])
        right = W.VBox([W.HTML("<b>the last operation's kernel path (outline)</b>"), self.trace])
        self.widget = W.HBox([left, right])
        self.show("Type a size, choose a call, then Allocate.", None)

    # -- what the learner sees ---------------------------------------------------
    @property
    def vmallocinfo_text(self):
        return self.m.proc.vmallocinfo()

    @property
    def space(self):
        """The vmalloc space as text, one character per page (mmlab.viz.vmalloc.space_text)."""
        npages, cols = self.window()
        return V.space_text(self.m, npages=npages, cols=cols)

    # -- the buttons ---------------------------------------------------------------
    def allocate(self, _button=None):
        """Allocate: m.vmalloc / m.vzalloc / m.kvmalloc(size, caller=...) under a trace."""
        call = self.call.value
        try:
            size = parse_size(self.size.value, "size")
            with self.m.trace() as t:
                addr = getattr(self.m, call)(size, caller=self.caller.value.strip())
        except (ValueError, TypeError, KernelBug) as exc:
            return self.fail(exc)
        self.last_trace = t
        if not addr:
            return self.show(f"{call}({size}) returned NULL (0): see the trace for why.", None)
        self.held.append((addr, size, call))
        self.refresh_list(len(self.held) - 1)
        where = "a vmalloc area" if vm.is_vmalloc_addr(addr) else "kmalloc memory (the direct map)"
        return self.show(f"{call}({size}) = {addr:#x}, in {where}", addr)

    def free_selected(self, _button=None):
        """Free selected: kvfree the chosen allocation (vfree for vmalloc addresses) under a trace."""
        index = self.selected.value
        if index is None or not 0 <= index < len(self.held):
            return self.fail("select an allocation to free first")
        addr, size, call = self.held[index]
        lazy_before = self.m.vmap.vmap_lazy_nr
        try:
            with self.m.trace() as t:
                self.m.kvfree(addr)
        except (ValueError, TypeError, KernelBug) as exc:
            return self.fail(exc)
        self.last_trace = t
        del self.held[index]
        self.refresh_list(min(index, len(self.held) - 1))
        if not vm.is_vmalloc_addr(addr):
            text = f"kvfree({addr:#x}): kfree, the memory is free at once"
        elif "__purge_vmap_area_lazy" in t.calls():
            text = (f"vfree({addr:#x}): more than {vm.lazy_max_pages(self.m)} pages waited, so this "
                    "vfree purged every lazy range (one TLB flush)")
        else:
            text = (f"vfree({addr:#x}): pages freed; the range waits for a purge "
                    f"({self.m.vmap.vmap_lazy_nr} of {vm.lazy_max_pages(self.m)} lazy pages, "
                    f"was {lazy_before})")
        return self.show(text, self.selected_addr())

    def purge(self, _button=None):
        """Purge: __purge_vmap_area_lazy, as the drain work runs it, under a trace."""
        waiting = self.m.vmap.vmap_lazy_nr
        with self.m.trace() as t:
            purged = vm.purge_vmap_area_lazy(self.m)
        self.last_trace = t
        text = (f"purged: {waiting} lazy pages freed after one TLB flush" if purged
                else "nothing to purge: no range waits")
        return self.show(text, self.selected_addr())

    # -- drawing -----------------------------------------------------------------------
    def fail(self, exc):
        """Show an error instead of raising: a failed call changes nothing."""
        self.status.value = error_html(exc)
        return None

    def refresh_list(self, index):
        self.selected.options = [(f"{addr:#x}  {call}({size})  {self.pages(addr)}", i)
                                 for i, (addr, size, call) in enumerate(self.held)]
        self.selected.value = index if index is not None and 0 <= index < len(self.held) else None

    def pages(self, addr):
        area = vm.find_vm_area(self.m, addr)
        return f"{area.nr_pages} pages + guard" if area is not None else "kmalloc"

    def selected_addr(self):
        index = self.selected.value
        return self.held[index][0] if index is not None and 0 <= index < len(self.held) else None

    def window(self):
        """(npages, cols) of the space picture: every range in use, up to MAX_PICTURE_PAGES."""
        npages = V.used_extent(self.m, 64)
        cols = 64 if npages <= 2048 else 256
        npages = min(-(-npages // cols) * cols, MAX_PICTURE_PAGES)
        return npages, cols

    def show(self, text, addr):
        self.status.value = info_html(text)
        self.info.value = "<b>/proc/vmallocinfo</b>\n" + pre(self.m.proc.vmallocinfo() or "(empty)")
        npages, cols = self.window()
        self.space_image.value = figure_png(V.vmalloc_space(self.m, npages=npages, cols=cols))
        if addr is not None and (not vm.is_vmalloc_addr(addr) or V.area_of(self.m, addr) is not None):
            self.frames_image.value = figure_png(V.area_frames(self.m, addr))
        self.trace.value = pre(V.trace_outline(self.last_trace, depth=1) if self.last_trace else "")
        return text
