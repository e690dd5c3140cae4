"""Differential tests: the model's slab caches beside this machine's kernel.

The geometry of a cache (slot size, alignment, slab order, objects per slab,
min_partial, cpu_partial) is a pure function of its object size, alignment,
flags and the CPU count.  For every kmalloc cache, and for every cache this
kernel has (some 400, of sizes from 8 bytes to several pages), a model cache
made with the same arguments on a model with this machine's CPU count must
show what /sys/kernel/slab/<name>/ shows.  /proc/slabinfo must agree in its
header, its column layout (each host line reprinted from its own numbers by
the model's formatter is the same line) and in the order of the boot caches.

What sysfs does not say, and how the tests cope:
- a SLAB_TYPESAFE_BY_RCU cache may have been given a freeptr_offset (then
  the free pointer sits inside the object); sysfs does not show it, so such
  a cache must match one of the two layouts;
- a merged cache (':0000064'-style names) keeps the largest object size of
  the caches merged into it, which gives the same layout.
The host runs without slab debugging, KASAN or KFENCE (checked below), so
the layouts compare like with like.  Tests skip off Linux, or where
/sys/kernel/slab or /proc/slabinfo (root only) cannot be read.
"""
import os
import re

import pytest

from mmlab import Machine
from mmlab.linux.probes import read_text, HostUnavailable, skip_reason
from mmlab.mm import slub

SYS_SLAB = "/sys/kernel/slab"
GEOMETRY = ("slab_size", "align", "order", "objs_per_slab", "min_partial", "cpu_partial")
DEBUG_FILES = ("red_zone", "poison", "store_user", "sanity_checks", "trace")


def host_reason():
    """Why these tests cannot run here, or None."""
    reason = skip_reason()
    if reason:
        return reason
    if not os.path.isdir(SYS_SLAB):
        return f"{SYS_SLAB} does not exist (a kernel without SLUB sysfs)"
    try:
        read_text("/proc/slabinfo")
    except HostUnavailable as e:
        return e.reason
    return None


pytestmark = [pytest.mark.host(),
              pytest.mark.skipif(host_reason() is not None, reason=host_reason() or "")]


def sysfs(name, field):
    """One /sys/kernel/slab/<name>/<field>, its first word ('1234 N0=1234' -> '1234')."""
    text = read_text(f"{SYS_SLAB}/{name}/{field}").split()
    return text[0] if text else ""


def host_caches():
    """Every cache directory in /sys/kernel/slab (merged ones once, under their unique name)."""
    return sorted(n for n in os.listdir(SYS_SLAB) if not os.path.islink(f"{SYS_SLAB}/{n}"))


def host_cpus():
    """num_present_cpus (calculate_order's CPU count), from /sys/devices/system/cpu/present."""
    count = 0
    for part in read_text("/sys/devices/system/cpu/present").strip().split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


@pytest.fixture(scope="module")
def m():
    return Machine(ram="256MiB", cpus=host_cpus())


def host_geometry(name):
    return {field: int(sysfs(name, field)) for field in GEOMETRY}


def model_geometry(s):
    g = s.sysfs()
    return {field: g[field] for field in GEOMETRY}


def test_host_has_no_slab_debugging():
    # the geometry below assumes no red zones, poisoning or user tracking
    for name in host_caches():
        assert [sysfs(name, f) for f in DEBUG_FILES] == ["0"] * len(DEBUG_FILES), name


@pytest.mark.parametrize("prefix", ["kmalloc-", "kmalloc-rcl-", "dma-kmalloc-", "kmalloc-cg-"])
def test_kmalloc_caches_match_sysfs(m, prefix):
    # every kmalloc cache the host has, with the same geometry and object size
    sizes = ["8", "16", "32", "64", "96", "128", "192", "256", "512", "1k", "2k", "4k", "8k"]
    for size in sizes:
        name = prefix + size
        if not os.path.exists(f"{SYS_SLAB}/{name}"):
            pytest.skip(f"this kernel has no {name} (config without that kmalloc type)")
        s = m.slub.find(name)
        assert int(sysfs(name, "object_size")) == s.object_size, name
        assert model_geometry(s) == host_geometry(name), name


