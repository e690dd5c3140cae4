"""Figures of physical memory: the frame map, pageblocks, free areas, watermarks.

Each function reads the machine's public state, draws one figure and returns
it (a matplotlib Figure); pass `ax` to draw into axes of your own instead.
Nothing here changes the machine, and the same machine state always gives
the same picture.

    physmem_map(m)                 every frame by state, zones outlined (downsampled)
    pageblock_map(m)               every 2 MiB pageblock by migrate type
    buddy_blocks(m, pfn, npages)   a small range frame by frame, with its buddy blocks
    free_areas(m, zone)            free blocks per order, by migrate type (/proc/pagetypeinfo)
    watermarks(m)                  free pages against min/low/high in each zone
    fragmentation(m)               where free memory sits by order, and the unusable free index
"""
import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ..arch import PAGE_SHIFT
from ..errors import require_int
from ..mm.page_alloc import (NR_PAGE_ORDERS, PAGEBLOCK_NR_PAGES, MIGRATETYPE_NAMES, MIGRATE_TYPES,
                             FRAME_STATE_NAMES, WMARK_MIN, WMARK_LOW, WMARK_HIGH)
from . import frames as F
from . import style
from .vmstat import unusable_indices


# -- rasters: a long run of cells folded into rows ----------------------------

def fold(cells, cols, fill):
    """Fold a 1-D array of cell classes into rows of `cols` cells, padding the last row with fill."""
    rows = -(-len(cells) // cols)
    grid = np.full(rows * cols, fill, dtype=np.uint8)
    grid[:len(cells)] = cells
    return grid.reshape(rows, cols)


def draw_raster(ax, grid, names, palette):
    """Paint a grid of class numbers; row r, column c covers [c, c+1) x [r, r+1)."""
    cmap, norm = style.class_cmap(names, palette)
    rows, cols = grid.shape
    ax.imshow(grid, cmap=cmap, norm=norm, interpolation="nearest", aspect="auto",
              extent=(0, cols, rows, 0))
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)


