"""ipywidgets explorers built on mmlab.viz.

    BuddyPlayground(m)     allocate and free blocks by order; buddyinfo, picture and trace beside
    PhysMemExplorer(m)     the physical memory map, by zone, with a zoom range slider
    KmallocExplorer(m)     a size -> its kmalloc cache, slab and waste; kmalloc and kfree

Widgets only call the machine's public API (m.alloc_pages, m.free_pages,
m.trace()) and draw with mmlab.viz; their button handlers can be called
directly, so they work (and are tested) without a browser.
"""
from .buddy import BuddyPlayground
from .physmem import PhysMemExplorer
from .common import parse_gfp
from .slab import KmallocExplorer

__all__ = ["BuddyPlayground", "PhysMemExplorer", "parse_gfp"]
__all__ += ["KmallocExplorer"]
from .vmalloc import VmallocExplorer
__all__ += ["VmallocExplorer"]
from .heap import HeapStepper
__all__ += ["HeapStepper"]
from .vmas import VmaPlayground, BrkSlider
__all__ += ["VmaPlayground", "BrkSlider"]
from .fork import ForkExplorer
__all__ += ["ForkExplorer"]
from .pagecache import ReadaheadExplorer
__all__ += ["ReadaheadExplorer"]
