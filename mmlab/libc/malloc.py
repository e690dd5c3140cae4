"""glibc 2.36 malloc (ptmalloc2): the main arena, tcache, bins, top, sysmalloc and trim.

    libc = p.libc
    a = libc.malloc(24)          # an address in the process's [heap], or 0 (NULL)
    libc.free(a)

Every chunk header (prev_size, size with PREV_INUSE, IS_MMAPPED and
NON_MAIN_ARENA), every free-list link, the tcache_perthread_struct and the
main arena's malloc_state are words in memory at the addresses glibc would
use, read and written through `ProcessMemory`: all but the arena in the
process's own pages, through its TLB, so glibc's first store into a fresh
page faults it in and p.load(ptr - 8, 8) shows a chunk's size field.  The
heap grows and shrinks through the process's brk and mmap, so what malloc
hands out lives in the process's VMAs.  glibc reads its metadata back from
memory, and so does the model: a program that overwrites a header with
p.store meets glibc's own checks on the next call.  The functions below are glibc's own (malloc/malloc.c and arena.c,
release 2.36), each named after the function it models, and they take the
same decisions in the same order: a differential test replays random traces
here and in the real glibc and compares every address, usable size and break.

Links are stored as glibc 2.36 stores them: tcache and fastbin `next`
pointers with safe-linking (PROTECT_PTR: xor-ed with their own address >> 12),
and a cached chunk's `key` word holds the process's random tcache_key.  When
one of glibc's integrity checks fails, the call raises GlibcAbort with glibc's
own message ("free(): double free detected in tcache 2") where the real process
would print it and abort; the model undoes the call first, so the heap, the
break and the mappings are as they were.  Reading a chunk header at an
unmapped address raises SegmentationFault, as the real program would die.

Views for checks and figures: chunks(), bin_chunks(), fastbin_chunks(),
tcache_chunks(), mallinfo2(); check_heap(libc) proves the heap's invariants
and runs in m.check() for every process whose malloc has been used.

Glossary: `p` is a chunk address, `mem` the address malloc returned (p + 16),
`av` the address of an arena's malloc_state, `nb` a request padded by
request2size, `tc_idx` a tcache bin, `idx` a bin index.

Modelled configuration (x86_64): SIZE_SZ 8, MALLOC_ALIGNMENT 16, MINSIZE 32,
USE_TCACHE, one thread.  NOTE: threads and non-main arenas (arena.c's heaps of
HEAP_MAX_SIZE mapped with mmap, NON_MAIN_ARENA chunks) are not modelled: every
call runs in the main thread, SINGLE_THREAD_P holds, so no lock is taken and
the fastbins are single-linked without atomics.  Also omitted: memory tagging,
huge-page tunables (glibc.malloc.hugetlb), malloc_info, the MALLOC_CHECK_
debugging hooks, and the GLIBC_TUNABLES environment (the defaults are used).
"""
import collections
import contextlib
import weakref

from ..errors import SegmentationFault, SEGV_MAPERR, ENOMEM, EINVAL, require_int
from ..trace import traced, note
from .. import uapi
from ..mm import memory as _memory

# -- sizes (malloc.c, x86_64) -------------------------------------------------
SIZE_SZ = 8
MALLOC_ALIGNMENT = 16
MALLOC_ALIGN_MASK = MALLOC_ALIGNMENT - 1
CHUNK_HDR_SZ = 2 * SIZE_SZ
MIN_CHUNK_SIZE = 32                 # offsetof(struct malloc_chunk, fd_nextsize)
MINSIZE = 32
SIZEOF_MALLOC_CHUNK = 48            # prev_size, size, fd, bk, fd_nextsize, bk_nextsize
PAGESIZE = 4096

SIZE_MAX = (1 << 64) - 1
PTRDIFF_MAX = (1 << 63) - 1
MASK64 = SIZE_MAX

PREV_INUSE = 0x1
IS_MMAPPED = 0x2
NON_MAIN_ARENA = 0x4
SIZE_BITS = PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA

# -- bins -----------------------------------------------------------------------
NBINS = 128
NSMALLBINS = 64
SMALLBIN_WIDTH = MALLOC_ALIGNMENT
MIN_LARGE_SIZE = NSMALLBINS * SMALLBIN_WIDTH        # 1024: SMALLBIN_CORRECTION is 0
BINMAPSHIFT = 5
BITSPERMAP = 1 << BINMAPSHIFT
BINMAPSIZE = NBINS // BITSPERMAP
MAX_FAST_SIZE = 80 * SIZE_SZ // 4                   # 160
NFASTBINS = 10                                      # fastbin_index(request2size(MAX_FAST_SIZE)) + 1
DEFAULT_MXFAST = 64 * SIZE_SZ // 4                  # 128
FASTBIN_CONSOLIDATION_THRESHOLD = 65536
MAX_ITERS = 10000                                   # unsorted chunks sorted per malloc call

# -- tcache -------------------------------------------------------------------------
TCACHE_MAX_BINS = 64
TCACHE_FILL_COUNT = 7
MAX_TCACHE_COUNT = 0xffff
TCACHE_STRUCT_SIZE = 2 * TCACHE_MAX_BINS + 8 * TCACHE_MAX_BINS     # uint16 counts[64]; entries[64]
TCACHE_ENTRIES = 2 * TCACHE_MAX_BINS                               # offset of entries[]

# -- tunables (malloc.c, malloc-machine.h) -----------------------------------------
DEFAULT_TOP_PAD = 128 * 1024        # sysdeps/generic/malloc-machine.h; malloc.c's own default is 0
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_THRESHOLD_MIN = 128 * 1024
DEFAULT_MMAP_THRESHOLD = DEFAULT_MMAP_THRESHOLD_MIN
DEFAULT_MMAP_THRESHOLD_MAX = 4 * 1024 * 1024 * 8    # 32 MiB on 64-bit
DEFAULT_MMAP_MAX = 65536
MMAP_AS_MORECORE_SIZE = 1024 * 1024
NARENAS_FROM_NCORES = 8

# -- struct malloc_state field offsets (the arena lives in libc's .data) ----------
AV_MUTEX = 0
AV_FLAGS = 4
AV_HAVE_FASTCHUNKS = 8
AV_FASTBINS = 16
AV_TOP = AV_FASTBINS + 8 * NFASTBINS                # 96
AV_LAST_REMAINDER = AV_TOP + 8                      # 104
AV_BINS = AV_LAST_REMAINDER + 8                     # 112
AV_BINMAP = AV_BINS + 8 * (NBINS * 2 - 2)           # 2144
AV_NEXT = AV_BINMAP + 4 * BINMAPSIZE                # 2160
AV_NEXT_FREE = AV_NEXT + 8
AV_ATTACHED_THREADS = AV_NEXT_FREE + 8
AV_SYSTEM_MEM = AV_ATTACHED_THREADS + 8             # 2184
AV_MAX_SYSTEM_MEM = AV_SYSTEM_MEM + 8               # 2192
SIZEOF_MALLOC_STATE = AV_MAX_SYSTEM_MEM + 8         # 2200
NONCONTIGUOUS_BIT = 2

MORECORE_FAILURE = 0
MAP_FAILED = -1

# -- the fields of struct malloc_chunk, as offsets from the chunk --------------------
PREV_SIZE, SIZE, FD, BK, FD_NEXTSIZE, BK_NEXTSIZE = 0, 8, 16, 24, 32, 40


class GlibcAbort(Exception):
    """malloc_printerr: glibc found its heap inconsistent and called abort().

    `message` is glibc's own text, such as "free(): double free detected in
    tcache 2"; the real process prints it on stderr and dies of SIGABRT.
    The model undoes the call that failed instead, so the heap stays as it
    was before the call and the lesson can go on.
    """

    def __init__(self, message):
        self.message = message
        super().__init__(message)


# -- size arithmetic (malloc.c macros) ---------------------------------------------

def request2size(req):
    """request2size: the chunk size that holds `req` user bytes."""
    if req + SIZE_SZ + MALLOC_ALIGN_MASK < MINSIZE:
        return MINSIZE
    return (req + SIZE_SZ + MALLOC_ALIGN_MASK) & ~MALLOC_ALIGN_MASK


def checked_request2size(req):
    """checked_request2size: request2size, or 0 for requests above PTRDIFF_MAX."""
    if req > PTRDIFF_MAX:
        return 0
    return request2size(req)


def csize2tidx(size):
    """csize2tidx: the tcache bin of a chunk size (0 for 32 bytes, 63 for 1040)."""
    return (size - MINSIZE + MALLOC_ALIGNMENT - 1) // MALLOC_ALIGNMENT


def tidx2usize(idx):
    """tidx2usize: the largest request a tcache bin serves (24, 40, ... 1032)."""
    return idx * MALLOC_ALIGNMENT + MINSIZE - SIZE_SZ


MAX_TCACHE_SIZE = tidx2usize(TCACHE_MAX_BINS - 1)   # 1032


def fastbin_index(size):
    """fastbin_index: (unsigned)size / 16 - 2, computed in 32-bit unsigned arithmetic."""
    return (((size & 0xffffffff) >> 4) - 2) & 0xffffffff


def smallbin_index(size):
    """smallbin_index: one bin per 16 bytes below 1024."""
    return (size & 0xffffffff) >> 4


def largebin_index(size):
    """largebin_index_64: bins spaced 64, 512, 4096, 32768 and 262144 bytes apart."""
    if (size >> 6) <= 48:
        return 48 + (size >> 6)
    if (size >> 9) <= 20:
        return 91 + (size >> 9)
    if (size >> 12) <= 10:
        return 110 + (size >> 12)
    if (size >> 15) <= 4:
        return 119 + (size >> 15)
    if (size >> 18) <= 2:
        return 124 + (size >> 18)
    return 126


def bin_index(size):
    """bin_index: the small or large bin a free chunk of `size` belongs in."""
    return smallbin_index(size) if size < MIN_LARGE_SIZE else largebin_index(size)


def align_up(value, size):
    return (value + size - 1) & -size


def powerof2(x):
    return ((x - 1) & x) == 0


def signed64(value):
    """A size_t's bits read as a long, as C does when it stores one in the other."""
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


# -- memory ----------------------------------------------------------------------------

MMAP_MIN_ADDR = 65536          # vm.mmap_min_addr: nothing is ever mapped below


def null_access(addr):
    """A corrupted link led malloc near NULL: the real process dies of SIGSEGV there."""
    raise SegmentationFault(addr & MASK64, SEGV_MAPERR, "malloc followed a corrupted pointer")


