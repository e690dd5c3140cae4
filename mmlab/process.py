"""A process: its address space, its limits, its open files and its system calls.

    p = m.spawn("a.out")
    print(p.maps())

m.spawn does what execve and the dynamic loader do before main() runs:

  1. the kernel (load_elf_binary, fs/binfmt_elf.c) builds a new mm: the
     stack at a random top below TASK_SIZE, mmap_base below the stack's
     reserved gap, minus up to 1 TiB of randomness; the program's segments
     at a random base near 0x555555554000 (ELF_ET_DYN_BASE); ld.so just
     below mmap_base; the vDSO below ld.so; and start_brk a random distance
     (under 1 GiB) above the end of the program's bss;
  2. ld.so (glibc 2.36's rtld) maps libc.so.6 with the system calls strace
     shows on the reference machine: a scratch page pair, /etc/ld.so.cache,
     libc's segments, its bss, the TLS block, then mprotect of each RELRO
     range and munmap of the cache.

Every call of step 2 goes through this process's own mmap/mprotect/munmap,
so `with m.trace()` around m.spawn shows the whole path.  The ELF program
headers are those of the reference machine's files (Debian 12, glibc
2.36-9+deb12u14, gcc 12.2 -O2 of hello.c), so the maps lines have its sizes.

NOTE: what spawn leaves out: argument and environment strings (the stack's
top page stands for them), the page faults that exec and ld.so take while
writing the stack, .data and the TLS (no page tables yet, so no VMA has an
anon_vma after spawn), threads and signals.
"""
import collections
import itertools

from .arch import PAGE_SHIFT, PAGE_SIZE, TASK_SIZE, MiB, GiB
from .errors import require_int, oserror, EBADF, KernelBug
from .trace import traced, note
from .uapi import (PROT_READ, PROT_WRITE, PROT_EXEC, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED,
                   MAP_FIXED_NOREPLACE, MAP_DENYWRITE, O_RDONLY, RLIMIT_STACK, RLIMIT_DATA,
                   RLIMIT_MEMLOCK, RLIM_INFINITY)
from . import fs as _fs
from .mm import vma as _vma
from .mm import mmap as _mmap
from .mm.vma import (MM, VMA, VmaView, VmOps, VM_STACK_FLAGS, VM_STACK_INCOMPLETE_SETUP,
                     VM_READ, VM_EXEC, VM_MAYREAD, VM_MAYWRITE, VM_MAYEXEC, VM_IO, VM_PFNMAP,
                     VM_DONTDUMP, VM_DONTEXPAND, VM_LOCKED_MASK, VM_ACCOUNT,
                     ULONG_MAX, vm_stat_account, vm_enough_memory, vma_name, expand_downwards)

from .uapi import RLIMIT_AS
STACK_TOP = TASK_SIZE                   # STACK_TOP_MAX with 4-level paging
STACK_RND_MASK = 0x3fffff               # 22 bits of pages: the stack top moves within 16 GiB
MMAP_RND_BITS = 28                      # vm.mmap_rnd_bits: 1 TiB of mmap_base randomness
ELF_ET_DYN_BASE = TASK_SIZE // 3 * 2    # where PIE programs load, before randomisation
SIZE_128M = 128 * MiB
STACK_EXPAND = 131072                   # setup_arg_pages grows the new stack by 128 KiB

# -- ELF images ----------------------------------------------------------------
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4
Phdr = collections.namedtuple("Phdr", "offset vaddr filesz memsz flags")


class ElfImage:
    """The parts of an ELF file that exec and ld.so act on: size, PT_LOADs, PT_GNU_RELRO."""

    def __init__(self, path, size, loads, relro, interp=None):
        self.path, self.size, self.loads, self.relro, self.interp = path, size, loads, relro, interp

    def total_mapping_size(self):
        """total_mapping_size: from the first PT_LOAD's page to the end of the last one's memory."""
        first, last = self.loads[0], self.loads[-1]
        return last.vaddr + last.memsz - (first.vaddr & ~(PAGE_SIZE - 1))


# readelf -lW on the reference machine.
A_OUT = ElfImage("a.out", 15960, [
    Phdr(0x000000, 0x0000, 0x618, 0x618, PF_R),
    Phdr(0x001000, 0x1000, 0x165, 0x165, PF_R | PF_X),
    Phdr(0x002000, 0x2000, 0x0e4, 0x0e4, PF_R),
    Phdr(0x002dd0, 0x3dd0, 0x248, 0x250, PF_R | PF_W),
], relro=(0x3dd0, 0x230), interp="/lib64/ld-linux-x86-64.so.2")
LD_SO = ElfImage("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", 215000, [
    Phdr(0x000000, 0x00000, 0x00d58, 0x00d58, PF_R),
    Phdr(0x001000, 0x01000, 0x25111, 0x25111, PF_R | PF_X),
    Phdr(0x027000, 0x27000, 0x09c7c, 0x09c7c, PF_R),
    Phdr(0x031900, 0x31900, 0x02810, 0x029d8, PF_R | PF_W),
], relro=(0x31900, 0x1700))
LIBC = ElfImage("/usr/lib/x86_64-linux-gnu/libc.so.6", 1926232, [
    Phdr(0x000000, 0x000000, 0x025388, 0x025388, PF_R),
    Phdr(0x026000, 0x026000, 0x1550fc, 0x1550fc, PF_R | PF_X),
    Phdr(0x17c000, 0x17c000, 0x052c31, 0x052c31, PF_R),
    Phdr(0x1cf8d0, 0x1cf8d0, 0x004f98, 0x012680, PF_R | PF_W),
], relro=(0x1cf8d0, 0x3730))
LD_SO_CACHE = "/etc/ld.so.cache"

