"""Pictures of the model: matplotlib figures (this package) and text (mmlab.viz.text).

Every function reads the machine's public state and returns a Figure (or a
string); none changes the machine.  Figures are closed in pyplot before they
are returned, so a notebook cell that ends with `physmem_map(m)` shows the
picture once; pass `ax=` to draw into axes of your own.

    from mmlab.viz import physmem_map, buddy_blocks, free_areas
    physmem_map(m)
"""
from .physmem import (physmem_map, pageblock_map, buddy_blocks, free_areas, watermarks,
                      fragmentation)
from .vmstat import (fill_contig_page_info, unusable_free_index, fragmentation_index,
                     unusable_index, extfrag_index)
from . import text
from .slab import kmalloc_waste, slab_strip, path_timeline, slab_usage
from . import slab

__all__ = ["physmem_map", "pageblock_map", "buddy_blocks", "free_areas", "watermarks",
           "fragmentation", "fill_contig_page_info", "unusable_free_index", "fragmentation_index",
           "unusable_index", "extfrag_index", "text"]
__all__ += ["kmalloc_waste", "slab_strip", "path_timeline", "slab_usage", "slab"]
from .vmalloc import vmalloc_space, area_frames, compare_frames, cost_figure
from . import vmalloc
__all__ += ["vmalloc_space", "area_frames", "compare_frames", "cost_figure", "vmalloc"]
from .heap import heap_strip, heap_text, bins_text
from . import heap
__all__ += ["heap_strip", "heap_text", "bins_text", "heap"]
from .vmas import address_space, vma_change, maple_tree, heap_picture, brk_timeline
from . import vmas
__all__ += ["address_space", "vma_change", "maple_tree", "heap_picture", "brk_timeline", "vmas"]
from .fork import ForkStory, sharing_timeline, sharing_figure, fork_cost, fork_cost_figure
from . import fork
__all__ += ["ForkStory", "sharing_timeline", "sharing_figure", "fork_cost", "fork_cost_figure", "fork"]
from . import pagecache
__all__ += ["pagecache"]
