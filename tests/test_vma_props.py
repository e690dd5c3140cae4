"""Property tests of the address space: random mmap/munmap/mprotect/mremap/madvise/mlock/brk keep it sound.

A hypothesis state machine spawns a process and works in a 24-page window
it reserves.  Beside the model it keeps a shadow: for every page of the
window, what should be there (unmapped, or a protection and a backing:
anonymous memory, a shared anonymous object at some page, a file at some
page; anonymous pages with the page offset their VMA must give them).
Each rule applies one system call to both, predicting Linux's
result (mprotect over a hole changes the pages before it and fails); after
every step the model's VMAs, read page by page, must equal the shadow, and
m.check() must pass: sorted, non-overlapping VMAs, none that Linux would
have merged, counters and Committed_AS equal to the VMAs', brk consistent.
Simulated write faults (anon_vma_prepare) make anon_vma compatibility part
of the merges tried: a faulted page must keep the anon_vma it was faulted
under for as long as it stays mapped, whatever merges and splits happen.
"""
import errno

from hypothesis import settings, strategies as st, HealthCheck
from hypothesis.stateful import RuleBasedStateMachine, rule, initialize, invariant

from mmlab import Machine
from mmlab.arch import PAGE_SIZE
from mmlab.mm import vma as V
from mmlab.uapi import *

P = PAGE_SIZE
PAGES = 24
prots = st.sampled_from([PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC,
                         PROT_READ | PROT_WRITE | PROT_EXEC])
pages = st.integers(min_value=0, max_value=PAGES - 1)
lengths = st.integers(min_value=1, max_value=8)
ADVICE = [MADV_DONTFORK, MADV_DOFORK, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_RANDOM, MADV_NORMAL,
          MADV_DONTDUMP, MADV_DODUMP, MADV_DONTNEED, MADV_WILLNEED]


def perms(prot, shared):
    return (("r" if prot & PROT_READ else "-") + ("w" if prot & PROT_WRITE else "-")
            + ("x" if prot & PROT_EXEC else "-") + ("s" if shared else "p"))


