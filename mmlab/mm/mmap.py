"""The address-space system calls: mmap, munmap, brk, mprotect, mremap, mlock, madvise, msync.

Models mm/mmap.c (do_mmap, __get_unmapped_area, brk), mm/vma.c
(__mmap_region, do_brk_flags), arch/x86/kernel/sys_x86_64.c (the x86
get_unmapped_area), mm/huge_memory.c (THP alignment of large mappings),
mm/mprotect.c, mm/mremap.c, mm/mlock.c, mm/madvise.c and mm/msync.c, for
x86_64 with 4-level page tables, as Linux 6.18 runs them.  NOTE: mlock,
madvise and mremap would each deserve a file of their own named after the
kernel's; they live here, in sections, until the model is split further.

Each syscall returns what the kernel returns: a value, or -errno.  The
Process methods (mmlab/process.py) turn -errno into OSError, as Python's os
module does.  The rules for merging, splitting and finding free space are in
mm/vma.py; this file decides what to map and checks every limit first.

How mmap picks an address (__get_unmapped_area):
  - MAP_FIXED: exactly addr (whatever was there is unmapped);
  - a hint: addr rounded down to a page, if the range is free;
  - otherwise top-down from mmap_base: the highest gap that fits.
  Anonymous private mappings without a hint whose length is a multiple of
  2 MiB, and ext4 file mappings of 2 MiB or more, are placed 2 MiB aligned
  (at the right file offset) so transparent huge pages can back them.

NOTE: simplifications, each checked against the reference machine where it
matters: no hugetlbfs pages (vm.nr_hugepages is 0, so MAP_HUGETLB fails
with ENOMEM), no memory policies, no userfaultfd, no pkeys (the reference
CPU has none), no mseal, no personality flags (READ_IMPLIES_EXEC), no
noexec mounts, shmem huge pages "never" (as the reference machine).
"""
from ..arch import PAGE_SHIFT, PAGE_SIZE, TASK_SIZE, MiB, GiB
from ..errors import EINVAL, ENOMEM, EACCES, EBADF, EEXIST, EPERM, EAGAIN, EOVERFLOW, \
    EOPNOTSUPP, EBUSY, InvariantError
from ..trace import traced, note
from ..uapi import (PROT_READ, PROT_WRITE, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP,
                    MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_TYPE, MAP_FIXED,
                    MAP_ANONYMOUS, MAP_32BIT, MAP_GROWSDOWN, MAP_DENYWRITE, MAP_EXECUTABLE,
                    MAP_LOCKED, MAP_NORESERVE, MAP_POPULATE, MAP_NONBLOCK, MAP_STACK,
                    MAP_HUGETLB, MAP_SYNC, MAP_FIXED_NOREPLACE, MAP_UNINITIALIZED,
                    MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT, MLOCK_ONFAULT, MS_ASYNC, MS_INVALIDATE,
                    MS_SYNC, RLIMIT_DATA, RLIMIT_MEMLOCK)
from .. import uapi as _uapi
from .. import fs as _fs
from . import vma as _vma
from .vma import (VMA, MM, VmaMergeStruct, ret_name, vm_flags_name, VM_READ, VM_WRITE, VM_SHARED, VM_MAYREAD,
                  VM_MAYWRITE, VM_MAYEXEC, VM_MAYSHARE, VM_GROWSDOWN, VM_LOCKED, VM_LOCKONFAULT,
                  VM_LOCKED_MASK, VM_ACCOUNT, VM_NORESERVE, VM_HUGETLB, VM_SYNC, VM_NOHUGEPAGE,
                  VM_HUGEPAGE, VM_DROPPABLE, VM_WIPEONFORK, VM_DONTDUMP, VM_DONTCOPY, VM_IO,
                  VM_PFNMAP, VM_SPECIAL, VM_SEQ_READ, VM_RAND_READ, VM_MERGEABLE, VM_MIXEDMAP,
                  VM_DONTEXPAND, VM_ACCESS_FLAGS, VM_DATA_DEFAULT_FLAGS, ULONG_MAX,
                  vm_get_page_prot, vm_stat_account, may_expand_vm, vm_enough_memory,
                  vm_unacct_memory, vm_acct_memory, rlimit, capable, vm_start_gap, unmapped_area_topdown,
                  unmapped_area, vma_merge_new_range, do_vmi_munmap, do_vmi_align_munmap,
                  vma_modify_flags, vms_gather_munmap_vmas, vms_clear_ptes,
                  vms_complete_munmap_vmas, VmaMunmap, mm_populate, change_protection)

from ..uapi import (PROT_SEM, MAP_DROPPABLE, MAP_ABOVE4G, MAP_HUGE_SHIFT, MAP_HUGE_MASK,
                    MAP_HUGE_2MB, MAP_HUGE_1GB, RLIMIT_AS)

MADV_FLAG_ADVICE = {
    # advice -> (flags to clear, flags to set), the advice madvise_update_vma applies.
    _uapi.MADV_NORMAL: (VM_SEQ_READ | VM_RAND_READ, 0),
    _uapi.MADV_RANDOM: (VM_SEQ_READ, VM_RAND_READ),
    _uapi.MADV_SEQUENTIAL: (VM_RAND_READ, VM_SEQ_READ),
    _uapi.MADV_DONTFORK: (0, VM_DONTCOPY),
    _uapi.MADV_DOFORK: (VM_DONTCOPY, 0),
    _uapi.MADV_DONTDUMP: (0, VM_DONTDUMP),
    _uapi.MADV_DODUMP: (VM_DONTDUMP, 0),
    _uapi.MADV_WIPEONFORK: (0, VM_WIPEONFORK),
    _uapi.MADV_KEEPONFORK: (VM_WIPEONFORK, 0),
    _uapi.MADV_HUGEPAGE: (VM_NOHUGEPAGE, VM_HUGEPAGE),
    _uapi.MADV_NOHUGEPAGE: (VM_HUGEPAGE, VM_NOHUGEPAGE),
    _uapi.MADV_MERGEABLE: (0, VM_MERGEABLE),
    _uapi.MADV_UNMERGEABLE: (VM_MERGEABLE, 0),
}
MADV_VALID = set(MADV_FLAG_ADVICE) | {
    _uapi.MADV_WILLNEED, _uapi.MADV_DONTNEED, _uapi.MADV_DONTNEED_LOCKED, _uapi.MADV_FREE,
    _uapi.MADV_COLD, _uapi.MADV_PAGEOUT, _uapi.MADV_POPULATE_READ, _uapi.MADV_POPULATE_WRITE,
    _uapi.MADV_REMOVE, _uapi.MADV_COLLAPSE, _uapi.MADV_HWPOISON, _uapi.MADV_SOFT_OFFLINE,
    _uapi.MADV_GUARD_INSTALL, _uapi.MADV_GUARD_REMOVE,
}

LEGACY_MAP_MASK = (MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE
                   | MAP_EXECUTABLE | MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED
                   | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB
                   | MAP_32BIT | MAP_ABOVE4G | MAP_HUGE_2MB | MAP_HUGE_1GB)

PMD_SIZE = 2 * MiB
HUGE_PAGE_SIZES = {0: 2 * MiB, 21: 2 * MiB, 30: GiB}      # MAP_HUGE_* log2 -> hstate (0: default)
PAGE_MASK = ~(PAGE_SIZE - 1) & ULONG_MAX
DEFAULT_MAP_WINDOW = TASK_SIZE          # 4-level paging: the whole user address space
MAX_LFS_FILESIZE = (1 << 63) - 1
OVERCOMMIT_GUESS, OVERCOMMIT_ALWAYS, OVERCOMMIT_NEVER = 0, 1, 2


def prot_name(prot):
    """PROT_* bits by name: 'PROT_READ|PROT_WRITE', 'PROT_NONE'."""
    names = [n for b, n in ((PROT_READ, "PROT_READ"), (PROT_WRITE, "PROT_WRITE"), (PROT_EXEC, "PROT_EXEC"),
                            (PROT_SEM, "PROT_SEM"), (PROT_GROWSDOWN, "PROT_GROWSDOWN"),
                            (PROT_GROWSUP, "PROT_GROWSUP")) if prot & b]
    rest = prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM | PROT_GROWSDOWN | PROT_GROWSUP)
    return "|".join(names + ([hex(rest)] if rest else [])) or "PROT_NONE"


_MAP_TYPES = {MAP_SHARED: "MAP_SHARED", MAP_PRIVATE: "MAP_PRIVATE",
              MAP_SHARED_VALIDATE: "MAP_SHARED_VALIDATE", MAP_DROPPABLE: "MAP_DROPPABLE"}
