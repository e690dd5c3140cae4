"""/proc files, printed in Linux's layout (mm/vmstat.c, fs/proc/meminfo.c).

Each renderer reads the model's state and returns the text the real file
would hold, so a learner can put the model's file beside the kernel's.
Counters that belong to parts of the kernel mmlab does not model (swap,
NUMA balancing, hugetlb) print as 0, in the places Linux 6.18 prints them.
"""
from .arch import PAGE_SHIFT, PAGE_SIZE, VMALLOC_START, VMALLOC_END
from .mm import page_alloc as pa
from .mm import vmscan

# enum node_stat_item, by the names /proc/zoneinfo prints (Linux 6.18, x86_64).
NODE_STAT_ITEMS = [
    "nr_inactive_anon", "nr_active_anon", "nr_inactive_file", "nr_active_file", "nr_unevictable",
    "nr_slab_reclaimable", "nr_slab_unreclaimable", "nr_isolated_anon", "nr_isolated_file",
    "workingset_nodes", "workingset_refault_anon", "workingset_refault_file",
    "workingset_activate_anon", "workingset_activate_file", "workingset_restore_anon",
    "workingset_restore_file", "workingset_nodereclaim",
    "nr_anon_pages", "nr_mapped", "nr_file_pages", "nr_dirty", "nr_writeback",
    "nr_shmem", "nr_shmem_hugepages", "nr_shmem_pmdmapped", "nr_file_hugepages",
    "nr_file_pmdmapped", "nr_anon_transparent_hugepages",
    "nr_vmscan_write", "nr_vmscan_immediate_reclaim", "nr_dirtied", "nr_written",
    "nr_throttled_written", "nr_kernel_misc_reclaimable", "nr_foll_pin_acquired",
    "nr_foll_pin_released", "nr_kernel_stack", "nr_page_table_pages", "nr_sec_page_table_pages",
    "nr_iommu_pages", "nr_swapcached", "pgpromote_success", "pgpromote_candidate",
    "pgpromote_candidate_nrl", "pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged",
    "pgdemote_proactive", "nr_hugetlb", "nr_balloon_pages", "nr_kernel_file_pages",
]

# enum zone_stat_item after nr_free_pages and nr_free_pages_blocks, then the NUMA counters.
ZONE_STAT_ITEMS = [
    "nr_zone_inactive_anon", "nr_zone_active_anon", "nr_zone_inactive_file",
    "nr_zone_active_file", "nr_zone_unevictable", "nr_zone_write_pending", "nr_mlock",
    "nr_zspages", "nr_free_cma",
]
NUMA_STAT_ITEMS = ["numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local",
                   "numa_other"]


def kb(pages):
    return pages << (PAGE_SHIFT - 10)


