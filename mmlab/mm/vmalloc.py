"""vmalloc: virtually contiguous kernel memory made of scattered pages.

Models mm/vmalloc.c of Linux 6.18, and kvmalloc (mm/slub.c).

kmalloc and alloc_pages hand out physically contiguous memory, which grows
scarce as memory fragments.  vmalloc takes any free order-0 pages, wherever
they lie, and makes them contiguous in *virtual* addresses: it reserves a
range of the vmalloc area [VMALLOC_START, VMALLOC_END] and writes one kernel
PTE per page.  The price is page tables, TLB entries and a range search.

vmalloc(size), step by step:
 1. __get_vm_area_node: round size up to pages, add one unmapped guard page
    (unless VM_NO_GUARD) so that an overrun faults instead of corrupting the
    next area, kzalloc the vm_struct, and reserve the range with
    alloc_vmap_area: the lowest free range that fits (find_vmap_lowest_match
    over the free space, kept in an address-ordered tree that knows the
    largest free block under every node), clipped out of its block (va_clip).
 2. __vmalloc_area_node: the page array, kmalloc'd when it fits in a page and
    vmalloc'd itself when not ("vpages" in /proc/vmallocinfo); the pages, one
    order-0 page at a time from the buddy allocator (vm_area_alloc_pages); the
    kernel PTEs (vmap_pages_range), with PUD, PMD and PTE tables allocated
    under init_mm on first use.  On any failure, vfree() what was built.
 3. vfree: clear the PTEs (the tables stay), free the pages, the array and
    the vm_struct.  The *address range* is freed lazily (below).

Lazy purge.  Reusing a virtual range is only safe once every CPU has
flushed its TLB of the old translations, which costs an interrupt to every
CPU.  So a freed range waits on a lazy list, unusable, until more than
lazy_max_pages() pages (32 MiB times fls(number of CPUs)) wait; then
__purge_vmap_area_lazy flushes once and frees them all.  /proc/vmallocinfo
shows the waiting ranges as "unpurged vm_area".  mmlab models this fully.
NOTE: Linux purges from a workqueue (drain_vmap_work) shortly after the
threshold is crossed; mmlab purges at once, inside the vfree that crossed it.

vmap nodes (Linux 6.9 on).  With more than one CPU the address space is
managed by nr_vmap_nodes = min(CPUs, 128) nodes.  Busy areas are filed by
address, in 16-page zones taken round-robin.  At purge, a freed range of up
to 256 pages (guard included) goes to a per-size pool of the node that
asked for it, and the next request of exactly that size takes it from the
pool before the global free tree is searched; each purge returns a quarter
of every pool to the free tree (decay).  With one CPU there is one node and
no pools: every purged range returns to the free tree.

Glossary: va a vmap_area (a reserved range), vm a vm_struct (what a vmalloc
allocation knows of itself), pfn a page frame number, vn a vmap node.
NOTE: the vmap_area structures themselves come from their own slab cache
in Linux ("vmap_area"); mmlab does not charge them to the slab allocator.
The vm_struct (kzalloc) and the page array (kmalloc) are charged, through
m.kmalloc, as Linux charges them.
"""
import sys

import numpy as np

from ..arch import PAGE_SHIFT, PAGE_SIZE, VMALLOC_START, VMALLOC_END
from ..errors import KernelBug, InvariantError, require_int
from ..trace import traced, note
from ..uapi import (GFP_KERNEL, gfp_name, __GFP_ZERO, __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM,
                    __GFP_NOWARN, __GFP_NOFAIL, __GFP_RECLAIM, __GFP_HIGH, __GFP_IO, __GFP_FS,
                    __GFP_RETRY_MAYFAIL, __GFP_NORETRY, __GFP_MEMALLOC, __GFP_NOMEMALLOC,
                    __GFP_DIRECT_RECLAIM)
from . import page_alloc, pgtable
from .pgtable import PAGE_KERNEL, PMD_SHIFT, PMD_SIZE, U64

# vm_struct flags (include/linux/vmalloc.h).
VM_IOREMAP = 0x00000001
VM_ALLOC = 0x00000002
VM_MAP = 0x00000004
VM_USERMAP = 0x00000008
VM_DMA_COHERENT = 0x00000010
VM_UNINITIALIZED = 0x00000020
VM_NO_GUARD = 0x00000040
VM_KASAN = 0x00000080
VM_FLUSH_RESET_PERMS = 0x00000100
VM_MAP_PUT_PAGES = 0x00000200
VM_ALLOW_HUGE_VMAP = 0x00000400
VM_SPARSE = 0x00001000

# vmap_area flags: the low byte is the kind, the next byte the encoded node id.
VMAP_RAM = 0x1
VMAP_BLOCK = 0x2
BITS_PER_BYTE = 8

MAX_VA_SIZE_PAGES = 256                 # ranges up to this size go to the node pools
VMAP_ZONE_PAGES = 16                    # vmap_zone_size with more than one node
MAX_NR_VMAP_NODES = 128
NUMA_NO_NODE = -1
INT_MAX = (1 << 31) - 1
SIZEOF_VM_STRUCT = 72                   # sizeof(struct vm_struct), x86_64
SIZEOF_PAGE_PTR = 8                     # sizeof(struct page *)
PAGE_ALLOC_BATCH = 100                  # vm_area_alloc_pages asks the bulk allocator for <= 100

# mm/internal.h: the flags a nested allocation inherits.
GFP_RECLAIM_MASK = (__GFP_RECLAIM | __GFP_HIGH | __GFP_IO | __GFP_FS | __GFP_NOWARN
                    | __GFP_RETRY_MAYFAIL | __GFP_NOFAIL | __GFP_NORETRY | __GFP_MEMALLOC
                    | __GFP_NOMEMALLOC)


def is_vmalloc_addr(addr):
    """is_vmalloc_addr: addr lies in [VMALLOC_START, VMALLOC_END)."""
    return VMALLOC_START <= addr < VMALLOC_END


# -- the structures ------------------------------------------------------------

class VmapArea:
    """struct vmap_area: a reserved range [va_start, va_end), busy, lazily freed or pooled."""

    __slots__ = ("va_start", "va_end", "vm", "flags")

    def __init__(self, va_start, va_end, flags=0):
        self.va_start, self.va_end, self.vm, self.flags = va_start, va_end, None, flags

    def size(self):
        return self.va_end - self.va_start

    def __repr__(self):
        return f"VmapArea({self.va_start:#x}-{self.va_end:#x})"


