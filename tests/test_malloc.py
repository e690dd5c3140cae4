"""glibc 2.36 malloc on the model (mmlab.libc.malloc): examples, the API's edges, and misuse.

These run everywhere; tests/test_host_malloc.py compares the same traces with
this machine's glibc.  The golden outputs below were printed by glibc 2.36
(Debian 2.36-9) through mmlab/libc/malloc_driver.c.
"""
import pytest

from mmlab import Machine, SegmentationFault
from mmlab.errors import ENOMEM, EINVAL
from mmlab.libc import GlibcAbort, check_heap
from mmlab.libc import malloc as M
from mmlab.libc.replay import replay
from mmlab.libc.scenarios import SCENARIOS
from mmlab import uapi


@pytest.fixture
def libc(p):
    return p.libc


def run(m, name):
    """Replay a named scenario on a fresh process; check the heap after."""
    proc = m.spawn()
    out = replay(proc.libc, SCENARIOS[name][1])
    m.check()
    return out


# -- sizes ---------------------------------------------------------------------------------

def test_request2size():
    assert M.request2size(0) == 0x20          # the minimum chunk
    assert M.request2size(24) == 0x20         # 24 bytes share the next chunk's prev_size
    assert M.request2size(25) == 0x30
    assert M.request2size(1000) == 0x3f0
    assert M.request2size(1032) == 0x410      # the largest tcache size
    assert M.checked_request2size(M.PTRDIFF_MAX + 1) == 0     # refused outright


def test_bin_indexes():
    assert M.csize2tidx(0x20) == 0
    assert M.csize2tidx(0x410) == 63          # tcache bins stop at 1032-byte requests
    assert M.fastbin_index(0x20) == 0
    assert M.fastbin_index(0x80) == 6         # DEFAULT_MXFAST: 128-byte chunks
    assert M.smallbin_index(0x3f0) == 63
    assert M.largebin_index(0x400) == 64      # the first large bin
    assert M.largebin_index(0xc00) == 96      # 64-byte spacing ends at 3 KiB: then 512
    assert M.largebin_index(0x18000) == 122   # 32 KiB spacing
    assert M.largebin_index(1 << 30) == 126   # the last bin takes everything else
    assert M.bin_index(4096) == 99            # mtrim's psindex


def test_malloc_state_layout():
    assert M.SIZEOF_MALLOC_STATE == 0x898                     # sizeof(struct malloc_state) on x86_64
    assert M.Libc.bin_at(0, 1) == M.AV_TOP                    # the unsorted bin overlays top, last_remainder
    assert M.TCACHE_STRUCT_SIZE == 0x280                      # 640 bytes: chunk 0x290


# -- golden traces (printed by the real glibc) -------------------------------------------------

