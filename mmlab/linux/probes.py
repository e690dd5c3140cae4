"""Probes of the real kernel this runs on: /proc and /sys files read into plain dicts.

Each probe reads one file and hands its text to a parser that takes text, so
the same parser reads the model's m.proc output too; a differential test
compares the two sides as data, and a format that drifts shows up as keys in
a different order.

    from mmlab.linux import probes
    probes.zoneinfo()["Normal"]["managed"]      # pages the buddy allocator manages
    probes.min_free_kbytes()                    # sysctl vm.min_free_kbytes

Probes: buddyinfo, zoneinfo, pagetypeinfo, meminfo, min_free_kbytes,
watermark_scale_factor, lowmem_reserve_ratio, thp_enabled, firmware_memmap,
vmallocinfo, slabinfo, sys_slab (each also by name: probe("zoneinfo")), and host_machine_params(), which
gathers what a comparable model needs.  Every probe raises HostUnavailable
(with a `reason` a learner can read) when the host is not Linux or the file
cannot be read; skip_reason() turns the same checks into the text a test or a
notebook cell prints when it skips.

NOTE: mmlab models one NUMA node, so the parsers return node 0 (or the node
asked for) and ignore the others.
"""
import os
import platform
import sys

PAGE_SIZE = 4096                # the host's base page; x86_64 only, as the model is
MiB = 1 << 20

# The files the probes read, by probe name.
PATHS = {
    "buddyinfo": "/proc/buddyinfo",
    "zoneinfo": "/proc/zoneinfo",
    "pagetypeinfo": "/proc/pagetypeinfo",
    "meminfo": "/proc/meminfo",
    "min_free_kbytes": "/proc/sys/vm/min_free_kbytes",
    "watermark_scale_factor": "/proc/sys/vm/watermark_scale_factor",
    "lowmem_reserve_ratio": "/proc/sys/vm/lowmem_reserve_ratio",
    "thp_enabled": "/sys/kernel/mm/transparent_hugepage/enabled",
    "firmware_memmap": "/sys/firmware/memmap",
    "slabinfo": "/proc/slabinfo",
    "sys_slab": "/sys/kernel/slab",
    "vmallocinfo": "/proc/vmallocinfo",
}


class HostUnavailable(Exception):
    """The host cannot answer a probe: not Linux, or a file missing or unreadable.

    `reason` says why in a few words ("not Linux (this is Darwin)",
    "needs root for /proc/pagetypeinfo"); `path` names the file, if any.
    """

    def __init__(self, reason, path=None):
        super().__init__(reason)
        self.reason = reason
        self.path = path


def read_text(path):
    """The whole text of a /proc or /sys file, or HostUnavailable saying why not."""
    if not sys.platform.startswith("linux"):
        raise HostUnavailable(f"not Linux (this is {platform.system() or sys.platform})", path)
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        raise HostUnavailable(f"{path} does not exist on this kernel", path) from None
    except PermissionError:
        raise HostUnavailable(f"needs root for {path}", path) from None
    except OSError as e:
        raise HostUnavailable(f"cannot read {path}: {e.strerror}", path) from None


def skip_reason(*probes, x86_64=False):
    """Why a test or notebook cell that needs these probes must skip, or None if it can run.

        reason = skip_reason("zoneinfo", "pagetypeinfo")
        if reason: print("skipped:", reason)

    With no names it checks only that the host is Linux; x86_64=True also
    asks for an x86_64 kernel (the model's zone layout is x86_64's).
    """
    if not sys.platform.startswith("linux"):
        return f"not Linux (this is {platform.system() or sys.platform})"
    if x86_64 and platform.machine() != "x86_64":
        return f"needs an x86_64 kernel (this is {platform.machine()})"
    for name in probes:
        try:
            probe(name)
        except HostUnavailable as e:
            return e.reason
    return None


# -- parsers: text in, plain dicts out ----------------------------------------