class Proc:
    """m.proc: the machine's /proc files as strings."""

    def __init__(self, machine):
        self.machine = machine

    def buddyinfo(self):
        """/proc/buddyinfo: free blocks per order in each populated zone (frag_show_print)."""
        lines = []
        for z in self.machine.zones:
            if not z.populated():
                continue
            counts = "".join(f"{a.nr_free:6d} " for a in z.free_area)
            lines.append(f"Node 0, zone {z.name:>8s} {counts}")
        return "\n".join(lines) + "\n"

    def pagetypeinfo(self):
        """/proc/pagetypeinfo: free blocks per order and migrate type, then pageblocks per type."""
        m = self.machine
        out = [f"Page block order: {pa.PAGEBLOCK_ORDER}", f"Pages per block:  {pa.PAGEBLOCK_NR_PAGES}", ""]
        out.append(f"{'Free pages count per migrate type at order':<43s} "
                   + "".join(f"{o:6d} " for o in range(pa.NR_PAGE_ORDERS)))
        populated = [z for z in m.zones if z.populated()]
        for z in populated:
            for mt, name in enumerate(pa.MIGRATETYPE_NAMES):
                counts = "".join(f"{z.free_area[o].free_list[mt].count:6d} "
                                 for o in range(pa.NR_PAGE_ORDERS))
                out.append(f"Node {0:4d}, zone {z.name:>8s}, type {name:>12s} {counts}")
        out.append("")
        out.append(f"{'Number of blocks type ':<23s}" + "".join(f"{n:>12s} " for n in pa.MIGRATETYPE_NAMES))
        for z in populated:
            counts = [0] * pa.MIGRATE_TYPES
            # pagetypeinfo_showblockcount_print steps from zone_start_pfn, unaligned.
            for pfn in range(z.zone_start_pfn, z.zone_end_pfn, pa.PAGEBLOCK_NR_PAGES):
                if m.mem_map.state[pfn] != pa.FRAME_HOLE:
                    counts[m.pageblock_mt[pfn >> pa.PAGEBLOCK_ORDER]] += 1
            out.append(f"Node 0, zone {z.name:>8s} " + "".join(f"{c:12d} " for c in counts))
        return "\n".join(out) + "\n"

    def zoneinfo(self, pagesets=True):
        """/proc/zoneinfo (zoneinfo_show_print): per-node stats, then each zone.

        pagesets=False leaves out the per-CPU list section, which is long on
        machines with many CPUs.
        """
        m = self.machine
        out = []
        first_populated = next((z for z in m.zones if z.populated()), None)
        locked = vmscan.mlocked_pfns(m)
        for z in m.zones:
            out.append(f"Node 0, zone {z.name:>8s}")
            if z is first_populated:
                out.append("  per-node stats")
                lru = vmscan.lru_sizes(m, locked=locked)
                for name in NODE_STAT_ITEMS:
                    out.append(f"      {name:<12s} {lru.get(name, m.node_stat.get(name, 0))}")
            out.append(f"  pages free     {z.nr_free_pages}")
            out.append(f"        boost    {z.watermark_boost}")
            for label, w in (("min", pa.WMARK_MIN), ("low", pa.WMARK_LOW), ("high", pa.WMARK_HIGH),
                             ("promo", pa.WMARK_PROMO)):
                out.append(f"        {label:<8s} {z.wmark(w)}")
            out.append(f"        spanned  {z.spanned_pages}")
            out.append(f"        present  {z.present_pages}")
            out.append(f"        managed  {z.managed_pages}")
            out.append("        cma      0")
            out.append("        protection: (" + ", ".join(str(r) for r in z.lowmem_reserve) + ")")
            if not z.populated():
                continue
            out.append(f"      {'nr_free_pages':<12s} {z.nr_free_pages}")
            blocks = sum(z.free_area[o].nr_free << o for o in range(pa.PAGEBLOCK_ORDER, pa.NR_PAGE_ORDERS))
            out.append(f"      {'nr_free_pages_blocks':<12s} {blocks}")
            lru = {name.replace("nr_", "nr_zone_", 1) if name != "nr_mlock" else name: value
                   for name, value in vmscan.lru_sizes(m, z, locked).items()}
            for name in ZONE_STAT_ITEMS + NUMA_STAT_ITEMS:
                out.append(f"      {name:<12s} {lru.get(name, z.vm_stat.get(name, 0))}")
            out.append("  pagesets")
            if pagesets:
                threshold = vmstat_threshold(z, m.cpus)
                for cpu, pcp in enumerate(z.per_cpu_pageset):
                    out += [f"    cpu: {cpu}", f"              count:    {pcp.count}",
                            f"              high:     {pcp.high}", f"              batch:    {pcp.batch}",
                            f"              high_min: {pcp.high_min}",
                            f"              high_max: {pcp.high_max}",
                            f"  vm stats threshold: {threshold}"]
            out.append("  node_unreclaimable:  0")
            out.append(f"  start_pfn:           {z.zone_start_pfn}")
        return "\n".join(out) + "\n"

    def slabinfo(self):
        """/proc/slabinfo (mm/slab_common.c slab_show): version 2.1, one line per cache, newest first."""
        from .mm import slub
        return slub.slabinfo_show(self.machine)

    def vmallocinfo(self):
        """/proc/vmallocinfo (vmalloc_info_show): one line per vmap area, then the unpurged ones."""
        from .mm import vmalloc
        lines = vmalloc.vmalloc_info_show(self.machine)
        return "".join(line + "\n" for line in lines)

    def meminfo(self):
        """/proc/meminfo (meminfo_proc_show): '%-16s%8lu kB' per line, in Linux 6.18's order."""
        m = self.machine
        ns = m.node_stat
        free = sum(z.nr_free_pages for z in m.zones)
        file_pages = ns["nr_file_pages"]
        lru = vmscan.lru_sizes(m)
        slab_r = ns["nr_slab_reclaimable"]
        slab_u = ns["nr_slab_unreclaimable"]
        vmalloc_pages = getattr(m, "vmalloc_nr_pages", lambda: 0)()
        percpu_kb = getattr(m, "percpu_kb", 0)
        rows = [
            ("MemTotal", m.totalram_pages), ("MemFree", free),
            ("MemAvailable", si_mem_available(m)), ("Buffers", 0),
            ("Cached", max(0, file_pages - ns["nr_swapcached"])), ("SwapCached", ns["nr_swapcached"]),
            ("Active", lru["nr_active_anon"] + lru["nr_active_file"]),
            ("Inactive", lru["nr_inactive_anon"] + lru["nr_inactive_file"]),
            ("Active(anon)", lru["nr_active_anon"]), ("Inactive(anon)", lru["nr_inactive_anon"]),
            ("Active(file)", lru["nr_active_file"]), ("Inactive(file)", lru["nr_inactive_file"]),
            ("Unevictable", lru["nr_unevictable"]),
            ("Mlocked", lru["nr_mlock"]),
            ("SwapTotal", 0), ("SwapFree", 0), ("Zswap", 0), ("Zswapped", 0),
            ("Dirty", ns["nr_dirty"]), ("Writeback", ns["nr_writeback"]),
            ("AnonPages", ns["nr_anon_pages"]), ("Mapped", ns["nr_mapped"]), ("Shmem", ns["nr_shmem"]),
            ("KReclaimable", slab_r + ns["nr_kernel_misc_reclaimable"]),
            ("Slab", slab_r + slab_u), ("SReclaimable", slab_r), ("SUnreclaim", slab_u),
        ]
        text = [f"{label + ':':<16s}{kb(pages):8d} kB" for label, pages in rows]
        text.append(f"{'KernelStack:':<16s}{ns['nr_kernel_stack']:8d} kB")     # counted in kB already
        rows = [
            ("PageTables", ns["nr_page_table_pages"]), ("SecPageTables", ns["nr_sec_page_table_pages"]),
            ("NFS_Unstable", 0), ("Bounce", 0), ("WritebackTmp", 0),
            ("CommitLimit", m.totalram_pages // 2), ("Committed_AS", getattr(m, "committed_pages", 0)),
        ]
        text += [f"{label + ':':<16s}{kb(pages):8d} kB" for label, pages in rows]
        text.append(f"{'VmallocTotal:':<16s}{(VMALLOC_END + 1 - VMALLOC_START) >> 10:8d} kB")
        text.append(f"{'VmallocUsed:':<16s}{kb(vmalloc_pages):8d} kB")
        text.append(f"{'VmallocChunk:':<16s}{0:8d} kB")
        text.append(f"{'Percpu:':<16s}{percpu_kb:8d} kB")
        text.append(f"HardwareCorrupted: {0:5d} kB")
        rows = [("AnonHugePages", ns["nr_anon_transparent_hugepages"] * 512),
                ("ShmemHugePages", ns["nr_shmem_hugepages"] * 512),
                ("ShmemPmdMapped", ns["nr_shmem_pmdmapped"] * 512),
                ("FileHugePages", ns["nr_file_hugepages"] * 512),
                ("FilePmdMapped", ns["nr_file_pmdmapped"] * 512),
                ("Unaccepted", 0), ("Balloon", ns["nr_balloon_pages"])]
        text += [f"{label + ':':<16s}{kb(pages):8d} kB" for label, pages in rows]
        # hugetlb_report_meminfo: "HugePages_Total:   %5lu", the labels padded to 19 columns.
        text += [f"{'HugePages_Total:':<19s}{0:5d}", f"{'HugePages_Free:':<19s}{0:5d}",
                 f"{'HugePages_Rsvd:':<19s}{0:5d}", f"{'HugePages_Surp:':<19s}{0:5d}",
                 f"{'Hugepagesize:':<16s}{2048:8d} kB", f"{'Hugetlb:':<16s}{0:8d} kB"]
        direct = direct_map_sizes(m)
        text += [f"{'DirectMap4k:':<16s}{direct[0]:8d} kB", f"{'DirectMap2M:':<16s}{direct[1]:8d} kB",
                 f"{'DirectMap1G:':<16s}{direct[2]:8d} kB"]
        return "\n".join(text) + "\n"

    def meminfo_dict(self):
        """/proc/meminfo as {field: kB}, for arithmetic in notebooks and tests."""
        out = {}
        for line in self.meminfo().splitlines():
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0])
        return out


