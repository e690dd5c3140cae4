"""Page reclaim: the file LRU lists and how pages leave memory under pressure.

Models, simplified but by name, mm/vmscan.c (shrink_node,
shrink_active_list, shrink_inactive_list, shrink_folio_list,
folio_check_references, pageout, __remove_mapping), mm/swap.c
(folio_add_lru, folio_mark_accessed, folio_activate, folio_deactivate)
and mm/rmap.c (folio_referenced, try_to_unmap) for page-cache pages.

The two file lists, oldest first:

    inactive_file: new pages enter at the young end; reclaim takes from
                   the old end.  A page used twice while here (or mapped
                   and touched through a PTE twice) is promoted;
    active_file:   when it grows larger than the inactive list,
                   shrink_active_list moves its oldest pages back.

Reclaim runs when an allocation fails its min watermark (the hook in
page_alloc's slow path) and frees clean, unmapped, idle pages first;
mapped clean pages are unmapped through the rmap (try_to_unmap) and then
freed; dirty pages are written back (pageout) and freed on a later pass.

NOTE: simplified.  One lruvec for the machine (no memcg, one node, no
zones' own lists), no MGLRU (Linux 6.18 distributions often enable it:
/sys/kernel/mm/lru_gen/enabled), no per-CPU LRU batches (a page is on its
list at once), no workingset refault detection (PG_workingset is set when
a page is deactivated and read only by fault-around's mmap_miss), no swap
so anonymous and shmem pages are never reclaimed and are on no list here
(Active(anon)/Inactive(anon) stay 0), kswapd is not a thread: the
allocation that fails reclaims until every zone is above its high
watermark (kswapd's goal), and dirty pages are written by reclaim itself
(Linux leaves that to the flusher for direct reclaim).
MADV_FREE pages wait on a lazyfree list of their own (Linux puts them
on the inactive file list's young end; reclaim here takes them after the
inactive file pages, which is where Linux's order puts them too).
"""
import collections
import math

from ..errors import InvariantError
from ..trace import traced, note
from .page_alloc import PG_lru, PG_active, PG_referenced, PG_dirty, PG_writeback, PG_locked, WMARK_HIGH
from . import filemap

SWAP_CLUSTER_MAX = 32
PG_workingset = filemap.PG_workingset


def vmscan_init(m):
    """The machine's lruvec: the two file lists (ordered dicts of pfns, oldest first) and lazyfree."""
    m.lru_inactive_file = collections.OrderedDict()
    m.lru_active_file = collections.OrderedDict()
    m.lazyfree = collections.OrderedDict()      # pfn -> (mm, addr): MADV_FREE'd anonymous pages
    m.reclaim_stats = dict(pgscan=0, pgsteal=0, pgactivate=0, pgdeactivate=0, pgrotated=0,
                           unmapped=0, pageout=0, lazyfree=0)
    m.in_reclaim = False                        # PF_MEMALLOC: reclaim does not recurse
    m.direct_reclaim = direct_reclaim           # the allocator's slow path calls this


# -- putting pages on and off the lists -------------------------------------------------

def folio_add_lru(m, pfns):
    """folio_add_lru / lru_add: new page-cache pages enter the inactive file list (young end)."""
    lru = m.lru_inactive_file
    if len(pfns) == 1:
        lru[pfns[0]] = None
        m.mem_map.flags_[pfns[0]] |= PG_lru
    else:
        for pfn in pfns:
            lru[pfn] = None
        import numpy as np
        m.mem_map.flags[np.asarray(pfns, dtype=np.int64)] |= np.uint32(PG_lru)
    m.node_stat["nr_inactive_file"] += len(pfns)


def on_lru(m, pfn):
    return pfn in m.lru_inactive_file or pfn in m.lru_active_file


def lruvec_del_folio(m, pfn):
    """lruvec_del_folio: take a page off its list (it is leaving the page cache)."""
    flags = m.mem_map.flags_
    if flags[pfn] & PG_active:
        del m.lru_active_file[pfn]
        m.node_stat["nr_active_file"] -= 1
    else:
        del m.lru_inactive_file[pfn]
        m.node_stat["nr_inactive_file"] -= 1
    flags[pfn] &= ~(PG_lru | PG_active)


def folio_activate(m, pfn):
    """folio_activate: move an inactive page to the active list's young end."""
    flags = m.mem_map.flags_
    if flags[pfn] & PG_active or not flags[pfn] & PG_lru:
        return
    del m.lru_inactive_file[pfn]
    m.lru_active_file[pfn] = None
    flags[pfn] |= PG_active
    m.node_stat["nr_inactive_file"] -= 1
    m.node_stat["nr_active_file"] += 1
    m.reclaim_stats["pgactivate"] += 1


