"""VMAs and the address space that holds them (mm/vma.c, include/linux/mm_types.h).

A process sees its memory as a set of virtual memory areas: each VMA is a
page-aligned range [vm_start, vm_end) with one protection, one set of flags
and one backing (a file at an offset, or anonymous memory).  The kernel
keeps the set ordered, never overlapping, and as small as it can: a VMA that
is created or changed next to one with the same flags, the same file (at the
following offset) and a compatible anon_vma is *merged* into it, and a change
to part of a VMA *splits* it.  This file holds those rules (vma_merge_new_range,
vma_merge_existing_range, split_vma, vma_modify), unmapping (do_vmi_munmap)
and the search for free space (unmapped_area_topdown).

How the set is stored.  Linux before 6.1 kept VMAs twice: in an rb-tree for
lookups by address and in a sorted linked list (vma->vm_next) for walking,
and augmented the rb-tree with the largest free gap below each node so the
free-space search was logarithmic.  Since 6.1 one maple tree does all three:
a B-tree of ranges whose nodes store the largest gap beneath them.

NOTE: mmlab does not build a maple tree.  An MM keeps its VMAs in a Python
list sorted by address, with two parallel lists of vm_start and vm_end for
bisect, so find_vma and friends are O(log n) like the maple tree's walks;
inserting or removing a VMA is an O(n) memmove inside CPython, which is fast
for the thousands of VMAs a process has.  Free gaps are kept in a third
sorted list (only gaps of at least one page), so the top-down search walks
holes, not VMAs: it costs O(holes above the answer), where the maple tree's
costs O(log n).  Every change goes through MM._store, the model of
vma_iter_store, which keeps the lists and the holes in step.

Glossary: vma is a VMA, mm an MM (mm_struct), vmg the state of one merge
(struct vma_merge_struct), pgoff an offset in pages (into the file, or for
anonymous memory the virtual page number where the VMA was first mapped).
"""
from bisect import bisect_left, bisect_right
import importlib
import itertools

from ..arch import PAGE_SHIFT, PAGE_SIZE, TASK_SIZE
from ..errors import InvariantError, ENOMEM, EINVAL
from ..trace import traced, note
from ..uapi import RLIMIT_DATA, RLIMIT_AS
from .. import fs as _fs

# -- vm_flags (include/linux/mm.h, x86_64) ----------------------------------
VM_NONE = 0x00000000
VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_EXEC = 0x00000004
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010         # limits for mprotect() etc: VM_READ may be set
VM_MAYWRITE = 0x00000020
VM_MAYEXEC = 0x00000040
VM_MAYSHARE = 0x00000080
VM_GROWSDOWN = 0x00000100       # a stack: grows down on faults below it
VM_UFFD_MISSING = 0x00000200
VM_PFNMAP = 0x00000400          # raw page frames, no struct page
VM_UFFD_WP = 0x00001000
VM_LOCKED = 0x00002000          # mlock()ed
VM_IO = 0x00004000              # memory-mapped I/O
VM_SEQ_READ = 0x00008000        # MADV_SEQUENTIAL
VM_RAND_READ = 0x00010000       # MADV_RANDOM
VM_DONTCOPY = 0x00020000        # MADV_DONTFORK
VM_DONTEXPAND = 0x00040000      # cannot grow with mremap (special mappings)
VM_LOCKONFAULT = 0x00080000     # mlock2(MLOCK_ONFAULT)
VM_ACCOUNT = 0x00100000         # charged to the commit count
VM_NORESERVE = 0x00200000       # MAP_NORESERVE: not charged
VM_HUGETLB = 0x00400000
VM_SYNC = 0x00800000            # MAP_SYNC
VM_PAT = 0x01000000             # VM_ARCH_1 on x86
VM_WIPEONFORK = 0x02000000
VM_DONTDUMP = 0x04000000
VM_SOFTDIRTY = 0                # NOTE: CONFIG_MEM_SOFT_DIRTY is off on the reference kernel (no "sd")
VM_MIXEDMAP = 0x10000000
VM_HUGEPAGE = 0x20000000        # MADV_HUGEPAGE
VM_NOHUGEPAGE = 0x40000000      # MADV_NOHUGEPAGE, MAP_STACK
VM_MERGEABLE = 0x80000000       # MADV_MERGEABLE (KSM)
VM_PKEY_BIT0 = 1 << 32
VM_SHADOW_STACK = 1 << 37
VM_UFFD_MINOR = 1 << 38
VM_DROPPABLE = 1 << 40          # MAP_DROPPABLE
VM_SEALED = 1 << 63

VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP     # never merged, never mlocked
VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT
VM_STACK = VM_GROWSDOWN
VM_STARTGAP_FLAGS = VM_GROWSDOWN | VM_SHADOW_STACK
VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
VM_STACK_DEFAULT_FLAGS = VM_DATA_DEFAULT_FLAGS
VM_STACK_FLAGS = VM_STACK | VM_STACK_DEFAULT_FLAGS | VM_ACCOUNT
VM_STACK_INCOMPLETE_SETUP = VM_RAND_READ | VM_SEQ_READ

# /proc/pid/smaps "VmFlags:" mnemonics, by bit (show_smap_vma_flags).
VM_MNEMONICS = {
    VM_READ: "rd", VM_WRITE: "wr", VM_EXEC: "ex", VM_SHARED: "sh", VM_MAYREAD: "mr",
    VM_MAYWRITE: "mw", VM_MAYEXEC: "me", VM_MAYSHARE: "ms", VM_GROWSDOWN: "gd",
    VM_UFFD_MISSING: "um", VM_PFNMAP: "pf", VM_UFFD_WP: "uw", VM_LOCKED: "lo", VM_IO: "io",
    VM_SEQ_READ: "sr", VM_RAND_READ: "rr", VM_DONTCOPY: "dc", VM_DONTEXPAND: "de",
    VM_LOCKONFAULT: "lf", VM_ACCOUNT: "ac", VM_NORESERVE: "nr", VM_HUGETLB: "ht",
    VM_SYNC: "sf", VM_PAT: "ar", VM_WIPEONFORK: "wf", VM_DONTDUMP: "dd", VM_MIXEDMAP: "mm",
    VM_HUGEPAGE: "hg", VM_NOHUGEPAGE: "nh", VM_MERGEABLE: "mg", VM_SHADOW_STACK: "ss",
    VM_UFFD_MINOR: "ui", VM_DROPPABLE: "dp", VM_SEALED: "sl",
}
_MNEMONIC_BITS = sorted(VM_MNEMONICS)

# -- page protections (pgtable_types.h values, from mm/pgtable.py) ----------------
from .pgtable import (PAGE_NONE, PAGE_SHARED, PAGE_SHARED_EXEC, PAGE_COPY, PAGE_COPY_EXEC,
                      PAGE_READONLY, PAGE_READONLY_EXEC)

# protection_map[VM_SHARED|VM_EXEC|VM_WRITE|VM_READ] (arch/x86/mm/pgprot.c):
# private writable pages start read-only, so the first write faults and copies.
PROTECTION_MAP = [
    PAGE_NONE, PAGE_READONLY, PAGE_COPY, PAGE_COPY,
    PAGE_READONLY_EXEC, PAGE_READONLY_EXEC, PAGE_COPY_EXEC, PAGE_COPY_EXEC,
    PAGE_NONE, PAGE_READONLY, PAGE_SHARED, PAGE_SHARED,
    PAGE_READONLY_EXEC, PAGE_READONLY_EXEC, PAGE_SHARED_EXEC, PAGE_SHARED_EXEC,
]

ULONG_MAX = (1 << 64) - 1
TOP = 1 << 64                   # one past the last address the tree indexes
STACK_GUARD_GAP = 256 << PAGE_SHIFT
DEFAULT_MAX_MAP_COUNT = 65530

# vma_merge_struct.state
VMA_MERGE_START, VMA_MERGE_ERROR_NOMEM, VMA_MERGE_NOMERGE, VMA_MERGE_SUCCESS = range(4)


def vm_get_page_prot(vm_flags):
    """vm_get_page_prot: the pte protection bits for a VMA with these flags."""
    return PROTECTION_MAP[vm_flags & (VM_READ | VM_WRITE | VM_EXEC | VM_SHARED)]


