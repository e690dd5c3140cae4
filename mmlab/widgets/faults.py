"""FaultExplorer: choose a mapping kind and a sequence of accesses; see each fault's path, counts and frame.

    from mmlab.widgets.faults import FaultExplorer
    FaultExplorer()

Each change reruns mmlab.viz.faults.fault_case on a fresh seeded Machine
(one page of the chosen mapping, the accesses one at a time) and shows a
table: the access, the handlers taken (or "no fault"), minflt and majflt
charged, and the page's frame afterwards.  Works without a browser: call
show(kind, accesses) and read `text`.
"""
import ipywidgets as W

from ..viz import faults as F
from .common import pre

SEQUENCES = {"read": ["read"], "write": ["write"], "read, then write": ["read", "write"],
             "write, then read": ["write", "read"], "read, read, write, write": ["read", "read", "write", "write"]}


def steps_text(kind, steps):
    """The table FaultExplorer shows for fault_case's steps."""
    lines = [f"one page of {kind} memory", f"{'access':7} {'minflt':>6} {'majflt':>6}  {'frame':10} path"]
    for s in steps:
        path = " > ".join(s.path) if s.path else "no fault (the MMU allows it)"
        lines.append(f"{s.access:7} {s.minflt:6} {s.majflt:6}  {s.frame:10} {path}")
    return "\n".join(lines)


class FaultExplorer:
    """A mapping-kind chooser and an access-sequence chooser; the table of faults below."""

    def __init__(self, kind="anon private", sequence="read, then write", seed=0):
        self.seed = seed
        self.text = ""
        self.kind = W.Dropdown(options=list(F.KINDS), value=kind, description="mapping")
        self.sequence = W.Dropdown(options=list(SEQUENCES), value=sequence, description="accesses")
        self.out = W.HTML()
        for w in (self.kind, self.sequence):
            w.observe(lambda change: self.update(), names="value")
        self.box = W.VBox([W.HBox([self.kind, self.sequence]), self.out])
        self.update()

    def update(self):
        """Rerun the case for the widgets' values."""
        self.show(self.kind.value, SEQUENCES[self.sequence.value])

    def show(self, kind, accesses):
        """Run one case and display its table; returns the text shown."""
        self.text = steps_text(kind, F.fault_case(kind, accesses, seed=self.seed))
        self.out.value = pre(self.text)
        return self.text

    def _ipython_display_(self):
        from IPython.display import display
        display(self.box)