def folio_deactivate(m, pfn):
    """folio_deactivate (lru_deactivate): an active page goes to the inactive list's young end."""
    flags = m.mem_map.flags_
    if not flags[pfn] & PG_active or not flags[pfn] & PG_lru:
        return
    del m.lru_active_file[pfn]
    m.lru_inactive_file[pfn] = None
    flags[pfn] &= ~(PG_active | PG_referenced)
    flags[pfn] |= PG_workingset
    m.node_stat["nr_active_file"] -= 1
    m.node_stat["nr_inactive_file"] += 1
    m.reclaim_stats["pgdeactivate"] += 1


def folio_mark_accessed(m, pfn):
    """folio_mark_accessed: first use sets PG_referenced; a second use while inactive activates."""
    flags = m.mem_map.flags_
    f = flags[pfn]
    if not f & PG_referenced:
        flags[pfn] |= PG_referenced
    elif not f & PG_active and f & PG_lru:
        folio_activate(m, pfn)
        flags[pfn] &= ~PG_referenced


def rotate_inactive(m, pfn):
    """folio_rotate_reclaimable / keep: back to the young end of the inactive list."""
    m.lru_inactive_file.move_to_end(pfn)
    m.reclaim_stats["pgrotated"] += 1


# -- the reverse map of a page-cache page ---------------------------------------------------

def rmap_walk_file(m, pfn):
    """rmap_walk_file (i_mmap): every (mm, vma, addr, ptep) whose PTE maps this cache page.

    NOTE: mmlab keeps no i_mmap tree; the walk looks at every VMA of every
    process that maps the page's file, which finds the same entries.
    """
    from . import memory
    file, index = m.page_owner_file[pfn]
    out = []
    if not m.mem_map.mapcount_[pfn]:
        return out
    for p in list(m.processes.values()):
        mm = p.mm
        if mm.pgd is None:
            continue
        for vma in mm.vma_list():
            vf = vma.vm_file
            if vf is None or vf.file is not file:
                continue
            if not vma.vm_pgoff <= index < vma.vm_pgoff + vma.pages:
                continue
            addr = vma.vm_start + ((index - vma.vm_pgoff) << 12)
            ptep = memory.lookup_ptep(mm, addr)
            if ptep is None:
                continue
            pte = m.page_tables[ptep[0]][ptep[1]]
            if memory.pte_maps(int(pte), pfn):
                out.append((mm, vma, addr, ptep))
    return out


def folio_referenced(m, pfn):
    """folio_referenced: count the young PTEs mapping the page, clearing their accessed bits.

    Returns (references, vm_flags of the VMAs that referenced it).
    """
    from .pgtable import _PAGE_ACCESSED
    from .vma import VM_LOCKED
    from . import memory
    refs, vm_flags = 0, 0
    tables = m.page_tables
    for mm, vma, addr, (t, i) in rmap_walk_file(m, pfn):
        pte = int(tables[t][i])
        if vma.vm_flags & VM_LOCKED:
            vm_flags |= VM_LOCKED
            refs += 1
            continue
        if pte & _PAGE_ACCESSED:
            # ptep_clear_flush_young: the TLB must forget it, or later uses would not set the bit again.
            tables[t][i] = pte & ~_PAGE_ACCESSED
            memory.flush_tlb_page(mm, addr)
            refs += 1
            vm_flags |= vma.vm_flags
    return refs, vm_flags


def try_to_unmap(m, pfn):
    """try_to_unmap: clear every PTE that maps the page (a dirty one dirties the page); False if mlocked."""
    from . import memory
    from .vma import VM_LOCKED
    walk = rmap_walk_file(m, pfn)
    if any(vma.vm_flags & VM_LOCKED for _, vma, _, _ in walk):
        return False
    for mm, vma, addr, ptep in walk:
        memory.unmap_file_pte(mm, vma, addr, ptep, pfn)
    m.reclaim_stats["unmapped"] += len(walk)
    return m.mem_map.mapcount_[pfn] == 0


# -- reclaim -------------------------------------------------------------------------------

FOLIOREF_RECLAIM, FOLIOREF_RECLAIM_CLEAN, FOLIOREF_KEEP, FOLIOREF_ACTIVATE = range(4)