class VmStruct:
    """struct vm_struct: one vmalloc (or vmap) allocation.

    size includes the guard page; pages lists the pfns mapped, in address
    order; pages_addr is where the page array itself lives (a kmalloc or,
    for "vpages", a vmalloc address); kaddr is the kmalloc address of this
    structure.
    """

    __slots__ = ("addr", "size", "flags", "pages", "pages_addr", "page_order", "nr_pages",
                 "phys_addr", "caller", "requested_size", "kaddr")

    def __init__(self, flags, caller, requested_size):
        self.addr = self.size = 0
        self.flags, self.caller, self.requested_size = flags, caller, requested_size
        self.pages, self.pages_addr, self.page_order, self.nr_pages = [], 0, 0, 0
        self.phys_addr = 0
        self.kaddr = 0

    def area_size(self):
        """get_vm_area_size: the mapped size, guard page excluded."""
        return self.size - (0 if self.flags & VM_NO_GUARD else PAGE_SIZE)

    def __repr__(self):
        return f"VmStruct({self.addr:#x}, size={self.size}, pages={self.nr_pages})"


class FreeBlock:
    """A node of the free-space tree: one free range and the largest free range in its subtree."""

    __slots__ = ("start", "end", "prio", "left", "right", "max_size")

    def __init__(self, start, end):
        self.start, self.end = start, end
        # A fixed pseudo-random priority from the address keeps the tree
        # balanced on average and every run identical.
        self.prio = ((start >> PAGE_SHIFT) * 0x9E3779B97F4A7C15 + start) & U64
        self.left = self.right = None
        self.max_size = end - start


def _pull(n):
    """augment_tree_propagate: recompute a node's subtree_max_size from its children."""
    size = n.end - n.start
    if n.left is not None and n.left.max_size > size:
        size = n.left.max_size
    if n.right is not None and n.right.max_size > size:
        size = n.right.max_size
    n.max_size = size


def _split(n, key):
    """Split a subtree into the nodes starting below key and the rest."""
    if n is None:
        return None, None
    if n.start < key:
        low, high = _split(n.right, key)
        n.right = low
        _pull(n)
        return n, high
    low, high = _split(n.left, key)
    n.left = high
    _pull(n)
    return low, n


def _join(a, b):
    """Join two subtrees, every start of a below every start of b."""
    if a is None:
        return b
    if b is None:
        return a
    if a.prio > b.prio:
        a.right = _join(a.right, b)
        _pull(a)
        return a
    b.left = _join(a, b.left)
    _pull(b)
    return b


class FreeVmapTree:
    """free_vmap_area_root: the free address ranges, ordered by address, augmented by size.

    Linux keeps them in a red-black tree in which every node caches
    subtree_max_size, the largest free range below it; the lowest range
    that fits is then found in one walk down, skipping every subtree too
    small (find_vmap_lowest_match).  mmlab uses a treap (a search tree
    kept balanced by node priorities) with the same augmentation, so the
    search is logarithmic in the same way.
    NOTE: with an alignment above a page, Linux's walk prunes subtrees by
    size + align - 1 but tests each node it passes with the exact request,
    so which of two candidates it finds can depend on the tree's shape;
    mmlab's walk does the same on its own tree, and may pick differently
    in that corner case.  Plain vmalloc (page alignment) is unaffected.
    """

    def __init__(self):
        self.root = None
        self.count = 0

    def __len__(self):
        return self.count

    def __iter__(self):
        """The free blocks in address order, as (start, end)."""
        stack, n = [], self.root
        while stack or n is not None:
            while n is not None:
                stack.append(n)
                n = n.left
            n = stack.pop()
            yield n.start, n.end
            n = n.right

    def insert(self, start, end):
        """insert_vmap_area_augment."""
        low, high = _split(self.root, start)
        self.root = _join(_join(low, FreeBlock(start, end)), high)
        self.count += 1

    def remove(self, start):
        """unlink_va_augment: take out the block starting at start."""
        low, rest = _split(self.root, start)
        node, high = _split(rest, start + 1)
        if node is None or node.start != start:
            raise KernelBug(f"free tree: no free block starts at {start:#x}")
        self.root = _join(low, high)
        self.count -= 1

    def update(self, start, new_start, new_end):
        """Resize the block at start in place (its neighbours' order must not change)."""
        def down(n):
            if n is None:
                raise KernelBug(f"free tree: no free block starts at {start:#x}")
            if start < n.start:
                down(n.left)
            elif start > n.start:
                down(n.right)
            else:
                n.start, n.end = new_start, new_end
            _pull(n)
        down(self.root)

    def after(self, addr):
        """The block with the lowest start at or above addr, as (start, end), or None."""
        n, best = self.root, None
        while n is not None:
            if n.start >= addr:
                best, n = n, n.left
            else:
                n = n.right
        return None if best is None else (best.start, best.end)

    def before(self, addr):
        """The block with the highest start below addr, as (start, end), or None."""
        n, best = self.root, None
        while n is not None:
            if n.start < addr:
                best, n = n, n.right
            else:
                n = n.left
        return None if best is None else (best.start, best.end)

    def lowest_match(self, m, size, align, vstart, length):
        """find_vmap_lowest_match: the lowest block holding `size` bytes at `align` at or above vstart.

        Subtrees whose largest block is under `length` (size, plus align - 1
        when the search is adjusted for alignment) are never entered.
        Returns (block start, block end, aligned start) or None.
        """
        def search(n):
            if n is None or n.max_size < length:
                return None
            if vstart < n.start:
                hit = search(n.left)
                if hit is not None:
                    return hit
            nva = is_within_this_va(n.start, n.end, size, align, vstart)
            if nva is not None:
                note(m, "find_vmap_lowest_match: free block %#x-%#x (%d pages) fits at %#x",
                     n.start, n.end, (n.end - n.start) >> PAGE_SHIFT, nva)
                return n.start, n.end, nva
            note(m, "find_vmap_lowest_match: free block %#x-%#x (%d pages) does not fit",
                 n.start, n.end, (n.end - n.start) >> PAGE_SHIFT)
            return search(n.right)
        return search(self.root)


class VmapNode:
    """struct vmap_node: one node's lazily freed ranges and its pools of purged ranges by size."""

    __slots__ = ("id", "lazy", "pool", "skip_populate", "nr_purged")

    def __init__(self, node_id):
        self.id = node_id
        self.lazy = []                  # vmap_areas freed, waiting for the next purge
        self.pool = [[] for _ in range(MAX_VA_SIZE_PAGES)]   # pool[i]: ranges of i+1 pages; last = head
        self.skip_populate = False
        self.nr_purged = 0


