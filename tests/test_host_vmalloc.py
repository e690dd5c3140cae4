"""Differential tests: /proc/vmallocinfo and VmallocUsed, the model beside this machine's kernel.

The kernel's vmallocinfo shows every vmap area with its size, caller, page
count, kind and NUMA spread.  Its addresses are printed with %pK, which
hashes them unless kptr_restrict lets the reader see kernel pointers, so
what can be compared is the rest of the line, and the rules that tie the
fields together.  One parser reads both the host's file and the model's, and
the same rules must hold for every line of both:

- a line is "0x<start>-0x<end> <size> ..." with size a whole number of pages;
- a vmalloc area's size is its pages plus one guard page;
- its page array is vmalloc'd ("vpages") exactly when it is larger than a
  page (more than 512 pointers), and that array is itself an area, with the
  same caller and ceil(pages * 8 / 4096) pages;
- the per-node counts (N0=...) add up to the pages;
- the kind words come in vmalloc_info_show's order, and the lazily freed
  ("unpurged vm_area") lines come last;
- VmallocUsed in /proc/meminfo is the pages of all vmalloc lines.
Where the addresses are real (the model always; the host when
kptr_restrict allows), end - start is the size and start is page aligned.

/proc/vmallocinfo is mode 0400: the host tests skip without root, and off Linux.
"""
import re

import pytest

from mmlab import Machine
from mmlab.arch import PAGE_SIZE
from mmlab.linux.probes import read_text, HostUnavailable

MiB = 1 << 20
LINE = re.compile(r"^0x(?P<start>[0-9a-f]{16})-0x(?P<end>[0-9a-f]{16}) +(?P<size>\d+)(?: (?P<rest>.*))?$")
WORDS = ["ioremap", "sparse", "vmalloc", "vmap", "user", "dma-coherent", "vpages"]
NODE = re.compile(r"^N(\d+)=(\d+)$")


def parse_vmallocinfo(text):
    """/proc/vmallocinfo -> list of dicts: start, end, size, kind ('area', 'unpurged', 'vm_map_ram'),
    caller, pages, phys, words (in line order), nodes {node: pages}."""
    out = []
    for line in text.splitlines():
        match = LINE.match(line)
        assert match, f"not a vmallocinfo line: {line!r}"
        entry = {"start": int(match["start"], 16), "end": int(match["end"], 16), "size": int(match["size"]),
                 "kind": "area", "caller": None, "pages": None, "phys": None, "words": [], "nodes": {}}
        tokens = (match["rest"] or "").split()
        if tokens == ["unpurged", "vm_area"]:
            entry["kind"] = "unpurged"
        elif tokens == ["vm_map_ram"]:
            entry["kind"] = "vm_map_ram"
        else:
            for i, token in enumerate(tokens):
                node = NODE.match(token)
                if token.startswith("pages="):
                    entry["pages"] = int(token[6:])
                elif token.startswith("phys="):
                    entry["phys"] = int(token[5:], 16)
                elif token in WORDS:
                    entry["words"].append(token)
                elif node:
                    entry["nodes"][int(node[1])] = int(node[2])
                elif i == 0:
                    entry["caller"] = token
                else:
                    raise AssertionError(f"unknown field {token!r} in {line!r}")
        out.append(entry)
    return out


def rule_violations(entries, real_addresses):
    """Every way the lines break the rules of vmalloc_info_show; [] when they all hold."""
    bad = []
    seen_unpurged = False
    for e in entries:
        where = f"{e['start']:#x} {e['caller']}"
        if e["size"] <= 0 or e["size"] % PAGE_SIZE:
            bad.append(f"{where}: size {e['size']} is not whole pages")
        if real_addresses and (e["end"] - e["start"] != e["size"] or e["start"] % PAGE_SIZE):
            bad.append(f"{where}: end - start is not the size, or start not page aligned")
        if e["kind"] == "unpurged":
            seen_unpurged = True
            continue
        if seen_unpurged:
            bad.append(f"{where}: a busy area after the unpurged ones")
        if e["words"] != [w for w in WORDS if w in e["words"]]:
            bad.append(f"{where}: kind words out of order {e['words']}")
        pages = e["pages"]
        if pages is None:
            if e["nodes"] or "vpages" in e["words"]:
                bad.append(f"{where}: node counts or vpages without pages")
            continue
        if sum(e["nodes"].values()) != pages:
            bad.append(f"{where}: node counts {e['nodes']} do not add up to {pages}")
        if "vmalloc" in e["words"]:
            if e["size"] != (pages + 1) * PAGE_SIZE:
                bad.append(f"{where}: size {e['size']} is not {pages} pages plus a guard page")
            if ("vpages" in e["words"]) != (pages * 8 > PAGE_SIZE):
                bad.append(f"{where}: vpages with {pages} pages")
    return bad


