"""Differential scenarios: one sequence of mmap, munmap, mprotect, madvise, brk
and memory touches, run on this machine's kernel and on the model, compared.

A scenario is plain data (JSON-able), with every address relative to a window
that each side places for itself:

    scenario = {
        "name": "merge with prev",
        "base": "mmap",            # window above mmap_base; "brk": window starts at start_brk
        "size": 32 << 20,          # window length
        "reserve": True,           # window starts as one PROT_NONE NORESERVE mapping
        "files": {"f": {"size": 65536, "backing": "disk", "mode": "rw"}},
        "ops": [
            {"op": "mmap", "off": 0x0, "len": 0x2000, "prot": 3, "flags": 0x32},
            {"op": "mmap", "off": 0x2000, "len": 0x1000, "prot": 3, "flags": 0x32},
            {"op": "mmap", "off": None, "len": 0x1000, "prot": 1, "flags": 0x01, "file": "f", "pgoff": 2},
            {"op": "munmap", "off": 0x1000, "len": 0x1000},
            {"op": "mprotect", "off": 0x0, "len": 0x3000, "prot": 1},
            {"op": "madvise", "off": 0x0, "len": 0x1000, "advice": 4},
            {"op": "touch", "off": 0x0, "len": 0x1000, "write": True},
            {"op": "brk", "delta": 0x3000},          # or "to": rel, or neither (brk(0))
        ],
    }

mmap's "off" is where the call points (None: address 0, the kernel chooses);
without MAP_FIXED it is a hint.  "file" names an entry of "files" (or
"badfd"); "pgoff" is the file offset in pages ("offset" in bytes overrides it).
mlock and munlock take "off" and "len" too.  normalise() refuses ops that
could reach beyond the window and its margin (a huge mprotect or madvise walks
every VMA up to the driver's own stack), unless the kernel rejects their
arguments before changing anything.

Where the window lies.  An "mmap" window sits above every mapping below the
stack, that is above mmap_base, with 8 MiB free on both sides: the kernel
never puts a mapping without a usable hint there (arch_get_unmapped_area_topdown
searches below mmap_base), so such a call lands "outside" on both sides and a
hint inside the window is taken exactly when Linux would take it.  A "brk"
window starts at start_brk, in a process whose break nobody else moves.

The host side is a small C program (scenario_driver.c, compiled here with cc
on first use) that runs many scenarios per process (undoing each one: window
unmapped, break put back at start_brk), never calls malloc, and prints after
every operation the smaps header and VmFlags of each VMA that meets the
window.  The model side runs each scenario in a fresh Machine, in a process
with the host's uid (root or not) and resource limits (host_identity()).
Each side reports, per operation, the return value (a relative address, 0,
the new break relative to the window, or an errno name; "outside" for a
mapping placed outside the window) and the window's VMAs as
Vma(start, end, perms, file, pgoff, flags), relative to the window, with
file the scenario's name for the file (or "shm#1", "shm#2"... for shared
anonymous memory, by first appearance), pgoff in pages as /proc/pid/maps
shows it, and flags as smaps' VmFlags mnemonics.

NAMED holds one scenario per Linux rule (merging, splitting, errno paths,
brk limits), each with the rule in words, the kernel function, and what the
host shows ("expect").  random_scenario(seed) draws sequences of 5-30 ops.

    from mmlab.linux import scenario
    print(scenario.side_by_side(scenario.NAMED["merge with prev"]))
    diffs = scenario.check(scenario.random_scenario(7))    # [] when the model agrees

NOTE: page residency (RSS, mincore) is not compared, only VMAs and returns;
and the driver uses x86_64 syscall numbers, like the model.
"""
import errno as _errno
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import namedtuple
from dataclasses import dataclass, field

from .. import uapi as _uapi
from ..arch import TASK_SIZE
from ..errors import SegmentationFault, SEGV_MAPERR, SEGV_ACCERR
from ..uapi import (PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC, PROT_GROWSDOWN,
                    MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_FIXED, MAP_ANONYMOUS,
                    MAP_GROWSDOWN, MAP_NORESERVE, MAP_POPULATE, MAP_HUGETLB, MAP_SYNC,
                    MAP_FIXED_NOREPLACE, MAP_LOCKED, MAP_32BIT,
                    MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED,
                    MADV_FREE, MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK, MADV_HUGEPAGE,
                    MADV_NOHUGEPAGE, MADV_DONTDUMP, MADV_DODUMP, MADV_WIPEONFORK,
                    MADV_KEEPONFORK, MADV_COLD, MADV_PAGEOUT, MADV_POPULATE_READ,
                    MADV_POPULATE_WRITE, O_RDONLY, O_WRONLY, O_RDWR)

PAGE = 4096
MiB = 1 << 20
HUGE = 2 * MiB
MARGIN = 8 * MiB            # free space left on both sides of an mmap window (as the driver does)
STACK_GUARD_GAP = 1 * MiB   # stack_guard_gap: 256 pages
DEFAULT_SIZE = 32 * MiB
SLACK = MARGIN // 2         # how far outside the window an mmap scenario's ranges may reach
U64 = 1 << 64

# x86_64 syscall numbers, for the driver's generic call command.
SYS_MPROTECT, SYS_MUNMAP, SYS_MADVISE, SYS_MLOCK, SYS_MUNLOCK = 10, 11, 28, 149, 150
RANGE_CALLS = {"munmap": SYS_MUNMAP, "mprotect": SYS_MPROTECT, "madvise": SYS_MADVISE,
               "mlock": SYS_MLOCK, "munlock": SYS_MUNLOCK}
OPS = ("mmap", "munmap", "mprotect", "madvise", "mlock", "munlock", "brk", "touch")
BASIC_OPS = frozenset({"mmap", "munmap", "mprotect", "madvise", "brk"})
# Model methods an op needs; an op whose method the model lacks is skipped on
# the model side (marked in the report), so chapters can run before it exists.
MODEL_METHOD = {"touch": "touch", "mlock": "mlock", "munlock": "munlock"}
OPEN_FLAGS = {"rw": O_RDWR, "ro": O_RDONLY, "wo": O_WRONLY}
BAD_FD = 1000

VM_GROWSDOWN = 0x100
# smaps' VmFlags mnemonics by vm_flags bit (fs/proc/task_mmu.c, show_smap_vma_flags),
# for the bits an x86_64 kernel without soft-dirty prints.
VM_MNEMONICS = {
    0: "rd", 1: "wr", 2: "ex", 3: "sh", 4: "mr", 5: "mw", 6: "me", 7: "ms", 8: "gd", 9: "um",
    10: "pf", 12: "uw", 13: "lo", 14: "io", 15: "sr", 16: "rr", 17: "dc", 18: "de", 19: "lf",
    20: "ac", 21: "nr", 22: "ht", 23: "sf", 24: "ar", 25: "wf", 26: "dd", 28: "mm", 29: "hg",
    30: "nh", 31: "mg", 40: "dp", 42: "sl",
}


class ModelUnavailable(Exception):
    """The model cannot run scenarios yet; `reason` says what is missing."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class HostUnavailable(Exception):
    """This machine cannot run scenarios; `reason` says why (not Linux, no C compiler...)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


# -- what a side reports -----------------------------------------------------

Vma = namedtuple("Vma", "start end perms file pgoff flags")
Vma.__doc__ = "One VMA meeting the window: offsets relative to the window, pgoff in pages."


@dataclass
class Step:
    """One operation's outcome on one side: its return value and the window's VMAs after it."""
    ret: object
    vmas: list
    skipped: str = ""       # why this side did not run the op ("" if it did)


@dataclass
class Report:
    """A whole scenario on one side: the window's VMAs before the first op, then one Step per op."""
    side: str
    scenario: dict
    base: int
    setup: list
    steps: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    machine: object = field(default=None, repr=False)     # the model's Machine, for a closer look

    def to_json(self):
        """The report as plain data (VMAs as lists), for saving beside a notebook."""
        return {"side": self.side, "base": self.base, "info": self.info,
                "setup": [list(v) for v in self.setup],
                "steps": [{"ret": s.ret, "vmas": [list(v) for v in s.vmas], "skipped": s.skipped}
                          for s in self.steps]}


