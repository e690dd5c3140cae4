"""MmapKindsExplorer: choose private or shared, anonymous or file; see the frames after read, write, fork.

    from mmlab.widgets.mmapkinds import MmapKindsExplorer
    MmapKindsExplorer()

Each change reruns the scenario of mmlab.viz.mmapkinds.run_kind on a fresh
seeded Machine (map one page, read, write b"P", fork, the child writes
b"C") and shows the table of frames and handlers.  Works without a
browser: call show(shared, anon, read_first) and read `text`.
"""
import ipywidgets as W

from ..viz import mmapkinds as K
from .common import pre


class MmapKindsExplorer:
    """Two toggles (private/shared, anonymous/file) and a 'read first' box; the kind's table below."""

    def __init__(self, seed=0):
        self.seed = seed
        self.text = ""
        self.sharing = W.ToggleButtons(options=["private", "shared"], value="private",
                                       description="sharing")
        self.backing = W.ToggleButtons(options=["anonymous", "file"], value="anonymous",
                                       description="backing")
        self.read_first = W.Checkbox(value=True, description="read before the first write")
        self.out = W.HTML()
        for w in (self.sharing, self.backing, self.read_first):
            w.observe(lambda change: self.update(), names="value")
        self.box = W.VBox([W.HBox([self.sharing, self.backing]), self.read_first, self.out])
        self.update()

    def update(self):
        """Rerun the scenario for the widgets' values."""
        self.show(self.sharing.value == "shared", self.backing.value == "anonymous",
                  self.read_first.value)

    def show(self, shared, anon, read_first=True):
        """Run one kind and display its table; returns the text shown."""
        self.text = K.kind_text(shared, anon, read_first, self.seed)
        self.out.value = pre(self.text)
        return self.text

    def _ipython_display_(self):
        from IPython.display import display
        display(self.box)