def missing_page_arrays(entries):
    """The vpages areas whose page array (same caller, ceil(pages * 8 / 4096) pages) is not listed."""
    arrays = {}
    for e in entries:
        if e["kind"] == "area" and "vmalloc" in e["words"] and e["pages"]:
            key = (e["caller"], e["pages"])
            arrays[key] = arrays.get(key, 0) + 1
    missing = []
    for e in entries:
        if "vpages" in e["words"]:
            key = (e["caller"], -(-e["pages"] * 8 // PAGE_SIZE))
            if arrays.get(key, 0) == 0:
                missing.append(f"{e['caller']} pages={e['pages']}")
            else:
                arrays[key] -= 1
    return missing


def vmalloc_pages(entries):
    return sum(e["pages"] for e in entries if e["kind"] == "area" and "vmalloc" in e["words"] and e["pages"])


def host_vmallocinfo():
    try:
        return read_text("/proc/vmallocinfo")
    except HostUnavailable as e:
        pytest.skip(e.reason)


def host_vmalloc_used_kb():
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("VmallocUsed:"):
            return int(line.split()[1])
    pytest.skip("this kernel's /proc/meminfo has no VmallocUsed")


def model_with_every_kind_of_line():
    """A machine whose vmallocinfo has small areas, a vpages area, a huge kvmalloc and unpurged ranges."""
    m = Machine(ram="256MiB", cpus=2)
    for i in range(6):
        m.vmalloc((i + 1) * 5000, caller=f"driver_{i}_init+0x1c/0x40")
    m.vmalloc(641 * PAGE_SIZE, caller="htab_map_alloc+0x2e4/0x5a0")
    m.vmalloc(512 * PAGE_SIZE, caller="pcpu_create_chunk+0x217/0x230")
    m.kvmalloc(9 * MiB, caller="kvmalloc_user+0x10/0x20")
    m.vfree(m.vmalloc(3 * PAGE_SIZE, caller="short_lived+0x0/0x10"))
    return m


# -- the host's own lines --------------------------------------------------------------

@pytest.mark.host()
def test_host_lines_follow_the_rules():
    entries = parse_vmallocinfo(host_vmallocinfo())
    assert entries, "an empty /proc/vmallocinfo"
    real = all(e["start"] >> 48 == 0xffff for e in entries)        # unhashed kernel pointers
    assert rule_violations(entries, real) == []


@pytest.mark.host()
def test_host_page_arrays_are_listed_beside_their_areas():
    entries = parse_vmallocinfo(host_vmallocinfo())
    assert missing_page_arrays(entries) == []


@pytest.mark.host()
def test_host_vmalloc_used_is_the_pages_listed():
    text = host_vmallocinfo()
    for _ in range(20):                 # vmalloc traffic may run between two reads; retry until still
        before = vmalloc_pages(parse_vmallocinfo(text))
        used_kb = host_vmalloc_used_kb()
        text = host_vmallocinfo()
        if vmalloc_pages(parse_vmallocinfo(text)) == before:
            assert used_kb == before * PAGE_SIZE // 1024
            return
    pytest.skip("vmalloc traffic changed the host's areas on every read")


# -- the model's lines, by the same parser and rules --------------------------------------

def test_model_lines_follow_the_same_rules():
    m = model_with_every_kind_of_line()
    entries = parse_vmallocinfo(m.proc.vmallocinfo())
    kinds = {e["kind"] for e in entries}
    assert kinds == {"area", "unpurged"}
    assert any("vpages" in e["words"] for e in entries)
    assert rule_violations(entries, real_addresses=True) == []
    assert missing_page_arrays(entries) == []
    assert m.proc.meminfo_dict()["VmallocUsed"] == vmalloc_pages(entries) * PAGE_SIZE // 1024


def test_the_rules_catch_a_broken_line():
    good = "0xffffc90000000000-0xffffc90000005000   20480 kernel_clone+0x94/0x3e0 pages=4 vmalloc N0=4"
    assert rule_violations(parse_vmallocinfo(good), True) == []
    no_guard = good.replace("20480", "16384").replace("0005000", "0004000")
    assert rule_violations(parse_vmallocinfo(no_guard), True)              # size without the guard
    vpages = good.replace("vmalloc N0", "vmalloc vpages N0")
    assert rule_violations(parse_vmallocinfo(vpages), True)                # 4 pointers are not vpages
    order = good.replace("pages=4 vmalloc", "pages=4 vpages vmalloc")
    assert rule_violations(parse_vmallocinfo(order), True)                 # words out of order
    nodes = good.replace("N0=4", "N0=3")
    assert rule_violations(parse_vmallocinfo(nodes), True)                 # nodes do not add up
    late = "0xffffc90000010000-0xffffc90000012000    8192 unpurged vm_area\n" + good
    assert rule_violations(parse_vmallocinfo(late), True)                  # busy after unpurged