def _node_zone(tokens):
    """('Node', '0,', 'zone', 'DMA', ...) -> (0, 'DMA'); tokens may end the zone name with ','."""
    if len(tokens) < 4 or tokens[0] != "Node" or tokens[2] != "zone":
        raise ValueError(f"probes: expected 'Node N, zone NAME', got {' '.join(tokens[:4])!r}")
    return int(tokens[1].rstrip(",")), tokens[3].rstrip(",")


def parse_buddyinfo(text, node=0):
    """/proc/buddyinfo -> {zone: [free blocks of order 0, 1, ... 10]} for one node, in file order."""
    out = {}
    for line in text.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        nid, zone = _node_zone(tokens)
        if nid == node:
            out[zone] = [int(t) for t in tokens[4:]]
    return out


def _count(token):
    """A pagetypeinfo count; '>100000' (the kernel stops counting there) reads as 100000."""
    return int(token.lstrip(">"))


def parse_pagetypeinfo(text, node=0):
    """/proc/pagetypeinfo -> dict.

    {"pageblock_order": 9, "pages_per_block": 512,
     "free":   {zone: {migratetype: [free blocks per order]}},
     "blocks": {zone: {migratetype: pageblocks of that type}},
     "mixed":  {zone: {...}}  (only with page_owner)}
    Counts the kernel caps at '>100000' read as 100000.
    """
    out = {"pageblock_order": None, "pages_per_block": None, "free": {}, "blocks": {}}
    section, names = None, []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("Page block order:"):
            out["pageblock_order"] = int(line.split(":")[1])
        elif line.startswith("Pages per block:"):
            out["pages_per_block"] = int(line.split(":")[1])
        elif line.startswith("Free pages count per migrate type"):
            section = "free"
        elif line.startswith("Number of blocks type"):
            section, names = "blocks", line[len("Number of blocks type"):].split()
        elif line.startswith("Number of mixed blocks"):
            section, names = "mixed", line[len("Number of mixed blocks"):].split()
            out["mixed"] = {}
        elif line.startswith("Node"):
            head, _, counts = line.partition(", type ") if section == "free" else (line, "", "")
            tokens = head.split()
            nid, zone = _node_zone(tokens)
            if nid != node:
                continue
            if section == "free":
                fields = counts.split()
                out["free"].setdefault(zone, {})[fields[0]] = [_count(t) for t in fields[1:]]
            else:
                out[section][zone] = dict(zip(names, (int(t) for t in tokens[4:])))
        else:
            raise ValueError(f"probes: unexpected pagetypeinfo line {line!r}")
    return out


# zoneinfo prints 'pages free' where the other watermark lines print one word.
_ZONEINFO_RENAMES = {"pages free": "free"}


def _key_value(line):
    """'  pages free     3840' -> ('pages free', 3840); '  start_pfn:   1' -> ('start_pfn', 1)."""
    key, value = line.strip().rsplit(None, 1)
    key = key.rstrip(":").strip()
    return _ZONEINFO_RENAMES.get(key, key), int(value)


def parse_zoneinfo(text, node=0):
    """/proc/zoneinfo -> {zone: {field: value}} for one node, every key in file order.

    A zone's dict holds "free", "boost", "min", "low", "high", "promo",
    "spanned", "present", "managed", "cma", "protection" (a list, one entry per
    zone type), then for a populated zone its counters (nr_free_pages, ...),
    "pagesets" (one dict per CPU: cpu, count, high, batch, high_min, high_max,
    vm stats threshold), "node_unreclaimable" and "start_pfn".  The first
    populated zone also holds "per-node stats", the node's counters, as
    the kernel prints them there.
    """
    zones = {}
    zone = None             # the dict being filled, or None while skipping another node
    mode = "zone"           # where counter lines go: "node" stats, "zone" stats or "pagesets"
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("Node"):
            nid, name = _node_zone(line.split())
            zone = zones.setdefault(name, {}) if nid == node else None
            mode = "zone"
            continue
        if zone is None:
            continue
        stripped = line.strip()
        if stripped == "per-node stats":
            zone["per-node stats"], mode = {}, "node"
        elif stripped == "pagesets":
            zone["pagesets"], mode = [], "pagesets"
        elif stripped.startswith("protection:"):
            inside = stripped.partition("(")[2].rstrip(")")
            zone["protection"] = [int(v) for v in inside.split(",")]
        else:
            key, value = _key_value(line)
            if key == "free":
                mode = "zone"           # the node's counters end where the zone's begin
            if mode == "node":
                zone["per-node stats"][key] = value
            elif mode == "pagesets" and key == "cpu":
                zone["pagesets"].append({"cpu": value})
            elif mode == "pagesets" and key != "node_unreclaimable" and zone["pagesets"]:
                zone["pagesets"][-1][key] = value
            else:
                mode = "zone"
                zone[key] = value
    return zones