@dataclass
class Difference:
    """Where model and host disagree: op index (-1 for the setup), the field, both values."""
    step: int
    op: dict
    field: str
    host: object
    model: object

    def __str__(self):
        where = "setup" if self.step < 0 else f"op {self.step} {describe(self.op)}"
        if self.field == "vmas":
            host_only = [v for v in self.host if v not in self.model]
            model_only = [v for v in self.model if v not in self.host]
            return (f"{where}: VMAs differ; host only: {', '.join(map(format_vma, host_only)) or '-'}"
                    f"; model only: {', '.join(map(format_vma, model_only)) or '-'}")
        return f"{where}: {self.field}: host {format_ret(self.host)}, model {format_ret(self.model)}"


# -- scenarios: validation and description ----------------------------------

def normalise(scenario):
    """The scenario with defaults filled in; ValueError naming what is malformed."""
    if not isinstance(scenario, dict) or not isinstance(scenario.get("ops"), list):
        raise ValueError("scenario must be a dict with a list under 'ops'")
    s = dict(scenario)
    s.setdefault("name", "")
    s.setdefault("base", "mmap")
    s.setdefault("size", DEFAULT_SIZE)
    s.setdefault("reserve", s["base"] == "mmap")
    s.setdefault("files", {})
    if s["base"] not in ("mmap", "brk"):
        raise ValueError(f"scenario base must be 'mmap' or 'brk', got {s['base']!r}")
    if s["base"] == "brk" and s["reserve"]:
        raise ValueError("a brk scenario cannot reserve its window (the heap grows into it)")
    if s["size"] <= 0 or s["size"] % HUGE:
        raise ValueError(f"scenario size must be a positive multiple of 2 MiB, got {s['size']:#x}")
    for name, spec in s["files"].items():
        if name == "badfd" or not name.isidentifier():
            raise ValueError(f"file name {name!r} must be an identifier other than 'badfd'")
        if spec.get("backing", "disk") not in ("disk", "tmpfs") or spec.get("mode", "rw") not in OPEN_FLAGS:
            raise ValueError(f"file {name!r}: backing must be disk|tmpfs and mode rw|ro|wo")
    for i, op in enumerate(s["ops"]):
        if op.get("op") not in OPS:
            raise ValueError(f"op {i}: unknown op {op.get('op')!r}; known: {', '.join(OPS)}")
        f = op.get("file")
        if f is not None and f != "badfd" and f not in s["files"]:
            raise ValueError(f"op {i}: file {f!r} is not in the scenario's files")
        if op["op"] == "mmap" and op.get("off") is None and op["flags"] & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            raise ValueError(f"op {i}: MAP_FIXED at address 0 is not window-relative (and needs "
                             f"CAP_SYS_RAWIO): give an 'off' or drop MAP_FIXED")
        reach = _reach(op)
        low = 0 if s["base"] == "brk" else -SLACK
        if reach and not (low <= reach[0] and reach[1] <= s["size"] + SLACK):
            raise ValueError(f"op {i}: {describe(op)} would reach [{_rel(reach[0])}, {_rel(reach[1])}), "
                             f"outside the window and its free margin: on the host it would change "
                             f"the driver's own memory (its stack, its data)")
    return s


def _page_align(n):
    return (n + PAGE - 1) // PAGE * PAGE


def _reach(op):
    """The window-relative range an op could change, or None if the kernel refuses it first.

    Calls that act on every VMA in a range (mprotect, madvise, munmap,
    MAP_FIXED) must stay near the window: a huge length would reach the
    driver's stack.  Lengths the kernel rejects before touching anything
    (longer than TASK_SIZE, or wrapping past 2**64) and MAP_FIXED_NOREPLACE
    or hint mappings are harmless anywhere.
    """
    kind, off, length = op["op"], op.get("off"), op.get("len", 0) % U64
    if kind == "brk" or off is None:
        return None
    if kind == "mmap" and (not op["flags"] & MAP_FIXED or op["flags"] & MAP_FIXED_NOREPLACE):
        return None
    if kind != "touch":
        if length == 0 or (kind != "mlock" and kind != "munlock" and off % PAGE):
            return None                                   # EINVAL, or nothing to do
        if kind in ("mmap", "munmap") and _page_align(length) > TASK_SIZE:
            return None                                   # ENOMEM / EINVAL before any change
        if off // PAGE * PAGE + _page_align(length) >= U64 - MiB:
            return None                                   # wraps (every base is above 1 MiB): refused first
    start = off // PAGE * PAGE
    return start, start + _page_align(length)


def _file_offset(op):
    return op["offset"] if "offset" in op else op.get("pgoff", 0) * PAGE


_PROT_NAMES = ((PROT_READ, "r"), (PROT_WRITE, "w"), (PROT_EXEC, "x"))
_MAP_NAMES = ((MAP_FIXED_NOREPLACE, "FIXED_NOREPLACE"), (MAP_FIXED, "FIXED"), (MAP_ANONYMOUS, "ANON"),
              (MAP_NORESERVE, "NORESERVE"), (MAP_POPULATE, "POPULATE"), (MAP_GROWSDOWN, "GROWSDOWN"),
              (MAP_LOCKED, "LOCKED"), (MAP_HUGETLB, "HUGETLB"), (MAP_SYNC, "SYNC"), (MAP_32BIT, "32BIT"))
_MADV_NAMES = {v: k for k, v in globals().items() if k.startswith("MADV_")}


def prot_name(prot):
    """PROT_* bits as 'rw-' (plus '+0x..' for bits mprotect would refuse)."""
    text = "".join(c if prot & bit else "-" for bit, c in _PROT_NAMES)
    rest = prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)
    return text + (f"+{rest:#x}" if rest else "")


def map_name(flags):
    """MAP_* flags as 'PRIVATE|ANON|FIXED'."""
    kind = {MAP_SHARED: "SHARED", MAP_PRIVATE: "PRIVATE", MAP_SHARED_VALIDATE: "SHARED_VALIDATE"}
    parts = [kind.get(flags & 0x0f, f"type={flags & 0x0f:#x}")]
    rest = flags & ~0x0f
    for bit, name in _MAP_NAMES:
        if rest & bit == bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def _rel(x):
    return f"+{x:#x}" if x >= 0 else f"-{-x:#x}"


def describe(op):
    """One op as a short call: 'mmap(+0x2000, 0x1000, rw-, PRIVATE|ANON|FIXED)'."""
    kind = op["op"]
    if kind == "mmap":
        where = "NULL" if op.get("off") is None else _rel(op["off"])
        text = f"mmap({where}, {op['len']:#x}, {prot_name(op['prot'])}, {map_name(op['flags'])}"
        if op.get("file"):
            text += f", {op['file']}, {_file_offset(op):#x}"
        return text + ")"
    if kind == "brk":
        if "to" in op:
            return f"brk(base{_rel(op['to'])})"
        return f"brk(brk{_rel(op['delta'])})" if "delta" in op else "brk(0)"
    args = f"{_rel(op['off'])}, {op['len']:#x}"
    if kind == "mprotect":
        args += f", {prot_name(op['prot'])}"
    elif kind == "madvise":
        args += ", " + _MADV_NAMES.get(op["advice"], str(op["advice"]))
    elif kind == "touch":
        args += ", write" if op.get("write") else ", read"
    return f"{kind}({args})"


def format_ret(ret):
    """A return value as the tables print it: relative addresses in hex, errno names as is."""
    if isinstance(ret, int) and not isinstance(ret, bool):
        return _rel(ret) if ret else "0"
    return str(ret)


def format_vma(v):
    """'+0x2000-+0x3000 rw-p f@2 [rd wr mr mw me ac]'."""
    where = f"{_rel(v.start)}-{_rel(v.end)} {v.perms}"
    if v.file and v.file.startswith("["):
        where += f" {v.file}"
    elif v.file:
        where += f" {v.file}@{v.pgoff}"
    return f"{where} [{v.flags}]"


# -- the host side -------------------------------------------------------------

DRIVER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenario_driver.c")


def _compiler():
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def host_skip_reason():
    """Why this machine cannot run host scenarios, or None if it can."""
    if not sys.platform.startswith("linux"):
        return f"not Linux (this is {sys.platform})"
    if os.uname().machine != "x86_64":
        return f"needs x86_64 (this is {os.uname().machine}): the driver uses x86_64 syscall numbers"
    if not os.path.exists("/proc/self/smaps"):
        return "/proc/self/smaps is missing"
    if _compiler() is None:
        return "no C compiler (cc, gcc or clang) to build the scenario driver"
    return None


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for d in (os.path.join(base, "mmlab"), os.path.join(tempfile.gettempdir(), f"mmlab-{os.getuid()}")):
        try:
            os.makedirs(d, exist_ok=True)
            if os.access(d, os.W_OK):
                return d
        except OSError:
            continue
    raise HostUnavailable("no writable directory for the compiled scenario driver")