def folio_check_references(m, pfn):
    """folio_check_references: what reclaim does with an inactive page, from its references.

    Mapped and touched through a PTE: activate if touched twice (or
    PG_referenced already, or an executable mapping), else mark and keep;
    otherwise reclaim (only if clean, when PG_referenced was set).
    """
    from .vma import VM_EXEC, VM_LOCKED
    flags = m.mem_map.flags_
    referenced_ptes, vm_flags = folio_referenced(m, pfn)
    referenced_folio = bool(flags[pfn] & PG_referenced)
    flags[pfn] &= ~PG_referenced
    if vm_flags & VM_LOCKED:
        return FOLIOREF_ACTIVATE            # mlocked: Linux moves it to the unevictable list
    if referenced_ptes:
        flags[pfn] |= PG_referenced
        if referenced_folio or referenced_ptes > 1:
            return FOLIOREF_ACTIVATE
        if vm_flags & VM_EXEC:
            return FOLIOREF_ACTIVATE
        return FOLIOREF_KEEP
    if referenced_folio:
        return FOLIOREF_RECLAIM_CLEAN
    return FOLIOREF_RECLAIM


def pageout(m, pfn):
    """pageout: start writing a dirty page back; it stays until the write completes."""
    from . import page_writeback
    file, index = m.page_owner_file[pfn]
    page_writeback.write_pages(file, [index])
    m.reclaim_stats["pageout"] += 1


def shrink_folio_list(m, pfns):
    """shrink_folio_list: try to free each page taken off the inactive list; returns how many went."""
    flags = m.mem_map.flags_
    freed = 0
    for pfn in pfns:
        f = flags[pfn]
        if f & (PG_locked | PG_writeback):
            rotate_inactive(m, pfn)         # under I/O: look again later
            continue
        ref = folio_check_references(m, pfn)
        if ref == FOLIOREF_ACTIVATE:
            folio_activate(m, pfn)
            continue
        if ref == FOLIOREF_KEEP:
            rotate_inactive(m, pfn)
            continue
        if m.mem_map.mapcount_[pfn] and not try_to_unmap(m, pfn):
            folio_activate(m, pfn)
            continue
        if flags[pfn] & PG_dirty:
            if ref == FOLIOREF_RECLAIM_CLEAN:
                rotate_inactive(m, pfn)
                continue
            pageout(m, pfn)
            rotate_inactive(m, pfn)
            continue
        # __remove_mapping: clean, unmapped, idle: it goes.
        file, index = m.page_owner_file[pfn]
        filemap.delete_from_page_cache(file, index)
        freed += 1
    return freed


def reclaim_page(m, pfn):
    """reclaim_pages for one page (MADV_PAGEOUT): references ignored, unmapped, freed if clean.

    A dirty page is unmapped but not written: in shrink_folio_list only
    kswapd may write a file page back ("Only kswapd can writeback
    filesystem folios"), so this caller marks it for reclaim and puts it
    back on the active list (activate_locked), dirty and cached, for the
    flusher.  True if the page was freed.
    """
    flags = m.mem_map.flags_
    if flags[pfn] & (PG_locked | PG_writeback):
        return False
    if m.mem_map.mapcount_[pfn] and not try_to_unmap(m, pfn):
        return False
    if flags[pfn] & PG_dirty:
        folio_activate(m, pfn)
        return False
    file, index = m.page_owner_file[pfn]
    filemap.delete_from_page_cache(file, index)
    return True


def shrink_inactive_list(m, nr_to_scan):
    """shrink_inactive_list: take up to nr_to_scan pages from the old end and try to free them."""
    lru = m.lru_inactive_file
    take = []
    it = iter(lru)
    for _ in range(min(nr_to_scan, len(lru))):
        take.append(next(it))
    m.reclaim_stats["pgscan"] += len(take)
    freed = shrink_folio_list(m, take)
    m.reclaim_stats["pgsteal"] += freed
    return freed


def shrink_active_list(m, nr_to_scan):
    """shrink_active_list: move up to nr_to_scan pages from the old end of the active list to the
    inactive list; executable mapped pages that were used stay active."""
    from .vma import VM_EXEC
    lru = m.lru_active_file
    it = iter(lru)
    take = [next(it) for _ in range(min(nr_to_scan, len(lru)))]
    for pfn in take:
        refs, vm_flags = folio_referenced(m, pfn)
        if refs and vm_flags & VM_EXEC:
            lru.move_to_end(pfn)
            continue
        folio_deactivate(m, pfn)


def inactive_is_low(m):
    """inactive_is_low (file): the inactive list is smaller than active / inactive_ratio."""
    inactive = m.node_stat["nr_inactive_file"]
    active = m.node_stat["nr_active_file"]
    gb = (inactive + active) >> (30 - 12)
    ratio = math.isqrt(10 * gb) if gb else 1
    return inactive * ratio < active


