"""Pieces every mmlab widget uses: reading flags typed by a learner, figures as images, messages.

Widgets hold no model logic: they turn input into calls on the machine
(m.alloc_pages, m.free_pages, m.trace()) and show what mmlab.viz draws.
"""
import html
import io
import re

from .. import uapi


def parse_gfp(text):
    """GFP flags from text such as 'GFP_KERNEL | __GFP_ZERO' or '0xcc0'.

    Each '|'-separated word is a flag name from mmlab.uapi or a number
    (decimal or 0x hex).  Raises ValueError naming the word it cannot read.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ValueError("gfp: write flags such as GFP_KERNEL or GFP_KERNEL | __GFP_ZERO")
    gfp = 0
    for word in text.split("|"):
        word = word.strip()
        if word.startswith(("GFP_", "__GFP_")) and isinstance(getattr(uapi, word, None), int):
            gfp |= getattr(uapi, word)
            continue
        try:
            gfp |= int(word, 0)
        except ValueError:
            raise ValueError(f"gfp: {word!r} is not a GFP flag (try GFP_KERNEL, GFP_ATOMIC, "
                             "__GFP_MOVABLE ...)") from None
    return gfp


def figure_png(fig, dpi=80):
    """A figure as PNG bytes, for an ipywidgets Image (works without a browser or pyplot backend)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def pre(text, color=None):
    """Text as an HTML <pre> block (escaped), optionally coloured."""
    style = f' style="color:{color}; margin:0"' if color else ' style="margin:0"'
    return f"<pre{style}>{html.escape(str(text))}</pre>"


def error_html(text):
    """An error for the learner, in red, instead of a traceback."""
    return f'<span style="color:#b00020"><b>Error:</b> {html.escape(str(text))}</span>'


def info_html(text):
    return f"<span>{html.escape(str(text))}</span>"


def strip_tags(markup):
    """The text of the simple HTML these widgets write (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


class Explorer:
    """What the explorers share: `widget` is the view, shown when the explorer itself is displayed;
    `status` the status line and `trace` the trace panel (where it has one), read back as plain text
    for tests and for checked notebook cells."""

    @property
    def message(self):
        """The status line as plain text."""
        return strip_tags(self.status.value)

    @property
    def trace_text(self):
        """The trace panel as plain text."""
        return strip_tags(self.trace.value)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