class Vmap:
    """m.vmap: the state of mm/vmalloc.c on one machine.

    free     the free address space (free_vmap_area_root)
    busy     reserved ranges by start address (the nodes' busy trees)
    nodes    the vmap nodes with their lazy lists and pools
    vmap_lazy_nr, nr_vmalloc_pages   the two counters Linux keeps
    """

    def __init__(self, machine):
        self.machine = machine
        self.free = FreeVmapTree()
        self.busy = {}
        n = min(max(machine.cpus, 1), MAX_NR_VMAP_NODES)
        self.nr_vmap_nodes = n
        self.zone_size = VMAP_ZONE_PAGES * PAGE_SIZE if n > 1 else 1
        self.nodes = [VmapNode(i) for i in range(n)]
        self.vmap_lazy_nr = 0
        self.nr_vmalloc_pages = 0
        self.nr_purges = 0


def vmalloc_init(m):
    """vmalloc_init / vmap_init_free_space: every address but 0 and the top one starts out free.

    The kernel's free tree spans the whole 64-bit space; vmalloc() limits
    its search to [VMALLOC_START, VMALLOC_END].  A fresh mmlab machine has
    no boot-time vmalloc areas.
    """
    m.vmap = Vmap(m)
    m.vmap.free.insert(1, U64)
    m.checks.append(check)


def lazy_max_pages(m):
    """lazy_max_pages: how many freed pages may wait for a purge: 32 MiB times fls(online CPUs)."""
    return m.cpus.bit_length() * ((32 << 20) >> PAGE_SHIFT)