def compile_cached(source, stem, flags=("-O2",)):
    """Compile one C file with the system's cc, once per source text; the executable's path.

    The executable is cached under its source's hash (so an edited driver
    is rebuilt) and built aside, then renamed, because parallel test
    workers race to build it.  HostUnavailable when there is no compiler
    or the build fails.
    """
    cc = _compiler()
    if cc is None:
        raise HostUnavailable(f"no C compiler (cc, gcc or clang) to build {os.path.basename(source)}")
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read() + " ".join(flags).encode()).hexdigest()[:16]
    path = os.path.join(_cache_dir(), f"{stem}-{digest}")
    if os.access(path, os.X_OK):
        return path
    tmp = f"{path}.{os.getpid()}.tmp"
    done = subprocess.run([cc, *flags, "-o", tmp, source], capture_output=True, text=True)
    if done.returncode:
        raise HostUnavailable(f"cc failed to build {os.path.basename(source)}: {done.stderr.strip()[:500]}")
    os.replace(tmp, path)
    return path


def build_driver():
    """The path of the compiled scenario driver, built with cc -O2 on first use."""
    reason = host_skip_reason()
    if reason:
        raise HostUnavailable(reason)
    return compile_cached(DRIVER_SOURCE, "scenario_driver")


def _fs_type(path):
    """The filesystem type /proc/self/mountinfo gives the mount holding path."""
    path = os.path.realpath(path)
    best, kind = "", None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            mount = left.split()[4]
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                best, kind = mount, right.split()[0]
    return kind


class _HostFiles:
    """Real files for the scenarios: 'disk' ones on a disk filesystem, 'tmpfs' ones on /dev/shm."""

    def __init__(self):
        disk = next((d for d in ("/var/tmp", tempfile.gettempdir(), os.path.expanduser("~"))
                     if os.path.isdir(d) and _fs_type(d) not in ("tmpfs", "ramfs", None)),
                    tempfile.gettempdir())
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and _fs_type("/dev/shm") == "tmpfs" else None
        self.dirs = {"disk": tempfile.mkdtemp(prefix="mmlab-scenario-", dir=disk)}
        self.dirs["tmpfs"] = tempfile.mkdtemp(prefix="mmlab-scenario-", dir=shm) if shm else self.dirs["disk"]
        self.fs_types = {k: _fs_type(d) for k, d in self.dirs.items()}

    def create(self, tag, name, spec):
        """A sparse file of spec['size'] bytes; returns its path and (dev, inode)."""
        path = os.path.join(self.dirs[spec.get("backing", "disk")], f"{tag}-{name}")
        with open(path, "wb") as f:
            f.truncate(spec["size"])
        st = os.stat(path)
        return path, (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)

    def close(self):
        for d in set(self.dirs.values()):
            shutil.rmtree(d, ignore_errors=True)


def host_facts():
    """What named scenarios may depend on: the disk and tmpfs filesystems the host files
    land on, and how many huge pages hugetlbfs has ({"disk_fs": "ext4", ...})."""
    files = _HostFiles()
    try:
        facts = {"disk_fs": files.fs_types["disk"], "tmpfs_fs": files.fs_types["tmpfs"]}
    finally:
        files.close()
    try:
        with open("/proc/sys/vm/nr_hugepages") as f:
            facts["nr_hugepages"] = int(f.read())
    except OSError:
        facts["nr_hugepages"] = None
    return facts


def unmet_requirements(scenario, facts=None):
    """Why this host cannot show a named scenario's rule (its "requires" are not met), or None."""
    needs = scenario.get("requires", {})
    if not needs:
        return None
    facts = facts or host_facts()
    for key, wanted in needs.items():
        wanted = wanted if isinstance(wanted, tuple) else (wanted,)
        if facts.get(key) not in wanted:
            return f"needs {key} in {wanted}, this host has {facts.get(key)!r}"
    return None


def _encode(s, tag, files, paths):
    """The driver's command lines for one scenario; paths[name] is filled in for its files."""
    lines = [f"S m {s['size']} {int(bool(s['reserve']))}" if s["base"] == "mmap" else f"S b {s['size']}"]
    slot_of = {}
    for slot, (name, spec) in enumerate(s["files"].items()):
        path, key = files.create(tag, name, spec)
        paths[key] = name
        slot_of[name] = slot
        lines.append(f"O {slot} {OPEN_FLAGS[spec.get('mode', 'rw')]} {path}")
    for op in s["ops"]:
        kind = op["op"]
        if kind == "mmap":
            f = op.get("file")
            slot = -1 if f is None else -2 if f == "badfd" else slot_of[f]
            off = op.get("off")
            lines.append(f"M {int(off is not None)} {off or 0} {op['len'] % U64} {op['prot']} "
                         f"{op['flags']} {slot} {_file_offset(op) % U64}")
        elif kind == "brk":
            lines.append(f"K t {op['to']}" if "to" in op else f"K d {op['delta']}" if "delta" in op else "K q")
        elif kind == "touch":
            lines.append(f"T {op['off']} {op['len'] % U64} {int(bool(op.get('write')))}")
        else:
            arg = op.get("prot", op.get("advice", 0))
            lines.append(f"C {RANGE_CALLS[kind]} {op['off']} {op['len'] % U64} {arg % U64}")
    lines.append("E")
    return lines


class _HostParser:
    """Reads the driver's replies for one scenario and makes the relative Report."""

    def __init__(self, s, lines, paths):
        self.s, self.lines, self.paths = s, lines, paths
        self.shm = {}       # shared-anonymous inode -> ordinal, by first appearance

    def next(self):
        return next(self.lines)

    def vmas(self):
        out, cur = [], None
        for line in self.lines:
            if line == ".":
                return out
            if line.startswith("V "):
                cur = line[2:]
            elif line.startswith("F "):
                out.append(self.vma(cur, line[2:]))
        raise RuntimeError("scenario driver: output ended inside a VMA list")

    def vma(self, header, flags):
        parts = header.split(None, 5)
        start, end = (int(x, 16) for x in parts[0].split("-"))
        major, minor = (int(x, 16) for x in parts[3].split(":"))
        inode, name = int(parts[4]), parts[5].strip() if len(parts) > 5 else ""
        label = None
        if inode:
            label = self.paths.get((major, minor, inode)) or _anon_file_label(self.shm, name, inode)
        elif name.startswith("["):
            label = name
        pgoff = int(parts[2], 16) // PAGE
        return Vma(start - self.base, end - self.base, parts[1], label, pgoff, " ".join(flags.split()))

    def ret(self, op):
        words = self.next().split()
        if words[0] != "R":
            raise RuntimeError(f"scenario driver: expected a reply, got {' '.join(words)!r}")
        if words[1] in ("SEGV", "BUS"):
            code, addr = int(words[2]), int(words[3], 16) - self.base
            names = {("SEGV", 1): "SEGV_MAPERR", ("SEGV", 2): "SEGV_ACCERR", ("BUS", 2): "SIGBUS"}
            return f"{names.get((words[1], code), words[1] + str(code))}@{_rel(addr)}"
        value = int(words[1], 10) if words[1].startswith("-") else int(words[1], 16)
        return _host_ret(op, value, self.base, self.s["size"])

    def report(self):
        words = self.next().split()
        if words[:2] == ["B", "fail"]:
            for line in self.lines:
                if line == "D":
                    return None
        self.base, start_brk, brk0 = (int(w, 16) for w in words[1:4])
        rep = Report("host", self.s, self.base, self.vmas(),
                     info={"start_brk": start_brk - self.base, "brk": brk0 - self.base})
        for _ in self.s["files"]:
            fd = self.next().split()[1]
            if fd.startswith("-"):
                raise RuntimeError(f"scenario driver: could not open a scenario file ({_errname(-int(fd))})")
        for op in self.s["ops"]:
            rep.steps.append(Step(self.ret(op), self.vmas()))
        if self.next() != "D":
            raise RuntimeError("scenario driver: a scenario did not end where expected")
        return rep