def shrink_lazyfree(m, nr):
    """Reclaim MADV_FREE pages: discard those still clean, give the re-dirtied back to anon."""
    from . import memory
    freed = 0
    for _ in range(min(nr, len(m.lazyfree))):
        pfn, (mm, addr) = m.lazyfree.popitem(last=False)
        if memory.lazyfree_discard(mm, addr, pfn):
            freed += 1
    m.reclaim_stats["lazyfree"] += freed
    return freed


@traced(result=str)
def shrink_node(m, nr_to_reclaim):
    """shrink_node / shrink_lruvec: reclaim about nr_to_reclaim pages from the file lists.

    Rounds of SWAP_CLUSTER_MAX: deactivate when the inactive list is low,
    then shrink the inactive list; MADV_FREE pages after that; stop when
    enough was freed or a full pass over the lists frees nothing.
    """
    reclaimed = 0
    idle_rounds = 0
    while reclaimed < nr_to_reclaim:
        total = len(m.lru_inactive_file) + len(m.lru_active_file) + len(m.lazyfree)
        if not total:
            break
        if inactive_is_low(m):
            shrink_active_list(m, SWAP_CLUSTER_MAX)
        got = shrink_inactive_list(m, SWAP_CLUSTER_MAX)
        if not got and m.lazyfree:
            got = shrink_lazyfree(m, SWAP_CLUSTER_MAX)
        if not got and not m.lru_inactive_file and m.lru_active_file:
            shrink_active_list(m, SWAP_CLUSTER_MAX)
        reclaimed += got
        idle_rounds = 0 if got else idle_rounds + 1
        if idle_rounds * SWAP_CLUSTER_MAX > 2 * total + 2 * SWAP_CLUSTER_MAX:
            # A full pass freed nothing: what is left is dirty or under I/O; wait for the
            # oldest write to finish (reclaim_throttle), then try once more.
            if not wait_for_writeback(m):
                break
            idle_rounds = 0
    note(m, "shrink_node: %d pages reclaimed", reclaimed)
    return reclaimed


def wait_for_writeback(m):
    """reclaim_throttle(VMSCAN_THROTTLE_WRITEBACK): sleep until the next write completes; False if none."""
    t = None
    for _, _, req in m.disk.inflight:
        t = req.done_ns if t is None else min(t, req.done_ns)
    if t is None:
        return False
    filemap.advance_to(m, t)
    return True


def pages_to_high_watermark(m):
    """How far the zones are below their high watermarks, in pages (kswapd's goal)."""
    short = 0
    for z in m.zones:
        if z.populated() and z.managed_pages:
            short += max(0, z.wmark(WMARK_HIGH) - z.nr_free_pages)
    return short


@traced(result=str)
def try_to_free_pages(m, gfp, order):
    """try_to_free_pages (with kswapd's balance_pgdat goal): reclaim until the zones are above their
    high watermarks; returns the pages reclaimed.  Called from the allocator's slow path."""
    from .page_alloc import drain_all_pages
    target = max(SWAP_CLUSTER_MAX << order, pages_to_high_watermark(m))
    reclaimed = shrink_node(m, target)
    if reclaimed:
        drain_all_pages(m)
    return reclaimed


def direct_reclaim(m, gfp, order):
    """__alloc_pages_direct_reclaim: reclaim for an allocation that failed; pages freed (0 inside reclaim)."""
    if m.in_reclaim:
        return 0
    m.in_reclaim = True
    try:
        return try_to_free_pages(m, gfp, order)
    finally:
        m.in_reclaim = False


def drop_caches(m, mode):
    """drop_caches_sysctl_handler: 1 drops the page cache, 2 slab (nothing here), 3 both."""
    if mode & 1:
        n = filemap.drop_pagecache(m)
        note(m, "drop_caches: %d page-cache pages dropped", n)


# -- invariants -------------------------------------------------------------------------------