_MAP_FLAGS = [(MAP_FIXED, "MAP_FIXED"), (MAP_ANONYMOUS, "MAP_ANONYMOUS"), (MAP_32BIT, "MAP_32BIT"),
              (MAP_ABOVE4G, "MAP_ABOVE4G"), (MAP_GROWSDOWN, "MAP_GROWSDOWN"),
              (MAP_DENYWRITE, "MAP_DENYWRITE"), (MAP_EXECUTABLE, "MAP_EXECUTABLE"),
              (MAP_LOCKED, "MAP_LOCKED"), (MAP_NORESERVE, "MAP_NORESERVE"),
              (MAP_POPULATE, "MAP_POPULATE"), (MAP_NONBLOCK, "MAP_NONBLOCK"), (MAP_STACK, "MAP_STACK"),
              (MAP_HUGETLB, "MAP_HUGETLB"), (MAP_SYNC, "MAP_SYNC"),
              (MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"), (MAP_UNINITIALIZED, "MAP_UNINITIALIZED")]


def map_flags_name(flags):
    """mmap flags by name: 'MAP_PRIVATE|MAP_ANONYMOUS'."""
    kind = flags & MAP_TYPE
    names = [_MAP_TYPES.get(kind, hex(kind))] if kind else []
    rest = flags & ~MAP_TYPE
    for bit, name in _MAP_FLAGS:
        if rest & bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "0"


def _vmf(flags):
    """vm_flags for traces: the smaps mnemonics, or 0."""
    return vm_flags_name(flags) or "0"


def page_align(x):
    """PAGE_ALIGN, wrapping as unsigned long arithmetic does."""
    return (x + PAGE_SIZE - 1) & PAGE_MASK


# -- machine-wide set-up ----------------------------------------------------------
def mmap_init(m):
    """The vm.* sysctls this file obeys, with Linux's defaults, and the address-space check.

    vm.max_map_count 65530, vm.mmap_min_addr 4096 (the reference machine;
    many distributions use 65536), vm.overcommit_memory 0 (heuristic),
    vm.overcommit_ratio 50, stack_guard_gap 256 pages;
    admin/user_reserve_kbytes as init_admin_reserve/init_user_reserve
    compute them from free memory at boot.
    """
    m.max_map_count = _vma.DEFAULT_MAX_MAP_COUNT
    m.mmap_min_addr = 4096
    m.stack_guard_gap = _vma.STACK_GUARD_GAP
    m.overcommit_memory = OVERCOMMIT_GUESS
    m.overcommit_ratio = 50
    m.overcommit_kbytes = 0
    m.committed_pages = getattr(m, "committed_pages", 0)
    m.shmem_committed = 0
    free_kb = sum(z.nr_free_pages for z in m.zones) << (PAGE_SHIFT - 10)
    m.admin_reserve_kbytes = min(free_kb // 32, 8192)
    m.user_reserve_kbytes = min(free_kb // 32, 131072)
    m.randomize_va_space = 2
    m.legacy_va_layout = 0
    m.processes = {}
    m.checks.append(check_address_spaces)


def check_address_spaces(m):
    """Every live process's address space is consistent, and Committed_AS adds up.

    See vma.check_mm for the per-process invariants; vma-commit checks that
    the machine's commit count is the VM_ACCOUNT pages of every process plus
    the charge of every shared anonymous object.
    """
    accounted = m.shmem_committed
    for pid, p in m.processes.items():
        check_mm = _vma.check_mm
        check_mm(p.mm, f"pid {pid}")
        accounted += sum(v.pages for v in p.mm._rv if v.vm_flags & VM_ACCOUNT)
    if accounted != m.committed_pages:
        raise InvariantError(f"vma-commit: Committed_AS is {m.committed_pages} pages but "
                             f"the mappings account for {accounted}")


# -- flags ------------------------------------------------------------------------
def calc_vm_prot_bits(prot):
    """calc_vm_prot_bits: PROT_READ/WRITE/EXEC as VM_READ/WRITE/EXEC."""
    return prot & (PROT_READ | PROT_WRITE | PROT_EXEC)     # the bits coincide


def calc_vm_flag_bits(flags):
    """calc_vm_flag_bits: the mmap flags that become VMA flags (MAP_STACK means no THP)."""
    vm = 0
    if flags & MAP_GROWSDOWN:
        vm |= VM_GROWSDOWN
    if flags & MAP_LOCKED:
        vm |= VM_LOCKED
    if flags & MAP_SYNC:
        vm |= VM_SYNC
    if flags & MAP_STACK:
        vm |= VM_NOHUGEPAGE
    return vm


def accountable_mapping(file, vm_flags):
    """accountable_mapping: a private writable mapping without MAP_NORESERVE is charged
    (hugetlb memory is reserved in huge pages instead)."""
    if is_file_hugepages(file):
        return False
    return vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE) == VM_WRITE


def can_do_mlock(mm):
    """can_do_mlock: a nonzero RLIMIT_MEMLOCK, or CAP_IPC_LOCK."""
    return rlimit(mm, RLIMIT_MEMLOCK) != 0 or capable(mm, "CAP_IPC_LOCK")


def mlock_future_ok(mm, is_vma_locked, nbytes):
    """mlock_future_ok: may nbytes more be locked within RLIMIT_MEMLOCK?"""
    if not is_vma_locked or capable(mm, "CAP_IPC_LOCK"):
        return True
    return (nbytes >> PAGE_SHIFT) + mm.locked_vm <= rlimit(mm, RLIMIT_MEMLOCK) >> PAGE_SHIFT


def vma_set_page_prot(vma):
    """vma_set_page_prot: vm_page_prot from vm_flags; shared writable file pages start read-only
    when the filesystem wants to hear of the first write (writenotify)."""
    flags = vma.vm_flags
    if vma_wants_writenotify(vma):
        flags &= ~VM_SHARED
    vma.vm_page_prot = vm_get_page_prot(flags)


def vma_wants_writenotify(vma):
    """vma_wants_writenotify: shared writable, and the file tracks dirty pages (ext4 does, shmem not)."""
    if vma.vm_flags & (VM_WRITE | VM_SHARED) != VM_WRITE | VM_SHARED:
        return False
    ops = vma.vm_ops
    if ops is not None and ops.page_mkwrite:
        return True
    return vma.vm_file is not None and vma.vm_file.backing == "disk"


# -- get_unmapped_area -----------------------------------------------------------
def mmap_address_hint_valid(addr, length):
    """mmap_address_hint_valid: the hint range fits below TASK_SIZE (and does not cross 47 bits)."""
    if TASK_SIZE - length < addr:
        return False
    return (addr > DEFAULT_MAP_WINDOW) == (addr + length > DEFAULT_MAP_WINDOW)


def stack_guard_placement(vm_flags):
    """stack_guard_placement: a page below shadow stacks (none here)."""
    return PAGE_SIZE if vm_flags & _vma.VM_SHADOW_STACK else 0


def randomize_page(m, start, range_):
    """randomize_page: a random page-aligned address in [start, start + range)."""
    if start & (PAGE_SIZE - 1):
        range_ -= page_align(start) - start
        start = page_align(start)
    if start > ULONG_MAX - range_:
        range_ = ULONG_MAX - start
    range_ >>= PAGE_SHIFT
    if range_ == 0:
        return start
    return start + (m.rng.getrandbits(64) % range_ << PAGE_SHIFT)


@traced(fmt={"flags": map_flags_name, "vm_flags": _vmf}, result=ret_name)
def arch_get_unmapped_area(mm, file, addr, length, pgoff, flags, vm_flags=0):
    """arch_get_unmapped_area (x86): bottom-up from mmap_legacy_base (or below 2 GiB for MAP_32BIT)."""
    if flags & MAP_FIXED:
        return addr
    if flags & MAP_32BIT:
        begin, end = randomize_page(mm.machine, 0x40000000, 0x02000000), 0x80000000
    else:
        begin, end = mm.mmap_legacy_base, DEFAULT_MAP_WINDOW
    if length > end:
        return -ENOMEM
    if addr:
        addr = page_align(addr)
        vma = mm.find_vma(addr)
        if end - length >= addr and (vma is None or addr + length <= vm_start_gap(vma)):
            note(mm, "get_unmapped_area: hint %#x is free", addr)
            return addr
    if is_file_hugepages(file):
        return unmapped_area(mm, length, begin, end, huge_page_mask_align(file))
    return unmapped_area(mm, length, begin, end, 0, pgoff << PAGE_SHIFT,
                         stack_guard_placement(vm_flags))


def arch_get_unmapped_area_topdown(mm, file, addr, length, pgoff, flags, vm_flags=0):
    """arch_get_unmapped_area_topdown (x86): a free hint, else the highest gap below mmap_base.

    The hint is rounded down to a page and used if [hint, hint+len) is
    free (and clear of any stack's guard gap).  If nothing fits below
    mmap_base, fall back to the bottom-up search above mmap_legacy_base.
    """
    addr0 = addr
    if length > TASK_SIZE:
        return -ENOMEM
    if flags & MAP_FIXED:
        return addr
    if not flags & MAP_32BIT:
        if addr:
            addr &= PAGE_MASK
            if mmap_address_hint_valid(addr, length):
                vma = mm.find_vma(addr)
                if vma is None or addr + length <= vm_start_gap(vma):
                    note(mm, "get_unmapped_area: hint %#x is free", addr)
                    return addr
            note(mm, "get_unmapped_area: hint %#x is taken, search top-down", addr)
        low = 1 << 32 if flags & MAP_ABOVE4G else PAGE_SIZE
        if is_file_hugepages(file):
            found = unmapped_area_topdown(mm, length, low, mm.mmap_base, huge_page_mask_align(file))
        else:
            found = unmapped_area_topdown(mm, length, low, mm.mmap_base, 0, pgoff << PAGE_SHIFT,
                                          stack_guard_placement(vm_flags))
        if found >= 0:
            return found
        note(mm, "get_unmapped_area: nothing below mmap_base, fall back to bottom-up")
    return arch_get_unmapped_area(mm, file, addr0, length, pgoff, flags, 0)


def mm_get_unmapped_area_vmflags(mm, file, addr, length, pgoff, flags, vm_flags=0):
    """mm_get_unmapped_area_vmflags: the top-down or bottom-up search, as the layout says."""
    if mm.topdown:
        return arch_get_unmapped_area_topdown(mm, file, addr, length, pgoff, flags, vm_flags)
    return arch_get_unmapped_area(mm, file, addr, length, pgoff, flags, vm_flags)


def thp_get_unmapped_area_vmflags(mm, file, addr, length, pgoff, flags, vm_flags=0):
    """thp_get_unmapped_area_vmflags: a THP-aligned address if possible, else any address."""
    ret = thp_get_unmapped_area_aligned(mm, file, addr, length, pgoff << PAGE_SHIFT, flags,
                                        PMD_SIZE, vm_flags)
    if ret:
        return ret
    return mm_get_unmapped_area_vmflags(mm, file, addr, length, pgoff, flags, vm_flags)


@traced(name="__thp_get_unmapped_area", fmt={"flags": map_flags_name, "vm_flags": _vmf}, result=ret_name)
def thp_get_unmapped_area_aligned(mm, file, addr, length, off, flags, size, vm_flags):
    """__thp_get_unmapped_area: search for len + 2 MiB, then place the mapping so that
    address and file offset agree modulo 2 MiB; 0 when the range holds no whole huge page.

    Top-down, an already aligned find is moved up by 2 MiB, to the top of
    the padded range.  A free hint is kept as it is.
    """
    off_end = off + length
    off_align = (off + size - 1) & ~(size - 1)
    if off_end <= off_align or off_end - off_align < size:
        return 0
    len_pad = length + size
    if len_pad > ULONG_MAX or off + len_pad > ULONG_MAX:
        return 0
    ret = mm_get_unmapped_area_vmflags(mm, file, addr, len_pad, off >> PAGE_SHIFT, flags, vm_flags)
    if ret < 0:
        return 0
    if ret == addr:
        return addr
    off_sub = (off - ret) & (size - 1)
    if mm.topdown and not off_sub:
        note(mm, "thp_get_unmapped_area: %#x is aligned; take the top of the padded gap", ret)
        return ret + size
    note(mm, "thp_get_unmapped_area: align %#x up by %#x", ret, off_sub)
    return ret + off_sub


def shmem_get_unmapped_area(mm, file, addr, length, pgoff, flags):
    """shmem_get_unmapped_area: with shmem huge pages "never", the ordinary search."""
    return mm_get_unmapped_area_vmflags(mm, file, addr, length, pgoff, flags, 0)


def file_get_unmapped_area(file):
    """file->f_op->get_unmapped_area: ext4 asks for THP alignment, tmpfs goes through shmem,
    hugetlbfs insists on its page size."""
    backing = file.backing
    if backing == "disk":
        return thp_get_unmapped_area
    if backing == "hugetlbfs":
        return hugetlb_get_unmapped_area
    return shmem_get_unmapped_area


def is_file_hugepages(file):
    """is_file_hugepages: a hugetlbfs file."""
    return file is not None and file.backing == "hugetlbfs"


def huge_page_mask_align(file):
    """huge_page_mask_align: the address bits a hugetlb mapping must have clear, above a page."""
    return (file.file.hsize - 1) & PAGE_MASK


def hugetlb_get_unmapped_area(mm, file, addr, length, pgoff, flags):
    """hugetlb_get_unmapped_area: lengths and fixed addresses must be whole huge pages (EINVAL);
    a hint is rounded up to one; the search aligns to the huge page size."""
    hsize = file.file.hsize
    if length & (hsize - 1):
        return -EINVAL
    if flags & MAP_FIXED and addr & (hsize - 1):
        return -EINVAL
    addr0 = (addr + hsize - 1) & ~(hsize - 1) if addr else 0
    return mm_get_unmapped_area_vmflags(mm, file, addr0, length, pgoff, flags, 0)


def thp_get_unmapped_area(mm, file, addr, length, pgoff, flags):
    return thp_get_unmapped_area_vmflags(mm, file, addr, length, pgoff, flags, 0)


@traced(name="__get_unmapped_area", fmt={"flags": map_flags_name, "vm_flags": _vmf}, result=ret_name)
def get_unmapped_area(mm, file, addr, length, pgoff, flags, vm_flags=0):
    """__get_unmapped_area: choose where a mapping goes; returns the address or -errno.

    The file's filesystem chooses for file mappings, shmem for shared
    anonymous ones; anonymous private mappings without a hint and a length
    that is a multiple of 2 MiB are THP-aligned; the rest use the
    architecture's search.  The result must lie below TASK_SIZE and, for
    unprivileged processes, at or above vm.mmap_min_addr (EPERM).
    """
    if length > TASK_SIZE:
        return -ENOMEM
    get_area = None
    if file is not None:
        get_area = file_get_unmapped_area(file)
    elif flags & MAP_SHARED:
        get_area = shmem_get_unmapped_area
    if file is None:
        pgoff = 0
    if get_area is not None:
        addr = get_area(mm, file, addr, length, pgoff, flags)
    elif file is None and not addr and length % PMD_SIZE == 0:
        note(mm, "get_unmapped_area: anonymous, length a multiple of 2 MiB: THP-align")
        addr = thp_get_unmapped_area_vmflags(mm, file, addr, length, pgoff, flags, vm_flags)
    else:
        addr = mm_get_unmapped_area_vmflags(mm, file, addr, length, pgoff, flags, vm_flags)
    if addr < 0:
        return addr
    if addr > TASK_SIZE - length:
        return -ENOMEM
    if addr & (PAGE_SIZE - 1):
        return -EINVAL
    if addr < mm.machine.mmap_min_addr and not capable(mm, "CAP_SYS_RAWIO"):
        note(mm, "security_mmap_addr: %#x is below vm.mmap_min_addr", addr)
        return -EPERM
    return addr


# -- mmap ----------------------------------------------------------------------------
def round_hint_to_min(m, hint):
    """round_hint_to_min: a hint below vm.mmap_min_addr becomes mmap_min_addr."""
    hint &= PAGE_MASK
    if hint and hint < m.mmap_min_addr:
        return page_align(m.mmap_min_addr)
    return hint


def file_mmap_ok(file, pgoff, length):
    """file_mmap_ok: the file range [pgoff, pgoff + len) fits below MAX_LFS_FILESIZE."""
    maxsize = MAX_LFS_FILESIZE
    if length > maxsize:
        return False
    return pgoff <= (maxsize - length) >> PAGE_SHIFT


@traced(fmt={"prot": prot_name, "flags": map_flags_name, "vm_flags": _vmf},
        result=lambda r: ret_name(r[0]))
def do_mmap(mm, file, addr, length, prot, flags, vm_flags, pgoff):
    """do_mmap: check a mapping request, pick its address and map it.

    Returns (address or -errno, bytes to populate).  The checks, in
    Linux's order: length 0 (EINVAL) or overflowing (ENOMEM), offset
    wrap-around (EOVERFLOW), vm.max_map_count (ENOMEM), the address
    (get_unmapped_area), MAP_FIXED_NOREPLACE over a mapping (EEXIST),
    MAP_LOCKED limits (EPERM, EAGAIN), then the mapping type: for a file its
    open mode (EACCES), unknown flags under MAP_SHARED_VALIDATE
    (EOPNOTSUPP), MAP_GROWSDOWN (EINVAL); for anonymous memory the type
    (EINVAL for anything but MAP_SHARED, MAP_PRIVATE, MAP_DROPPABLE).
    """
    m = mm.machine
    if not length:
        return -EINVAL, 0
    if flags & MAP_FIXED_NOREPLACE:
        flags |= MAP_FIXED
    if addr and not flags & MAP_FIXED:
        addr = round_hint_to_min(m, addr)
    length = (length + PAGE_SIZE - 1) & PAGE_MASK       # PAGE_ALIGN, wrapping to 0
    if not length:
        return -ENOMEM, 0
    if pgoff + (length >> PAGE_SHIFT) > ULONG_MAX:
        return -EOVERFLOW, 0
    if mm.map_count > m.max_map_count:
        note(mm, "do_mmap: map_count %d passes vm.max_map_count", mm.map_count)
        return -ENOMEM, 0
    vm_flags |= (calc_vm_prot_bits(prot) | mm.def_flags | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC)
    if flags & (MAP_GROWSDOWN | MAP_LOCKED | MAP_SYNC | MAP_STACK):
        vm_flags |= calc_vm_flag_bits(flags)
    addr = get_unmapped_area(mm, file, addr, length, pgoff, flags, vm_flags)
    if addr < 0:
        return addr, 0
    if flags & MAP_FIXED_NOREPLACE and mm.find_vma_intersection(addr, addr + length):
        note(mm, "do_mmap: MAP_FIXED_NOREPLACE and [%#x, %#x) is mapped", addr, addr + length)
        return -EEXIST, 0
    if flags & MAP_LOCKED and not can_do_mlock(mm):
        return -EPERM, 0
    if vm_flags & VM_LOCKED and not mlock_future_ok(mm, True, length):
        return -EAGAIN, 0
    kind = flags & MAP_TYPE
    if file is not None:
        if not file_mmap_ok(file, pgoff, length):
            return -EOVERFLOW, 0
        # ext4 (FOP_MMAP_SYNC) lets MAP_SYNC through here; its mmap hook refuses it later.
        flags_mask = LEGACY_MAP_MASK | (MAP_SYNC if file.backing == "disk" else 0)
        if kind == MAP_SHARED:
            flags &= LEGACY_MAP_MASK          # MAP_SHARED ignores flags it does not know
        if kind in (MAP_SHARED, MAP_SHARED_VALIDATE):
            if flags & ~flags_mask:
                return -EOPNOTSUPP, 0
            if prot & PROT_WRITE and not file.f_mode & _fs.FMODE_WRITE:
                return -EACCES, 0
            vm_flags |= VM_SHARED | VM_MAYSHARE
            if not file.f_mode & _fs.FMODE_WRITE:
                vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
        if kind in (MAP_SHARED, MAP_SHARED_VALIDATE, MAP_PRIVATE):
            if not file.f_mode & _fs.FMODE_READ:
                return -EACCES, 0
            if vm_flags & VM_GROWSDOWN:
                return -EINVAL, 0
        else:
            return -EINVAL, 0
    else:
        if kind == MAP_SHARED:
            if vm_flags & VM_GROWSDOWN:
                return -EINVAL, 0
            pgoff = 0
            vm_flags |= VM_SHARED | VM_MAYSHARE
        elif kind in (MAP_DROPPABLE, MAP_PRIVATE):
            if kind == MAP_DROPPABLE:
                if flags & (MAP_LOCKED | MAP_HUGETLB) or vm_flags & VM_GROWSDOWN:
                    return -EINVAL, 0
                vm_flags |= VM_DROPPABLE | VM_NORESERVE | VM_WIPEONFORK | VM_DONTDUMP
            pgoff = addr >> PAGE_SHIFT       # anonymous pgoff: the virtual page number
        else:
            return -EINVAL, 0
    if flags & MAP_NORESERVE:
        if m.overcommit_memory != OVERCOMMIT_NEVER or is_file_hugepages(file):
            vm_flags |= VM_NORESERVE
    addr = mmap_region(mm, file, addr, length, vm_flags, pgoff)
    populate = 0
    if addr >= 0 and (vm_flags & VM_LOCKED or flags & (MAP_POPULATE | MAP_NONBLOCK) == MAP_POPULATE):
        populate = length
    return addr, populate


class MmapState:
    """struct mmap_state: one __mmap_region call's range, flags and neighbours."""

    __slots__ = ("mm", "addr", "end", "pgoff", "pglen", "flags", "file", "charged",
                 "prev", "next", "vms")

    def __init__(self, mm, addr, length, pgoff, flags, file):
        self.mm, self.addr, self.end, self.pgoff = mm, addr, addr + length, pgoff
        self.pglen = length >> PAGE_SHIFT
        self.flags, self.file = flags, file
        self.charged = 0
        self.prev = self.next = None
        self.vms = None

    @property
    def machine(self):
        return self.mm.machine


def mmap_prepare(mp):
    """__mmap_prepare: gather what the new mapping replaces, then check the limits and charge.

    Returns 0 or -errno.  On failure the VMAs in the range stay mapped, but
    any VMA the gathering split stays split, as in Linux.
    """
    mm = mp.mm
    first = mm.find_vma_intersection(mp.addr, mp.end)
    replaced = replaced_accounted = 0
    if first is not None:
        vms = mp.vms = VmaMunmap(mm, mp.addr, mp.end)
        err = vms_gather_munmap_vmas(vms, first)
        if err:
            return err
        mp.prev, mp.next = vms.prev, vms.next
        replaced, replaced_accounted = vms.nr_pages, vms.nr_accounted
        note(mm, "mmap_region: MAP_FIXED replaces %d VMA(s)", len(vms.vmas))
    else:
        mp.next, mp.prev = mm.find_vma_prev(mp.addr)
    if not may_expand_vm(mm, mp.flags, mp.pglen - replaced):
        return -ENOMEM
    if mp.flags & (VM_NORESERVE | VM_SHARED | VM_WRITE) == VM_WRITE and \
            not is_file_hugepages(mp.file):                                  # accountable_mapping
        mp.charged = mp.pglen - replaced_accounted
        if mp.charged:
            err = vm_enough_memory(mm, mp.charged)
            if err:
                mp.charged = 0
                return err
        if mp.vms is not None:
            mp.vms.nr_accounted = 0
        mp.flags |= VM_ACCOUNT
    return 0


def mmap_abort(mp):
    """vms_abort_munmap_vmas: the gathered VMAs stay; splits made while gathering remain."""
    mm = mp.mm
    for v in (mp.vms.vmas if mp.vms is not None else ()):
        for b in (v.vm_start, v.vm_end):
            if b in (mp.addr, mp.end):
                mm.leave_unmerged(b)


def shmem_zero_setup(vma):
    """shmem_zero_setup: back a shared anonymous VMA with a fresh unnamed shmem object.

    The object is charged to the commit count as a whole (unless
    VM_NORESERVE), not through VM_ACCOUNT; returns 0 or -ENOMEM.
    """
    mm = vma.vm_mm
    m = mm.machine
    size = vma.vm_end - vma.vm_start
    file = m.fs.shmem_file(size)
    if not vma.vm_flags & VM_NORESERVE:
        pages = size >> PAGE_SHIFT
        if vm_enough_memory(mm, pages):
            return -ENOMEM
        file.acct_pages = pages
        m.shmem_committed += pages
    vma.vm_file = _fs.OpenFile(file, _fs.FMODE_READ | _fs.FMODE_WRITE)
    vma.vm_ops = _vma.SHMEM_ANON_VM_OPS
    return 0


def hugetlbfs_file_mmap(vma, file):
    """hugetlbfs_file_mmap: the offset must be whole huge pages (EINVAL), and without
    MAP_NORESERVE the huge pages must be reserved now: with vm.nr_hugepages 0, ENOMEM."""
    hpages = file.file.hsize >> PAGE_SHIFT
    if vma.vm_pgoff & (hpages - 1):
        return -EINVAL
    vma.vm_flags |= _vma.VM_HUGETLB | VM_DONTEXPAND
    if not vma.vm_flags & VM_NORESERVE:
        note(vma, "hugetlb_reserve_pages: no huge pages (vm.nr_hugepages is 0)")
        return -ENOMEM
    return 0


def mmap_new_vma(mp):
    """__mmap_new_vma: a new VMA for the range (no neighbour could take it); returns it or -errno."""
    mm = mp.mm
    vma = VMA(mm, mp.addr, mp.end, mp.flags, mp.pgoff)
    if is_file_hugepages(mp.file):
        err = hugetlbfs_file_mmap(vma, mp.file)
        if err:
            return err
    if mp.file is not None and mp.file.backing == "disk" and vma.vm_flags & VM_SYNC:
        note(mm, "ext4_file_mmap: MAP_SYNC needs DAX")
        return -EOPNOTSUPP
    if mp.file is not None:
        vma.vm_file = _fs.get_file(mp.file)
        vma.vm_ops = _vma.file_vm_ops(mp.file)
    elif mp.flags & VM_SHARED:
        err = shmem_zero_setup(vma)
        if err:
            return err
    mm.insert_vma(vma)
    note(mm, "mmap_region: new VMA %r", vma)
    return vma


def mmap_complete(mp, vma):
    """__mmap_complete: free what the mapping replaced, count the new pages, set the pte protection."""
    mm = mp.mm
    if mp.vms is not None:
        vms_complete_munmap_vmas(mp.vms)
    vm_stat_account(mm, vma.vm_flags, mp.pglen)
    if vma.vm_flags & VM_LOCKED:
        if vma.vm_flags & VM_SPECIAL:
            vma.vm_flags &= ~VM_LOCKED_MASK
        else:
            mm.locked_vm += mp.pglen
    if vma.vm_flags & VM_SHARED:
        vma_set_page_prot(vma)
    else:
        vma.vm_page_prot = _vma.PROTECTION_MAP[vma.vm_flags & 7]       # vm_get_page_prot, private


@traced(fmt={"vm_flags": _vmf}, result=ret_name)
def mmap_region(mm, file, addr, length, vm_flags, pgoff):
    """mmap_region / __mmap_region: map [addr, addr+len) with these flags, merging if possible.

    Steps: gather and split any VMAs the range covers (MAP_FIXED); check
    RLIMIT_AS/RLIMIT_DATA and charge the commit count; take the old VMAs
    out; extend a compatible neighbour (vma_merge_new_range) or insert a
    new VMA; free the old VMAs and count the new pages.  Returns addr or -errno.
    """
    mp = MmapState(mm, addr, length, pgoff, vm_flags, file)
    err = mmap_prepare(mp)
    if err:
        mmap_abort(mp)
        return err
    vms = mp.vms
    if vms is not None:
        mm.erase_vmas(vms.vmas)
        vms_clear_ptes(vms)
    vma = None
    if mp.prev is not None or mp.next is not None:
        vmg = VmaMergeStruct(mm, mp.addr, mp.end, mp.flags, mp.pgoff, file,
                             prev=mp.prev, next=mp.next)
        vma = vma_merge_new_range(vmg)
    if vma is None:
        vma = mmap_new_vma(mp)
        if isinstance(vma, int):
            # The old mappings are gone already: Linux leaves a hole here.
            if mp.charged:
                vm_unacct_memory(mm.machine, mp.charged)
            if vms is not None:
                vms_complete_munmap_vmas(vms)
            return vma
    mmap_complete(mp, vma)
    return addr


def ksys_mmap_pgoff(p, addr, length, prot, flags, fd, pgoff):
    """ksys_mmap_pgoff: look up the file (EBADF), refuse MAP_HUGETLB, and map."""
    file = None
    if not flags & MAP_ANONYMOUS:
        file = p.fget(fd)
        if file is None:
            return -EBADF
        if flags & MAP_HUGETLB:
            return -EINVAL
    elif flags & MAP_HUGETLB:
        hsize = HUGE_PAGE_SIZES.get((flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK)
        if hsize is None:
            return -EINVAL
        length = (length + hsize - 1) & ~(hsize - 1) & ULONG_MAX     # ALIGN, wrapping as C does
        file = p.machine.fs.hugetlb_file(length, hsize)
        ret = vm_mmap_pgoff(p.mm, file, addr, length, prot, flags, pgoff)
        _fs.fput(file)
        return ret
    return vm_mmap_pgoff(p.mm, file, addr, length, prot, flags, pgoff)


def vm_mmap_pgoff(mm, file, addr, length, prot, flags, pgoff):
    """vm_mmap_pgoff: do_mmap, then populate what MAP_POPULATE or MAP_LOCKED asks for."""
    ret, populate = do_mmap(mm, file, addr, length, prot, flags, 0, pgoff)
    if ret >= 0 and populate:
        mm_populate(mm, ret, populate)
    return ret


def sys_mmap(p, addr, length, prot, flags, fd, offset):
    """sys_mmap (x86): the offset must be page aligned (EINVAL)."""
    if offset & (PAGE_SIZE - 1):
        return -EINVAL
    return ksys_mmap_pgoff(p, addr, length, prot, flags, fd, offset >> PAGE_SHIFT)


def sys_munmap(p, addr, length):
    """sys_munmap: __vm_munmap."""
    return do_vmi_munmap(p.mm, addr, length)


# -- brk ----------------------------------------------------------------------------
def check_data_rlimit(rlim, new, start, end_data, start_data):
    """check_data_rlimit: heap plus initialised data must stay within RLIMIT_DATA."""
    if rlim < ULONG_MAX and (new - start) + (end_data - start_data) > rlim:
        return -28          # ENOSPC; brk turns every failure into "no change"
    return 0


def check_brk_limits(mm, addr, length):
    """check_brk_limits: the range is a valid fixed mapping, and mlock limits allow it."""
    mapped = get_unmapped_area(mm, None, addr, length, 0, MAP_FIXED)
    if mapped < 0:
        return mapped
    return 0 if mlock_future_ok(mm, bool(mm.def_flags), length) else -EAGAIN


@traced(fmt={"flags": _vmf}, result=ret_name)
def do_brk_flags(mm, vma, addr, length, flags):
    """do_brk_flags: extend the heap VMA `vma` to cover [addr, addr+len), or add a new one.

    The heap is anonymous data: VM_READ|VM_WRITE, charged (VM_ACCOUNT),
    plus mm->def_flags (VM_LOCKED after mlockall(MCL_FUTURE)).  It only
    ever merges with the VMA just below it, never with one above.
    Returns 0 or -ENOMEM.
    """
    m = mm.machine
    flags |= VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT | mm.def_flags
    npages = length >> PAGE_SHIFT
    if not may_expand_vm(mm, flags, npages):
        return -ENOMEM
    if mm.map_count > m.max_map_count:
        return -ENOMEM
    if vm_enough_memory(mm, npages):
        return -ENOMEM
    merged = None
    if vma is not None and vma.vm_end == addr:
        vmg = VmaMergeStruct(mm, addr, addr + length, flags, addr >> PAGE_SHIFT, prev=vma)
        vmg.just_expand = True
        merged = vma_merge_new_range(vmg)
    if merged is None:
        new = VMA(mm, addr, addr + length, flags, addr >> PAGE_SHIFT)
        mm.insert_vma(new)
        if addr == mm.start_brk:
            mm.leave_unmerged(addr)      # the heap never looks below start_brk
        note(mm, "do_brk_flags: new heap VMA %r", new)
    mm.total_vm += npages
    mm.data_vm += npages
    if flags & VM_LOCKED:
        mm.locked_vm += npages
    return 0


@traced(name="__do_sys_brk", result=ret_name)
def sys_brk(mm, brk):
    """brk: move the program break to `brk`; returns the new break, or the old one on failure.

    brk below start_brk, past RLIMIT_DATA, or growing to within a page of
    the next mapping (within stack_guard_gap of a stack) fails quietly.
    The break need not be page aligned: mm->brk keeps the exact value and
    the heap VMA ends at the next page boundary.  Shrinking unmaps.
    """
    origbrk = mm.brk
    min_brk = mm.start_brk
    if brk < min_brk:
        note(mm, "brk: %#x is below start_brk", brk)
        return origbrk
    if check_data_rlimit(rlimit(mm, RLIMIT_DATA), brk, mm.start_brk, mm.end_data, mm.start_data):
        note(mm, "brk: RLIMIT_DATA")
        return origbrk
    newbrk = page_align(brk)
    oldbrk = page_align(mm.brk)
    if oldbrk == newbrk:
        mm.brk = brk
        return brk
    if brk <= mm.brk:
        # Always allow shrinking: unmap [newbrk, oldbrk), whatever lies there.
        brkvma = mm.find_vma_intersection(newbrk, oldbrk)
        if brkvma is None:
            note(mm, "brk: nothing mapped between the new and the old break")
            return origbrk
        mm.brk = brk
        if do_vmi_align_munmap(mm, brkvma, newbrk, oldbrk):
            mm.brk = origbrk
            return origbrk
        return brk
    if check_brk_limits(mm, oldbrk, newbrk - oldbrk):
        return origbrk
    gap = mm.machine.stack_guard_gap
    nxt = mm.find_vma_intersection(oldbrk, newbrk + PAGE_SIZE + gap)
    if nxt is not None and newbrk + PAGE_SIZE > vm_start_gap(nxt):
        note(mm, "brk: %#x would come within a page of %r", newbrk, nxt)
        return origbrk
    brkvma = vma_prev_limit(mm, oldbrk, mm.start_brk)
    if do_brk_flags(mm, brkvma, oldbrk, newbrk - oldbrk, 0) < 0:
        return origbrk
    mm.brk = brk
    if mm.def_flags & VM_LOCKED:
        mm_populate(mm, oldbrk, newbrk - oldbrk)
    return brk


def vma_prev_limit(mm, addr, low):
    """vma_prev_limit: the last VMA below addr, if it reaches above `low`; else None."""
    _, prev = mm.find_vma_prev(addr)
    if prev is not None and prev.vm_end > low:
        return prev
    return None


# -- mprotect (mm/mprotect.c) ----------------------------------------------------------
@traced(fmt={"newflags": _vmf}, result=lambda r: ret_name(r[0]))
def mprotect_fixup(mm, vma, prev, start, end, newflags):
    """mprotect_fixup: give [start, end) of vma the flags newflags; returns (0 or -errno, new prev).

    Making a private mapping writable charges it (VM_ACCOUNT); making an
    anonymous one that was never written read-only gives the charge back.
    The range is merged with a neighbour or split out (vma_modify).
    """
    m = mm.machine
    oldflags = vma.vm_flags
    nrpages = (end - start) >> PAGE_SHIFT
    charged = 0
    if newflags == oldflags:
        return 0, vma
    if newflags & VM_WRITE:
        if not may_expand_vm(mm, newflags, nrpages) and may_expand_vm(mm, oldflags, nrpages):
            return -ENOMEM, prev
        if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE):
            charged = nrpages
            if vm_enough_memory(mm, charged):
                return -ENOMEM, prev
            newflags |= VM_ACCOUNT
    elif oldflags & VM_ACCOUNT and vma.vm_ops is None and vma.anon_vma is None:
        newflags &= ~VM_ACCOUNT
    res = vma_modify_flags(mm, prev, vma, start, end, newflags)
    if isinstance(res, int):
        vm_unacct_memory(m, charged)
        return res, prev
    vma = res
    vma.vm_flags = newflags
    vma_set_page_prot(vma)
    change_protection(vma, start, end)
    if oldflags & VM_ACCOUNT and not newflags & VM_ACCOUNT:
        vm_unacct_memory(m, nrpages)
    if oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED) == VM_LOCKED and newflags & VM_WRITE:
        _vma.populate_vma_page_range(vma, start, end)       # break COW now, not on a later write
    vm_stat_account(mm, oldflags, -nrpages)
    vm_stat_account(mm, newflags, nrpages)
    return 0, vma


@traced(name="do_mprotect_pkey", fmt={"prot": prot_name}, result=ret_name)
def sys_mprotect(mm, start, length, prot):
    """do_mprotect_pkey: change the protection of [start, start+len).

    Returns 0 or -errno: EINVAL for an unaligned start or unknown prot
    bits; ENOMEM if the range is not fully mapped; EACCES if the new
    protection exceeds what the mapping may have (VM_MAY*).  A hole in the
    range stops the walk: the VMAs before it have changed, the rest not.
    """
    grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
    prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP)
    if grows == PROT_GROWSDOWN | PROT_GROWSUP:
        return -EINVAL
    if start & (PAGE_SIZE - 1):
        return -EINVAL
    if not length:
        return 0
    length = page_align(length)
    end = start + length
    if end <= start or end > ULONG_MAX:
        return -ENOMEM
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM):
        return -EINVAL
    reqprot = prot
    vma = mm.find_vma_intersection(start, end)
    if vma is None:
        return -ENOMEM
    if grows & PROT_GROWSDOWN:
        start = vma.vm_start
        if not vma.vm_flags & VM_GROWSDOWN:
            return -EINVAL
    else:
        if vma.vm_start > start:
            return -ENOMEM
        if grows & PROT_GROWSUP:
            return -EINVAL                  # no VM_GROWSUP on x86
    prev = mm.vma_prev(vma)
    if start > vma.vm_start:
        prev = vma
    nstart = start
    tmp = vma.vm_start
    error = 0
    while vma is not None and vma.vm_start < end:
        if vma.vm_start != tmp:
            note(mm, "mprotect: hole at %#x", tmp)
            error = -ENOMEM
            break
        newflags = calc_vm_prot_bits(prot) | (vma.vm_flags & ~VM_ACCESS_FLAGS)
        if (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS:
            note(mm, "mprotect: %r may not become %s", vma, _prot_name(prot))
            error = -EACCES
            break
        tmp = min(vma.vm_end, end)
        error, prev = mprotect_fixup(mm, vma, prev, nstart, tmp, newflags)
        if error:
            break
        tmp = prev.vm_end
        nstart = tmp
        prot = reqprot
        vma = mm.find_vma(tmp)
    if not error and tmp < end:
        error = -ENOMEM
    return error


def _prot_name(prot):
    return "|".join(n for b, n in ((PROT_READ, "PROT_READ"), (PROT_WRITE, "PROT_WRITE"),
                                   (PROT_EXEC, "PROT_EXEC")) if prot & b) or "PROT_NONE"


# -- mlock (mm/mlock.c) ----------------------------------------------------------------
def vma_supports_mlock(vma):
    """vma_supports_mlock: not special, hugetlb or droppable."""
    return not vma.vm_flags & (VM_SPECIAL | VM_HUGETLB | VM_DROPPABLE)


@traced(fmt={"newflags": _vmf}, result=lambda r: ret_name(r[0]))
def mlock_fixup(mm, vma, prev, start, end, newflags):
    """mlock_fixup: set or clear VM_LOCKED on [start, end) of vma; returns (0 or -errno, new prev)."""
    oldflags = vma.vm_flags
    if newflags == oldflags or not vma_supports_mlock(vma):
        return 0, vma
    res = vma_modify_flags(mm, prev, vma, start, end, newflags)
    if isinstance(res, int):
        return res, vma
    vma = res
    nr_pages = (end - start) >> PAGE_SHIFT
    if not newflags & VM_LOCKED:
        nr_pages = -nr_pages
    elif oldflags & VM_LOCKED:
        nr_pages = 0
    mm.locked_vm += nr_pages
    vma.vm_flags = newflags
    return 0, vma


def apply_vma_lock_flags(mm, start, length, flags):
    """apply_vma_lock_flags: mlock_fixup over every VMA of the range; a hole gives ENOMEM."""
    end = start + length
    if end > ULONG_MAX:
        return -EINVAL
    if end == start:
        return 0
    vma = mm.vma_lookup(start)
    if vma is None:
        return -ENOMEM
    prev = mm.vma_prev(vma)
    if start > vma.vm_start:
        prev = vma
    nstart = start
    tmp = vma.vm_start
    while vma is not None and vma.vm_start < end:
        if vma.vm_start != tmp:
            return -ENOMEM
        newflags = (vma.vm_flags & ~VM_LOCKED_MASK) | flags
        tmp = min(vma.vm_end, end)
        err, prev = mlock_fixup(mm, vma, prev, nstart, tmp, newflags)
        if err:
            return err
        tmp = prev.vm_end
        nstart = tmp
        vma = mm.find_vma(tmp)
    return -ENOMEM if tmp < end else 0


def count_mm_mlocked_page_nr(mm, start, length):
    """count_mm_mlocked_page_nr: pages of [start, start+len) already locked."""
    end = start + length
    count = 0
    for vma in mm.vmas_in(start, end):
        if vma.vm_flags & VM_LOCKED:
            count += (min(end, vma.vm_end) - max(start, vma.vm_start)) >> PAGE_SHIFT
    return count


@traced(fmt={"flags": _vmf}, result=ret_name)
def do_mlock(mm, start, length, flags):
    """do_mlock: lock [start, start+len) (rounded out to pages); returns 0 or -errno.

    EPERM without RLIMIT_MEMLOCK or CAP_IPC_LOCK; ENOMEM past the limit or
    over a hole; then the pages are faulted in (mm_populate).
    """
    if not can_do_mlock(mm):
        return -EPERM
    length = page_align(length + (start & (PAGE_SIZE - 1)))
    start &= PAGE_MASK
    lock_limit = rlimit(mm, RLIMIT_MEMLOCK) >> PAGE_SHIFT
    locked = (length >> PAGE_SHIFT) + mm.locked_vm
    if locked > lock_limit and not capable(mm, "CAP_IPC_LOCK"):
        locked -= count_mm_mlocked_page_nr(mm, start, length)
    if locked > lock_limit and not capable(mm, "CAP_IPC_LOCK"):
        note(mm, "mlock: %d pages would pass RLIMIT_MEMLOCK", locked)
        return -ENOMEM
    err = apply_vma_lock_flags(mm, start, length, flags)
    if err:
        return err
    err = mm_populate(mm, start, length, ignore_errors=False)
    if err == -14:          # __mlock_posix_error_return: EFAULT (PROT_NONE) reads as ENOMEM
        return -ENOMEM
    if err == -ENOMEM:
        return -EAGAIN
    return err


def sys_mlock2(mm, start, length, flags):
    """mlock2: mlock, with MLOCK_ONFAULT to lock pages only as they fault in."""
    if flags & ~MLOCK_ONFAULT:
        return -EINVAL
    vm_flags = VM_LOCKED | (VM_LOCKONFAULT if flags & MLOCK_ONFAULT else 0)
    return do_mlock(mm, start, length, vm_flags)


def sys_munlock(mm, start, length):
    """munlock: clear VM_LOCKED over the range."""
    length = page_align(length + (start & (PAGE_SIZE - 1)))
    start &= PAGE_MASK
    return apply_vma_lock_flags(mm, start, length, 0)


def apply_mlockall_flags(mm, flags):
    """apply_mlockall_flags: set def_flags for MCL_FUTURE; lock (or unlock) every VMA for MCL_CURRENT."""
    mm.def_flags &= ~VM_LOCKED_MASK
    if flags & MCL_FUTURE:
        mm.def_flags |= VM_LOCKED
        if flags & MCL_ONFAULT:
            mm.def_flags |= VM_LOCKONFAULT
        if not flags & MCL_CURRENT:
            return 0
    to_add = 0
    if flags & MCL_CURRENT:
        to_add = VM_LOCKED | (VM_LOCKONFAULT if flags & MCL_ONFAULT else 0)
    prev = None
    for vma in mm.vma_list():
        if not mm.in_tree(vma):
            continue                        # merged away by an earlier fixup
        newflags = (vma.vm_flags & ~VM_LOCKED_MASK) | to_add
        err, new_prev = mlock_fixup(mm, vma, prev, vma.vm_start, vma.vm_end, newflags)
        prev = vma if err else new_prev
    return 0


@traced(name="mlockall", result=ret_name)
def sys_mlockall(mm, flags):
    """mlockall: lock every current mapping (MCL_CURRENT) and/or every future one (MCL_FUTURE)."""
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
        return -EINVAL
    if not can_do_mlock(mm):
        return -EPERM
    lock_limit = rlimit(mm, RLIMIT_MEMLOCK) >> PAGE_SHIFT
    if flags & MCL_CURRENT and mm.total_vm > lock_limit and not capable(mm, "CAP_IPC_LOCK"):
        return -ENOMEM
    apply_mlockall_flags(mm, flags)
    if flags & MCL_CURRENT:
        mm_populate(mm, 0, TASK_SIZE)
    return 0


def sys_munlockall(mm):
    """munlockall: clear MCL_FUTURE and unlock every VMA."""
    return apply_mlockall_flags(mm, 0)


# -- madvise (mm/madvise.c) ---------------------------------------------------------------
def madvise_flags(vma, advice):
    """The new vm_flags `advice` asks for on vma, or -EINVAL where it may not apply."""
    clear, add = MADV_FLAG_ADVICE[advice]
    f = vma.vm_flags
    if advice == _uapi.MADV_DONTFORK and f & VM_IO:
        return -EINVAL
    if advice == _uapi.MADV_DOFORK and f & VM_SPECIAL:
        return -EINVAL
    if advice == _uapi.MADV_WIPEONFORK and (vma.vm_file is not None or f & VM_SHARED):
        return -EINVAL
    if advice == _uapi.MADV_DODUMP and f & VM_SPECIAL and not f & VM_HUGETLB:
        return -EINVAL
    if advice == _uapi.MADV_MERGEABLE and f & (VM_MERGEABLE | VM_SHARED | VM_MAYSHARE | VM_PFNMAP
                                               | VM_IO | VM_DONTEXPAND | VM_HUGETLB | VM_MIXEDMAP):
        return f                            # ksm_madvise: not for these; no change, no error
    return (f & ~clear) | add


@traced(result=lambda r: ret_name(r[0]))
def madvise_vma_behavior(mm, vma, prev, start, end, advice):
    """madvise_vma_behavior: apply advice to [start, end) of vma; returns (0 or -errno, new prev)."""
    if advice in MADV_FLAG_ADVICE:
        new_flags = madvise_flags(vma, advice)
        if new_flags < 0:
            return new_flags, prev
        if new_flags == vma.vm_flags:
            return 0, vma
        res = vma_modify_flags(mm, prev, vma, start, end, new_flags)
        if isinstance(res, int):
            return res, prev
        res.vm_flags = new_flags
        return 0, res
    if advice in (_uapi.MADV_DONTNEED, _uapi.MADV_DONTNEED_LOCKED, _uapi.MADV_FREE):
        locked_ok = advice == _uapi.MADV_DONTNEED_LOCKED
        if vma.vm_flags & (VM_PFNMAP | VM_HUGETLB) or (vma.vm_flags & VM_LOCKED and not locked_ok):
            return -EINVAL, prev
        if advice == _uapi.MADV_FREE and vma.vm_ops is not None:
            return -EINVAL, prev           # MADV_FREE is for private anonymous memory
        if advice == _uapi.MADV_FREE:
            return madvise_free(mm, vma, start, end), vma
        _vma.unmap_region(mm, [vma], start, end, start, end)
        note(mm, "madvise: pages of [%#x, %#x) dropped", start, end)
    elif advice == _uapi.MADV_WILLNEED:
        return madvise_willneed(mm, vma, start, end), vma
    elif advice == _uapi.MADV_REMOVE:
        if vma.vm_flags & VM_LOCKED or vma.vm_file is None:
            return -EINVAL, prev
        if vma.vm_flags & (VM_SHARED | VM_MAYWRITE) != VM_SHARED | VM_MAYWRITE:
            return -EACCES, prev            # punching a hole needs a shared writable mapping
        _vma.unmap_region(mm, [vma], start, end, start, end)
    elif advice in (_uapi.MADV_COLD, _uapi.MADV_PAGEOUT):
        if vma.vm_flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB):     # can_madv_lru_vma
            return -EINVAL, prev
        madvise_cold_or_pageout(mm, vma, start, end, advice == _uapi.MADV_PAGEOUT)
    return 0, vma