GOLDEN = {
    "tcache_lifo": [
        "start arena=0", "m 0 heap+0x2a0 24 0x21000", "m 1 heap+0x2c0 24 0x21000",
        "m 2 heap+0x2e0 24 0x21000", "f 0 0x21000", "f 1 0x21000", "m 3 heap+0x2c0 24 0x21000",
        "m 4 heap+0x2a0 24 0x21000", "i 135168 1 0 0 0 0 752 134416 134416"],
    "last_remainder": [
        "start arena=0", "m 0 heap+0x2a0 4008 0x21000", "m 1 heap+0x1250 24 0x21000",
        "f 0 0x21000", "m 2 heap+0x2a0 104 0x21000", "m 3 heap+0x310 104 0x21000",
        "m 4 heap+0x380 200 0x21000", "m 5 heap+0x450 104 0x21000",
        "i 135168 2 0 0 0 0 1232 133936 130464"],
    "top_extension": [
        "start arena=0", "m 0 heap+0x2a0 100008 0x21000", "m 1 heap+0x18950 100008 0x52000",
        "m 2 heap+0x31000 50008 0x52000", "m 3 heap+0x3d360 131000 0x7e000",
        "i 516096 1 0 0 0 0 381712 134384 134384"],
    "mmap_threshold": [
        "start arena=0", "m 0 heap+0x2a0 131048 0x21000", "m 1 mmap+0x10 135152 0x21000",
        "m 2 mmap+0x10 200688 0x21000", "f 2 0x21000", "m 3 heap+0x20290 200008 0x71000",
        "m 4 mmap+0x10 303088 0x71000", "i 462848 1 0 2 438272 0 331728 131120 131120",
        "f 1 0x71000", "f 4 0x71000", "m 5 heap+0x50fe0 250008 0xaf000",
        "i 716800 1 0 0 0 0 581744 135056 135056"],
    "realloc_mmapped": [
        "start arena=0", "m 0 mmap+0x10 200688 0x21000", "r 0 mmap+0x10 401392 0x21000",
        "r 0 mmap+0x10 303088 0x21000", "r 0 mmap+0x10 4080 0x21000",
        "r 0 mmap+0x10 5001200 0x21000", "r 0 mmap+0x10 135152 0x21000",
        "i 135168 1 0 1 135168 0 656 134512 134512"],
    "malloc_trim_tiny_top": [
        "start arena=0", "m 0 heap+0x2a0 24 0x21000", "m 1 heap+0x2c0 134440 0x21000",
        "i 135168 1 0 0 0 0 135136 32 32", "t 1 0x22000", "i 139264 1 0 0 0 0 135136 4128 4128"],
    "huge_requests": [
        "start arena=0", "m 0 0 0 0x0", "m 1 0 0 0x21000", "m 2 0 0 0x21000", "c 3 0 0 0x21000",
        "a 4 0 0 0x21000", "i 135168 1 0 0 0 0 656 134512 134512"],
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_trace(m, name):
    assert run(m, name) == GOLDEN[name]


def test_tcache_full_then_fastbin(m):
    out = run(m, "tcache_full_then_fastbin")
    assert out[19] == "i 135168 1 2 0 0 96 992 134176 134080"     # 2 chunks (96 bytes) in a fastbin
    assert [line.split()[2] for line in out[20:27]] == [           # the tcache first, LIFO
        "heap+0x3c0", "heap+0x390", "heap+0x360", "heap+0x330", "heap+0x300", "heap+0x2d0", "heap+0x2a0"]
    assert out[27:29] == ["m 17 heap+0x420 40 0x21000",            # then the fastbin, which refilled
                          "m 18 heap+0x3f0 40 0x21000"]            # the tcache on the way


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_keeps_heap_consistent(m, name):
    out = run(m, name)
    assert out[0] == "start arena=0"
    assert len(out) == len(SCENARIOS[name][1]) + 1


# -- the API --------------------------------------------------------------------------------------

def test_first_malloc_makes_the_heap(p, libc):
    a = libc.malloc(24)
    start = libc.mp.sbrk_base
    assert a == start + 0x2a0                        # after the 0x290-byte tcache_perthread_struct
    assert libc.tcache == start + 0x10
    assert libc.curbrk == start + 0x21000            # 0x290 + 0x20000 top_pad + MINSIZE, in pages
    assert libc.malloc_usable_size(a) == 24
    assert libc.chunksize(a - 16) == 0x20


def test_first_malloc_syscalls(m):
    proc = m.spawn()
    with m.trace() as t:
        proc.libc.malloc(24)
    brks = [(e.args["brk"], e.result) for e in t.events if e.func == "__do_sys_brk"]
    start = proc.libc.mp.sbrk_base
    assert brks == [(0, hex(start)),                                   # sbrk's first brk(0)
                    (start + 0x21000, hex(start + 0x21000))]           # as strace shows it


def test_malloc_zero_is_a_minimum_chunk(libc):
    a = libc.malloc(0)
    assert a != 0
    assert libc.malloc_usable_size(a) == 24


def test_huge_and_negative_sizes_fail_with_enomem(libc):
    assert libc.malloc(-1) == 0                      # (size_t)-1
    assert libc.errno == ENOMEM
    assert libc.malloc(1 << 63) == 0                 # above PTRDIFF_MAX
    assert libc.calloc(1 << 32, 1 << 32) == 0        # the product overflows
    assert libc.realloc(0, -5) == 0


def test_bad_python_arguments(libc):
    with pytest.raises(TypeError):
        libc.malloc(1.5)                             # not an int
    with pytest.raises(TypeError):
        libc.malloc("24")
    with pytest.raises(TypeError):
        libc.free(None)
    with pytest.raises(ValueError):
        libc.malloc(1 << 64)                         # does not fit a size_t
    with pytest.raises(ValueError):
        libc.free(-16)                               # not an address
    with pytest.raises(ValueError):
        libc.mallopt(uapi.M_TOP_PAD, 1 << 31)        # value is a C int


def test_free_null_does_nothing(libc):
    libc.free(0)
    assert not libc.malloc_initialized               # not even ptmalloc_init


def test_mmapped_chunk_and_dynamic_threshold(p, libc):
    a = libc.malloc(200000)
    assert a & 0xfff == 0x10                          # a mapping of its own, header first
    assert libc.chunk_is_mmapped(a - 16)
    assert libc.malloc_usable_size(a) == 200688       # 49 pages less 16 bytes
    assert libc.mp.n_mmaps == 1
    libc.free(a)
    assert libc.mp.mmap_threshold == 200704           # raised to the freed chunk's size
    assert libc.mp.trim_threshold == 2 * 200704
    assert libc.mp.n_mmaps == 0


def test_mallopt_ends_the_dynamic_rule(libc):
    assert libc.mallopt(uapi.M_MMAP_THRESHOLD, 1 << 20) == 1
    assert libc.mp.no_dyn_threshold == 1
    a = libc.malloc(2 << 20)
    libc.free(a)
    assert libc.mp.mmap_threshold == 1 << 20          # no longer moved by free
    assert libc.mallopt(uapi.M_MXFAST, 161) == 0      # above MAX_FAST_SIZE: refused
    assert libc.mallopt(uapi.M_MXFAST, 0) == 1        # fastbins off
    assert libc.global_max_fast == 16


def test_calloc_clears_reused_memory(libc):
    a = libc.malloc(2000)
    libc.malloc(24)
    libc.free(a)                                      # a's words now hold bin links
    assert libc.mem.read_word(a) != 0
    b = libc.calloc(1, 2000)
    assert b == a
    assert all(libc.mem.read_word(b + off) == 0 for off in range(0, 2000, 8))


def test_realloc_edges(libc):
    a = libc.malloc(100)
    assert libc.realloc(a, 0) == 0                    # frees, returns NULL
    b = libc.malloc(100)
    assert b == a                                     # a went to the tcache
    c = libc.realloc(0, 100)                          # realloc(NULL, n) is malloc(n)
    assert c != 0 and c != b
    assert libc.realloc(c, 1 << 63) == 0              # failure keeps the old block
    assert libc.malloc_usable_size(c) == 104


def test_memalign_family(libc):
    a = libc.memalign(4096, 100)
    assert a % 4096 == 0
    assert libc.aligned_alloc(64, 10) % 64 == 0
    assert libc.memalign(48, 8) % 64 == 0             # rounded up to a power of two
    assert libc.posix_memalign(24, 8) == (EINVAL, 0)  # not a power of two times sizeof(void *)
    err, b = libc.posix_memalign(256, 1000)
    assert err == 0 and b % 256 == 0
    assert libc.valloc(10) % 4096 == 0
    assert libc.memalign(1 << 63, 8) == 0             # alignment above PTRDIFF_MAX
    assert libc.errno == ENOMEM


def test_mallinfo2_and_stats(libc):
    libc.malloc(24)
    libc.free(libc.malloc(200000))
    mi = libc.mallinfo2()
    assert mi.arena == 0x21000
    assert mi.uordblks == 0x290 + 0x20
    assert mi.fordblks == mi.keepcost == 0x21000 - 0x2b0
    assert mi.hblks == 0
    assert libc.malloc_stats() == (
        "Arena 0:\n"
        "system bytes     =     135168\n"
        "in use bytes     =        688\n"
        "Total (incl. mmap):\n"
        "system bytes     =     135168\n"
        "in use bytes     =        688\n"
        "max mmap regions =          1\n"
        "max mmap bytes   =     200704\n")


def vma_at(p, addr):
    return next((v for v in p.vmas if v.start <= addr < v.end), None)


def test_heap_lives_in_the_process_vmas(p, libc):
    a = libc.malloc(1000)
    b = libc.malloc(300000)
    heap = vma_at(p, a)
    assert heap.name == "[heap]"
    assert heap.end == libc.curbrk
    assert vma_at(p, b) is not None                   # an anonymous mapping of its own
    assert vma_at(p, libc.av) is not None             # main_arena: in libc's .data
    assert "libc.so.6" in vma_at(p, libc.av).name
    libc.free(b)
    assert vma_at(p, b) is None                       # munmap'ed


def test_malloc_trim_returns_pages(p, libc):
    a = libc.malloc(50000)
    libc.malloc(24)
    libc.free(a)
    before = libc.curbrk
    assert libc.malloc_trim(0) == 1
    assert libc.curbrk < before                       # systrim lowered the break
    m_ = p.machine
    m_.check()


def test_trace_names_glibc_functions(m):
    proc = m.spawn()
    with m.trace() as t:
        proc.libc.malloc(24)
    calls = t.calls()
    for name in ("__libc_malloc", "ptmalloc_init", "tcache_init", "_int_malloc", "sysmalloc"):
        assert name in calls
    with m.trace() as t:
        proc.libc.free(proc.libc.malloc(40))
    assert "_int_free" in t.calls()
    assert any("tcache" in n for n in t.notes())


def test_views(libc):
    a = libc.malloc(24)
    b = libc.malloc(2000)
    libc.malloc(24)
    libc.free(a)
    libc.free(b)
    states = {c.addr: c.state for c in libc.chunks()}
    assert states[a - 16] == "tcache"
    assert states[b - 16] == "unsorted"
    assert libc.chunks()[0].addr == libc.mp.sbrk_base           # the tcache_perthread_struct
    assert libc.chunks()[-1].state == "top"
    assert libc.bin_chunks() == {1: [b - 16]}
    assert libc.tcache_chunks() == {0: [a - 16]}


# -- misuse: glibc's checks, with the model left as it was ---------------------------------

def snapshot(libc):
    return (libc.mem.snapshot(), libc.curbrk, vars(libc.mp).copy(), libc.tcache, dict(libc.mmapped))


def expect_abort(libc, message, fn, *args):
    """fn(*args) aborts with glibc's message and changes nothing."""
    before = snapshot(libc)
    with pytest.raises(GlibcAbort) as info:
        fn(*args)
    assert info.value.message == message
    assert str(info.value) == message
    assert snapshot(libc) == before                   # the failed call changed nothing


def corrupt(libc, addr, value):
    """Overwrite a word of the heap with the program's own store, as a buffer overflow would;
    returns the word to put back.  Words of main_arena (libc's .data) are poked in libc's pages."""
    if libc.av <= addr < libc.av + M.SIZEOF_MALLOC_STATE:
        old = libc.mem.read_word(addr)
        libc.mem.write_word(addr, value)
        return old
    p = libc.process
    old = int.from_bytes(p.load(addr, 8), "little")
    p.store(addr, value.to_bytes(8, "little"))
    return old


def test_double_free_in_tcache(m, libc):
    a = libc.malloc(24)
    libc.free(a)
    expect_abort(libc, "free(): double free detected in tcache 2", libc.free, a)
    m.check()                                         # the heap is still consistent
    assert libc.malloc(24) == a                       # and malloc goes on


def test_double_free_in_fastbin(libc):
    chunks = [libc.malloc(40) for _ in range(8)]
    for c in chunks:
        libc.free(c)                                  # 7 in the tcache, the 8th in a fastbin
    expect_abort(libc, "double free or corruption (fasttop)", libc.free, chunks[-1])


def test_double_free_of_a_normal_chunk(libc):
    a = libc.malloc(2000)
    libc.malloc(24)
    libc.free(a)
    expect_abort(libc, "double free or corruption (!prev)", libc.free, a)


def test_double_free_merged_into_top(libc):
    libc.malloc(24)
    a = libc.malloc(2000)
    libc.free(a)                                      # merges into top
    expect_abort(libc, "double free or corruption (top)", libc.free, a)


def test_free_of_pointers_malloc_never_gave(p, libc):
    a = libc.malloc(100)
    expect_abort(libc, "free(): invalid pointer", libc.free, a + 8)     # misaligned chunk
    expect_abort(libc, "free(): invalid pointer", libc.free, a + 16)    # size word 0
    stack = next(v for v in p.vmas if v.name == "[stack]")
    expect_abort(libc, "free(): invalid pointer", libc.free, stack.start + 0x100)


def test_free_of_unmapped_memory_faults(libc):
    libc.malloc(24)
    before = snapshot(libc)
    with pytest.raises(SegmentationFault):
        libc.free(0x1000)                             # reading its header faults
    assert snapshot(libc) == before


def test_double_free_of_mmapped_chunk_faults(libc):
    a = libc.malloc(300000)
    libc.free(a)
    with pytest.raises(SegmentationFault):
        libc.free(a)                                  # the mapping is gone


# Corruption, as a buffer overflow in the program would cause it: each case
# overwrites one word, sees glibc's check fire, puts the word back and finds
# the heap whole again.
CORRUPTIONS = [
    # (name, glibc's message)
    ("invalid_size", "free(): invalid size"),
    ("invalid_next_size_fast", "free(): invalid next size (fast)"),
    ("invalid_next_size_normal", "free(): invalid next size (normal)"),
    ("munmap_chunk", "munmap_chunk(): invalid pointer"),
    ("unaligned_tcache", "malloc(): unaligned tcache chunk detected"),
    ("unaligned_fastbin", "malloc(): unaligned fastbin chunk detected 2"),
    ("fastbin_size", "malloc(): memory corruption (fast)"),
    ("unsorted_size", "malloc(): invalid size (unsorted)"),
    ("unsorted_links", "malloc(): unsorted double linked list corrupted"),
    ("unsorted_prev_size", "malloc(): mismatching next->prev_size (unsorted)"),
    ("double_linked_list", "corrupted double-linked list"),
    ("size_vs_prev_size", "corrupted size vs. prev_size"),
    ("top_size", "malloc(): corrupted top size"),
    ("realloc_old_size", "realloc(): invalid old size"),
    ("mremap_chunk", "mremap_chunk(): invalid pointer"),
]


def setup_corruption(libc, name):
    """Build a heap, overwrite one word; returns (addr, value, call, args)."""
    if name == "invalid_size":
        a = libc.malloc(24)
        return a - 8, 0x11, libc.free, (a,)                       # a size below MINSIZE
    if name in ("invalid_next_size_fast", "invalid_next_size_normal"):
        size = 40 if name.endswith("fast") else 2000
        chunks = [libc.malloc(size) for _ in range(8)]
        libc.malloc(24)                                            # so the next chunk is not top
        for c in chunks[:7]:
            libc.free(c)                                           # fill the tcache
        nxt = chunks[7] - 16 + libc.chunksize(chunks[7] - 16)
        return nxt + 8, 0x1, libc.free, (chunks[7],)               # the next chunk's size: 0
    if name == "munmap_chunk":
        a = libc.malloc(300000)
        return a - 16, 8, libc.free, (a,)                          # prev_size: an unaligned lead
    if name == "mremap_chunk":
        a = libc.malloc(300000)
        return a - 16, 8, libc.realloc, (a, 400000)
    if name == "unaligned_tcache":
        a = libc.malloc(24)
        libc.free(a)
        return libc.tcache + M.TCACHE_ENTRIES, a + 8, libc.malloc, (24,)   # entries[0]: misaligned
    if name in ("unaligned_fastbin", "fastbin_size"):
        chunks = [libc.malloc(40) for _ in range(9)]
        for c in chunks:
            libc.free(c)                                           # 7 cached, 2 in the fastbin
        for _ in range(7):
            libc.malloc(40)                                        # empty the tcache
        head = chunks[8] - 16
        if name == "unaligned_fastbin":
            fb = libc.fastbin(libc.av, 1)
            return fb, head + 8, libc.malloc, (40,)
        return head + 8, 0x51, libc.malloc, (40,)
    if name.startswith("unsorted"):
        a = libc.malloc(2000)
        libc.malloc(24)
        libc.free(a)
        if name == "unsorted_size":
            return a - 8, 0x100001, libc.malloc, (3000,)           # more than the arena has
        if name == "unsorted_links":
            return a, a, libc.malloc, (3000,)                      # fd no longer the bin
        return a - 16 + 0x7e0, 0x10, libc.malloc, (3000,)          # the foot
    if name in ("double_linked_list", "size_vs_prev_size"):
        a = libc.malloc(2000)
        libc.malloc(24)
        b = libc.malloc(2000)
        libc.malloc(24)
        libc.free(a)
        libc.free(b)
        libc.malloc(4000)                                          # sorts a and b into a bin
        # malloc(1900) takes b, the bin's last chunk
        if name == "double_linked_list":
            return b + 8, b - 16, libc.malloc, (1900,)             # b->bk points at b
        return b - 16 + 0x7e0, 0x7f0, libc.malloc, (1900,)         # b's foot disagrees
    if name == "top_size":
        libc.malloc(24)
        top = libc.top(libc.av)
        return top + 8, 1 << 40, libc.malloc, (4000,)
    if name == "realloc_old_size":
        a = libc.malloc(100)
        return a - 8, 0x10_0000_0001, libc.realloc, (a, 200)
    raise AssertionError(name)


@pytest.mark.parametrize("name,message", CORRUPTIONS)
def test_corruption_is_caught(m, libc, name, message):
    addr, value, call, args = setup_corruption(libc, name)
    old = corrupt(libc, addr, value)
    expect_abort(libc, message, call, *args)
    corrupt(libc, addr, old)                          # repaired: the heap is whole again
    m.check()


def test_realloc_invalid_pointer(libc):
    a = libc.malloc(100)
    expect_abort(libc, "realloc(): invalid pointer", libc.realloc, a + 8, 10)


def test_first_call_aborting_leaves_no_heap(p, libc):
    # free() of a bogus pointer as the very first call initialises malloc,
    # makes the tcache (growing the heap), then aborts: all of it is undone.
    stack = next(v for v in p.vmas if v.name == "[stack]")
    brk = p.brk(0)
    with pytest.raises(GlibcAbort):
        libc.free(stack.start + 0x100)
    assert not libc.malloc_initialized and libc.tcache == 0
    assert p.brk(0) == brk                            # the break moved back
    assert libc.malloc(24) != 0
    check_heap(libc)


def test_malloc_memory_faults_like_any_page(p, libc):
    a = libc.malloc(100000)
    assert p.rusage() == (2, 0)                     # the heap's first page (tcache) and the page of top's header
    assert a & 0xfff == 0x2a0                       # so the block's first and last pages are present
    before = p.rusage()[0]
    p.touch(a, 100000, write=True)                  # first touches of the other pages fault
    pages = (a + 100000 - 1) // 4096 - a // 4096 + 1
    assert p.rusage()[0] - before == pages - 2      # one minor fault per page, no fault-around for anon


def test_chunk_headers_live_in_the_process_memory(p, libc):
    a = libc.malloc(24)
    b = libc.malloc(200000)
    assert p.load(a - 8, 8) == (0x21).to_bytes(8, "little")               # size 0x20 | PREV_INUSE
    assert p.load(b - 16, 16) == bytes(8) + (0x31002).to_bytes(8, "little")   # prev_size 0, 0x31000 | IS_MMAPPED
    libc.free(a)                                    # into the tcache: next (safe-linked) and key
    assert int.from_bytes(p.load(a + 8, 8), "little") == libc.tcache_key
    assert int.from_bytes(p.load(a, 8), "little") == a >> 12                # PROTECT_PTR(&e->next, NULL)
    counts = p.load(libc.tcache, 2)                 # tcache_perthread_struct.counts[0]
    assert counts == (1).to_bytes(2, "little")


def test_a_header_overwritten_by_the_program_is_caught(m, p, libc):
    a = libc.malloc(24)
    p.store(a - 8, (0x11).to_bytes(8, "little"))    # a buffer underflow writes over the size
    expect_abort(libc, "free(): invalid size", libc.free, a)
    p.store(a - 8, (0x21).to_bytes(8, "little"))    # put back: the heap is whole again
    libc.free(a)
    m.check()


def test_first_mmapped_chunk_takes_one_fault(p, libc):
    libc.malloc(24)
    before = p.rusage()
    b = libc.malloc(200000)                         # mmap, then glibc writes the chunk's header
    assert p.rusage()[0] - before[0] == 1
    assert p.pagemap(b - 16) >> 63 == 1             # the header's page is present
    assert p.pagemap(b + 4096) >> 63 == 0           # the rest is not


def test_check_of_a_corrupted_link_neither_faults_nor_signals():
    # a use-after-free write into a tcache entry: m.check() names it, without a SIGSEGV and without
    # faulting the page it points into (the checker reads the page tables, not through the TLB)
    from mmlab import InvariantError
    m = Machine(ram="256MiB")
    p = m.spawn("a.out")
    libc = p.libc
    a = libc.malloc(24)
    libc.malloc(24)
    libc.free(a)
    for target in (0x414141414141 << 4, a + 0x10000):       # unmapped; in top, not yet touched
        p.store(a, ((a >> 12) ^ target).to_bytes(8, "little"))
        faults = p.rusage()
        with pytest.raises(InvariantError, match="no page present"):
            m.check()
        assert p.rusage() == faults


def test_perturb_fills_blocks_as_glibc_does():
    # mallopt(M_PERTURB, 0x41): alloc_perturb writes 0x41 ^ 0xff over what was asked for; a chunk freed to
    # the unsorted bin gets 0x41 over its user area (past the links free writes after); tcache hits get neither
    m = Machine(ram="256MiB")
    p = m.spawn("a.out")
    libc = p.libc
    assert libc.mallopt(uapi.M_PERTURB, 0x41) == 1
    a = libc.malloc(2000)
    libc.malloc(24)                                          # keeps a off top
    assert p.load(a, 2000) == bytes([0xbe]) * 2000
    libc.free(a)                                             # 2000 bytes: past the tcache, to the unsorted bin
    # fd, bk, then fd_nextsize and bk_nextsize cleared (a large chunk), then the perturb byte
    assert p.load(a + 16, 16) == bytes(16) and p.load(a + 32, 64) == b"\x41" * 64
    t = libc.malloc(24)
    p.store(t + 16, b"XYZ")
    libc.free(t)
    assert libc.malloc(24) == t and p.load(t + 16, 3) == b"XYZ"    # tcache put and get: no fill
    m.check()


def test_fork_gives_the_child_a_copy_of_malloc():
    # the child's malloc carves from the inherited heap where the parent's would, and frees what the
    # parent allocated before the fork (main_arena, mp_ and the heap are copy-on-write copies)
    m = Machine(ram="256MiB")
    p = m.spawn("a.out")
    libc = p.libc
    a, big = libc.malloc(24), libc.malloc(300000)
    c = p.fork()
    child = c.libc
    assert child is not libc and child.malloc(40) == libc.malloc(40)
    child.free(a)
    child.free(big)
    assert (child.mp.n_mmaps, libc.mp.n_mmaps) == (0, 1)
    assert child.malloc(24) == a                             # from the child's own tcache
    m.check()
    c.exit()
    libc.free(big)
    m.check()