def check_lru(m):
    """The file lists hold exactly the disk-file cache pages, PG_active matches, counters agree."""
    flags = m.mem_map.flags_
    inactive, active = m.lru_inactive_file, m.lru_active_file
    for name, lru, want in (("inactive_file", inactive, 0), ("active_file", active, PG_active)):
        for pfn in lru:
            owner = m.page_owner_file.get(pfn)
            if owner is None or filemap.is_shmem(owner[0]):
                raise InvariantError(f"lru: pfn {pfn:#x} on {name} is not a disk-file cache page")
            if flags[pfn] & (PG_lru | PG_active) != PG_lru | want:
                raise InvariantError(f"lru: pfn {pfn:#x} on {name} has flags {flags[pfn]:#x}")
    n = sum(1 for f, _ in m.page_owner_file.values() if not filemap.is_shmem(f))
    if len(inactive) + len(active) != n:
        raise InvariantError(f"lru: {len(inactive) + len(active)} pages on the file lists, {n} disk-file "
                             f"cache pages")
    if m.node_stat["nr_inactive_file"] != len(inactive):
        raise InvariantError(f"stats: nr_inactive_file is {m.node_stat['nr_inactive_file']}, "
                             f"the list holds {len(inactive)}")
    if m.node_stat["nr_active_file"] != len(active):
        raise InvariantError(f"stats: nr_active_file is {m.node_stat['nr_active_file']}, "
                             f"the list holds {len(active)}")


__all__ = ["folio_add_lru", "folio_mark_accessed", "folio_activate", "folio_deactivate", "shrink_node",
           "try_to_free_pages", "drop_caches", "try_to_unmap", "folio_referenced"]


# -- what /proc/meminfo and /proc/zoneinfo count on the lists -----------------------------

def mlocked_pfns(m):
    """The frames PG_mlocked marks: every frame some VM_LOCKED VMA maps (mlock_folio, munlock_folio).

    Linux sets the flag as a locked VMA maps a page (at fault, at mlock) and
    clears it when the last locked mapping goes (mlock_count); the frames so
    marked are exactly those a locked VMA maps now, which is what this
    collects.  The zero page is never mlocked; PFNMAP/IO VMAs map no pages.
    """
    import numpy as np
    from . import pgtable
    from .vma import VM_LOCKED, VM_IO, VM_PFNMAP
    found = []
    for p in m.processes.values():
        mm = p.mm
        if mm.pgd is None or not mm.locked_vm:
            continue
        for vma in mm.vma_list():
            if vma.vm_flags & VM_LOCKED and not vma.vm_flags & (VM_IO | VM_PFNMAP):
                ptes = pgtable.get_ptes(mm, vma.vm_start, vma.vm_end)
                keep = ((ptes & np.uint64(pgtable._PAGE_PRESENT | pgtable._PAGE_PROTNONE)) != 0) & \
                    ((ptes & np.uint64(pgtable._PAGE_SPECIAL)) == 0)
                found.append(((ptes[keep] & np.uint64(pgtable.PTE_PFN_MASK)) >> np.uint64(12)).astype(np.int64))
    if not found:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(found))


def lru_sizes(m, zone=None, locked=None):
    """The LRU list sizes Linux reports (nr_{in,}active_{anon,file}, nr_unevictable) and nr_mlock.

    The file lists are this file's.  Anonymous and shmem pages are on no
    list in the model (no swap, nothing to reclaim them to), but Linux keeps
    them on the anon lists, new ones inactive, and never activates them
    without reclaim scanning: they are counted from their flags
    (PG_lru and PG_swapbacked, PG_active).  MADV_FREE'd pages sit on the
    inactive file list in Linux (lru_lazyfree).  Mlocked pages are moved
    to the unevictable list (mlock_folio), whatever list they were on.
    With `zone`, only that zone's frames; `locked` is mlocked_pfns(m), when
    the caller has it already (zoneinfo asks once per zone).
    """
    import numpy as np
    flags = m.mem_map.flags
    lo, hi = (0, len(flags)) if zone is None else (zone.zone_start_pfn, zone.zone_end_pfn)
    span = flags[lo:hi]
    locked = mlocked_pfns(m) if locked is None else locked
    locked = locked[(locked >= lo) & (locked < hi)] - lo
    is_locked = np.zeros(hi - lo, dtype=bool)
    is_locked[locked] = True
    swap = np.uint32(PG_lru | filemap.PG_swapbacked)
    anon = ((span & swap) == swap) & ~is_locked
    active = (span & np.uint32(PG_active)) != 0

    def listed(pfns):
        a = np.fromiter(pfns, dtype=np.int64, count=len(pfns))
        a = a[(a >= lo) & (a < hi)] - lo
        return int(np.count_nonzero(~is_locked[a]))

    return {"nr_active_anon": int(np.count_nonzero(anon & active)),
            "nr_inactive_anon": int(np.count_nonzero(anon & ~active)),
            "nr_active_file": listed(m.lru_active_file),
            "nr_inactive_file": listed(m.lru_inactive_file) + listed(m.lazyfree),
            "nr_unevictable": int(np.count_nonzero(is_locked & ((span & np.uint32(PG_lru)) != 0))),
            "nr_mlock": len(locked)}