def madvise_willneed(mm, vma, start, end):
    """madvise_willneed: for a file mapping, vfs_fadvise(POSIX_FADV_WILLNEED) of the range's file
    offsets (readahead of those pages, capped as force_page_cache_ra caps it); anonymous memory has
    nothing to read in without swap.  Returns 0."""
    f = vma.vm_file
    if f is None:
        return 0
    from . import fadvise
    offset = ((start - vma.vm_start) >> PAGE_SHIFT << PAGE_SHIFT) + (vma.vm_pgoff << PAGE_SHIFT)
    note(mm, "madvise_willneed: %s bytes %d..%d", f.file.path, offset, offset + end - start - 1)
    fadvise.vfs_fadvise(f, offset, end - start, _uapi.POSIX_FADV_WILLNEED)
    return 0


def madvise_free(mm, vma, start, end):
    """madvise_free_single_vma: the range's exclusive anonymous pages may be dropped by reclaim
    unless written again first.  Returns 0."""
    if mm.pgd is None:
        return 0
    from . import memory
    n = memory.madvise_free_pte_range(mm, start, end)
    note(mm, "madvise_free: %d page(s) of [%#x, %#x) lazily freeable", n, start, end)
    return 0


def madvise_cold_or_pageout(mm, vma, start, end, pageout):
    """madvise_cold_or_pageout_pte_range: for each page-cache page mapped here by this mm alone:
    clear its accessed bit and deactivate it (MADV_COLD), or reclaim it now (MADV_PAGEOUT: unmapped,
    then freed if clean or written back if dirty).  NOTE: anonymous pages have no swap to go to and
    no LRU list in mmlab; they are left alone, as Linux without swap keeps them."""
    if mm.pgd is None:
        return
    from . import memory, vmscan, filemap
    m = mm.machine
    for a in range(start, end, PAGE_SIZE):
        ptep = memory.lookup_ptep(mm, a)
        if ptep is None:
            continue
        pte = memory.pgtable.ptep_get(mm, ptep)
        if not pte & memory._PAGE_PRESENT or pte & memory._PAGE_SPECIAL:
            continue
        pfn = memory.pte_pfn(pte)
        owner = m.page_owner_file.get(pfn)
        if owner is None or filemap.is_shmem(owner[0]) or m.mem_map.mapcount_[pfn] != 1:
            continue
        memory.pgtable.set_entry(mm, ptep, memory.pte_mkold(pte))
        memory.flush_tlb_page(mm, a)
        if not pageout:
            vmscan.folio_deactivate(m, pfn)
            m.mem_map.flags_[pfn] &= ~memory.PG_referenced
            continue
        vmscan.reclaim_page(m, pfn)


