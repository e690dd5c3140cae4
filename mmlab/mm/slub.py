"""The SLUB allocator and kmalloc: caches of equal-sized objects carved out of pages.

Models mm/slub.c, mm/slab_common.c and include/linux/slab.h of Linux 6.18 on
x86_64, for one NUMA node.

The page allocator hands out whole pages; most kernel objects are a few
dozen bytes.  SLUB keeps one *cache* (struct kmem_cache) per object size or
type.  A cache takes a block of 2**order pages from the buddy allocator, a
*slab*, cuts it into `objects` slots of `size` bytes each, and threads the
free slots on a freelist.  Allocation pops the head of a freelist, freeing
pushes back onto it: both are O(1) and touch no page allocator at all.

Each CPU owns one slab at a time (kmem_cache_cpu.slab) and takes objects
from its private freelist without a lock: that is the *fast path*.  When the
freelist runs dry the *slow path* (___slab_alloc) refills it: first from
objects other CPUs freed into the same slab, then from this CPU's list of
partial slabs, then from the node's partial list, and only then from a new
slab.  Freeing into the current CPU's slab is the fast path too; freeing
anywhere else goes to the slab's own freelist (__slab_free), which may move
the slab between lists: a full slab that gets a free object goes to the
CPU's partial list; an empty slab is given back to the page allocator once
the node already keeps min_partial partial slabs.

kmalloc(size) is a family of caches, kmalloc-8 ... kmalloc-8k, with
kmalloc-96 and kmalloc-192 between the powers of two; bigger requests go
straight to the page allocator (kmalloc_large).

Glossary: s is a kmem_cache, c a kmem_cache_cpu, n a kmem_cache_node, slab a
Slab; an object is named by its index in its slab (idx) or by its address.

The model's configuration, and what it leaves out:

NOTE: the free list is address-ordered, as with CONFIG_SLAB_FREELIST_RANDOM
off; set m.slub.freelist_random = True for the shuffled order this host's
kernel uses (CONFIG_SLAB_FREELIST_RANDOM=y), drawn from the machine's seed.
NOTE: caches are never merged (as with the slab_nomerge boot option), so a
cache made with kmem_cache_create always shows under its own name.  Linux
merges compatible caches by default; /sys/kernel/slab then shows them as
links to a ':0000064'-style name.
NOTE: no debugging (slab_debug, red zones, poisoning, KASAN, KFENCE): the
debug flags are refused.  A double free or a foreign pointer is still
caught, with the message SLUB debugging would print, because the model
keeps a bitmap of live objects per slab.
NOTE: the per-CPU object arrays of 6.18 ("sheaves") are opt-in per cache
and the kmalloc caches do not use them; the model has none.
NOTE: SLAB_TYPESAFE_BY_RCU slabs are freed at once instead of after an RCU
grace period; memcg charging (SLAB_ACCOUNT, kmalloc-cg-*) is not modelled
beyond picking the cache; object contents are not stored (kzalloc zeroes
nothing the model could show).
"""
import numpy as np

from ..arch import PAGE_SHIFT, PAGE_SIZE, PAGE_OFFSET
from ..errors import KernelBug, InvariantError, require_int
from .. import trace as _trace
from ..trace import traced, note
from ..uapi import (gfp_name, GFP_KERNEL, __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM,
                    __GFP_RECLAIMABLE, __GFP_ACCOUNT, __GFP_HIGH, __GFP_IO, __GFP_FS,
                    __GFP_ZERO, __GFP_DIRECT_RECLAIM, __GFP_NOWARN,
                    __GFP_RETRY_MAYFAIL, __GFP_NOFAIL, __GFP_NORETRY, __GFP_MEMALLOC,
                    __GFP_COMP, __GFP_NOMEMALLOC, __GFP_HARDWALL, __GFP_THISNODE,
                    __GFP_RECLAIM, __GFP_BITS_MASK)
from . import page_alloc
from .page_alloc import (FreeList, MAX_PAGE_ORDER, PAGE_ALLOC_COSTLY_ORDER, PGTY_NONE, PGTY_SLAB,
                         PGTY_LARGE_KMALLOC, FRAME_ALLOCATED)

# -- constants (include/linux/slab.h, mm/slub.c, x86_64) --------------------

ARCH_KMALLOC_MINALIGN = 8           # __alignof__(unsigned long long)
ARCH_SLAB_MINALIGN = 8
CACHE_LINE_SIZE = 64                # cache_line_size(): L1_CACHE_BYTES on x86_64
POINTER_SIZE = 8                    # sizeof(void *): one free pointer

KMALLOC_MIN_SIZE = 8
KMALLOC_SHIFT_LOW = 3
KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1                 # the biggest kmalloc cache: 8 KiB
KMALLOC_MAX_CACHE_SIZE = 1 << KMALLOC_SHIFT_HIGH
KMALLOC_SHIFT_MAX = MAX_PAGE_ORDER + PAGE_SHIFT
KMALLOC_MAX_SIZE = 1 << KMALLOC_SHIFT_MAX           # 4 MiB: the largest kmalloc_large
ZERO_SIZE_PTR = 16                  # what kmalloc(0) returns: not NULL, but faults if used
SIZE_MAX = (1 << 64) - 1

MIN_PARTIAL = 5                     # partial slabs a node keeps even when they are empty
MAX_PARTIAL = 10
MAX_OBJS_PER_PAGE = 32767           # slab->objects is 15 bits
SLUB_MIN_ORDER = 0                  # slab_min_order=
SLUB_MAX_ORDER = PAGE_ALLOC_COSTLY_ORDER        # slab_max_order=
SLUB_MIN_OBJECTS = 0                # slab_min_objects= (0: derived from the CPU count)
SHRINK_PROMOTE_MAX = 32

# struct kmem_cache and struct kmem_cache_node, as this host's configuration
# lays them out (offsetof(struct kmem_cache, node) is 224, plus one node
# pointer; kmem_cache_node with CONFIG_SLUB_DEBUG's counters and full list).
KMEM_CACHE_SIZE = 232
KMEM_CACHE_NODE_SIZE = 72
KMEM_BUCKETS_SIZE = 112             # kmem_buckets: one cache pointer per kmalloc index

# Cache flags (slab_flags_t), bit numbers as enum _slab_flag_bits orders them
# for a configuration without DEBUG_OBJECTS, FAILSLAB, KASAN or KFENCE.
SLAB_CONSISTENCY_CHECKS = 1 << 0
SLAB_RED_ZONE = 1 << 1
SLAB_POISON = 1 << 2
SLAB_KMALLOC = 1 << 3
SLAB_HWCACHE_ALIGN = 1 << 4
SLAB_CACHE_DMA = 1 << 5
SLAB_CACHE_DMA32 = 1 << 6
SLAB_STORE_USER = 1 << 7
SLAB_PANIC = 1 << 8
SLAB_TYPESAFE_BY_RCU = 1 << 9
SLAB_TRACE = 1 << 10
SLAB_NOLEAKTRACE = 1 << 11
SLAB_NO_MERGE = 1 << 12
SLAB_ACCOUNT = 1 << 13
SLAB_NO_USER_FLAGS = 1 << 14
SLAB_RECLAIM_ACCOUNT = 1 << 15
SLAB_DEBUG_FLAGS = (SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER
                    | SLAB_TRACE)
# What kmem_cache_create accepts here (SLAB_FLAGS_PERMITTED less what the model refuses).
SLAB_FLAGS_ACCEPTED = (SLAB_HWCACHE_ALIGN | SLAB_CACHE_DMA | SLAB_CACHE_DMA32 | SLAB_PANIC
                       | SLAB_TYPESAFE_BY_RCU | SLAB_NOLEAKTRACE | SLAB_NO_MERGE | SLAB_ACCOUNT
                       | SLAB_NO_USER_FLAGS | SLAB_RECLAIM_ACCOUNT)
_SLAB_FLAG_NAMES = [(SLAB_HWCACHE_ALIGN, "SLAB_HWCACHE_ALIGN"), (SLAB_CACHE_DMA, "SLAB_CACHE_DMA"),
                    (SLAB_CACHE_DMA32, "SLAB_CACHE_DMA32"), (SLAB_PANIC, "SLAB_PANIC"),
                    (SLAB_TYPESAFE_BY_RCU, "SLAB_TYPESAFE_BY_RCU"),
                    (SLAB_NOLEAKTRACE, "SLAB_NOLEAKTRACE"), (SLAB_NO_MERGE, "SLAB_NO_MERGE"),
                    (SLAB_ACCOUNT, "SLAB_ACCOUNT"), (SLAB_NO_USER_FLAGS, "SLAB_NO_USER_FLAGS"),
                    (SLAB_RECLAIM_ACCOUNT, "SLAB_RECLAIM_ACCOUNT"), (SLAB_KMALLOC, "SLAB_KMALLOC"),
                    (SLAB_CONSISTENCY_CHECKS, "SLAB_CONSISTENCY_CHECKS"),
                    (SLAB_RED_ZONE, "SLAB_RED_ZONE"), (SLAB_POISON, "SLAB_POISON"),
                    (SLAB_STORE_USER, "SLAB_STORE_USER"), (SLAB_TRACE, "SLAB_TRACE")]


def slab_flags_name(flags):
    """Cache flags as text: 'SLAB_HWCACHE_ALIGN|SLAB_RECLAIM_ACCOUNT' (or '0')."""
    return "|".join(name for bit, name in _SLAB_FLAG_NAMES if flags & bit) or "0"


# gfp masks (mm/internal.h, mm/slab.h)
GFP_RECLAIM_MASK = (__GFP_RECLAIM | __GFP_HIGH | __GFP_IO | __GFP_FS | __GFP_NOWARN
                    | __GFP_RETRY_MAYFAIL | __GFP_NOFAIL | __GFP_NORETRY | __GFP_MEMALLOC
                    | __GFP_NOMEMALLOC)