def _anon_file_label(seen, name, key):
    """Files a scenario never named: shared anonymous memory ("/dev/zero (deleted)") and
    MAP_HUGETLB memory ("/anon_hugepage (deleted)") get "shm#N" or "hugetlb#N", numbered by
    first appearance in the scenario (each mapping has its own inode); others keep their path."""
    for prefix, kind in (("/dev/zero", "shm"), ("/anon_hugepage", "hugetlb")):
        if name.startswith(prefix):
            if key not in seen:
                seen[key] = f"{kind}#{sum(v.startswith(kind) for v in seen.values()) + 1}"
            return seen[key]
    return name


def _errname(code):
    """The kernel's name for an errno (EOPNOTSUPP, not Python's alias ENOTSUP)."""
    if code == _errno.EOPNOTSUPP:
        return "EOPNOTSUPP"
    return _errno.errorcode.get(code, f"errno{code}")


def _host_ret(op, value, base, size):
    """A raw return value made relative: mmap addresses, brk breaks, or errno names."""
    if op["op"] == "brk":
        return value - base
    if op["op"] == "touch":
        return "ok"                     # every page touched without a signal
    if value < 0:
        return _errname(-value)
    if op["op"] == "mmap":
        return value - base if base <= value < base + size else "outside"
    return value


def run_host(scenarios, retries=4):
    """Run scenarios on this machine's kernel, all in one driver process; one Report each.

    A window that cannot be placed (the layout the kernel randomised leaves
    no room above mmap_base, which is rare) is retried in a new process.
    Raises HostUnavailable when the host cannot run scenarios at all.
    """
    scenarios = [normalise(s) for s in scenarios]
    driver = build_driver()
    files = _HostFiles()
    try:
        reports = [None] * len(scenarios)
        todo = list(range(len(scenarios)))
        for attempt in range(retries + 1):
            if not todo:
                break
            commands, paths = [], {}
            for i in todo:
                paths[i] = {}
                commands += _encode(scenarios[i], f"{i}-{attempt}", files, paths[i])
            done = subprocess.run([driver], input="\n".join(commands) + "\n", capture_output=True,
                                  text=True, timeout=300)
            if done.returncode:
                raise RuntimeError(f"scenario driver exited with {done.returncode}: {done.stderr[:500]}")
            lines = iter(done.stdout.splitlines())
            next(lines)                     # "I start_brk brk": the driver's own heap at start
            for i in todo:
                reports[i] = _HostParser(scenarios[i], lines, paths[i]).report()
            todo = [i for i in todo if reports[i] is None]
        if todo:
            raise HostUnavailable(f"no room for a window above mmap_base in {retries + 1} tries")
        for r in reports:
            r.info["fs"] = dict(files.fs_types)
        return reports
    finally:
        files.close()


# -- the model side --------------------------------------------------------------

def model_skip_reason():
    """Why the model cannot run scenarios yet, or None if it can."""
    try:
        from ..machine import Machine
    except ImportError as e:            # pragma: no cover - the package itself is broken
        return f"mmlab does not import: {e}"
    if not hasattr(Machine, "spawn"):
        return "model address space not built yet (no Machine.spawn)"
    try:
        import mmlab.process  # noqa: F401
    except ImportError:
        return "model address space not built yet (no mmlab.process)"
    return None


def model_capabilities():
    """The optional ops the model can run now: a subset of {'touch', 'mlock', 'munlock'}."""
    if model_skip_reason():
        return frozenset()
    p = _spawn()[1]
    return frozenset(op for op, method in MODEL_METHOD.items() if callable(getattr(p, method, None)))


def host_identity():
    """Who the host driver runs as, for the model's process to match: {"uid": 0|1000, "rlimits": {...}}.

    The driver inherits this process's uid and resource limits.  The model
    knows root (uid 0, every capability) and one ordinary user (1000), so a
    root host gives uid 0 and any other user gives 1000.  The limits that
    mmap, mlock and brk consult are copied as they are.  Off Linux: the
    model's defaults (uid 1000, its own limits).
    """
    try:
        import resource
    except ImportError:                 # pragma: no cover - not POSIX
        return {"uid": 1000, "rlimits": {}}
    limits = {}
    for name in ("RLIMIT_MEMLOCK", "RLIMIT_DATA", "RLIMIT_AS", "RLIMIT_STACK"):
        soft, hard = resource.getrlimit(getattr(resource, name))
        limits[getattr(_uapi, name, None) or getattr(resource, name)] = \
            tuple(U64 - 1 if v == resource.RLIM_INFINITY else v for v in (soft, hard))
    return {"uid": 0 if os.geteuid() == 0 else 1000, "rlimits": limits}


def _spawn(seed=0):
    from ..machine import Machine
    m = Machine(ram="256MiB", seed=seed)
    who = host_identity() if sys.platform.startswith("linux") else {"uid": 1000, "rlimits": {}}
    return m, m.spawn("a.out", uid=who["uid"], rlimits=who["rlimits"])


def _model_window(p, size):
    """Where the model's window goes: above every VMA below the stack, as the driver places it."""
    vmas = list(p.vmas)
    stack = [v.vm_start for v in vmas if v.vm_flags & VM_GROWSDOWN]
    if not stack:
        raise ModelUnavailable("the model's process has no stack VMA (VM_GROWSDOWN) to place the window under")
    stack = min(stack)
    top = max([v.vm_end for v in vmas if v.vm_end <= stack] + [getattr(p.mm, "mmap_base", 0)
                                                                if hasattr(p, "mm") else 0])
    base = (top + MARGIN + HUGE - 1) // HUGE * HUGE
    if base + size + MARGIN + STACK_GUARD_GAP > stack:
        raise ModelUnavailable(f"no room for a {size:#x}-byte window between {top:#x} and the stack at {stack:#x}")
    return base


def _flag_names(vm_flags):
    return " ".join(name for bit, name in sorted(VM_MNEMONICS.items()) if vm_flags >> bit & 1)


class _ModelRun:
    """One scenario on a fresh model machine."""

    def __init__(self, s, seed=0, spawn=None):
        self.s = s
        self.m, self.p = (spawn or _spawn)(seed)
        self.files, self.fds, self.shm = {}, {}, {}
        for name, spec in s["files"].items():
            root = "/var/tmp" if spec.get("backing", "disk") == "disk" else "/dev/shm"
            path = f"{root}/mmlab-scenario/{name}"
            self.files[path] = name
            self.m.fs.create(path, spec["size"], backing=spec.get("backing", "disk"))
            self.fds[name] = self.p.open(path, OPEN_FLAGS[spec.get("mode", "rw")])
        self.fds["badfd"] = BAD_FD
        if s["base"] == "brk":
            self.base = self.p.brk(0)
        else:
            self.base = _model_window(self.p, s["size"])
            if s["reserve"]:
                self.p.mmap(self.base, s["size"], PROT_NONE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE)

    def vmas(self):
        lo, hi = self.base, self.base + self.s["size"]
        names = self._maps_names()
        out = []
        for v in self.p.vmas:
            if v.vm_start < hi and v.vm_end > lo:
                out.append(Vma(v.vm_start - lo, v.vm_end - lo, v.perms, self._label(v, names),
                               v.vm_pgoff if v.vm_file is not None else 0, _flag_names(v.vm_flags)))
        return out

    def _maps_names(self):
        """Bracketed names ([heap], [stack]) by start address, from the model's own maps."""
        names = {}
        for line in self.p.maps().splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("["):
                names[int(parts[0].split("-")[0], 16)] = parts[5].strip()
        return names

    def _label(self, v, names):
        f = v.vm_file
        if f is None:
            return names.get(v.vm_start)
        path = getattr(f, "path", None) or ""
        if path in self.files:
            return self.files[path]
        return _anon_file_label(self.shm, path, getattr(f, "inode", None) or id(f))

    def step(self, op):
        kind = op["op"]
        method = MODEL_METHOD.get(kind, kind)
        if not callable(getattr(self.p, method, None)):
            return Step(None, self.vmas(), skipped=f"model has no p.{method} yet")
        try:
            ret = self.call(kind, op)
        except OSError as e:
            ret = _errname(e.errno)
        except SegmentationFault as e:
            code = {SEGV_MAPERR: "SEGV_MAPERR", SEGV_ACCERR: "SEGV_ACCERR"}.get(e.code, f"SEGV{e.code}")
            ret = f"{code}@{_rel(e.address - self.base)}"
        except Exception as e:          # raised where Linux returns: shown as a difference
            if "bus" in type(e).__name__.lower() and hasattr(e, "address"):
                ret = f"SIGBUS@{_rel(e.address - self.base)}"
            else:
                ret = f"{type(e).__name__}: {e}"
        return Step(ret, self.vmas())

    def call(self, kind, op):
        p, base, size = self.p, self.base, self.s["size"]
        if kind == "mmap":
            addr = 0 if op.get("off") is None else base + op["off"]
            fd = self.fds[op["file"]] if op.get("file") else -1
            r = p.mmap(addr, op["len"], op["prot"], op["flags"], fd, _file_offset(op))
            return r - base if base <= r < base + size else "outside"
        if kind == "brk":
            if "to" in op:
                return p.brk(base + op["to"]) - base
            if "delta" in op:
                return p.brk(p.brk(0) + op["delta"]) - base
            return p.brk(0) - base
        if kind == "touch":
            p.touch(base + op["off"], op["len"], write=bool(op.get("write")))
            return "ok"
        args = [base + op["off"], op["len"]]
        if kind in ("mprotect", "madvise"):
            args.append(op["prot"] if kind == "mprotect" else op["advice"])
        r = getattr(p, kind)(*args)
        return 0 if r is None else r