def check_vma_flags(vma, write):
    """check_vma_flags (mm/gup.c): may get_user_pages fault this VMA in, for reading or writing?"""
    f = vma.vm_flags
    if f & (VM_IO | VM_PFNMAP):
        return False
    if write:
        return bool(f & VM_WRITE)
    return bool(f & VM_READ)


def madvise_populate(mm, start, end, write):
    """madvise_populate: fault in [start, end) VMA by VMA, as reads or writes.

    Stops with ENOMEM at the first unmapped address and EINVAL at the first
    VMA that does not allow the access (PROT_NONE, read-only for
    MADV_POPULATE_WRITE, I/O mappings); what came before stays populated.
    """
    while start < end:
        vma = mm.vma_lookup(start)
        if vma is None:
            return -ENOMEM
        if not check_vma_flags(vma, write):
            note(mm, "madvise_populate: %r does not allow %s", vma, "writes" if write else "reads")
            return -EINVAL
        stop = min(end, vma.vm_end)
        err = _vma._hook("gup", "faultin_page_range")(mm, start, stop, write)
        if err < 0:
            return err
        start = stop
    return 0


@traced(name="do_madvise", result=ret_name)
def sys_madvise(mm, start, length, advice):
    """do_madvise: apply advice to every mapped part of [start, start+len).

    EINVAL for unknown advice or an unaligned start; advice that changes
    VMA flags (DONTFORK, HUGEPAGE, RANDOM, ...) merges and splits VMAs like
    mprotect.  Unlike mprotect, holes are skipped and reported at the end
    with ENOMEM.  NOTE: advice acting on pages (DONTNEED, FREE, WILLNEED,
    COLD, PAGEOUT, POPULATE_*) reaches page tables through hooks that are
    no-ops until mm/memory.py exists.
    """
    if advice not in MADV_VALID:
        return -EINVAL
    if start & (PAGE_SIZE - 1):
        return -EINVAL
    length_aligned = page_align(length)
    if length and not length_aligned:
        return -EINVAL
    end = start + length_aligned
    if end > ULONG_MAX:
        return -EINVAL
    if end == start:
        return 0
    if advice in (_uapi.MADV_HWPOISON, _uapi.MADV_SOFT_OFFLINE):
        if not capable(mm, "CAP_SYS_ADMIN"):
            return -EPERM
        return 0            # madvise_inject_error: NOTE: no memory failure is modelled
    if advice in (_uapi.MADV_POPULATE_READ, _uapi.MADV_POPULATE_WRITE):
        return madvise_populate(mm, start, end, advice == _uapi.MADV_POPULATE_WRITE)
    unmapped_error = 0
    vma, prev = mm.find_vma_prev(start)
    if vma is not None and start > vma.vm_start:
        prev = vma
    while True:
        if vma is None:
            return -ENOMEM
        if start < vma.vm_start:
            unmapped_error = -ENOMEM
            start = vma.vm_start
            if start >= end:
                break
        tmp = min(vma.vm_end, end)
        err, prev = madvise_vma_behavior(mm, vma, prev, start, tmp, advice)
        if err:
            return err
        start = tmp
        if prev is not None and start < prev.vm_end:
            start = prev.vm_end
        if start >= end:
            break
        vma = mm.find_vma(prev.vm_end if prev is not None else start)
    return unmapped_error


