"""Named malloc traces: each shows one rule of glibc's allocator.

SCENARIOS maps a name to (what it shows, trace).  The traces are in the
language of mmlab.libc.replay, so each runs on the model (replay) and on this
machine's glibc (run_host), and the tests compare the two line by line.
Sizes are user requests; chunk sizes are request + 8 rounded up to 16
(at least 32): 24 -> 0x20, 40 -> 0x30, 500 -> 0x200, 1000 -> 0x3f0.
"""


def _lines(*parts):
    out = []
    for part in parts:
        out.extend(part if isinstance(part, list) else part.split(";"))
    return [x.strip() for x in out if x.strip()]


def _hold(first_id, size, n=7):
    """Malloc n chunks of `size` (to free later with _release, filling that tcache bin)."""
    return [f"m {first_id + k} {size}" for k in range(n)]


def _release(first_id, n=7):
    return [f"f {first_id + k}" for k in range(n)]


SCENARIOS = {
    "tcache_lifo": (
        "freed chunks come back last in, first out from the tcache",
        _lines("m 0 24; m 1 24; m 2 24; f 0; f 1; m 3 24; m 4 24; i")),
    "tcache_full_then_fastbin": (
        "the 8th and 9th free of a size go to a fastbin; malloc refills the tcache from it",
        _lines([f"m {k} 40" for k in range(9)], [f"f {k}" for k in range(9)], "i",
               [f"m {10 + k} 40" for k in range(9)], "i")),
    "fastbin_consolidation": (
        "a large request consolidates the fastbins: neighbours merge into one free chunk",
        _lines(_hold(20, 100), "m 0 100; m 1 100; m 2 100; m 3 24", _release(20),
               "f 0; f 1; f 2; i; m 4 2000; i; m 5 300; i")),
    "unsorted_to_smallbin": (
        "chunks wait in the unsorted bin until a malloc sorts them into small bins",
        _lines(_hold(20, 500), "m 0 500; m 1 24; m 2 500; m 3 24; m 4 700; m 5 24", _release(20),
               "f 0; f 2; f 4; i; m 6 2000; i; m 7 500; i; m 8 500; i")),
    "largebin_best_fit": (
        "large bins keep sizes in order; malloc takes the smallest chunk that fits",
        _lines("m 0 4000; m 1 24; m 2 5000; m 3 24; m 4 6000; m 5 24; m 6 5008; m 7 24",
               "f 0; f 2; f 4; f 6; m 8 10000; i; m 9 4990; i; m 10 4000; i; m 11 4500; i")),
    "last_remainder": (
        "runs of small requests split the last remainder, side by side",
        _lines("m 0 4000; m 1 24; f 0; m 2 100; m 3 100; m 4 200; m 5 100; i")),
    "top_extension": (
        "the heap grows by the request plus top_pad (128 KiB), rounded to pages",
        _lines("m 0 100000; m 1 100000; m 2 50000; m 3 131000; i")),
    "mmap_threshold": (
        "128 KiB and up go to mmap, until a free raises the threshold to that chunk's size",
        _lines("m 0 131048; m 1 131049; m 2 200000; f 2; m 3 200000; m 4 300000; i; f 1; f 4",
               "m 5 250000; i")),
    "dynamic_threshold_cap": (
        "the dynamic threshold stops at 32 MiB: bigger mmapped chunks do not raise it",
        _lines("m 0 40000000; f 0; m 1 300000; i; m 2 20000000; f 2; m 3 300000; i")),
    "trim_after_free": (
        "freeing memory at the top past trim_threshold lowers the break",
        _lines("m 0 100000; m 1 100000; m 2 100000; i; f 2; i; f 1; i",
               "m 3 300000; f 3; m 4 300000; m 5 300000; f 5; i; f 4; i")),
    "malloc_trim": (
        "malloc_trim gives back whole free pages inside chunks (madvise) and above top (brk)",
        _lines("m 0 50000; m 1 24; m 2 50000; m 3 24; f 0; f 2; t 0; i; m 4 60000; f 4; t 8192; i")),
    "malloc_trim_tiny_top": (
        "malloc_trim(0) with a 32-byte top moves the break up a page (C's signed/unsigned mix)",
        _lines("m 0 24; m 1 134440; i; t 0; i")),
    "realloc_in_place": (
        "realloc grows into top or a free neighbour, shrinks in place, moves when it must",
        _lines("m 0 100; r 0 200; r 0 5000; m 1 2000; m 2 24; f 1; m 3 24; r 3 24; r 0 3000",
               "r 0 2000; m 4 500; m 5 1500; m 6 24; r 4 3000; i; r 4 0; i; r 9 77; i")),
    "realloc_mmapped": (
        "mmapped chunks resize with mremap, and shrink to a single page if asked",
        _lines("m 0 200000; r 0 400000; r 0 300000; r 0 100; r 0 5000000; r 0 135000; i")),
    "calloc": (
        "calloc clears, but skips memory fresh from the kernel; overflow fails",
        _lines("c 0 10 10; c 1 1000 100; m 2 300; f 2; c 3 1 300; c 4 4611686018427387904 4",
               "c 5 0 0; c 6 100 2000; i")),
    "memalign": (
        "memalign carves an aligned chunk and frees the lead and tail around it",
        _lines("a 0 64 100; a 1 4096 100; a 2 32 10; a 3 48 10; a 4 65536 1000; i",
               "x 5 4096 1000; x 6 24 8; x 7 0 8; x 8 8 8; l 9 256 256; a 10 4096 300000; f 10; i")),
    "mallopt": (
        "mallopt changes thresholds and ends the dynamic rule; M_MXFAST limits fastbins",
        _lines("o -3 4096; m 0 5000; f 0; m 1 5000; o -1 0; m 2 100000; f 2; i",
               "o 1 0; m 3 24; m 4 24; f 3; o -2 0; m 5 500000; i; o 1 200; o 1 -1; o -4 0; m 6 999999; i")),
    "huge_requests": (
        "requests past PTRDIFF_MAX fail at once; (size_t)-1 is one of them",
        _lines("m 0 -1; m 1 9223372036854775807; m 2 9223372036854775800; c 3 -1 -1; a 4 64 -1; i")),
    "brk_blocked": (
        "a mapping in the heap's way: brk fails, 1 MiB of mmap stands in, fenceposts close the old top",
        _lines("m 0 24; B 262144 4096; m 1 100000; m 2 100000; i; m 3 100000; i; m 4 200000",
               "m 5 2000; f 1; f 2; i; t 0; i")),
    "brk_blocked_twice": (
        "glibc 2.36 swaps sysmalloc_mmap_fallback's minsize and pagesize: the first stand-in is rounded up to whole "
        "MiB, later ones (the arena now non-contiguous) are just the page-rounded request",
        _lines("B 139264 4096; m 0 24", "; ".join(f"m {k} 100000" for k in range(1, 14)), "i",
               "o -3 33554432; m 20 1500000; i; m 21 2000000; i")),
    "foreign_sbrk": (
        "the program moves the break itself: malloc fences off its old top and goes on above",
        _lines("m 0 24; b 4096; m 1 100000; m 2 100000; i; m 3 5000; f 1; i; b 100",
               "m 5 200000; f 5; m 6 200000; i; f 6; i; t 0; i; b 8192; m 8 100000; i")),
    "binmap_scan": (
        "with nothing to fit in its own bin, malloc splits the next non-empty bin the binmap shows",
        _lines(_hold(30, 200), _hold(40, 300), _hold(50, 100), "m 0 200; m 1 24; m 2 300; m 3 24",
               "m 4 3000; m 5 24", _release(30), _release(40), _release(50),
               "f 4; m 6 100; f 0; f 2; m 7 5000; i; m 8 250; m 9 150; i")),
}