def parse_meminfo(text):
    """/proc/meminfo -> {field: number} in file order; numbers are kB except HugePages_* counts."""
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0])
    return out


def parse_int_list(text):
    """'256\\t256\\t32\\t0\\t0' -> [256, 256, 32, 0, 0]."""
    return [int(v) for v in text.split()]


def parse_thp_enabled(text):
    """'always [madvise] never' -> 'madvise': the bracketed choice is the one in force."""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    raise ValueError(f"probes: no [choice] in {text.strip()!r}")


# The kind words of a /proc/vmallocinfo line, in the order vmalloc_info_show prints them.
VMALLOCINFO_WORDS = ("ioremap", "sparse", "vmalloc", "vmap", "user", "dma-coherent", "vpages")


def parse_vmallocinfo(text):
    """/proc/vmallocinfo -> a list of dicts, one per line, in file order.

    Each dict: start, end (ints), size (bytes, the guard page included),
    kind ("area", "unpurged" for a lazily freed range, or "vm_map_ram"),
    caller (the symbol, e.g. 'kernel_clone+0x94/0x3e0', or None), pages
    (or None), phys (an ioremap's physical address, or None), words (the
    kind words in line order: 'vmalloc', 'vpages', 'ioremap', ...) and
    nodes ({node: pages}, from the N0=... fields).
    The kernel prints addresses with %pK: unless kptr_restrict lets the
    reader see kernel pointers they are hashed, and only size, caller and
    the rest mean anything (a real one starts 0xffff).
    """
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        tokens = line.split()
        span, _, end = tokens[0].partition("-")
        if not (span.startswith("0x") and end.startswith("0x")) or len(tokens) < 2:
            raise ValueError(f"probes: not a vmallocinfo line: {line!r}")
        entry = {"start": int(span, 16), "end": int(end, 16), "size": int(tokens[1]), "kind": "area",
                 "caller": None, "pages": None, "phys": None, "words": [], "nodes": {}}
        rest = tokens[2:]
        if rest == ["unpurged", "vm_area"]:
            entry["kind"] = "unpurged"
        elif rest == ["vm_map_ram"]:
            entry["kind"] = "vm_map_ram"
        else:
            for i, token in enumerate(rest):
                if token.startswith("pages="):
                    entry["pages"] = int(token[6:])
                elif token.startswith("phys="):
                    entry["phys"] = int(token[5:], 16)
                elif token in VMALLOCINFO_WORDS:
                    entry["words"].append(token)
                elif token[0] == "N" and "=" in token and token[1:].partition("=")[0].isdigit():
                    node, _, pages = token[1:].partition("=")
                    entry["nodes"][int(node)] = int(pages)
                elif i == 0:
                    entry["caller"] = token
                else:
                    raise ValueError(f"probes: unknown field {token!r} in vmallocinfo line {line!r}")
        out.append(entry)
    return out


# The columns of a /proc/slabinfo 2.1 line after the name, in order.
SLABINFO_FIELDS = ("active_objs", "num_objs", "objsize", "objperslab", "pagesperslab", "limit",
                   "batchcount", "sharedfactor", "active_slabs", "num_slabs", "sharedavail")