# -- msync (mm/msync.c) ---------------------------------------------------------------------
@traced(name="msync", result=ret_name)
def sys_msync(mm, start, length, flags):
    """msync: write back shared file pages of the range (MS_SYNC); ENOMEM for unmapped parts.

    MS_SYNC writes back each shared file mapping's part of the range and
    waits (filemap.vfs_fsync_range); MS_ASYNC starts nothing (Linux 2.6.19
    on); MS_INVALIDATE only checks for mlocked mappings.
    """
    if flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC):
        return -EINVAL
    if start & (PAGE_SIZE - 1):
        return -EINVAL
    if flags & MS_ASYNC and flags & MS_SYNC:
        return -EINVAL
    length = page_align(length)
    end = start + length
    if end > ULONG_MAX:
        return -ENOMEM
    if end == start:
        return 0
    unmapped_error = 0
    vma = mm.find_vma(start)
    while True:
        if vma is None:
            return -ENOMEM
        if start < vma.vm_start:
            if flags == MS_ASYNC:
                return -ENOMEM
            start = vma.vm_start
            if start >= end:
                return -ENOMEM
            unmapped_error = -ENOMEM
        if flags & MS_INVALIDATE and vma.vm_flags & VM_LOCKED:
            return -EBUSY
        # The file bytes this part of the VMA maps (fstart..fend, inclusive).
        fstart = (start - vma.vm_start) + (vma.vm_pgoff << PAGE_SHIFT)
        fend = fstart + (min(end, vma.vm_end) - start) - 1
        start = vma.vm_end
        if flags & MS_SYNC and vma.vm_file is not None and vma.vm_flags & VM_SHARED:
            # MS_SYNC: vfs_fsync_range writes the range back and waits; MS_ASYNC does nothing
            # since Linux 2.6.19 (dirty pages are tracked and the flusher writes them).
            writeback = _vma._hook("filemap", "vfs_fsync_range")
            if writeback is not None:
                writeback(vma.vm_file, fstart, fend)
        if start >= end:
            return unmapped_error
        vma = mm.find_vma(start)