def label_rows(ax, start, frames_per_row, rows, max_ticks=9):
    """Label about max_ticks rows with the physical address each row starts at."""
    step = max(1, -(-rows // max_ticks))
    ticks = list(range(0, rows, step))
    ax.set_yticks([r + 0.5 for r in ticks])
    ax.set_yticklabels([f"{(start + r * frames_per_row) << PAGE_SHIFT:#x}" for r in ticks],
                       family="monospace", fontsize=8)


def label_columns(ax, cols, frames_per_col, max_ticks=9):
    """Label columns with the offset from the row's start, as a size."""
    step = max(1, cols // (max_ticks - 1))
    ticks = list(range(0, cols + 1, step))
    ax.set_xticks(ticks)
    ax.set_xticklabels(["+0" if t == 0 else "+" + style.size_of_frames(t * frames_per_col)
                        for t in ticks], fontsize=8)


def zone_boundaries(ax, m, start, end, per_cell, cols):
    """Outline where each populated zone begins inside [start, end) and name it in the margin.

    A boundary in a folded raster is a step: along the bottom of its row up
    to the column where the zone begins, up one row, then along the top of
    the row to the end.  Names of zones starting in nearby rows share a label.
    """
    rows = -(-(end - start) // (per_cell * cols))
    # How many rows one line of 8-point text covers, from the axes' height.
    height_pt = ax.get_position().height * ax.figure.get_figheight() * 72
    line_rows = rows * 11 / max(height_pt, 1)
    labels = []         # [row, text]
    for z in F.populated_zones(m):
        b = z.zone_start_pfn
        if not start <= b < end:
            continue
        off = (b - start) // per_cell
        r, c = divmod(off, cols)
        if b > start:
            xs, ys = ([0, c, c, cols], [r + 1, r + 1, r, r]) if c else ([0, cols], [r, r])
            ax.plot(xs, ys, color="black", linewidth=1.6, solid_joinstyle="miter")
        text = f"{z.name} from {style.address_label(b)}"
        if labels and r - labels[-1][0] < line_rows * (labels[-1][1].count("\n") + 1):
            labels[-1][1] += "\n" + text
        else:
            labels.append([r, text])
    for r, text in labels:
        ax.annotate(text, xy=(cols, r + 0.5), xytext=(8, 0), textcoords="offset points",
                    va="top" if "\n" in text else "center", fontsize=8, annotation_clip=False,
                    arrowprops=dict(arrowstyle="-", color="black", linewidth=0.8))


def range_title(start, end):
    return f"{start << PAGE_SHIFT:#x}-{end << PAGE_SHIFT:#x} ({style.size_of_frames(end - start)})"


# -- the physical memory map --------------------------------------------------

def physmem_map(m, start_pfn=None, end_pfn=None, *, zone=None, cols=256, max_rows=128,
                how="majority", ax=None):
    """Every frame of [start_pfn, end_pfn) coloured by state, rows of cells, zones outlined.

    With no range the whole of physical memory is drawn; `zone` ('DMA32')
    draws that zone's span.  Memory is folded into rows of `cols` cells; a
    cell stands for a power of two of frames, as few as fit in
    cols x max_rows cells, and takes the state most of its frames are in
    (how="majority"), or "mixed" when it holds both free and allocated
    frames (how="mixed").  The legend counts frames, not cells.
    """
    cols, max_rows = require_int("cols", cols, 1), require_int("max_rows", max_rows, 1)
    start, end = F.pfn_range(m, start_pfn, end_pfn, zone)
    nframes = end - start
    cols = min(cols, nframes)
    per_cell = F.frames_per_cell(nframes, cols * max_rows)
    cells = F.state_cells(m, start, end, per_cell, how)
    cols = min(cols, len(cells))
    grid = fold(cells, cols, F.HOLE)
    rows = grid.shape[0]
    own = ax is None
    fig, ax = style.new_axes(ax, figsize=(10, 2.4 + min(4.2, 0.12 * rows + 0.6)))
    draw_raster(ax, grid, F.STATE_CLASSES, style.STATE_COLORS)
    zone_boundaries(ax, m, start, end, per_cell, cols)
    label_rows(ax, start, per_cell * cols, rows)
    label_columns(ax, cols, per_cell)
    cell = f"{per_cell} frame{'s' if per_cell > 1 else ''} ({style.size_of_frames(per_cell)})"
    colour = "frame state" if per_cell == 1 else "majority frame state"
    if how == "mixed" and per_cell > 1:
        colour += ", or mixed"
    ax.set_title(f"Physical memory {range_title(start, end)}\none cell = {cell}, coloured by {colour}")
    ax.set_xlabel(f"offset within the row (a row is {style.size_of_frames(per_cell * cols)})")
    ax.set_ylabel("physical address of the row")
    counts = F.state_counts(m, start, end)
    # The four basic states always; any other (per-CPU lists) only when present.
    names = [n for k, n in enumerate(FRAME_STATE_NAMES) if k <= F.ALLOCATED or counts[n]]
    labels = [f"{n}: {counts[n]:,} frames" for n in names]
    if how == "mixed":
        names.append("mixed")
        labels.append("mixed: free and allocated")
    handles = style.legend_patches(names, style.STATE_COLORS, labels)
    handles.append(Line2D([], [], color="black", linewidth=1.6, label="zone boundary"))
    style.put_legend(fig, ax, own, handles)
    return fig


def pageblock_map(m, start_pfn=None, end_pfn=None, *, zone=None, cols=None, max_rows=256, ax=None):
    """Every pageblock (2 MiB) of the range coloured by its migrate type, zones outlined.

    The migrate type of a pageblock says which free lists its free pages go
    to (set_pageblock_migratetype); allocations of one type that had to
    take a block of another type ('claim') recolour it.  Pageblocks with no
    RAM at all are white.  Very large machines fold several pageblocks into
    a cell, by majority.
    """
    max_rows = require_int("max_rows", max_rows, 1)
    start, end = F.pfn_range(m, start_pfn, end_pfn, zone)
    first, last = F.pageblock_range(start, end)
    counts = F.pageblock_state_counts(m, first, last)
    raw = F.pageblock_classes(m, first, last, counts)
    classes = raw
    n = len(classes)
    if cols is not None:
        cols = require_int("cols", cols, 1)
    else:
        cols = int(min(256, max(8, 1 << int(np.ceil(np.log2(np.sqrt(4 * n)))))))
    cols = min(cols, n)
    per_cell = F.frames_per_cell(n, cols * max_rows)
    if per_cell > 1:
        classes = F.majority(F.class_counts(classes, per_cell, MIGRATE_TYPES + 1, F.NO_RAM))
    reserved = raw_reserved = F.pageblock_reserved(m, first, last, counts)
    if per_cell > 1:
        reserved = F.majority(F.class_counts(reserved.astype(np.uint8), per_cell, 2, 0)) == 1
    grid = fold(classes, cols, F.NO_RAM)
    rows = grid.shape[0]
    own = ax is None
    fig, ax = style.new_axes(ax, figsize=(10, 2.4 + min(4.2, 0.12 * rows + 0.6)))
    draw_raster(ax, grid, F.PAGEBLOCK_CLASSES, style.MIGRATETYPE_COLORS)
    # Grey out pageblocks boot kept whole: their type is never used.
    shade = np.zeros(grid.shape + (4,))
    shade[fold(reserved.astype(np.uint8), cols, 0) == 1] = style.RESERVED_SHADE
    ax.imshow(shade, interpolation="nearest", aspect="auto", extent=(0, cols, rows, 0))
    frames_per_cell = per_cell * PAGEBLOCK_NR_PAGES
    base = first * PAGEBLOCK_NR_PAGES
    if rows <= 32:
        ax.hlines(np.arange(1, rows), 0, cols, color="white", linewidth=0.4)
    if cols <= 64:
        ax.vlines(np.arange(1, cols), 0, rows, color="white", linewidth=0.4)
    zone_boundaries(ax, m, base, last * PAGEBLOCK_NR_PAGES, frames_per_cell, cols)
    label_rows(ax, base, frames_per_cell * cols, rows)
    label_columns(ax, cols, frames_per_cell)
    what = "pageblock" if per_cell == 1 else f"{per_cell} pageblocks (majority)"
    ax.set_title(f"Pageblock migrate types {range_title(start, end)}\n"
                 f"one cell = {what}, {style.size_of_frames(frames_per_cell)}")
    ax.set_xlabel(f"offset within the row (a row is {style.size_of_frames(frames_per_cell * cols)})")
    ax.set_ylabel("physical address of the row")
    shown = [k for k in range(MIGRATE_TYPES + 1) if np.any(raw == k)] or [1]
    names = [F.PAGEBLOCK_CLASSES[k] for k in shown]
    labels = [f"{F.PAGEBLOCK_CLASSES[k]}: {int(np.count_nonzero(raw == k))}" for k in shown]
    handles = style.legend_patches(names, style.MIGRATETYPE_COLORS, labels)
    if reserved.any():
        handles.append(Patch(facecolor=style.RESERVED_SHADE, edgecolor="#999999",
                                   label=f"all frames reserved: {int(raw_reserved.sum())}"))
    handles.append(Line2D([], [], color="black", linewidth=1.6, label="zone boundary"))
    style.put_legend(fig, ax, own, handles, title="pageblocks of each type", title_fontsize=8)
    return fig


# -- a small range, frame by frame ----------------------------------------------

def buddy_blocks(m, start_pfn, npages=256, *, cols=None, highlight=None, ax=None):
    """A small range frame by frame: states as colours, buddy blocks outlined with their order.

    The range is widened to whole rows of `cols` frames (a power of two,
    by default 8 to 64, about twice as many as there are rows), so an aligned block never wraps: a block no larger
    than a row sits in one row, a larger one covers whole rows.  Free blocks
    (on a free list) are outlined in green and labelled with their order,
    allocations in brown; `highlight` is a pfn, a (pfn, order) pair or a list
    of them to outline in blue (the block an operation just touched).
    """
    npages = require_int("npages", npages, 1, 4096)
    start_pfn = require_int("start_pfn", start_pfn, 0, m.max_pfn - 1)
    if cols is None:        # about twice as wide as tall: 64 frames in 16 columns, 1024 in 64
        cols = min(64, max(8, 1 << (4 * npages - 1).bit_length() // 2))
    if require_int("cols", cols, 1) & (cols - 1):
        raise ValueError(f"cols must be a power of two, got {cols}")
    start = (start_pfn // cols) * cols
    end = -(-(start_pfn + npages) // cols) * cols
    start, end = F.pfn_range(m, start, min(end, m.max_pfn))
    grid = fold(F.state_cells(m, start, end), cols, F.HOLE)
    rows = grid.shape[0]
    own = ax is None
    fig, ax = style.new_axes(ax, figsize=(10, 2.2 + min(6.5, 0.3 * rows + 0.4)))
    draw_raster(ax, grid, F.STATE_CLASSES, style.STATE_COLORS)
    thin = 0.6 if cols <= 32 else 0.3
    ax.hlines(np.arange(1, rows), 0, cols, color="white", linewidth=thin)
    ax.vlines(np.arange(1, cols), 0, rows, color="white", linewidth=thin)
    for block in F.blocks_in_range(m, start, end):
        draw_block(ax, block, start, end, cols, style.BLOCK_COLORS[block.kind], 1.6)
    for block in highlighted(m, highlight):
        draw_block(ax, block, start, end, cols, style.HIGHLIGHT, 3.2, label=False)
    ystep = max(1, rows // 16)
    ax.set_yticks([r + 0.5 for r in range(0, rows, ystep)])
    ax.set_yticklabels([f"{start + r * cols:#x}" for r in range(0, rows, ystep)], family="monospace",
                       fontsize=8)
    step = max(1, cols // 16)
    ax.set_xticks([c + 0.5 for c in range(0, cols, step)])
    ax.set_xticklabels([f"+{c}" for c in range(0, cols, step)], fontsize=8)
    ax.set_xlabel("frame offset within the row")
    ax.set_ylabel("pfn of the row")
    zone = m.zones[int(m.mem_map.zone[start])]
    ax.set_title(f"Buddy blocks, pfn {start:#x}-{end:#x} ({end - start} frames, zone {zone.name})\n"
                 "each square is a frame; outlines are buddy blocks, numbers their orders")
    present = np.unique(grid)
    handles = style.legend_patches([F.STATE_CLASSES[k] for k in present], style.STATE_COLORS)
    kinds = {b.kind for b in F.blocks_in_range(m, start, end)} | {"free", "allocated"}
    handles += [Line2D([], [], color=style.BLOCK_COLORS[k], linewidth=1.6, label=style.BLOCK_LABELS[k])
                for k in ("free", "pcp", "allocated") if k in kinds]
    if highlight is not None:
        handles.append(Line2D([], [], color=style.HIGHLIGHT, linewidth=3, label="this operation"))
    style.put_legend(fig, ax, own, handles)
    return fig


def highlighted(m, highlight):
    """The blocks named by `highlight`: None, a pfn, a (pfn, order) pair, or a list of those."""
    if highlight is None:
        return []
    if isinstance(highlight, (int, np.integer)) or (isinstance(highlight, tuple) and len(highlight) == 2
                                                     and all(isinstance(v, (int, np.integer))
                                                             for v in highlight)):
        highlight = [highlight]
    out = []
    for h in highlight:
        if isinstance(h, tuple):
            out.append(F.Block(int(h[0]), int(h[1]), "highlight"))
        else:
            block = F.block_at(m, int(h))
            out.append(block if block is not None else F.Block(int(h), 0, "highlight"))
    return out


def draw_block(ax, block, start, end, cols, color, width, label=True):
    """Outline one block (clipped to the window) and write its order in it."""
    lo, hi = max(block.pfn, start), min(block.pfn + (1 << block.order), end)
    if lo >= hi:
        return
    r0, c0 = divmod(lo - start, cols)
    r1, c1 = divmod(hi - start - 1, cols)
    if r0 == r1:
        x, y, w, h = c0, r0, c1 - c0 + 1, 1
    else:               # whole rows: aligned blocks larger than a row start and end at row edges
        x, y, w, h = 0, r0, cols, r1 - r0 + 1
    inset = width / 40
    ax.add_patch(Rectangle((x + inset, y + inset), w - 2 * inset, h - 2 * inset, fill=False,
                           edgecolor=color, linewidth=width))
    if label:
        ax.text(x + w / 2, y + h / 2, str(block.order), ha="center", va="center", fontsize=8,
                color=color, fontweight="bold")


# -- free areas, watermarks, fragmentation ------------------------------------

def free_areas(m, zone=None, *, unit="blocks", ax=None):
    """The free lists of a zone: free blocks per order, stacked by migrate type.

    unit="blocks" counts blocks (the numbers of /proc/buddyinfo and
    /proc/pagetypeinfo); unit="pages" counts the pages they hold.  With no
    zone, one panel per populated zone (then `ax` must be None).
    """
    if unit not in ("blocks", "pages"):
        raise ValueError(f"unit must be 'blocks' or 'pages', not {unit!r}")
    if zone is None:
        zones = F.populated_zones(m)
        if ax is not None:
            raise ValueError("zone: name the zone to draw into the given ax")
        fig, axes = style.new_axes(None, figsize=(10, 3.2 * len(zones)), nrows=len(zones), squeeze=False)
        for z, a in zip(zones, axes[:, 0]):
            free_areas(m, z, unit=unit, ax=a)
        fig.suptitle(f"Free areas per order ({unit})", fontweight="bold")
        return fig
    z = F.zone_of(m, zone)
    fig, ax = style.new_axes(ax, figsize=(10, 4))
    orders = np.arange(NR_PAGE_ORDERS)
    bottom = np.zeros(NR_PAGE_ORDERS)
    for mt, name in enumerate(MIGRATETYPE_NAMES):
        counts = np.array([z.free_area[o].free_list[mt].count for o in orders], dtype=float)
        if unit == "pages":
            counts *= 1 << orders
        if counts.any() or mt < 3:
            ax.bar(orders, counts, bottom=bottom, color=style.MIGRATETYPE_COLORS[name], label=name,
                   edgecolor="white", linewidth=0.5)
        bottom += counts
    for o in orders:
        ax.text(o, bottom[o], f"{int(bottom[o]):,}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(orders)
    ax.set_xticklabels([f"{o}\n{style.size_of_frames(1 << o)}" for o in orders], fontsize=8)
    ax.set_xlabel("order (block size)")
    ax.set_ylabel("free blocks" if unit == "blocks" else "free pages")
    ax.set_ylim(0, max(1, bottom.max()) * 1.15)
    ax.set_title(f"Zone {z.name}: {z.nr_free_pages:,} free pages of {z.managed_pages:,} managed")
    ax.legend(title="migrate type", fontsize=8, title_fontsize=8)
    return fig


def watermarks(m, *, ax=None):
    """Free pages in each populated zone against its min, low and high watermarks.

    The bar is the zone's free pages, the pale bar behind it the pages the
    buddy allocator manages; the ticks are the watermarks (plus any boost).
    An allocation may take from a zone while free pages stay above the mark
    its flags ask for (low for a first try, min in the slow path).  The
    scale is logarithmic so small zones and small marks stay visible.
    NOTE: the lowmem reserve a lower zone keeps from allocations that could
    use a higher one (/proc/zoneinfo 'protection') is not drawn.
    """
    zones = F.populated_zones(m)
    fig, ax = style.new_axes(ax, figsize=(8, 4.5))
    x = np.arange(len(zones))
    ax.bar(x, [z.managed_pages for z in zones], width=0.6, color="#e6e6e6", edgecolor="#999999",
           label="managed pages")
    ax.bar(x, [z.nr_free_pages for z in zones], width=0.4, color=style.STATE_COLORS["free"],
           edgecolor="#4d8c3a", label="free pages")
    for which, name in ((WMARK_HIGH, "high"), (WMARK_LOW, "low"), (WMARK_MIN, "min")):
        marks = [z.wmark(which) for z in zones]
        ax.hlines(marks, x - 0.38, x + 0.38, color=style.WMARK_COLORS[name], linewidth=2.4,
                  label=f"{name} watermark")
        for xi, v in zip(x, marks):
            ax.text(xi + 0.4, v, f"{name} {v:,}", va="center", fontsize=7, color=style.WMARK_COLORS[name])
    for xi, z in zip(x, zones):
        ax.text(xi, z.nr_free_pages * 1.15, f"{z.nr_free_pages:,} free", ha="center", va="bottom",
                fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(max(1, min(z.wmark(WMARK_MIN) for z in zones) / 3),
                max(z.managed_pages for z in zones) * 4)
    ax.set_xticks(x)
    ax.set_xticklabels([z.name for z in zones])
    ax.set_xlim(-0.6, len(zones) - 0.1)
    ax.set_xlabel("zone")
    ax.set_ylabel("pages (log scale)")
    ax.set_title(f"Free pages and watermarks per zone (min_free_kbytes = {m.min_free_kbytes})")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def fragmentation(m, zone=None, *, ax=None):
    """How fragmented free memory is: the share of free pages in blocks of each order,
    and the unusable free space index per order (/sys/kernel/debug/extfrag/unusable_index).

    The index for order n is the fraction of free pages that lie in blocks
    smaller than 2**n, so could not serve an order-n allocation without
    compaction.  With `ax`, only the index is drawn there.
    """
    zones = [F.zone_of(m, zone)] if zone is not None else F.populated_zones(m)
    if ax is None:
        fig, (ax_share, ax_index) = style.new_axes(None, figsize=(11, 4.2), ncols=2,
                                                   gridspec_kw={"width_ratios": [1, 1.2]})
        free_share_by_order(zones, ax_share)
    else:
        fig, ax_index = ax.figure, ax
    orders = np.arange(NR_PAGE_ORDERS)
    for z in zones:
        ax_index.plot(orders, np.array(unusable_indices(z)) / 1000, marker="o",
                      color=style.ZONE_COLORS[z.name], label=z.name)
    ax_index.set_ylim(-0.03, 1.03)
    ax_index.set_xticks(orders)
    ax_index.set_xlabel("order of the request")
    ax_index.set_ylabel("unusable free space index")
    ax_index.set_title("Share of free memory too fragmented\nfor a request of each order")
    ax_index.legend(title="zone", fontsize=8, title_fontsize=8)
    ax_index.grid(alpha=0.3)
    if ax is None:
        fig.suptitle("Fragmentation of free memory", fontweight="bold")
    return fig


def free_share_by_order(zones, ax):
    """One horizontal bar per zone: its free pages split by the order of the block they are in."""
    cmap = matplotlib.colormaps["viridis"].resampled(NR_PAGE_ORDERS)
    norm = BoundaryNorm(np.arange(NR_PAGE_ORDERS + 1) - 0.5, NR_PAGE_ORDERS)
    y = np.arange(len(zones))
    left = np.zeros(len(zones))
    for o in range(NR_PAGE_ORDERS):
        pages = np.array([z.free_area[o].nr_free << o for z in zones], dtype=float)
        total = np.array([max(1, z.nr_free_pages) for z in zones], dtype=float)
        share = pages / total
        ax.barh(y, share, left=left, color=cmap(o), edgecolor="white", linewidth=0.3)
        left += share
    ax.set_yticks(y)
    ax.set_yticklabels([z.name for z in zones])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the zone's free pages")
    ax.set_ylabel("zone")
    ax.set_title("Free pages by the order\nof the block that holds them")
    bar = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, orientation="horizontal",
                             ticks=range(NR_PAGE_ORDERS), aspect=40, pad=0.02)
    bar.set_label("order of the block")