def addr_to_node_id(m, addr):
    """addr_to_node_id: busy areas are spread over the nodes in zones of 16 pages."""
    v = m.vmap
    return (addr // v.zone_size) % v.nr_vmap_nodes


def encode_vn_id(m, node_id):
    """encode_vn_id: a node id as stored in va->flags (0 means none)."""
    return (node_id + 1) << BITS_PER_BYTE


def decode_vn_id(m, flags):
    """decode_vn_id: the node id in va->flags, or None."""
    vn_id = (flags >> BITS_PER_BYTE) - 1
    return vn_id if 0 <= vn_id < m.vmap.nr_vmap_nodes else None


# -- reserving a range -----------------------------------------------------------

def is_within_this_va(start, end, size, align, vstart):
    """is_within_this_va: the aligned start of `size` bytes inside [start, end) at or above vstart, or None."""
    nva = max(start, vstart)
    nva = -(-nva // align) * align
    if nva + size > end or nva + size > U64:
        return None
    return nva


def va_clip(m, start, end, nva, size):
    """va_clip: cut [nva, nva + size) out of the free block [start, end).

    Four cases (classify_va_fit_type): the block is used whole (FL_FIT), from
    its left edge (LE_FIT), up to its right edge (RE_FIT), or from its middle,
    which splits it in two (NE_FIT).
    """
    tree = m.vmap.free
    if nva == start and nva + size == end:
        tree.remove(start)
        kind = "FL_FIT"
    elif nva == start:
        tree.update(start, nva + size, end)
        kind = "LE_FIT"
    elif nva + size == end:
        tree.update(start, start, nva)
        kind = "RE_FIT"
    else:
        tree.update(start, start, nva)
        tree.insert(nva + size, end)
        kind = "NE_FIT"
    note(m, "va_clip: %s: %#x-%#x taken from free block %#x-%#x", kind, nva, nva + size, start, end)


@traced(name="__alloc_vmap_area")
def alloc_from_free_tree(m, size, align, vstart, vend):
    """__alloc_vmap_area: the lowest fitting range of the global free tree; its start, or None."""
    # The alignment overhead matters only above a page (every block is page
    # aligned), and not when the request fills [vstart, vend) exactly.
    adjust = align > PAGE_SIZE and vend - vstart != size
    length = size + align - 1 if adjust else size
    hit = m.vmap.free.lowest_match(m, size, align, vstart, length)
    if hit is None:
        return None
    start, end, nva = hit
    if nva + size > vend:
        note(m, "__alloc_vmap_area: %#x-%#x is beyond vend %#x", nva, nva + size, vend)
        return None
    va_clip(m, start, end, nva, size)
    return nva


def merge_or_add_vmap_area(m, start, end):
    """merge_or_add_vmap_area_augment: give [start, end) back to the free tree, merged with neighbours."""
    tree = m.vmap.free
    prv = tree.before(start)
    nxt = tree.after(start)
    if prv is not None and prv[1] > start or nxt is not None and nxt[0] < end:
        raise KernelBug(f"merge_or_add_vmap_area: {start:#x}-{end:#x} overlaps a free block")
    if nxt is not None and nxt[0] != end:
        nxt = None
    if prv is not None and prv[1] == start:
        if nxt is not None:
            tree.remove(nxt[0])
            end = nxt[1]
        tree.update(prv[0], prv[0], end)
        note(m, "merge_or_add_vmap_area: %#x-%#x merged into free block %#x-%#x", start, end, prv[0], end)
    elif nxt is not None:
        tree.update(nxt[0], start, nxt[1])
        note(m, "merge_or_add_vmap_area: %#x-%#x merged into free block %#x-%#x", start, end, start, nxt[1])
    else:
        tree.insert(start, end)
        note(m, "merge_or_add_vmap_area: %#x-%#x is a free block of its own", start, end)


def size_to_va_pool(vn, size):
    """size_to_va_pool: the pool for ranges of exactly this size, or None above 256 pages."""
    idx = (size - 1) // PAGE_SIZE
    return vn.pool[idx] if idx < MAX_VA_SIZE_PAGES else None


def node_pool_add_va(vn, va):
    """node_pool_add_va: put a purged range at the head of its size's pool; False if too big."""
    pool = size_to_va_pool(vn, va.size())
    if pool is None:
        return False
    pool.append(va)
    return True


def node_pool_del_va(m, vn, size, align, vstart, vend):
    """node_pool_del_va: the range at the head of the pool for `size`, if aligned; else rotate it to the tail."""
    pool = size_to_va_pool(vn, size)
    if not pool:
        return None
    va = pool[-1]
    if va.va_start % align:
        pool.insert(0, pool.pop())
        return None
    if va.size() != size or va.va_start < vstart or va.va_end > vend:
        raise KernelBug(f"node_pool_del_va: pooled {va} does not fit {size} bytes in [{vstart:#x}, {vend:#x})")
    return pool.pop()


def node_alloc(m, size, align, vstart, vend):
    """node_alloc: try this CPU's node pool first.

    Returns (va or None, vn_id to record).  Only requests for the whole
    vmalloc range, on machines with more than one node, use the pools;
    their ranges remember the node (vn_id), so that once freed and purged
    they return to its pool.
    """
    v = m.vmap
    if vstart != VMALLOC_START or vend != VMALLOC_END or v.nr_vmap_nodes == 1:
        return None, 0
    node_id = m.current_cpu % v.nr_vmap_nodes
    va = node_pool_del_va(m, v.nodes[node_id], size, align, vstart, vend)
    if va is not None:
        note(m, "node_alloc: %#x-%#x from node %d's pool of %d-page ranges", va.va_start, va.va_end,
             node_id, size >> PAGE_SHIFT)
    return va, encode_vn_id(m, node_id)


@traced(result=lambda va: repr(va))
def alloc_vmap_area(m, size, align, vstart, vend, va_flags, vm):
    """alloc_vmap_area: reserve `size` bytes of [vstart, vend) at `align`; the vmap_area or None.

    The node pool first, then the lowest fit in the global free tree; if
    that fails, purge every lazily freed range and empty the pools
    (reclaim_and_purge_vmap_areas), then try once more.  The range is filed
    as busy, with vm attached.
    """
    if not size or size % PAGE_SIZE or align & (align - 1) or align <= 0:
        raise KernelBug(f"alloc_vmap_area: bad size {size} or align {align} (-EINVAL)")
    va, vn_id = node_alloc(m, size, align, vstart, vend)
    addr = va.va_start if va is not None else None
    if addr is None:
        addr = alloc_from_free_tree(m, size, align, vstart, vend)
        if addr is None:
            note(m, "alloc_vmap_area: no room: purge the lazy ranges and try again")
            reclaim_and_purge_vmap_areas(m)
            addr = alloc_from_free_tree(m, size, align, vstart, vend)
        if addr is None:
            # "vmalloc_node_range for size %lu failed: Address range full" (-EBUSY)
            note(m, "vmalloc_node_range for size %d failed: Address range full", size)
            return None
        va = VmapArea(addr, addr + size)
    va.flags = va_flags | vn_id
    va.vm = vm
    if vm is not None:
        vm.addr, vm.size = va.va_start, va.size()
    m.vmap.busy[va.va_start] = va
    return va


@traced(name="__get_vm_area_node", fmt={"flags": hex, "gfp": gfp_name}, result=lambda vm: repr(vm))
def get_vm_area_node(m, size, align, shift, flags, start, end, gfp, caller):
    """__get_vm_area_node: a vm_struct with a reserved range of size bytes plus the guard page.

    Returns the vm_struct, or None (the vm_struct is freed again) when
    either the structure or the range cannot be had.
    """
    requested = size
    size = -(-size >> shift) << shift
    if not size:
        return None
    area = VmStruct(flags, caller, requested)
    area.kaddr = kmalloc(m, SIZEOF_VM_STRUCT, (gfp & GFP_RECLAIM_MASK) | __GFP_ZERO)
    if not area.kaddr:
        return None
    if not flags & VM_NO_GUARD:
        size += PAGE_SIZE
    va = alloc_vmap_area(m, size, align, start, end, 0, area)
    if va is None:
        kfree(m, area.kaddr)
        return None
    return area


# -- freeing a range: lazily -----------------------------------------------------

@traced
def free_vmap_area_noflush(m, va):
    """free_vmap_area_noflush: put a range on its node's lazy list; purge when too many pages wait."""
    v = m.vmap
    v.vmap_lazy_nr += va.size() >> PAGE_SHIFT
    vn_id = decode_vn_id(m, va.flags)
    vn = v.nodes[vn_id if vn_id is not None else addr_to_node_id(m, va.va_start)]
    vn.lazy.append(va)
    limit = lazy_max_pages(m)
    note(m, "free_vmap_area_noflush: %#x-%#x waits on node %d's lazy list (%d of %d lazy pages)",
         va.va_start, va.va_end, vn.id, v.vmap_lazy_nr, limit)
    if v.vmap_lazy_nr > limit:
        drain_vmap_area_work(m)


def drain_vmap_area_work(m):
    """drain_vmap_area_work: the purge the lazy threshold schedules."""
    purge_vmap_area_lazy(m, U64, 0, False)


def reclaim_and_purge_vmap_areas(m):
    """reclaim_and_purge_vmap_areas: purge everything and drain the pools fully (on allocation failure)."""
    purge_vmap_area_lazy(m, U64, 0, True)


def decay_va_pool_node(m, vn, full_decay):
    """decay_va_pool_node: return a quarter (or, fully decaying, all) of every pool to the free tree."""
    decayed = []
    for pool in vn.pool:
        if not pool:
            continue
        n_decay = len(pool) if full_decay else len(pool) >> 2
        # The head of the pool (the most recently pooled) goes first.
        for _ in range(n_decay):
            decayed.append(pool.pop())
    if decayed:
        note(m, "decay_va_pool_node: node %d returns %d pooled ranges to the free tree", vn.id, len(decayed))
    reclaim_list_global(m, decayed)


def reclaim_list_global(m, vas):
    """reclaim_list_global: merge ranges back into the global free tree."""
    for va in vas:
        merge_or_add_vmap_area(m, va.va_start, va.va_end)


def purge_vmap_node(m, vn, purge_list):
    """purge_vmap_node: pool each purged range on its node if it has one and fits, else free it."""
    vn.nr_purged = 0
    back = []
    for va in purge_list:
        vn.nr_purged += 1
        m.vmap.vmap_lazy_nr -= va.size() >> PAGE_SHIFT
        if decode_vn_id(m, va.flags) is not None and not vn.skip_populate and node_pool_add_va(vn, va):
            continue
        back.append(va)
    reclaim_list_global(m, back)


@traced(name="__purge_vmap_area_lazy")
def purge_vmap_area_lazy(m, start=U64, end=0, full_pool_decay=False):
    """__purge_vmap_area_lazy: flush the TLB once, then free every lazily freed range.

    For each node: decay its pools, take its lazy list, then (after one
    flush_tlb_kernel_range over everything taken) pool or free each range.
    Returns True if any range was purged.
    """
    v = m.vmap
    lists = []
    for vn in v.nodes:
        vn.skip_populate = full_pool_decay
        decay_va_pool_node(m, vn, full_pool_decay)
        if not vn.lazy:
            continue
        purge_list = sorted(vn.lazy, key=lambda va: va.va_start)
        vn.lazy = []
        start = min(start, purge_list[0].va_start)
        end = max(end, purge_list[-1].va_end)
        lists.append((vn, purge_list))
    if not lists:
        return False
    note(m, "flush_tlb_kernel_range: %#x-%#x on every CPU", start, end)
    purged = 0
    for vn, purge_list in lists:
        purge_vmap_node(m, vn, purge_list)
        purged += vn.nr_purged
    v.nr_purges += 1
    note(m, "__purge_vmap_area_lazy: %d ranges purged", purged)
    return purged > 0


# -- page tables -----------------------------------------------------------------

@traced(fmt={"pages": lambda pages: f"<{len(pages)} pages>"})
def vmap_pages_range(m, addr, end, pages, page_shift):
    """vmap_pages_range: map pages (pfns, in order) at [addr, end) in init_mm with PAGE_KERNEL.

    Order-0 pages get one PTE each (vmap_small_pages_range_noflush);
    2 MiB blocks get one PMD leaf each (vmap_range_noflush and
    vmap_try_huge_pmd).  Missing tables are allocated on the way and stay.
    Returns 0, or -ENOMEM when a table cannot be had.
    """
    mm = m.init_mm
    if page_shift == PAGE_SHIFT:
        ptes = np.array([(pfn << PAGE_SHIFT) | PAGE_KERNEL for pfn in pages], dtype=np.uint64)
        return pgtable.set_ptes_range(mm, addr, ptes)
    step = 1 << (page_shift - PAGE_SHIFT)
    for i in range(0, len(pages), step):
        if vmap_range_huge(m, addr + (i << PAGE_SHIFT), pages[i]):
            return -12
    return 0


def vmap_range_huge(m, addr, pfn):
    """vmap_range_noflush for one 2 MiB block: a PMD leaf (vmap_try_huge_pmd), else 512 PTEs."""
    mm = m.init_mm
    pmdp = pgtable.walk_alloc(mm, addr)
    if pmdp is None:
        return -12
    pmd = pgtable.ptep_get(mm, pmdp)
    aligned = not addr % PMD_SIZE and not pfn % (PMD_SIZE >> PAGE_SHIFT)
    if aligned and (pgtable.pmd_none(pmd) or pgtable.pmd_free_pte_page(mm, pmdp, addr)):
        pgtable.pmd_set_huge(mm, pmdp, pfn, PAGE_KERNEL)
        note(m, "vmap_try_huge_pmd: 2 MiB leaf at %#x -> pfn %#x", addr, pfn)
        return 0
    nr = PMD_SIZE >> PAGE_SHIFT
    return pgtable.set_ptes_range(mm, addr, np.arange(pfn, pfn + nr, dtype=np.uint64) << np.uint64(PAGE_SHIFT)
                                  | np.uint64(PAGE_KERNEL))


def vunmap_range_noflush(m, start, end):
    """vunmap_range_noflush: clear the kernel mappings of [start, end); every table stays.

    2 MiB leaves are cleared whole (pmd_clear_huge).  Kernel page tables
    are never freed here: the next vmalloc in the same place reuses them.
    """
    mm = m.init_mm
    tables = m.page_tables
    addr = start
    while addr < end:
        nxt = pgtable.pmd_addr_end(addr, end)
        pmdp = pgtable.lookup_pmd(mm, addr)
        if pmdp is not None and not pgtable.pmd_clear_huge(mm, pmdp):
            pmd = pgtable.pmdp_get(mm, pmdp)
            if pmd:                                     # vunmap_pte_range
                i = pgtable.pte_index(addr)
                tables[pgtable.pte_pfn(pmd)][i:i + ((nxt - addr) >> PAGE_SHIFT)] = 0
        addr = nxt
    note(m, "vunmap_range_noflush: %#x-%#x unmapped", start, end)


# -- the pages -------------------------------------------------------------------

@traced(fmt={"gfp": gfp_name}, result=lambda pages: f"{len(pages)} pages")
def vm_area_alloc_pages(m, gfp, order, nr_pages):
    """vm_area_alloc_pages: up to nr_pages frames, in blocks of 2**order, split into order-0 pages.

    Returns the pfns in the order they were allocated; fewer than asked
    means memory ran out (the caller undoes).  Order 0 uses the bulk
    allocator in batches of up to 100 when the page allocator has one.
    Linux 6.18 fills order-0 arrays with alloc_pages_bulk, which takes
    pages from the per-CPU lists.  (Linux 6.19 first tries the largest
    orders the size allows and splits them.)
    """
    pages = []
    bulk = page_alloc.alloc_pages_bulk
    if not order:
        while len(pages) < nr_pages:
            want = min(PAGE_ALLOC_BATCH, nr_pages - len(pages))
            got = bulk(m, gfp, want)
            pages.extend(got)
            if len(got) != want:
                break
    alloc = page_alloc.alloc_pages
    while len(pages) < nr_pages:
        pfn = alloc(m, order, gfp)
        if pfn is None:
            break
        if order:
            page_alloc.split_page(m, pfn, order)
            pages.extend(range(pfn, pfn + (1 << order)))
        else:
            pages.append(pfn)
    return pages


def free_vm_pages(m, vm):
    """vfree's loop: __free_page for every page, huge blocks having been split at allocation."""
    page_alloc.free_page_array(m, vm.pages)
    note(m, "vfree: %d pages back to the page allocator", len(vm.pages))


@traced(name="__vmalloc_area_node", fmt={"gfp": gfp_name})
def vmalloc_area_node(m, area, gfp, page_shift, node):
    """__vmalloc_area_node: fill a reserved area with pages and map them.

    1. The page array: kmalloc'd if it fits in a page, else vmalloc'd
       itself; that array's own array is kmalloc'd up to 1 GiB of vmalloc
       and vmalloc'd again above it (a page of pointers covers 2 MiB).
    2. The pages (vm_area_alloc_pages), counted in nr_vmalloc_pages.
    3. The PTEs (vmap_pages_range).
    Returns the area's address, or 0 after undoing everything with vfree
    (the range then waits on the lazy list, as in Linux).
    """
    nested_gfp = (gfp & GFP_RECLAIM_MASK) | __GFP_ZERO
    size = area.area_size()
    nr_small_pages = size >> PAGE_SHIFT
    array_size = nr_small_pages * SIZEOF_PAGE_PTR
    if not gfp & (__GFP_DMA | __GFP_DMA32):
        gfp |= __GFP_HIGHMEM
    if array_size > PAGE_SIZE:
        area.pages_addr = vmalloc_node_range(m, array_size, 1, VMALLOC_START, VMALLOC_END, nested_gfp,
                                             0, node, area.caller)
    else:
        area.pages_addr = kmalloc(m, array_size, nested_gfp)
    note(m, "__vmalloc_area_node: page array of %d bytes %s at %#x", array_size,
         "vmalloc'd (vpages)" if array_size > PAGE_SIZE else "kmalloc'd", area.pages_addr)
    if not area.pages_addr:
        note(m, "vmalloc error: size %d, failed to allocated page array size %d", size, array_size)
        free_vm_area(m, area)
        return 0
    area.page_order = page_shift - PAGE_SHIFT
    alloc_gfp = (gfp & ~__GFP_NOFAIL if area.page_order else gfp) | __GFP_NOWARN
    area.pages = vm_area_alloc_pages(m, alloc_gfp, area.page_order, nr_small_pages)
    area.nr_pages = len(area.pages)
    m.vmap.nr_vmalloc_pages += area.nr_pages
    if area.nr_pages != nr_small_pages:
        if not area.page_order:
            note(m, "vmalloc error: size %d, failed to allocate pages", area.nr_pages * PAGE_SIZE)
        vfree(m, area.addr)
        return 0
    if vmap_pages_range(m, area.addr, area.addr + size, area.pages, page_shift):
        note(m, "vmalloc error: size %d, failed to map pages", area.nr_pages * PAGE_SIZE)
        vfree(m, area.addr)
        return 0
    return area.addr


@traced(name="__vmalloc_node_range", fmt={"gfp": gfp_name, "vm_flags": hex})
def vmalloc_node_range(m, size, align, start, end, gfp, vm_flags, node, caller):
    """__vmalloc_node_range: size bytes of [start, end), virtually contiguous; the address or 0.

    Refuses (returns 0) a size of 0 and a size above the machine's RAM, both
    before anything changes.  With VM_ALLOW_HUGE_VMAP and 2 MiB or more it
    first tries 2 MiB blocks mapped by PMD leaves, and on failure falls back
    to order-0 pages.
    NOTE: with __GFP_NOFAIL Linux retries for ever; mmlab, which has no
    reclaim to wait for, fails such a request like any other.
    """
    if not size:
        note(m, "__vmalloc_node_range: WARN_ON_ONCE(!size): vmalloc(0) returns NULL")
        return 0
    if size >> PAGE_SHIFT > m.totalram_pages:
        note(m, "vmalloc error: size %d, exceeds total pages", size)
        return 0
    shift = PAGE_SHIFT
    original_align = align
    if vm_flags & VM_ALLOW_HUGE_VMAP and size >= PMD_SIZE:
        shift = PMD_SHIFT                       # arch_vmap_pmd_supported(PAGE_KERNEL)
        align = max(original_align, 1 << shift)
    while True:
        area = get_vm_area_node(m, size, align, shift, VM_ALLOC | VM_UNINITIALIZED | vm_flags,
                                start, end, gfp, caller)
        if area is None:
            note(m, "vmalloc error: size %d, vm_struct allocation failed", size)
            addr = 0
        else:
            addr = vmalloc_area_node(m, area, gfp, shift, node)
        if addr or shift == PAGE_SHIFT:
            break
        note(m, "__vmalloc_node_range: no 2 MiB blocks; retry with order-0 pages")
        shift, align = PAGE_SHIFT, original_align
    if addr:
        area.flags &= ~VM_UNINITIALIZED           # clear_vm_uninitialized_flag
    return addr


# -- the public calls ------------------------------------------------------------

def check_caller(caller):
    if type(caller) is not str or len(caller.split()) != 1:
        raise TypeError(f"caller must be a symbol string such as 'my_init+0x1c/0x40', not {caller!r}")
    return caller


def caller_of(frame):
    """The default caller shown in /proc/vmallocinfo: the calling Python function, as '%pS' prints.

    Linux prints the kernel function that called vmalloc (from
    __builtin_return_address(0)) as symbol+offset/size.  A model call has
    no kernel symbol, so mmlab names the Python function that made it, at
    offset 0 ('test_guard+0x0/0x0'; 'module+0x0/0x0' at a notebook's top level).
    """
    name = frame.f_code.co_name.strip("<>") if frame is not None else "module"
    return f"{name}+0x0/0x0"


def check_size(size):
    return require_int("size", size, 0, U64)


def check_gfp(gfp):
    """Refuse flags no allocation could use, before anything is reserved."""
    gfp = page_alloc.check_gfp(gfp)
    page_alloc.gfp_zone(gfp)                    # __GFP_DMA with __GFP_DMA32 names no zone
    page_alloc.gfp_migratetype(gfp)             # movable and reclaimable exclude each other
    return gfp


def vmalloc(m, size, gfp=GFP_KERNEL, caller=None):
    """vmalloc / __vmalloc: size bytes, virtually contiguous, from order-0 pages; the address or 0."""
    size = check_size(size)
    gfp = check_gfp(gfp)
    caller = check_caller(caller) if caller is not None else caller_of(sys._getframe(1))
    return vmalloc_node_range(m, size, 1, VMALLOC_START, VMALLOC_END, gfp, 0, NUMA_NO_NODE, caller)


def vzalloc(m, size, caller=None):
    """vzalloc: vmalloc with zeroed pages."""
    caller = check_caller(caller) if caller is not None else caller_of(sys._getframe(1))
    return vmalloc(m, size, GFP_KERNEL | __GFP_ZERO, caller)


def vmalloc_huge(m, size, gfp=GFP_KERNEL, caller=None):
    """vmalloc_huge: like vmalloc, but 2 MiB mappings where the size allows."""
    size = check_size(size)
    gfp = check_gfp(gfp)
    caller = check_caller(caller) if caller is not None else caller_of(sys._getframe(1))
    return vmalloc_node_range(m, size, 1, VMALLOC_START, VMALLOC_END, gfp, VM_ALLOW_HUGE_VMAP,
                              NUMA_NO_NODE, caller)


def find_unlink_vmap_area(m, addr):
    """find_unlink_vmap_area: take the busy range starting at addr off the busy list; None if none."""
    return m.vmap.busy.pop(addr, None)


def free_unmap_vmap_area(m, va):
    """free_unmap_vmap_area: unmap the whole range, then free it lazily."""
    vunmap_range_noflush(m, va.va_start, va.va_end)
    free_vmap_area_noflush(m, va)


@traced(result=lambda vm: repr(vm))
def remove_vm_area(m, addr):
    """remove_vm_area: unmap and lazily free the area at addr; its vm_struct, or None if none."""
    va = find_unlink_vmap_area(m, addr)
    if va is None or va.vm is None:
        if va is not None:
            m.vmap.busy[addr] = va
        return None
    free_unmap_vmap_area(m, va)
    return va.vm


def free_vm_area(m, area):
    """free_vm_area: remove an area that never got pages, and free its vm_struct."""
    remove_vm_area(m, area.addr)
    kfree(m, area.kaddr)


@traced
def vfree(m, addr):
    """vfree: release a vmalloc allocation.

    Unmaps it (remove_vm_area, the range freed lazily), frees its pages,
    then its page array (kvfree: kfree or vfree by address) and vm_struct.
    vfree(0) does nothing.  An address vmalloc never returned (or already
    freed) raises KernelBug and changes nothing; Linux WARNs "Trying to
    vfree() nonexistent vm area" and returns.
    """
    addr = require_int("addr", addr, 0, U64)
    if not addr:
        return
    if addr % PAGE_SIZE:
        raise KernelBug(f"Trying to vfree() bad address ({addr:#x})")
    va = m.vmap.busy.get(addr)
    if va is None or va.vm is None:
        raise KernelBug(f"Trying to vfree() nonexistent vm area ({addr:#x})")
    vm = remove_vm_area(m, addr)
    free_vm_pages(m, vm)
    m.vmap.nr_vmalloc_pages -= vm.nr_pages
    if vm.pages_addr:
        kvfree(m, vm.pages_addr)
    vm.pages = []
    kfree(m, vm.kaddr)


def check_vmalloc_addr(fn, addr):
    addr = require_int("addr", addr, 0, U64)
    if not is_vmalloc_addr(addr):
        # VIRTUAL_BUG_ON(!is_vmalloc_or_module_addr(vmalloc_addr))
        raise KernelBug(f"{fn}: {addr:#x} is not a vmalloc address")
    return addr


def vmalloc_to_page(m, addr):
    """vmalloc_to_page: the frame (pfn) a vmalloc address is mapped to, by walking init_mm's tables.

    Returns None for an address with no mapping (a guard page, a freed
    area).  A non-vmalloc address raises KernelBug.
    """
    addr = check_vmalloc_addr("vmalloc_to_page", addr)
    return pgtable.follow_pfn(m.init_mm, addr)


def vmalloc_to_pfn(m, addr):
    """vmalloc_to_pfn: page_to_pfn(vmalloc_to_page(addr)); None where no page is mapped."""
    return vmalloc_to_page(m, addr)


def vmalloc_nr_pages(m):
    """vmalloc_nr_pages: pages allocated by vmalloc (VmallocUsed in /proc/meminfo)."""
    return m.vmap.nr_vmalloc_pages


def find_vm_area(m, addr):
    """find_vm_area: the vm_struct of the busy area starting at addr, or None."""
    va = m.vmap.busy.get(addr)
    return va.vm if va is not None else None


# -- kvmalloc --------------------------------------------------------------------

def kmalloc_gfp_adjust(gfp, size):
    """kmalloc_gfp_adjust: above a page, try kmalloc without warning, reclaim or nofail.

    A large physically contiguous block is preferred when it is there, but
    the vmalloc fallback is better than stalling in direct reclaim for one
    (Linux 6.16 on; older kernels set __GFP_NORETRY instead).
    """
    if size > PAGE_SIZE:
        gfp |= __GFP_NOWARN
        if not gfp & __GFP_RETRY_MAYFAIL:
            gfp &= ~__GFP_DIRECT_RECLAIM
        gfp &= ~__GFP_NOFAIL
    return gfp


@traced(name="__kvmalloc_node", fmt={"gfp": gfp_name})
def kvmalloc_node(m, size, gfp, node, caller):
    """__kvmalloc_node: kmalloc if it can, else vmalloc (huge mappings allowed); the address or 0.

    Requests of a page or less never fall back: kmalloc's answer stands.
    A caller that may not sleep (no __GFP_DIRECT_RECLAIM) gets no vmalloc.
    """
    ret = kmalloc(m, size, kmalloc_gfp_adjust(gfp, size))
    if ret or size <= PAGE_SIZE:
        return ret
    if not gfp & __GFP_DIRECT_RECLAIM:
        note(m, "__kvmalloc_node: kmalloc failed and the caller cannot sleep: no vmalloc fallback")
        return 0
    if size > INT_MAX:
        note(m, "__kvmalloc_node: size %d > INT_MAX", size)
        return 0
    note(m, "__kvmalloc_node: kmalloc(%d) failed; falling back to vmalloc", size)
    return vmalloc_node_range(m, size, 1, VMALLOC_START, VMALLOC_END, gfp, VM_ALLOW_HUGE_VMAP, node, caller)


def kvmalloc(m, size, gfp=GFP_KERNEL, caller=None):
    """kvmalloc: kmalloc, falling back to vmalloc above a page."""
    size = check_size(size)
    gfp = check_gfp(gfp)
    caller = check_caller(caller) if caller is not None else caller_of(sys._getframe(1))
    return kvmalloc_node(m, size, gfp, NUMA_NO_NODE, caller)


def kvfree(m, addr):
    """kvfree: vfree for a vmalloc address, kfree for anything else."""
    if is_vmalloc_addr(addr):
        vfree(m, addr)
    else:
        kfree(m, addr)


def kmalloc(m, size, gfp):
    """kmalloc through the slab allocator (mm/slub.py); 0 when it fails."""
    return m.kmalloc(size, gfp)


def kfree(m, addr):
    """kfree through the slab allocator; kfree(0) does nothing."""
    if addr:
        m.kfree(addr)


# -- /proc/vmallocinfo -----------------------------------------------------------

def vmalloc_info_show(m):
    """vmalloc_info_show: the lines of /proc/vmallocinfo, in Linux's order and layout.

    Busy areas node by node, each node's in address order:
        0x<start>-0x<end> <size> <caller> pages=<n> vmalloc [vpages] N0=<n>
    (size counts the guard page; the flag words come in the order ioremap,
    sparse, vmalloc, vmap, user, dma-coherent, then vpages), then the
    lazily freed ranges ("unpurged vm_area", show_purge_info).
    NOTE: Linux prints the addresses with %pK, which hashes them unless
    kptr_restrict lets the reader see kernel pointers; mmlab prints them raw.
    """
    v = m.vmap
    lines = []
    by_node = sorted(v.busy.values(), key=lambda va: (addr_to_node_id(m, va.va_start), va.va_start))
    for va in by_node:
        vm = va.vm
        if vm is None:
            if va.flags & VMAP_RAM:
                lines.append(f"0x{va.va_start:016x}-0x{va.va_end:016x} {va.size():7d} vm_map_ram")
            continue
        if vm.flags & VM_SPARSE:
            continue
        line = f"0x{vm.addr:016x}-0x{vm.addr + vm.size:016x} {vm.size:7d}"
        if vm.caller:
            line += f" {vm.caller}"
        if vm.nr_pages:
            line += f" pages={vm.nr_pages}"
        if vm.phys_addr:
            line += f" phys=0x{vm.phys_addr:016x}"
        for flag, word in ((VM_IOREMAP, "ioremap"), (VM_SPARSE, "sparse"), (VM_ALLOC, "vmalloc"),
                           (VM_MAP, "vmap"), (VM_USERMAP, "user"), (VM_DMA_COHERENT, "dma-coherent")):
            if vm.flags & flag:
                line += " " + word
        if is_vmalloc_addr(vm.pages_addr):
            line += " vpages"
        if vm.nr_pages:
            line += f" N0={vm.nr_pages}"        # show_numa_info: one node holds every page
        lines.append(line)
    for vn in v.nodes:
        for va in sorted(vn.lazy, key=lambda va: va.va_start):
            lines.append(f"0x{va.va_start:016x}-0x{va.va_end:016x} {va.size():7d} unpurged vm_area")
    return lines


# -- invariants ------------------------------------------------------------------

def check(m):
    """Invariants of vmalloc; raises InvariantError naming the broken one.

    - space: the free tree, the busy ranges, the lazy lists and the pools
      tile the address space [1, 2**64 - 1) exactly, and no two free blocks
      touch (they would have merged); the tree's order and size cache hold;
    - areas: each busy vmalloc area is page aligned inside the vmalloc
      range, its size is its pages plus the guard page, and its pages are
      allocated frames mapped in order, with the guard page unmapped;
    - lazy: lazily freed and pooled ranges map nothing;
    - counters: vmap_lazy_nr and nr_vmalloc_pages match the lists and areas.
    """
    def fail(name, text):
        raise InvariantError(f"{name}: {text}")

    v = m.vmap
    check_tree(v.free, fail)
    ranges = [(s, e, "free") for s, e in v.free]
    for w, (s, e, _) in enumerate(ranges[1:]):
        if ranges[w][1] >= s:
            fail("space", f"free blocks {ranges[w][0]:#x}-{ranges[w][1]:#x} and {s:#x}-{e:#x} "
                 "touch or overlap")
    ranges += [(va.va_start, va.va_end, "busy") for va in v.busy.values()]
    lazy = [va for vn in v.nodes for va in vn.lazy]
    pooled = [va for vn in v.nodes for pool in vn.pool for va in pool]
    ranges += [(va.va_start, va.va_end, "lazy") for va in lazy]
    ranges += [(va.va_start, va.va_end, "pooled") for va in pooled]
    ranges.sort()
    addr = 1
    for s, e, kind in ranges:
        if s != addr:
            fail("space", f"{kind} range {s:#x}-{e:#x} {'overlaps' if s < addr else 'leaves a gap'} "
                 f"at {addr:#x}")
        addr = e
    if addr != U64:
        fail("space", f"the ranges end at {addr:#x}, not at the top of the address space")
    if v.vmap_lazy_nr != sum(va.size() for va in lazy) >> PAGE_SHIFT:
        fail("counters", f"vmap_lazy_nr {v.vmap_lazy_nr} != lazily freed pages")
    for vn in v.nodes:
        for i, pool in enumerate(vn.pool):
            if any(va.size() != (i + 1) * PAGE_SIZE for va in pool):
                fail("space", f"node {vn.id}: pool {i} holds a range of another size")
    total = 0
    for va in v.busy.values():
        vm = va.vm
        if vm is None:
            continue
        total += vm.nr_pages
        check_area(m, fail, va, vm)
    if total != v.nr_vmalloc_pages:
        fail("counters", f"nr_vmalloc_pages {v.nr_vmalloc_pages} != {total} pages in busy areas")
    for va in lazy + pooled:
        if np.any(pgtable.get_ptes(m.init_mm, va.va_start, va.va_end)):
            fail("lazy", f"freed range {va.va_start:#x}-{va.va_end:#x} still maps pages")


def check_area(m, fail, va, vm):
    """One busy area: placement, size rule, pages allocated and mapped in order, guard unmapped."""
    if vm.addr != va.va_start or vm.size != va.size():
        fail("areas", f"{vm} does not match its range {va}")
    if vm.flags & VM_ALLOC and not (is_vmalloc_addr(va.va_start) and va.va_end <= VMALLOC_END):
        fail("areas", f"{vm} lies outside the vmalloc range")
    guard = 0 if vm.flags & VM_NO_GUARD else 1
    if vm.flags & VM_ALLOC and vm.size != (vm.nr_pages + guard) * PAGE_SIZE:
        fail("areas", f"{vm}: size is not pages + guard")
    if len(vm.pages) != vm.nr_pages:
        fail("areas", f"{vm}: {len(vm.pages)} pages listed")
    if not vm.nr_pages:
        return
    pfns = np.asarray(vm.pages, dtype=np.int64)
    if np.any(m.mem_map.state[pfns] != page_alloc.FRAME_ALLOCATED) or np.any(m.mem_map.refcount[pfns] < 1):
        fail("areas", f"{vm} holds a page that is not allocated")
    ptes = pgtable.get_ptes(m.init_mm, va.va_start, va.va_end)
    mapped = ptes[:vm.nr_pages]
    expect = (pfns.astype(np.uint64) << np.uint64(PAGE_SHIFT)) | np.uint64(PAGE_KERNEL)
    if not np.array_equal(mapped, expect):
        i = int(np.argmax(mapped != expect))
        fail("areas", f"{vm}: page {i} maps {int(mapped[i]):#x}, expected {int(expect[i]):#x}")
    if np.any(ptes[vm.nr_pages:]):
        fail("areas", f"{vm}: the guard page is mapped")


def check_tree(tree, fail):
    """The free tree is ordered by address, heap-ordered by priority, and caches subtree sizes."""
    count = 0
    stack = [(tree.root, 0, U64 + 1)]
    while stack:
        n, lo, hi = stack.pop()
        if n is None:
            continue
        count += 1
        if not lo <= n.start < n.end <= hi:
            fail("space", f"free tree: block {n.start:#x}-{n.end:#x} out of order")
        expect = max(n.end - n.start, n.left.max_size if n.left else 0, n.right.max_size if n.right else 0)
        if n.max_size != expect:
            fail("space", f"free tree: block {n.start:#x} caches max size {n.max_size}, not {expect}")
        for child in (n.left, n.right):
            if child is not None and child.prio > n.prio:
                fail("space", f"free tree: block {child.start:#x} outranks its parent")
        stack.append((n.left, lo, n.start))
        stack.append((n.right, n.end, hi))
    if count != len(tree):
        fail("space", f"free tree: {count} blocks, count says {len(tree)}")