def parse_slabinfo(text):
    """/proc/slabinfo (version 2.1) -> {cache name: {column: int}} in file order (newest cache first).

    Columns are SLABINFO_FIELDS: active_objs, num_objs, objsize,
    objperslab, pagesperslab, the three tunables (0 under SLUB), then
    active_slabs, num_slabs and sharedavail.
    """
    lines = text.splitlines()
    if not lines or not lines[0].startswith("slabinfo - version: 2."):
        raise ValueError(f"probes: not a slabinfo 2.x file: {lines[0] if lines else ''!r}")
    out = {}
    for line in lines[1:]:
        if not line.strip() or line.startswith("#"):
            continue
        words = line.replace(" : ", " ").split()
        values = [w for w in words[1:] if w not in ("tunables", "slabdata")]
        if len(values) != len(SLABINFO_FIELDS) or not all(v.isdigit() for v in values):
            raise ValueError(f"probes: unexpected slabinfo line {line!r}")
        out[words[0]] = dict(zip(SLABINFO_FIELDS, (int(v) for v in values)))
    return out


def parse_sys_slab_value(text):
    """One /sys/kernel/slab/<cache>/<file>: '2048 N0=2048' -> 2048, '1' -> 1, other text stripped."""
    words = text.split()
    if words and words[0].isdigit():
        return int(words[0])
    return text.strip()


# -- probes: the host's files, parsed ------------------------------------------

def buddyinfo(node=0):
    """/proc/buddyinfo of this machine: {zone: [free blocks per order]}."""
    return parse_buddyinfo(read_text(PATHS["buddyinfo"]), node)


def zoneinfo(node=0):
    """/proc/zoneinfo of this machine: {zone: {field: value}} (see parse_zoneinfo)."""
    return parse_zoneinfo(read_text(PATHS["zoneinfo"]), node)


def pagetypeinfo(node=0):
    """/proc/pagetypeinfo of this machine (mode 0400: needs root)."""
    return parse_pagetypeinfo(read_text(PATHS["pagetypeinfo"]), node)


def meminfo():
    """/proc/meminfo of this machine: {field: kB}."""
    return parse_meminfo(read_text(PATHS["meminfo"]))


def min_free_kbytes():
    """sysctl vm.min_free_kbytes."""
    return int(read_text(PATHS["min_free_kbytes"]))


def watermark_scale_factor():
    """sysctl vm.watermark_scale_factor (in ten-thousandths of a zone)."""
    return int(read_text(PATHS["watermark_scale_factor"]))


def lowmem_reserve_ratio():
    """sysctl vm.lowmem_reserve_ratio: one ratio per zone type, DMA first."""
    return parse_int_list(read_text(PATHS["lowmem_reserve_ratio"]))


def thp_enabled():
    """/sys/kernel/mm/transparent_hugepage/enabled: 'always', 'madvise' or 'never'."""
    return parse_thp_enabled(read_text(PATHS["thp_enabled"]))


def firmware_memmap():
    """/sys/firmware/memmap: the firmware's memory map (e820 on a PC) as the kernel was handed it.

    A list of (start, end, type) with `end` exclusive, sorted by start;
    type is the firmware's word, such as 'System RAM' or 'Reserved'.  This is
    the map before the kernel's own edits (it reserves page 0, for one).
    """
    root = PATHS["firmware_memmap"]
    if not sys.platform.startswith("linux"):
        raise HostUnavailable(f"not Linux (this is {platform.system() or sys.platform})", root)
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        raise HostUnavailable(f"{root} does not exist (kernel without CONFIG_FIRMWARE_MEMMAP)",
                              root) from None
    except OSError as e:
        raise HostUnavailable(f"cannot read {root}: {e.strerror}", root) from None
    table = []
    for entry in entries:
        where = os.path.join(root, entry)
        start = int(read_text(os.path.join(where, "start")), 16)
        end = int(read_text(os.path.join(where, "end")), 16) + 1
        table.append((start, end, read_text(os.path.join(where, "type")).strip()))
    return sorted(table)


def vmallocinfo():
    """/proc/vmallocinfo of this machine (mode 0400: needs root), parsed by parse_vmallocinfo."""
    return parse_vmallocinfo(read_text(PATHS["vmallocinfo"]))


def slabinfo():
    """/proc/slabinfo of this machine (mode 0400: needs root): {cache: {column: int}}, see parse_slabinfo."""
    return parse_slabinfo(read_text(PATHS["slabinfo"]))