def vmstat_threshold(zone, cpus):
    """calculate_normal_threshold: how far a CPU's counter deltas may drift before folding in."""
    mem = zone.managed_pages >> (27 - PAGE_SHIFT)
    threshold = 2 * cpus.bit_length() * (1 + mem.bit_length())
    return min(125, threshold)


def si_mem_available(m):
    """si_mem_available: free pages minus reserves, plus the page cache and
    reclaimable slab that could be freed without swapping (half of each at least)."""
    ns = m.node_stat
    wmark_low = sum(z.wmark(pa.WMARK_LOW) for z in m.zones)
    available = sum(z.nr_free_pages for z in m.zones) - m.totalreserve_pages
    pagecache = ns["nr_active_file"] + ns["nr_inactive_file"]
    available += pagecache - min(pagecache // 2, wmark_low)
    reclaimable = ns["nr_slab_reclaimable"] + ns["nr_kernel_misc_reclaimable"]
    available += reclaimable - min(reclaimable // 2, wmark_low)
    return max(available, 0)


def direct_map_sizes(m):
    """DirectMap4k/2M/1G in kB: how the direct map of RAM is cut into page sizes.

    The kernel maps each RAM range with the largest pages its alignment
    allows (kernel_physical_mapping_init); ranges not 2 MiB aligned use 4 KiB
    pages at their ends.
    """
    sizes = [0, 0, 0]
    for start, end, kind in m.e820:
        if kind != "usable":
            continue
        addr = start
        while addr < end:
            for i, step in ((2, 1 << 30), (1, 1 << 21), (0, PAGE_SIZE)):
                if addr % step == 0 and addr + step <= end:
                    sizes[i] += step >> 10
                    addr += step
                    break
            else:
                addr = end
    return sizes
