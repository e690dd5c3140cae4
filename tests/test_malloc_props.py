"""Property tests of the model's malloc: random programs keep every heap invariant.

A hypothesis state machine runs malloc, calloc, realloc, memalign, free,
malloc_trim and mallopt in any order on one process, and after every step
m.check() walks the heap (check_heap: the chunk chain reaches top, bins hold
only free chunks of their size, flags and feet agree, counters match) and the
test checks what a program can see: live blocks never overlap, lie in the
process's mappings, are 16-byte aligned (or as aligned as memalign was asked)
and hold at least what was asked for.
"""
import hypothesis.strategies as st
from hypothesis import settings, HealthCheck
from hypothesis.stateful import RuleBasedStateMachine, rule, invariant, initialize, precondition

from mmlab import Machine
from mmlab.libc import GlibcAbort
from mmlab import uapi

SIZES = st.one_of(
    st.integers(0, 128),                  # tcache and fastbin sizes
    st.integers(129, 1032),               # tcache, small bins
    st.integers(1033, 64 * 1024),         # small and large bins
    st.integers(64 * 1024, 600 * 1024),   # around the mmap threshold
)


class MallocMachine(RuleBasedStateMachine):
    """One process; `live` maps each block the program holds to (size asked, alignment asked)."""

    @initialize()
    def start(self):
        self.m = Machine(ram="256MiB")
        self.p = self.m.spawn()
        self.libc = self.p.libc
        self.live = {}
        self.freed = []
        self.filled = {}                    # ptr -> (byte, n): what the program wrote at its start

    def take(self, ptr, size, align=16):
        if ptr:
            assert ptr not in self.live
            self.live[ptr] = (size, align)
            self.filled.pop(ptr, None)
            if ptr in self.freed:
                self.freed.remove(ptr)

    @rule(size=SIZES)
    def malloc(self, size):
        self.take(self.libc.malloc(size), size)

    @rule(n=st.integers(1, 64), size=st.integers(1, 4096))
    def calloc(self, n, size):
        ptr = self.libc.calloc(n, size)
        self.take(ptr, n * size)
        if ptr:
            assert all(self.libc.mem.read_word(ptr + off) == 0 for off in range(0, n * size, 8))

    @rule(align=st.sampled_from([8, 16, 32, 64, 256, 4096, 65536]), size=SIZES)
    def memalign(self, align, size):
        ptr = self.libc.memalign(align, size)
        self.take(ptr, size, max(align, 16))

    @precondition(lambda self: self.live)
    @rule(data=st.data(), byte=st.integers(1, 255))
    def fill(self, data, byte):
        """The program writes its whole block (head and tail), as programs do: malloc never minds."""
        ptr = data.draw(st.sampled_from(sorted(self.live)))
        size = self.live[ptr][0]
        n = min(size, 4096)
        self.p.store(ptr, bytes([byte]) * n)
        if size > n:
            self.p.store(ptr + size - n, bytes([byte]) * n)
        self.filled[ptr] = (byte, n)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def free(self, data):
        ptr = data.draw(st.sampled_from(sorted(self.live)))
        del self.live[ptr]
        self.libc.free(ptr)
        self.freed.append(ptr)

    @precondition(lambda self: self.live)
    @rule(data=st.data(), size=SIZES)
    def realloc(self, data, size):
        ptr = data.draw(st.sampled_from(sorted(self.live)))
        written = self.filled.pop(ptr, None)
        new = self.libc.realloc(ptr, size)
        if size == 0:
            assert new == 0
            del self.live[ptr]
        elif new:
            del self.live[ptr]
            self.take(new, size)
            if written:                     # realloc keeps (or copies) what the program wrote
                self.filled[new] = (written[0], min(written[1], size))
        elif written:
            self.filled[ptr] = written

    @rule(pad=st.sampled_from([0, 4096, 1 << 20]))
    def malloc_trim(self, pad):
        assert self.libc.malloc_trim(pad) in (0, 1)

    @rule(param=st.sampled_from([uapi.M_MXFAST, uapi.M_TRIM_THRESHOLD, uapi.M_TOP_PAD,
                                 uapi.M_MMAP_THRESHOLD, uapi.M_MMAP_MAX]),
          value=st.sampled_from([0, 64, 4096, 1 << 17, 1 << 20]))
    def mallopt(self, param, value):
        assert self.libc.mallopt(param, value) == (0 if param == uapi.M_MXFAST and value > 160 else 1)

    @precondition(lambda self: self.freed)
    @rule(data=st.data())
    def double_free(self, data):
        """Freeing again a block still in the tcache aborts and changes nothing."""
        ptr = data.draw(st.sampled_from(self.freed))
        cached = {c + 16 for chunks in self.libc.tcache_chunks().values() for c in chunks}
        if ptr not in cached:
            return
        before = self.libc.mem.snapshot()
        try:
            self.libc.free(ptr)
        except GlibcAbort as e:
            assert e.message == "free(): double free detected in tcache 2"
        else:
            raise AssertionError("double free not detected")
        assert self.libc.mem.snapshot() == before

    @invariant()
    def heap_is_consistent(self):
        self.m.check()

    @invariant()
    def blocks_are_usable_and_apart(self):
        libc = self.libc
        spans = []
        for ptr, (byte, n) in list(self.filled.items()):
            if ptr not in self.live:
                del self.filled[ptr]
            else:
                assert self.p.load(ptr, min(n, 16)) == bytes([byte]) * min(n, 16)   # malloc kept out
        for ptr, (size, align) in self.live.items():
            usable = libc.malloc_usable_size(ptr)
            assert usable >= size
            assert ptr % align == 0
            spans.append((ptr, ptr + usable))
        spans.sort()
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert a1 <= b0, f"blocks {a0:#x} and {b0:#x} overlap"
        vmas = [(v.start, v.end) for v in self.p.vmas]
        for a0, a1 in spans:
            assert any(s <= a0 and a1 <= e for s, e in vmas), f"block {a0:#x} is not mapped"


TestMalloc = MallocMachine.TestCase
TestMalloc.settings = settings(max_examples=20, stateful_step_count=30, deadline=None,
                               suppress_health_check=[HealthCheck.too_slow])