__all__ = ["do_mmap", "mmap_region", "get_unmapped_area", "sys_mmap", "sys_munmap", "sys_brk",
           "do_brk_flags", "sys_mprotect", "mprotect_fixup", "do_mlock", "sys_mlockall",
           "sys_madvise", "sys_msync", "mmap_init", "check_address_spaces", "MM", "GiB"]


# -- mremap (mm/mremap.c) ---------------------------------------------------------------------
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = _uapi.MREMAP_MAYMOVE, _uapi.MREMAP_FIXED, \
    _uapi.MREMAP_DONTUNMAP


class VmaRemap:
    """struct vma_remap_struct (vrm): one mremap call's ranges and what it has done so far."""

    charged = 0
    locked = False
    vma = None

    def __init__(self, mm, addr, old_len, new_len, flags, new_addr):
        self.mm, self.addr, self.old_len, self.new_len = mm, addr, old_len, new_len
        self.flags, self.new_addr = flags, new_addr
        self.delta = abs(old_len - new_len)

    @property
    def machine(self):
        return self.mm.machine

    def implies_new_addr(self):
        return bool(self.flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))


def check_mremap_params(vrm):
    """check_mremap_params: flags, alignment, and what MREMAP_FIXED/DONTUNMAP require."""
    if vrm.flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP):
        return -EINVAL
    if vrm.addr & (PAGE_SIZE - 1):
        return -EINVAL
    if not page_align(vrm.new_len):
        return -EINVAL
    if not vrm.implies_new_addr():
        return 0
    if vrm.new_addr & (PAGE_SIZE - 1):
        return -EINVAL
    if not vrm.flags & MREMAP_MAYMOVE:
        return -EINVAL                  # a fixed address implies a move
    if vrm.flags & MREMAP_DONTUNMAP and vrm.old_len != vrm.new_len:
        return -EINVAL
    new_len, old_len = page_align(vrm.new_len), page_align(vrm.old_len)
    if new_len > TASK_SIZE or vrm.new_addr > TASK_SIZE - new_len:
        return -EINVAL
    if vrm.addr + old_len > vrm.new_addr and vrm.new_addr + new_len > vrm.addr:
        return -EINVAL                  # old and new ranges overlap
    # Both old and new ranges may be split in three: refuse early rather than half-way.
    if vrm.mm.map_count + 2 >= vrm.mm.machine.max_map_count - 3:
        return -ENOMEM
    return 0