# The vDSO (arch/x86/entry/vdso): [vvar] 4 pages, [vvar_vclock] 2, [vdso] text 2, as 6.18 maps them.
VVAR_PAGES, VCLOCK_PAGES, VDSO_TEXT_PAGES = 4, 2, 2
VVAR_OPS = VmOps("vvar_mapping", "[vvar]", close=True)
VCLOCK_OPS = VmOps("vvar_vclock_mapping", "[vvar_vclock]", close=True)
VDSO_OPS = VmOps("vdso_mapping", "[vdso]", close=True)
VSYSCALL_LINE = (0xffffffffff600000, 0xffffffffff601000, "--xp", "[vsyscall]")

DEFAULT_RLIMITS = {
    RLIMIT_STACK: (8 * MiB, RLIM_INFINITY),
    RLIMIT_DATA: (RLIM_INFINITY, RLIM_INFINITY),
    RLIMIT_MEMLOCK: (8 * MiB, 8 * MiB),
    RLIMIT_AS: (RLIM_INFINITY, RLIM_INFINITY),
}
TTY = "tty"                             # stands for the terminal on descriptors 0, 1 and 2


def _ulong(name, value):
    return require_int(name, value, 0, ULONG_MAX)


class Process:
    """A user process of the machine (struct task_struct with its mm and files).

    Attributes: pid, name, uid (0 is root, with every capability), mm
    (the MM), rlim (resource -> [soft, hard]), fds (descriptor -> open
    file).  The methods are the system calls, with Linux's semantics:
    they raise OSError with Linux's errno, except brk, which answers as the
    raw syscall does.
    """

    def __init__(self, machine, pid, name, uid=1000, rlimits=None):
        self.machine = machine
        self.pid = pid
        self.name = name
        self.uid = require_int("uid", uid, 0, (1 << 32) - 1)
        self.rlim = {r: list(v) for r, v in DEFAULT_RLIMITS.items()}
        for r, v in (rlimits or {}).items():
            self.setrlimit(r, v)
        self.mm = MM(machine, self)
        self.fds = {0: TTY, 1: TTY, 2: TTY}
        self.alive = True
        self.exe = None
        self.libc = None                # glibc's malloc state (mmlab/libc), when it exists
        self.min_flt = self.maj_flt = 0     # faults charged to the task (getrusage ru_minflt, ru_majflt)

    def __repr__(self):
        state = "" if self.alive else " exited"
        return f"<Process {self.pid} {self.name!r}: {self.mm.map_count} VMAs{state}>"

    def _live(self):
        if not self.alive:
            raise KernelBug(f"pid {self.pid} has exited; it makes no more system calls")

    @staticmethod
    def _result(ret):
        if ret < 0:
            raise oserror(-ret)
        return ret

    # -- limits ----------------------------------------------------------------
    def getrlimit(self, resource):
        """getrlimit: (soft, hard)."""
        return tuple(self.rlim[require_int("resource", resource, 0, 15)])

    def setrlimit(self, resource, limits):
        """setrlimit(resource, (soft, hard)) or setrlimit(resource, soft) (the hard limit stays).

        NOTE: RLIMIT_STACK acts at exec time (mmap_base and the stack), as in Linux.
        """
        resource = require_int("resource", resource, 0, 15)
        if resource not in self.rlim:
            self.rlim[resource] = [RLIM_INFINITY, RLIM_INFINITY]
        if isinstance(limits, tuple):
            soft, hard = (_ulong("soft", limits[0]), _ulong("hard", limits[1]))
        else:
            soft, hard = _ulong("limit", limits), self.rlim[resource][1]
        if soft > hard:
            raise oserror(22, "soft limit above hard limit")
        if hard > self.rlim[resource][1] and self.uid != 0:
            raise oserror(1, "raising a hard limit needs CAP_SYS_RESOURCE")
        self.rlim[resource] = [soft, hard]

    # -- files -------------------------------------------------------------------
    def open(self, path, flags=O_RDONLY):
        """open: the lowest free descriptor for `path` (O_RDONLY, O_WRONLY or O_RDWR)."""
        self._live()
        f = self.machine.fs.open(path, flags)
        fd = next(i for i in itertools.count(0) if i not in self.fds)
        self.fds[fd] = f
        return fd

    def close(self, fd):
        """close: release the descriptor (EBADF if it is not open)."""
        self._live()
        fd = require_int("fd", fd, -(1 << 31), (1 << 31) - 1)
        f = self.fds.pop(fd, None)
        if f is None:
            raise oserror(EBADF)
        if isinstance(f, _fs.OpenFile):
            _fs.fput(f)

    def fget(self, fd):
        """fget: the open file behind a descriptor, or None."""
        if fd < 0:
            return None
        return self.fds.get(fd)

    def _readable(self, fd):
        """fdget + FMODE_READ: the open file for a read, or OSError(EBADF)."""
        fd = require_int("fd", fd, -(1 << 31), (1 << 31) - 1)
        f = self.fget(fd)
        if f is None:
            raise oserror(EBADF)
        if isinstance(f, _fs.OpenFile) and not f.f_mode & _fs.FMODE_READ:
            raise oserror(EBADF)
        return f

    def pread(self, fd, length, offset):
        """pread: up to `length` bytes at `offset`, through the page cache (readahead, I/O waits).

        Returns the bytes (fewer at the end of the file; b"" past it).
        EBADF for a bad or write-only descriptor, EINVAL for a negative
        offset, ESPIPE for a terminal; the file position does not move.
        """
        self._live()
        length = require_int("length", length, 0, (1 << 63) - 1)
        offset = require_int("offset", offset, -(1 << 63), (1 << 63) - 1)
        if offset < 0:
            raise oserror(22)               # ksys_pread64 checks the offset before the descriptor
        f = self._readable(fd)
        if not isinstance(f, _fs.OpenFile):
            raise oserror(29)               # ESPIPE: a terminal has no offsets
        from .mm import filemap
        return filemap.vfs_read(f, offset, length)

    def read(self, fd, length):
        """read: up to `length` bytes from the file position, which moves past them."""
        self._live()
        f = self._readable(fd)
        length = require_int("length", length, 0, (1 << 63) - 1)
        if not isinstance(f, _fs.OpenFile):
            return b""                      # NOTE: the terminal reads as end of file
        from .mm import filemap
        data = filemap.vfs_read(f, f.f_pos, length)
        f.f_pos += len(data)
        return data

    def lseek(self, fd, offset, whence=0):
        """lseek: SEEK_SET (0), SEEK_CUR (1) or SEEK_END (2); the new position."""
        self._live()
        fd = require_int("fd", fd, -(1 << 31), (1 << 31) - 1)
        f = self.fget(fd)
        if f is None:
            raise oserror(EBADF)
        if not isinstance(f, _fs.OpenFile):
            raise oserror(29)
        offset = require_int("offset", offset, -(1 << 63), (1 << 63) - 1)
        whence = require_int("whence", whence, 0, 2)
        pos = offset + (0, f.f_pos, f.file.size)[whence]
        if pos < 0:
            raise oserror(22)
        f.f_pos = pos
        return pos

    def fadvise(self, fd, offset, length, advice):
        """posix_fadvise: advice for bytes [offset, offset+length) of fd (0: to the end); returns 0.

        POSIX_FADV_NORMAL, RANDOM, SEQUENTIAL, WILLNEED, DONTNEED, NOREUSE
        (mmlab.uapi).  EBADF for a bad descriptor, EINVAL for unknown advice
        or a negative length.  (posix_fadvise returns the errno; the model raises it.)
        """
        self._live()
        from .mm import fadvise as _fadvise
        fd = require_int("fd", fd, -(1 << 31), (1 << 31) - 1)
        offset = require_int("offset", offset, -(1 << 63), (1 << 63) - 1)
        length = require_int("length", length, -(1 << 63), (1 << 63) - 1)
        advice = require_int("advice", advice, -(1 << 31), (1 << 31) - 1)
        return self._result(_fadvise.ksys_fadvise64_64(self, fd, offset, length, advice))

    def nanosleep(self, ns):
        """nanosleep: let ns nanoseconds of simulated time pass (I/O completes, the flusher runs);
        returns m.clock_ns."""
        self._live()
        return self.machine.idle(ns)

    # -- address space -------------------------------------------------------------
    def mmap(self, addr, length, prot, flags, fd=-1, offset=0):
        """mmap: map memory; returns the address.  OSError(errno) as Linux fails."""
        if not self.alive:
            self._live()
        # The common case, plain ints in range, is checked inline: mmap is hot.
        if not (type(addr) is int and type(length) is int and type(prot) is int and type(flags) is int
                and 0 <= addr <= ULONG_MAX and 0 <= length <= ULONG_MAX and 0 <= prot <= ULONG_MAX
                and 0 <= flags <= ULONG_MAX):
            addr, length = _ulong("addr", addr), _ulong("length", length)
            prot, flags = _ulong("prot", prot), _ulong("flags", flags)
        if not (type(fd) is int and -(1 << 31) <= fd < (1 << 31)):
            fd = require_int("fd", fd, -(1 << 31), (1 << 31) - 1)
        if not (type(offset) is int and 0 <= offset <= ULONG_MAX):
            offset = _ulong("offset", offset)
        if not flags & MAP_ANONYMOUS:
            f = self.fget(fd)
            if f is not None and not isinstance(f, _fs.OpenFile):
                raise oserror(19)        # ENODEV: a terminal cannot be mapped
        if offset & (PAGE_SIZE - 1):            # sys_mmap (x86): a page-aligned offset
            raise oserror(22)
        ret = _mmap.ksys_mmap_pgoff(self, addr, length, prot, flags, fd, offset >> PAGE_SHIFT)
        if ret < 0:
            raise oserror(-ret)
        return ret

    def munmap(self, addr, length):
        """munmap: unmap [addr, addr+length); unmapping nothing is not an error."""
        if not self.alive:
            self._live()
        if not (type(addr) is int and type(length) is int and 0 <= addr <= ULONG_MAX
                and 0 <= length <= ULONG_MAX):
            addr, length = _ulong("addr", addr), _ulong("length", length)
        ret = _vma.do_vmi_munmap(self.mm, addr, length)
        if ret < 0:
            raise oserror(-ret)
        return ret

    def mprotect(self, addr, length, prot):
        """mprotect: change protection; over a hole, changes what precedes it and fails ENOMEM."""
        self._live()
        return self._result(_mmap.sys_mprotect(self.mm, _ulong("addr", addr),
                                               _ulong("length", length), _ulong("prot", prot)))

    def mremap(self, old_addr, old_size, new_size, flags=0, new_addr=0):
        """mremap: resize (and with MREMAP_MAYMOVE move) a mapping; returns its address."""
        self._live()
        return self._result(_mmap.sys_mremap(self.mm, _ulong("old_addr", old_addr),
                                             _ulong("old_size", old_size), _ulong("new_size", new_size),
                                             _ulong("flags", flags), _ulong("new_addr", new_addr)))

    def brk(self, addr):
        """brk: the raw system call: the new break, or the current one if it cannot move (brk(0) asks)."""
        self._live()
        return _mmap.sys_brk(self.mm, _ulong("addr", addr))

    def madvise(self, addr, length, advice):
        """madvise: advice about [addr, addr+length) (flag changes now; page effects by hooks)."""
        self._live()
        return self._result(_mmap.sys_madvise(self.mm, _ulong("addr", addr), _ulong("length", length),
                                              require_int("advice", advice, -(1 << 31), (1 << 31) - 1)))

    def mlock(self, addr, length):
        """mlock: lock the pages of the range in memory (VM_LOCKED)."""
        self._live()
        return self._result(_mmap.do_mlock(self.mm, _ulong("addr", addr), _ulong("length", length),
                                           _vma.VM_LOCKED))

    def mlock2(self, addr, length, flags=0):
        """mlock2: mlock, with MLOCK_ONFAULT to lock pages as they are first touched."""
        self._live()
        return self._result(_mmap.sys_mlock2(self.mm, _ulong("addr", addr), _ulong("length", length),
                                             _ulong("flags", flags)))

    def munlock(self, addr, length):
        """munlock: unlock the range."""
        self._live()
        return self._result(_mmap.sys_munlock(self.mm, _ulong("addr", addr), _ulong("length", length)))

    def mlockall(self, flags):
        """mlockall: MCL_CURRENT locks every mapping; MCL_FUTURE every later one, the heap too."""
        self._live()
        return self._result(_mmap.sys_mlockall(self.mm, require_int("flags", flags, -(1 << 31),
                                                                    (1 << 31) - 1)))

    def munlockall(self):
        """munlockall: undo mlockall."""
        self._live()
        return self._result(_mmap.sys_munlockall(self.mm))

    def msync(self, addr, length, flags):
        """msync: flush shared file mappings of the range (MS_SYNC, MS_ASYNC, MS_INVALIDATE)."""
        self._live()
        return self._result(_mmap.sys_msync(self.mm, _ulong("addr", addr), _ulong("length", length),
                                            require_int("flags", flags, -(1 << 31), (1 << 31) - 1)))

    # -- views --------------------------------------------------------------------
    @property
    def vmas(self):
        """The VMAs in address order, as read-only views."""
        return [VmaView(v) for v in self.mm.vma_list()]

    def maps(self):
        """/proc/pid/maps, laid out as Linux 6.18 lays it out (show_map_vma)."""
        return "".join(show_map_vma(v) for v in self.mm.vma_list()) + show_gate_vma()

    def status(self):
        """The memory lines of /proc/pid/status (task_mem), in kB.

        NOTE: VmPeak and VmHWM (the high-water marks Linux updates on unmap
        and exit) are left out; there is no swap, so VmSwap is 0.
        """
        mm = self.mm
        kb = lambda pages: pages << (PAGE_SHIFT - 10)
        text = _mmap.page_align(mm.end_code) - (mm.start_code & ~(PAGE_SIZE - 1))
        text = min(text, mm.exec_vm << PAGE_SHIFT)
        lib = (mm.exec_vm << PAGE_SHIFT) - text
        from .mm import memory
        rss = memory.mm_rss(self.machine, mm)
        rows = [("VmSize", kb(mm.total_vm)), ("VmLck", kb(mm.locked_vm)),
                ("VmPin", kb(mm.pinned_vm)), ("VmRSS", kb(sum(rss.values()))),
                ("RssAnon", kb(rss["anon"])), ("RssFile", kb(rss["file"])), ("RssShmem", kb(rss["shmem"])),
                ("VmData", kb(mm.data_vm)), ("VmStk", kb(mm.stack_vm)),
                ("VmExe", text >> 10), ("VmLib", lib >> 10), ("VmPTE", mm.pgtables_bytes >> 10),
                ("VmSwap", 0)]
        return "".join(f"{name}:\t{value:8d} kB\n" for name, value in rows)

    # -- memory accesses (mm/memory.py) ---------------------------------------------
    def load(self, addr, size=1):
        """A program's loads: `size` bytes from addr, faulting as Linux does (SegmentationFault on a bad one)."""
        self._live()
        from .mm import memory
        addr, size = _ulong("addr", addr), _ulong("size", size)
        return memory.user_load(self, addr, size)

    def store(self, addr, data):
        """A program's stores: write the bytes of `data` at addr, faulting as Linux does."""
        self._live()
        from .mm import memory
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        return memory.user_store(self, _ulong("addr", addr), data)

    def touch(self, addr, length, write=False):
        """Access every page of [addr, addr+length) once (no bytes kept); returns the faults taken."""
        self._live()
        from .mm import memory
        addr, length = _ulong("addr", addr), _ulong("length", length)
        return memory.user_access(self, addr, length, bool(write))

    def rusage(self):
        """getrusage(RUSAGE_SELF): (ru_minflt, ru_majflt)."""
        return (self.min_flt, self.maj_flt)

    def pagemap(self, addr):
        """The /proc/pid/pagemap entry of addr's page (64 bits: present, file, exclusive, pfn)."""
        from .mm import memory
        return memory.pagemap_entry(self, _ulong("addr", addr))

    def mincore(self, addr, length):
        """mincore: one bool per page of [addr, addr+length): is it resident?"""
        self._live()
        from .mm import memory
        addr, length = _ulong("addr", addr), _ulong("length", length)
        if addr & (PAGE_SIZE - 1):
            raise oserror(22)
        return memory.mincore(self, addr, (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))

    def fork(self):
        """fork: a child with a copy of this address space (copy-on-write) and of the descriptors."""
        self._live()
        from .kernel import fork as _fork
        child = _fork.copy_process(self)
        if getattr(self, "_libc", None) is not None:
            child._libc = self._libc.dup_for_child(child)      # glibc's variables, copied with libc's .data
        return child

    def exit(self):
        """exit: unmap everything (exit_mmap), close every file, leave the machine's process list."""
        self._live()
        exit_mmap(self.mm)
        from .mm import memory
        memory.exit_mmap_tables(self.mm)
        for fd in list(self.fds):
            f = self.fds.pop(fd)
            if isinstance(f, _fs.OpenFile):
                _fs.fput(f)
        self.alive = False
        self.machine.processes.pop(self.pid, None)