GFP_CONSTRAINT_MASK = __GFP_HARDWALL | __GFP_THISNODE
GFP_SLAB_BUG_MASK = __GFP_DMA32 | __GFP_HIGHMEM     # (| ~__GFP_BITS_MASK, refused earlier)

# enum kmalloc_cache_type, for CONFIG_ZONE_DMA, CONFIG_MEMCG and no random kmalloc caches
KMALLOC_NORMAL, KMALLOC_RECLAIM, KMALLOC_DMA, KMALLOC_CGROUP = range(4)
NR_KMALLOC_TYPES = 4
KMALLOC_NOT_NORMAL_BITS = __GFP_RECLAIMABLE | __GFP_DMA | __GFP_ACCOUNT
_KMALLOC_NAME_FORMATS = ["kmalloc-%s", "kmalloc-rcl-%s", "dma-kmalloc-%s", "kmalloc-cg-%s"]

# kmalloc_info[]: index -> (size, short size) for index 1 (96), 2 (192), 3 (8) ... 13 (8k)
KMALLOC_INFO = {1: (96, "96"), 2: (192, "192")}
for _i in range(KMALLOC_SHIFT_LOW, KMALLOC_SHIFT_HIGH + 1):
    KMALLOC_INFO[_i] = (1 << _i, str(1 << _i) if _i < 10 else f"{1 << (_i - 10)}k")

# kmalloc_size_index[]: (size - 1) // 8 -> kmalloc index, for sizes up to 192
KMALLOC_SIZE_INDEX = [3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2]


# -- small helpers ------------------------------------------------------------

def fls(x):
    """fls: the position of the highest set bit, counting from 1 (fls(0) = 0)."""
    return x.bit_length()


def get_order(size):
    """get_order: the smallest order whose block holds `size` bytes (size >= 1)."""
    return ((size - 1) >> PAGE_SHIFT).bit_length()


def order_objects(order, size):
    """order_objects: how many `size`-byte slots fit in a block of 2**order pages."""
    return (PAGE_SIZE << order) // size


def align_up(x, a):
    """ALIGN: x rounded up to a multiple of the power of two a."""
    return (x + a - 1) & ~(a - 1)


def is_power_of_2(x):
    return x > 0 and x & (x - 1) == 0


def ilog2(x):
    """ilog2: floor(log2(x)) for x >= 1."""
    return x.bit_length() - 1


# -- the structures ---------------------------------------------------------

class Slab:
    """struct slab: one block of 2**order pages cut into `objects` slots.

    `freelist` is slab->freelist, the free slots not handed to a CPU, as a
    stack of slot indices whose last element is the list head.  `inuse` is
    slab->inuse: slots not on slab->freelist (so a CPU slab counts the slots
    on its CPU's freelist as in use, as Linux does).  `frozen` marks a CPU's
    current slab; `on_node_partial` and `on_cpu_partial` say which list
    holds it.  `allocated` is the model's own bitmap of live objects, which
    catches double frees; Linux keeps no such thing without debugging.
    """

    __slots__ = ("cache", "pfn", "order", "objects", "base", "freelist", "inuse", "frozen",
                 "on_node_partial", "on_cpu_partial", "allocated")

    def __init__(self, cache, pfn, order, objects):
        self.cache = cache
        self.pfn = pfn
        self.order = order
        self.objects = objects
        self.base = PAGE_OFFSET + (pfn << PAGE_SHIFT)
        self.freelist = []
        self.inuse = 0
        self.frozen = False
        self.on_node_partial = False
        self.on_cpu_partial = False
        self.allocated = bytearray(objects)

    @property
    def machine(self):
        return self.cache.machine

    @property
    def state(self):
        """Where the slab is: 'cpu' (a CPU's current slab), 'cpu_partial', 'partial' or 'full'."""
        if self.frozen:
            return "cpu"
        if self.on_cpu_partial:
            return "cpu_partial"
        if self.on_node_partial:
            return "partial"
        return "full"

    def nr_allocated(self):
        """Objects handed out and not yet freed."""
        return self.allocated.count(1)

    def address(self, idx):
        """The address of slot idx."""
        return self.base + idx * self.cache.size

    def __str__(self):
        return f"{self.pfn:#x}"

    def __repr__(self):
        return (f"Slab({self.cache.name} pfn={self.pfn:#x} order={self.order} "
                f"{self.nr_allocated()}/{self.objects} allocated, {self.state})")


class KmemCacheCpu:
    """struct kmem_cache_cpu: one CPU's current slab, its lockless freelist and partial slabs.

    `freelist` holds slot indices of `slab` (last element is the head);
    `partial` is the per-CPU partial list, most recently added last.
    """

    __slots__ = ("slab", "freelist", "partial")

    def __init__(self):
        self.slab = None
        self.freelist = []
        self.partial = []


class KmemCacheNode:
    """struct kmem_cache_node: the node's partial slabs and (as CONFIG_SLUB_DEBUG) its counters.

    `partial` is a list of slab head pfns, head first.  `nr_slabs` and
    `total_objects` count every slab of the cache, whatever list it is on.
    NOTE: Linux keeps a full list only for debug caches; full slabs here are
    found as the slabs on no list.
    """

    __slots__ = ("partial", "nr_slabs", "total_objects")

    def __init__(self):
        self.partial = FreeList()
        self.nr_slabs = 0
        self.total_objects = 0

    @property
    def nr_partial(self):
        return self.partial.count


class KmemCache:
    """struct kmem_cache: a cache of objects of one size.

        s = m.kmem_cache_create("my_struct", 200)
        addr = s.alloc()
        s.free(addr)

    Geometry, as /sys/kernel/slab/<name>/ shows it: object_size (what the
    user asked for), size (slot size: object, free pointer and alignment
    padding; slab_size in sysfs), align, offset (where the free pointer
    sits), order and objects (the preferred slab: oo), min_order and
    min_objects (the fallback slab: min), min_partial, cpu_partial.
    """

    def __init__(self, m, name, object_size, align, flags, ctor=None, freeptr_offset=None,
                 boot=False):
        self.machine = m
        self.name = name
        self.object_size = object_size
        self.align = align
        self.flags = flags
        self.ctor = ctor
        self.freeptr_offset = freeptr_offset
        self.boot = boot                    # created by kmem_cache_init, never destroyed
        self.size = self.inuse = self.offset = 0
        self.order = self.objects = self.min_order = self.min_objects = 0
        self.allocflags = 0
        self.min_partial = self.cpu_partial = self.cpu_partial_slabs = 0
        self.random_seq = None
        self.cpu_slab = [KmemCacheCpu() for _ in range(m.cpus)]
        self.node = [KmemCacheNode()]
        self.slabs = {}                     # head pfn -> Slab, every slab of the cache
        self.alive = True
        self.struct_addr = 0                # this struct, in the kmem_cache cache
        self.node_addr = 0                  # node[0], in the kmem_cache_node cache
        self.name_addr = 0                  # kstrdup_const(name)

    def __str__(self):
        return self.name

    def __repr__(self):
        return (f"KmemCache({self.name!r}, object_size={self.object_size}, size={self.size}, "
                f"order={self.order}, objects={self.objects})")

    # -- the public face: what a kernel module calls --
    def alloc(self, gfp=GFP_KERNEL):
        """kmem_cache_alloc: one object's address, or 0 when memory runs out."""
        return kmem_cache_alloc(self, gfp)

    def free(self, addr):
        """kmem_cache_free: give back an object alloc() returned."""
        kmem_cache_free(self, addr)

    def shrink(self):
        """kmem_cache_shrink: release empty slabs; 0 when the cache holds no slab afterwards."""
        return kmem_cache_shrink(self)

    def destroy(self):
        """kmem_cache_destroy: remove the cache; it must hold no objects."""
        kmem_cache_destroy(self)

    def sysfs(self):
        """The cache's /sys/kernel/slab/<name>/ geometry files as {file: int}."""
        n = self.node[0]
        return {"object_size": self.object_size, "slab_size": self.size, "align": self.align,
                "order": self.order, "objs_per_slab": self.objects,
                "min_partial": self.min_partial, "cpu_partial": self.cpu_partial,
                "slabs": n.nr_slabs, "partial": n.nr_partial,
                "total_objects": n.total_objects,
                "objects": sum(sl.nr_allocated() for sl in self.slabs.values()),
                "hwcache_align": int(bool(self.flags & SLAB_HWCACHE_ALIGN)),
                "reclaim_account": int(bool(self.flags & SLAB_RECLAIM_ACCOUNT)),
                "destroy_by_rcu": int(bool(self.flags & SLAB_TYPESAFE_BY_RCU)),
                "cache_dma": int(bool(self.flags & SLAB_CACHE_DMA))}


class SlubState:
    """What mm/slab_common.c keeps globally: the cache list and the kmalloc caches.

    `slab_caches` is newest first, the order /proc/slabinfo prints;
    `kmalloc_caches[type][index]`; `slabs` maps a slab's head pfn to its
    Slab (virt_to_slab); `large` is the set of head pfns of kmalloc_large
    blocks.  `freelist_random` turns on CONFIG_SLAB_FREELIST_RANDOM.
    """

    def __init__(self, m):
        self.machine = m
        self.slab_caches = []
        self.kmalloc_caches = [[None] * (KMALLOC_SHIFT_HIGH + 1) for _ in range(NR_KMALLOC_TYPES)]
        self.slabs = {}
        self.large = set()
        self.freelist_random = False
        self.kmem_cache = None              # the cache of struct kmem_cache
        self.kmem_cache_node = None         # the cache of struct kmem_cache_node

    def find(self, name):
        """The live cache named `name`, or None."""
        for s in self.slab_caches:
            if s.name == name:
                return s
        return None


# -- geometry: calculate_sizes and calculate_order ---------------------------