def vm_flags_name(flags):
    """vm_flags as smaps prints them: 'rd wr mr mw me ac' (show_smap_vma_flags)."""
    return " ".join(VM_MNEMONICS[b] for b in _MNEMONIC_BITS if flags & b)


def ret_name(value):
    """A kernel return value as a trace shows it: -ENOMEM, 0, or an address in hex."""
    import errno as _errno
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            return "-" + _errno.errorcode.get(-value, str(-value))
        return hex(value) if value >= 4096 else str(value)
    return repr(value)


# -- vm_operations: what kind of object a VMA maps --------------------------
class VmOps:
    """struct vm_operations_struct, reduced to what the model asks of it.

    `name` is the name maps prints for special mappings ("[vdso]");
    `close` is true for mappings whose driver must see them go (such VMAs
    are never removed by a merge); `page_mkwrite` for filesystems that want
    to know when a shared page is first written.
    """

    __slots__ = ("kind", "name", "close", "page_mkwrite", "split_align")

    def __init__(self, kind, name=None, close=False, page_mkwrite=False, split_align=0):
        self.kind, self.name, self.close, self.page_mkwrite = kind, name, close, page_mkwrite
        self.split_align = split_align  # may_split: only at multiples of this (hugetlb)

    def __repr__(self):
        return f"<vm_ops {self.kind}{' ' + self.name if self.name else ''}>"


EXT4_FILE_VM_OPS = VmOps("ext4_file_vm_ops", page_mkwrite=True)
SHMEM_VM_OPS = VmOps("shmem_vm_ops")
SHMEM_ANON_VM_OPS = VmOps("shmem_anon_vm_ops")


HUGETLB_VM_OPS = {hsize: VmOps("hugetlb_vm_ops", close=True, split_align=hsize)
                  for hsize in (2 << 20, 1 << 30)}


def file_vm_ops(vm_file):
    """The vm_ops a filesystem's mmap hook installs for `vm_file`."""
    backing = vm_file.file.backing
    if backing == "disk":
        return EXT4_FILE_VM_OPS
    if backing == "hugetlbfs":
        return HUGETLB_VM_OPS[vm_file.file.hsize]
    return SHMEM_VM_OPS


# -- anon_vma ----------------------------------------------------------------
_anon_vma_ids = itertools.count(1)


class AnonVma:
    """struct anon_vma: the reverse map of a VMA's anonymous pages.

    A private VMA gets one on its first anonymous fault (anon_vma_prepare).
    What matters to the VMA rules is identity: two VMAs with different
    anon_vmas cannot merge, since a page knows only one.  `id` numbers them
    for display.  NOTE: no interval tree of VMAs and no fork hierarchy yet:
    `root` is the anon_vma itself until kernel/fork.py clones chains.
    """

    __slots__ = ("id", "root", "degree")

    def __init__(self):
        self.id = next(_anon_vma_ids)
        self.root = self
        self.degree = 1

    def __repr__(self):
        return f"anon_vma#{self.id}"


# -- the VMA -----------------------------------------------------------------
class VMA:
    """struct vm_area_struct: one mapped range of a process.

    vm_start/vm_end are page aligned, vm_start < vm_end.  vm_pgoff is the
    page offset in vm_file, or for anonymous memory vm_start >> PAGE_SHIFT
    at the time of the mapping, so that adjacent anonymous VMAs have
    contiguous offsets and may merge.  anon_vma_chain lists the anon_vmas
    the VMA is linked to (one, until fork).
    """

    __slots__ = ("vm_mm", "vm_start", "vm_end", "vm_flags", "vm_pgoff", "vm_file", "vm_ops",
                 "anon_vma", "anon_vma_chain", "anon_name", "vm_page_prot", "__weakref__")

    def __init__(self, mm, start, end, flags, pgoff, file=None, vm_ops=None):
        self.vm_mm = mm
        self.vm_start = start
        self.vm_end = end
        self.vm_flags = flags
        self.vm_pgoff = pgoff
        self.vm_file = file
        self.vm_ops = vm_ops
        self.anon_vma = None
        self.anon_vma_chain = []
        self.anon_name = None
        self.vm_page_prot = PROTECTION_MAP[flags & 0xf]

    @property
    def machine(self):
        return self.vm_mm.machine

    def dup(self):
        """vm_area_dup: a copy with the same range, flags and backing (anon_vma chain cloned by the caller)."""
        new = VMA(self.vm_mm, self.vm_start, self.vm_end, self.vm_flags, self.vm_pgoff,
                  self.vm_file, self.vm_ops)
        new.anon_name = self.anon_name
        new.vm_page_prot = self.vm_page_prot
        return new

    # -- derived views ---------------------------------------------------
    @property
    def pages(self):
        """vma_pages: the VMA's length in pages."""
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT

    @property
    def perms(self):
        """The 'rwxp' column of /proc/pid/maps ('s' for VM_MAYSHARE)."""
        f = self.vm_flags
        return ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-") + \
            ("x" if f & VM_EXEC else "-") + ("s" if f & VM_MAYSHARE else "p")

    @property
    def vmflags(self):
        """The VmFlags line of /proc/pid/smaps, without the label: 'rd wr mr mw me ac'."""
        return vm_flags_name(self.vm_flags)

    @property
    def name(self):
        """The name /proc/pid/maps prints for this VMA ('' for plain anonymous memory)."""
        return vma_name(self)

    def is_anonymous(self):
        """vma_is_anonymous: no vm_ops, so faults fill it with anonymous pages."""
        return self.vm_ops is None

    def __repr__(self):
        what = self.vm_file.path if self.vm_file is not None else (
            self.vm_ops.name if self.vm_ops is not None and self.vm_ops.name else "anon")
        return f"<VMA {self.vm_start:#x}-{self.vm_end:#x} {self.perms} {what}>"


class VmaView:
    """A read-only view of a VMA, as p.vmas hands them out.

    It shows the live VMA: after a change it shows the new state, and a VMA
    that a merge or munmap freed keeps its last state, as a stale pointer would.
    """

    __slots__ = ("_vma",)
    _FIELDS = ("vm_start", "vm_end", "vm_flags", "vm_pgoff", "vm_file", "anon_vma", "anon_name",
               "vm_page_prot", "perms", "vmflags", "pages")

    def __init__(self, vma):
        object.__setattr__(self, "_vma", vma)

    def __getattr__(self, name):
        if name in VmaView._FIELDS:
            return getattr(self._vma, name)
        raise AttributeError(name)

    def __setattr__(self, name, value):
        raise AttributeError("VMA views are read-only: change mappings with p.mmap, p.mprotect, ...")

    @property
    def name(self):
        """The name maps prints for this VMA ('' for plain anonymous memory)."""
        return vma_name(self._vma)

    @property
    def start(self):
        return self._vma.vm_start

    @property
    def end(self):
        return self._vma.vm_end

    def is_anonymous(self):
        return self._vma.vm_ops is None

    def __eq__(self, other):
        return isinstance(other, VmaView) and other._vma is self._vma

    def __hash__(self):
        return id(self._vma)

    def __repr__(self):
        return repr(self._vma)


def vma_is_initial_heap(vma):
    """vma_is_initial_heap: the VMA overlaps [start_brk, brk) (maps labels it [heap])."""
    mm = vma.vm_mm
    return vma.vm_start < mm.brk and vma.vm_end > mm.start_brk


def vma_is_initial_stack(vma):
    """vma_is_initial_stack: the VMA holds mm->start_stack (maps labels it [stack])."""
    mm = vma.vm_mm
    return vma.vm_start <= mm.start_stack <= vma.vm_end


def vma_name(vma):
    """get_vma_name (fs/proc/task_mmu.c): the path or [label] maps prints, or ''."""
    if vma.vm_file is not None:
        if vma.anon_name is not None:
            return f"[anon_shmem:{vma.anon_name}]"
        return vma.vm_file.path
    if vma.vm_ops is not None and vma.vm_ops.name:
        return vma.vm_ops.name
    if vma_is_initial_heap(vma):
        return "[heap]"
    if vma_is_initial_stack(vma):
        return "[stack]"
    if vma.anon_name is not None:
        return f"[anon:{vma.anon_name}]"
    return ""


