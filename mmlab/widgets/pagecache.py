"""ReadaheadExplorer: read a file one access at a time and watch the readahead windows.

    from mmlab.widgets.pagecache import ReadaheadExplorer
    ReadaheadExplorer(disk="hdd", read_ahead_kb=128)

Choose the disk, read_ahead_kb, how the program reads (page faults through
mmap, or read() calls), a hint (madvise / posix_fadvise) and how many pages
each access takes; then press "next access" (the following pages, as a
sequential reader), "skip ahead" (a jump forward, as a seek would) or
"reset".  The picture is mmlab.viz.pagecache.residency_strip of the accesses
so far: each row the file's page-cache residency after one access, the
windows that access started (yellow), their PG_readahead page (red) and the
page accessed (black); the text gives the last access's windows, faults and
the clock.  Everything comes from mmlab.workloads.ReadaheadStepper, which
only uses the machine's public calls.  Works without a browser: call
next(), skip(), reset(...) and read `text`.
"""
import ipywidgets as W

from ..uapi import MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED
from ..workloads import fresh_machine, video_paths, ReadaheadStepper, residency_text
from ..viz import pagecache as PC
from .common import figure_png, pre, error_html

HINTS = {"none": None, "NORMAL": MADV_NORMAL, "SEQUENTIAL": MADV_SEQUENTIAL, "RANDOM": MADV_RANDOM,
         "WILLNEED": MADV_WILLNEED}
PATH = video_paths(1)[0]


class ReadaheadExplorer:
    """Controls for the machine and the reader; 'next access' / 'skip ahead' / 'reset'; picture and text."""

    def __init__(self, disk="hdd", read_ahead_kb=128, via="mmap", hint="none", pages_per_access=8,
                 file_pages=256, seed=0, rows=24):
        self.seed, self.file_pages, self.rows = seed, file_pages, rows
        self.text = ""
        self.disk = W.Dropdown(options=["hdd", "ssd", "nvme"], value=disk, description="disk")
        self.ra = W.Dropdown(options=[0, 16, 32, 64, 128, 256, 512, 1024], value=read_ahead_kb,
                             description="read_ahead_kb")
        self.via = W.ToggleButtons(options=["mmap", "read"], value=via, description="reads by")
        self.hint = W.Dropdown(options=list(HINTS), value=hint, description="hint")
        self.per = W.Dropdown(options=[1, 4, 8, 16, 32], value=pages_per_access, description="pages/access")
        self.next_button = W.Button(description="next access")
        self.skip_button = W.Button(description="skip ahead 64 pages")
        self.reset_button = W.Button(description="reset")
        self.next_button.on_click(lambda b: self.next())
        self.skip_button.on_click(lambda b: self.skip())
        self.reset_button.on_click(lambda b: self.reset())
        for w in (self.disk, self.ra, self.via, self.hint, self.per):
            w.observe(lambda change: self.reset(), names="value")
        self.picture = W.Image(format="png", layout=W.Layout(max_width="900px"))
        self.out = W.HTML()
        self.box = W.VBox([W.HBox([self.disk, self.ra, self.hint]), W.HBox([self.via, self.per]),
                           W.HBox([self.next_button, self.skip_button, self.reset_button]),
                           self.out, self.picture])
        self.reset()

    # -- actions (callable without a browser) ----------------------------------------
    def reset(self, disk=None, read_ahead_kb=None, via=None, hint=None):
        """A fresh machine with the chosen disk and window and an uncached file; nothing read yet."""
        for widget, value in ((self.disk, disk), (self.ra, read_ahead_kb), (self.via, via),
                              (self.hint, hint)):
            if value is not None and widget.value != value:
                with _Quiet(widget, self):
                    widget.value = value
        m = fresh_machine(self.disk.value, self.ra.value, self.file_pages * 4096, ram="128MiB",
                          seed=self.seed)
        self.stepper = ReadaheadStepper(m, PATH, via=self.via.value, advice=HINTS[self.hint.value])
        self.next_page = 0
        self.text = (f"{self.file_pages} pages of {PATH} on {self.disk.value}, read_ahead_kb="
                     f"{self.ra.value}, {self.via.value}, hint {self.hint.value}: nothing cached yet")
        self.out.value = pre(self.text)
        self.picture.value = b""
        return self.text

    def next(self):
        """Access the next pages_per_access pages after the last access."""
        return self._access(self.next_page)

    def skip(self, pages=64):
        """Jump `pages` pages ahead of the next page, and access there."""
        return self._access(self.next_page + pages)

    def _access(self, page):
        if page >= self.file_pages:
            self.out.value = error_html("the end of the file: press reset")
            return self.text
        step = self.stepper.access(page, self.per.value)
        self.next_page = page + step.npages
        self.text = self.describe(step)
        self.out.value = pre(self.text)
        shown = self.stepper.steps[-self.rows:]
        self.picture.value = figure_png(PC.residency_strip(shown))
        return self.text

    def describe(self, step):
        """The text shown for one access: the step, the clock, the residency row."""
        m = self.stepper.m
        cached = sum(step.resident)
        return (f"{step}\nclock {m.clock_ns / 1e6:.3f} ms, {cached} of {self.file_pages} pages cached, "
                f"disk reads so far {m.disk.stats['reads']}\n" + residency_text(step))

    def _ipython_display_(self):
        from IPython.display import display
        display(self.box)


class _Quiet:
    """Set a control's value without its observer resetting the machine twice."""

    def __init__(self, widget, owner):
        self.widget, self.owner = widget, owner

    def __enter__(self):
        self.widget.unobserve_all("value")

    def __exit__(self, *exc):
        self.widget.observe(lambda change: self.owner.reset(), names="value")
        return False