def calculate_alignment(flags, align, size):
    """calculate_alignment: the object alignment a cache gets.

    SLAB_HWCACHE_ALIGN asks for a cache line, but an object of half a line
    or less gets only the smallest power of two that holds it, so several
    can share a line without one straddling two.  Never less than
    ARCH_SLAB_MINALIGN, always a multiple of the pointer size.
    """
    if flags & SLAB_HWCACHE_ALIGN:
        ralign = CACHE_LINE_SIZE
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    align = max(align, ARCH_SLAB_MINALIGN)
    return align_up(align, POINTER_SIZE)


def calc_slab_order(size, min_order, max_order, fract_leftover):
    """calc_slab_order: the lowest order in [min_order, max_order] wasting at most 1/fract_leftover.

    Returns max_order + 1 when no order in range is good enough (the loop
    runs past the end, as the C loop does).
    """
    order = min_order
    while order <= max_order:
        slab_size = PAGE_SIZE << order
        if slab_size % size <= slab_size // fract_leftover:
            break
        order += 1
    return order


def slab_min_objects(nr_cpus):
    """calculate_order's min_objects: 4 * (fls(nr_cpus) + 1), so bigger machines get bigger slabs."""
    if SLUB_MIN_OBJECTS:
        return SLUB_MIN_OBJECTS
    return 4 * (fls(nr_cpus) + 1)


def calculate_order(size, nr_cpus):
    """calculate_order: the slab order for slots of `size` bytes on a machine with nr_cpus CPUs.

    Steps:
    - want at least min_objects slots per slab (fewer if even a slab of
      slab_max_order cannot hold that many), which sets the lowest order;
    - accept at most 1/16 of the slab as waste and look for the lowest
      order up to slab_max_order (3) that meets it; else allow 1/8, 1/4, 1/2;
    - if no order up to 3 holds even one slot, use the order of one object.
    Returns the order, or -1 when an object would not fit in MAX_PAGE_ORDER.
    """
    min_objects = slab_min_objects(nr_cpus)
    max_objects = max(order_objects(SLUB_MAX_ORDER, size), 1)
    min_objects = min(min_objects, max_objects)
    min_order = max(SLUB_MIN_ORDER, get_order(min_objects * size))
    if order_objects(min_order, size) > MAX_OBJS_PER_PAGE:
        return get_order(size * MAX_OBJS_PER_PAGE) - 1
    fraction = 16
    while fraction > 1:
        order = calc_slab_order(size, min_order, SLUB_MAX_ORDER, fraction)
        if order <= SLUB_MAX_ORDER:
            return order
        fraction //= 2
    order = get_order(size)
    return order if order <= MAX_PAGE_ORDER else -1


