"""A minimal VFS: files with inode numbers and devices, and open files.

Models just enough of fs/ (struct inode, struct file, the open file table)
for mmap to map files and for /proc/pid/maps to name them.  Two kinds of
file exist: `disk` files on an ext4 root filesystem (device fe:00, as the
virtio disk /dev/vda of this course's machines), and `tmpfs` files under
/dev/shm (device 00:1b).  MAP_SHARED|MAP_ANONYMOUS mappings get a third
kind, an unnamed shmem file that maps print as "/dev/zero (deleted)" on
device 00:01, as Linux does.

Glossary: a File is what the filesystem holds under a path (an inode); an
OpenFile is what open() returns a descriptor for (struct file).  VMAs point
at OpenFiles, as vma->vm_file points at a struct file: two open() calls of
one path give two OpenFiles, and mappings through them never merge.

Each disk file occupies one contiguous extent of the disk (File.sector,
512-byte sectors, allocated in order of creation), so the block device
model sees the sectors a read or write touches; its page cache
(File.i_mapping) is mm/filemap.py's; File.disk_data holds the pages
written back to the disk (any other page reads as zeros).  An OpenFile
carries its readahead state (f_ra, mm/readahead.py) and position.

NOTE: no directories, permissions or fragmentation.  Symbolic links exist
only as aliases (fs.symlink), enough for /lib64/ld-linux-x86-64.so.2.
"""
import itertools

from .errors import require_int, oserror, ENOENT, EISDIR, EINVAL
from .uapi import O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC

# Devices as maps prints them (major, minor).
DISK_DEV = (0xfe, 0x00)         # /dev/vda, the root ext4 filesystem
TMPFS_DEV = (0x00, 0x1b)        # the tmpfs mounted on /dev/shm
SHMEM_DEV = (0x00, 0x01)        # shm_mnt, the kernel's internal tmpfs
HUGETLBFS_DEV = (0x00, 0x11)    # the kernel's internal hugetlbfs mount

# f_mode bits (include/linux/fs.h).
FMODE_READ = 0x1
FMODE_WRITE = 0x2

BACKINGS = ("disk", "tmpfs", "shmem")