class ProcessMemory:
    """The words malloc reads and writes, in the process's own pages: chunk headers, links, the tcache.

    Every word outside main_arena lives in the process's memory and is
    reached as the program reaches it: through the process's TLB (mm.tlb,
    mm/memory.py), a miss walking the page tables and taking any page fault
    a real load or store would take.  So the first header glibc writes into
    a fresh page faults that page in, a header read where nothing is mapped
    raises SegmentationFault, and p.load(ptr - 8, 8) shows the size field.

    The fast path keeps two views of its own over the TLB's entries, page
    number -> the page's 64-bit words (rpages for loads, wpages for stores
    the entry allows); the TLB empties them through mm.tlb_notifiers
    whenever it drops an entry (a flush or an eviction), as an
    mmu_notifier keeps a secondary MMU coherent.

    main_arena (struct malloc_state) sits in libc's .data at &main_arena.
    NOTE: its words are kept in pages of libc's own here, not in the
    process's: on Linux ld.so's relocations have written (copied on write)
    libc's .data pages before main() runs, but the model's loader touches
    no page, so keeping the arena in the process's pages would charge those
    copy-on-write faults to the first malloc.  p.load of &main_arena reads
    the mapped file page, not the arena.

    Every store is logged with the word it replaced.  A call into malloc
    starts with begin(), which forgets the log; rollback() puts every word
    back, so a call that ends in GlibcAbort leaves memory as it was.  The
    page faults it took stay counted: the kernel's side is not undone.

    read_word and write_word are closures, not methods: they run a dozen
    times per malloc call (NOTE: a speed measure only).
    """

    __slots__ = ("process", "mm", "arena", "rpages", "wpages", "undo", "read_word", "write_word",
                 "__weakref__")

    def __init__(self, process, av):
        self.process = process
        mm = self.mm = process.mm
        _memory.mm_tlb(mm)                  # page() reads mm.tlb directly
        self.arena = {vpn: memoryview(bytearray(PAGESIZE)).cast("Q")
                      for vpn in range(av >> 12, ((av + SIZEOF_MALLOC_STATE - 1) >> 12) + 1)}
        rpages = self.rpages = dict(self.arena)
        wpages = self.wpages = dict(self.arena)
        undo = self.undo = []
        notifiers = mm.__dict__.setdefault("tlb_notifiers", [])
        notifiers.append(weakref.WeakMethod(self.tlb_flushed))
        rget, wget = rpages.get, wpages.get
        log = undo.append
        slow_read, slow_write = self.slow_read, self.slow_write

        def read_word(addr):
            """The 64-bit word at addr (a load)."""
            w = rget(addr >> 12)
            if w is None or addr & 7:
                return slow_read(addr)
            return w[(addr & 4095) >> 3]

        def write_word(addr, value):
            """Store a 64-bit word (value taken modulo 2**64, as C stores it)."""
            w = wget(addr >> 12)
            if w is None or addr & 7:
                return slow_write(addr, value)
            i = (addr & 4095) >> 3
            log((w, i, w[i]))
            w[i] = value & MASK64

        self.read_word = read_word
        self.write_word = write_word

    # -- the slow paths: a TLB miss, an unaligned word, a bad pointer --------------------
    def tlb_flushed(self):
        """mm.tlb_notifiers: the TLB dropped entries; forget every view of a process page."""
        for pages in (self.rpages, self.wpages):
            pages.clear()
            pages.update(self.arena)

    def page(self, addr, write):
        """The words of addr's page, for a load or a store: the arena's, or the process's through its TLB."""
        addr &= MASK64
        if addr < MMAP_MIN_ADDR:
            null_access(addr)
        vpn = addr >> 12
        w = self.arena.get(vpn)
        if w is not None:
            return w
        e = _memory.tlb_lookup(self.process, self.mm.tlb, addr, write)
        self.rpages[vpn] = e[1]
        if e[2]:
            self.wpages[vpn] = e[1]
        return e[1]

    def slow_read(self, addr):
        addr &= MASK64
        if addr & 7:
            return int.from_bytes(self.read_bytes(addr, 8), "little")
        return self.page(addr, False)[(addr & 4095) >> 3]

    def slow_write(self, addr, value):
        addr &= MASK64
        if addr & 7:
            self.write_bytes(addr, (value & MASK64).to_bytes(8, "little"))
            return
        w = self.page(addr, True)
        i = (addr & 4095) >> 3
        self.undo.append((w, i, w[i]))
        w[i] = value & MASK64

    def pieces(self, addr, length):
        """(address, offset in page, length) of each page's part of [addr, addr+length)."""
        end = addr + length
        while addr < end:
            off = addr & 4095
            n = min(PAGESIZE - off, end - addr)
            yield addr, off, n
            addr += n

    # -- the checker's view: no fault, no accessed bit ------------------------------------
    def peek_bytes(self, addr, length):
        """The bytes at [addr, addr+length) as the page tables hold them, without touching the process.

        check_heap reads through this, so that checking a corrupted heap
        neither faults a page in nor raises SIGSEGV: a link into no page is
        an InvariantError.
        """
        from ..errors import InvariantError
        m, mm = self.process.machine, self.mm
        out = []
        for a, off, n in self.pieces(addr & MASK64, length):
            w = self.arena.get(a >> 12)
            if w is not None:
                out.append(w.obj[off:off + n])
                continue
            pte = _memory.pgtable_get_one(mm, a) if mm.pgd is not None else 0
            if not pte & (_memory._PAGE_PRESENT | _memory._PAGE_PROTNONE):
                raise InvariantError(f"check_heap: malloc's metadata at {a:#x} is in no page present in memory")
            page = m.page_contents.get(_memory.pte_pfn(pte))
            out.append(bytes(page[off:off + n]) if page is not None else bytes(n))
        return b"".join(out)

    def peek_word(self, addr):
        return int.from_bytes(self.peek_bytes(addr, 8), "little")

    @contextlib.contextmanager
    def peeking(self):
        """Within: read_word peeks (the checker's view), so nothing it reads changes the process."""
        saved = self.read_word
        self.read_word = self.peek_word
        try:
            yield
        finally:
            self.read_word = saved

    def read_bytes(self, addr, length):
        """memcpy from memory: the bytes at [addr, addr+length), loaded page by page."""
        return b"".join(self.page(a, False).obj[off:off + n] for a, off, n in self.pieces(addr, length))

    def write_bytes(self, addr, data):
        """memcpy into memory, page by page, logging what it overwrites."""
        pos = 0
        for a, off, n in self.pieces(addr, len(data)):
            page = self.page(a, True).obj
            old = page[off:off + n]
            if old != data[pos:pos + n]:
                self.undo.append((page, slice(off, off + n), old))
                page[off:off + n] = data[pos:pos + n]
            pos += n

    # -- the word and block operations malloc uses -------------------------------------
    def read_u32(self, addr):
        shift = (addr & 7) * 8
        return (self.read_word(addr & ~7) >> shift) & 0xffffffff

    def write_u32(self, addr, value):
        shift = (addr & 7) * 8
        word = self.read_word(addr & ~7)
        self.write_word(addr & ~7, (word & ~(0xffffffff << shift)) | ((value & 0xffffffff) << shift))

    def zero(self, addr, length):
        """memset(addr, 0, length): every page of the range is stored to, in order."""
        for a, off, n in self.pieces(addr, length):
            page = self.page(a, True).obj
            old = page[off:off + n]
            if old.count(0) != n:
                self.undo.append((page, slice(off, off + n), old))
                page[off:off + n] = bytes(n)

    def copy(self, dst, src, length):
        """memcpy(dst, src, length): the source's pages are loaded, the destination's stored to."""
        self.write_bytes(dst, self.read_bytes(src, length))

    def snapshot(self):
        """What a failed call must leave unchanged: the arena's bytes and every non-zero page of the machine."""
        m = self.process.machine
        pages = {pfn: bytes(b) for pfn, b in m.page_contents.items() if b.count(0) != PAGESIZE}
        pages["arena"] = b"".join(bytes(w.obj) for w in self.arena.values())
        return pages

    # -- undo log -------------------------------------------------------------
    def begin(self):
        """A call starts: what it writes from now on can be undone."""
        self.undo.clear()

    def rollback(self):
        """Undo every store since begin()."""
        for obj, where, old in reversed(self.undo):
            obj[where] = old
        self.undo.clear()


Mallinfo2 = collections.namedtuple(
    "Mallinfo2", "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost")
Mallinfo2.__doc__ = "struct mallinfo2: what mallinfo2() reports (malloc/malloc.h)."

Chunk = collections.namedtuple("Chunk", "addr size flags state")
Chunk.__doc__ = """One chunk of the heap as check_heap and the figures see it.

state is "inuse", "tcache", "fastbin", "unsorted", "smallbin", "largebin",
"top" or "fencepost"; flags are the low three bits of the size field."""


class MallocPar:
    """struct malloc_par mp_: the tunables and the mmap statistics, with glibc's defaults."""

    def __init__(self):
        self.trim_threshold = DEFAULT_TRIM_THRESHOLD
        self.top_pad = DEFAULT_TOP_PAD
        self.mmap_threshold = DEFAULT_MMAP_THRESHOLD
        self.arena_test = NARENAS_FROM_NCORES * 1
        self.arena_max = 0
        self.n_mmaps = 0
        self.n_mmaps_max = DEFAULT_MMAP_MAX
        self.max_n_mmaps = 0
        self.no_dyn_threshold = 0
        self.mmapped_mem = 0
        self.max_mmapped_mem = 0
        self.sbrk_base = 0
        self.tcache_bins = TCACHE_MAX_BINS
        self.tcache_max_bytes = tidx2usize(TCACHE_MAX_BINS - 1)
        self.tcache_count = TCACHE_FILL_COUNT
        self.tcache_unsorted_limit = 0

    def __repr__(self):
        return (f"MallocPar(mmap_threshold={self.mmap_threshold}, trim_threshold={self.trim_threshold}, "
                f"top_pad={self.top_pad}, n_mmaps={self.n_mmaps}, no_dyn_threshold={self.no_dyn_threshold})")


def size_arg(name, value):
    """A C size_t argument: an int, negative values wrapping as C converts them."""
    value = require_int(name, value)
    if not -(1 << 63) <= value <= SIZE_MAX:
        raise ValueError(f"{name} must fit in a size_t, got {value}")
    return value & MASK64


def ptr_arg(name, value):
    """A C pointer argument: an int address, 0 for NULL."""
    return require_int(name, value, 0, SIZE_MAX)


def int_arg(name, value):
    """A C int argument."""
    return require_int(name, value, -(1 << 31), (1 << 31) - 1)


# &main_arena - libc's load address in Debian's glibc 2.36-9 (libc.so.6 on the
# reference machine): inside libc's writable .data, past the RELRO pages.
MAIN_ARENA_OFFSET = 0x1d3c60
# NOTE: for a process without a libc mapping (none of the model's processes),
# main_arena is placed at this address instead.
MAIN_ARENA_FALLBACK = 0x7ffff7fa0c60


