"""ForkExplorer: after fork, let parent or child write a page, or the child exit; see the frames.

    from mmlab.widgets.fork import ForkExplorer
    ForkExplorer(n=4)

The state is a mmlab.viz.fork.ForkStory: a parent wrote n pages of
private anonymous memory and forked.  Each button makes one step on it
(the parent or the child writes the chosen page, the child exits, or
everything starts again) and the table below shows, per page, each side's
frame, whether its entry is writable, the value it reads, and the frames'
refcount/mapcount.  Works without a browser: call write(who, page),
exit_child() and reset() and read `text`.
"""
import ipywidgets as W

from ..viz.fork import ForkStory
from .common import pre, error_html


class ForkExplorer:
    """A page chooser and four buttons; the table of frames below, the last step's cost under it."""

    def __init__(self, n=4, seed=0):
        self.n, self.seed = n, seed
        self.text = ""
        self.page = W.Dropdown(options=list(range(n)), value=0, description="page")
        self.buttons = {}
        for label, action in (("parent writes", lambda: self.write("parent", self.page.value)),
                              ("child writes", lambda: self.write("child", self.page.value)),
                              ("child exits", self.exit_child), ("start again", self.reset)):
            b = W.Button(description=label)
            b.on_click(lambda _b, action=action: action())
            self.buttons[label] = b
        self.out = W.HTML()
        self.msg = W.HTML()
        self.box = W.VBox([W.HBox([self.page] + list(self.buttons.values())), self.out, self.msg])
        self.reset()

    def reset(self):
        """A fresh parent and child, just after fork."""
        self.story = ForkStory(n=self.n, seed=self.seed)
        return self.show("fork: both map the parent's frames, write-protected")

    def write(self, who, page):
        """who writes page; the table and what the write cost."""
        try:
            result = self.story.write(who, page)
        except ValueError as e:
            self.msg.value = error_html(e)
            return self.text
        return self.show(f"the {who} writes page {page}: {self.explain(result)}")

    def exit_child(self):
        """The child exits; its mappings and references go."""
        try:
            self.story.exit("child")
        except ValueError as e:
            self.msg.value = error_html(e)
            return self.text
        return self.show("the child exits: the parent's frames have one user each now")

    @staticmethod
    def explain(result):
        return {"copy": "a fault, and a new frame (wp_page_copy)",
                "reuse": "a fault, and the same frame made writable (wp_page_reuse)",
                "no fault": "no fault: the entry was writable already"}[result]

    def show(self, last):
        """Display the story's table with a line saying what the last step did; returns the text."""
        self.text = self.story.text() + "\nlast step: " + last
        self.out.value = pre(self.text)
        self.msg.value = ""
        return self.text

    def _ipython_display_(self):
        from IPython.display import display
        display(self.box)