# Files every machine has, with the sizes and inode numbers they have on
# this course's reference machine (Debian 12, glibc 2.36-9+deb12u14).
BOOT_FILES = [
    ("/usr/lib/x86_64-linux-gnu/libc.so.6", 1926232, 339380),
    ("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", 215000, 338944),
    ("/etc/ld.so.cache", 34547, 262226),
]
BOOT_LINKS = [
    ("/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
    ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
]


class File:
    """struct inode (with its one path): a file the filesystem holds.

    `ino` and `dev` are what /proc/pid/maps prints; `size` is i_size;
    `backing` is "disk" (ext4), "tmpfs" or "shmem" (anonymous shared memory).
    """

    __slots__ = ("path", "size", "ino", "dev", "backing", "i_mapping", "deleted", "acct_pages",
                 "hsize", "machine", "sector", "disk_data", "__weakref__")

    def __init__(self, machine, path, size, ino, backing):
        self.machine = machine
        self.path = path
        self.size = size
        self.ino = ino
        self.backing = backing
        self.dev = {"disk": DISK_DEV, "tmpfs": TMPFS_DEV, "shmem": SHMEM_DEV,
                    "hugetlbfs": HUGETLBFS_DEV}[backing]
        self.i_mapping = None           # the page cache (mm/filemap.py), later
        self.deleted = False
        self.acct_pages = 0             # shmem_acct_size: commit charged for this object
        self.hsize = 0                  # hugetlbfs: the huge page size
        self.sector = 0                 # disk files: the first sector of the file's extent
        self.disk_data = {}             # disk files: page index -> bytes written back

    @property
    def inode(self):
        """The inode number (an alias of ino, as maps calls the column)."""
        return self.ino

    @property
    def shown_path(self):
        """The path as d_path prints it: deleted files get " (deleted)"."""
        return self.path + " (deleted)" if self.deleted else self.path

    def __repr__(self):
        return f"File({self.path!r}, size={self.size}, ino={self.ino}, {self.backing})"


class OpenFile:
    """struct file: one open() of a File, with its access mode.

    VMAs keep a reference (vm_file); `refs` counts them and the descriptor
    table's entry, as get_file/fput do, so an anonymous shmem object is
    released with its last mapping.
    """

    __slots__ = ("file", "f_mode", "f_flags", "refs", "machine", "f_ra", "f_pos")

    def __init__(self, file, f_mode, f_flags=0):
        self.file = file
        self.machine = file.machine
        self.f_mode = f_mode
        self.f_flags = f_flags
        self.refs = 1
        self.f_pos = 0
        from .mm.readahead import file_ra_state_init
        self.f_ra = file_ra_state_init(self)    # do_dentry_open: ra_pages from the device

    # The names the scenario runner and viz/ read.
    @property
    def path(self):
        return self.file.shown_path

    @property
    def inode(self):
        return self.file.ino

    @property
    def ino(self):
        return self.file.ino

    @property
    def dev(self):
        return self.file.dev

    @property
    def size(self):
        return self.file.size

    @property
    def backing(self):
        return self.file.backing

    def __repr__(self):
        mode = {FMODE_READ: "r", FMODE_WRITE: "w", FMODE_READ | FMODE_WRITE: "rw"}.get(self.f_mode, "-")
        return f"OpenFile({self.file.path!r}, {mode})"


def resize(file, size):
    """truncate_setsize: a new i_size; pages past the end are unmapped and dropped, and a disk file
    that grows past its extent gets a new one (its written pages move with it)."""
    from .mm import filemap
    old = file.size
    file.size = size
    if size < old and file.i_mapping is not None:
        first = (size + 4095) >> 12
        from .mm import memory
        memory.unmap_mapping_range(file, first)
        filemap.truncate_pagecache_range(file, first)
    if size < old:
        for index in [i for i in file.disk_data if i >= (size + 4095) >> 12]:
            del file.disk_data[index]
    if file.backing == "disk" and size > old and (size + (1 << 20) - 1) >> 20 > max(1, (old + (1 << 20) - 1) >> 20):
        file.machine.fs.alloc_extent(file)


def get_file(f):
    """get_file: take one more reference on an open file."""
    f.refs += 1
    return f


def fput(f):
    """fput: drop a reference; the last one releases an unnamed shmem object."""
    f.refs -= 1
    if f.refs == 0 and f.file.backing == "shmem":
        shmem_evict_inode(f.file)


def shmem_evict_inode(file):
    """shmem_evict_inode: give back the commit charge of an anonymous shmem object, and its pages."""
    if file.i_mapping is not None:
        from .mm import filemap
        filemap.truncate_inode_pages(file)
    if file.acct_pages:
        file.machine.committed_pages -= file.acct_pages
        file.machine.shmem_committed -= file.acct_pages
        file.acct_pages = 0


class FileSystem:
    """m.fs: the machine's files by path, and the inode numbers to give new ones."""

    def __init__(self, machine):
        self.machine = machine
        self.files = {}
        self.links = {}
        self._next_ino = {"disk": itertools.count(2220100), "tmpfs": itertools.count(2),
                          "shmem": itertools.count(1025), "hugetlbfs": itertools.count(92535)}
        self._next_sector = 2048            # ext4 starts after the partition's first MiB
        self.large_folios = True            # ext4 caches file data in large folios (Linux 6.16 on)
        for path, size, ino in BOOT_FILES:
            self._add(File(machine, path, size, ino, "disk"))
        for link, target in BOOT_LINKS:
            self.links[link] = target

    def _add(self, file):
        self.files[file.path] = file
        if file.backing == "disk":
            self.alloc_extent(file)
        return file

    def alloc_extent(self, file):
        """ext4_mb_new_blocks, simplified: a contiguous extent for the file's size (rounded to 1 MiB)
        after every earlier one.  NOTE: a file that grows gets a new extent."""
        file.sector = self._next_sector
        self._next_sector += max(2048, ((file.size + (1 << 20) - 1) >> 20) << 11)

    def unlinked_files(self):
        """Files no longer under a path whose pages may still be cached (none for disk files here)."""
        return []

    def create(self, path, size, backing=None):
        """Create (or truncate to `size`) the file at `path`; return its File.

        `backing` is "disk" or "tmpfs"; by default files under /dev/shm/ are
        tmpfs and all others disk, as on the reference machine.
        """
        if not isinstance(path, str):
            raise TypeError(f"path must be a str, not {type(path).__name__}")
        if not path.startswith("/") or path.endswith("/"):
            raise ValueError(f"path must be an absolute file path, got {path!r}")
        size = require_int("size", size, 0, (1 << 63) - 1)
        if backing is None:
            backing = "tmpfs" if path.startswith("/dev/shm/") else "disk"
        if backing not in ("disk", "tmpfs"):
            raise ValueError(f"backing must be 'disk' or 'tmpfs', got {backing!r}")
        path = self.links.get(path, path)
        old = self.files.get(path)
        if old is not None and old.backing == backing:
            resize(old, size)
            return old
        return self._add(File(self.machine, path, size, next(self._next_ino[backing]), backing))

    def symlink(self, target, link):
        """symlink: make `link` another name of `target` (an alias; no link inode)."""
        self.links[link] = target

    def lookup(self, path):
        """The File at `path` (following one alias), or None."""
        return self.files.get(self.links.get(path, path))

    def shmem_file(self, size):
        """shmem_kernel_file_setup("dev/zero"): the unnamed object behind a shared anonymous mapping."""
        f = File(self.machine, "/dev/zero", size, next(self._next_ino["shmem"]), "shmem")
        f.deleted = True
        return f

    def hugetlb_file(self, size, hsize):
        """hugetlb_file_setup(HUGETLB_ANON_FILE): the unnamed hugetlbfs file behind MAP_HUGETLB."""
        f = File(self.machine, "/anon_hugepage", size, next(self._next_ino["hugetlbfs"]), "hugetlbfs")
        f.deleted = True
        f.hsize = hsize
        return OpenFile(f, FMODE_READ | FMODE_WRITE)

    def open(self, path, flags=O_RDONLY):
        """do_filp_open: an OpenFile for `path`; OSError(ENOENT/EISDIR/EINVAL) as Linux gives."""
        if not isinstance(path, str):
            raise TypeError(f"path must be a str, not {type(path).__name__}")
        flags = require_int("flags", flags, 0, (1 << 32) - 1)
        acc = flags & O_ACCMODE
        if acc == O_ACCMODE:
            raise oserror(EINVAL, path)
        file = self.lookup(path)
        if file is None:
            if not flags & O_CREAT:
                raise oserror(ENOENT, path)
            file = self.create(path, 0)
        elif flags & O_TRUNC and acc != O_RDONLY:
            resize(file, 0)
        if path.endswith("/"):
            raise oserror(EISDIR, path)
        mode = {O_RDONLY: FMODE_READ, O_WRONLY: FMODE_WRITE, O_RDWR: FMODE_READ | FMODE_WRITE}[acc]
        return OpenFile(file, mode, flags)


__all__ = ["File", "OpenFile", "FileSystem", "FMODE_READ", "FMODE_WRITE", "get_file", "fput"]