def run_model(scenario, seed=0, spawn=None, check=True):
    """Run one scenario on a fresh model machine; its Report.  ModelUnavailable if it cannot.

    `spawn(seed)` may supply the (machine, process) pair to run on; by
    default it is Machine(ram="256MiB", seed=seed) and m.spawn("a.out").
    With `check`, m.check() runs after every op.
    """
    reason = None if spawn else model_skip_reason()
    if reason:
        raise ModelUnavailable(reason)
    s = normalise(scenario)
    run = _ModelRun(s, seed, spawn)
    rep = Report("model", s, run.base, run.vmas(), info={"brk": run.p.brk(0) - run.base})
    for op in s["ops"]:
        rep.steps.append(run.step(op))
        if check:
            run.m.check()           # an InvariantError here is a model bug, not a difference
    rep.machine = run.m
    return rep


# -- comparing ---------------------------------------------------------------------

def compare(host, model, fields=("ret", "vmas")):
    """Every difference between two reports of one scenario, in op order.

    `fields` chooses what counts: "ret" (return values), "vmas" (the window's
    VMAs), and within VMAs "flags" can be dropped by passing fields without
    "flags" while keeping "vmas_noflags".  An op the model skipped (its method
    does not exist yet) is not compared on its return value.
    """
    ops = host.scenario["ops"]
    diffs = []

    def vmas(vs):
        return [v._replace(flags="") for v in vs] if "vmas_noflags" in fields else vs

    check_vmas = "vmas" in fields or "vmas_noflags" in fields
    if check_vmas and vmas(host.setup) != vmas(model.setup):
        diffs.append(Difference(-1, {}, "vmas", vmas(host.setup), vmas(model.setup)))
    if len(host.steps) != len(model.steps):
        diffs.append(Difference(len(ops), {}, "steps", len(host.steps), len(model.steps)))
    for i, (h, m) in enumerate(zip(host.steps, model.steps)):
        if "ret" in fields and not (h.skipped or m.skipped) and h.ret != m.ret:
            diffs.append(Difference(i, ops[i], "ret", h.ret, m.ret))
        if check_vmas and vmas(h.vmas) != vmas(m.vmas):
            diffs.append(Difference(i, ops[i], "vmas", vmas(h.vmas), vmas(m.vmas)))
    return diffs


def run(scenario, seed=0):
    """(host report, model report) for one scenario."""
    return run_host([scenario])[0], run_model(scenario, seed)


def check(scenario, seed=0, fields=("ret", "vmas")):
    """The differences between this machine's kernel and the model on one scenario ([] if none)."""
    host, model = run(scenario, seed)
    return compare(host, model, fields)


def side_by_side(scenario, host=None, model=None, width=50):
    """A text table of one scenario on both sides, op by op, for "check against your kernel" cells.

    Runs whichever side is not given.  A side that cannot run (no compiler,
    not Linux, model not built yet) shows its reason at the head of its
    column and the other side is printed alone.
    """
    s = normalise(scenario)
    if host is None:
        try:
            host = run_host([s])[0]
        except HostUnavailable as e:
            host = e.reason
    if model is None:
        try:
            model = run_model(s)
        except ModelUnavailable as e:
            model = e.reason
    both = not isinstance(host, str) and not isinstance(model, str)

    def column(rep):
        if isinstance(rep, str):
            return f"(cannot run: {rep})", None, [None] * len(s["ops"])
        return rep.side, rep.setup, rep.steps

    h_title, h_setup, h_steps = column(host)
    m_title, m_setup, m_steps = column(model)
    lines = [f"{s['name'] or 'scenario'}: {s['base']} window of {s['size'] >> 20} MiB"
             f"{', reserved' if s['reserve'] else ''}; offsets relative to it"]
    if s.get("rule"):
        lines.append(f"rule: {s['rule']} ({s.get('kernel', '')})")
    lines.append(f"{'':6}{h_title:{width}}  {m_title}")

    def block(title, h_ret, m_ret, h_vmas, m_vmas, note=""):
        same = not both or (h_ret == m_ret and h_vmas == m_vmas)
        lines.append(f"{title}{'' if same else '   <-- differs'}{note}")
        if h_ret is not None or m_ret is not None:
            left = "" if h_vmas is None else "= " + format_ret(h_ret)
            right = "" if m_vmas is None else "= " + format_ret(m_ret)
            lines.append(f"{'':6}{left:{width}}  {right}".rstrip())
        h_vmas, m_vmas = h_vmas or [], m_vmas or []
        for k in range(max(len(h_vmas), len(m_vmas))):
            hv = format_vma(h_vmas[k]) if k < len(h_vmas) else ""
            mv = format_vma(m_vmas[k]) if k < len(m_vmas) else ""
            lines.append(f"{'':6}{hv:{width}}  {mv}".rstrip())

    block("setup", None, None, h_setup, m_setup)
    for i, (op, h, m) in enumerate(zip(s["ops"], h_steps, m_steps)):
        note = f"   (model: {m.skipped})" if m is not None and m.skipped else ""
        h_ret = h.ret if h else None
        m_ret = h_ret if m is not None and m.skipped else m.ret if m else None
        block(f"{i:<4}  {describe(op)}", h_ret, m_ret, h.vmas if h else None, m.vmas if m else None, note)
    if both:
        diffs = compare(host, model)
        lines.append(f"{len(diffs)} difference{'s' if len(diffs) != 1 else ''}")
    return "\n".join(lines)


# -- random scenarios ---------------------------------------------------------------

_PROTS = (PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC,
          PROT_READ | PROT_WRITE | PROT_EXEC)
_ADVICE = (MADV_DONTNEED, MADV_DONTNEED, MADV_WILLNEED, MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL,
           MADV_DONTFORK, MADV_DOFORK, MADV_DONTDUMP, MADV_DODUMP, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
           MADV_FREE, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_COLD, MADV_PAGEOUT, MADV_REMOVE,
           MADV_POPULATE_READ, MADV_POPULATE_WRITE, 999)