# -- the address space ---------------------------------------------------------
class MM:
    """struct mm_struct: a process's VMAs and the numbers that describe its layout.

    Layout: mmap_base (top of the top-down mmap area), start_brk/brk (the
    heap), start_stack, start_code/end_code, start_data/end_data.
    Counters in pages, as /proc/pid/status prints them: total_vm (VmSize),
    locked_vm (VmLck), data_vm (VmData), exec_vm (VmExe+VmLib), stack_vm (VmStk).

    The VMA set: positions i = 0 .. map_count-1 count VMAs in address order
    (mm.at(i), mm.index(vma)).  NOTE: physically the list runs the other way,
    highest address first, with the negated vm_end of each VMA beside it for
    bisect.  New mappings go top-down below everything mapped before, so
    they land near the end of the list, where inserting costs no memmove.
    """

    def __init__(self, machine, owner=None):
        self.machine = machine
        self.owner = owner                  # the Process (for rlimits and capabilities)
        self._rv = []                       # the VMAs, highest address first
        self._nend = []                     # -vm_end of each, so increasing
        self._holes_lo = [0]                # free gaps of at least a page, in address order
        self._holes_hi = [TOP]
        self._known_unmerged = set()        # boundaries Linux leaves unmerged (see check_mm)
        self.mmap_base = 0
        self.mmap_legacy_base = 0
        self.task_size = TASK_SIZE
        self.topdown = True                 # MMF_TOPDOWN
        self.start_code = self.end_code = 0
        self.start_data = self.end_data = 0
        self.start_brk = self.brk = 0
        self.start_stack = 0
        self.arg_start = self.arg_end = self.env_start = self.env_end = 0
        self.def_flags = 0                  # VM_LOCKED after mlockall(MCL_FUTURE)
        self.total_vm = self.locked_vm = self.pinned_vm = 0
        self.locked_vm_orphaned = 0         # locked_vm mremap(MREMAP_DONTUNMAP) leaves with no VMA
        self.data_vm = self.exec_vm = self.stack_vm = 0
        self.pgd = None                     # the PGD's pfn, once mm/memory.py gives the mm page tables
        self.pgtables_bytes = 0
        self.is_init_mm = False

    # -- lookups (O(log n), as the maple tree's walks) -----------------------
    @property
    def map_count(self):
        """mm->map_count: the number of VMAs."""
        return len(self._rv)

    def __len__(self):
        return len(self._rv)

    def __iter__(self):
        """for_each_vma: the VMAs in address order (a snapshot)."""
        return iter(self._rv[::-1])

    def vma_list(self):
        """The VMAs in address order, as a new list."""
        return self._rv[::-1]

    def at(self, i):
        """The VMA at position i in address order (0 is the lowest)."""
        n = len(self._rv)
        if not 0 <= i < n:
            raise IndexError(i)
        return self._rv[n - 1 - i]

    def index(self, vma):
        """The position of vma in address order; InvariantError if it is not in the tree."""
        p = bisect_left(self._nend, -vma.vm_end)
        rv = self._rv
        if p == len(rv) or rv[p] is not vma:
            raise InvariantError(f"mm: {vma!r} is not in the VMA tree")
        return len(rv) - 1 - p

    def in_tree(self, vma):
        """Is vma one of this mm's VMAs (not freed by a merge or munmap)?"""
        p = bisect_left(self._nend, -vma.vm_end)
        return p < len(self._rv) and self._rv[p] is vma

    def find_vma(self, addr):
        """find_vma: the first VMA with vm_end > addr (it may start above addr), or None."""
        p = bisect_left(self._nend, -addr) - 1
        return self._rv[p] if p >= 0 else None

    def vma_lookup(self, addr):
        """vma_lookup: the VMA containing addr, or None."""
        p = bisect_left(self._nend, -addr) - 1
        if p >= 0:
            vma = self._rv[p]
            if vma.vm_start <= addr:
                return vma
        return None

    def find_vma_prev(self, addr):
        """find_vma_prev: (find_vma(addr), the VMA before it or None)."""
        rv = self._rv
        p = bisect_left(self._nend, -addr) - 1
        return (rv[p] if p >= 0 else None), (rv[p + 1] if p + 1 < len(rv) else None)

    def find_vma_intersection(self, start, end):
        """find_vma_intersection: the first VMA overlapping [start, end), or None."""
        p = bisect_left(self._nend, -start) - 1
        if p >= 0:
            vma = self._rv[p]
            if vma.vm_start < end:
                return vma
        return None

    def vma_next(self, vma):
        """The VMA after vma in address order, or None."""
        p = bisect_left(self._nend, -vma.vm_end) - 1
        return self._rv[p] if p >= 0 else None

    def vma_prev(self, vma):
        """The VMA before vma in address order, or None."""
        p = bisect_left(self._nend, -vma.vm_end) + 1
        return self._rv[p] if p < len(self._rv) else None

    def vmas_in(self, start, end):
        """The VMAs overlapping [start, end), in address order (for_each_vma_range)."""
        rv = self._rv
        p = bisect_left(self._nend, -start) - 1
        out = []
        while p >= 0 and rv[p].vm_start < end:
            out.append(rv[p])
            p -= 1
        return out

    # -- stores (vma_iter_store and friends) ----------------------------------
    def _store(self, i, j, new, same_extent=False):
        """vma_iter_store: replace the VMAs at positions [i, j) by `new` (in address order, final ranges).

        same_extent: the new VMAs cover exactly what the old ones did (a
        split), so the free gaps need no update.
        """
        rv = self._rv
        n = len(rv)
        lo = rv[n - i].vm_end if i > 0 else 0
        hi = rv[n - j - 1].vm_start if j < n else TOP
        if not new:
            del rv[n - j:n - i]
            del self._nend[n - j:n - i]
        elif i == j and len(new) == 1:
            v = new[0]
            rv.insert(n - i, v)
            self._nend.insert(n - i, -v.vm_end)
        else:
            rnew = new[::-1]
            rv[n - j:n - i] = rnew
            self._nend[n - j:n - i] = [-v.vm_end for v in rnew]
        if same_extent:
            return
        self._rehole(lo, hi, new)
        if self._known_unmerged:
            self._prune_unmerged(lo, hi)

    def _rehole(self, lo, hi, new):
        """Recompute the free gaps between address lo and hi, where the VMAs `new` now lie."""
        hl, hh = self._holes_lo, self._holes_hi
        x = bisect_left(hl, lo)
        y = x
        n = len(hl)
        while y < n and hl[y] < hi:     # usually one hole, or none, lies in the window
            y += 1
        new_lo, new_hi = [], []
        prev_end = lo
        for v in new:
            if v.vm_start > prev_end:
                new_lo.append(prev_end)
                new_hi.append(v.vm_start)
            prev_end = v.vm_end
        if hi > prev_end:
            new_lo.append(prev_end)
            new_hi.append(hi)
        hl[x:y] = new_lo
        hh[x:y] = new_hi

    def _is_boundary(self, addr):
        """Does one VMA end at addr and the next start there?"""
        below = self.find_vma(addr - 1) if addr else None
        return below is not None and below.vm_end == addr and \
            (self.vma_next(below) or below).vm_start == addr

    def _prune_unmerged(self, lo, hi):
        """Forget exempt boundaries in [lo, hi] that a store has removed."""
        for b in [b for b in self._known_unmerged if lo <= b <= hi and not self._is_boundary(b)]:
            self._known_unmerged.discard(b)

    def leave_unmerged(self, addr):
        """Record that Linux leaves the VMAs meeting at addr unmerged (see check_mm)."""
        if self._is_boundary(addr):
            self._known_unmerged.add(addr)

    def insert_vma(self, vma):
        """vma_iter_store_new: add a VMA where the tree has a gap (map_count grows by one)."""
        p = bisect_left(self._nend, -vma.vm_start)      # the first VMA below it, physically
        if p > 0 and self._rv[p - 1].vm_start < vma.vm_end:
            raise InvariantError(f"vma_iter_store_new: {vma!r} overlaps {self._rv[p - 1]!r}")
        i = len(self._rv) - p
        self._store(i, i, [vma])

    def erase_vmas(self, vmas):
        """vma_iter_clear: take consecutive VMAs (in address order) out of the tree."""
        if vmas:
            i = self.index(vmas[0])
            self._store(i, i + len(vmas), [])

    # -- free space (vma_iter_area_highest / vma_iter_area_lowest) -------------
    def area_highest(self, low, high, size):
        """mas_empty_area_rev: the highest free range within [low, high) of at least size bytes.

        Returns (lo, hi), the free range clipped to [low, high), or None.
        """
        hl, hh = self._holes_lo, self._holes_hi
        k = bisect_left(hl, high) - 1
        while k >= 0:
            lo = hl[k]
            top = hh[k]
            if top > high:
                top = high
            if lo < low:
                if top - low >= size:
                    return low, top
                return None
            if top - lo >= size:
                return lo, top
            k -= 1
        return None

    def area_lowest(self, low, high, size):
        """mas_empty_area: the lowest free range within [low, high) of at least size bytes, or None."""
        hl, hh = self._holes_lo, self._holes_hi
        k = max(bisect_right(hl, low) - 1, 0)
        n = len(hl)
        while k < n:
            lo = hl[k] if hl[k] > low else low
            top = hh[k] if hh[k] < high else high
            if top - lo >= size:
                return lo, top
            if hh[k] >= high:
                return None
            k += 1
        return None

    def holes(self):
        """The free gaps of the address space, as (lo, hi) pairs in address order."""
        return list(zip(self._holes_lo, self._holes_hi))

    def __repr__(self):
        who = f"pid {self.owner.pid}" if self.owner is not None else "no owner"
        return f"<mm {who}: {len(self._rv)} VMAs>"