class AddressSpace(RuleBasedStateMachine):
    """Random system calls in a window of one process, checked page by page against a shadow."""

    @initialize(seed=st.integers(min_value=0, max_value=3))
    def spawn(self, seed):
        self.m = Machine(ram="256MiB", seed=seed)
        self.p = self.m.spawn("a.out", uid=0)
        self.m.fs.create("/data", 64 * P)
        self.fd = self.p.open("/data", O_RDWR)
        self.base = self.p.mmap(0, PAGES * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
        self.shadow = [("---p", ("anon", (self.base + k * P) // P), None) for k in range(PAGES)]
        self.shm = 0

    def addr(self, page):
        return self.base + page * P

    def clip(self, page, n):
        return min(n, PAGES - page)

    # -- rules -------------------------------------------------------------------------
    @rule(page=pages, n=lengths, prot=prots, kind=st.sampled_from(["anon", "noreserve", "file", "shared"]),
          fpage=st.integers(min_value=0, max_value=40))
    def mmap_fixed(self, page, n, prot, kind, fpage):
        n = self.clip(page, n)
        flags = MAP_FIXED | (MAP_SHARED if kind == "shared" else MAP_PRIVATE)
        fd, off = -1, 0
        if kind == "file":
            fd, off = self.fd, fpage * P
        else:
            flags |= MAP_ANONYMOUS | (MAP_NORESERVE if kind == "noreserve" else 0)
        assert self.p.mmap(self.addr(page), n * P, prot, flags, fd, off) == self.addr(page)
        if kind == "shared":
            self.shm += 1
        for k in range(n):
            backing = ("file", fpage + k) if kind == "file" else ("shm", self.shm, k) if kind == "shared" \
                else ("anon", self.addr(page + k) // P)
            self.shadow[page + k] = (perms(prot, kind == "shared"), backing, None)

    @rule(n=lengths, prot=prots)
    def mmap_anywhere(self, n, prot):
        a = self.p.mmap(0, n * P, prot, MAP_PRIVATE | MAP_ANONYMOUS)
        for k in range(n):
            page = (a - self.base) // P + k
            if 0 <= page < PAGES:
                self.shadow[page] = (perms(prot, False), ("anon", self.addr(page) // P), None)

    @rule(page=pages, n=lengths)
    def munmap(self, page, n):
        n = self.clip(page, n)
        assert self.p.munmap(self.addr(page), n * P) == 0
        for k in range(n):
            self.shadow[page + k] = None

    @rule(page=pages, n=lengths, prot=prots)
    def mprotect(self, page, n, prot):
        n = self.clip(page, n)
        expect = 0
        if self.shadow[page] is None:
            expect = errno.ENOMEM
        else:
            for k in range(n):
                if self.shadow[page + k] is None:
                    expect = errno.ENOMEM                   # a hole: what precedes it has changed
                    break
                old = self.shadow[page + k]
                self.shadow[page + k] = (perms(prot, old[0][3] == "s"),) + old[1:]
        try:
            got = self.p.mprotect(self.addr(page), n * P, prot)
        except OSError as e:
            got = e.errno
        assert got == expect

    @rule(page=pages, n=lengths, dest=pages)
    def mremap_move(self, page, n, dest):
        """mremap(MREMAP_FIXED) without resizing: every VMA of the range moves, gaps kept."""
        n = min(self.clip(page, n), self.clip(dest, n))
        if page < dest + n and dest < page + n:
            expect = errno.EINVAL                           # overlapping ranges
        elif self.shadow[page] is None:
            expect = errno.EFAULT                           # nothing mapped at the start
        else:
            expect = 0
        unwritten = {k: (v := self.p.mm.vma_lookup(self.addr(page + k))) is not None and v.anon_vma is None
                     for k in range(n)}
        try:
            got = self.p.mremap(self.addr(page), n * P, n * P, MREMAP_MAYMOVE | MREMAP_FIXED,
                                self.addr(dest))
            got = 0 if got == self.addr(dest) else got
        except OSError as e:
            got = e.errno
        assert got == expect
        if expect:
            return
        moved = [self.shadow[page + k] for k in range(n)]
        for k in range(n):
            self.shadow[page + k] = None
        for k, entry in enumerate(moved):
            if entry is None:
                continue                                    # gaps move as gaps: the target page stays
            if entry[1][0] == "anon" and unwritten[k]:
                entry = (entry[0], ("anon", (self.addr(dest + k)) // P), entry[2])
            self.shadow[dest + k] = entry

    @rule(page=pages, n=lengths, advice=st.sampled_from(ADVICE))
    def madvise(self, page, n, advice):
        n = self.clip(page, n)
        try:
            self.p.madvise(self.addr(page), n * P, advice)
        except OSError as e:
            assert e.errno in (errno.ENOMEM, errno.EINVAL)

    @rule(page=pages, n=lengths, lock=st.booleans())
    def mlock(self, page, n, lock):
        n = self.clip(page, n)
        try:
            (self.p.mlock if lock else self.p.munlock)(self.addr(page), n * P)
        except OSError as e:
            assert e.errno == errno.ENOMEM                  # a hole, or PROT_NONE failing to populate

    @rule(page=pages)
    def write_fault(self, page):
        """What a write fault does to VMAs: a private writable VMA gets (or shares) an anon_vma."""
        vma = self.p.mm.vma_lookup(self.addr(page))
        if vma is not None and vma.vm_flags & V.VM_WRITE and not vma.vm_flags & V.VM_SHARED:
            av = V.anon_vma_prepare(vma)
            self.shadow[page] = self.shadow[page][:2] + (av,)      # the page now belongs to av

    @rule(delta=st.integers(min_value=-20, max_value=20).map(lambda k: k * 1000 + 7))
    def brk(self, delta):
        p = self.p
        old = p.brk(0)
        new = p.brk(max(old + delta, 0))
        assert new in (old, max(old + delta, 0))
        assert p.mm.start_brk <= p.mm.brk

    @rule()
    def mlockall_toggle(self):
        if self.p.mm.def_flags:
            self.p.munlockall()
        else:
            self.p.mlockall(MCL_FUTURE)

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def pages_match_the_shadow(self):
        mm = self.p.mm
        for k in range(PAGES):
            vma = mm.vma_lookup(self.addr(k))
            want = self.shadow[k]
            if vma is None:
                assert want is None, f"page {k} unmapped, expected {want}"
                continue
            assert want is not None, f"page {k} mapped by {vma}"
            assert vma.perms == want[0], f"page {k}: {vma.perms} != {want[0]}"
            if want[2] is not None:                         # a faulted page keeps its anon_vma
                assert vma.anon_vma is want[2], f"page {k} moved from {want[2]} to {vma.anon_vma}"
            idx = vma.vm_pgoff + (self.addr(k) - vma.vm_start) // P
            if want[1][0] == "file":
                assert vma.vm_file is not None and vma.vm_file.path == "/data" and idx == want[1][1]
            elif want[1][0] == "shm":
                assert vma.vm_file is not None and vma.vm_file.backing == "shmem"
            else:
                assert vma.vm_file is None and idx == want[1][1], f"page {k}: pgoff {idx} != {want[1][1]}"

    @invariant()
    def model_is_consistent(self):
        self.m.check()


TestAddressSpace = AddressSpace.TestCase
TestAddressSpace.settings = settings(max_examples=80, stateful_step_count=40, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
