"""A real process's /proc/pid/maps beside the model's: a parser, and a probe program.

    from mmlab.linux import procmaps
    lines = procmaps.parse_maps(p.maps())         # the model's maps, or any maps text
    run = procmaps.run_probe()                    # a real program's layout at main()
    run["maps"], run["brk"], run["end"], run["start_brk"]
    procmaps.skip_reason()                        # why the probe cannot run here, or None

The probe (layout_probe.c beside this file, compiled with cc -O2 on first use
and cached by its source's hash, as the scenario driver is) is a small
program built like a gcc -O2 hello world: at main() it prints its raw break,
the address of the linker's `end` symbol (the end of its bss, which is where
the kernel's elf_brk lies), /proc/self/stat and its own /proc/self/maps.  It
uses no stdio and no malloc, so nothing has moved the break, and its only
buffer is on the stack, so its VMAs are those of any small program.

Each run is a new exec, so the layout is randomised afresh: run_probe(n)
samples where the kernel put start_brk, mmap_base and the stack.
"""
import os
import subprocess
import sys
from collections import namedtuple

from .scenario import _compiler, compile_cached, HostUnavailable

PAGE = 4096
PROBE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layout_probe.c")

MapsLine = namedtuple("MapsLine", "start end perms offset dev inode name")
MapsLine.__doc__ = "One line of /proc/pid/maps: [start, end), 'rw-p', file offset, 'fe:00', inode, name ('' if none)."


def parse_maps(text):
    """The lines of a /proc/pid/maps text as MapsLine tuples, in order.

    ValueError naming the line if one is not laid out as show_map_vma lays it out.
    """
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        f = line.split(None, 5)
        try:
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            out.append(MapsLine(lo, hi, f[1], int(f[2], 16), f[3], int(f[4]), f[5].strip() if len(f) > 5 else ""))
        except (ValueError, IndexError):
            raise ValueError(f"text: not a maps line: {line!r}") from None
    return out


def line_kind(line, exe=None):
    """What a maps line holds, in the words of mmlab.viz.vmas.KINDS ('program', 'library', ...)."""
    name = line.name
    if name == "[heap]":
        return "heap"
    if name == "[stack]":
        return "stack"
    if name.startswith("[anon:"):
        return "anonymous"
    if name.startswith("["):
        return "special"
    if line.perms[:3] == "---":
        return "no access"
    if name.startswith("/dev/zero") or name.startswith("/SYSV"):
        return "shared anonymous"
    if not name:
        return "anonymous"
    if exe is not None and name == exe:
        return "program"
    return "library" if ".so" in os.path.basename(name) else "file"


def layout_rows(text, exe=None):
    """A maps text as comparable rows: (kind, name, perms, pages, file offset, pages of hole before).

    Names are basenames (the program's own path differs between the host
    and the model); the hole before the first line, and before a line
    whose start is below the previous end ([vsyscall] is not), is None.
    """
    rows, prev = [], None
    lines = parse_maps(text)
    exe = exe if exe is not None else next((x.name for x in lines if x.name.startswith("/")), None)
    for x in lines:
        hole = (x.start - prev) // PAGE if prev is not None and x.start >= prev else None
        name = x.name if x.name.startswith("[") else os.path.basename(x.name)
        rows.append((line_kind(x, exe), name, x.perms, (x.end - x.start) // PAGE, x.offset, hole))
        prev = x.end
    return rows


# -- the probe program -----------------------------------------------------------------

def skip_reason():
    """Why the layout probe cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return f"not Linux (this is {sys.platform})"
    if os.uname().machine != "x86_64":
        return f"needs x86_64 (this is {os.uname().machine})"
    if not os.path.exists("/proc/self/maps"):
        return "/proc/self/maps is missing"
    if _compiler() is None:
        return "no C compiler (cc, gcc or clang) to build the layout probe"
    return None


def build_probe():
    """The path of the compiled probe, built with cc -O2 on first use (cached by source hash)."""
    reason = skip_reason()
    if reason:
        raise HostUnavailable(reason)
    return compile_cached(PROBE_SOURCE, "layout_probe")


def parse_probe(text):
    """The probe's output as a dict: brk, end, start_data, end_data, start_brk (ints) and maps (text)."""
    head, sep, maps = text.partition("maps\n")
    if not sep:
        raise ValueError("text: the probe's output has no maps section")
    out = {"maps": maps}
    for line in head.splitlines():
        key, _, value = line.partition(" ")
        if key in ("brk", "end"):
            out[key] = int(value, 16)
        elif key == "stat":
            # the command name, in parentheses, may hold spaces: count fields after its ')'
            fields = value[value.rindex(")") + 2:].split()
            # fields[0] is field 3 (state); start_data, end_data, start_brk are fields 45-47
            out["start_data"], out["end_data"], out["start_brk"] = (int(x) for x in fields[42:45])
    return out


def run_probe(runs=1):
    """Run the probe `runs` times, each a fresh exec; a list of parse_probe dicts (one dict if runs=1).

    HostUnavailable (with a reason) when the host cannot build or run it.
    """
    path = build_probe()
    results = []
    for _ in range(runs):
        done = subprocess.run([path], capture_output=True, text=True, env={}, timeout=30)
        if done.returncode:
            raise HostUnavailable(f"the layout probe failed: {done.stderr.strip()[:300]}")
        results.append(parse_probe(done.stdout))
    return results[0] if runs == 1 else results


def brk_offsets(runs):
    """For each probe run, start_brk minus the page after the end of the bss, in bytes.

    load_elf_binary leaves one page after the bss, then arch_randomize_brk
    adds a random number of pages below 1 GiB: every value should lie in
    [0, 1 GiB) and be a multiple of the page size.
    """
    return [r["start_brk"] - (-(-r["end"] // PAGE) * PAGE + PAGE) for r in runs]


__all__ = ["MapsLine", "parse_maps", "line_kind", "layout_rows", "skip_reason", "build_probe",
           "parse_probe", "run_probe", "brk_offsets", "HostUnavailable"]