def show_map_vma(vma):
    """show_map_vma (fs/proc/task_mmu.c): one maps line.

    "start-end perms offset major:minor inode", each number in hex padded
    to its width (the inode in decimal), then, if the VMA has a name, spaces
    up to column 73 and the name.  Anonymous VMAs print offset, device and
    inode as zeros and end with the space.
    """
    f = vma.vm_file
    if f is not None:
        pgoff, (major, minor), ino = vma.vm_pgoff << PAGE_SHIFT, f.dev, f.ino
    else:
        pgoff, major, minor, ino = 0, 0, 0, 0
    head = f"{vma.vm_start:08x}-{vma.vm_end:08x} {vma.perms} {pgoff:08x} {major:02x}:{minor:02x} {ino} "
    name = vma_name(vma)
    return (head.ljust(72) + " " + name if name else head) + "\n"


def show_gate_vma():
    """The [vsyscall] page (vsyscall=xonly), which maps list after every VMA."""
    start, end, perms, name = VSYSCALL_LINE
    return f"{start:08x}-{end:08x} {perms} 00000000 00:00 0 ".ljust(72) + " " + name + "\n"


def exit_mmap(mm):
    """exit_mmap: unmap every VMA, giving back every charge."""
    vmas = mm.vma_list()
    if not vmas:
        return
    vms = _vma.VmaMunmap(mm, vmas[0].vm_start, vmas[-1].vm_end)
    _vma.vms_gather_munmap_vmas(vms, vmas[0])
    mm.erase_vmas(vms.vmas)
    _vma.vms_complete_munmap_vmas(vms)
    mm.locked_vm = 0