class Libc:
    """glibc 2.36's malloc for one process: p.libc.

    malloc, free, calloc, realloc, memalign, posix_memalign, aligned_alloc,
    valloc, pvalloc, malloc_usable_size, mallopt, malloc_trim, mallinfo2 and
    malloc_stats behave as glibc's: allocators return 0 (NULL) on failure
    and set `errno`; integrity checks raise GlibcAbort with glibc's message
    and leave the heap as it was before the call.  Arguments are C values:
    ints, negative sizes wrapping to huge size_t values as C converts them.
    """

    def __init__(self, process):
        self.process = process
        self.machine = getattr(process, "machine", None)
        self.mp = MallocPar()
        self.av = main_arena_address(process)       # &main_arena
        self.mem = ProcessMemory(process, self.av)
        self.global_max_fast = 0
        self.perturb_byte = 0
        self.malloc_initialized = False
        self.tcache = 0                 # the tcache_perthread_struct, once tcache_init ran
        self.tcache_key = 0
        self.curbrk = None              # __curbrk: libc's idea of the break, NULL until the first sbrk
        self._brk_initial = None        # the break before malloc first moved it
        self.errno = 0
        self.always_fail_morecore = False
        # NOTE: bookkeeping glibc does not keep, for check_heap and the figures:
        # each mmapped chunk's mapping -> its length, and the stretches of
        # memory the arena got from MORECORE or its mmap fallback.
        self.mmapped = {}
        self.segments = []
        self._saved = None              # scalar state at the start of the running call, once changed
        self._new_mappings = []         # mappings the running call made
        register_heap_check(self)

    def dup_for_child(self, child):
        """fork: the child's malloc is a copy of this one.

        In a real child, main_arena and mp_ (libc's .data) and the heap are
        copy-on-write copies of the parent's, so its next malloc carves from
        the same heap and it may free what the parent allocated before the
        fork.  The heap's words are already in the child's pages (dup_mmap
        copied them); this copies libc's own variables and arena words.
        """
        new = Libc(child)
        if new.av != self.av:
            raise ValueError(f"child: main_arena at {new.av:#x}, not the parent's {self.av:#x}")
        for k in self._SCALARS + ("_brk_initial", "errno"):
            setattr(new, k, getattr(self, k))
        vars(new.mp).update(vars(self.mp))
        new.mmapped = dict(self.mmapped)
        new.segments = [list(seg) for seg in self.segments]
        for vpn, words in self.mem.arena.items():
            new.mem.arena[vpn][:] = words
        return new

    def __repr__(self):
        top = self.top(self.av) if self.malloc_initialized else 0
        return (f"<Libc heap {self.mp.sbrk_base:#x}..{self.curbrk or 0:#x} top={top:#x} "
                f"mmapped={self.mp.n_mmaps}>")

    # == public API: glibc's exported functions =====================================

    def malloc(self, n):
        """malloc: `n` bytes; returns their address, or 0 with errno ENOMEM."""
        if type(n) is not int or not 0 <= n <= SIZE_MAX:
            n = size_arg("n", n)
        self.begin_call()               # _call, inlined: malloc and free are the hot calls
        try:
            return self.libc_malloc(n)
        except BaseException:
            self.abort_call()
            raise

    def free(self, ptr):
        """free: give back memory malloc returned; free(0) does nothing."""
        if type(ptr) is not int or not 0 <= ptr <= SIZE_MAX:
            ptr = ptr_arg("ptr", ptr)
        self.begin_call()
        try:
            self.libc_free(ptr)
        except BaseException:
            self.abort_call()
            raise

    def calloc(self, nmemb, size):
        """calloc: zeroed memory for nmemb * size bytes; 0 with ENOMEM on overflow."""
        nmemb = size_arg("nmemb", nmemb)
        size = size_arg("size", size)
        return self._call(self.libc_calloc, nmemb, size)

    def realloc(self, ptr, n):
        """realloc: resize in place where glibc can, else move; realloc(p, 0) frees p and returns 0."""
        ptr = ptr_arg("ptr", ptr)
        n = size_arg("n", n)
        return self._call(self.libc_realloc, ptr, n)

    def memalign(self, alignment, n):
        """memalign: `n` bytes at a multiple of `alignment` (rounded up to a power of two)."""
        alignment = size_arg("alignment", alignment)
        n = size_arg("n", n)
        return self._call(self.libc_memalign, alignment, n)

    def aligned_alloc(self, alignment, n):
        """aligned_alloc: in glibc 2.36 an alias of memalign, with no extra checks."""
        return self.memalign(alignment, n)

    def posix_memalign(self, alignment, n):
        """posix_memalign: returns (error, address); error is 0, EINVAL or ENOMEM, address 0 on error."""
        alignment = size_arg("alignment", alignment)
        n = size_arg("n", n)
        return self._call(self.posix_memalign_impl, alignment, n)

    def valloc(self, n):
        """valloc: `n` bytes on a page boundary."""
        n = size_arg("n", n)
        return self._call(self.libc_valloc, n)

    def pvalloc(self, n):
        """pvalloc: `n` bytes rounded up to whole pages, on a page boundary."""
        n = size_arg("n", n)
        return self._call(self.libc_pvalloc, n)

    def malloc_usable_size(self, ptr):
        """malloc_usable_size: bytes usable at ptr (0 for NULL or a chunk not in use)."""
        ptr = ptr_arg("ptr", ptr)
        return self._call(self.malloc_usable_size_impl, ptr)

    def mallopt(self, param, value):
        """mallopt: set M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD, ...; returns 1, or 0 if refused."""
        param = int_arg("param", param)
        value = int_arg("value", value)
        return self._call(self.libc_mallopt, param, value)

    def malloc_trim(self, pad=0):
        """malloc_trim: give free memory back to the kernel; returns 1 if any was released."""
        pad = size_arg("pad", pad)
        return self._call(self.malloc_trim_impl, pad)

    def mallinfo2(self):
        """mallinfo2: the arena's statistics as a Mallinfo2."""
        return self._call(self.libc_mallinfo2)

    def malloc_stats(self):
        """malloc_stats: the text glibc prints on stderr, returned as a string."""
        return self._call(self.malloc_stats_impl)

    def _call(self, fn, *args):
        """Run one API call so that a GlibcAbort (or any error) leaves everything as it was."""
        self.begin_call()
        try:
            return fn(*args)
        except BaseException:
            self.abort_call()
            raise

    def begin_call(self):
        """A call starts: from now on its writes, variables and mappings can be undone."""
        self.mem.undo.clear()
        if self._saved is not None:
            self._saved = None
        if self._new_mappings:
            self._new_mappings = []

    def abort_call(self):
        """The call failed: memory words come back from ProcessMemory's undo log; libc's
        own variables from the snapshot save_state() took before the first change;
        the break moves back and mappings the call made are unmapped."""
        self.mem.rollback()
        self.restore_state()

    _SCALARS = ("global_max_fast", "perturb_byte", "malloc_initialized", "tcache", "tcache_key",
                "curbrk", "always_fail_morecore")

    def save_state(self):
        """Before libc's own variables change in a call: keep them, in case the call aborts."""
        if self._saved is None:
            self._saved = ({k: getattr(self, k) for k in self._SCALARS}, vars(self.mp).copy(),
                           dict(self.mmapped), [list(s) for s in self.segments])

    def restore_state(self):
        """After an abort: libc's variables, the break and the mappings as they were."""
        saved, self._saved = self._saved, None
        for addr, length in reversed(self._new_mappings):
            try:
                self.process.munmap(addr, length)
            except OSError:
                pass
        self._new_mappings = []
        if saved is None:
            return
        scalars, mp, mmapped, segments = saved
        if scalars["curbrk"] != self.curbrk:
            target = scalars["curbrk"] if scalars["curbrk"] is not None else self._brk_initial
            self.process.brk(target)
        for k, v in scalars.items():
            setattr(self, k, v)
        vars(self.mp).update(mp)
        self.mmapped = mmapped
        self.segments = segments

    # == memory accessors (malloc.c's chunk macros) ==================================

    def chunksize(self, p):
        return self.mem.read_word(p + SIZE) & ~SIZE_BITS

    def chunksize_nomask(self, p):
        return self.mem.read_word(p + SIZE)

    def prev_size(self, p):
        return self.mem.read_word(p + PREV_SIZE)

    def set_head(self, p, s):
        self.mem.write_word(p + SIZE, s)

    def set_head_size(self, p, s):
        mem = self.mem
        mem.write_word(p + SIZE, (mem.read_word(p + SIZE) & SIZE_BITS) | s)

    def set_foot(self, p, s):
        self.mem.write_word(p + s + PREV_SIZE, s)

    def prev_inuse(self, p):
        return self.mem.read_word(p + SIZE) & PREV_INUSE

    def inuse_bit_at_offset(self, p, s):
        return self.mem.read_word(p + s + SIZE) & PREV_INUSE

    def set_inuse_bit_at_offset(self, p, s):
        mem = self.mem
        mem.write_word(p + s + SIZE, mem.read_word(p + s + SIZE) | PREV_INUSE)

    def clear_inuse_bit_at_offset(self, p, s):
        mem = self.mem
        mem.write_word(p + s + SIZE, mem.read_word(p + s + SIZE) & ~PREV_INUSE)

    def inuse(self, p):
        return self.inuse_bit_at_offset(p, self.chunksize(p))

    def chunk_is_mmapped(self, p):
        return self.mem.read_word(p + SIZE) & IS_MMAPPED

    def protect_ptr(self, pos, ptr):
        """PROTECT_PTR: safe-linking; a tcache or fastbin link is stored xor-ed with its own address >> 12."""
        return (pos >> 12) ^ ptr

    def reveal_ptr(self, pos):
        """REVEAL_PTR: the link stored at `pos`, unmasked."""
        return (pos >> 12) ^ self.mem.read_word(pos)

    # -- the arena (struct malloc_state) ------------------------------------------------
    @staticmethod
    def bin_at(av, i):
        """bin_at: bin i's header, a pseudo-chunk whose fd and bk overlay bins[2i-2..2i-1]."""
        return av + AV_BINS + (i - 1) * 16 - FD

    def unsorted_chunks(self, av):
        return av + AV_BINS - FD            # bin_at(av, 1)

    def initial_top(self, av):
        return self.unsorted_chunks(av)

    def top(self, av):
        return self.mem.read_word(av + AV_TOP)

    def set_top(self, av, p):
        self.mem.write_word(av + AV_TOP, p)

    def last_remainder(self, av):
        return self.mem.read_word(av + AV_LAST_REMAINDER)

    def fastbin(self, av, idx):
        """fastbin: the address of fastbinsY[idx]."""
        return av + AV_FASTBINS + 8 * idx

    def system_mem(self, av):
        return self.mem.read_word(av + AV_SYSTEM_MEM)

    def set_system_mem(self, av, value):
        self.mem.write_word(av + AV_SYSTEM_MEM, value)

    # have_fastchunks is an int followed by 4 bytes of padding, so its word is the int.
    def have_fastchunks(self, av):
        return self.mem.read_word(av + AV_HAVE_FASTCHUNKS)

    def set_have_fastchunks(self, av, value):
        self.mem.write_word(av + AV_HAVE_FASTCHUNKS, value)

    def contiguous(self, av):
        return (self.mem.read_u32(av + AV_FLAGS) & NONCONTIGUOUS_BIT) == 0

    def set_noncontiguous(self, av):
        mem = self.mem
        mem.write_u32(av + AV_FLAGS, mem.read_u32(av + AV_FLAGS) | NONCONTIGUOUS_BIT)

    def mark_bin(self, av, i):
        addr = av + AV_BINMAP + 4 * (i >> BINMAPSHIFT)
        self.mem.write_u32(addr, self.mem.read_u32(addr) | (1 << (i & (BITSPERMAP - 1))))

    def binmap(self, av, block):
        return self.mem.read_u32(av + AV_BINMAP + 4 * block)

    def set_binmap(self, av, block, value):
        self.mem.write_u32(av + AV_BINMAP + 4 * block, value)

    def set_max_fast(self, s):
        """set_max_fast: the largest chunk size fastbins take (16 disables them)."""
        self.global_max_fast = MIN_CHUNK_SIZE // 2 if s <= MALLOC_ALIGN_MASK - SIZE_SZ \
            else ((s + SIZE_SZ) & ~MALLOC_ALIGN_MASK) & MASK64

    def malloc_printerr(self, message):
        """malloc_printerr: print glibc's message and abort()."""
        note(self, "malloc_printerr: %s", message)
        raise GlibcAbort(message)

    def malloc_assert(self, ok, function, assertion):
        """__malloc_assert: glibc keeps malloc.c's assert()s in release builds; a false one aborts."""
        if not ok:
            message = f"Fatal glibc error: malloc assertion failure in {function}: {assertion}"
            note(self, "%s", message)
            raise GlibcAbort(message)

    # == initialisation (arena.c) ==========================================================

    def malloc_init_state(self, av):
        """malloc_init_state: empty circular bins, fastbins on, top the dummy initial_top."""
        mem = self.mem
        for i in range(1, NBINS):
            b = self.bin_at(av, i)
            mem.write_word(b + FD, b)
            mem.write_word(b + BK, b)
        # The main arena alone may use the contiguous brk heap (MORECORE_CONTIGUOUS).
        self.set_max_fast(DEFAULT_MXFAST)
        self.set_have_fastchunks(av, 0)
        self.set_top(av, self.initial_top(av))
        mem.write_word(av + AV_NEXT, av)            # the arena list is main_arena alone
        mem.write_word(av + AV_ATTACHED_THREADS, 1)

    @traced
    def ptmalloc_init(self):
        """ptmalloc_init: tcache_key, then main_arena's bins; runs on the first call into malloc."""
        if self.malloc_initialized:
            return
        self.save_state()
        self.malloc_initialized = True
        self.tcache_key_initialize()
        self.malloc_init_state(self.av)

    def tcache_key_initialize(self):
        """tcache_key_initialize: a random word marking chunks that sit in a tcache (getrandom)."""
        rng = getattr(self.machine, "rng", None)
        self.tcache_key = rng.getrandbits(64) if rng is not None else 0x5eed_cafe_f00d_beef
        # A key of 0 would mark every zeroed chunk as cached; getrandom never gives it in practice.
        self.tcache_key = self.tcache_key or 1

    @traced
    def tcache_init(self):
        """tcache_init: the per-thread cache is the first chunk malloc carves (640 bytes, chunk 0x290)."""
        victim = self.int_malloc(self.av, TCACHE_STRUCT_SIZE)
        if victim:
            self.save_state()
            self.tcache = victim
            self.mem.zero(victim, TCACHE_STRUCT_SIZE)

    def maybe_init_tcache(self):
        if not self.tcache:
            self.tcache_init()

    # == tcache ==================================================================================

    def tcache_count(self, tc_idx):
        """tcache->counts[tc_idx]: four uint16_t to a word."""
        addr = self.tcache + 2 * tc_idx
        w = self.mem.rpages.get(addr >> 12)
        if w is None or addr & 1:
            return (self.mem.read_word(addr & ~7) >> ((addr & 7) * 8)) & 0xffff
        return (w[(addr & 4095) >> 3] >> ((addr & 7) * 8)) & 0xffff

    def tcache_entry(self, tc_idx):
        return self.mem.read_word(self.tcache + TCACHE_ENTRIES + 8 * tc_idx)

    # The tcache is the hottest path: tcache_put and tcache_get index the two
    # pages involved (the chunk's and the tcache_perthread_struct's) once each,
    # when both are in the TLB views for stores; anything else (a page not yet
    # cached, a tcache struct across a page boundary, a misaligned chunk) takes
    # the word-by-word path, which faults as a store would.  NOTE: a speed
    # measure only; the words written and their order are the same.

    def tcache_put(self, chunk, tc_idx):
        """tcache_put: push a chunk on its tcache bin, marked with tcache_key against double frees."""
        mem = self.mem
        tcache = self.tcache
        e = chunk + CHUNK_HDR_SZ
        wpages = mem.wpages
        we = wpages.get(e >> 12)
        wt = wpages.get(tcache >> 12)
        if we is None or wt is None or e & 15 or (tcache & 4095) + TCACHE_STRUCT_SIZE > PAGESIZE:
            return self.tcache_put_words(chunk, tc_idx)
        log = mem.undo.append
        i = (e & 4095) >> 3
        t = (tcache & 4095) >> 3
        log((we, i + 1, we[i + 1]))
        we[i + 1] = self.tcache_key                             # e->key
        h = t + (TCACHE_ENTRIES >> 3) + tc_idx
        head = wt[h]
        log((we, i, we[i]))
        we[i] = (e >> 12) ^ head                                # e->next = PROTECT_PTR(&e->next, head)
        log((wt, h, head))
        wt[h] = e
        c = t + (tc_idx >> 2)                                   # ++counts[tc_idx]
        old = wt[c]
        log((wt, c, old))
        wt[c] = (old + (1 << ((tc_idx & 3) * 16))) & MASK64

    def tcache_put_words(self, chunk, tc_idx):
        """tcache_put, word by word."""
        rd = self.mem.read_word
        wr = self.mem.write_word
        tcache = self.tcache
        e = chunk + CHUNK_HDR_SZ
        head = tcache + TCACHE_ENTRIES + 8 * tc_idx
        wr(e + 8, self.tcache_key)                              # e->key
        wr(e, (e >> 12) ^ rd(head))                             # e->next = PROTECT_PTR(&e->next, head)
        wr(head, e)
        # ++counts[tc_idx]: four uint16_t to a word; the caller saw it below tcache_count
        count = tcache + 2 * (tc_idx & ~3)
        wr(count, rd(count) + (1 << ((tc_idx & 3) * 16)))

    def tcache_get(self, tc_idx):
        """tcache_get: pop the most recently cached chunk of bin tc_idx (LIFO); returns mem."""
        mem = self.mem
        tcache = self.tcache
        wpages = mem.wpages
        wt = wpages.get(tcache >> 12)
        if wt is None or (tcache & 4095) + TCACHE_STRUCT_SIZE > PAGESIZE:
            return self.tcache_get_words(tc_idx)
        t = (tcache & 4095) >> 3
        h = t + (TCACHE_ENTRIES >> 3) + tc_idx
        e = wt[h]
        if e & MALLOC_ALIGN_MASK:
            self.malloc_printerr("malloc(): unaligned tcache chunk detected")
        we = wpages.get(e >> 12)
        if we is None:
            return self.tcache_get_words(tc_idx)
        log = mem.undo.append
        i = (e & 4095) >> 3
        log((wt, h, e))
        wt[h] = (e >> 12) ^ we[i]                               # REVEAL_PTR(e->next)
        c = t + (tc_idx >> 2)                                   # --counts[tc_idx]; it was above 0
        old = wt[c]
        log((wt, c, old))
        wt[c] = (old - (1 << ((tc_idx & 3) * 16))) & MASK64
        log((we, i + 1, we[i + 1]))
        we[i + 1] = 0                                           # e->key = 0
        note(self, "tcache_get: bin %d (chunk size %#x)", tc_idx, tc_idx * 16 + MINSIZE)
        return e

    def tcache_get_words(self, tc_idx):
        """tcache_get, word by word."""
        rd = self.mem.read_word
        wr = self.mem.write_word
        tcache = self.tcache
        head = tcache + TCACHE_ENTRIES + 8 * tc_idx
        e = rd(head)
        if e & MALLOC_ALIGN_MASK:
            self.malloc_printerr("malloc(): unaligned tcache chunk detected")
        wr(head, (e >> 12) ^ rd(e))                             # REVEAL_PTR(e->next)
        count = tcache + 2 * (tc_idx & ~3)                      # --counts[tc_idx]; it was above 0
        wr(count, rd(count) - (1 << ((tc_idx & 3) * 16)))
        wr(e + 8, 0)
        note(self, "tcache_get: bin %d (chunk size %#x)", tc_idx, tc_idx * 16 + MINSIZE)
        return e

    # == malloc ====================================================================================

    @traced(name="__libc_malloc")
    def libc_malloc(self, nbytes):
        """__libc_malloc: the tcache first, then _int_malloc on the main arena."""
        if not self.malloc_initialized:
            self.ptmalloc_init()
        tbytes = checked_request2size(nbytes)
        if tbytes == 0:
            self.errno = ENOMEM
            return 0
        tc_idx = (tbytes - MINSIZE + MALLOC_ALIGNMENT - 1) >> 4     # csize2tidx
        if not self.tcache:
            self.tcache_init()
        if tc_idx < self.mp.tcache_bins and self.tcache and self.tcache_count(tc_idx) > 0:
            return self.tcache_get(tc_idx)
        return self.int_malloc(self.av, nbytes)

    @traced(name="_int_malloc")
    def int_malloc(self, av, nbytes):
        """_int_malloc: the chunk for nbytes (int_malloc_chunk), filled by alloc_perturb as every path does."""
        victim = self.int_malloc_chunk(av, nbytes)
        if victim and self.perturb_byte:
            self.alloc_perturb(victim, nbytes)
        return victim

    def int_malloc_chunk(self, av, nbytes):
        """_int_malloc: carve nbytes from the arena; returns mem or 0 (errno ENOMEM).

        Steps, in glibc's order:
          1. a fastbin of exactly the size (stashing its other chunks in the tcache);
          2. a small bin of exactly the size (stashing likewise);
             for a large request, malloc_consolidate the fastbins first;
          3. the unsorted bin, oldest first: the last remainder for a small request,
             an exact fit (cached while the tcache bin has room), and every other
             chunk sorted into its small or large bin;
          4. for a large request, the best fit in its own large bin;
          5. the next non-empty bin found through the binmap, split;
          6. the top chunk, after one more malloc_consolidate if fastbins hold chunks;
          7. sysmalloc: mmap a chunk of its own, or grow the heap with brk.
        """
        nb = checked_request2size(nbytes)
        if nb == 0:
            self.errno = ENOMEM
            return 0
        mem = self.mem
        rd = mem.read_word
        wr = mem.write_word
        mp = self.mp
        tcache = self.tcache

        # 1. fastbins
        if nb <= self.global_max_fast:
            idx = fastbin_index(nb)
            fb = av + AV_FASTBINS + 8 * idx
            victim = rd(fb)
            if victim:
                return self.malloc_from_fastbin(av, fb, idx, victim, nb)

        # 2. small bins; a large request first consolidates the fastbins
        if nb < MIN_LARGE_SIZE:
            idx = nb >> 4
            b = av + AV_BINS + (idx - 1) * 16 - FD
            victim = rd(b + BK)
            if victim != b:
                return self.malloc_from_smallbin(av, b, victim, nb)
        else:
            idx = largebin_index(nb)
            if self.have_fastchunks(av):
                self.malloc_consolidate(av)

        tc_idx = csize2tidx(nb)
        tcache_nb = nb if tcache and tc_idx < mp.tcache_bins else 0
        return_cached = False
        tcache_unsorted_count = 0
        unsorted = av + AV_BINS - FD

        while True:
            # 3. the unsorted bin
            iters = 0
            while True:
                victim = rd(unsorted + BK)
                if victim == unsorted:
                    break
                bck = rd(victim + BK)
                size = rd(victim + SIZE) & ~SIZE_BITS
                nxt = victim + size
                system_mem = rd(av + AV_SYSTEM_MEM)
                if size <= CHUNK_HDR_SZ or size > system_mem:
                    self.malloc_printerr("malloc(): invalid size (unsorted)")
                next_size = rd(nxt + SIZE)
                if next_size < CHUNK_HDR_SZ or next_size > system_mem:
                    self.malloc_printerr("malloc(): invalid next size (unsorted)")
                if (rd(nxt + PREV_SIZE) & ~SIZE_BITS) != size:
                    self.malloc_printerr("malloc(): mismatching next->prev_size (unsorted)")
                if rd(bck + FD) != victim or rd(victim + FD) != unsorted:
                    self.malloc_printerr("malloc(): unsorted double linked list corrupted")
                if next_size & PREV_INUSE:
                    self.malloc_printerr("malloc(): invalid next->prev_inuse (unsorted)")

                # A small request takes the last remainder when it is alone in the
                # unsorted bin: runs of small requests then come out side by side.
                if (nb < MIN_LARGE_SIZE and bck == unsorted
                        and victim == rd(av + AV_LAST_REMAINDER) and size > nb + MINSIZE):
                    note(self, "_int_malloc: split the last remainder %#x", victim)
                    remainder = victim + nb
                    self.place_remainder(av, unsorted, remainder, size - nb)
                    wr(victim + SIZE, nb | PREV_INUSE)
                    return victim + CHUNK_HDR_SZ

                if rd(bck + FD) != victim:
                    self.malloc_printerr("malloc(): corrupted unsorted chunks 3")
                wr(unsorted + BK, bck)
                wr(bck + FD, unsorted)

                if size == nb:
                    self.set_inuse_bit_at_offset(victim, size)
                    if tcache_nb and self.tcache_count(tc_idx) < mp.tcache_count:
                        # Fill the tcache first; one of these is returned at the end.
                        self.tcache_put(victim, tc_idx)
                        return_cached = True
                        continue
                    note(self, "_int_malloc: exact fit in the unsorted bin %#x", victim)
                    return victim + CHUNK_HDR_SZ

                self.bin_chunk(av, victim, size)

                tcache_unsorted_count += 1
                if (return_cached and mp.tcache_unsorted_limit > 0
                        and tcache_unsorted_count > mp.tcache_unsorted_limit):
                    return self.tcache_get(tc_idx)
                iters += 1
                if iters >= MAX_ITERS:
                    break

            if return_cached:
                return self.tcache_get(tc_idx)

            # 4. a large request: the smallest chunk that fits in its own bin
            if nb >= MIN_LARGE_SIZE:
                b = av + AV_BINS + (idx - 1) * 16 - FD
                victim = rd(b + FD)
                if victim != b and rd(victim + SIZE) >= nb:
                    return self.malloc_from_largebin(av, b, victim, nb)

            # 5. the binmap: the next bin holding anything, best fit by construction
            victim = self.malloc_from_binmap(av, idx + 1, nb)
            if victim:
                return victim

            # 6. the top chunk
            victim = rd(av + AV_TOP)
            size = rd(victim + SIZE) & ~SIZE_BITS
            if size > rd(av + AV_SYSTEM_MEM):
                self.malloc_printerr("malloc(): corrupted top size")
            if size >= nb + MINSIZE:
                wr(av + AV_TOP, victim + nb)
                wr(victim + SIZE, nb | PREV_INUSE)
                wr(victim + nb + SIZE, (size - nb) | PREV_INUSE)
                note(self, "_int_malloc: split the top chunk %#x", victim)
                return victim + CHUNK_HDR_SZ
            if self.have_fastchunks(av):
                self.malloc_consolidate(av)
                idx = nb >> 4 if nb < MIN_LARGE_SIZE else largebin_index(nb)
                continue

            # 7. ask the system
            return self.sysmalloc(nb, av)

    def malloc_from_fastbin(self, av, fb, idx, victim, nb):
        """_int_malloc, fastbin case: pop the bin's first chunk; move its followers to the tcache."""
        mem = self.mem
        if victim & MALLOC_ALIGN_MASK:
            self.malloc_printerr("malloc(): unaligned fastbin chunk detected 2")
        mem.write_word(fb, self.reveal_ptr(victim + FD))
        if fastbin_index(self.chunksize(victim)) != idx:
            self.malloc_printerr("malloc(): memory corruption (fast)")
        tc_idx = csize2tidx(nb)
        if self.tcache and tc_idx < self.mp.tcache_bins:
            while self.tcache_count(tc_idx) < self.mp.tcache_count:
                tc_victim = mem.read_word(fb)
                if not tc_victim:
                    break
                if tc_victim & MALLOC_ALIGN_MASK:
                    self.malloc_printerr("malloc(): unaligned fastbin chunk detected 3")
                mem.write_word(fb, self.reveal_ptr(tc_victim + FD))
                self.tcache_put(tc_victim, tc_idx)
        note(self, "_int_malloc: fastbin %d gives %#x", idx, victim)
        return victim + CHUNK_HDR_SZ

    def malloc_from_smallbin(self, av, b, victim, nb):
        """_int_malloc, small bin case: take the oldest chunk; move the rest to the tcache."""
        mem = self.mem
        bck = mem.read_word(victim + BK)
        if mem.read_word(bck + FD) != victim:
            self.malloc_printerr("malloc(): smallbin double linked list corrupted")
        self.set_inuse_bit_at_offset(victim, nb)
        mem.write_word(b + BK, bck)
        mem.write_word(bck + FD, b)
        tc_idx = csize2tidx(nb)
        if self.tcache and tc_idx < self.mp.tcache_bins:
            while self.tcache_count(tc_idx) < self.mp.tcache_count:
                tc_victim = mem.read_word(b + BK)
                # NOTE: glibc spins forever if a corrupted bk is NULL here; the model stops.
                if tc_victim == b or tc_victim == 0:
                    break
                bck = mem.read_word(tc_victim + BK)
                self.set_inuse_bit_at_offset(tc_victim, nb)
                mem.write_word(b + BK, bck)
                mem.write_word(bck + FD, b)
                self.tcache_put(tc_victim, tc_idx)
        note(self, "_int_malloc: small bin %d gives %#x", nb >> 4, victim)
        return victim + CHUNK_HDR_SZ

    def malloc_from_largebin(self, av, b, victim, nb):
        """_int_malloc, large bin case: the smallest chunk >= nb, split if the rest is a chunk."""
        mem = self.mem
        victim = mem.read_word(victim + BK_NEXTSIZE)        # the smallest size in the bin
        while True:
            size = self.chunksize(victim)
            if size >= nb:
                break
            victim = mem.read_word(victim + BK_NEXTSIZE)
        # Take the second chunk of a size, so the skip list need not be rerouted.
        if (victim != mem.read_word(b + BK)
                and mem.read_word(victim + SIZE) == mem.read_word(mem.read_word(victim + FD) + SIZE)):
            victim = mem.read_word(victim + FD)
        note(self, "_int_malloc: best fit %#x (size %#x) in large bin", victim, size)
        self.take_chunk(av, victim, size, nb, "malloc(): corrupted unsorted chunks", False)
        return victim + CHUNK_HDR_SZ

    def malloc_from_binmap(self, av, idx, nb):
        """_int_malloc, binmap scan from bin idx up: the first non-empty bin's last chunk, or 0.

        Bits the scan finds set for empty bins are cleared on the way (the
        binmap is only a hint: unlinking never clears it).
        """
        mem = self.mem
        b = av + AV_BINS + (idx - 1) * 16 - FD
        block = idx >> BINMAPSHIFT
        bitmap = self.binmap(av, block)
        bit = 1 << (idx & (BITSPERMAP - 1))
        while True:
            if bit > bitmap or bit == 0:
                while True:
                    block += 1
                    if block >= BINMAPSIZE:
                        return 0
                    bitmap = self.binmap(av, block)
                    if bitmap:
                        break
                b = self.bin_at(av, block << BINMAPSHIFT)
                bit = 1
            while not bit & bitmap:
                b += 16
                bit = (bit << 1) & 0xffffffff
            victim = mem.read_word(b + BK)
            if victim == b:
                bitmap &= ~bit
                self.set_binmap(av, block, bitmap)
                b += 16
                bit = (bit << 1) & 0xffffffff
                continue
            size = self.chunksize(victim)
            note(self, "_int_malloc: binmap finds %#x (size %#x)", victim, size)
            # The first chunk of a higher bin must be big enough; a shrunk size header trips this.
            self.malloc_assert(size >= nb, "_int_malloc", "(unsigned long) (size) >= (unsigned long) (nb)")
            self.take_chunk(av, victim, size, nb, "malloc(): corrupted unsorted chunks 2", True)
            return victim + CHUNK_HDR_SZ

    def take_chunk(self, av, victim, size, nb, corrupt_message, advertise):
        """Unlink a binned chunk for a request of nb; split off any remainder to the unsorted bin.

        Shared tail of _int_malloc's large-bin and binmap cases.  With
        `advertise` (the binmap case) a small request's remainder becomes
        the last remainder.
        """
        mem = self.mem
        remainder_size = size - nb
        self.unlink_chunk(av, victim)
        if remainder_size < MINSIZE:
            self.set_inuse_bit_at_offset(victim, size)       # exhaust: hand out all of it
            return
        remainder = victim + nb
        unsorted = self.unsorted_chunks(av)
        fwd = mem.read_word(unsorted + FD)
        if mem.read_word(fwd + BK) != unsorted:
            self.malloc_printerr(corrupt_message)
        mem.write_word(remainder + BK, unsorted)
        mem.write_word(remainder + FD, fwd)
        mem.write_word(unsorted + FD, remainder)
        mem.write_word(fwd + BK, remainder)
        if advertise and nb < MIN_LARGE_SIZE:
            mem.write_word(av + AV_LAST_REMAINDER, remainder)
        if remainder_size >= MIN_LARGE_SIZE:
            mem.write_word(remainder + FD_NEXTSIZE, 0)
            mem.write_word(remainder + BK_NEXTSIZE, 0)
        mem.write_word(victim + SIZE, nb | PREV_INUSE)
        mem.write_word(remainder + SIZE, remainder_size | PREV_INUSE)
        mem.write_word(remainder + remainder_size + PREV_SIZE, remainder_size)

    def place_remainder(self, av, unsorted, remainder, remainder_size):
        """_int_malloc, last-remainder case: the rest becomes the unsorted bin's only chunk."""
        mem = self.mem
        mem.write_word(unsorted + BK, remainder)
        mem.write_word(unsorted + FD, remainder)
        mem.write_word(av + AV_LAST_REMAINDER, remainder)
        mem.write_word(remainder + BK, unsorted)
        mem.write_word(remainder + FD, unsorted)
        if remainder_size >= MIN_LARGE_SIZE:
            mem.write_word(remainder + FD_NEXTSIZE, 0)
            mem.write_word(remainder + BK_NEXTSIZE, 0)
        mem.write_word(remainder + SIZE, remainder_size | PREV_INUSE)
        mem.write_word(remainder + remainder_size + PREV_SIZE, remainder_size)

    def bin_chunk(self, av, victim, size):
        """_int_malloc, "place chunk in bin": a small bin's front, or a large bin in size order.

        Large bins are sorted largest first; the first chunk of each size is
        also on the fd_nextsize/bk_nextsize skip list, and a chunk of a size
        already present goes second, behind that size's first chunk.
        """
        mem = self.mem
        rd = mem.read_word
        wr = mem.write_word
        if size < MIN_LARGE_SIZE:
            victim_index = size >> 4
            bck = av + AV_BINS + (victim_index - 1) * 16 - FD
            fwd = rd(bck + FD)
        else:
            victim_index = largebin_index(size)
            bck = av + AV_BINS + (victim_index - 1) * 16 - FD
            fwd = rd(bck + FD)
            if fwd != bck:
                size |= PREV_INUSE      # compare with whole size fields, which have it set
                self.malloc_assert(not rd(rd(bck + BK) + SIZE) & NON_MAIN_ARENA, "_int_malloc",
                                   "chunk_main_arena (bck->bk)")
                if size < rd(rd(bck + BK) + SIZE):
                    # smaller than the smallest: goes last, a new size on the skip list
                    fwd = bck
                    bck = rd(bck + BK)
                    first = rd(fwd + FD)
                    wr(victim + FD_NEXTSIZE, first)
                    wr(victim + BK_NEXTSIZE, rd(first + BK_NEXTSIZE))
                    wr(rd(victim + BK_NEXTSIZE) + FD_NEXTSIZE, victim)
                    wr(first + BK_NEXTSIZE, victim)
                else:
                    self.malloc_assert(not rd(fwd + SIZE) & NON_MAIN_ARENA, "_int_malloc",
                                       "chunk_main_arena (fwd)")
                    while size < rd(fwd + SIZE):
                        fwd = rd(fwd + FD_NEXTSIZE)
                        self.malloc_assert(not rd(fwd + SIZE) & NON_MAIN_ARENA, "_int_malloc",
                                           "chunk_main_arena (fwd)")
                    if size == rd(fwd + SIZE):
                        fwd = rd(fwd + FD)      # always insert in the second position
                    else:
                        wr(victim + FD_NEXTSIZE, fwd)
                        wr(victim + BK_NEXTSIZE, rd(fwd + BK_NEXTSIZE))
                        if rd(rd(fwd + BK_NEXTSIZE) + FD_NEXTSIZE) != fwd:
                            self.malloc_printerr(
                                "malloc(): largebin double linked list corrupted (nextsize)")
                        wr(fwd + BK_NEXTSIZE, victim)
                        wr(rd(victim + BK_NEXTSIZE) + FD_NEXTSIZE, victim)
                    bck = rd(fwd + BK)
                    if rd(bck + FD) != fwd:
                        self.malloc_printerr("malloc(): largebin double linked list corrupted (bk)")
            else:
                wr(victim + FD_NEXTSIZE, victim)
                wr(victim + BK_NEXTSIZE, victim)
        self.mark_bin(av, victim_index)
        wr(victim + BK, bck)
        wr(victim + FD, fwd)
        wr(fwd + BK, victim)
        wr(bck + FD, victim)

    def unlink_chunk(self, av, p):
        """unlink_chunk: take a free chunk off its bin (and a large bin's skip list), with glibc's checks."""
        mem = self.mem
        rd = mem.read_word
        wr = mem.write_word
        size = rd(p + SIZE) & ~SIZE_BITS
        if size != rd(p + size + PREV_SIZE):
            self.malloc_printerr("corrupted size vs. prev_size")
        fd = rd(p + FD)
        bk = rd(p + BK)
        if rd(fd + BK) != p or rd(bk + FD) != p:
            self.malloc_printerr("corrupted double-linked list")
        wr(fd + BK, bk)
        wr(bk + FD, fd)
        if rd(p + SIZE) >= MIN_LARGE_SIZE and rd(p + FD_NEXTSIZE) != 0:
            fd_next = rd(p + FD_NEXTSIZE)
            bk_next = rd(p + BK_NEXTSIZE)
            if rd(fd_next + BK_NEXTSIZE) != p or rd(bk_next + FD_NEXTSIZE) != p:
                self.malloc_printerr("corrupted double-linked list (not small)")
            if rd(fd + FD_NEXTSIZE) == 0:
                # p headed its size and fd is the next of that size: fd takes p's place.
                if fd_next == p:
                    wr(fd + FD_NEXTSIZE, fd)
                    wr(fd + BK_NEXTSIZE, fd)
                else:
                    wr(fd + FD_NEXTSIZE, fd_next)
                    wr(fd + BK_NEXTSIZE, bk_next)
                    wr(fd_next + BK_NEXTSIZE, fd)
                    wr(bk_next + FD_NEXTSIZE, fd)
            else:
                wr(fd_next + BK_NEXTSIZE, bk_next)
                wr(bk_next + FD_NEXTSIZE, fd_next)

    # == sysmalloc: memory from the kernel ====================================================

    def sbrk(self, increment):
        """__sbrk: move the break by `increment` (a signed long); returns the old break or -1.

        Runs the process's brk system call through __brk, as glibc does:
        brk(0) the first time to learn the break, then brk(old + increment).
        """
        if self.curbrk is None:
            self.save_state()
            self.curbrk = self._brk_initial = self.process.brk(0)
        if increment == 0:
            return self.curbrk
        oldbrk = self.curbrk
        if (oldbrk + increment > MASK64) if increment > 0 else (oldbrk < -increment):
            self.errno = ENOMEM
            return -1
        if self.brk(oldbrk + increment) < 0:
            return -1
        return oldbrk

    def brk(self, addr):
        """__brk: the brk system call; -1 with ENOMEM when the kernel left the break short of addr."""
        self.save_state()
        self.curbrk = self.process.brk(addr)
        if self.curbrk < addr:
            self.errno = ENOMEM
            return -1
        return 0

    def morecore(self, increment):
        """__glibc_morecore: sbrk, with 0 (MORECORE_FAILURE) for failure."""
        if self.always_fail_morecore:
            return MORECORE_FAILURE
        result = self.sbrk(increment)
        return MORECORE_FAILURE if result == -1 else result

    def mmap(self, size):
        """MMAP: an anonymous private read-write mapping; MAP_FAILED (-1) on error."""
        size &= MASK64                  # a long in sysmalloc, a size_t to mmap
        try:
            addr = self.process.mmap(0, size, uapi.PROT_READ | uapi.PROT_WRITE,
                                     uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS)
        except OSError as e:
            self.errno = e.errno
            return MAP_FAILED
        self._new_mappings.append((addr, size))
        return addr

    def munmap(self, addr, length):
        """__munmap: give a mapping back (its pages go with it)."""
        try:
            self.process.munmap(addr, length)
        except OSError as e:
            # glibc ignores munmap's result: "the process will terminate shortly anyway".
            self.errno = e.errno

    @traced
    def sysmalloc(self, nb, av):
        """sysmalloc: top cannot serve nb; mmap a chunk of its own, or grow the heap with brk.

        Returns mem, or 0 with errno ENOMEM.  A request of at least
        mmap_threshold (while fewer than n_mmaps_max chunks are mapped) gets
        its own mapping.  Otherwise the break moves up by nb + top_pad +
        MINSIZE less what top already holds, rounded to pages; if brk fails,
        a 1 MiB (or larger) mmap stands in for the heap's extension and the
        arena becomes non-contiguous.  The new top is then split for nb.
        """
        mp = self.mp
        tried_mmap = False
        if nb >= mp.mmap_threshold and mp.n_mmaps < mp.n_mmaps_max:
            mm = self.sysmalloc_mmap(nb, PAGESIZE, av)
            if mm != MAP_FAILED:
                return mm
            tried_mmap = True
        note(self, "sysmalloc: grow the heap%s", " (mmap failed)" if tried_mmap else "")
        old_top = self.top(av)
        old_size = self.chunksize(old_top)
        old_end = (old_top + old_size) & MASK64
        # The "House of Orange" check: a top whose size was overwritten is caught here.
        self.malloc_assert(
            (old_top == self.initial_top(av) and old_size == 0)
            or (old_size >= MINSIZE and self.chunksize_nomask(old_top) & PREV_INUSE
                and old_end & (PAGESIZE - 1) == 0),
            "sysmalloc", "(old_top == initial_top (av) && old_size == 0) || ((unsigned long) (old_size) >= "
            "MINSIZE && prev_inuse (old_top) && ((unsigned long) old_end & (pagesize - 1)) == 0)")
        self.malloc_assert(old_size < nb + MINSIZE, "sysmalloc",
                           "(unsigned long) (old_size) < (unsigned long) (nb + MINSIZE)")
        self.sysmalloc_brk(nb, av)
        system_mem = self.system_mem(av)
        if system_mem > self.mem.read_word(av + AV_MAX_SYSTEM_MEM):
            self.mem.write_word(av + AV_MAX_SYSTEM_MEM, system_mem)

        # finally, do the allocation
        p = self.top(av)
        size = self.chunksize(p)
        if size >= nb + MINSIZE:
            self.set_top(av, p + nb)
            self.set_head(p, nb | PREV_INUSE)
            self.set_head(p + nb, (size - nb) | PREV_INUSE)
            return p + CHUNK_HDR_SZ
        self.errno = ENOMEM
        return 0

    @traced
    def sysmalloc_mmap(self, nb, pagesize, av):
        """sysmalloc_mmap: a chunk in a mapping of its own; prev_size holds the lead (0), IS_MMAPPED set."""
        mp = self.mp
        size = align_up(nb + SIZE_SZ, pagesize) & MASK64
        if size <= nb:
            return MAP_FAILED
        mm = self.mmap(size)
        if mm == MAP_FAILED:
            return MAP_FAILED
        # glibc's mmapped chunks start page aligned, so chunk2mem is 16-byte aligned: no front_misalign.
        self.save_state()
        self.mem.write_word(mm + PREV_SIZE, 0)
        self.set_head(mm, size | IS_MMAPPED)
        self.mmapped[mm] = size
        mp.n_mmaps += 1
        mp.max_n_mmaps = max(mp.max_n_mmaps, mp.n_mmaps)
        mp.mmapped_mem += size
        mp.max_mmapped_mem = max(mp.max_mmapped_mem, mp.mmapped_mem)
        return mm + CHUNK_HDR_SZ

    def sysmalloc_brk(self, nb, av):
        """sysmalloc, main arena: extend top through MORECORE (sbrk), falling back to mmap."""
        old_top = self.top(av)
        old_size = self.chunksize(old_top)
        old_end = old_top + old_size
        brk = snd_brk = MORECORE_FAILURE

        # `size` is a long in glibc: every step wraps as C's arithmetic does.
        size = signed64(nb + self.mp.top_pad + MINSIZE)
        if self.contiguous(av):
            size = signed64(size - old_size)    # hope to merge with what top already has
        size = signed64(align_up(size & MASK64, PAGESIZE))
        if size > 0:
            brk = self.morecore(size)

        if brk == MORECORE_FAILURE:
            # brk could not move (a mapping in the way, RLIMIT_DATA): map elsewhere.
            mbrk, size = self.sysmalloc_mmap_fallback(size, nb, old_size, PAGESIZE,
                                                      MMAP_AS_MORECORE_SIZE, av)
            if mbrk != MAP_FAILED:
                brk = mbrk
                snd_brk = brk + size
        if brk == MORECORE_FAILURE:
            return

        self.save_state()
        if self.mp.sbrk_base == 0:
            self.mp.sbrk_base = brk
        self.set_system_mem(av, self.system_mem(av) + size)

        if brk == old_end and snd_brk == MORECORE_FAILURE:
            note(self, "sysmalloc: the break moved up by %#x; top grows in place", size)
            self.set_head(old_top, (size + old_size) | PREV_INUSE)
            self.segments[-1][1] = brk + size
            return
        if self.contiguous(av) and old_size and brk < old_end:
            self.malloc_printerr("break adjusted to free malloc space")

        # First time through, a foreign sbrk, or a non-contiguous region: find the
        # real end of memory, align the new top and fence off the old one.
        front_misalign = 0
        correction = 0
        aligned_brk = brk
        if self.contiguous(av):
            if old_size:
                self.set_system_mem(av, self.system_mem(av) + brk - old_end)   # count foreign sbrk
            front_misalign = (brk + CHUNK_HDR_SZ) & MALLOC_ALIGN_MASK
            if front_misalign > 0:
                correction = MALLOC_ALIGNMENT - front_misalign
                aligned_brk += correction
            correction += old_size      # cannot merge with old_top: ask for its size again
            end_misalign = brk + size + correction
            correction += align_up(end_misalign, PAGESIZE) - end_misalign
            snd_brk = self.morecore(correction)
            if snd_brk == MORECORE_FAILURE:
                correction = 0
                snd_brk = self.morecore(0)
        elif snd_brk == MORECORE_FAILURE:
            snd_brk = self.morecore(0)

        if snd_brk == MORECORE_FAILURE:
            return
        self.set_top(av, aligned_brk)
        self.set_head(aligned_brk, (snd_brk - aligned_brk + correction) | PREV_INUSE)
        self.set_system_mem(av, self.system_mem(av) + correction)
        self.segments.append([aligned_brk, snd_brk + correction])
        if old_size != 0:
            # Two fenceposts end the old top so nothing ever merges across the gap.
            old_size = (old_size - 2 * CHUNK_HDR_SZ) & ~MALLOC_ALIGN_MASK
            self.set_head(old_top, old_size | PREV_INUSE)
            self.set_head(old_top + old_size, CHUNK_HDR_SZ | PREV_INUSE)
            self.set_head(old_top + old_size + CHUNK_HDR_SZ, CHUNK_HDR_SZ | PREV_INUSE)
            note(self, "sysmalloc: fenceposts after the old top %#x", old_top)
            if old_size >= MINSIZE:
                self.int_free(av, old_top, True)

    def sysmalloc_mmap_fallback(self, size, nb, old_size, minsize, pagesize, av):
        """sysmalloc_mmap_fallback: brk failed; map memory elsewhere to serve as more heap.

        Returns (address or MAP_FAILED, size mapped).  NOTE: glibc 2.36's
        sysmalloc passes (pagesize, MMAP_AS_MORECORE_SIZE) to parameters
        declared (minsize, pagesize), and the model keeps glibc's call as it
        is: in a contiguous arena the size is rounded up to a multiple of
        1 MiB (not to a page, with a 1 MiB floor), and once the arena is
        non-contiguous a fallback maps just the page-rounded request.
        """
        if self.contiguous(av):
            size = signed64(align_up((size + old_size) & MASK64, pagesize))   # cannot merge with old top
        if size & MASK64 < minsize:
            size = minsize
        if size & MASK64 <= nb:
            return MAP_FAILED, size
        mbrk = self.mmap(size)
        if mbrk == MAP_FAILED:
            return MAP_FAILED, size
        note(self, "sysmalloc: brk failed, %#x bytes of heap mapped at %#x", size, mbrk)
        self.set_noncontiguous(av)
        return mbrk, size

    @traced
    def systrim(self, pad, av):
        """systrim: give top's unused pages above `pad` back with a negative sbrk; 1 if any went back.

        Computed with C's mixed signed/unsigned arithmetic, as glibc does: with
        a top of exactly MINSIZE, top_area is -1, and the "release" is a
        negative page count, so the break moves up by a page.
        """
        top = self.top(av)
        top_size = self.chunksize(top)
        top_area = signed64(top_size - MINSIZE - 1)
        if (top_area & MASK64) <= pad:          # long compared with size_t: as unsigned
            return 0
        extra = signed64(((top_area & MASK64) - pad) & MASK64 & -PAGESIZE)
        if extra == 0:
            return 0
        current_brk = self.morecore(0)
        if current_brk != top + top_size:
            return 0            # a foreign sbrk moved the break: leave it alone
        self.morecore(-extra)
        new_brk = self.morecore(0)
        if new_brk == MORECORE_FAILURE:
            return 0
        released = current_brk - new_brk
        if released == 0:
            return 0
        note(self, "systrim: break lowered by %#x", released)
        self.save_state()
        self.segments[-1][1] -= released
        self.set_system_mem(av, self.system_mem(av) - released)
        self.set_head(top, (top_size - released) | PREV_INUSE)
        return 1

    @traced
    def munmap_chunk(self, p):
        """munmap_chunk: unmap an mmapped chunk's whole mapping, after glibc's sanity check."""
        size = self.chunksize(p)
        mem = p + CHUNK_HDR_SZ
        block = p - self.prev_size(p)
        total_size = self.prev_size(p) + size
        if ((block | total_size) & (PAGESIZE - 1)) or not powerof2(mem & (PAGESIZE - 1)):
            self.malloc_printerr("munmap_chunk(): invalid pointer")
        self.save_state()
        self.mp.n_mmaps -= 1
        self.mp.mmapped_mem -= total_size
        self.mmapped.pop(block, None)
        self.munmap(block, total_size)

    @traced
    def mremap_chunk(self, p, new_size):
        """mremap_chunk: resize an mmapped chunk's mapping with mremap(MREMAP_MAYMOVE); 0 on failure."""
        offset = self.prev_size(p)
        size = self.chunksize(p)
        block = p - offset
        mem = p + CHUNK_HDR_SZ
        total_size = offset + size
        if ((block | total_size) & (PAGESIZE - 1)) or not powerof2(mem & (PAGESIZE - 1)):
            self.malloc_printerr("mremap_chunk(): invalid pointer")
        new_size = align_up(new_size + offset + SIZE_SZ, PAGESIZE)
        if total_size == new_size:
            return p            # the same number of pages
        cp = self.mremap(block, total_size, new_size)
        if cp == MAP_FAILED:
            return 0
        p = cp + offset
        self.save_state()
        self.set_head(p, (new_size - offset) | IS_MMAPPED)
        self.mmapped.pop(block, None)
        self.mmapped[cp] = new_size
        self.mp.mmapped_mem += new_size - size - offset
        self.mp.max_mmapped_mem = max(self.mp.max_mmapped_mem, self.mp.mmapped_mem)
        return p

    def mremap(self, old, old_size, new_size):
        """__mremap(old, old_size, new_size, MREMAP_MAYMOVE): the process's mremap system call;
        the new address, or MAP_FAILED with errno.  The pages move with the mapping."""
        try:
            return self.process.mremap(old, old_size, new_size, uapi.MREMAP_MAYMOVE)
        except OSError as e:
            self.errno = e.errno
            return MAP_FAILED

    # == free ===========================================================================================

    @traced(name="__libc_free")
    def libc_free(self, mem):
        """__libc_free: munmap an mmapped chunk (raising the dynamic thresholds), else _int_free."""
        if mem == 0:
            return
        p = mem - CHUNK_HDR_SZ
        err = self.errno
        size_field = self.mem.read_word(p + SIZE)       # faults where nothing is mapped, as in the program
        if size_field & IS_MMAPPED:
            if (not self.mp.no_dyn_threshold and size_field > self.mp.mmap_threshold
                    and size_field <= DEFAULT_MMAP_THRESHOLD_MAX):
                # NOTE: glibc raises the thresholds before munmap_chunk's check; the
                # model checks first, so a call that aborts leaves them unchanged.
                self.check_mmapped_chunk(p, "munmap_chunk(): invalid pointer")
                self.save_state()
                self.mp.mmap_threshold = size_field & ~SIZE_BITS
                self.mp.trim_threshold = 2 * self.mp.mmap_threshold
                note(self, "free: mmap_threshold raised to %#x, trim_threshold to %#x",
                     self.mp.mmap_threshold, self.mp.trim_threshold)
            self.munmap_chunk(p)
        else:
            if not self.malloc_initialized:
                # NOTE: glibc's free() never runs ptmalloc_init; called before any
                # malloc, its tcache_init finds no arena for the thread and
                # arena_get2 maps a second one.  Non-main arenas are not modelled:
                # the model initialises the main arena instead.
                self.ptmalloc_init()
            if not self.tcache:
                self.tcache_init()
            av = self.av if not size_field & NON_MAIN_ARENA else self.arena_for_chunk(p)
            self.int_free(av, p, False)
        self.errno = err

    def check_mmapped_chunk(self, p, message):
        block = p - self.prev_size(p)
        total_size = self.prev_size(p) + self.chunksize(p)
        if ((block | total_size) & (PAGESIZE - 1)) or not powerof2((p + CHUNK_HDR_SZ) & (PAGESIZE - 1)):
            self.malloc_printerr(message)

    def arena_for_chunk(self, p):
        """arena_for_chunk: main_arena, unless NON_MAIN_ARENA is set.

        NOTE: non-main arenas are not modelled.  glibc would look for a
        heap_info at the 64 MiB boundary below p and follow its ar_ptr; in a
        single-threaded process there is none, and the program crashes there.
        """
        if not self.chunksize_nomask(p) & NON_MAIN_ARENA:
            return self.av
        heap = p & ~(2 * DEFAULT_MMAP_THRESHOLD_MAX - 1)
        self.mem.read_word(heap)                    # heap_for_ptr(p)->ar_ptr: faults if unmapped
        raise SegmentationFault(heap, SEGV_MAPERR,
                                "NON_MAIN_ARENA is set: arena_for_chunk looks for a heap_info that does not exist")

    @traced(name="_int_free")
    def int_free(self, av, p, have_lock):
        """_int_free: a chunk goes to the tcache, a fastbin, or is coalesced into the unsorted bin or top.

        Steps: glibc's pointer and size checks; the tcache (with the
        tcache_key double-free scan) while its bin holds fewer than 7; a
        fastbin for chunks up to 128 bytes; otherwise merge with free
        neighbours, put the result in the unsorted bin or into top, and when
        64 KiB or more became free, consolidate the fastbins and trim top past
        trim_threshold.
        """
        mem = self.mem
        rd = mem.read_word
        size = rd(p + SIZE) & ~SIZE_BITS
        if p > (-size & MASK64) or p & MALLOC_ALIGN_MASK:
            self.malloc_printerr("free(): invalid pointer")
        if size < MINSIZE or size & MALLOC_ALIGN_MASK:
            self.malloc_printerr("free(): invalid size")

        tcache = self.tcache
        tc_idx = (size - MINSIZE + MALLOC_ALIGNMENT - 1) >> 4      # csize2tidx
        if tcache and tc_idx < self.mp.tcache_bins:
            e = p + CHUNK_HDR_SZ
            if rd(e + 8) == self.tcache_key:
                self.tcache_double_free_scan(e, tc_idx)
            if self.tcache_count(tc_idx) < self.mp.tcache_count:
                self.tcache_put(p, tc_idx)
                note(self, "_int_free: into tcache bin %d", tc_idx)
                return

        if size <= self.global_max_fast:
            self.free_to_fastbin(av, p, size, have_lock)
        elif not rd(p + SIZE) & IS_MMAPPED:
            self.free_and_coalesce(av, p, size)
        else:
            self.munmap_chunk(p)

    def tcache_double_free_scan(self, e, tc_idx):
        """_int_free: the key matched; walk the bin to tell a double free from a coincidence."""
        tmp = self.tcache_entry(tc_idx)
        cnt = 0
        while tmp:
            if cnt >= self.mp.tcache_count:
                self.malloc_printerr("free(): too many chunks detected in tcache")
            if tmp & MALLOC_ALIGN_MASK:
                self.malloc_printerr("free(): unaligned chunk detected in tcache 2")
            if tmp == e:
                self.malloc_printerr("free(): double free detected in tcache 2")
            tmp = self.reveal_ptr(tmp)
            cnt += 1

    def free_to_fastbin(self, av, p, size, have_lock):
        """_int_free, fastbin case: push on the fastbin, refusing the chunk already on top of it."""
        mem = self.mem
        nxt = p + size
        if mem.read_word(nxt + SIZE) <= CHUNK_HDR_SZ or self.chunksize(nxt) >= self.system_mem(av):
            self.malloc_printerr("free(): invalid next size (fast)")
        self.free_perturb(p + CHUNK_HDR_SZ, size - CHUNK_HDR_SZ)
        self.set_have_fastchunks(av, 1)
        idx = fastbin_index(size)
        fb = av + AV_FASTBINS + 8 * idx
        old = mem.read_word(fb)
        if old == p:
            self.malloc_printerr("double free or corruption (fasttop)")
        mem.write_word(p + FD, self.protect_ptr(p + FD, old))
        mem.write_word(fb, p)
        if have_lock and old and fastbin_index(self.chunksize(old)) != idx:
            self.malloc_printerr("invalid fastbin entry (free)")
        note(self, "_int_free: into fastbin %d", idx)

    def free_and_coalesce(self, av, p, size):
        """_int_free, normal case: merge with free neighbours; the unsorted bin or top takes the result."""
        mem = self.mem
        rd = mem.read_word
        top = rd(av + AV_TOP)
        nextchunk = p + size
        if p == top:
            self.malloc_printerr("double free or corruption (top)")
        if self.contiguous(av) and nextchunk >= top + self.chunksize(top):
            self.malloc_printerr("double free or corruption (out)")
        if not rd(nextchunk + SIZE) & PREV_INUSE:
            self.malloc_printerr("double free or corruption (!prev)")
        nextsize = rd(nextchunk + SIZE) & ~SIZE_BITS
        if rd(nextchunk + SIZE) <= CHUNK_HDR_SZ or nextsize >= self.system_mem(av):
            self.malloc_printerr("free(): invalid next size (normal)")
        self.free_perturb(p + CHUNK_HDR_SZ, size - CHUNK_HDR_SZ)

        if not rd(p + SIZE) & PREV_INUSE:
            prevsize = rd(p + PREV_SIZE)
            size += prevsize
            p -= prevsize
            if self.chunksize(p) != prevsize:
                self.malloc_printerr("corrupted size vs. prev_size while consolidating")
            self.unlink_chunk(av, p)
            note(self, "_int_free: merged with the free chunk before, %#x", p)

        if nextchunk != top:
            if not self.inuse_bit_at_offset(nextchunk, nextsize):
                self.unlink_chunk(av, nextchunk)
                size += nextsize
                note(self, "_int_free: merged with the free chunk after, %#x", nextchunk)
            else:
                self.clear_inuse_bit_at_offset(nextchunk, 0)
            self.link_unsorted(av, p, size, "free(): corrupted unsorted chunks")
            note(self, "_int_free: %#x (size %#x) into the unsorted bin", p, size)
        else:
            size += nextsize
            self.set_head(p, size | PREV_INUSE)
            self.set_top(av, p)
            note(self, "_int_free: merged into top, now %#x bytes at %#x", size, p)

        if size >= FASTBIN_CONSOLIDATION_THRESHOLD:
            if self.have_fastchunks(av):
                self.malloc_consolidate(av)
            if self.chunksize(self.top(av)) >= self.mp.trim_threshold:
                self.systrim(self.mp.top_pad, av)

    def link_unsorted(self, av, p, size, corrupt_message):
        """Put free chunk p of `size` at the front of the unsorted bin and write its head and foot."""
        mem = self.mem
        bck = self.unsorted_chunks(av)
        fwd = mem.read_word(bck + FD)
        if mem.read_word(fwd + BK) != bck:
            self.malloc_printerr(corrupt_message)
        mem.write_word(p + FD, fwd)
        mem.write_word(p + BK, bck)
        if size >= MIN_LARGE_SIZE:
            mem.write_word(p + FD_NEXTSIZE, 0)
            mem.write_word(p + BK_NEXTSIZE, 0)
        mem.write_word(bck + FD, p)
        mem.write_word(fwd + BK, p)
        mem.write_word(p + SIZE, size | PREV_INUSE)
        mem.write_word(p + size + PREV_SIZE, size)

    def free_perturb(self, mem_addr, n):
        """free_perturb: with M_PERTURB, freed memory is filled with the perturb byte (touching its pages)."""
        if self.perturb_byte:
            self.mem.write_bytes(mem_addr, bytes([self.perturb_byte]) * n)

    def alloc_perturb(self, mem_addr, n):
        """alloc_perturb: with M_PERTURB, the n bytes asked for are filled with the perturb byte ^ 0xff."""
        if self.perturb_byte:
            self.mem.write_bytes(mem_addr, bytes([self.perturb_byte ^ 0xff]) * n)

    @traced
    def malloc_consolidate(self, av):
        """malloc_consolidate: empty every fastbin, merging each chunk with free neighbours into the unsorted bin or top."""
        mem = self.mem
        rd = mem.read_word
        self.set_have_fastchunks(av, 0)
        unsorted = self.unsorted_chunks(av)
        for i in range(NFASTBINS):
            fb = av + AV_FASTBINS + 8 * i
            p = rd(fb)
            mem.write_word(fb, 0)
            while p:
                if p & MALLOC_ALIGN_MASK:
                    self.malloc_printerr("malloc_consolidate(): unaligned fastbin chunk detected")
                if fastbin_index(self.chunksize(p)) != i:
                    self.malloc_printerr("malloc_consolidate(): invalid chunk size")
                nextp = self.reveal_ptr(p + FD)
                size = self.chunksize(p)
                nextchunk = p + size
                nextsize = self.chunksize(nextchunk)
                if not rd(p + SIZE) & PREV_INUSE:
                    prevsize = rd(p + PREV_SIZE)
                    size += prevsize
                    p -= prevsize
                    if self.chunksize(p) != prevsize:
                        self.malloc_printerr("corrupted size vs. prev_size in fastbins")
                    self.unlink_chunk(av, p)
                if nextchunk != rd(av + AV_TOP):
                    if not self.inuse_bit_at_offset(nextchunk, nextsize):
                        size += nextsize
                        self.unlink_chunk(av, nextchunk)
                    else:
                        self.clear_inuse_bit_at_offset(nextchunk, 0)
                    first_unsorted = rd(unsorted + FD)
                    mem.write_word(unsorted + FD, p)
                    mem.write_word(first_unsorted + BK, p)
                    if size >= MIN_LARGE_SIZE:
                        mem.write_word(p + FD_NEXTSIZE, 0)
                        mem.write_word(p + BK_NEXTSIZE, 0)
                    self.set_head(p, size | PREV_INUSE)
                    mem.write_word(p + BK, unsorted)
                    mem.write_word(p + FD, first_unsorted)
                    self.set_foot(p, size)
                else:
                    size += nextsize
                    self.set_head(p, size | PREV_INUSE)
                    self.set_top(av, p)
                p = nextp

    # == realloc ========================================================================================

    @traced(name="__libc_realloc")
    def libc_realloc(self, oldmem, nbytes):
        """__libc_realloc: realloc(p, 0) frees, realloc(0, n) mallocs, mmapped chunks use mremap."""
        if not self.malloc_initialized:
            self.ptmalloc_init()
        if nbytes == 0 and oldmem != 0:
            self.libc_free(oldmem)
            return 0
        if oldmem == 0:
            return self.libc_malloc(nbytes)
        oldp = oldmem - CHUNK_HDR_SZ
        oldsize = self.chunksize(oldp)
        if not self.chunk_is_mmapped(oldp):
            self.maybe_init_tcache()
            self.arena_for_chunk(oldp)
        if oldp > (-oldsize & MASK64) or oldp & MALLOC_ALIGN_MASK:
            self.malloc_printerr("realloc(): invalid pointer")
        nb = checked_request2size(nbytes)
        if nb == 0:
            self.errno = ENOMEM
            return 0
        if self.chunk_is_mmapped(oldp):
            return self.realloc_mmapped(oldmem, oldp, oldsize, nbytes, nb)
        return self.int_realloc(self.av, oldp, oldsize, nb)

    def realloc_mmapped(self, oldmem, oldp, oldsize, nbytes, nb):
        """__libc_realloc, mmapped case: mremap the mapping, else keep it if big enough, else move."""
        newp = self.mremap_chunk(oldp, nb)
        if newp:
            return newp + CHUNK_HDR_SZ
        if oldsize - SIZE_SZ >= nb:
            return oldmem               # mremap failed but the chunk is big enough
        newmem = self.libc_malloc(nbytes)
        if newmem == 0:
            return 0
        self.mem.copy(newmem, oldmem, oldsize - CHUNK_HDR_SZ)
        self.munmap_chunk(oldp)
        return newmem

    @traced(name="_int_realloc")
    def int_realloc(self, av, oldp, oldsize, nb):
        """_int_realloc: shrink in place, grow into top or a free next chunk, else malloc-copy-free."""
        if self.chunksize_nomask(oldp) <= CHUNK_HDR_SZ or oldsize >= self.system_mem(av):
            self.malloc_printerr("realloc(): invalid old size")
        nxt = oldp + oldsize
        nextsize = self.chunksize(nxt)
        if self.chunksize_nomask(nxt) <= CHUNK_HDR_SZ or nextsize >= self.system_mem(av):
            self.malloc_printerr("realloc(): invalid next size")

        if oldsize >= nb:
            newp, newsize = oldp, oldsize           # already big enough; split below
            note(self, "_int_realloc: shrink in place")
        elif nxt == self.top(av) and oldsize + nextsize >= nb + MINSIZE:
            note(self, "_int_realloc: grow into top")
            self.set_head_size(oldp, nb)
            self.set_top(av, oldp + nb)
            self.set_head(oldp + nb, (oldsize + nextsize - nb) | PREV_INUSE)
            return oldp + CHUNK_HDR_SZ
        elif nxt != self.top(av) and not self.inuse(nxt) and oldsize + nextsize >= nb:
            note(self, "_int_realloc: grow into the free chunk after")
            newp, newsize = oldp, oldsize + nextsize
            self.unlink_chunk(av, nxt)
        else:
            newmem = self.int_malloc(av, nb - MALLOC_ALIGN_MASK)
            if newmem == 0:
                return 0
            newp = newmem - CHUNK_HDR_SZ
            newsize = self.chunksize(newp)
            if newp == nxt:
                # malloc handed out the very next chunk: no copy needed
                newsize += oldsize
                newp = oldp
            else:
                note(self, "_int_realloc: move to %#x", newmem)
                self.mem.copy(newmem, oldp + CHUNK_HDR_SZ, oldsize - SIZE_SZ)
                self.int_free(av, oldp, True)
                return newmem

        remainder_size = newsize - nb
        if remainder_size < MINSIZE:
            self.set_head_size(newp, newsize)
            self.set_inuse_bit_at_offset(newp, newsize)
        else:
            remainder = newp + nb
            self.set_head_size(newp, nb)
            self.set_head(remainder, remainder_size | PREV_INUSE)
            self.set_inuse_bit_at_offset(remainder, remainder_size)   # so free() won't complain
            self.int_free(av, remainder, True)
        return newp + CHUNK_HDR_SZ

    # == memalign ======================================================================================

    @traced(name="__libc_memalign")
    def libc_memalign(self, alignment, nbytes):
        """__libc_memalign (also aligned_alloc)."""
        if not self.malloc_initialized:
            self.ptmalloc_init()
        return self.mid_memalign(alignment, nbytes)

    def mid_memalign(self, alignment, nbytes):
        """_mid_memalign: plain malloc up to 16; else round alignment up to a power of two >= 32."""
        if alignment <= MALLOC_ALIGNMENT:
            return self.libc_malloc(nbytes)
        if alignment < MINSIZE:
            alignment = MINSIZE
        if alignment > SIZE_MAX // 2 + 1:
            self.errno = EINVAL
            return 0
        if not powerof2(alignment):
            a = MALLOC_ALIGNMENT * 2
            while a < alignment:
                a <<= 1
            alignment = a
        return self.int_memalign(self.av, alignment, nbytes)

    @traced(name="_int_memalign")
    def int_memalign(self, av, alignment, nbytes):
        """_int_memalign: malloc nb + alignment + MINSIZE, then free the lead and the tail around the aligned spot."""
        nb = checked_request2size(nbytes)
        if nb == 0 or alignment > PTRDIFF_MAX:
            self.errno = ENOMEM
            return 0
        m = self.int_malloc(av, nb + alignment + MINSIZE)
        if m == 0:
            return 0
        p = m - CHUNK_HDR_SZ
        if m % alignment:
            brk = ((m + alignment - 1) & -alignment) - CHUNK_HDR_SZ
            if brk - p < MINSIZE:
                brk += alignment            # the lead must be a chunk of its own
            newp = brk
            leadsize = brk - p
            newsize = self.chunksize(p) - leadsize
            if self.chunk_is_mmapped(p):
                self.mem.write_word(newp + PREV_SIZE, self.prev_size(p) + leadsize)
                self.set_head(newp, newsize | IS_MMAPPED)
                return newp + CHUNK_HDR_SZ
            self.set_head(newp, newsize | PREV_INUSE)
            self.set_inuse_bit_at_offset(newp, newsize)
            self.set_head_size(p, leadsize)
            note(self, "_int_memalign: free the %#x-byte lead", leadsize)
            self.int_free(av, p, True)
            p = newp
        if not self.chunk_is_mmapped(p):
            size = self.chunksize(p)
            if size > nb + MINSIZE:
                remainder = p + nb
                self.set_head(remainder, (size - nb) | PREV_INUSE)
                self.set_head_size(p, nb)
                note(self, "_int_memalign: free the %#x-byte tail", size - nb)
                self.int_free(av, remainder, True)
        return p + CHUNK_HDR_SZ

    def posix_memalign_impl(self, alignment, nbytes):
        """__posix_memalign: EINVAL unless alignment is a power-of-two multiple of sizeof(void *)."""
        if not self.malloc_initialized:
            self.ptmalloc_init()
        if alignment % 8 != 0 or not powerof2(alignment // 8) or alignment == 0:
            return (EINVAL, 0)
        mem = self.mid_memalign(alignment, nbytes)
        return (0, mem) if mem else (ENOMEM, 0)

    def libc_valloc(self, nbytes):
        """__libc_valloc."""
        if not self.malloc_initialized:
            self.ptmalloc_init()
        return self.mid_memalign(PAGESIZE, nbytes)

    def libc_pvalloc(self, nbytes):
        """__libc_pvalloc: glibc 2.36 rounds with `& -(pagesize - 1)`, as written there."""
        if not self.malloc_initialized:
            self.ptmalloc_init()
        rounded = nbytes + PAGESIZE - 1
        if rounded > MASK64:
            self.errno = ENOMEM
            return 0
        rounded &= -(PAGESIZE - 1) & MASK64
        return self.mid_memalign(PAGESIZE, rounded)

    # == calloc ========================================================================================

    @traced(name="__libc_calloc")
    def libc_calloc(self, n, elem_size):
        """__libc_calloc: _int_malloc (never the tcache) and clear, skipping memory fresh from the kernel."""
        nbytes = n * elem_size
        if nbytes > PTRDIFF_MAX:             # __builtin_mul_overflow into a ptrdiff_t
            self.errno = ENOMEM
            return 0
        if not self.malloc_initialized:
            self.ptmalloc_init()
        self.maybe_init_tcache()
        av = self.av
        oldtop = self.top(av)
        oldtopsize = self.chunksize(oldtop)
        # Whatever the break hands out is zero (MORECORE_CLEARS): only the old top is cleared.
        # NOTE: glibc's source widens oldtopsize to the highest break ever reached when
        # MORECORE_CLEARS < 2; Debian's build of 2.36 does not (its __libc_calloc takes
        # chunksize(top) alone), so memory the break gave back and took again is not
        # cleared either.  Page-fault counts on the reference machine show it.
        mem = self.int_malloc(av, nbytes)
        if mem == 0:
            return 0
        p = mem - CHUNK_HDR_SZ
        if self.chunk_is_mmapped(p):
            if self.perturb_byte:           # alloc_perturb filled it: clear what was asked for
                self.mem.zero(mem, nbytes)
            return mem                      # fresh pages are zero already
        csz = self.chunksize(p)
        if self.perturb_byte == 0 and p == oldtop and csz > oldtopsize:
            csz = oldtopsize                # only the part that was in top before the break moved
        self.mem.zero(mem, csz - SIZE_SZ)
        return mem

    # == malloc_usable_size, malloc_trim, mallopt ===================================================

    def malloc_usable_size_impl(self, mem):
        """__malloc_usable_size / musable: chunk size less the header (less 16 when mmapped)."""
        if mem == 0:
            return 0
        p = mem - CHUNK_HDR_SZ
        if self.chunk_is_mmapped(p):
            return self.chunksize(p) - CHUNK_HDR_SZ
        if self.inuse(p):
            return self.chunksize(p) - SIZE_SZ
        return 0

    @traced(name="__malloc_trim")
    def malloc_trim_impl(self, pad):
        """__malloc_trim: mtrim on every arena (the main one here)."""
        if not self.malloc_initialized:
            self.ptmalloc_init()
        return self.mtrim(self.av, pad)

    @traced
    def mtrim(self, av, pad):
        """mtrim: consolidate; MADV_DONTNEED the whole pages inside free chunks; then systrim."""
        self.malloc_consolidate(av)
        psindex = bin_index(PAGESIZE)
        psm1 = PAGESIZE - 1
        result = 0
        for i in range(1, NBINS):
            if i != 1 and i < psindex:
                continue
            b = self.bin_at(av, i)
            p = self.mem.read_word(b + BK)
            while p != b:
                size = self.chunksize(p)
                if size > psm1 + SIZEOF_MALLOC_CHUNK:
                    paligned_mem = (p + SIZEOF_MALLOC_CHUNK + psm1) & ~psm1
                    size -= paligned_mem - p
                    if size > psm1:
                        self.madvise_dontneed(paligned_mem, size & ~psm1)
                        result = 1
                p = self.mem.read_word(p + BK)
        return result | self.systrim(pad, av)

    def madvise_dontneed(self, addr, length):
        """__madvise(MADV_DONTNEED): the pages go back; they read as zero when touched again."""
        try:
            self.process.madvise(addr, length, uapi.MADV_DONTNEED)
        except OSError:
            return

    @traced(name="__libc_mallopt")
    def libc_mallopt(self, param, value):
        """__libc_mallopt: consolidate, then set one parameter; setting a threshold or pad ends the dynamic rule."""
        if not self.malloc_initialized:
            self.ptmalloc_init()
        mp = self.mp
        self.malloc_consolidate(self.av)      # before max_fast can change
        self.save_state()
        uvalue = value & MASK64               # int to size_t, as the helpers receive it
        if param == uapi.M_MXFAST:
            if uvalue <= MAX_FAST_SIZE:
                self.set_max_fast(uvalue)
                return 1
            return 0
        if param == uapi.M_TRIM_THRESHOLD:
            mp.trim_threshold = uvalue
        elif param == uapi.M_TOP_PAD:
            mp.top_pad = uvalue
        elif param == uapi.M_MMAP_THRESHOLD:
            mp.mmap_threshold = uvalue
        elif param == uapi.M_MMAP_MAX:
            mp.n_mmaps_max = value              # an int32_t
        elif param == uapi.M_PERTURB:
            self.perturb_byte = value
            return 1
        elif param == uapi.M_ARENA_TEST:
            if value > 0:
                mp.arena_test = uvalue
            return 1
        elif param == uapi.M_ARENA_MAX:
            if value > 0:
                mp.arena_max = uvalue
            return 1
        else:
            return 1            # M_CHECK_ACTION and unknown parameters: accepted, ignored
        mp.no_dyn_threshold = 1
        return 1

    # == statistics =================================================================================

    def int_mallinfo(self, av):
        """int_mallinfo: walk top, the fastbins and the bins, counting free chunks and bytes."""
        mem = self.mem
        avail = self.chunksize(self.top(av))
        nblocks = 1
        nfastblocks = 0
        fastavail = 0
        for i in range(NFASTBINS):
            p = mem.read_word(av + AV_FASTBINS + 8 * i)
            while p:
                if p & MALLOC_ALIGN_MASK:
                    self.malloc_printerr("int_mallinfo(): unaligned fastbin chunk detected")
                nfastblocks += 1
                fastavail += self.chunksize(p)
                p = self.reveal_ptr(p + FD)
        avail += fastavail
        for i in range(1, NBINS):
            b = self.bin_at(av, i)
            p = mem.read_word(b + BK)
            while p != b:
                nblocks += 1
                avail += self.chunksize(p)
                p = mem.read_word(p + BK)
        system_mem = self.system_mem(av)
        return Mallinfo2(arena=system_mem, ordblks=nblocks, smblks=nfastblocks,
                         hblks=self.mp.n_mmaps, hblkhd=self.mp.mmapped_mem, usmblks=0,
                         fsmblks=fastavail, uordblks=system_mem - avail, fordblks=avail,
                         keepcost=self.chunksize(self.top(av)))

    @traced(name="__libc_mallinfo2")
    def libc_mallinfo2(self):
        """__libc_mallinfo2."""
        if not self.malloc_initialized:
            self.ptmalloc_init()
        return self.int_mallinfo(self.av)

    def malloc_stats_impl(self):
        """__malloc_stats: the report glibc writes to stderr, with its unsigned int truncations."""
        if not self.malloc_initialized:
            self.ptmalloc_init()
        u32 = 0xffffffff
        mi = self.int_mallinfo(self.av)
        system_b = (self.mp.mmapped_mem + mi.arena) & u32
        in_use_b = (self.mp.mmapped_mem + mi.uordblks) & u32
        return ("Arena 0:\n"
                f"system bytes     = {mi.arena & u32:10d}\n"
                f"in use bytes     = {mi.uordblks & u32:10d}\n"
                "Total (incl. mmap):\n"
                f"system bytes     = {system_b:10d}\n"
                f"in use bytes     = {in_use_b:10d}\n"
                f"max mmap regions = {self.mp.max_n_mmaps & u32:10d}\n"
                f"max mmap bytes   = {self.mp.max_mmapped_mem:10d}\n")

    # == views for checks and figures ===========================================================

    def heap_range(self):
        """(start, end) of the brk heap: sbrk_base to the break, or None before the first sbrk."""
        if not self.mp.sbrk_base:
            return None
        return self.mp.sbrk_base, self.curbrk

    def tcache_chunks(self):
        """{tc_idx: [chunk, ...]} in list order (the next malloc of that size takes the first)."""
        out = {}
        if not self.tcache:
            return out
        for i in range(self.mp.tcache_bins):
            e = self.tcache_entry(i)
            chunks = []
            while e and len(chunks) <= MAX_TCACHE_COUNT:
                chunks.append(e - CHUNK_HDR_SZ)
                e = self.reveal_ptr(e)
            if chunks:
                out[i] = chunks
        return out

    def fastbin_chunks(self):
        """{idx: [chunk, ...]} for the non-empty fastbins, in list order."""
        out = {}
        if not self.malloc_initialized:
            return out
        for i in range(NFASTBINS):
            p = self.mem.read_word(self.fastbin(self.av, i))
            chunks = []
            while p and len(chunks) < 1 << 20:
                chunks.append(p)
                p = self.reveal_ptr(p + FD)
            if chunks:
                out[i] = chunks
        return out

    def bin_chunks(self):
        """{bin index: [chunk, ...]} for the unsorted (1), small and large bins, walking fd from the head."""
        out = {}
        if not self.malloc_initialized:
            return out
        for i in range(1, NBINS):
            b = self.bin_at(self.av, i)
            p = self.mem.read_word(b + FD)
            chunks = []
            while p != b and len(chunks) < 1 << 20:
                chunks.append(p)
                p = self.mem.read_word(p + FD)
            if chunks:
                out[i] = chunks
        return out

    def chunks(self):
        """Every chunk the arena got from the kernel, in address order, as Chunk(addr, size, flags, state).

        Walks each stretch of heap from its start to top, or to the two
        fenceposts sysmalloc left when the heap could not grow in place.
        """
        where = self.chunk_places()
        top = self.top(self.av) if self.malloc_initialized else 0
        out = []
        for start, end in self.segments:
            p = start
            while p < end:
                word = self.chunksize_nomask(p)
                size = word & ~SIZE_BITS
                if p == top:
                    out.append(Chunk(p, size, word & SIZE_BITS, "top"))
                    break
                if size == CHUNK_HDR_SZ:
                    out.append(Chunk(p, size, word & SIZE_BITS, "fencepost"))
                else:
                    out.append(Chunk(p, size, word & SIZE_BITS, where.get(p, "inuse")))
                if size == 0:
                    break
                p += size
        return out

    def chunk_places(self):
        """{chunk: "tcache" | "fastbin" | "unsorted" | "smallbin" | "largebin"} for every cached or binned chunk."""
        where = {}
        for lst in self.tcache_chunks().values():
            for c in lst:
                where[c] = "tcache"
        for lst in self.fastbin_chunks().values():
            for c in lst:
                where[c] = "fastbin"
        for i, lst in self.bin_chunks().items():
            kind = "unsorted" if i == 1 else "smallbin" if i < NSMALLBINS else "largebin"
            for c in lst:
                where[c] = kind
        return where


def main_arena_address(process):
    """&main_arena: at its offset in libc.so.6, where the dynamic loader mapped libc."""
    base = getattr(process, "libc_base", None)
    if base:
        return base + MAIN_ARENA_OFFSET
    return MAIN_ARENA_FALLBACK


# == invariants ======================================================================================

_heaps = weakref.WeakKeyDictionary()        # machine -> WeakSet of Libc with a heap


def register_heap_check(libc):
    """Put check_heaps on the machine's m.checks once, and remember this libc for it."""
    machine = libc.machine
    if machine is None or not hasattr(machine, "checks"):
        return
    libcs = _heaps.get(machine)
    if libcs is None:
        libcs = _heaps[machine] = weakref.WeakSet()
        machine.checks.append(check_heaps)
    libcs.add(libc)


def check_heaps(machine):
    """m.checks entry: check_heap for every process of the machine that has a libc heap."""
    for libc in list(_heaps.get(machine, ())):
        if not getattr(libc.process, "alive", True):
            continue
        check_heap(libc)


def check_heap(libc):
    """Prove the heap's invariants; raise InvariantError naming the first one broken.

    - the chunk chain walks each stretch of heap to top or to the fenceposts
      closing it, and top ends at or below the break (the program may sbrk);
    - every chunk is 16-byte aligned with a size that is a multiple of 16,
      never IS_MMAPPED or NON_MAIN_ARENA;
    - PREV_INUSE is clear exactly after a binned free chunk, whose foot holds
      its size; no two binned chunks touch, and none touches top;
    - bins hold only free chunks, each in the right bin, every chunk in one
      list only; lists are doubly linked; large bins sorted, with a correct
      skip list; the binmap marks every non-empty bin;
    - tcache bins hold at most tcache_count in-use chunks of their size with
      tcache_key set, their counts match; fastbins hold in-use chunks of their size;
    - mmapped chunks: sizes and mp_'s counters agree;
    - system_mem is what brk gave the heap.
    """
    from ..errors import InvariantError

    def fail(what):
        raise InvariantError(f"check_heap: {what}")

    if not libc.malloc_initialized:
        return
    with libc.mem.peeking():
        check_heap_words(libc, fail)


def check_heap_words(libc, fail):
    """check_heap's body, reading memory through the checker's view."""
    av = libc.av
    rd = libc.mem.read_word
    mp = libc.mp

    # bins: linked lists, sizes, order
    listed = {}

    def claim(p, where):
        if p in listed:
            fail(f"chunk {p:#x} is in {listed[p]} and in {where}")
        listed[p] = where

    for i in range(1, NBINS):
        b = libc.bin_at(av, i)
        prev = b
        p = rd(b + FD)
        count = 0
        last_size = None
        while p != b:
            count += 1
            if count > 1 << 20:
                fail(f"bin {i} does not end")
            if rd(p + BK) != prev:
                fail(f"bin {i}: chunk {p:#x} has bk {rd(p + BK):#x}, expected {prev:#x}")
            claim(p, f"bin {i}")
            size = libc.chunksize(p)
            if i >= 2 and bin_index(size) != i:
                fail(f"chunk {p:#x} of size {size:#x} sits in bin {i}, not {bin_index(size)}")
            if i >= NSMALLBINS and last_size is not None and size > last_size:
                fail(f"large bin {i} is not sorted largest first at {p:#x}")
            last_size = size
            prev = p
            p = rd(p + FD)
        if rd(b + BK) != prev:
            fail(f"bin {i}: the head's bk is {rd(b + BK):#x}, expected {prev:#x}")
        if count and i >= 2 and not libc.binmap(av, i >> BINMAPSHIFT) & (1 << (i & 31)):
            fail(f"bin {i} holds chunks but its binmap bit is clear")
        if i >= NSMALLBINS and count:
            check_skip_list(libc, i, fail)

    for i, lst in libc.fastbin_chunks().items():
        for p in lst:
            claim(p, f"fastbin {i}")
            if fastbin_index(libc.chunksize(p)) != i:
                fail(f"chunk {p:#x} of size {libc.chunksize(p):#x} sits in fastbin {i}")
    if libc.tcache:
        for i in range(TCACHE_MAX_BINS):
            e = libc.tcache_entry(i)
            n = 0
            while e:
                n += 1
                if n > mp.tcache_count:
                    fail(f"tcache bin {i} holds more than {mp.tcache_count} chunks")
                p = e - CHUNK_HDR_SZ
                claim(p, f"tcache bin {i}")
                if csize2tidx(libc.chunksize(p)) != i:
                    fail(f"chunk {p:#x} of size {libc.chunksize(p):#x} sits in tcache bin {i}")
                if rd(e + 8) != libc.tcache_key:
                    fail(f"chunk {p:#x} in tcache bin {i} lacks tcache_key")
                e = libc.reveal_ptr(e)
            if n != libc.tcache_count(i):
                fail(f"tcache bin {i} counts {libc.tcache_count(i)} but holds {n}")

    # the chunk chain, stretch by stretch
    top = libc.top(av)
    if not libc.segments:
        if top != libc.initial_top(av):
            fail("top moved before the heap exists")
    seen = set()
    for k, (start, end) in enumerate(libc.segments):
        last = k == len(libc.segments) - 1
        p = start
        prev_free = False
        while True:
            if p >= end:
                fail(f"the chunk chain runs past {end:#x} without meeting top or fenceposts")
            word = rd(p + SIZE)
            size = word & ~SIZE_BITS
            if p & MALLOC_ALIGN_MASK or size & MALLOC_ALIGN_MASK:
                fail(f"chunk {p:#x} of size {size:#x} is misaligned")
            if word & (IS_MMAPPED | NON_MAIN_ARENA):
                fail(f"heap chunk {p:#x} has IS_MMAPPED or NON_MAIN_ARENA set")
            if bool(word & PREV_INUSE) == prev_free:
                fail(f"chunk {p:#x}: PREV_INUSE is {word & 1} after a {'free' if prev_free else 'used'} chunk")
            if p == top:
                if not last:
                    fail(f"top {p:#x} is not in the newest stretch of heap")
                if p + size != end:
                    fail(f"top {p:#x} + {size:#x} ends at {p + size:#x}, not at {end:#x}")
                if size < MINSIZE:
                    fail(f"top {p:#x} is smaller than MINSIZE")
                if libc.contiguous(av) and end > libc.curbrk:
                    fail(f"top ends at {end:#x}, past the break {libc.curbrk:#x}")
                break
            if size == CHUNK_HDR_SZ and rd(p + size + SIZE) == CHUNK_HDR_SZ | PREV_INUSE:
                if last:
                    fail(f"fenceposts at {p:#x} in the stretch that holds top")
                break               # the two fenceposts that close an old stretch
            if size < MINSIZE:
                fail(f"chunk {p:#x} has size {size:#x} < MINSIZE")
            where = listed.get(p, "")
            free = where.startswith("bin")
            if free:
                if prev_free:
                    fail(f"free chunk {p:#x} follows a free chunk: they were not merged")
                if rd(p + size + PREV_SIZE) != size:
                    fail(f"free chunk {p:#x}: foot {rd(p + size + PREV_SIZE):#x} != size {size:#x}")
                if p + size == top:
                    fail(f"free chunk {p:#x} borders top but was not merged into it")
            seen.add(p)
            prev_free = free
            p += size
    missing = [c for c in listed if c not in seen]
    if missing:
        fail(f"chunk {missing[0]:#x} ({listed[missing[0]]}) is not on the chunk chain")
    if libc.segments and libc.contiguous(av):
        # The program may have moved the break up itself since (sbrk): that is not the arena's.
        expected = libc.segments[-1][1] - libc.mp.sbrk_base
        if libc.system_mem(av) != expected:
            fail(f"system_mem {libc.system_mem(av):#x} != heap size {expected:#x}")
    # mmapped chunks
    if len(libc.mmapped) != mp.n_mmaps:
        fail(f"n_mmaps {mp.n_mmaps} but {len(libc.mmapped)} mmapped chunks")
    if sum(libc.mmapped.values()) != mp.mmapped_mem:
        fail(f"mmapped_mem {mp.mmapped_mem:#x} != the mapped chunks' total")
    check_page_views(libc, fail)


def check_page_views(libc, fail):
    """libc's page views agree with the process's TLB: the memory malloc reads is the process's.

    Every view of a process page is the words of the TLB entry for that
    page (for stores, an entry that allows stores); the arena's pages are
    libc's own.
    """
    mem = libc.mem
    tlb = _memory.mm_tlb(mem.mm)
    for pages, store in ((mem.rpages, False), (mem.wpages, True)):
        for vpn, words in pages.items():
            own = mem.arena.get(vpn)
            if own is not None:
                if words is not own:
                    fail(f"the view of arena page {vpn << 12:#x} is not the arena's")
                continue
            e = tlb.get(vpn)
            if e is None or e[1] is not words or (store and not e[2]):
                fail(f"libc's view of page {vpn << 12:#x} is not the TLB's "
                     f"({'no entry' if e is None else 'another entry'})")


def check_skip_list(libc, i, fail):
    """Large bin i: fd_nextsize links the first chunk of each size, largest first, circularly."""
    rd = libc.mem.read_word
    b = libc.bin_at(libc.av, i)
    heads = []
    p = rd(b + FD)
    last = None
    while p != b:
        size = libc.chunksize(p)
        if size != last:
            heads.append(p)
            last = size
        elif rd(p + FD_NEXTSIZE) not in (0,):
            fail(f"large bin {i}: {p:#x} is not the first of its size but has fd_nextsize")
        p = rd(p + FD)
    for k, h in enumerate(heads):
        nxt = heads[(k + 1) % len(heads)]
        prv = heads[k - 1]
        if rd(h + FD_NEXTSIZE) != nxt or rd(h + BK_NEXTSIZE) != prv:
            fail(f"large bin {i}: skip list broken at {h:#x}")