class _Gen:
    """Draws one random scenario; `busy` pages near the window start keep the ops meeting each other."""

    def __init__(self, seed, ops):
        self.r = random.Random(seed)
        self.ops = ops
        self.busy = 40
        self.last_file = None       # (off, len, file, pgoff, prot, flags) of the last file mmap

    def range(self, small=False, absurd=(U64 - PAGE,)):
        r = self.r
        x = r.random()
        if small or x < 0.75:
            start, n = r.randrange(self.busy), r.randint(1, 12)
            return start * PAGE, n * PAGE
        if x < 0.9:
            off = r.choice((0, 2, 4, 6, 8)) * MiB + r.choice((0, 0, PAGE * r.randint(1, 8)))
            return off, r.choice((HUGE, 2 * HUGE, HUGE + PAGE * r.randint(1, 4)))
        # argument errors: an unaligned start, a zero or unaligned or absurd length
        # (absurd lengths only where the kernel refuses them before any change; see _reach)
        start = r.randrange(self.busy) * PAGE
        return r.choice(((start + r.choice((1, 100, 2048)), PAGE), (start, 0),
                         (start, PAGE * r.randint(1, 4) + r.randint(1, PAGE - 1)),
                         (start, r.choice(absurd))))

    def mmap(self, files):
        r = self.r
        off, length = self.range(absurd=(U64 - PAGE, 1 << 62, TASK_SIZE + PAGE))
        prot = r.choice(_PROTS)
        kind = r.random()
        if files and self.last_file and kind < 0.15:
            # continue the last file mapping, so that file offsets line up for a merge
            o, n, f, pg, prot, flags = self.last_file
            op = {"op": "mmap", "off": o + n, "len": PAGE * r.randint(1, 4), "prot": prot,
                  "flags": flags, "file": f, "pgoff": pg + n // PAGE}
        elif files and kind < 0.45:
            f = r.choice(sorted(files))
            flags = r.choice((MAP_PRIVATE, MAP_SHARED, MAP_SHARED, MAP_SHARED_VALIDATE))
            op = {"op": "mmap", "off": off, "len": length, "prot": prot, "flags": flags, "file": f,
                  "pgoff": r.choice((0, 0, 1, 2, 3, 8, r.randrange(64)))}
            if r.random() < 0.05:
                op["offset"] = op.pop("pgoff") * PAGE + r.choice((1, 512))       # unaligned: EINVAL
        else:
            flags = MAP_ANONYMOUS | r.choice((MAP_PRIVATE, MAP_PRIVATE, MAP_PRIVATE, MAP_SHARED))
            op = {"op": "mmap", "off": off, "len": length, "prot": prot, "flags": flags}
        # where: fixed mostly, sometimes no-replace, a hint, or nothing at all
        where = r.random()
        if where < 0.68:
            op["flags"] |= MAP_FIXED
        elif where < 0.8:
            op["flags"] |= MAP_FIXED_NOREPLACE
        elif where < 0.95:
            pass                                            # a hint
        else:
            op["off"] = None                                # the kernel chooses (below mmap_base)
            op["flags"] &= ~(MAP_FIXED | MAP_FIXED_NOREPLACE)
        for bit, p in ((MAP_NORESERVE, 0.1), (MAP_POPULATE, 0.05), (MAP_GROWSDOWN, 0.03),
                       (MAP_HUGETLB, 0.02)):
            # a brk window is only page-aligned (start_brk is randomised by pages), so
            # hugetlb's 2 MiB alignment would place things differently on each run
            if bit == MAP_HUGETLB and self.brk:
                continue
            if r.random() < p:
                op["flags"] |= bit
        if "mlock" in self.ops and r.random() < 0.03:
            op["flags"] |= MAP_LOCKED
        x = r.random()
        if x < 0.03:
            op["flags"] &= ~0x0f                            # no mapping type: EINVAL
        elif x < 0.05:
            op["flags"] = (op["flags"] & ~0x0f) | MAP_SHARED_VALIDATE | MAP_SYNC
        elif x < 0.07 and files:
            op["file"] = "badfd"
            op["flags"] &= ~MAP_ANONYMOUS
        if (op.get("file") and op["file"] != "badfd" and op["off"] is not None and "pgoff" in op
                and op["len"] <= 64 * PAGE):
            self.last_file = (op["off"], op["len"], op["file"], op["pgoff"], op["prot"], op["flags"])
        return op

    def mprotect(self):
        off, length = self.range()
        # PROT_SEM (0x8) is accepted on x86; 0x10 is not a protection bit at all
        prot = self.r.choice(_PROTS + (PROT_READ | 0x8, PROT_READ | 0x10, PROT_READ | PROT_GROWSDOWN))
        return {"op": "mprotect", "off": off, "len": length, "prot": prot}

    def scenario(self):
        r = self.r
        brk = self.brk = "brk" in self.ops and r.random() < 0.25
        files = {}
        if not brk:
            for name in ("f", "g")[:r.choice((0, 1, 1, 2))]:
                files[name] = {"size": r.choice((16 * PAGE, 64 * PAGE, 10000, 3 * MiB)),
                               "backing": r.choice(("disk", "tmpfs")),
                               "mode": r.choice(("rw", "rw", "rw", "ro"))}
        s = {"name": "", "base": "brk" if brk else "mmap", "size": DEFAULT_SIZE,
             "reserve": (not brk) and r.random() < 0.6, "files": files, "ops": []}
        kinds = ["mmap"] * 8 + ["munmap"] * 3 + ["mprotect"] * 4 + ["madvise"] * 2
        kinds += [k for k in ("touch", "mlock", "munlock") if k in self.ops] * 2
        if brk:
            kinds += ["brk"] * 10
        for i in range(r.randint(5, 30)):
            # an empty window answers most calls with ENOMEM: map something first
            kind = "mmap" if i < 2 and not s["reserve"] else r.choice(kinds)
            s["ops"].append(self.op(kind, files))
        return s

    def op(self, kind, files):
        r = self.r
        if kind == "mmap":
            return self.mmap(files)
        if kind == "mprotect":
            return self.mprotect()
        if kind == "brk":
            x = r.random()
            if x < 0.45:
                return {"op": "brk", "delta": r.choice((PAGE, 2 * PAGE, 5 * PAGE, r.randint(1, 9000)))}
            if x < 0.65:
                return {"op": "brk", "delta": -r.choice((PAGE, 2 * PAGE, r.randint(1, 9000)))}
            if x < 0.9:
                return {"op": "brk", "to": r.choice((0, -PAGE, r.randrange(self.busy) * PAGE,
                                                     r.randrange(self.busy) * PAGE + r.randint(1, PAGE - 1)))}
            return {"op": "brk"}
        if kind == "touch":
            off, length = self.range(small=True)
            return {"op": "touch", "off": off, "len": length, "write": r.random() < 0.6}
        absurd = (U64 - PAGE, 1 << 62) if kind == "munmap" else (U64 - PAGE,)
        off, length = self.range(small=kind == "munmap" and r.random() < 0.5, absurd=absurd)
        if kind == "munmap" and r.random() < 0.2:
            length = PAGE * r.randint(10, 30)                # spanning several VMAs and holes
        op = {"op": kind, "off": off, "len": length}
        if kind == "madvise":
            op["advice"] = r.choice(_ADVICE)
        return op


def random_scenario(seed, ops=BASIC_OPS):
    """A random scenario drawn from `seed`, using only the ops in `ops`.

    5-30 ops mixing anonymous and file mappings (private, shared), MAP_FIXED,
    MAP_FIXED_NOREPLACE, hints and NULL, lengths of pages and of 2 MiB
    multiples, munmap and mprotect over several VMAs and holes, madvise, brk
    (a quarter of scenarios, in a brk window), and invalid arguments so that
    errno paths are compared too.  Pass ops including "touch", "mlock" and
    "munlock" once the model has them (model_capabilities() says which).
    """
    s = _Gen(seed, frozenset(ops)).scenario()
    s["name"] = f"random-{seed}"
    return s


# -- named scenarios: one Linux rule each --------------------------------------------

P = PAGE
RW, RO, NONE_ = PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
FIXED = ANON | MAP_FIXED


def _map(page, pages, prot=RW, flags=FIXED, **extra):
    return {"op": "mmap", "off": None if page is None else page * P, "len": pages * P,
            "prot": prot, "flags": flags, **extra}


def _range(kind, page, pages, **extra):
    return {"op": kind, "off": page * P, "len": pages * P, **extra}


def shape(vmas):
    """VMAs in page units, as the named scenarios state them: '0-2 rw-p, 2-3 r--s f@5'."""
    parts = []
    for v in vmas:
        text = f"{v.start // P}-{v.end // P} {v.perms}"
        if v.file:
            text += f" {v.file}" if v.file.startswith("[") else f" {v.file}@{v.pgoff}"
        parts.append(text)
    return ", ".join(parts)


def _named(name, rule, kernel, ops, expect, **extra):
    """A named scenario: `expect` maps an op index to (return value, shape of the window after
    it) or (return value, shape, VmFlags of each VMA); `requires` names host facts
    (host_facts()) the rule depends on."""
    return {"name": name, "rule": rule, "kernel": kernel, "base": "mmap", "reserve": False,
            "ops": ops, "expect": expect, **extra}


_FILE16 = {"f": {"size": 16 * P, "backing": "disk", "mode": "rw"}}

NAMED = {s["name"]: s for s in [
    _named("merge with prev", "a new anonymous mapping right after a compatible one extends it",
           "vma_merge_new_range (mm/vma.c), can_vma_merge_after",
           [_map(0, 2), _map(2, 1)], {1: (2 * P, "0-3 rw-p")}),
    _named("merge with next", "a new anonymous mapping right before a compatible one extends it downwards",
           "vma_merge_new_range (mm/vma.c), can_vma_merge_before",
           [_map(2, 1), _map(0, 2)], {1: (0, "0-3 rw-p")}),
    _named("merge both", "filling the hole between two compatible mappings leaves one VMA",
           "vma_merge_new_range (mm/vma.c): prev and next",
           [_map(0, 1), _map(2, 1), _map(1, 1)], {1: (2 * P, "0-1 rw-p, 2-3 rw-p"), 2: (P, "0-3 rw-p")}),
    _named("no merge: other protection", "neighbours with different vm_flags stay apart",
           "is_mergeable_vma (mm/vma.c)",
           [_map(0, 1), _map(1, 1, RO)], {1: (P, "0-1 rw-p, 1-2 r--p")}),
    _named("no merge: NORESERVE", "MAP_NORESERVE gives VM_NORESERVE instead of VM_ACCOUNT, so no merge",
           "mmap_region (mm/vma.c), accountable_mapping",
           [_map(0, 1), _map(1, 1, RW, FIXED | MAP_NORESERVE)], {1: (P, "0-1 rw-p, 1-2 rw-p")}),
    _named("file pgoff continuity", "file mappings merge only when the file offsets continue",
           "can_vma_merge_after (mm/vma.c): vm_pgoff + pages == pgoff",
           [_map(0, 1, RO, MAP_SHARED | MAP_FIXED, file="f", pgoff=2),
            _map(1, 1, RO, MAP_SHARED | MAP_FIXED, file="f", pgoff=3),
            _map(2, 1, RO, MAP_SHARED | MAP_FIXED, file="f", pgoff=5)],
           {1: (P, "0-2 r--s f@2"), 2: (2 * P, "0-2 r--s f@2, 2-3 r--s f@5")}, files=_FILE16),
    _named("no merge: file beside anonymous", "a private file mapping never merges with anonymous memory",
           "is_mergeable_vma (mm/vma.c): vm_file must match",
           [_map(0, 1, RW, MAP_PRIVATE | MAP_FIXED, file="f", pgoff=0), _map(1, 1)],
           {1: (P, "0-1 rw-p f@0, 1-2 rw-p")}, files=_FILE16),
    _named("shared anonymous never merges", "each MAP_SHARED|MAP_ANONYMOUS mapping has its own shmem file",
           "shmem_zero_setup (mm/shmem.c)",
           [_map(0, 1, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED),
            _map(1, 1, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)],
           {1: (P, "0-1 rw-s shm#1@0, 1-2 rw-s shm#2@0")}),
    _named("anon_vma: two faulted neighbours", "prev and next with different anon_vmas cannot both merge",
           "is_mergeable_anon_vma (mm/vma.c)",
           [_map(0, 1), _range("touch", 0, 1, write=True), _map(2, 1), _range("touch", 2, 1, write=True),
            _map(1, 1)], {4: (P, "0-2 rw-p, 2-3 rw-p")}),
    _named("anon_vma: one faulted neighbour", "a neighbour without an anon_vma merges with one that has it",
           "is_mergeable_anon_vma (mm/vma.c)",
           [_map(0, 1), _range("touch", 0, 1, write=True), _map(2, 1), _map(1, 1)], {3: (P, "0-3 rw-p")}),
    _named("MAP_FIXED over existing", "MAP_FIXED unmaps what was there, then merges like any new mapping",
           "mmap_region (mm/vma.c): vms_gather_munmap_vmas",
           [_map(0, 4), _map(1, 1, RO), _map(1, 1)],
           {1: (P, "0-1 rw-p, 1-2 r--p, 2-4 rw-p"), 2: (P, "0-4 rw-p")}),
    _named("MAP_FIXED_NOREPLACE", "MAP_FIXED_NOREPLACE fails with EEXIST over anything mapped",
           "do_mmap (mm/mmap.c)",
           [_map(0, 2), _map(1, 1, RW, ANON | MAP_FIXED_NOREPLACE), _map(2, 1, RW, ANON | MAP_FIXED_NOREPLACE)],
           {1: ("EEXIST", "0-2 rw-p"), 2: (2 * P, "0-3 rw-p")}),
    _named("mprotect split middle", "mprotect of a middle part splits the VMA in three; undoing it merges back",
           "mprotect_fixup (mm/mprotect.c), vma_modify_flags",
           [_map(0, 3), _range("mprotect", 1, 1, prot=RO), _range("mprotect", 1, 1, prot=RW)],
           {1: (0, "0-1 rw-p, 1-2 r--p, 2-3 rw-p"), 2: (0, "0-3 rw-p")}),
    _named("mprotect over a hole", "mprotect changes the VMAs before a hole, then fails with ENOMEM",
           "do_mprotect_pkey (mm/mprotect.c)",
           [_map(0, 1), _map(2, 1), _range("mprotect", 0, 3, prot=RO)], {2: ("ENOMEM", "0-1 r--p, 2-3 rw-p")}),
    _named("mprotect unaccounts untouched memory", "read-only again before any fault: VM_ACCOUNT is dropped",
           "mprotect_fixup (mm/mprotect.c): no anon_vma yet",
           [_map(0, 1), _range("mprotect", 0, 1, prot=RO), _range("mprotect", 0, 1, prot=RW)],
           {1: (0, "0-1 r--p"), 2: (0, "0-1 rw-p")}),
    _named("munmap middle split", "munmap of a middle part leaves two VMAs", "do_vmi_align_munmap (mm/vma.c)",
           [_map(0, 3), _range("munmap", 1, 1)], {1: (0, "0-1 rw-p, 2-3 rw-p")}),
    _named("munmap over holes", "munmap of a range with holes unmaps what is there and succeeds",
           "do_vmi_munmap (mm/vma.c)",
           [_map(0, 1), _map(2, 1), _range("munmap", 0, 4)], {2: (0, "")}),
    _named("madvise split and merge back", "madvise that changes vm_flags splits; undoing it merges",
           "madvise_update_vma (mm/madvise.c)",
           [_map(0, 3), _range("madvise", 1, 1, advice=MADV_DONTFORK), _range("madvise", 1, 1, advice=MADV_DOFORK)],
           {1: (0, "0-1 rw-p, 1-2 rw-p, 2-3 rw-p"), 2: (0, "0-3 rw-p")}),
    _named("hint taken when free", "an address hint is used as is when the range is free",
           "arch_get_unmapped_area_topdown (arch/x86/kernel/sys_x86_64.c)",
           [_map(4, 2, RW, ANON)], {0: (4 * P, "4-6 rw-p")}),
    _named("hint ignored when busy", "a busy hint is dropped: the kernel searches below mmap_base",
           "arch_get_unmapped_area_topdown (arch/x86/kernel/sys_x86_64.c)",
           [_map(0, 2), _map(1, 1, RW, ANON)], {1: ("outside", "0-2 rw-p")}),
    _named("NULL address", "with no address the mapping goes below mmap_base, outside the window",
           "vm_unmapped_area (mm/mmap.c)", [_map(None, 1, RW, ANON)], {0: ("outside", "")}),
    _named("invalid arguments", "argument checks come before any change",
           "do_mmap (mm/mmap.c), do_vmi_munmap (mm/vma.c), do_mprotect_pkey (mm/mprotect.c)",
           [_map(0, 2),
            dict(_map(0, 1), off=P + 1),                                  # unaligned MAP_FIXED address
            dict(_map(4, 1), len=0),                                      # zero length
            _map(4, 1, RW, MAP_ANONYMOUS | MAP_FIXED),                    # no mapping type
            dict(_map(4, 1), len=U64 - P),                                # length overflows
            _map(4, 1, RW, MAP_SHARED | MAP_FIXED, file="badfd"),         # bad fd
            _map(4, 1, RW, MAP_SHARED | MAP_FIXED, file="r"),             # shared+write on a read-only fd
            dict(_map(4, 1, RO, MAP_PRIVATE | MAP_FIXED, file="r"), offset=100),   # unaligned offset
            {"op": "munmap", "off": 1, "len": P},                         # unaligned munmap
            _range("mprotect", 0, 1, prot=RO | 0x10),                     # not a protection bit
            dict(_range("mprotect", 0, 1, prot=RO), len=0),               # zero-length mprotect succeeds
            ],
           {1: ("EINVAL", "0-2 rw-p"), 2: ("EINVAL", "0-2 rw-p"), 3: ("EINVAL", "0-2 rw-p"),
            4: ("ENOMEM", "0-2 rw-p"), 5: ("EBADF", "0-2 rw-p"), 6: ("EACCES", "0-2 rw-p"),
            7: ("EINVAL", "0-2 rw-p"), 8: ("EINVAL", "0-2 rw-p"), 9: ("EINVAL", "0-2 rw-p"),
            10: (0, "0-2 rw-p")},
           files={"r": {"size": 16 * P, "backing": "tmpfs", "mode": "ro"}}),
    _named("mlock of PROT_NONE", "mlock sets VM_LOCKED, then cannot populate PROT_NONE pages: ENOMEM",
           "populate_vma_page_range (mm/gup.c): no FOLL_FORCE when !vma_is_accessible; "
           "__mlock_posix_error_return (mm/mlock.c)",
           [_map(0, 2, NONE_), _range("mlock", 0, 2)], {1: ("ENOMEM", "0-2 ---p", ["mr mw me lo"])}),
    _named("mlock past end of file", "populating a file page past EOF fails (SIGBUS): mlock gives ENOMEM",
           "__mm_populate (mm/gup.c), filemap_fault (mm/filemap.c): VM_FAULT_SIGBUS",
           [_map(0, 4, RO, MAP_PRIVATE | MAP_FIXED, file="f"), _range("mlock", 0, 4)],
           {1: ("ENOMEM", "0-4 r--p f@0", ["rd mr mw me lo"])}, files={"f": {"size": 10000}}),
    _named("MADV_POPULATE on PROT_NONE", "MADV_POPULATE_READ/WRITE fail with EINVAL at an inaccessible VMA, "
           "with ENOMEM at a hole", "madvise_populate (mm/madvise.c), faultin_page_range (mm/gup.c)",
           [_map(0, 1, NONE_), _map(2, 1), _range("madvise", 0, 3, advice=MADV_POPULATE_READ),
            _range("madvise", 2, 1, advice=MADV_POPULATE_WRITE), _range("madvise", 2, 3, advice=MADV_POPULATE_WRITE)],
           {2: ("EINVAL", "0-1 ---p, 2-3 rw-p"), 3: (0, "0-1 ---p, 2-3 rw-p"), 4: ("ENOMEM", "0-1 ---p, 2-3 rw-p")}),
    _named("MAP_POPULATE gives an anon_vma", "after MAP_POPULATE the pages exist, so mprotect keeps VM_ACCOUNT",
           "populate_vma_page_range (mm/gup.c), mprotect_fixup (mm/mprotect.c)",
           [_map(0, 1, RW, FIXED | MAP_POPULATE), _range("mprotect", 0, 1, prot=NONE_)],
           {1: (0, "0-1 ---p", ["mr mw me ac"])}),
    _named("failed MAP_FIXED leaves a hole", "when the file's ->mmap fails, the old mappings are already "
           "gone: MAP_SYNC on ext4 without DAX gives EOPNOTSUPP and a hole",
           "__mmap_region (mm/vma.c): vms_abort_munmap_vmas; ext4_file_mmap",
           [_map(0, 4), _map(1, 2, RW, MAP_SHARED_VALIDATE | MAP_FIXED | MAP_SYNC, file="f")],
           {1: ("EOPNOTSUPP", "0-1 rw-p, 3-4 rw-p")}, files=_FILE16, requires={"disk_fs": ("ext4", "xfs")}),
    _named("MAP_SYNC on tmpfs", "tmpfs does not list MAP_SYNC: EOPNOTSUPP before anything changes",
           "do_mmap (mm/mmap.c): MAP_SHARED_VALIDATE and f_op->mmap_supported_flags",
           [_map(0, 4), _map(1, 2, RW, MAP_SHARED_VALIDATE | MAP_FIXED | MAP_SYNC, file="f")],
           {1: ("EOPNOTSUPP", "0-4 rw-p")}, files={"f": {"size": 16 * P, "backing": "tmpfs"}},
           requires={"tmpfs_fs": "tmpfs"}),
    _named("write access is checked before ->mmap", "MAP_SHARED with PROT_WRITE on a read-only fd is "
           "EACCES, even with MAP_SYNC that ->mmap would refuse", "do_mmap (mm/mmap.c)",
           [_map(0, 4), _map(1, 2, RW, MAP_SHARED_VALIDATE | MAP_FIXED | MAP_SYNC, file="f")],
           {1: ("EACCES", "0-4 rw-p")}, files={"f": {"size": 16 * P, "mode": "ro"}},
           requires={"disk_fs": ("ext4", "xfs")}),
    _named("MAP_HUGETLB without huge pages", "hugetlb: MAP_FIXED must be 2 MiB aligned (EINVAL); without "
           "MAP_NORESERVE the reservation fails (ENOMEM) after the old range is gone; NORESERVE maps",
           "hugetlb_get_unmapped_area (fs/hugetlbfs/inode.c), hugetlb_reserve_pages (mm/hugetlb.c)",
           [_map(1, 512, RW, FIXED | MAP_HUGETLB), _map(512, 512, RW, FIXED | MAP_HUGETLB),
            _map(1024, 512, RW, FIXED | MAP_HUGETLB | MAP_NORESERVE),
            _map(1536, 1, RW, FIXED | MAP_HUGETLB | MAP_NORESERVE)],
           {0: ("EINVAL", "0-8192 ---p"), 1: ("ENOMEM", "0-512 ---p, 1024-8192 ---p"),
            3: (0x600000, "0-512 ---p, 1024-1536 rw-p hugetlb#1@0, 1536-2048 rw-p hugetlb#2@0, 2048-8192 ---p",
                ["mr mw me nr", "rd wr mr mw me de nr ht", "rd wr mr mw me de nr ht", "mr mw me nr"])},
           reserve=True, requires={"nr_hugepages": 0}),
    # brk: the window starts at start_brk; returns are the break relative to it
    _named("brk grow", "brk grows the heap VMA page by page", "brk (mm/mmap.c), do_brk_flags",
           [{"op": "brk", "delta": 3 * P}, {"op": "brk", "delta": P}],
           {0: (3 * P, "0-3 rw-p [heap]"), 1: (4 * P, "0-4 rw-p [heap]")}, base="brk"),
    _named("brk shrink", "brk below the break unmaps the pages above it", "brk (mm/mmap.c)",
           [{"op": "brk", "delta": 3 * P}, {"op": "brk", "delta": -P}, {"op": "brk", "to": 0}],
           {1: (2 * P, "0-2 rw-p [heap]"), 2: (0, "")}, base="brk"),
    _named("brk unaligned", "the break may be any byte; the heap VMA ends at the next page",
           "brk (mm/mmap.c): PAGE_ALIGN(brk)",
           [{"op": "brk", "to": 100}, {"op": "brk", "to": P + 1}, {"op": "brk", "to": P}],
           {0: (100, "0-1 rw-p [heap]"), 1: (P + 1, "0-2 rw-p [heap]"), 2: (P, "0-1 rw-p [heap]")}, base="brk"),
    _named("brk below start", "a break below start_brk is refused: brk returns the current one",
           "brk (mm/mmap.c): brk < mm->start_brk",
           [{"op": "brk", "delta": 2 * P}, {"op": "brk", "to": -P}], {1: (2 * P, "0-2 rw-p [heap]")}, base="brk"),
    _named("brk refused near next VMA", "the heap must end at least a page below the next mapping",
           "brk (mm/mmap.c): vma_find(newbrk + PAGE_SIZE)",
           [_map(5, 1, RW, ANON | MAP_FIXED_NOREPLACE), {"op": "brk", "to": 4 * P},
            {"op": "brk", "to": 4 * P + 1}, {"op": "brk", "to": 6 * P}],
           {1: (4 * P, "0-4 rw-p [heap], 5-6 rw-p"), 2: (4 * P, "0-4 rw-p [heap], 5-6 rw-p"),
            3: (4 * P, "0-4 rw-p [heap], 5-6 rw-p")}, base="brk"),
]}