def test_every_host_cache_layout_matches_a_model_cache(m):
    # kmem_cache_create with each host cache's object size, alignment and flags
    # lays it out as the host did (hundreds of sizes, ctor and RCU caches among them)
    mismatches = []
    for i, name in enumerate(host_caches()):
        size = int(sysfs(name, "object_size"))
        align = int(sysfs(name, "align"))
        flags = 0
        if sysfs(name, "hwcache_align") == "1":
            flags |= slub.SLAB_HWCACHE_ALIGN
        if sysfs(name, "reclaim_account") == "1":
            flags |= slub.SLAB_RECLAIM_ACCOUNT
        if sysfs(name, "cache_dma") == "1":
            flags |= slub.SLAB_CACHE_DMA
        rcu = sysfs(name, "destroy_by_rcu") == "1"
        if rcu:
            flags |= slub.SLAB_TYPESAFE_BY_RCU
        ctor = (lambda addr: None) if sysfs(name, "ctor") else None
        host = host_geometry(name)
        s = m.kmem_cache_create(f"host{i}", size, align, flags, ctor)
        layouts = [model_geometry(s)]
        if rcu and ctor is None:            # the other place an RCU cache's free pointer may be
            t = m.kmem_cache_create(f"host{i}-inside", size, align, flags, freeptr_offset=0)
            layouts.append(model_geometry(t))
            t.destroy()
        s.destroy()
        if host not in layouts:
            mismatches.append((name, size, align, host, layouts))
    assert mismatches == []
    m.check()


def test_slabinfo_header_matches():
    # "slabinfo - version: 2.1" and the column header, word for word
    host = read_text("/proc/slabinfo").splitlines()[:2]
    assert Machine(ram="64MiB").proc.slabinfo().splitlines()[:2] == host


SLABINFO_LINE = re.compile(r"(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+) : tunables\s+(\d+)\s+(\d+)"
                           r"\s+(\d+) : slabdata\s+(\d+)\s+(\d+)\s+(\d+)$")


def test_slabinfo_lines_reprint_exactly():
    # the model's cache_show layout, fed each host line's numbers, prints that same line
    for line in read_text("/proc/slabinfo").splitlines()[2:]:
        f = SLABINFO_LINE.match(line)
        assert f, line
        name, nums = f.group(1), [int(x) for x in f.groups()[1:]]
        again = (f"{name:<17s} {nums[0]:6d} {nums[1]:6d} {nums[2]:6d} {nums[3]:4d} {nums[4]:4d}"
                 f" : tunables {nums[5]:4d} {nums[6]:4d} {nums[7]:4d}"
                 f" : slabdata {nums[8]:6d} {nums[9]:6d} {nums[10]:6d}")
        assert again == line


def test_slabinfo_boot_caches_in_host_order(m):
    # the host's oldest caches (kmalloc_buckets down to kmem_cache) are the model's, in order
    host = [line.split()[0] for line in read_text("/proc/slabinfo").splitlines()[2:]]
    model = [line.split()[0] for line in m.proc.slabinfo().splitlines()[2:]]
    model = model[model.index("kmalloc_buckets"):]
    if "kmalloc_buckets" not in host:
        pytest.skip("this kernel has no CONFIG_SLAB_BUCKETS")
    assert host[host.index("kmalloc_buckets"):] == model


def test_slabinfo_geometry_columns_match(m):
    # <objsize> <objperslab> <pagesperslab> of every kmalloc cache, host against model
    host = {f.group(1): f.groups()[3:6] for f in map(SLABINFO_LINE.match,
                                                      read_text("/proc/slabinfo").splitlines()[2:])}
    model = {f.group(1): f.groups()[3:6] for f in map(SLABINFO_LINE.match,
                                                       m.proc.slabinfo().splitlines()[2:])}
    shared = [name for name in model if name in host]
    assert len(shared) >= 4 * 13 + 2
    assert {n: model[n] for n in shared} == {n: host[n] for n in shared}
