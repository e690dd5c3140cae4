"""m.spawn (mmlab/process.py): a process as execve and ld.so leave it at main().

Layout facts the model must share with a real Linux 6.18 x86_64 process
running a gcc -O2 hello world against glibc 2.36: the program's five VMAs
at a random base near ELF_ET_DYN_BASE; mmap_base a random distance below
the stack's reserved gap; ld.so just below mmap_base, the vDSO's three
special mappings below it, ld.so's scratch pages, a nine-page hole where
ld.so.cache was, libc's bss, its five segments, the TLS block; a 33-page
[stack] near the top; [vsyscall] last.  The host tests read this machine's
libc and ld.so program headers with readelf, and compile and run a small
program that prints its own /proc/self/maps, then compare shapes.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from mmlab import Machine
from mmlab.arch import PAGE_SIZE, TASK_SIZE, MiB, TiB
from mmlab.process import LIBC, LD_SO, ELF_ET_DYN_BASE, STACK_RND_MASK, Phdr
from mmlab.uapi import *

P = PAGE_SIZE
LIBC_PATH = "/usr/lib/x86_64-linux-gnu/libc.so.6"
LD_PATH = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"


def shape(maps_text):
    """maps lines as (perms, pages, file offset, name kind), name kind being a file's basename,
    a [label], or '' for anonymous memory; and the gap in pages before each line."""
    out, prev_end = [], None
    for line in maps_text.splitlines():
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        name = f[5] if len(f) > 5 else ""
        kind = name if name.startswith("[") else os.path.basename(name)
        gap = (lo - prev_end) // P if prev_end is not None and lo >= prev_end else None
        out.append((f[1], (hi - lo) // P, int(f[2], 16), kind, gap))
        prev_end = hi
    return out


# -- the layout ------------------------------------------------------------------------

def test_layout_order_and_names(p):
    names = [v.name.rsplit("/", 1)[-1] for v in p.vmas]
    assert names == ["a.out"] * 5 + [""] + ["libc.so.6"] * 5 + ["", ""] + \
        ["[vvar]", "[vvar_vclock]", "[vdso]"] + ["ld-linux-x86-64.so.2"] * 5 + ["[stack]"]
    assert p.maps().splitlines()[-1].endswith("[vsyscall]")


def test_program_segments(p):
    got = [(v.perms, v.pages, v.vm_pgoff) for v in p.vmas[:5]]
    assert got == [("r--p", 1, 0), ("r-xp", 1, 1), ("r--p", 1, 2), ("r--p", 1, 2), ("rw-p", 1, 3)]
    base = p.vmas[0].vm_start
    assert ELF_ET_DYN_BASE & ~0xfff <= base < (ELF_ET_DYN_BASE & ~0xfff) + TiB    # 28 bits of pages


def test_libc_segments_and_bss(p):
    libc = [v for v in p.vmas if v.name.endswith("libc.so.6")]
    assert [(v.perms, v.pages, v.vm_pgoff << 12) for v in libc] == [
        ("r--p", 0x26, 0), ("r-xp", 0x156, 0x26000), ("r--p", 0x53, 0x17c000),
        ("r--p", 4, 0x1cf000),                                      # RELRO, still VM_ACCOUNT: unmerged
        ("rw-p", 2, 0x1d3000)]
    bss = p.mm.vma_next(p.mm.vma_lookup(libc[-1].vm_start))
    assert bss.vm_start == libc[-1].vm_end and bss.pages == 13 and bss.vm_file is None
    tls = p.mm.vma_prev(p.mm.vma_lookup(libc[0].vm_start))
    assert tls.vm_end == libc[0].vm_start and tls.pages == 3 and tls.perms == "rw-p"


def test_ld_so_segments_sit_below_mmap_base(p):
    ld = [v for v in p.vmas if v.name.endswith("ld-linux-x86-64.so.2")]
    assert [(v.perms, v.pages) for v in ld] == [("r--p", 1), ("r-xp", 0x26), ("r--p", 0xa),
                                                 ("r--p", 2), ("rw-p", 2)]
    assert ld[-1].vm_end == p.mm.mmap_base


def test_vdso_below_ld_so_and_scratch_below_the_vdso(p):
    vs = p.vmas
    i = [v.name for v in vs].index("[vvar]")
    vvar, clock, vdso, ld = vs[i], vs[i + 1], vs[i + 2], vs[i + 3]
    assert (vvar.pages, clock.pages, vdso.pages) == (4, 2, 2)
    assert vvar.vm_end == clock.vm_start and clock.vm_end == vdso.vm_start == vdso.vm_end - 2 * P
    assert vdso.vm_end == ld.vm_start
    scratch, hole_below = vs[i - 1], vs[i - 2]
    assert scratch.vm_end == vvar.vm_start and scratch.pages == 2
    assert (scratch.vm_start - hole_below.vm_end) // P == 9         # where ld.so.cache (34547 B) was


def test_stack(p):
    stack = p.vmas[-1]
    assert stack.name == "[stack]" and stack.pages == 33 and stack.vmflags == "rd wr mr mw me gd ac"
    assert TASK_SIZE - ((STACK_RND_MASK + 2) << 12) <= stack.vm_end <= TASK_SIZE


def test_mmap_base_leaves_the_stack_its_gap(m):
    for _ in range(6):
        p = m.spawn("a.out")
        gap = 8 * MiB + (STACK_RND_MASK << 12) + 256 * P
        assert TASK_SIZE - gap - TiB <= p.mm.mmap_base <= TASK_SIZE - gap


def test_rlimit_stack_moves_mmap_base(m):
    small = m.spawn("a.out", rlimits={RLIMIT_STACK: (8 * MiB, RLIM_INFINITY)})
    huge = m.spawn("a.out", rlimits={RLIMIT_STACK: (RLIM_INFINITY, RLIM_INFINITY)})
    assert huge.mm.mmap_base < TASK_SIZE // 6 + TiB                 # gap clamped to 5/6 of the space
    assert small.mm.mmap_base > TASK_SIZE // 2


def test_counters_after_spawn(m, p):
    assert p.mm.total_vm == sum(v.pages for v in p.vmas)
    assert p.mm.stack_vm == 33 and p.mm.data_vm == 23               # rw-p pages that are not stack
    assert p.mm.exec_vm == sum(v.pages for v in p.vmas if v.perms[2] == "x" and v.perms[1] == "-")
    m.check()


def test_spawn_is_deterministic_per_seed():
    a = Machine(ram="256MiB", seed=3).spawn("a.out").maps()
    b = Machine(ram="256MiB", seed=3).spawn("a.out").maps()
    c = Machine(ram="256MiB", seed=4).spawn("a.out").maps()
    assert a == b and a != c


def test_spawn_trace_shows_exec_then_ld_so(m):
    with m.trace() as t:
        m.spawn("a.out")
    calls = t.calls()
    assert calls[:3] == ["load_elf_binary", "arch_pick_mmap_layout", "setup_arg_pages"]
    assert calls.index("map_vdso") < calls.index("run_dynamic_loader")
    assert calls.count("do_mprotect_pkey") == 3                     # three RELRO ranges


def test_two_processes_have_separate_address_spaces(m):
    a, b = m.spawn("a.out"), m.spawn("b.out")
    a.mmap(0, 4 * P, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS)
    assert len(a.vmas) == len(b.vmas) + 1 and a.pid != b.pid
    assert b.vmas[0].vm_file.path == "/home/user/b.out"
    m.check()


def test_spawn_refuses_a_bad_name(m):
    with pytest.raises(ValueError, match="name"):
        m.spawn("")


# -- against this machine ------------------------------------------------------------------

def readelf(path):
    """PT_LOAD and PT_GNU_RELRO of a file, from readelf -lW."""
    out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True, check=True).stdout
    loads, relro = [], None
    for line in out.splitlines():
        f = line.split()
        if f and f[0] in ("LOAD", "GNU_RELRO"):
            off, vaddr, _, filesz, memsz = (int(x, 16) for x in f[1:6])
            flags = "".join(f[6:-1])
            if f[0] == "LOAD":
                pf = (4 if "R" in flags else 0) | (2 if "W" in flags else 0) | (1 if "E" in flags else 0)
                loads.append(Phdr(off, vaddr, filesz, memsz, pf))
            else:
                relro = (vaddr, memsz)
    return loads, relro


def host_reason(path=None):
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if shutil.which("readelf") is None:
        return "no readelf"
    if path and not os.path.exists(path):
        return f"no {path} here"
    return None


@pytest.mark.host
@pytest.mark.parametrize("image,path", [(LIBC, LIBC_PATH), (LD_SO, LD_PATH)])
def test_library_program_headers_match_this_machine(image, path):
    reason = host_reason(path)
    if reason:
        pytest.skip(reason)
    loads, relro = readelf(path)
    if os.path.getsize(path) != image.size:
        pytest.skip(f"{path} is not glibc 2.36-9+deb12u14's ({os.path.getsize(path)} bytes)")
    assert loads == image.loads and relro == image.relro


MAPS_C = r"""
#include <fcntl.h>
#include <unistd.h>
int main(void)
{
    char buf[1 << 15];              /* on the stack: a big static buffer would add a bss VMA */
    int fd = open("/proc/self/maps", O_RDONLY), n, k = 0;
    while ((n = read(fd, buf + k, sizeof buf - k)) > 0)
        k += n;
    write(1, buf, k);
    return 0;
}
"""


@pytest.fixture(scope="module")
def host_maps(tmp_path_factory):
    reason = host_reason(LIBC_PATH)
    if reason or shutil.which("cc") is None:
        pytest.skip(reason or "no C compiler")
    if os.path.getsize(LIBC_PATH) != LIBC.size:
        pytest.skip("this machine's libc is not the reference glibc 2.36 build")
    d = tmp_path_factory.mktemp("maps")
    src, exe = d / "maps.c", d / "a.out"
    src.write_text(MAPS_C)
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True, capture_output=True)
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True, env={}).stdout


@pytest.mark.host
def test_maps_has_the_same_shape_as_a_real_process(host_maps, p):
    host, model = shape(host_maps), shape(p.maps())
    kinds = lambda s: [k for (_, _, _, k, _) in s]
    assert kinds(host) == kinds(model)                              # same VMAs, same order
    lib = lambda s: [x for x in s if x[3] not in ("a.out",)]
    assert [x[:4] for x in lib(host)] == [x[:4] for x in lib(model)]  # perms, pages, offsets
    gaps = lambda s: [x[4] for x in s if x[3] not in ("a.out", "[stack]", "[vsyscall]")][1:]
    assert gaps(host) == gaps(model)                                # holes between them, in pages


@pytest.mark.host
def test_maps_lines_are_laid_out_as_the_kernel_lays_them_out(host_maps, p):
    for text in (host_maps, p.maps()):
        for line in text.splitlines():
            head = re.match(r"[0-9a-f]{8,}-[0-9a-f]{8,} [r-][w-][x-][ps] [0-9a-f]{8} [0-9a-f]{2}:[0-9a-f]{2} \d+ ",
                            line)
            assert head, line
            if len(line) > head.end():
                assert line.index(line.split()[5]) == max(73, head.end() + 1), line