# The files of /sys/kernel/slab/<cache>/ that sys_slab reads: geometry, flags, then counts.
SYS_SLAB_FILES = ("object_size", "slab_size", "align", "order", "objs_per_slab", "min_partial",
                  "cpu_partial", "hwcache_align", "reclaim_account", "destroy_by_rcu", "cache_dma",
                  "ctor", "aliases", "slabs", "partial", "objects", "objects_partial",
                  "total_objects", "cpu_slabs", "slabs_cpu_partial")


def sys_slab(name="kmalloc-64"):
    """/sys/kernel/slab/<name>/: {file: value} for each of SYS_SLAB_FILES the kernel has.

    Numbers come back as ints (the first word: '2048 N0=2048' is 2048),
    other text as stripped strings.  A merged cache is reached through its
    alias link.  HostUnavailable when the host has no such cache or no
    /sys/kernel/slab at all (a kernel without SLUB's sysfs).
    """
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"name: a cache name such as 'kmalloc-64', got {name!r}")
    root = PATHS["sys_slab"]
    if not sys.platform.startswith("linux"):
        raise HostUnavailable(f"not Linux (this is {platform.system() or sys.platform})", root)
    if not os.path.isdir(root):
        raise HostUnavailable(f"{root} does not exist (a kernel without SLUB sysfs)", root)
    where = os.path.join(root, name)
    if not os.path.isdir(where):
        raise HostUnavailable(f"this kernel has no slab cache {name!r}", where)
    out = {}
    for field in SYS_SLAB_FILES:
        path = os.path.join(where, field)
        if os.path.exists(path):
            out[field] = parse_sys_slab_value(read_text(path))
    return out


def probe(name):
    """Run the probe called `name` (a key of PATHS): probe("zoneinfo") is zoneinfo()."""
    probes = {"buddyinfo": buddyinfo, "zoneinfo": zoneinfo, "pagetypeinfo": pagetypeinfo,
              "meminfo": meminfo, "min_free_kbytes": min_free_kbytes,
              "watermark_scale_factor": watermark_scale_factor,
              "lowmem_reserve_ratio": lowmem_reserve_ratio, "thp_enabled": thp_enabled,
              "firmware_memmap": firmware_memmap,
              "slabinfo": slabinfo, "sys_slab": sys_slab, "vmallocinfo": vmallocinfo}
    if name not in probes:
        raise ValueError(f"probes: unknown probe {name!r}; known: {', '.join(probes)}")
    return probes[name]()


def host_machine_params():
    """What it takes to build a model comparable to this machine.

    Returns {"ram": bytes, "cpus": n, "thp_enabled": str, "min_free_kbytes": kB,
    "watermark_scale_factor": n, "lowmem_reserve_ratio": [...],
    "managed_pages": {zone: pages}, "present_pages": {zone: pages}}.

    `ram` is the RAM the firmware reports (every zone's present pages), rounded
    up to the 2 MiB the model counts in: on a PC-style layout like the model's
    (RAM below 640 KiB, from 1 MiB to 3 GiB, the rest above 4 GiB) that is the
    RAM size the machine was given, so Machine(ram=...) lays out the same zones.
        p = host_machine_params()
        m = Machine(ram=p["ram"], cpus=p["cpus"])
    `managed_pages` is what the host's buddy allocator manages now; it differs
    from a fresh model's by what the host's boot kept, and on a kernel with
    deferred struct page init it grows as memory is touched.
    """
    zones = zoneinfo()
    present = sum(z["present"] for z in zones.values())
    two_mib = 2 * MiB
    ram = -(-present * PAGE_SIZE // two_mib) * two_mib
    return {
        "ram": ram,
        "cpus": os.cpu_count() or 1,
        "thp_enabled": thp_enabled(),
        "min_free_kbytes": min_free_kbytes(),
        "watermark_scale_factor": watermark_scale_factor(),
        "lowmem_reserve_ratio": lowmem_reserve_ratio(),
        "managed_pages": {name: z["managed"] for name, z in zones.items()},
        "present_pages": {name: z["present"] for name, z in zones.items()},
    }