def check_prep_vma(vrm):
    """check_prep_vma: the source VMA exists (EFAULT), and may be grown or moved as asked.

    Hugetlb lengths round up to huge pages and may not grow (EINVAL); a
    range must not run past its VMA's end (EFAULT); a private mapping cannot
    be "duplicated" with old_len 0 (EINVAL); special mappings cannot grow
    (EFAULT); growth must fit RLIMIT_MEMLOCK (EAGAIN) and RLIMIT_AS/DATA (ENOMEM).
    """
    mm, vma = vrm.mm, vrm.vma
    if vma is None:
        return -14                      # EFAULT
    if vma.vm_flags & VM_HUGETLB:
        hsize = vma.vm_ops.split_align
        vrm.old_len = (vrm.old_len + hsize - 1) & ~(hsize - 1)
        vrm.new_len = (vrm.new_len + hsize - 1) & ~(hsize - 1)
        if vrm.addr & (hsize - 1) or vrm.new_addr & (hsize - 1) or vrm.new_len > vrm.old_len:
            return -EINVAL
    vrm.delta = abs(vrm.old_len - vrm.new_len)
    if not vrm.implies_new_addr():
        vrm.new_addr = vrm.addr
    if vrm.new_len <= vrm.old_len and not vrm.implies_new_addr():
        return 0                        # a shrink or nothing: no new mapping to check
    if not vrm.old_len and not vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
        return -EINVAL                  # "duplicating" a private mapping makes no sense
    if vrm.flags & MREMAP_DONTUNMAP and vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        return -EINVAL
    if vrm.old_len > vma.vm_end - vrm.addr:
        return -14                      # EFAULT: past the VMA's end
    if vrm.new_len <= vrm.old_len:
        return 0
    pgoff = vma.vm_pgoff + ((vrm.addr - vma.vm_start) >> PAGE_SHIFT)
    if pgoff + (vrm.new_len >> PAGE_SHIFT) > ULONG_MAX:
        return -EINVAL
    if vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        return -14
    if not mlock_future_ok(mm, vma.vm_flags & VM_LOCKED, vrm.delta):
        return -EAGAIN
    if not may_expand_vm(mm, vma.vm_flags, vrm.delta >> PAGE_SHIFT):
        return -ENOMEM
    return 0


def vrm_charge(vrm):
    """vrm_charge: charge the growth (or, for MREMAP_DONTUNMAP, the whole new copy)."""
    if not vrm.vma.vm_flags & VM_ACCOUNT:
        return True
    charged = (vrm.new_len if vrm.flags & MREMAP_DONTUNMAP else vrm.delta) >> PAGE_SHIFT
    if vm_enough_memory(vrm.mm, charged):
        return False
    vrm.charged = charged
    return True


def vrm_stat_account(vrm, nbytes):
    """vrm_stat_account: count the new pages in total_vm and its class, and locked_vm."""
    vma = vrm.vma
    vm_stat_account(vrm.mm, vma.vm_flags, nbytes >> PAGE_SHIFT)
    if vma.vm_flags & VM_LOCKED:
        vrm.mm.locked_vm += nbytes >> PAGE_SHIFT
        vrm.locked = True


def vma_expandable(mm, vma, delta):
    """vma_expandable: nothing mapped in the delta bytes after vma, and they fit below TASK_SIZE."""
    end = vma.vm_end + delta
    if mm.find_vma_intersection(vma.vm_end, end):
        return False
    return get_unmapped_area(mm, None, vma.vm_start, end - vma.vm_start, 0, MAP_FIXED) >= 0


def vma_merge_extend(mm, vma, delta):
    """vma_merge_extend: grow vma by delta bytes, as a new range merged onto its end (and maybe next)."""
    vmg = VmaMergeStruct(mm, vma.vm_end, vma.vm_end + delta, vma.vm_flags,
                         vma.vm_pgoff + vma.pages, vma.vm_file, prev=vma, next=mm.vma_next(vma),
                         anon_vma=vma.anon_vma, anon_name=vma.anon_name)
    return vma_merge_new_range(vmg)


def vrm_set_new_addr(vrm):
    """vrm_set_new_addr: where the moved mapping goes, as mmap would choose it."""
    vma = vrm.vma
    pgoff = vma.vm_pgoff + ((vrm.addr - vma.vm_start) >> PAGE_SHIFT)
    map_flags = (MAP_FIXED if vrm.flags & MREMAP_FIXED else 0) | \
        (MAP_SHARED if vma.vm_flags & VM_MAYSHARE else 0)
    hint = vrm.new_addr if vrm.implies_new_addr() else 0
    res = get_unmapped_area(vrm.mm, vma.vm_file, hint, vrm.new_len, pgoff, map_flags)
    if res < 0:
        return res
    vrm.new_addr = res
    return 0