# -- tunables and limits -----------------------------------------------------
def rlimit(mm, resource):
    """rlimit: the soft limit of the mm's owner (RLIM_INFINITY without an owner)."""
    owner = mm.owner
    return owner.rlim[resource][0] if owner is not None else ULONG_MAX


def rlimit_max(mm, resource):
    owner = mm.owner
    return owner.rlim[resource][1] if owner is not None else ULONG_MAX


def capable(mm, cap):
    """capable: root has every capability; nobody else has any (NOTE: no capability sets)."""
    owner = mm.owner
    return owner is not None and owner.uid == 0


def is_exec_mapping(flags):
    return flags & (VM_EXEC | VM_WRITE | VM_STACK) == VM_EXEC


def is_stack_mapping(flags):
    return flags & VM_STACK == VM_STACK


def is_data_mapping(flags):
    return flags & (VM_WRITE | VM_SHARED | VM_STACK) == VM_WRITE


def vm_stat_account(mm, flags, npages):
    """vm_stat_account (mm/mmap.c): count npages in total_vm and in exec, stack or data."""
    mm.total_vm += npages
    if is_exec_mapping(flags):
        mm.exec_vm += npages
    elif is_stack_mapping(flags):
        mm.stack_vm += npages
    elif is_data_mapping(flags):
        mm.data_vm += npages


def may_expand_vm(mm, flags, npages):
    """may_expand_vm (mm/mmap.c): would npages more stay within RLIMIT_AS and, for data, RLIMIT_DATA?"""
    rlim = mm.owner.rlim if mm.owner is not None else None
    if rlim is None:
        return True
    if mm.total_vm + npages > rlim[RLIMIT_AS][0] >> PAGE_SHIFT:
        return False
    if flags & (VM_WRITE | VM_SHARED | VM_STACK) == VM_WRITE and \
            mm.data_vm + npages > rlim[RLIMIT_DATA][0] >> PAGE_SHIFT:            # is_data_mapping
        # Valgrind sets RLIMIT_DATA to 0 and relies on the hard limit.
        if rlimit(mm, RLIMIT_DATA) == 0 and \
                mm.data_vm + npages <= rlimit_max(mm, RLIMIT_DATA) >> PAGE_SHIFT:
            return True
        note(mm, "may_expand_vm: VmData would exceed RLIMIT_DATA")
        return False
    return True


def vm_acct_memory(m, pages):
    """vm_acct_memory: add to the commit count (Committed_AS in /proc/meminfo)."""
    m.committed_pages += pages


def vm_unacct_memory(m, pages):
    """vm_unacct_memory: give back commit charge."""
    m.committed_pages -= pages


def vm_commit_limit(m):
    """vm_commit_limit: CommitLimit, in pages (no swap, no hugetlb pages)."""
    if m.overcommit_kbytes:
        return m.overcommit_kbytes >> (PAGE_SHIFT - 10)
    return m.totalram_pages * m.overcommit_ratio // 100


