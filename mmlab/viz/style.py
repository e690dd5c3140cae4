"""Colours and small drawing helpers shared by every mmlab figure.

One meaning, one colour, in every chapter: free memory is green, allocated
memory orange, reserved memory dark grey, holes (no RAM) white.  Migrate
types and zones have their own palettes.
"""
import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap, BoundaryNorm
from matplotlib.patches import Patch

from ..arch import PAGE_SHIFT, human

STATE_COLORS = {
    "hole": "#ffffff",
    "reserved": "#5b5b5b",
    "free": "#9fd68c",
    "allocated": "#f08a3c",
    "per-cpu list": "#4fc1b0",
    "mixed": "#a463c9",
}

MIGRATETYPE_COLORS = {
    "Unmovable": "#d9534f",
    "Movable": "#4f8fd9",
    "Reclaimable": "#f2c14e",
    "HighAtomic": "#8e5cc4",
    "Isolate": "#222222",
    "no RAM": "#ffffff",
}

ZONE_COLORS = {"DMA": "#1b9e77", "DMA32": "#7570b3", "Normal": "#d95f02",
               "Movable": "#e7298a", "Device": "#666666"}

WMARK_COLORS = {"min": "#c0392b", "low": "#e67e22", "high": "#2471a3"}

# Outlines of buddy blocks in the frame-by-frame picture, by kind.
BLOCK_COLORS = {"free": "#2e7d32", "pcp": "#00695c", "allocated": "#7a3b0c"}
BLOCK_LABELS = {"free": "free block", "pcp": "on a per-CPU list", "allocated": "allocated block"}

HIGHLIGHT = "#1f3fff"
RESERVED_SHADE = (0.25, 0.25, 0.25, 0.6)      # laid over pageblocks boot reserved whole
UNKNOWN = "#bbbbbb"         # a class added to the model after this palette was written       # the block an operation just touched


def class_cmap(names, palette):
    """A colormap and norm that paint integer class k with palette[names[k]]."""
    cmap = ListedColormap([palette.get(n, UNKNOWN) for n in names])
    norm = BoundaryNorm([k - 0.5 for k in range(len(names) + 1)], len(names))
    return cmap, norm


def legend_patches(names, palette, labels=None, edge="#999999"):
    """Legend entries (coloured squares) for the given class names."""
    labels = labels or names
    return [Patch(facecolor=palette.get(n, UNKNOWN), edgecolor=edge, label=lab) for n, lab in zip(names, labels)]


def new_axes(ax, figsize, ncols=1, nrows=1, **kw):
    """(fig, ax): the caller's axes, or a fresh figure with nrows x ncols axes.

    A fresh figure is closed in pyplot at once: returning it from a notebook
    cell shows it exactly once (pyplot would otherwise show it a second time
    at the end of the cell), and nothing accumulates in pyplot's registry.
    It uses constrained layout, so legends and margin labels fit inside it.
    """
    if ax is not None:
        return ax.figure, ax
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, layout="constrained", **kw)
    plt.close(fig)
    return fig, axes


def put_legend(fig, ax, own, handles, **kw):
    """A legend under the figure when we made the figure, else inside the caller's axes."""
    kw.setdefault("fontsize", 8)
    if own:
        ncol = len(handles) if len(handles) <= 5 else -(-len(handles) // 2)
        return fig.legend(handles=handles, loc="outside lower center", ncol=ncol,
                          frameon=False, **kw)
    return ax.legend(handles=handles, **kw)


def size_of_frames(n):
    """n frames as a size: '4 KiB', '2 MiB', '1280 KiB' (exact: the largest unit that divides it)."""
    nbytes = n << PAGE_SHIFT
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size and nbytes % size == 0:
            return f"{nbytes // size} {unit}"
    return human(nbytes)


def address_label(pfn):
    """A physical address for an axis: '0x0', '16 MiB' style (human size of the offset)."""
    return "0" if pfn == 0 else human(pfn << PAGE_SHIFT)