def copy_vma(mm, vma, addr, length, pgoff):
    """copy_vma: a VMA like vma at [addr, addr+len), merged with a neighbour if one fits.

    An anonymous VMA never written to takes the pgoff of its new address,
    so it can merge there.  Returns (new VMA, source VMA), the source being
    replaced when the copy merged into it.
    """
    if vma.vm_ops is None and vma.anon_vma is None:
        pgoff = addr >> PAGE_SHIFT
    nxt, prev = mm.find_vma_prev(addr)
    vmg = VmaMergeStruct(mm, addr, addr + length, vma.vm_flags, pgoff, vma.vm_file, prev=prev,
                         next=nxt, anon_vma=vma.anon_vma, anon_name=vma.anon_name)
    new = vma_merge_new_range(vmg)
    if new is not None:
        if new.vm_start <= vma.vm_start < new.vm_end:
            vma = new                       # the copy merged with the source itself
        return new, vma
    new = vma.dup()
    new.vm_start, new.vm_end, new.vm_pgoff = addr, addr + length, pgoff
    new.anon_vma = vma.anon_vma
    _vma.anon_vma_clone(new, vma)
    if new.vm_file is not None:
        _fs.get_file(new.vm_file)
    mm.insert_vma(new)
    return new, vma


@traced(result=ret_name)
def move_vma(vrm):
    """move_vma: copy the VMA to new_addr (page tables move with it), then unmap the source.

    MREMAP_DONTUNMAP leaves the source mapped, emptied, without VM_LOCKED
    or VM_ACCOUNT.  Returns the new address or -errno.
    """
    mm, vma = vrm.mm, vrm.vma
    if mm.map_count >= mm.machine.max_map_count - 3:
        return -ENOMEM
    ops = vma.vm_ops
    if ops is not None and ops.split_align:
        for b in (vrm.addr, vrm.addr + vrm.old_len):
            if b not in (vma.vm_start, vma.vm_end) and b & (ops.split_align - 1):
                return -EINVAL
    if not vrm_charge(vrm):
        return -ENOMEM
    new_pgoff = vma.vm_pgoff + ((vrm.addr - vma.vm_start) >> PAGE_SHIFT)
    new, vma = copy_vma(mm, vma, vrm.new_addr, vrm.new_len, new_pgoff)
    vrm.vma = vma
    fn = _vma._hook("memory", "move_page_tables")
    if fn is not None and mm.pgd is not None:
        fn(vma, vrm.addr, new, vrm.new_addr, vrm.old_len)
    note(mm, "mremap: moved [%#x, +%#x) to %#x", vrm.addr, vrm.old_len, vrm.new_addr)
    vrm_stat_account(vrm, vrm.new_len)
    if vrm.flags & MREMAP_DONTUNMAP:
        dontunmap_complete(vrm, new)
    else:
        unmap_source_vma(vrm)
    return vrm.new_addr


def dontunmap_complete(vrm, new):
    """dontunmap_complete: the source stays mapped, emptied, and no longer locked.

    NOTE: as in Linux, locked_vm is not lowered for the source (it counted
    the new copy too); the model keeps those pages in mm.locked_vm_orphaned
    so its counter check still adds up.
    """
    vma, mm = vrm.vma, vrm.mm
    if vma.vm_flags & VM_LOCKED:
        mm.locked_vm_orphaned += vma.pages
    vma.vm_flags &= ~VM_LOCKED_MASK
    if new is not vma and vrm.addr == vma.vm_start and vrm.addr + vrm.old_len == vma.vm_end:
        _vma.unlink_anon_vmas(vma)
        vma.anon_vma = None


def unmap_source_vma(vrm):
    """unmap_source_vma: unmap the old range without giving back its charge (the move kept it)."""
    mm, vma = vrm.mm, vrm.vma
    addr, length = vrm.addr, vrm.old_len
    accountable = bool(vma.vm_flags & VM_ACCOUNT) and not vrm.flags & MREMAP_DONTUNMAP
    if accountable:
        vma.vm_flags &= ~VM_ACCOUNT
        vm_start, vm_end = vma.vm_start, vma.vm_end
    err = do_vmi_munmap(mm, addr, length)
    if err:
        vm_acct_memory(mm.machine, length >> PAGE_SHIFT)
        return
    if accountable:
        if vm_start < addr:
            mm.vma_lookup(addr - 1).vm_flags |= VM_ACCOUNT
        if vm_end > addr + length:
            mm.vma_lookup(addr + length).vm_flags |= VM_ACCOUNT


def shrink_vma(vrm):
    """shrink_vma: unmap the tail beyond the new length."""
    return do_vmi_munmap(vrm.mm, vrm.addr + vrm.new_len, vrm.delta)


def expand_vma(vrm):
    """expand_vma: grow in place if the range ends the VMA and the space after it is free,
    else move (with MREMAP_MAYMOVE) or fail with ENOMEM."""
    vma = vrm.vma
    if vma.vm_end - vrm.addr == vrm.old_len and vma_expandable(vrm.mm, vma, vrm.delta):
        if not vrm_charge(vrm):
            return -ENOMEM
        merged = vma_merge_extend(vrm.mm, vma, vrm.delta)
        if merged is None:
            vm_unacct_memory(vrm.machine, vrm.charged)
            return -ENOMEM
        vrm.vma = merged
        vrm_stat_account(vrm, vrm.delta)
        note(vrm.mm, "mremap: grew in place")
        return vrm.addr
    if not vrm.flags & MREMAP_MAYMOVE:
        note(vrm.mm, "mremap: no room to grow in place, and MREMAP_MAYMOVE not given")
        return -ENOMEM
    err = vrm_set_new_addr(vrm)
    if err:
        return err
    return move_vma(vrm)


def mremap_at(vrm):
    """mremap_at: resize where it is: nothing, shrink (unmap the tail), or expand."""
    if vrm.delta == 0:
        return vrm.addr
    if vrm.old_len > vrm.new_len:
        return shrink_vma(vrm) or vrm.addr
    return expand_vma(vrm)


def mremap_to(vrm):
    """mremap_to: move (and resize) to new_addr (MREMAP_FIXED) or a new place (MREMAP_DONTUNMAP)."""
    mm = vrm.mm
    if vrm.new_len > TASK_SIZE or vrm.new_addr > TASK_SIZE - vrm.new_len:
        return -EINVAL
    if vrm.addr + vrm.old_len > vrm.new_addr and vrm.new_addr + vrm.new_len > vrm.addr:
        return -EINVAL                  # old and new ranges overlap
    if vrm.flags & MREMAP_FIXED:
        err = do_vmi_munmap(mm, vrm.new_addr, vrm.new_len)
        if err:
            return err
        vrm.vma = mm.vma_lookup(vrm.addr)
    if vrm.old_len > vrm.new_len:
        err = shrink_vma(vrm)
        if err:
            return err
        vrm.vma = mm.vma_lookup(vrm.addr)
        vrm.old_len = vrm.new_len
        vrm.delta = 0
    if vrm.flags & MREMAP_DONTUNMAP and not may_expand_vm(mm, vrm.vma.vm_flags, vrm.old_len >> PAGE_SHIFT):
        return -ENOMEM
    err = vrm_set_new_addr(vrm)
    if err:
        return err
    return move_vma(vrm)


def vma_multi_allowed(vma):
    """vma_multi_allowed: may this VMA move as one of several?  Not one armed for
    userfaultfd, nor a driver's file whose get_unmapped_area might not honour a fixed
    address.  NOTE: the model has neither (ext4 files move, as on the reference machine)."""
    return True


def remap_move(vrm):
    """remap_move: MREMAP_FIXED without resizing moves every VMA of the range, keeping
    the gaps between them; a gap at the start is EFAULT.  Returns the new address."""
    mm = vrm.mm
    start, end = vrm.addr, vrm.addr + vrm.old_len
    target = vrm.new_addr
    res, seen, last_end = -14, False, 0
    while True:
        vma = mm.find_vma_intersection(start if not seen else last_end, end)
        if vma is None:
            return res
        addr = max(vma.vm_start, start)
        length = min(end, vma.vm_end) - addr
        if not seen and start < vma.vm_start:
            return -14                  # EFAULT: no VMA at the start
        offset = vma.vm_start - last_end if seen else 0
        last_end = vma.vm_end
        vrm.vma, vrm.addr, vrm.new_addr = vma, addr, target + offset
        vrm.old_len = vrm.new_len = length
        if not vma_multi_allowed(vma) and (seen or vma.vm_end < end):
            return -14
        ret = check_prep_vma(vrm) or mremap_to(vrm)
        if ret < 0:
            return ret
        if not seen:
            res = ret
        seen = True
        target = ret + vrm.new_len


@traced(name="do_mremap", fmt={"flags": lambda f: hex(f)}, result=ret_name)
def sys_mremap(mm, addr, old_len, new_len, flags, new_addr):
    """mremap: resize [addr, addr+old_len) to new_len, in place or (MREMAP_MAYMOVE) elsewhere.

    Shrinking unmaps the tail; growing extends the VMA if the range ends
    it and the pages after it are free, else moves it where mmap would put
    it; MREMAP_FIXED moves it to new_addr, unmapping what was there;
    MREMAP_DONTUNMAP moves it and leaves the old range mapped but empty.
    Returns the (new) address or -errno: EINVAL for bad flags, alignment,
    length 0, overlapping ranges; EFAULT for an unmapped address or a
    range across VMAs; ENOMEM for no room (without MREMAP_MAYMOVE), limits.
    MREMAP_FIXED without a resize moves every VMA of the range (Linux 6.17+).
    """
    vrm = VmaRemap(mm, addr, old_len, new_len, flags, new_addr)
    err = check_mremap_params(vrm)
    if err:
        return err
    vrm.old_len, vrm.new_len = page_align(old_len), page_align(new_len)
    vrm.delta = abs(vrm.old_len - vrm.new_len)
    if flags & MREMAP_FIXED and vrm.old_len == vrm.new_len:
        return remap_move(vrm)
    vrm.vma = mm.vma_lookup(addr)
    err = check_prep_vma(vrm)
    if err:
        return err
    ret = mremap_to(vrm) if vrm.implies_new_addr() else mremap_at(vrm)
    if ret >= 0 and vrm.locked and vrm.new_len > vrm.old_len:
        mm_populate(mm, vrm.new_addr + vrm.old_len, vrm.delta)
    return ret
