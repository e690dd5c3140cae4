"""The machine: physical memory, the kernel's allocators and its processes."""
import random
import sys

from .arch import PAGE_SHIFT, PAGE_SIZE, PAGE_OFFSET, MiB, parse_size, human
from .errors import require_int
from .mm import memblock, page_alloc, slub
from .mm import pgtable, vmalloc as mm_vmalloc
from .trace import Trace
from .uapi import GFP_KERNEL
from . import proc
from . import fs as _fs
from .mm import mmap as mm_mmap


class Machine:
    """A simulated x86_64 computer running Linux 6.x.

        m = Machine(ram="4GiB", cpus=2, seed=0)

    `ram` is bytes or a string such as "512MiB" or "4GiB" (64 MiB to 1 TiB, a
    multiple of 2 MiB); `cpus` the number of CPUs; `seed` fixes every random
    choice the kernel would make (address space layout, for instance), so two
    machines built alike behave alike.  The per-CPU page lists sit in front of
    the buddy allocator, as in every Linux; `pcp=False` leaves them out, so
    that each allocation and free shows its splits and merges directly.
    """

    def __init__(self, ram="4GiB", cpus=2, seed=0, pcp=True):
        ram = parse_size(ram, "ram")
        if not memblock.MIN_RAM <= ram <= memblock.MAX_RAM:
            raise ValueError(f"ram must be between {human(memblock.MIN_RAM)} and "
                             f"{human(memblock.MAX_RAM)}, got {human(ram)}")
        if ram % (2 * MiB):
            raise ValueError(f"ram must be a multiple of 2 MiB, got {ram} bytes")
        self.ram = ram
        self.cpus = require_int("cpus", cpus, 1, 1024)
        self.seed = require_int("seed", seed)
        self.rng = random.Random(seed)
        if not isinstance(pcp, bool):
            raise TypeError(f"pcp must be a bool, not {type(pcp).__name__}")
        self.pcp_enabled = pcp          # per-CPU page lists in front of the buddy allocator
        self._cpu = 0                   # the CPU the next kernel call runs on
        # Tunables, with Linux's defaults (sysctl vm.* and /sys/kernel/mm).
        self.thp_enabled = "madvise"
        self.watermark_scale_factor = 10
        self.lowmem_reserve_ratio = [256, 256, 32, 0, 0]
        self.min_free_kbytes = 0
        self.totalreserve_pages = 0
        # Node counters (enum node_stat_item) by their /proc/zoneinfo names;
        # each mm file keeps its own up to date and meminfo reads them.
        self.node_stat = dict.fromkeys(proc.NODE_STAT_ITEMS, 0)
        self.checks = [page_alloc.check]    # each subsystem adds its invariant check here
        memblock.boot(self, ram)
        page_alloc.init_per_zone_wmark_min(self)
        slub.kmem_cache_init(self)          # the kmalloc caches; no slab pages yet
        pgtable.pgtable_init(self)          # init_mm and its PGD (init_top_pgt)
        mm_vmalloc.vmalloc_init(self)       # the free vmalloc space, vmap nodes
        self.fs = _fs.FileSystem(self)      # files for mmap: libc, ld.so, programs
        mm_mmap.mmap_init(self)             # vm.max_map_count, overcommit, processes; their check
        from .mm import memory as mm_memory
        mm_memory.memory_init(self)         # the zero page, page contents, the rmap check
        from .mm import filemap as mm_filemap
        mm_filemap.filemap_init(self)       # the clock, the disk "vda", the LRU lists, writeback
        self.proc = proc.Proc(self)

    @property
    def current_cpu(self):
        """The CPU that the next kernel call runs on (per-CPU page lists and slabs are per CPU)."""
        return self._cpu

    @current_cpu.setter
    def current_cpu(self, cpu):
        self._cpu = require_int("current_cpu", cpu, 0, self.cpus - 1)

    @property
    def machine(self):
        """Every model object answers .machine; the machine answers itself (used by tracing)."""
        return self

    def __repr__(self):
        return f"Machine(ram={human(self.ram)!r}, cpus={self.cpus}, seed={self.seed})"

    # -- processes -------------------------------------------------------------
    def spawn(self, name="a.out", uid=1000, rlimits=None):
        """A new process running `name`, as execve and ld.so leave it at main() (mmlab/process.py)."""
        from .process import spawn
        return spawn(self, name, uid=uid, rlimits=rlimits)

    # -- tracing and checking ------------------------------------------------
    def trace(self):
        """`with m.trace() as t:` records the kernel path of every call in the block."""
        return Trace(self)

    def check(self):
        """Prove every invariant of the model; raise InvariantError naming the first broken one."""
        for check in self.checks:
            check(self)

    # -- physical memory -----------------------------------------------------
    def alloc_pages(self, order, gfp=GFP_KERNEL):
        """alloc_pages: 2**order contiguous frames; returns the first pfn, or None."""
        return page_alloc.alloc_pages(self, order, gfp)

    def free_pages(self, pfn, order):
        """__free_pages: give back a block alloc_pages returned, with the same order."""
        page_alloc.free_pages(self, pfn, order)

    # -- kernel memory: kmalloc and slab caches (mm/slub.py) ----------------
    def kmalloc(self, size, gfp=GFP_KERNEL):
        """kmalloc: `size` bytes of kernel memory; the address, or 0 (NULL). kmalloc(0) is ZERO_SIZE_PTR (16)."""
        return slub.kmalloc(self, size, gfp)

    def kfree(self, addr):
        """kfree: free what kmalloc returned (0 and ZERO_SIZE_PTR are ignored)."""
        slub.kfree(self, addr)

    def ksize(self, addr):
        """ksize: the usable size of a kmalloc allocation (its slot or its pages)."""
        return slub.ksize(self, addr)

    def kzalloc(self, size, gfp=GFP_KERNEL):
        """kzalloc: kmalloc with __GFP_ZERO."""
        return slub.kzalloc(self, size, gfp)

    def kcalloc(self, n, size, gfp=GFP_KERNEL):
        """kcalloc: a zeroed array of n * size bytes; 0 (NULL) if the product overflows."""
        return slub.kcalloc(self, n, size, gfp)

    def krealloc(self, addr, size, gfp=GFP_KERNEL):
        """krealloc: resize a kmalloc allocation; the new address, or 0 with the old one kept."""
        return slub.krealloc(self, addr, size, gfp)

    def kmem_cache_create(self, name, size, align=0, flags=0, ctor=None, freeptr_offset=None):
        """kmem_cache_create: a cache of `size`-byte objects with .alloc(), .free(addr), .shrink(), .destroy().

        `flags` are mmlab.mm.slub.SLAB_* flags; `ctor(addr)` runs on each object when its slab
        is made; returns None when memory runs out.
        """
        return slub.kmem_cache_create(self, name, size, align, flags, ctor, freeptr_offset)

    # -- vmalloc (mm/vmalloc.py) -----------------------------------------------
    def vmalloc(self, size, gfp=GFP_KERNEL, caller=None):
        """vmalloc: `size` bytes, virtually contiguous, from scattered pages; the address, or 0 (NULL).

        `caller` is the symbol /proc/vmallocinfo shows (e.g. 'my_init+0x1c/0x40');
        by default the name of the Python function calling.  vmalloc(0) is NULL.
        """
        caller = caller if caller is not None else mm_vmalloc.caller_of(sys._getframe(1))
        return mm_vmalloc.vmalloc(self, size, gfp, caller)

    def vzalloc(self, size, caller=None):
        """vzalloc: vmalloc with zeroed pages."""
        caller = caller if caller is not None else mm_vmalloc.caller_of(sys._getframe(1))
        return mm_vmalloc.vzalloc(self, size, caller)

    def vfree(self, addr):
        """vfree: free what vmalloc returned (vfree(0) does nothing); the range is freed lazily."""
        mm_vmalloc.vfree(self, addr)

    def vmalloc_to_page(self, addr):
        """vmalloc_to_page: the frame (pfn) behind a vmalloc address, by a page-table walk; None if unmapped."""
        return mm_vmalloc.vmalloc_to_page(self, addr)

    def vmalloc_to_pfn(self, addr):
        """vmalloc_to_pfn: the pfn behind a vmalloc address; None if unmapped."""
        return mm_vmalloc.vmalloc_to_pfn(self, addr)

    def vmalloc_nr_pages(self):
        """vmalloc_nr_pages: pages vmalloc holds (VmallocUsed in /proc/meminfo)."""
        return mm_vmalloc.vmalloc_nr_pages(self)

    def kvmalloc(self, size, gfp=GFP_KERNEL, caller=None):
        """kvmalloc: kmalloc, or vmalloc when kmalloc fails above a page; the address, or 0."""
        caller = caller if caller is not None else mm_vmalloc.caller_of(sys._getframe(1))
        return mm_vmalloc.kvmalloc(self, size, gfp, caller)

    def kvfree(self, addr):
        """kvfree: vfree a vmalloc address, kfree anything else."""
        mm_vmalloc.kvfree(self, require_int("addr", addr, 0, (1 << 64) - 1))

    def page_address(self, pfn):
        """page_address: the frame's address in the kernel's direct map."""
        pfn = require_int("pfn", pfn, 0, self.max_pfn - 1)
        return PAGE_OFFSET + (pfn << PAGE_SHIFT)

    def virt_to_phys(self, addr):
        """virt_to_phys: the physical address behind a direct-map address."""
        addr = require_int("addr", addr)
        end = PAGE_OFFSET + (self.max_pfn << PAGE_SHIFT)
        if not PAGE_OFFSET <= addr < end:
            # Linux would return garbage (CONFIG_DEBUG_VIRTUAL warns "virt_to_phys used for
            # non-linear address"); vmalloc addresses need vmalloc_to_pfn instead.
            raise ValueError(f"addr {addr:#x} is not in the direct map [{PAGE_OFFSET:#x}, {end:#x})")
        return addr - PAGE_OFFSET

    def phys_to_virt(self, phys):
        """phys_to_virt: the direct-map address of a physical address."""
        phys = require_int("phys", phys, 0, (self.max_pfn << PAGE_SHIFT) - 1)
        return PAGE_OFFSET + phys

    def drain_all_pages(self):
        """drain_all_pages: return every page cached on the per-CPU lists to the buddy allocator."""
        page_alloc.drain_all_pages(self)

    def set_min_free_kbytes(self, kbytes):
        """sysctl vm.min_free_kbytes: recompute every zone's watermarks."""
        self.min_free_kbytes = require_int("kbytes", kbytes, 0, (1 << 31) - 1)
        page_alloc.setup_per_zone_wmarks(self)

    # -- the page cache, the disk and the clock (mm/filemap.py, mmlab/block.py) ----
    def set_disk(self, preset):
        """Give the disk vda the timing of a preset: "hdd", "ssd" (SATA) or "nvme" (mmlab.block.PRESETS)."""
        self.disk.set_preset(preset)

    def set_read_ahead_kb(self, kb):
        """blockdev --setra / queue/read_ahead_kb of vda: files opened from now on read ahead kb KiB."""
        self.disk.set_read_ahead_kb(kb)

    def drop_caches(self, mode=3):
        """echo mode > /proc/sys/vm/drop_caches: 1 the page cache, 2 slab, 3 both; dirty and mapped pages stay."""
        from .mm import vmscan
        mode = require_int("mode", mode, 1, 3)
        vmscan.drop_caches(self, mode)

    def idle(self, ns):
        """Let ns nanoseconds of simulated time pass: I/O completes, the flusher runs; returns m.clock_ns."""
        from .mm import filemap as mm_filemap
        ns = require_int("ns", ns, 0)
        mm_filemap.advance_to(self, self.clock_ns + ns)
        return self.clock_ns

    @property
    def page_size(self):
        return PAGE_SIZE