def calculate_sizes(s):
    """calculate_sizes: where the free pointer goes, the slot size, and the slab orders.

    The free pointer of a free object is stored inside the object, in the
    middle (so small overflows from a neighbour do not hit it), unless the
    object's contents must survive free: a constructor's work, or an RCU
    reader's view under SLAB_TYPESAFE_BY_RCU.  Then it goes after the
    object and the slot grows by a pointer.  The slot is rounded up to the
    alignment.  Returns False when no order can hold an object.
    """
    size = align_up(s.object_size, POINTER_SIZE)
    s.inuse = size
    if (s.flags & SLAB_TYPESAFE_BY_RCU and s.freeptr_offset is None) or s.ctor is not None:
        s.offset = size                     # free pointer after the object
        size += POINTER_SIZE
    elif s.flags & SLAB_TYPESAFE_BY_RCU:
        s.offset = s.freeptr_offset         # where the user says it may go
    else:
        s.offset = (s.object_size // 2) & ~(POINTER_SIZE - 1)
    size = align_up(size, s.align)
    s.size = size
    order = calculate_order(size, s.machine.cpus)
    if order < 0:
        return False
    s.allocflags = __GFP_COMP
    if s.flags & SLAB_CACHE_DMA:
        s.allocflags |= __GFP_DMA
    if s.flags & SLAB_CACHE_DMA32:
        s.allocflags |= __GFP_DMA32
    if s.flags & SLAB_RECLAIM_ACCOUNT:
        s.allocflags |= __GFP_RECLAIMABLE
    s.order, s.objects = order, order_objects(order, size)
    s.min_order = get_order(size)
    s.min_objects = order_objects(s.min_order, size)
    return s.objects > 0


def set_min_partial(s, value):
    """set_min_partial: partial slabs to keep even if empty, clamped to [5, 10]."""
    s.min_partial = min(max(value, MIN_PARTIAL), MAX_PARTIAL)


def set_cpu_partial(s):
    """set_cpu_partial: objects (and so slabs) a CPU may keep on its partial list.

    The limit is really on slabs: cpu_partial objects in slabs assumed half
    full (slub_set_cpu_partial), so cpu_partial_slabs = ceil(2 * cpu_partial / objects).
    """
    if s.size >= PAGE_SIZE:
        nr_objects = 6
    elif s.size >= 1024:
        nr_objects = 24
    elif s.size >= 256:
        nr_objects = 52
    else:
        nr_objects = 120
    s.cpu_partial = nr_objects
    s.cpu_partial_slabs = -(-nr_objects * 2 // s.objects)


def kmem_cache_open(s):
    """kmem_cache_open: compute the geometry and the partial-list limits. False on failure."""
    if not calculate_sizes(s):
        return False
    set_min_partial(s, ilog2(s.size) // 2)     # bigger objects: more partial slabs kept
    set_cpu_partial(s)
    return True


# -- boot: kmem_cache_init and the kmalloc caches ----------------------------

def create_boot_cache(m, name, size, flags):
    """create_boot_cache: a cache made before slab allocation works (kmalloc and the two bootstraps).

    kmalloc caches are aligned to the largest power of two dividing their
    size (kmalloc-96 to 32, kmalloc-192 to 64, the others to their size).
    """
    align = ARCH_KMALLOC_MINALIGN
    if flags & SLAB_KMALLOC:
        align = max(align, size & -size)
    s = KmemCache(m, name, size, calculate_alignment(flags, align, size), flags, boot=True)
    if not kmem_cache_open(s):
        raise RuntimeError(f"Creation of kmalloc slab {name} size={size} failed")
    m.slub.slab_caches.insert(0, s)         # list_add(&s->list, &slab_caches)
    return s


def new_kmalloc_cache(m, idx, kmalloc_type):
    """new_kmalloc_cache: one kmalloc cache of one type; rcl caches count as reclaimable."""
    flags = 0
    if kmalloc_type == KMALLOC_RECLAIM:
        flags |= SLAB_RECLAIM_ACCOUNT
    elif kmalloc_type == KMALLOC_CGROUP:
        flags |= SLAB_ACCOUNT
    elif kmalloc_type == KMALLOC_DMA:
        flags |= SLAB_CACHE_DMA
    if kmalloc_type == KMALLOC_NORMAL:
        flags |= SLAB_NO_MERGE              # so with CONFIG_MEMCG
    size, short = KMALLOC_INFO[idx]
    name = _KMALLOC_NAME_FORMATS[kmalloc_type] % short
    m.slub.kmalloc_caches[kmalloc_type][idx] = create_boot_cache(m, name, size,
                                                                 flags | SLAB_KMALLOC)


def create_kmalloc_caches(m):
    """create_kmalloc_caches: for each type, kmalloc-96 and -192 first, then 8 ... 8k."""
    for kmalloc_type in range(NR_KMALLOC_TYPES):
        new_kmalloc_cache(m, 1, kmalloc_type)
        new_kmalloc_cache(m, 2, kmalloc_type)
        for i in range(KMALLOC_SHIFT_LOW, KMALLOC_SHIFT_HIGH + 1):
            new_kmalloc_cache(m, i, kmalloc_type)


def kmem_cache_init(m):
    """kmem_cache_init: the two bootstrap caches, then the kmalloc caches.

    Linux builds kmem_cache_node and kmem_cache from static structures,
    then copies them into objects of themselves (bootstrap), and allocates
    the struct kmem_cache of every kmalloc cache from kmem_cache.
    NOTE: the model keeps the boot caches' own structures outside any slab,
    so a fresh machine holds no slab pages; caches made later with
    kmem_cache_create do take their kmem_cache and kmem_cache_node objects
    (and a copy of their name) from slabs, as Linux's do.  It also creates
    kmalloc_buckets (CONFIG_SLAB_BUCKETS) so /proc/slabinfo lists the boot
    caches as this host does, but no kmem_buckets users (memdup_user-*).
    """
    m.slub = SlubState(m)
    m.mem_map.add_field("slab_head", np.int32)     # pfn of a slab's (or large kmalloc's) head
    node = create_boot_cache(m, "kmem_cache_node", KMEM_CACHE_NODE_SIZE, SLAB_HWCACHE_ALIGN)
    cache = create_boot_cache(m, "kmem_cache", KMEM_CACHE_SIZE, SLAB_HWCACHE_ALIGN)
    # bootstrap() re-adds each at the head: kmem_cache first, then kmem_cache_node.
    m.slub.slab_caches[:] = [node, cache]
    m.slub.kmem_cache, m.slub.kmem_cache_node = cache, node
    create_kmalloc_caches(m)
    create_boot_cache(m, "kmalloc_buckets", KMEM_BUCKETS_SIZE, SLAB_NO_MERGE)
    m.checks.append(check)


# -- slab pages: allocate_slab and free_slab ---------------------------------

def cache_vmstat_idx(s):
    """cache_vmstat_idx: the node counter a cache's pages count under."""
    return "nr_slab_reclaimable" if s.flags & SLAB_RECLAIM_ACCOUNT else "nr_slab_unreclaimable"


def alloc_slab_page(s, gfp, order):
    """alloc_slab_page: 2**order pages from the buddy allocator, marked as a slab; pfn or None."""
    m = s.machine
    pfn = page_alloc.alloc_pages(m, order, gfp)
    if pfn is None:
        return None
    mm = m.mem_map
    mm.page_type_[pfn] = PGTY_SLAB          # __folio_set_slab
    if order:
        mm.slab_head[pfn:pfn + (1 << order)] = pfn
    else:
        mm.slab_head_[pfn] = pfn
    return pfn


def shuffled_freelist(s, objects):
    """shuffle_freelist: the slots in the cache's random sequence, from a random start.

    A slab of the fallback order has fewer slots than the sequence; indices
    beyond them are skipped.  Returns the slot order, head first.
    """
    rng = s.machine.rng
    count = s.objects
    if s.random_seq is None:               # cache_random_seq_create: a Fisher-Yates shuffle
        seq = list(range(count))
        for i in range(count - 1, 0, -1):
            j = rng.randrange(i + 1)
            seq[i], seq[j] = seq[j], seq[i]
        s.random_seq = seq
    pos = rng.randrange(count)
    order = []
    while len(order) < objects:
        idx = s.random_seq[pos]
        pos = (pos + 1) % count
        if idx < objects:
            order.append(idx)
    return order


@traced(fmt={"gfp": gfp_name}, result=lambda slab: f"slab {slab.pfn:#x}")
def allocate_slab(s, gfp):
    """allocate_slab: a new slab with every slot on its freelist, or None.

    The preferred order (oo) is tried first without retrying or reclaim,
    so that under memory pressure a high order fails fast; then the
    minimum order (min) with the caller's flags.  The slab's pages count
    in nr_slab_(un)reclaimable.  A constructor runs on every slot now, not
    at allocation: objects keep their constructed state across free.
    """
    m = s.machine
    flags = gfp | s.allocflags
    alloc_gfp = (flags | __GFP_NOWARN | __GFP_NORETRY) & ~__GFP_NOFAIL
    if alloc_gfp & __GFP_DIRECT_RECLAIM and s.order > s.min_order:
        alloc_gfp = (alloc_gfp | __GFP_NOMEMALLOC) & ~__GFP_RECLAIM
    order, objects = s.order, s.objects
    pfn = alloc_slab_page(s, alloc_gfp, order)
    if pfn is None:
        order, objects = s.min_order, s.min_objects
        pfn = alloc_slab_page(s, flags, order)
        if pfn is None:
            return None
        note(s, "allocate_slab: order %d failed; order %d with the caller's flags "
             "(ORDER_FALLBACK)", s.order, order)
    slab = Slab(s, pfn, order, objects)
    if m.slub.freelist_random and objects > 1:
        head_first = shuffled_freelist(s, objects)
        slab.freelist = head_first[::-1]
    else:
        slab.freelist = list(range(objects - 1, -1, -1))  # head is slot 0: address order
    if s.ctor is not None:
        run_constructors(s, slab)
    m.slub.slabs[pfn] = slab
    s.slabs[pfn] = slab
    m.node_stat[cache_vmstat_idx(s)] += 1 << order        # account_slab
    note(s, "allocate_slab: %s slab at pfn %#x, order %d, %d objects of %d bytes", s.name, pfn,
         order, objects, s.size)
    return slab


def run_constructors(s, slab):
    """setup_object: the cache's constructor on every slot, head of the freelist first.

    A constructor is the caller's Python code; if it raises, the slab's
    pages go back before the exception goes on, so the failed allocation
    changes nothing.
    """
    try:
        for idx in reversed(slab.freelist):
            s.ctor(slab.base + idx * s.size)
    except BaseException:
        mm = s.machine.mem_map
        mm.page_type_[slab.pfn] = PGTY_NONE
        mm.slab_head[slab.pfn:slab.pfn + (1 << slab.order)] = 0
        page_alloc.free_pages(s.machine, slab.pfn, slab.order)
        raise


@traced(fmt={"gfp": gfp_name}, result=lambda slab: f"slab {slab.pfn:#x}")
def new_slab(s, gfp):
    """new_slab: allocate_slab with only the reclaim and constraint bits of the caller's flags.

    Zone and migrate-type bits come from the cache (s.allocflags), never
    from the caller; __GFP_DMA32 or __GFP_HIGHMEM here is a caller's bug
    Linux warns about and strips (kmalloc_fix_flags).
    """
    if gfp & GFP_SLAB_BUG_MASK:
        gfp = kmalloc_fix_flags(s, gfp)
    return allocate_slab(s, gfp & (GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK))


def kmalloc_fix_flags(obj, gfp):
    """kmalloc_fix_flags: warn about zone bits slab cannot honour, and drop them."""
    fixed = gfp & ~GFP_SLAB_BUG_MASK
    note(obj, "WARNING: Unexpected gfp: %#x (%s). Fixing up to gfp: %#x (%s). Fix your code!",
         gfp & GFP_SLAB_BUG_MASK, gfp_name(gfp & GFP_SLAB_BUG_MASK), fixed, gfp_name(fixed))
    return fixed


@traced(name="__free_slab")
def free_slab(s, slab):
    """free_slab / __free_slab: clear the slab marks and give the pages back to the buddy allocator."""
    m = s.machine
    pfn, order = slab.pfn, slab.order
    mm = m.mem_map
    mm.page_type_[pfn] = PGTY_NONE          # __folio_clear_slab: free_pages refuses typed pages
    if order:
        mm.slab_head[pfn:pfn + (1 << order)] = 0
    else:
        mm.slab_head_[pfn] = 0
    del m.slub.slabs[pfn]
    del s.slabs[pfn]
    m.node_stat[cache_vmstat_idx(s)] -= 1 << order        # unaccount_slab
    page_alloc.free_pages(m, pfn, order)


@traced
def discard_slab(s, slab):
    """discard_slab: an empty slab leaves the cache's counters and goes back to the page allocator."""
    n = s.node[0]
    n.nr_slabs -= 1
    n.total_objects -= slab.objects
    free_slab(s, slab)


def inc_slabs_node(s, slab):
    """inc_slabs_node: count a new slab in the node's totals."""
    n = s.node[0]
    n.nr_slabs += 1
    n.total_objects += slab.objects


# -- the partial lists ---------------------------------------------------------

DEACTIVATE_TO_HEAD, DEACTIVATE_TO_TAIL = 0, 1


def add_partial(n, slab, tail):
    """add_partial: put a slab on the node's partial list, at the head or the tail."""
    n.partial.add(slab.pfn, tail == DEACTIVATE_TO_TAIL)
    slab.on_node_partial = True


def remove_partial(n, slab):
    """remove_partial: take a slab off the node's partial list."""
    n.partial.remove(slab.pfn)
    slab.on_node_partial = False


@traced(name="__put_partials", fmt={"slabs": lambda slabs: f"<{len(slabs)} slabs>"})
def put_partials(s, slabs):
    """__put_partials: move a CPU's partial slabs (head first) to the node's partial list.

    An empty slab is discarded instead when the node already keeps
    min_partial slabs; discards happen last, in reverse order (the C code
    collects them on a stack).
    """
    n = s.node[0]
    discard = []
    for slab in slabs:
        slab.on_cpu_partial = False
        if not slab.inuse and n.nr_partial >= s.min_partial:
            discard.append(slab)
        else:
            add_partial(n, slab, DEACTIVATE_TO_TAIL)
    for slab in reversed(discard):
        discard_slab(s, slab)


@traced
def put_cpu_partial(s, slab, drain):
    """put_cpu_partial: add a slab to this CPU's partial list.

    With drain, a list already holding cpu_partial_slabs slabs is first
    moved whole to the node's partial list, and the slab starts a new one.
    """
    c = s.cpu_slab[s.machine.current_cpu]
    if c.partial and drain and len(c.partial) >= s.cpu_partial_slabs:
        old, c.partial = c.partial, []
        note(s, "put_cpu_partial: CPU %d's partial list is full (%d slabs): drain it to the node",
             s.machine.current_cpu, len(old))
        c.partial.append(slab)
        slab.on_cpu_partial = True
        put_partials(s, old[::-1])
        return
    c.partial.append(slab)
    slab.on_cpu_partial = True


@traced(fmt={"gfp": gfp_name}, result=lambda slab: f"slab {slab.pfn:#x}")
def get_partial(s, gfp):
    """get_partial / get_partial_node: take slabs off the node's partial list.

    The first slab becomes the CPU slab; more are moved to this CPU's
    partial list, until more than cpu_partial/2 slabs have been moved,
    so the next refills need no node lock.  Returns the first slab, or None.
    """
    n = s.node[0]
    if not n.nr_partial:
        return None
    slabs = s.machine.slub.slabs
    partial = None
    partial_slabs = 0
    pfn = n.partial.first()
    while pfn is not None:
        nxt = n.partial.next[pfn]
        nxt = None if nxt == FreeList.HEAD else nxt
        slab = slabs[pfn]
        remove_partial(n, slab)
        if partial is None:
            partial = slab
            note(s, "get_partial: slab %#x from the node partial list (%d free)", slab.pfn,
                 slab.objects - slab.inuse)
            if s.cpu_partial == 0:
                break
        else:
            put_cpu_partial(s, slab, 0)
            partial_slabs += 1
            if partial_slabs > s.cpu_partial // 2:
                break
        pfn = nxt
    return partial


def get_freelist(s, slab):
    """get_freelist: take the slab's whole freelist; the slab stays frozen only if there was one."""
    freelist = slab.freelist
    slab.freelist = []
    slab.inuse = slab.objects
    slab.frozen = bool(freelist)
    return freelist


def freeze_slab(s, slab):
    """freeze_slab: make a partial slab a CPU slab and take its freelist."""
    freelist = slab.freelist
    slab.freelist = []
    slab.inuse = slab.objects
    slab.frozen = True
    return freelist


@traced(fmt={"freelist": lambda fl: f"<{len(fl)} free>"})
def deactivate_slab(s, slab, freelist):
    """deactivate_slab: a CPU gives up its slab.

    The CPU's unused objects go back on the slab's freelist (in front of
    objects other CPUs freed meanwhile); the slab is unfrozen and goes
    where its state says: discarded if empty and the node already keeps
    min_partial slabs, on the node's partial list if it has free objects
    (at the tail if other CPUs had freed into it), on no list if full.
    """
    n = s.node[0]
    tail = DEACTIVATE_TO_TAIL if slab.freelist else DEACTIVATE_TO_HEAD
    if freelist:
        slab.inuse -= len(freelist)
        slab.freelist.extend(freelist)      # the CPU's list becomes the new head
    slab.frozen = False
    if not slab.inuse and n.nr_partial >= s.min_partial:
        note(s, "deactivate_slab: slab %#x is empty and the node keeps %d partial slabs: discard",
             slab.pfn, n.nr_partial)
        discard_slab(s, slab)
    elif slab.freelist:
        add_partial(n, slab, tail)
        note(s, "deactivate_slab: slab %#x (%d free) to the %s of the node partial list", slab.pfn,
             len(slab.freelist), "tail" if tail else "head")
    else:
        note(s, "deactivate_slab: slab %#x is full: on no list", slab.pfn)


# -- allocation ------------------------------------------------------------------

@traced(fmt={"gfp": gfp_name}, name="___slab_alloc")
def slab_alloc_slowpath(s, gfp):
    """___slab_alloc: refill this CPU's freelist, then take its first object.

    In order of cost:
    - objects other CPUs freed into this CPU's slab (get_freelist);
    - a slab from this CPU's partial list;
    - slabs from the node's partial list (get_partial);
    - a new slab from the page allocator (new_slab).
    Returns the object's address, or 0 when even a new slab fails.
    """
    m = s.machine
    cpu = m.current_cpu
    c = s.cpu_slab[cpu]
    slab = c.slab
    freelist = None
    if slab is not None:
        freelist = get_freelist(s, slab)
        if freelist:
            note(s, "___slab_alloc: %d objects freed by other CPUs into the CPU slab (ALLOC_REFILL)",
                 len(freelist))
        else:
            note(s, "___slab_alloc: CPU %d's slab %#x is full; leave it on no list "
                 "(DEACTIVATE_BYPASS)", cpu, slab.pfn)
            c.slab = None
            freelist = None
    while freelist is None and c.partial:
        slab = c.partial.pop()
        slab.on_cpu_partial = False
        c.slab = slab
        freelist = get_freelist(s, slab)
        note(s, "___slab_alloc: slab %#x from CPU %d's partial list (CPU_PARTIAL_ALLOC)",
             slab.pfn, cpu)
    if freelist is None:
        slab = get_partial(s, gfp)
        if slab is not None:
            freelist = freeze_slab(s, slab)
        else:
            slab = new_slab(s, gfp)
            if slab is None:
                slab_out_of_memory(s, gfp)
                return 0
            freelist = slab.freelist
            slab.freelist = []
            slab.inuse = slab.objects
            slab.frozen = True
            inc_slabs_node(s, slab)
        c.slab = slab
    # load_freelist: the freelist becomes the CPU's; its head is the object.
    c.freelist = freelist
    idx = freelist.pop()
    slab.allocated[idx] = 1
    return slab.base + idx * s.size


def slab_out_of_memory(s, gfp):
    """slab_out_of_memory: the warning Linux prints when a cache cannot grow."""
    if not gfp & __GFP_NOWARN:
        note(s, "SLUB: Unable to allocate memory on node -1, gfp=%#x(%s); cache: %s, "
             "object size: %d, buffer size: %d, default order: %d, min order: %d", gfp,
             gfp_name(gfp), s.name, s.object_size, s.size, s.order, s.min_order)


@traced(fmt={"gfp": gfp_name})
def slab_alloc_node(s, gfp, orig_size):
    """slab_alloc_node: an object from cache s; the fast path pops this CPU's freelist.

    Returns the object's address, or 0 when the slow path cannot get memory.
    """
    c = s.cpu_slab[s.machine.current_cpu]
    if c.freelist:
        idx = c.freelist.pop()
        slab = c.slab
        slab.allocated[idx] = 1
        addr = slab.base + idx * s.size
        note(s, "slab_alloc_node: fast path: object %#x from CPU %d's freelist", addr,
             s.machine.current_cpu)
        return addr
    return slab_alloc_slowpath(s, gfp)


def check_cache(s):
    """Refuse to use a destroyed cache (a use-after-free of struct kmem_cache in Linux)."""
    if not isinstance(s, KmemCache):
        raise TypeError(f"s must be a KmemCache, not {type(s).__name__}")
    if not s.alive:
        raise KernelBug(f"BUG: use of kmem_cache {s.name!r} after kmem_cache_destroy")


def check_gfp(gfp):
    """gfp as page_alloc checks it; the common int case costs one comparison."""
    if type(gfp) is not int or gfp < 0 or gfp & ~__GFP_BITS_MASK:
        gfp = page_alloc.check_gfp(gfp)
    return gfp


@traced(fmt={"gfp": gfp_name})
def kmem_cache_alloc(s, gfp=GFP_KERNEL):
    """kmem_cache_alloc: one object from cache s, or 0 (NULL) when memory runs out."""
    check_cache(s)
    gfp = check_gfp(gfp)
    return slab_alloc_node(s, gfp, s.object_size)


# -- freeing ------------------------------------------------------------------

@traced(name="__slab_free")
def slab_free_slowpath(s, slab, idx):
    """__slab_free: free an object into a slab that is not this CPU's slab.

    The object goes on slab->freelist.  Then, by the slab's state before
    (every cache here has CPU partial lists: kmem_cache_has_cpu_partial is
    false only for debug caches, which free straight to the node's lists):
    - frozen (another CPU's slab): nothing else (FREE_FROZEN);
    - full (on no list): it has a free object now, so onto this CPU's
      partial list (put_cpu_partial);
    - on a partial list and now empty: discarded if the node keeps at
      least min_partial partial slabs, else it stays;
    - otherwise nothing moves.
    """
    n = s.node[0]
    prior = bool(slab.freelist)
    was_frozen = slab.frozen
    slab.freelist.append(idx)
    slab.inuse -= 1
    if was_frozen:
        note(s, "__slab_free: slab %#x is a CPU slab: object to its freelist (FREE_FROZEN)",
             slab.pfn)
        return
    if not prior:
        note(s, "__slab_free: slab %#x was full: onto CPU %d's partial list", slab.pfn,
             s.machine.current_cpu)
        put_cpu_partial(s, slab, 1)
        return
    if slab.inuse:
        return
    if not slab.on_node_partial:
        note(s, "__slab_free: slab %#x is empty on a CPU partial list: it stays", slab.pfn)
        return
    if n.nr_partial >= s.min_partial:
        note(s, "__slab_free: slab %#x is empty and the node keeps %d >= min_partial %d "
             "partial slabs: discard", slab.pfn, n.nr_partial, s.min_partial)
        remove_partial(n, slab)
        discard_slab(s, slab)
    else:
        note(s, "__slab_free: slab %#x is empty; kept, the node has only %d partial slabs "
             "(min_partial %d)", slab.pfn, n.nr_partial, s.min_partial)


@traced
def do_slab_free(s, slab, idx):
    """do_slab_free: the fast path frees into this CPU's own slab; anything else is __slab_free."""
    c = s.cpu_slab[s.machine.current_cpu]
    slab.allocated[idx] = 0
    if slab is c.slab:
        c.freelist.append(idx)
        note(s, "do_slab_free: fast path: object to CPU %d's freelist", s.machine.current_cpu)
        return
    slab_free_slowpath(s, slab, idx)


def slab_object_index(s, slab, addr, caller):
    """The slot index of addr in slab, refusing what SLUB debugging would report.

    check_valid_pointer catches an address that is not the start of a
    slot; on_freelist catches an object that is already free.  Both
    raise KernelBug before anything changes.
    """
    offset = addr - slab.base
    idx, rem = divmod(offset, s.size)
    if rem or idx >= slab.objects:
        raise KernelBug(f"{caller}: BUG {s.name} (Not tainted): Invalid object pointer {addr:#x} "
                        f"(offset {rem} into the object at {addr - rem:#x})"
                        if idx < slab.objects else
                        f"{caller}: BUG {s.name} (Not tainted): Invalid object pointer {addr:#x} "
                        f"(in the slab's unused tail)")
    if not slab.allocated[idx]:
        raise KernelBug(f"{caller}: BUG {s.name} (Not tainted): Object already free: {addr:#x} "
                        f"(double free)")
    return idx


def direct_map_pfn(m, addr, caller):
    """virt_to_pfn for an address that must be in the direct map of RAM; KernelBug otherwise."""
    if type(addr) is not int:
        addr = require_int("addr", addr)
    pfn = (addr - PAGE_OFFSET) >> PAGE_SHIFT
    if addr < PAGE_OFFSET or pfn >= m.max_pfn:
        raise KernelBug(f"{caller}: {addr:#x} is not a direct-map address (kmalloc never returns "
                        "one like it; a vmalloc address goes to vfree)")
    return pfn


def virt_to_slab(m, addr, caller):
    """virt_to_slab: the Slab holding addr, or None if its page is not a slab page."""
    pfn = direct_map_pfn(m, addr, caller)
    head = m.mem_map.slab_head_[pfn]
    if head and m.mem_map.page_type_[head] == PGTY_SLAB:
        return m.slub.slabs[head]
    return None


@traced
def kmem_cache_free(s, addr):
    """kmem_cache_free: give back an object of cache s.

    The object must be one s handed out and not yet freed; anything else
    raises KernelBug and changes nothing.
    NOTE: with an object of another cache Linux (CONFIG_SLAB_FREELIST_HARDENED)
    warns "Wrong slab cache" and frees it to its real cache; the model refuses.
    """
    check_cache(s)
    slab = virt_to_slab(s.machine, addr, "kmem_cache_free")
    if slab is None:
        raise KernelBug(f"kmem_cache_free: {addr:#x}: Object is not a Slab page!")
    if slab.cache is not s:
        raise KernelBug(f"kmem_cache_free: Wrong slab cache. {s.name} but object is from "
                        f"{slab.cache.name}")
    idx = slab_object_index(s, slab, addr, "kmem_cache_free")
    do_slab_free(s, slab, idx)


# -- flushing, shrinking, destroying ------------------------------------------------

@traced(name="__flush_cpu_slab")
def flush_cpu_slab(s, cpu):
    """__flush_cpu_slab: a CPU gives up its slab (deactivate_slab) and its partial slabs."""
    c = s.cpu_slab[cpu]
    slab, freelist = c.slab, c.freelist
    c.slab, c.freelist = None, []
    if slab is not None:
        deactivate_slab(s, slab, freelist)
    if c.partial:
        partial, c.partial = c.partial, []
        put_partials(s, partial[::-1])


@traced
def flush_all(s):
    """flush_all: every CPU that holds slabs of s flushes them (flush_cpu_slab on each)."""
    for cpu, c in enumerate(s.cpu_slab):
        if c.slab is not None or c.partial:
            flush_cpu_slab(s, cpu)


@traced(name="__kmem_cache_do_shrink")
def kmem_cache_do_shrink(s):
    """__kmem_cache_do_shrink: free empty partial slabs; sort the rest fullest first.

    Slabs with few free objects go to the head of the partial list, so
    allocations fill them and the emptier ones, at the tail, get a chance
    to empty completely.  Returns 1 if the cache still has slabs, else 0.
    """
    n = s.node[0]
    slabs = s.machine.slub.slabs
    discard = []
    promote = [[] for _ in range(SHRINK_PROMOTE_MAX)]
    for pfn in list(n.partial):
        slab = slabs[pfn]
        free = slab.objects - slab.inuse
        if free == slab.objects:
            remove_partial(n, slab)
            n.nr_slabs -= 1
            n.total_objects -= slab.objects
            discard.insert(0, slab)             # list_move to the head of the discard list
        elif free <= SHRINK_PROMOTE_MAX:
            n.partial.remove(pfn)               # list_move onto promote[free - 1]
            promote[free - 1].insert(0, slab)
    for bucket in reversed(promote):            # list_splice each at the head
        for slab in reversed(bucket):
            n.partial.add(slab.pfn, False)
    for slab in discard:
        free_slab(s, slab)
    return 1 if n.nr_slabs else 0


@traced
def kmem_cache_shrink(s):
    """kmem_cache_shrink: flush every CPU's slabs, then free every empty slab.

    Returns 0 when no slab is left, 1 when some still hold objects.
    """
    check_cache(s)
    flush_all(s)
    return kmem_cache_do_shrink(s)


def live_objects(s):
    """How many objects of s are allocated."""
    return sum(slab.nr_allocated() for slab in s.slabs.values())


@traced
def kmem_cache_destroy(s):
    """kmem_cache_destroy: flush the CPUs, free every slab, drop the cache from the list.

    The cache must hold no live objects: otherwise Linux warns "Slab cache
    still has objects", unlinks the cache and leaks its slabs; the model
    raises KernelBug and changes nothing, so the objects can still be freed.
    The cache's own kmem_cache and kmem_cache_node objects and its name go
    back to their caches (slab_kmem_cache_release).
    """
    check_cache(s)
    m = s.machine
    if s.boot:
        raise KernelBug(f"kmem_cache_destroy {s.name}: a boot cache cannot be destroyed")
    live = live_objects(s)
    if live:
        raise KernelBug(f"kmem_cache_destroy {s.name}: Slab cache still has objects "
                        f"({live} allocated)")
    flush_all(s)
    n = s.node[0]
    for pfn in list(n.partial):                 # free_partial
        slab = m.slub.slabs[pfn]
        remove_partial(n, slab)
        discard_slab(s, slab)
    m.slub.slab_caches.remove(s)
    s.alive = False
    slab_kmem_cache_release(s)


def slab_kmem_cache_release(s):
    """slab_kmem_cache_release: free the cache's node structure, its name, and the cache itself."""
    m = s.machine
    kmem_cache_free(m.slub.kmem_cache_node, s.node_addr)
    kfree(m, s.name_addr)
    kmem_cache_free(m.slub.kmem_cache, s.struct_addr)


def validate_create_args(m, name, size, align, flags, ctor, freeptr_offset):
    """kmem_cache_sanity_check and the argument checks of __kmem_cache_create_args, as errors."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not name or any(ch.isspace() for ch in name):
        raise ValueError(f"name must be non-empty and hold no spaces (it confuses "
                         f"/proc/slabinfo's readers), got {name!r}")
    size = require_int("size", size, 1, KMALLOC_MAX_SIZE)
    align = require_int("align", align, 0, KMALLOC_MAX_SIZE)
    if align and not is_power_of_2(align):
        raise ValueError(f"align must be 0 or a power of two, got {align}")
    flags = require_int("flags", flags, 0)
    if flags & SLAB_DEBUG_FLAGS:
        raise ValueError(f"flags: {slab_flags_name(flags & SLAB_DEBUG_FLAGS)}: slab debugging "
                         "is not modelled")
    if flags & ~SLAB_FLAGS_ACCEPTED:
        raise ValueError(f"flags: {flags & ~SLAB_FLAGS_ACCEPTED:#x} are not flags "
                         "kmem_cache_create accepts")
    if ctor is not None and not callable(ctor):
        raise TypeError(f"ctor must be callable or None, not {type(ctor).__name__}")
    if freeptr_offset is not None:
        freeptr_offset = require_int("freeptr_offset", freeptr_offset, 0, size - 1)
        if not flags & SLAB_TYPESAFE_BY_RCU or freeptr_offset % POINTER_SIZE:
            raise ValueError("freeptr_offset needs SLAB_TYPESAFE_BY_RCU and a multiple of 8 "
                             f"below size, got {freeptr_offset}")
    if m.slub.find(name) is not None:
        raise ValueError(f"name: a cache named {name!r} already exists (with caches unmerged, "
                         "its sysfs directory would clash)")
    final_align = calculate_alignment(flags, align, size)
    slot = align_up(align_up(size, POINTER_SIZE) + (POINTER_SIZE if ctor is not None or (
        flags & SLAB_TYPESAFE_BY_RCU and freeptr_offset is None) else 0), final_align)
    if get_order(slot) > MAX_PAGE_ORDER:
        raise ValueError(f"align: size {size} aligned to {final_align} makes a {slot}-byte slot, "
                         "larger than the page allocator can give")
    return size, align, flags, freeptr_offset


@traced(fmt={"flags": slab_flags_name, "ctor": lambda f: getattr(f, "__name__", "ctor")})
def kmem_cache_create(m, name, size, align=0, flags=0, ctor=None, freeptr_offset=None):
    """kmem_cache_create: a new cache of `size`-byte objects, or None if memory runs out.

    `align` is a power of two (0: the minimum, 8); `flags` are SLAB_* flags
    (SLAB_HWCACHE_ALIGN, SLAB_RECLAIM_ACCOUNT, SLAB_TYPESAFE_BY_RCU,
    SLAB_CACHE_DMA, SLAB_ACCOUNT ...); `ctor(addr)` runs on every object
    when its slab is created; `freeptr_offset` (with SLAB_TYPESAFE_BY_RCU)
    says where in a free object the free pointer may go.
    The cache's struct kmem_cache comes from the kmem_cache cache, its
    node structure from kmem_cache_node, and its name is copied with
    kstrdup_const (a kmalloc); the cache goes to the head of slab_caches.
    Bad arguments raise TypeError/ValueError and change nothing.
    """
    size, align, flags, freeptr_offset = validate_create_args(m, name, size, align, flags, ctor,
                                                              freeptr_offset)
    name_addr = kmalloc(m, len(name.encode()) + 1, GFP_KERNEL)          # kstrdup_const
    if not name_addr:
        return None
    struct_addr = kmem_cache_alloc(m.slub.kmem_cache, GFP_KERNEL | __GFP_ZERO)
    if not struct_addr:
        kfree(m, name_addr)
        return None
    s = KmemCache(m, name, size, calculate_alignment(flags, align, size), flags, ctor,
                  freeptr_offset)
    kmem_cache_open(s)
    node_addr = kmem_cache_alloc(m.slub.kmem_cache_node, GFP_KERNEL)    # init_kmem_cache_nodes
    if not node_addr:
        kmem_cache_free(m.slub.kmem_cache, struct_addr)
        kfree(m, name_addr)
        return None
    s.struct_addr, s.node_addr, s.name_addr = struct_addr, node_addr, name_addr
    m.slub.slab_caches.insert(0, s)
    note(m, "kmem_cache_create: %s: object_size %d, size %d, align %d, order %d, %d objects "
         "per slab", name, s.object_size, s.size, s.align, s.order, s.objects)
    return s


# -- kmalloc ------------------------------------------------------------------------

def kmalloc_type(gfp):
    """kmalloc_type: which family of kmalloc caches a request uses.

    __GFP_DMA: dma-kmalloc-*; __GFP_RECLAIMABLE: kmalloc-rcl-*;
    __GFP_ACCOUNT: kmalloc-cg-*; otherwise kmalloc-*.
    """
    if not gfp & KMALLOC_NOT_NORMAL_BITS:
        return KMALLOC_NORMAL
    if gfp & __GFP_DMA:
        return KMALLOC_DMA
    if gfp & __GFP_RECLAIMABLE:
        return KMALLOC_RECLAIM
    return KMALLOC_CGROUP


def kmalloc_index(size):
    """kmalloc_index / kmalloc_size_index: the kmalloc cache index for 1 <= size <= 8 KiB.

    Up to 192 bytes a table maps size/8 to an index (so 65-96 goes to
    kmalloc-96 and 129-192 to kmalloc-192); above, the next power of two.
    """
    if size <= 192:
        return KMALLOC_SIZE_INDEX[(size - 1) >> 3]
    return fls(size - 1)


def kmalloc_slab(m, size, gfp):
    """kmalloc_slab: the kmalloc cache serving `size` bytes with these flags."""
    return m.slub.kmalloc_caches[kmalloc_type(gfp)][kmalloc_index(size)]


def check_size(size, name="size"):
    """A size_t argument: an int in [0, SIZE_MAX]."""
    if type(size) is not int or size < 0 or size > SIZE_MAX:
        size = require_int(name, size, 0, SIZE_MAX)
    return size


@traced(fmt={"gfp": gfp_name})
def kmalloc(m, size, gfp=GFP_KERNEL):
    """kmalloc: `size` bytes of kernel memory; returns the address, or 0 (NULL).

    Dispatch by size:
    - 0 returns ZERO_SIZE_PTR (16), which kfree accepts and any access faults on;
    - up to 8 KiB: an object of the kmalloc cache kmalloc_index picks;
    - above: whole pages from the page allocator (kmalloc_large), up to
      KMALLOC_MAX_SIZE (4 MiB); more than that fails with a warning.
    """
    if type(size) is not int or size < 0 or size > SIZE_MAX:
        size = check_size(size)
    if type(gfp) is not int or gfp < 0 or gfp & ~__GFP_BITS_MASK:
        gfp = page_alloc.check_gfp(gfp)
    if size > KMALLOC_MAX_CACHE_SIZE:
        return kmalloc_large(m, size, gfp)
    if not size:
        note(m, "kmalloc: size 0: ZERO_SIZE_PTR")
        return ZERO_SIZE_PTR
    s = m.slub.kmalloc_caches[kmalloc_type(gfp)][kmalloc_index(size)]
    if _trace._active is None:
        # NOTE: slab_alloc_node's fast path, inlined when nothing is traced.
        c = s.cpu_slab[m.current_cpu]
        if c.freelist:
            idx = c.freelist.pop()
            slab = c.slab
            slab.allocated[idx] = 1
            return slab.base + idx * s.size
        return slab_alloc_slowpath.__wrapped__(s, gfp)
    note(m, "kmalloc: %d bytes from %s", size, s.name)
    return slab_alloc_node(s, gfp, size)


@traced(fmt={"gfp": gfp_name}, name="__kmalloc_large_node")
def kmalloc_large(m, size, gfp):
    """__kmalloc_large_node: pages straight from the page allocator, as a compound page.

    The order is get_order(size); the pages are typed large_kmalloc so kfree
    knows them, and count in nr_slab_unreclaimable.  Above KMALLOC_MAX_SIZE
    the order exceeds MAX_PAGE_ORDER: Linux warns and returns NULL.
    """
    order = get_order(size)
    if order > MAX_PAGE_ORDER:
        if not gfp & __GFP_NOWARN:
            note(m, "WARNING: __alloc_pages: order %d > MAX_PAGE_ORDER (%d): kmalloc(%d) fails",
                 order, MAX_PAGE_ORDER, size)
        return 0
    if gfp & GFP_SLAB_BUG_MASK:
        gfp = kmalloc_fix_flags(m, gfp)
    pfn = page_alloc.alloc_pages(m, order, gfp | __GFP_COMP)
    if pfn is None:
        return 0
    mm = m.mem_map
    mm.page_type_[pfn] = PGTY_LARGE_KMALLOC
    mm.slab_head[pfn:pfn + (1 << order)] = pfn
    m.slub.large.add(pfn)
    m.node_stat["nr_slab_unreclaimable"] += 1 << order
    note(m, "kmalloc_large: %d bytes as an order-%d compound page at pfn %#x", size, order, pfn)
    return PAGE_OFFSET + (pfn << PAGE_SHIFT)


@traced(name="free_large_kmalloc")
def free_large_kmalloc(m, pfn, addr):
    """free_large_kmalloc: give a kmalloc_large block back to the page allocator."""
    mm = m.mem_map
    if addr != PAGE_OFFSET + (pfn << PAGE_SHIFT):
        raise KernelBug(f"kfree: {addr:#x} is inside the large kmalloc at "
                        f"{PAGE_OFFSET + (pfn << PAGE_SHIFT):#x}, not its start "
                        "(Linux would free the whole block)")
    order = int(mm.order_[pfn])
    mm.page_type_[pfn] = PGTY_NONE
    mm.slab_head[pfn:pfn + (1 << order)] = 0
    m.slub.large.discard(pfn)
    m.node_stat["nr_slab_unreclaimable"] -= 1 << order
    page_alloc.free_pages(m, pfn, order)


@traced
def kfree(m, addr):
    """kfree: free what kmalloc (or kmem_cache_alloc) returned.

    NULL and ZERO_SIZE_PTR are ignored.  A slab object goes back to its
    cache; a large kmalloc back to the page allocator.  Anything else (a
    double free, an address inside an object, a page kmalloc never gave,
    an address outside the direct map) raises KernelBug and changes nothing.
    """
    if type(addr) is not int:
        addr = require_int("addr", addr)
    if addr <= ZERO_SIZE_PTR and addr >= 0:     # ZERO_OR_NULL_PTR
        return
    pfn = (addr - PAGE_OFFSET) >> PAGE_SHIFT
    if addr < PAGE_OFFSET or pfn >= m.max_pfn:
        direct_map_pfn(m, addr, "kfree")
    mm = m.mem_map
    head = mm.slab_head_[pfn]
    page_type = mm.page_type_[head] if head else PGTY_NONE
    if page_type == PGTY_SLAB:
        slab = m.slub.slabs[head]
        s = slab.cache
        if _trace._active is None:
            # NOTE: slab_object_index and do_slab_free's fast path, inlined when untraced.
            offset = addr - slab.base
            size = s.size
            idx = offset // size
            if offset - idx * size == 0 and idx < slab.objects and slab.allocated[idx]:
                c = s.cpu_slab[m.current_cpu]
                slab.allocated[idx] = 0
                if slab is c.slab:
                    c.freelist.append(idx)
                else:
                    slab_free_slowpath.__wrapped__(s, slab, idx)
                return
        idx = slab_object_index(s, slab, addr, "kfree")
        do_slab_free(s, slab, idx)
        return
    if page_type == PGTY_LARGE_KMALLOC:
        free_large_kmalloc(m, head, addr)
        return
    raise KernelBug(f"kfree: {addr:#x}: page {pfn:#x} is neither a slab nor a large kmalloc: "
                    "Not a kmalloc allocation")


def object_kind(m, addr, caller):
    """What a live kmalloc'ed address is: ('slab', cache) or ('large', order); KernelBug otherwise."""
    pfn = direct_map_pfn(m, addr, caller)
    mm = m.mem_map
    head = mm.slab_head_[pfn]
    page_type = mm.page_type_[head] if head else PGTY_NONE
    if page_type == PGTY_SLAB:
        slab = m.slub.slabs[head]
        slab_object_index(slab.cache, slab, addr, caller)
        return "slab", slab.cache
    if page_type == PGTY_LARGE_KMALLOC and addr == PAGE_OFFSET + (head << PAGE_SHIFT):
        return "large", int(mm.order_[head])
    raise KernelBug(f"{caller}: {addr:#x} is not a live kmalloc allocation")


def slab_ksize(s):
    """slab_ksize: the usable size of an object of s: the whole slot, unless metadata follows it."""
    if s.flags & SLAB_TYPESAFE_BY_RCU:
        return s.inuse
    return s.size


@traced
def ksize(m, addr):
    """ksize: how many bytes the allocation at addr really has (0 for NULL and ZERO_SIZE_PTR).

    NOTE: Linux without KASAN answers for freed objects too; the model
    raises KernelBug, as KASAN would report it.
    """
    if type(addr) is not int:
        addr = require_int("addr", addr)
    if 0 <= addr <= ZERO_SIZE_PTR:
        return 0
    kind, what = object_kind(m, addr, "ksize")
    if kind == "slab":
        return slab_ksize(what)
    return PAGE_SIZE << what


def kmalloc_size_roundup(m, size):
    """kmalloc_size_roundup: the size kmalloc(size) really gives (size itself for 0 or > 4 MiB)."""
    size = check_size(size)
    if size and size <= KMALLOC_MAX_CACHE_SIZE:
        return kmalloc_slab(m, size, GFP_KERNEL).object_size
    if size and size <= KMALLOC_MAX_SIZE:
        return PAGE_SIZE << get_order(size)
    return size


def kzalloc(m, size, gfp=GFP_KERNEL):
    """kzalloc: kmalloc with __GFP_ZERO."""
    return kmalloc(m, size, check_gfp(gfp) | __GFP_ZERO)


def kmalloc_array(m, n, size, gfp=GFP_KERNEL):
    """kmalloc_array: n * size bytes, or 0 (NULL) if the product overflows size_t."""
    n = check_size(n, "n")
    size = check_size(size)
    if n * size > SIZE_MAX:
        note(m, "kmalloc_array: %d * %d overflows size_t: NULL", n, size)
        return 0
    return kmalloc(m, n * size, gfp)


def kcalloc(m, n, size, gfp=GFP_KERNEL):
    """kcalloc: a zeroed array of n elements of size bytes (kmalloc_array with __GFP_ZERO)."""
    return kmalloc_array(m, n, size, check_gfp(gfp) | __GFP_ZERO)


@traced(fmt={"gfp": gfp_name})
def krealloc(m, addr, new_size, gfp=GFP_KERNEL):
    """krealloc: resize a kmalloc allocation; returns the (maybe new) address, or 0.

    new_size 0 frees and returns ZERO_SIZE_PTR; NULL or ZERO_SIZE_PTR
    allocates.  If the object already has room (new_size <= its object
    size, or the pages of a large kmalloc) it stays where it is, even when
    shrinking; otherwise a new object is allocated, the contents copied,
    and the old one freed.  On failure the old allocation is untouched.
    """
    if type(addr) is not int:
        addr = require_int("addr", addr)
    new_size = check_size(new_size, "new_size")
    gfp = check_gfp(gfp)
    if not new_size:
        kfree(m, addr)
        return ZERO_SIZE_PTR
    if 0 <= addr <= ZERO_SIZE_PTR:
        return kmalloc(m, new_size, gfp)
    kind, what = object_kind(m, addr, "krealloc")
    ks = what.object_size if kind == "slab" else PAGE_SIZE << what
    if new_size <= ks:
        note(m, "krealloc: %d bytes fit the %d already there: same object", new_size, ks)
        return addr
    new = kmalloc(m, new_size, gfp)
    if new:
        note(m, "krealloc: moved to %#x (copies %d bytes)", new, ks)
        kfree(m, addr)
    return new


# -- /proc/slabinfo --------------------------------------------------------------------

def get_slabinfo(s):
    """get_slabinfo: (active_objs, num_objs, active_slabs, num_slabs, objperslab, order).

    Only free objects on the node's partial lists count as inactive: objects
    on CPU freelists and CPU partial slabs show as active, as in Linux.
    """
    n = s.node[0]
    slabs = s.machine.slub.slabs
    nr_free = sum(slabs[pfn].objects - slabs[pfn].inuse for pfn in n.partial)
    return n.total_objects - nr_free, n.total_objects, n.nr_slabs, n.nr_slabs, s.objects, s.order


def slabinfo_show(m):
    """/proc/slabinfo (slab_show / cache_show), version 2.1, caches newest first."""
    out = ["slabinfo - version: 2.1",
           "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
           " : tunables <limit> <batchcount> <sharedfactor>"
           " : slabdata <active_slabs> <num_slabs> <sharedavail>"]
    for s in m.slub.slab_caches:
        active, total, active_slabs, num_slabs, per_slab, order = get_slabinfo(s)
        out.append(f"{s.name:<17s} {active:6d} {total:6d} {s.size:6d} {per_slab:4d} {1 << order:4d}"
                   f" : tunables {0:4d} {0:4d} {0:4d}"
                   f" : slabdata {active_slabs:6d} {num_slabs:6d} {0:6d}")
    return "\n".join(out) + "\n"


# -- invariants ------------------------------------------------------------------------

def check(m):
    """Invariants of the slab allocator; raises InvariantError naming the broken one.

    - slab pages: each slab's head is typed slab, every frame of it points
      to the head, all are allocated with the slab's order, and no other
      frame claims to be a slab or large kmalloc;
    - objects: a slab's free slots (its freelist, plus its CPU's freelist
      if it is a CPU slab) are distinct, not allocated, and with the
      allocated slots make up every slot; inuse counts what is not on the
      slab's freelist;
    - lists: each slab is on exactly the list its state says (a CPU's slab,
      a CPU partial list, the node partial list) or on none only when full;
      partial slabs have free objects; node counters match the slabs;
    - accounting: nr_slab_reclaimable and nr_slab_unreclaimable equal the
      pages of reclaimable and other slabs (plus large kmallocs).
    """
    def fail(name, text):
        raise InvariantError(f"slub {name}: {text}")

    mm = m.mem_map
    st = m.slub
    pages = {"nr_slab_reclaimable": 0, "nr_slab_unreclaimable": 0}
    owned = np.zeros(mm.max_pfn, dtype=bool)
    for s in st.slab_caches:
        check_cache_invariants(m, s, fail, pages, owned)
    if sum(len(s.slabs) for s in st.slab_caches) != len(st.slabs):
        fail("slab pages", f"{len(st.slabs)} slabs known, the live caches hold "
             f"{sum(len(s.slabs) for s in st.slab_caches)}")
    for pfn in st.large:
        order = int(mm.order_[pfn])
        if mm.page_type_[pfn] != PGTY_LARGE_KMALLOC or mm.state_[pfn] != FRAME_ALLOCATED:
            fail("slab pages", f"large kmalloc at pfn {pfn:#x} is not an allocated large_kmalloc page")
        if np.any(mm.slab_head[pfn:pfn + (1 << order)] != pfn):
            fail("slab pages", f"large kmalloc at pfn {pfn:#x}: a frame does not point to its head")
        owned[pfn:pfn + (1 << order)] = True
        pages["nr_slab_unreclaimable"] += 1 << order
    stray = (mm.slab_head != 0) & ~owned
    if np.any(stray):
        fail("slab pages", f"pfn {int(np.argmax(stray)):#x} points to a slab head but belongs "
             "to no slab")
    typed = np.flatnonzero(mm.page_type == PGTY_SLAB)
    if set(typed.tolist()) != set(st.slabs):
        fail("slab pages", "the frames typed slab are not exactly the slab heads")
    typed = np.flatnonzero(mm.page_type == PGTY_LARGE_KMALLOC)
    if set(typed.tolist()) != st.large:
        fail("slab pages", "the frames typed large_kmalloc are not exactly the large kmallocs")
    for item, count in pages.items():
        if m.node_stat[item] != count:
            fail("accounting", f"{item} is {m.node_stat[item]} but slabs hold {count} pages")


def check_cache_invariants(m, s, fail, pages, owned):
    """The invariants of one cache (see check)."""
    mm = m.mem_map
    n = s.node[0]
    cpu_of = {}
    for cpu, c in enumerate(s.cpu_slab):
        if c.slab is None:
            if c.freelist:
                fail("lists", f"{s.name}: CPU {cpu} has a freelist but no slab")
        else:
            if not c.slab.frozen or c.slab.pfn not in s.slabs or id(c.slab) in cpu_of:
                fail("lists", f"{s.name}: CPU {cpu}'s slab is not a frozen slab of the cache, "
                     "or is another CPU's too")
            cpu_of[id(c.slab)] = c
        for slab in c.partial:
            if not slab.on_cpu_partial or slab.frozen or slab.on_node_partial:
                fail("lists", f"{s.name}: slab {slab.pfn:#x} on CPU {cpu}'s partial list is "
                     f"marked {slab.state}")
            if not slab.freelist:
                fail("lists", f"{s.name}: slab {slab.pfn:#x} on a CPU partial list has no free object")
    on_cpu_partial = sum(len(c.partial) for c in s.cpu_slab)
    if on_cpu_partial != sum(1 for sl in s.slabs.values() if sl.on_cpu_partial):
        fail("lists", f"{s.name}: CPU partial lists hold {on_cpu_partial} slabs, "
             "a different number are marked so")
    listed = list(n.partial)
    if len(listed) != n.nr_partial or len(set(listed)) != len(listed):
        fail("lists", f"{s.name}: node partial list is corrupt")
    for pfn in listed:
        slab = s.slabs.get(pfn)
        if slab is None or not slab.on_node_partial or slab.frozen or slab.on_cpu_partial:
            fail("lists", f"{s.name}: pfn {pfn:#x} on the node partial list is not a partial slab")
        if not slab.freelist:
            fail("lists", f"{s.name}: slab {pfn:#x} on the node partial list has no free object")
    if sum(1 for sl in s.slabs.values() if sl.on_node_partial) != len(listed):
        fail("lists", f"{s.name}: slabs marked partial are not the node partial list")
    if n.nr_slabs != len(s.slabs) or n.total_objects != sum(sl.objects for sl in s.slabs.values()):
        fail("lists", f"{s.name}: node counts {n.nr_slabs} slabs / {n.total_objects} objects, "
             f"the cache holds {len(s.slabs)}")
    for pfn, slab in s.slabs.items():
        order = slab.order
        if (slab.pfn != pfn or slab.cache is not s or mm.page_type_[pfn] != PGTY_SLAB
                or mm.state_[pfn] != FRAME_ALLOCATED or mm.order_[pfn] != order):
            fail("slab pages", f"{s.name}: slab at pfn {pfn:#x} is not an allocated slab page "
                 f"of order {order}")
        if np.any(mm.slab_head[pfn:pfn + (1 << order)] != pfn):
            fail("slab pages", f"{s.name}: slab at pfn {pfn:#x}: a frame does not point to its head")
        owned[pfn:pfn + (1 << order)] = True
        pages[cache_vmstat_idx(s)] += 1 << order
        if (order, slab.objects) not in ((s.order, s.objects), (s.min_order, s.min_objects)):
            fail("slab pages", f"{s.name}: slab {pfn:#x} has order {order} and {slab.objects} "
                 "objects, neither the cache's oo nor min")
        c = cpu_of.get(id(slab))
        if slab.frozen and c is None:
            fail("lists", f"{s.name}: slab {pfn:#x} is frozen but no CPU's slab")
        free = slab.freelist + (c.freelist if c is not None else [])
        if len(set(free)) != len(free) or any(not 0 <= i < slab.objects for i in free):
            fail("objects", f"{s.name}: slab {pfn:#x} has a freelist with repeats or bad slots")
        if any(slab.allocated[i] for i in free):
            fail("objects", f"{s.name}: slab {pfn:#x}: an allocated object is on a freelist")
        if slab.allocated.count(1) + len(free) != slab.objects:
            fail("objects", f"{s.name}: slab {pfn:#x}: {slab.allocated.count(1)} allocated + "
                 f"{len(free)} free != {slab.objects} objects")
        if slab.inuse != slab.objects - len(slab.freelist):
            fail("objects", f"{s.name}: slab {pfn:#x}: inuse {slab.inuse} but "
                 f"{len(slab.freelist)} of {slab.objects} on its freelist")
        if slab.state == "full" and slab.freelist:
            fail("lists", f"{s.name}: slab {pfn:#x} has free objects but is on no list")