# -- exec: load_elf_binary (fs/binfmt_elf.c, fs/exec.c) ------------------------------------
def arch_rnd(m, bits):
    """arch_rnd: a random page offset of `bits` bits (x86 arch_mmap_rnd)."""
    return (m.rng.getrandbits(64) & ((1 << bits) - 1)) << PAGE_SHIFT


def mmap_base(mm, rnd, rlim_stack):
    """mmap_base (arch/x86/mm/mmap.c): below the stack's largest reach, less the random factor.

    The gap left for the stack is RLIMIT_STACK plus the stack top's
    randomisation range (16 GiB) plus stack_guard_gap, clamped to between
    128 MiB and 5/6 of the address space.
    """
    task_size = mm.task_size
    gap = rlim_stack
    pad = (STACK_RND_MASK << PAGE_SHIFT) + mm.machine.stack_guard_gap
    if gap + pad <= ULONG_MAX:
        gap += pad
    gap = min(max(gap, SIZE_128M), task_size // 6 * 5)
    return _mmap.page_align(task_size - gap - rnd)


@traced
def arch_pick_mmap_layout(mm, rlim_stack):
    """arch_pick_mmap_layout: top-down layout (unless vm.legacy_va_layout) and the mmap bases."""
    m = mm.machine
    mm.topdown = not m.legacy_va_layout
    rnd = arch_rnd(m, MMAP_RND_BITS)
    arch_rnd(m, 8)                      # the compat (32-bit) bases draw their own random number
    mm.mmap_legacy_base = _mmap.page_align(mm.task_size // 3) + rnd
    mm.mmap_base = mmap_base(mm, rnd, rlim_stack) if mm.topdown else mm.mmap_legacy_base
    note(mm, "mmap layout: mmap_base %#x", mm.mmap_base)
    return mm.mmap_base


def insert_vm_struct(mm, vma):
    """insert_vm_struct: link a VMA built by hand (stack, vDSO); anonymous pgoff follows vm_start."""
    if mm.find_vma_intersection(vma.vm_start, vma.vm_end):
        return -12
    if vma.vm_flags & VM_ACCOUNT and vm_enough_memory(mm, vma.pages):
        return -12
    if vma.vm_ops is None:
        vma.vm_pgoff = vma.vm_start >> PAGE_SHIFT
    mm.insert_vma(vma)
    return 0


def bprm_mm_init(p):
    """__bprm_mm_init: a fresh mm with a one-page stack at the very top, flagged as being set up."""
    mm = p.mm = MM(p.machine, p)
    vma = VMA(mm, STACK_TOP - PAGE_SIZE, STACK_TOP, VM_STACK_FLAGS | VM_STACK_INCOMPLETE_SETUP, 0)
    insert_vm_struct(mm, vma)
    mm.stack_vm = mm.total_vm = 1
    return vma


def randomize_stack_top(m, stack_top):
    """randomize_stack_top: move the stack top down by up to 16 GiB, in pages."""
    return _mmap.page_align(stack_top) - ((m.rng.getrandbits(64) & STACK_RND_MASK) << PAGE_SHIFT)


@traced
def setup_arg_pages(p, stack_vma, stack_top):
    """setup_arg_pages: move the argument page(s) to the random stack top, then grow 128 KiB below.

    arch_align_stack moves the top down by up to 8 KiB first; the stack's
    final VMA is the argument pages plus 128 KiB (capped by RLIMIT_STACK),
    marked [stack] because it holds mm->start_stack.
    """
    m, mm = p.machine, p.mm
    stack_top = (stack_top - m.rng.randrange(8192)) & ~0xf          # arch_align_stack
    stack_top = _mmap.page_align(stack_top)
    shift = stack_vma.vm_end - stack_top
    strings = len(p.name) + 1 + 2048            # argv and envp strings, roughly a shell's
    bprm_p = STACK_TOP - 8 - strings - shift
    # relocate_vma_down: the page keeps its contents and its pgoff, at its new address.
    i = mm.index(stack_vma)
    stack_vma.vm_start -= shift
    stack_vma.vm_end -= shift
    mm._store(i, i + 1, [stack_vma])
    stack_vma.vm_flags &= ~VM_STACK_INCOMPLETE_SETUP
    rlim_stack = p.rlim[RLIMIT_STACK][0] & ~(PAGE_SIZE - 1)
    stack_expand = min(rlim_stack, stack_vma.vm_end - stack_vma.vm_start + STACK_EXPAND)
    stack_base = stack_vma.vm_end - stack_expand
    mm.start_stack = bprm_p - 0x200         # argc, argv[], envp[] and auxv sit below the strings
    mm.arg_start = bprm_p
    return expand_downwards(stack_vma, stack_base)


def make_prot(p_flags):
    """make_prot: PF_R/PF_W/PF_X as PROT_READ/PROT_WRITE/PROT_EXEC."""
    return ((PROT_READ if p_flags & PF_R else 0) | (PROT_WRITE if p_flags & PF_W else 0)
            | (PROT_EXEC if p_flags & PF_X else 0))


def page_start(x):
    return x & ~(PAGE_SIZE - 1)


def page_offset(x):
    return x & (PAGE_SIZE - 1)


def kernel_mmap(p, file, addr, length, prot, flags, off):
    """vm_mmap from inside the kernel; returns the address or -errno."""
    return _mmap.vm_mmap_pgoff(p.mm, file, addr, length, prot, flags, off >> PAGE_SHIFT)


def elf_map(p, file, addr, ph, prot, flags, total_size):
    """elf_map: map a segment's file pages; the first segment maps the whole image, then trims."""
    size = _mmap.page_align(ph.filesz + page_offset(ph.vaddr))
    off = ph.offset - page_offset(ph.vaddr)
    addr = page_start(addr)
    if not size:
        return addr
    if total_size:
        total_size = _mmap.page_align(total_size)
        map_addr = kernel_mmap(p, file, addr, total_size, prot, flags, off)
        if map_addr >= 0:
            _mmap.sys_munmap(p, map_addr + size, total_size - size)
        return map_addr
    return kernel_mmap(p, file, addr, size, prot, flags, off)


def vm_brk_flags(p, addr, request, vm_flags):
    """vm_brk_flags: anonymous pages for a segment's bss beyond its file pages."""
    mm = p.mm
    length = _mmap.page_align(request)
    if not length:
        return 0
    err = _mmap.check_brk_limits(mm, addr, length)
    if err:
        return err
    err = _vma.do_vmi_munmap(mm, addr, length)
    if err:
        return err
    _, prev = mm.find_vma_prev(addr)
    return _mmap.do_brk_flags(mm, prev, addr, length, vm_flags)


def elf_load(p, file, addr, ph, prot, flags, total_size):
    """elf_load: map one PT_LOAD; memory beyond the file's last page becomes anonymous bss."""
    map_addr = elf_map(p, file, addr, ph, prot, flags, total_size)
    if map_addr < 0:
        return map_addr
    if ph.memsz > ph.filesz:
        # padzero writes zeros to the rest of the last file page (a fault, not modelled).
        zero_start = _mmap.page_align(map_addr + page_offset(ph.vaddr) + ph.filesz)
        zero_end = _mmap.page_align(map_addr + page_offset(ph.vaddr) + ph.memsz)
        if zero_end > zero_start:
            err = vm_brk_flags(p, zero_start, zero_end - zero_start, VM_EXEC if prot & PROT_EXEC else 0)
            if err:
                return err
    return map_addr


@traced
def load_elf_program(p, image, file):
    """The PT_LOAD loop of load_elf_binary for a PIE with an interpreter: a random base near
    ELF_ET_DYN_BASE, the first segment with the whole image's size, the others MAP_FIXED."""
    m, mm = p.machine, p.mm
    load_bias = ELF_ET_DYN_BASE + arch_rnd(m, MMAP_RND_BITS)
    load_bias = page_start(load_bias - image.loads[0].vaddr)
    note(mm, "load_elf_binary: load_bias %#x", load_bias)
    flags = MAP_PRIVATE | MAP_FIXED_NOREPLACE
    total_size = image.total_mapping_size()
    start_code, end_code, start_data, end_data, elf_brk = ULONG_MAX, 0, 0, 0, 0
    for k, ph in enumerate(image.loads):
        if k:
            flags |= MAP_FIXED
        err = elf_load(p, file, load_bias + ph.vaddr, ph, make_prot(ph.flags), flags,
                       total_size if k == 0 else 0)
        if err < 0:
            return err
        if ph.flags & PF_X:
            start_code = min(start_code, ph.vaddr)
            end_code = max(end_code, ph.vaddr + ph.filesz)
        start_data = max(start_data, ph.vaddr)
        end_data = max(end_data, ph.vaddr + ph.filesz)
        elf_brk = max(elf_brk, ph.vaddr + ph.memsz)
    mm.start_code, mm.end_code = load_bias + start_code, load_bias + end_code
    mm.start_data, mm.end_data = load_bias + start_data, load_bias + end_data
    return load_bias + elf_brk, load_bias


@traced
def load_elf_interp(p, image, file):
    """load_elf_interp: ld.so wherever mmap puts it (just below mmap_base), then its other segments."""
    total_size = image.total_mapping_size()
    load_addr = None
    for ph in image.loads:
        flags = MAP_PRIVATE
        if load_addr is None:
            addr, size = page_start(ph.vaddr), total_size
        else:
            flags |= MAP_FIXED
            addr, size = load_addr + ph.vaddr, 0
        map_addr = elf_load(p, file, addr, ph, make_prot(ph.flags), flags, size)
        if map_addr < 0:
            return map_addr
        if load_addr is None:
            load_addr = map_addr - page_start(ph.vaddr)
    return load_addr


def install_special_mapping(mm, addr, length, vm_flags, ops):
    """_install_special_mapping: a VMA the kernel backs itself (vDSO data and text)."""
    vma = VMA(mm, addr, addr + length,
              (vm_flags | mm.def_flags | VM_DONTEXPAND) & ~VM_LOCKED_MASK, 0, vm_ops=ops)
    err = insert_vm_struct(mm, vma)
    if err:
        return err
    vm_stat_account(mm, vma.vm_flags, length >> PAGE_SHIFT)
    return vma


@traced
def map_vdso(p):
    """map_vdso: the vDSO's data pages ([vvar], [vvar_vclock]) and text ([vdso]) in one free range."""
    mm = p.mm
    pages = VVAR_PAGES + VCLOCK_PAGES + VDSO_TEXT_PAGES
    addr = _mmap.get_unmapped_area(mm, None, 0, pages << PAGE_SHIFT, 0, 0)
    if addr < 0:
        return addr
    text = addr + ((VVAR_PAGES + VCLOCK_PAGES) << PAGE_SHIFT)
    install_special_mapping(mm, text, VDSO_TEXT_PAGES << PAGE_SHIFT,
                            VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC, VDSO_OPS)
    data = VM_READ | VM_MAYREAD | VM_IO | VM_DONTDUMP | VM_PFNMAP
    install_special_mapping(mm, addr, VVAR_PAGES << PAGE_SHIFT, data, VVAR_OPS)
    install_special_mapping(mm, addr + (VVAR_PAGES << PAGE_SHIFT), VCLOCK_PAGES << PAGE_SHIFT,
                            data, VCLOCK_OPS)
    return addr


def set_brk(p, elf_brk):
    """The brk set-up at the end of load_elf_binary: a page after the bss, then up to 1 GiB more."""
    mm = p.mm
    mm.start_brk = mm.brk = _mmap.page_align(elf_brk)
    if p.machine.randomize_va_space > 1:
        mm.start_brk = mm.brk = mm.brk + PAGE_SIZE              # leave a gap between .bss and brk
        mm.start_brk = mm.brk = _mmap.randomize_page(p.machine, mm.brk, GiB)   # arch_randomize_brk
    note(mm, "load_elf_binary: start_brk %#x", mm.start_brk)


@traced
def load_elf_binary(p, image):
    """load_elf_binary: replace p's address space with a fresh one running `image`.

    Steps: a new mm with the argument page at the top; the mmap layout;
    the stack at its random top; the program's segments; the interpreter;
    the vDSO; the program break.  Returns 0 or -errno.
    """
    m = p.machine
    stack = bprm_mm_init(p)
    mm = p.mm
    arch_pick_mmap_layout(mm, p.rlim[RLIMIT_STACK][0])
    err = setup_arg_pages(p, stack, randomize_stack_top(m, STACK_TOP))
    if err:
        return err
    exe = m.fs.open(image.path_in_fs)
    res = load_elf_program(p, image, exe)
    _fs.fput(exe)
    if isinstance(res, int):
        return res
    elf_brk, p.load_bias = res
    interp = m.fs.open(image.interp)
    p.interp_base = load_elf_interp(p, LD_SO, interp)
    _fs.fput(interp)
    if p.interp_base < 0:
        return p.interp_base
    err = map_vdso(p)
    if err < 0:
        return err
    set_brk(p, elf_brk)
    return 0


# -- the dynamic loader (glibc 2.36 elf/rtld.c, elf/dl-map-segments.h) -------------------------
def dl_map_segments(p, image, fd):
    """_dl_map_segments: reserve the library's whole extent, then map each segment MAP_FIXED,
    then zero the partial bss page and map the rest of the bss anonymous."""
    loads = image.loads
    first = loads[0]
    mapstart = page_start(first.vaddr)
    maplength = loads[-1].vaddr + loads[-1].memsz - mapstart
    base = p.mmap(0, maplength, make_prot(first.flags), MAP_PRIVATE | MAP_DENYWRITE, fd,
                  page_start(first.offset))
    for ph in loads[1:]:
        start = page_start(ph.vaddr)
        end = _mmap.page_align(ph.vaddr + ph.filesz)
        p.mmap(base + start, end - start, make_prot(ph.flags), MAP_PRIVATE | MAP_FIXED | MAP_DENYWRITE,
               fd, page_start(ph.offset))
    last = loads[-1]
    zero = base + last.vaddr + last.filesz
    zeropage = _mmap.page_align(zero)
    zeroend = base + last.vaddr + last.memsz
    if zeroend > zeropage:
        p.mmap(zeropage, zeroend - zeropage, make_prot(last.flags),
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
    return base


def dl_protect_relro(p, base, relro):
    """_dl_protect_relro: make the RELRO pages read-only once relocations are done."""
    start = page_start(base + relro[0])
    end = page_start(base + relro[0] + relro[1])
    if start != end:
        p.mprotect(start, end - start, PROT_READ)


@traced
def run_dynamic_loader(p, image):
    """What ld.so does before main(), as strace shows it on the reference machine."""
    p.brk(0)
    p.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)      # rtld's own scratch
    fd = p.open(LD_SO_CACHE)
    cache_size = p.machine.fs.lookup(LD_SO_CACHE).size
    cache = p.mmap(0, cache_size, PROT_READ, MAP_PRIVATE, fd, 0)
    p.close(fd)
    fd = p.open("/lib/x86_64-linux-gnu/libc.so.6")
    libc_base = dl_map_segments(p, LIBC, fd)
    p.close(fd)
    p.mmap(0, 12288, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)     # TLS and the thread block
    dl_protect_relro(p, libc_base, LIBC.relro)
    dl_protect_relro(p, p.load_bias, image.relro)
    dl_protect_relro(p, p.interp_base, LD_SO.relro)
    p.munmap(cache, cache_size)
    p.libc_base = libc_base


def spawn(m, name="a.out", uid=1000, rlimits=None):
    """Machine.spawn: a new process running `name`, stopped where main() begins.

    `name` is a program name (placed in /home/user) or an absolute path;
    its file is created with the reference a.out's size if missing.  `uid`
    0 makes a root process (CAP_IPC_LOCK, CAP_SYS_RAWIO, ...); `rlimits`
    maps RLIMIT_* to (soft, hard) or a soft limit.
    """
    if not isinstance(name, str) or not name or name.endswith("/"):
        raise ValueError(f"name must be a program name or path, got {name!r}")
    path = name if name.startswith("/") else "/home/user/" + name
    if m.fs.lookup(path) is None:
        m.fs.create(path, A_OUT.size)
    pid = next(m.pid_counter) if hasattr(m, "pid_counter") else None
    if pid is None:
        m.pid_counter = itertools.count(1000)
        pid = next(m.pid_counter)
    p = Process(m, pid, path.rsplit("/", 1)[-1], uid, rlimits)
    image = ElfImage(path, A_OUT.size, A_OUT.loads, A_OUT.relro, A_OUT.interp)
    image.path_in_fs = path
    p.exe = path
    m.processes[pid] = p
    err = load_elf_binary(p, image)
    if err:
        exit_mmap(p.mm)
        del m.processes[pid]
        raise oserror(-err, "exec")
    run_dynamic_loader(p, image)
    return p