def vm_enough_memory(mm, pages):
    """__vm_enough_memory: charge `pages` to the commit count, or refuse with ENOMEM.

    vm.overcommit_memory picks the policy: 0 (the default heuristic)
    refuses only a single request larger than RAM plus swap; 1 never
    refuses; 2 keeps the total under CommitLimit less a reserve.
    Returns 0 or -ENOMEM.
    """
    m = mm.machine
    policy = m.overcommit_memory
    if policy == 1:
        vm_acct_memory(m, pages)
        return 0
    if policy == 0:
        if pages > m.totalram_pages:            # + total_swap_pages, which is 0 here
            note(mm, "vm_enough_memory: %d pages exceed RAM, refused", pages)
            return -ENOMEM
        vm_acct_memory(m, pages)
        return 0
    allowed = vm_commit_limit(m)
    if not capable(mm, "CAP_SYS_ADMIN"):
        allowed -= m.admin_reserve_kbytes >> (PAGE_SHIFT - 10)
    allowed -= min(mm.total_vm // 32, m.user_reserve_kbytes >> (PAGE_SHIFT - 10))
    if m.committed_pages + pages < allowed:
        vm_acct_memory(m, pages)
        return 0
    note(mm, "vm_enough_memory: Committed_AS would pass CommitLimit, refused")
    return -ENOMEM


# -- calls into page tables (mm/memory.py, mm/gup.py) ------------------------------
_hook_cache = {}


def _hook(module, name):
    """The function `name` of mmlab.mm.<module>, reached by name because that file imports this one."""
    key = (module, name)
    if key not in _hook_cache:
        _hook_cache[key] = getattr(importlib.import_module(f"mmlab.mm.{module}"), name)
    return _hook_cache[key]


def unmap_region(mm, vmas, start, end, floor, ceiling):
    """unmap_region / vms_clear_ptes: zap the ptes of `vmas` in [start, end) and free the page
    tables no mapping between floor and ceiling uses any more.

    A process takes its page tables on its first fault, so before that
    there is nothing to zap; after, memory.unmap_region does it.
    """
    if mm.pgd is None:
        return
    _hook("memory", "unmap_region")(mm, vmas, start, end, floor, ceiling)


def change_protection(vma, start, end):
    """change_protection (mm/mprotect.c): rewrite the ptes of [start, end) to vma->vm_page_prot.

    A process takes its page tables on its first fault, so before that
    there is nothing to rewrite; after, memory.change_protection does it.
    """
    if vma.vm_mm.pgd is None:
        return
    _hook("memory", "change_protection")(vma, start, end)


def gup_vma_allows(vma, write, force):
    """check_vma_flags (mm/gup.c): may get_user_pages touch this VMA, for writing or reading?"""
    f = vma.vm_flags
    if f & (VM_IO | VM_PFNMAP):
        return False
    if write:
        if not f & VM_WRITE:
            return force and bool(f & VM_MAYWRITE) and f & (VM_SHARED | VM_MAYWRITE) == VM_MAYWRITE
        return True
    if not f & VM_READ:
        return force and bool(f & VM_MAYREAD)
    return True


def populate_vma_page_range(vma, start, end):
    """populate_vma_page_range (mm/gup.c): fault in [start, end) of one VMA; 0 or -errno.

    The work is mm/gup.py's; it is reached by name because gup.py imports
    this file.
    """
    return _hook("gup", "populate_vma_page_range")(vma, start, end)


def mm_populate(mm, start, length, ignore_errors=True):
    """__mm_populate (mm/gup.c): fault in every VMA of [start, start+len) (mm/gup.py does it).

    MAP_POPULATE, MAP_LOCKED, mlockall and a VM_LOCKED brk ignore errors;
    mlock does not, and returns the first (-EFAULT for a PROT_NONE VMA).
    """
    return _hook("gup", "mm_populate")(mm, start, length, ignore_errors)


# -- anon_vma sharing (mm/rmap.c, mm/vma.c) -------------------------------------------
def anon_vma_clone(dst, src):
    """anon_vma_clone: link dst to every anon_vma src is linked to."""
    dst.anon_vma_chain = list(src.anon_vma_chain)


def unlink_anon_vmas(vma):
    """unlink_anon_vmas: drop the VMA's links to its anon_vmas."""
    vma.anon_vma_chain = []


def anon_vma_compatible(a, b):
    """anon_vma_compatible: a and b adjacent, same file, flags differing at most in rwx, contiguous pgoff."""
    return (a.vm_end == b.vm_start and a.vm_file is b.vm_file
            and not ((a.vm_flags ^ b.vm_flags) & ~(VM_ACCESS_FLAGS | VM_SOFTDIRTY))
            and b.vm_pgoff == a.vm_pgoff + ((b.vm_start - a.vm_start) >> PAGE_SHIFT))


def reusable_anon_vma(old, a, b):
    """reusable_anon_vma: old's anon_vma, if a and b are compatible and old was never forked."""
    if anon_vma_compatible(a, b):
        if old.anon_vma is not None and len(old.anon_vma_chain) == 1:
            return old.anon_vma
    return None


def find_mergeable_anon_vma(vma):
    """find_mergeable_anon_vma: a neighbour's anon_vma this VMA may share (next first, then prev).

    Sharing keeps a later mprotect able to merge the two VMAs back.
    """
    mm = vma.vm_mm
    nxt = mm.vma_next(vma)
    if nxt is not None:
        av = reusable_anon_vma(nxt, vma, nxt)
        if av is not None:
            return av
    prv = mm.vma_prev(vma)
    if prv is not None:
        return reusable_anon_vma(prv, prv, vma)
    return None


@traced
def anon_vma_prepare(vma):
    """anon_vma_prepare: give a private VMA an anon_vma before its first anonymous page.

    Reuses a compatible neighbour's anon_vma (find_mergeable_anon_vma) or
    makes a new one.  Returns the anon_vma.  Called by the fault path.
    """
    if vma.anon_vma is not None:
        return vma.anon_vma
    av = find_mergeable_anon_vma(vma)
    if av is None:
        av = AnonVma()
        note(vma, "anon_vma_prepare: new %r", av)
    else:
        note(vma, "anon_vma_prepare: share %r with a neighbour", av)
    vma.anon_vma = av
    vma.anon_vma_chain = [av]
    return av


# -- merging (mm/vma.c) --------------------------------------------------------
class VmaMergeStruct:
    """struct vma_merge_struct (vmg): a proposed range [start, end) with its attributes.

    For a new mapping, `middle` is None and prev/next surround the gap; for a
    change to an existing VMA, `middle` is that VMA.  The merge functions
    rewrite start/end/pgoff to the merged range and set `target` to the VMA
    that survives.
    """

    # What the merge decides, until it does (class defaults: a vmg is made on every mmap).
    target = None
    just_expand = False
    state = VMA_MERGE_START
    remove_middle = remove_next = False
    adjust_middle_start = adjust_next_start = False

    def __init__(self, mm, start, end, flags, pgoff, file=None, prev=None, middle=None, next=None,
                 anon_vma=None, anon_name=None):
        self.mm = mm
        self.start, self.end, self.flags, self.pgoff, self.file = start, end, flags, pgoff, file
        self.prev, self.middle, self.next = prev, middle, next
        self.anon_vma = anon_vma
        self.anon_name = anon_name

    @property
    def machine(self):
        return self.mm.machine

    def __repr__(self):
        return f"vmg[{self.start:#x}-{self.end:#x} {vm_flags_name(self.flags)}]"


def vma_had_uncowed_parents(vma):
    """vma_had_uncowed_parents: linked to more than one anon_vma (it came through fork)."""
    return vma is not None and vma.anon_vma is not None and len(vma.anon_vma_chain) != 1


def is_mergeable_vma(vmg, merge_next):
    """is_mergeable_vma: same flags (but soft-dirty), same struct file, same anon name."""
    vma = vmg.next if merge_next else vmg.prev
    return (not ((vma.vm_flags ^ vmg.flags) & ~VM_SOFTDIRTY) and vma.vm_file is vmg.file
            and vma.anon_name == vmg.anon_name)


def is_mergeable_anon_vma(vmg, merge_next):
    """is_mergeable_anon_vma: may the range's anon_vma and the neighbour's live in one VMA?

    1. only the range has one: it will be shared into the neighbour;
    2. only the neighbour has one: the range uses it;
    3. both: they must already be the same anon_vma.
    A VMA inherited through fork (several anon_vmas) never takes part in 1 or 2.
    """
    tgt = vmg.next if merge_next else vmg.prev
    tgt_anon = tgt.anon_vma
    src_anon = vmg.anon_vma
    if tgt_anon is None and src_anon is not None:
        return not vma_had_uncowed_parents(vmg.middle)
    if tgt_anon is not None and src_anon is None:
        return not vma_had_uncowed_parents(tgt)
    return src_anon is tgt_anon


def can_vma_merge_before(vmg):
    """can_vma_merge_before: may the range join the start of vmg->next (whose pgoff must follow)?"""
    if is_mergeable_vma(vmg, True) and is_mergeable_anon_vma(vmg, True):
        return vmg.next.vm_pgoff == vmg.pgoff + ((vmg.end - vmg.start) >> PAGE_SHIFT)
    return False


def can_vma_merge_after(vmg):
    """can_vma_merge_after: may the range join the end of vmg->prev (whose pgoff it must follow)?"""
    prev = vmg.prev
    if is_mergeable_vma(vmg, False) and is_mergeable_anon_vma(vmg, False):
        return prev.vm_pgoff + ((prev.vm_end - prev.vm_start) >> PAGE_SHIFT) == vmg.pgoff
    return False


def can_vma_merge_left(vmg):
    """can_vma_merge_left: prev ends where the range starts and may absorb it."""
    return vmg.prev is not None and vmg.prev.vm_end == vmg.start and can_vma_merge_after(vmg)


def can_vma_merge_right(vmg, can_merge_left):
    """can_vma_merge_right: next starts where the range ends and may absorb it.

    If prev merges too, prev's and next's anon_vmas must also agree with each other.
    """
    nxt = vmg.next
    if nxt is None or vmg.end != nxt.vm_start or not can_vma_merge_before(vmg):
        return False
    if not can_merge_left:
        return True
    prev = vmg.prev
    return prev.anon_vma is None or nxt.anon_vma is None or prev.anon_vma is nxt.anon_vma


def can_merge_remove_vma(vma):
    """can_merge_remove_vma: a merge may free this VMA (its driver needs no close())."""
    return vma.vm_ops is None or not vma.vm_ops.close


def dup_anon_vma(dst, src):
    """dup_anon_vma: when src is merged into dst, dst takes src's anon_vma if it has none."""
    if src.anon_vma is not None and dst.anon_vma is None:
        dst.anon_vma = src.anon_vma
        anon_vma_clone(dst, src)


def remove_vma(vma):
    """remove_vma: release what a freed VMA held (its file reference)."""
    if vma.vm_file is not None:
        _fs.fput(vma.vm_file)
    unlink_anon_vmas(vma)


def commit_merge(vmg):
    """commit_merge: apply a merge decided by vmg: set the target's range, adjust or free the others.

    The VMAs involved are consecutive in the tree; they are stored back in
    one step, as the kernel overwrites the maple tree range in one store.
    """
    mm = vmg.mm
    # prev <= middle <= next in address order, consecutive in the tree; prev may be
    # middle (a change inside a VMA) and middle may be prev or next (a new range).
    window = []
    for v in (vmg.prev, vmg.middle, vmg.next):
        if v is not None and (not window or v is not window[-1]):
            window.append(v)
    i = mm.index(window[0])
    j = i + len(window)
    if vmg.adjust_next_start:
        vma = vmg.middle                # middle shrinks, next grows down to meet it
    else:
        vma = vmg.target
    removed = []
    if vmg.remove_middle:
        removed.append(vmg.middle)
    if vmg.remove_next:
        removed.append(vmg.next)
    vma.vm_start, vma.vm_end, vma.vm_pgoff = vmg.start, vmg.end, vmg.pgoff
    if vmg.adjust_middle_start:
        adj = vmg.middle
        adj.vm_pgoff += (vmg.end - adj.vm_start) >> PAGE_SHIFT
        adj.vm_start = vmg.end
    elif vmg.adjust_next_start:
        adj = vmg.next
        adj.vm_pgoff -= (adj.vm_start - vmg.end) >> PAGE_SHIFT
        adj.vm_start = vmg.end
    kept = [v for v in window if v is not vmg.middle or not vmg.remove_middle]
    if vmg.remove_next:
        kept = [v for v in kept if v is not vmg.next]
    mm._store(i, j, kept)
    for r in removed:
        remove_vma(r)


@traced(name="vma_expand")
def vma_expand(vmg):
    """vma_expand: grow vmg->middle to [vmg->start, vmg->end), swallowing vmg->next if it ends there.

    Returns 0 (the model never runs out of memory here).
    """
    middle, nxt = vmg.middle, vmg.next
    if nxt is not None and nxt is not middle and vmg.end == nxt.vm_end:
        vmg.remove_next = True
        dup_anon_vma(middle, nxt)
        note(vmg, "vma_expand: %r swallows next %r", middle, nxt)
    vmg.target = middle
    commit_merge(vmg)
    return 0


@traced(result=lambda v: repr(v))
def vma_merge_new_range(vmg):
    """vma_merge_new_range: merge a new range with the VMA before it, after it, or both.

    Cases (prev and next are the VMAs around the gap):
      - prev ends at start and is compatible: extend prev up;
      - next starts at end and is compatible: extend next down;
      - both (and prev and next agree on anon_vma): extend prev over next, free next.
    Returns the VMA that now covers the range, or None (no merge possible).
    """
    prev, nxt = vmg.prev, vmg.next
    end = vmg.end
    vmg.state = VMA_MERGE_NOMERGE
    if vmg.flags & VM_SPECIAL or (prev is None and nxt is None):
        return None
    can_left = can_vma_merge_left(vmg)
    can_right = not vmg.just_expand and can_vma_merge_right(vmg, can_left)
    if can_right:
        vmg.end = nxt.vm_end
        vmg.middle = nxt
    if can_left:
        vmg.start = prev.vm_start
        vmg.middle = prev
        vmg.pgoff = prev.vm_pgoff
        if can_right and not can_merge_remove_vma(nxt):
            vmg.end = end
    if vmg.middle is not None:
        note(vmg, "vma_merge: %s", "extended prev over next" if can_left and can_right else
             "extended prev" if can_left else "extended next")
        vma_expand(vmg)
        vmg.state = VMA_MERGE_SUCCESS
        return vmg.middle
    note(vmg, "vma_merge: no compatible neighbour")
    return None


@traced(result=lambda v: repr(v))
def vma_merge_existing_range(vmg):
    """vma_merge_existing_range: after [start, end) of vmg->middle changes, merge it with a neighbour.

    Only a range touching one end of middle can merge (with prev on the
    left, with next on the right); a range strictly inside middle cannot.
    Cases: merge both (prev grows over middle and next), merge left (prev
    grows, middle shrinks or goes), merge right (next grows down, middle
    shrinks or goes).  Returns the surviving VMA, or None.
    """
    mm = vmg.mm
    middle, prev = vmg.middle, vmg.prev
    start, end = vmg.start, vmg.end
    left_side = start == middle.vm_start
    right_side = end == middle.vm_end
    vmg.state = VMA_MERGE_NOMERGE
    if vmg.flags & VM_SPECIAL or (not left_side and not right_side):
        return None
    merge_left = can_vma_merge_left(vmg) if left_side else False
    nxt = None
    if right_side:
        nxt = vmg.next = mm.vma_next(middle)
        merge_right = can_vma_merge_right(vmg, merge_left)
    else:
        merge_right = False
    if not merge_left and not merge_right:
        note(vmg, "vma_merge: no compatible neighbour")
        return None
    merge_both = merge_left and merge_right
    vmg.remove_middle = left_side and right_side
    if vmg.remove_middle and not can_merge_remove_vma(middle):
        return None
    vmg.remove_next = merge_both
    if vmg.remove_next and not can_merge_remove_vma(nxt):
        vmg.remove_next = merge_right = merge_both = False
    if merge_right:
        vmg.target = nxt
    if merge_left:
        vmg.target = prev
    if merge_both:
        vmg.start, vmg.end, vmg.pgoff = prev.vm_start, nxt.vm_end, prev.vm_pgoff
        dup_anon_vma(prev, nxt if nxt.anon_vma is not None else middle)
        note(vmg, "vma_merge: prev absorbs middle and next")
    elif merge_left:
        vmg.start, vmg.pgoff = prev.vm_start, prev.vm_pgoff
        if not vmg.remove_middle:
            vmg.adjust_middle_start = True
        dup_anon_vma(prev, middle)
        note(vmg, "vma_merge: prev absorbs %s middle", "all of" if vmg.remove_middle else "the start of")
    else:
        pglen = (vmg.end - vmg.start) >> PAGE_SHIFT
        if vmg.remove_middle:
            vmg.end = nxt.vm_end
            vmg.pgoff = nxt.vm_pgoff - pglen
        else:
            vmg.adjust_next_start = True
            vmg.start, vmg.end, vmg.pgoff = middle.vm_start, start, middle.vm_pgoff
        dup_anon_vma(nxt, middle)
        note(vmg, "vma_merge: next absorbs %s middle", "all of" if vmg.remove_middle else "the end of")
    commit_merge(vmg)
    vmg.state = VMA_MERGE_SUCCESS
    return vmg.target


# -- splitting -------------------------------------------------------------------
@traced(name="__split_vma", result=ret_name)
def split_vma_nocheck(vma, addr, new_below):
    """__split_vma: cut vma at addr; the new VMA is the part below addr if new_below, else above.

    The original VMA object keeps the other part.  Returns the new VMA, or
    -EINVAL where the mapping cannot be cut (hugetlb pages, off a huge page
    boundary).  Bypasses the max_map_count check (callers that may exceed
    it use split_vma).
    """
    mm = vma.vm_mm
    ops = vma.vm_ops
    if ops is not None and ops.split_align and addr & (ops.split_align - 1):
        note(vma, "__split_vma: %r cannot be split at %#x", vma, addr)
        return -EINVAL
    if mm.pgd is not None:
        # vma_adjust_trans_huge: a THP mapped across the cut is split first (mm/memory.py).
        _hook("memory", "vma_adjust_trans_huge")(mm, addr)
    new = vma.dup()
    if new_below:
        new.vm_end = addr
    else:
        new.vm_start = addr
        new.vm_pgoff += (addr - vma.vm_start) >> PAGE_SHIFT
    anon_vma_clone(new, vma)
    new.anon_vma = vma.anon_vma
    if new.vm_file is not None:
        _fs.get_file(new.vm_file)
    i = mm.index(vma)
    if new_below:
        vma.vm_pgoff += (addr - new.vm_start) >> PAGE_SHIFT
        vma.vm_start = addr
        mm._store(i, i + 1, [new, vma], same_extent=True)
    else:
        vma.vm_end = addr
        mm._store(i, i + 1, [vma, new], same_extent=True)
    return new


@traced(result=ret_name)
def split_vma(vma, addr, new_below):
    """split_vma: __split_vma, refused with -ENOMEM when the mm already has max_map_count VMAs."""
    mm = vma.vm_mm
    if mm.map_count >= mm.machine.max_map_count:
        note(vma, "split_vma: map_count %d at vm.max_map_count", mm.map_count)
        return -ENOMEM
    return split_vma_nocheck(vma, addr, new_below)


@traced(result=ret_name)
def vma_modify(vmg):
    """vma_modify: prepare [start, end) of vmg->middle for a change of attributes.

    First try to merge it with a neighbour; failing that, split off the
    parts of middle outside the range.  Returns the VMA that now covers
    exactly the range (merged or split), or -errno if a split was refused
    (an earlier split is then kept, as in Linux).
    """
    vma = vmg.middle
    start, end = vmg.start, vmg.end
    merged = vma_merge_existing_range(vmg)
    if merged is not None:
        return merged
    if vma.vm_start < start:
        err = split_vma(vma, start, 1)
        if isinstance(err, int):
            return err
    if vma.vm_end > end:
        err = split_vma(vma, end, 0)
        if isinstance(err, int):
            vma.vm_mm.leave_unmerged(start)     # the split at start stays, between two alike VMAs
            return err
    return vma


def vma_modify_flags(mm, prev, vma, start, end, new_flags, anon_name=False):
    """vma_modify_flags (and _name): vma_modify for a change of vm_flags (and anon name)."""
    vmg = VmaMergeStruct(mm, start, end, new_flags,
                         vma.vm_pgoff + ((start - vma.vm_start) >> PAGE_SHIFT),
                         vma.vm_file, prev=prev, middle=vma, anon_vma=vma.anon_vma,
                         anon_name=vma.anon_name if anon_name is False else anon_name)
    return vma_modify(vmg)


# -- unmapping ----------------------------------------------------------------------
class VmaMunmap:
    """struct vma_munmap_struct: the VMAs gathered for removal and what they were counted as."""

    prev = next = None
    nr_pages = locked_vm = nr_accounted = 0
    exec_vm = stack_vm = data_vm = 0
    clear_ptes = False

    def __init__(self, mm, start, end):
        self.mm, self.start, self.end = mm, start, end
        self.vmas = []

    @property
    def machine(self):
        return self.mm.machine


def vms_gather_munmap_vmas(vms, vma):
    """vms_gather_munmap_vmas: split the VMAs at the range's ends and list those inside it.

    The first VMA (vma) is split at start only if map_count stays within
    vm.max_map_count (-ENOMEM otherwise, nothing changed); the last one is
    split at end without the check, letting map_count pass the limit for a
    moment, as Linux does.  Returns 0 or -errno.
    """
    mm = vms.mm
    if vms.start > vma.vm_start:
        if vms.end < vma.vm_end and mm.map_count >= mm.machine.max_map_count:
            note(vms, "munmap: a split would pass vm.max_map_count")
            return -ENOMEM
        err = split_vma_nocheck(vma, vms.start, 1)
        if isinstance(err, int):
            return err
    vms.prev = mm.vma_prev(vma)
    nxt = vma
    while nxt is not None and nxt.vm_start < vms.end:
        if nxt.vm_end > vms.end:
            err = split_vma_nocheck(nxt, vms.end, 0)
            if isinstance(err, int):
                return err          # the split at start, if any, stays
        n = (nxt.vm_end - nxt.vm_start) >> PAGE_SHIFT
        vms.vmas.append(nxt)
        vms.nr_pages += n
        f = nxt.vm_flags
        if f & VM_LOCKED:
            vms.locked_vm += n
        if f & VM_ACCOUNT:
            vms.nr_accounted += n
        if f & (VM_EXEC | VM_WRITE | VM_STACK) == VM_EXEC:          # is_exec_mapping
            vms.exec_vm += n
        elif f & VM_STACK:                                          # is_stack_mapping
            vms.stack_vm += n
        elif f & (VM_WRITE | VM_SHARED) == VM_WRITE:                # is_data_mapping
            vms.data_vm += n
        nxt = mm.vma_next(nxt)
    vms.next = nxt
    vms.clear_ptes = True
    return 0


def vms_clear_ptes(vms):
    """vms_clear_ptes: zap the gathered VMAs' ptes and the page tables only they used."""
    if not vms.clear_ptes:
        return
    if vms.mm.pgd is None:              # no page tables (yet): nothing to zap
        vms.clear_ptes = False
        return
    floor = vms.prev.vm_end if vms.prev is not None else 0
    ceiling = vms.next.vm_start if vms.next is not None else TOP
    unmap_region(vms.mm, vms.vmas, vms.start, vms.end, floor, ceiling)
    vms.clear_ptes = False


def vms_complete_munmap_vmas(vms):
    """vms_complete_munmap_vmas: uncount the removed VMAs, zap their ptes, free them."""
    mm = vms.mm
    mm.locked_vm -= vms.locked_vm
    if not vms.nr_pages:
        return
    vms_clear_ptes(vms)
    mm.total_vm -= vms.nr_pages
    mm.exec_vm -= vms.exec_vm
    mm.stack_vm -= vms.stack_vm
    mm.data_vm -= vms.data_vm
    for vma in vms.vmas:
        if vma.vm_file is not None or vma.anon_vma_chain:
            remove_vma(vma)
    mm.machine.committed_pages -= vms.nr_accounted      # vm_unacct_memory


def do_vmi_align_munmap(mm, vma, start, end):
    """do_vmi_align_munmap: unmap the page-aligned [start, end), whose first VMA is vma.

    Returns 0 or -ENOMEM (a split refused at vm.max_map_count).
    """
    vms = VmaMunmap(mm, start, end)
    err = vms_gather_munmap_vmas(vms, vma)
    if err:
        return err
    mm.erase_vmas(vms.vmas)
    note(mm, "munmap: removed %d VMA(s), %d pages", len(vms.vmas), vms.nr_pages)
    vms_complete_munmap_vmas(vms)
    return 0


@traced(result=ret_name)
def do_vmi_munmap(mm, start, length):
    """do_vmi_munmap: unmap [start, start+len) (len rounded up to pages).

    Returns 0, or -EINVAL (start not page aligned, range beyond TASK_SIZE,
    len 0) or -ENOMEM (a split would pass vm.max_map_count).  Unmapping a
    range with nothing mapped in it succeeds.
    """
    if start & (PAGE_SIZE - 1) or start > TASK_SIZE or length > TASK_SIZE - start:
        return -EINVAL
    end = start + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
    if end == start:
        return -EINVAL
    vma = mm.find_vma_intersection(start, end)
    if vma is None:
        return 0
    return do_vmi_align_munmap(mm, vma, start, end)


# -- free-space search (mm/vma.c) -----------------------------------------------------
def stack_guard_start_gap(vma):
    """stack_guard_start_gap: the gap kept free below a stack (stack_guard_gap) or shadow stack."""
    if vma.vm_flags & VM_GROWSDOWN:
        return vma.vm_mm.machine.stack_guard_gap
    if vma.vm_flags & VM_SHADOW_STACK:
        return PAGE_SIZE
    return 0


def vm_start_gap(vma):
    """vm_start_gap: where the VMA's reserved area starts (below a stack, the guard gap)."""
    start = vma.vm_start - stack_guard_start_gap(vma)
    return start if start >= 0 else 0


def vm_end_gap(vma):
    """vm_end_gap: where the VMA's reserved area ends (x86 stacks never grow up)."""
    return vma.vm_end


@traced(name="unmapped_area_topdown", result=ret_name)
def unmapped_area_topdown(mm, length, low_limit, high_limit, align_mask=0, align_offset=0, start_gap=0):
    """unmapped_area_topdown: the highest address in [low_limit, high_limit) where `length` fits.

    The search asks for length + align_mask + start_gap so that any
    alignment fits, takes the highest free range, then places the mapping
    at its top, aligned down.  A stack above that range needs
    stack_guard_gap below it: if the range reaches into that gap, search
    again below it.  Returns the address or -ENOMEM.
    """
    size = length + align_mask + start_gap
    if size > ULONG_MAX:
        return -ENOMEM
    low_limit = max(low_limit, mm.machine.mmap_min_addr)
    while True:
        found = mm.area_highest(low_limit, high_limit, size)
        if found is None:
            note(mm, "unmapped_area_topdown: no gap of %d bytes below %#x", size, high_limit)
            return -ENOMEM
        gap_end = found[1]
        gap = gap_end - length
        gap -= (gap - align_offset) & align_mask
        nxt = mm.find_vma(gap_end)
        if nxt is not None and nxt.vm_flags & VM_STARTGAP_FLAGS:
            if vm_start_gap(nxt) < gap_end:
                note(mm, "unmapped_area_topdown: keep stack_guard_gap below %r", nxt)
                high_limit = vm_start_gap(nxt)
                continue
        else:
            _, prv = mm.find_vma_prev(found[0])
            if prv is not None and vm_end_gap(prv) > gap:
                high_limit = prv.vm_start
                continue
        return gap


@traced(name="unmapped_area", result=ret_name)
def unmapped_area(mm, length, low_limit, high_limit, align_mask=0, align_offset=0, start_gap=0):
    """unmapped_area: the lowest address in [low_limit, high_limit) where `length` fits, or -ENOMEM."""
    size = length + align_mask + start_gap
    if size > ULONG_MAX:
        return -ENOMEM
    low_limit = max(low_limit, mm.machine.mmap_min_addr)
    while True:
        found = mm.area_lowest(low_limit, high_limit, size)
        if found is None:
            return -ENOMEM
        gap = found[0] + start_gap
        gap += (align_offset - gap) & align_mask
        nxt = mm.find_vma(found[0])
        if nxt is not None and nxt.vm_flags & VM_STARTGAP_FLAGS:
            if vm_start_gap(nxt) < gap + length - 1:
                low_limit = nxt.vm_end
                continue
        else:
            _, prv = mm.find_vma_prev(found[0])
            if prv is not None and vm_end_gap(prv) > gap:
                low_limit = vm_end_gap(prv)
                continue
        return gap


# -- stack growth -----------------------------------------------------------------
def acct_stack_growth(vma, size, grow):
    """acct_stack_growth: may the stack become `size` bytes, `grow` pages more? 0 or -ENOMEM."""
    from ..uapi import RLIMIT_STACK, RLIMIT_MEMLOCK
    mm = vma.vm_mm
    if not may_expand_vm(mm, vma.vm_flags, grow):
        return -ENOMEM
    if size > rlimit(mm, RLIMIT_STACK):
        note(vma, "acct_stack_growth: %d bytes pass RLIMIT_STACK", size)
        return -ENOMEM
    if vma.vm_flags & VM_LOCKED and not capable(mm, "CAP_IPC_LOCK") and \
            mm.locked_vm + grow > rlimit(mm, RLIMIT_MEMLOCK) >> PAGE_SHIFT:
        return -ENOMEM
    return vm_enough_memory(mm, grow)


@traced(result=ret_name)
def expand_downwards(vma, address):
    """expand_downwards: grow a VM_GROWSDOWN VMA down to cover address; returns 0 or -errno.

    Refused (ENOMEM) when the VMA below is accessible, not itself a stack,
    and would end up closer than stack_guard_gap; or when RLIMIT_STACK,
    RLIMIT_AS or the commit limit forbid it.  EPERM below vm.mmap_min_addr.
    """
    mm = vma.vm_mm
    if not vma.vm_flags & VM_GROWSDOWN:
        return -14      # EFAULT
    address &= ~(PAGE_SIZE - 1)
    if address < mm.machine.mmap_min_addr:
        return -1       # EPERM
    i = mm.index(vma)
    prev = mm.vma_prev(vma)
    if prev is not None and not prev.vm_flags & VM_GROWSDOWN and prev.vm_flags & VM_ACCESS_FLAGS \
            and address - prev.vm_end < mm.machine.stack_guard_gap:
        note(vma, "expand_downwards: %r is within stack_guard_gap", prev)
        return -ENOMEM
    if address >= vma.vm_start:
        return 0
    size = vma.vm_end - address
    grow = (vma.vm_start - address) >> PAGE_SHIFT
    if grow > vma.vm_pgoff:
        return -ENOMEM
    err = acct_stack_growth(vma, size, grow)
    if err:
        return err
    if vma.vm_flags & VM_LOCKED:
        mm.locked_vm += grow
    vm_stat_account(mm, vma.vm_flags, grow)
    vma.vm_start = address
    vma.vm_pgoff -= grow
    mm._store(i, i + 1, [vma])
    return 0


# -- invariants ---------------------------------------------------------------
def would_merge(a, b):
    """Would Linux have merged adjacent VMAs a and b (a below b) into one?"""
    if a.vm_end != b.vm_start or (a.vm_flags | b.vm_flags) & VM_SPECIAL:
        return False
    if (a.vm_flags ^ b.vm_flags) & ~VM_SOFTDIRTY or a.vm_file is not b.vm_file:
        return False
    if a.anon_name != b.anon_name or a.vm_ops is not b.vm_ops:
        return False
    if a.vm_pgoff + a.pages != b.vm_pgoff:
        return False
    if a.anon_vma is not None and b.anon_vma is not None:
        return a.anon_vma is b.anon_vma
    # One side has no anon_vma: the other must not have come through fork.
    return not vma_had_uncowed_parents(a) and not vma_had_uncowed_parents(b)


def check_mm(mm, who="mm"):
    """Prove one address space consistent; raise InvariantError naming the broken invariant.

    - vma-tree: the VMA and boundary lists agree, VMAs are sorted, page
      aligned, non-empty, non-overlapping and below TASK_SIZE (the tree
      holds no [vsyscall]);
    - vma-holes: the free-gap list is exactly the gaps between VMAs;
    - vma-merged: no two adjacent VMAs that Linux would have merged, except
      where Linux itself leaves them (a VMA ending at start_brk below the
      heap, or a split left by a failed MAP_FIXED mmap);
    - vma-counters: total_vm, data_vm, exec_vm, stack_vm and locked_vm are
      the sums over the VMAs;
    - vma-brk: start_brk <= brk, and the VMAs labelled [heap] lie around [start_brk, brk).
    """
    def fail(name, text):
        raise InvariantError(f"{name}: {who}: {text}")

    vmas = mm.vma_list()
    if len(mm._nend) != len(vmas):
        fail("vma-tree", "boundary list out of step with the VMA list")
    prev = None
    total = data = exe = stack = locked = 0
    for k, v in enumerate(vmas):
        if v.vm_mm is not mm:
            fail("vma-tree", f"{v!r} belongs to another mm")
        if mm._nend[len(vmas) - 1 - k] != -v.vm_end:
            fail("vma-tree", f"{v!r} moved without the tree knowing")
        if v.vm_start & (PAGE_SIZE - 1) or v.vm_end & (PAGE_SIZE - 1):
            fail("vma-tree", f"{v!r} not page aligned")
        if v.vm_start >= v.vm_end:
            fail("vma-tree", f"{v!r} is empty or inverted")
        if v.vm_end > TASK_SIZE:
            fail("vma-tree", f"{v!r} reaches above TASK_SIZE")
        if prev is not None:
            if prev.vm_end > v.vm_start:
                fail("vma-tree", f"{prev!r} overlaps {v!r}")
            if would_merge(prev, v) and v.vm_start not in mm._known_unmerged:
                fail("vma-merged", f"{prev!r} and {v!r} should have been merged")
        if v.anon_vma is not None and v.anon_vma not in v.anon_vma_chain:
            fail("vma-tree", f"{v!r} is not linked to its own anon_vma")
        n = v.pages
        f = v.vm_flags
        total += n
        if is_exec_mapping(f):
            exe += n
        elif is_stack_mapping(f):
            stack += n
        elif is_data_mapping(f):
            data += n
        if f & VM_LOCKED:
            locked += n
        prev = v
    expect_lo, expect_hi, end = [], [], 0
    for v in vmas:
        if v.vm_start > end:
            expect_lo.append(end)
            expect_hi.append(v.vm_start)
        end = v.vm_end
    expect_lo.append(end)
    expect_hi.append(TOP)
    if expect_lo != mm._holes_lo or expect_hi != mm._holes_hi:
        fail("vma-holes", "the free-gap list does not match the gaps between VMAs")
    for name, want, have in (("total_vm", total, mm.total_vm), ("data_vm", data, mm.data_vm),
                             ("exec_vm", exe, mm.exec_vm), ("stack_vm", stack, mm.stack_vm),
                             ("locked_vm", locked + mm.locked_vm_orphaned, mm.locked_vm)):
        if want != have:
            fail("vma-counters", f"{name} is {have} pages but the VMAs hold {want}")
    if mm.brk < mm.start_brk:
        fail("vma-brk", f"brk {mm.brk:#x} below start_brk {mm.start_brk:#x}")


__all__ = [name for name in dir() if name.startswith("VM_")] + [
    "VMA", "VmaView", "MM", "AnonVma", "find_mergeable_anon_vma", "anon_vma_prepare",
    "vma_merge_new_range", "vma_merge_existing_range", "vma_modify", "split_vma",
    "do_vmi_munmap", "unmapped_area_topdown", "unmapped_area", "check_mm", "vm_flags_name"]
