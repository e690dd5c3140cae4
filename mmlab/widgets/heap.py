"""HeapStepper: step through a trace of malloc calls and watch chunks, bins, tcache and the kernel calls.

    from mmlab.widgets import HeapStepper
    HeapStepper('''
        a = malloc(24)
        b = malloc(24)
        free(a)
        c = malloc(24)
    ''')

The stepper runs the whole trace once, on a fresh process of its own
machine, and keeps what each call left behind: the heap as a strip of chunks
coloured by state (mmlab.viz.heap.heap_strip), the tcache and bins head
first, the path the call took through glibc, and the system calls it made
(brk, mmap, munmap, madvise).  The slider and the buttons move between steps;
step 0 is the process before its first call.  Edit the trace and press Load
to run another one.

Everything shown is text or a PNG, so the stepper also runs without a
browser: call next(), back(), goto(k), load(text) and read `message`,
`heap_text`, `bins_text`, `kernel_text` and `path_text`, or figure().
"""
import ipywidgets as W

from .. import Machine
from ..errors import require_int
from ..libc import GlibcAbort
from ..viz import heap as H
from .common import figure_png, pre, error_html, info_html, Explorer


class HeapStepper(Explorer):
    """Step through a malloc trace on a process of machine `m` (by default a fresh seeded 256 MiB machine).

    `trace` is text, one call a line, in C (`p = malloc(24)`, `free(p)`) or
    in the malloc driver's language (`m 0 24`, `f 0`); see
    mmlab.viz.heap.parse_call.  Attributes a test or a notebook can read:
    `steps` (the Steps run), `index` (the step shown; 0 is before the first
    call), `view` (its HeapView) and the texts shown.
    """

    def __init__(self, trace="", m=None, *, seed=0, scale="log"):
        if scale not in ("log", "bytes"):
            raise ValueError(f"scale must be 'log' or 'bytes', not {scale!r}")
        self.m = m if m is not None else Machine(ram="256MiB", cpus=2, seed=seed)
        self.scale = scale
        self.steps = []
        self.start = None               # the HeapView before the first call
        self.process = None
        self.index = 0
        self.error = None               # why the trace stopped early, or None
        self.source = W.Textarea(value=_dedent(trace), description="trace",
                                 layout=W.Layout(width="330px", height="260px"))
        self.load_button = W.Button(description="Load", button_style="primary",
                                    tooltip="run the trace on a fresh process")
        self.slider = W.IntSlider(value=0, min=0, max=0, description="step", continuous_update=False,
                                  layout=W.Layout(width="420px"))
        self.back_button = W.Button(description="◀ Back", layout=W.Layout(width="90px"))
        self.next_button = W.Button(description="Next ▶", layout=W.Layout(width="90px"))
        self.reset_button = W.Button(description="Reset", button_style="warning", layout=W.Layout(width="90px"),
                                     tooltip="back to step 0, before the first call")
        self.status = W.HTML()
        self.image = W.Image(format="png", layout=W.Layout(max_width="820px"))
        self.bins = W.HTML(layout=W.Layout(max_height="200px", overflow="auto"))
        self.kernel = W.HTML(layout=W.Layout(max_height="160px", overflow="auto"))
        self.path = W.HTML(layout=W.Layout(max_height="320px", overflow="auto"))
        self.load_button.on_click(lambda _b: self.load())
        self.back_button.on_click(lambda _b: self.back())
        self.next_button.on_click(lambda _b: self.next())
        self.reset_button.on_click(lambda _b: self.reset())
        self.slider.observe(self._on_slider, names="value")
        left = W.VBox([self.source, self.load_button])
        right = W.VBox([W.HBox([self.slider, self.back_button, self.next_button, self.reset_button]),
                        self.status, self.image,
                        W.HBox([W.VBox([W.HTML("<b>tcache and bins, head first</b>"), self.bins],
                                       layout=W.Layout(width="50%")),
                                W.VBox([W.HTML("<b>system calls made by this step</b>"), self.kernel],
                                       layout=W.Layout(width="50%"))]),
                        W.HTML("<b>the path through glibc (the kernel cut at its entry)</b>"), self.path])
        self.widget = W.HBox([left, right])
        self.load()

    # -- what the learner sees ---------------------------------------------------------
    @property
    def current(self):
        """The Step shown, or None at step 0."""
        return self.steps[self.index - 1] if self.index else None

    @property
    def view(self):
        """The HeapView after the step shown (before any call at step 0)."""
        step = self.current
        return step.view if step is not None else self.start

    @property
    def heap_text(self):
        return H.heap_text(self.view)

    @property
    def bins_text(self):
        return H.bins_text(self.view)

    @property
    def kernel_text(self):
        """The system calls of the step shown, one a line ("no system call" when malloc served it alone)."""
        step = self.current
        if step is None:
            return ""
        calls = H.kernel_calls(step.trace)
        return "\n".join(text for _, text in calls) if calls else "no system call: malloc served it alone"

    @property
    def path_text(self):
        step = self.current
        return H.call_path(step.trace) if step is not None else ""

    def figure(self):
        """The heap strip of the step shown (the picture the widget displays)."""
        step = self.current
        title = None
        if step is not None:
            title = f"after step {step.index}: {step.call.text}"
        return H.heap_strip(self.view, scale=self.scale, title=title,
                            highlight=step.result if step is not None and step.result else None)

    # -- the controls -------------------------------------------------------------------
    def load(self, text=None):
        """Run the trace (the text box's, or `text`) on a fresh process; show step 0. Returns the message."""
        if text is not None:
            self.source.value = _dedent(text)
        try:
            calls = H.parse_trace(self.source.value)
        except (ValueError, TypeError) as exc:
            return self.fail(exc)
        if self.process is not None and self.process.alive:
            self.process.exit()
        self.process = self.m.spawn("a.out")
        libc = self.process.libc
        self.start = H.snapshot(libc)
        self.steps, self.error = [], None
        try:
            for step in H.replay_steps(libc, [c.text for c in calls]):
                self.steps.append(step)
        except GlibcAbort as exc:
            self.error = f"step {len(self.steps) + 1} ({calls[len(self.steps)].text}): glibc aborts: {exc}"
        except (ValueError, TypeError) as exc:
            self.error = f"step {len(self.steps) + 1}: {exc}"
        self.slider.max = len(self.steps)
        return self.goto(0)

    def goto(self, index):
        """Show step `index` (0 to the number of steps). Returns the message."""
        index = require_int("index", index, 0, len(self.steps))
        self.index = index
        if self.slider.value != index:
            self.slider.value = index           # calls _on_slider, which finds nothing to do
        return self.show()

    def next(self):
        """One step on (stays at the last). Returns the message."""
        return self.goto(min(self.index + 1, len(self.steps)))

    def back(self):
        """One step back (stays at 0). Returns the message."""
        return self.goto(max(self.index - 1, 0))

    def reset(self):
        """Back to step 0. Returns the message."""
        return self.goto(0)

    def _on_slider(self, change):
        if change["new"] != self.index:
            self.goto(change["new"])

    # -- drawing ----------------------------------------------------------------------------
    def fail(self, exc):
        """Show an error instead of raising: nothing was run."""
        self.status.value = error_html(exc)
        return self.message

    def show(self):
        step = self.current
        if step is None:
            text = f"step 0 of {len(self.steps)}: the process before its first call"
        else:
            text = f"step {step.index} of {len(self.steps)}: {step.call.text} → {H.result_text(step)}"
        if self.error and self.index == len(self.steps):
            self.status.value = info_html(text) + "<br>\n" + error_html(self.error)
        else:
            self.status.value = info_html(text)
        self.image.value = figure_png(self.figure())
        self.bins.value = pre(self.bins_text)
        self.kernel.value = pre(self.kernel_text)
        self.path.value = pre(self.path_text)
        return self.message


def _dedent(text):
    """A trace typed in a triple-quoted string: common indentation and blank edges removed."""
    import textwrap
    return textwrap.dedent(str(text)).strip("\n")
