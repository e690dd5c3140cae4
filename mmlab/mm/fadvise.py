"""posix_fadvise: advice about how a file will be read.

Models mm/fadvise.c (generic_fadvise, vfs_fadvise):

    POSIX_FADV_NORMAL      ra_pages back to the device's; FMODE_RANDOM, FMODE_NOREUSE off
    POSIX_FADV_RANDOM      FMODE_RANDOM: reads read only what they ask (page_cache_sync_ra)
    POSIX_FADV_SEQUENTIAL  ra_pages doubled; FMODE_RANDOM off
    POSIX_FADV_WILLNEED    force_page_cache_readahead of the range (capped at max(io_pages, ra_pages))
    POSIX_FADV_DONTNEED    start writeback of the range's dirty pages, then drop its clean,
                           unmapped, idle pages (only whole pages; mapped or dirty ones stay)
    POSIX_FADV_NOREUSE     FMODE_NOREUSE (used by MGLRU only; nothing else changes)

The advice is for the open file (struct file), not the inode: another
open() of the same path has its own readahead state.  Files without a
backing device (tmpfs, shmem: noop_backing_dev_info) accept every valid
advice and ignore it.  A negative length is EINVAL; length 0 means "to
the end of the file".
"""
from ..arch import PAGE_SHIFT, PAGE_SIZE
from ..errors import EINVAL
from ..trace import traced, note
from ..uapi import (POSIX_FADV_NORMAL, POSIX_FADV_RANDOM, POSIX_FADV_SEQUENTIAL, POSIX_FADV_WILLNEED,
                    POSIX_FADV_DONTNEED, POSIX_FADV_NOREUSE)
from . import filemap, readahead
from .readahead import FMODE_RANDOM, FMODE_NOREUSE

ADVICE_NAMES = {POSIX_FADV_NORMAL: "POSIX_FADV_NORMAL", POSIX_FADV_RANDOM: "POSIX_FADV_RANDOM",
                POSIX_FADV_SEQUENTIAL: "POSIX_FADV_SEQUENTIAL", POSIX_FADV_WILLNEED: "POSIX_FADV_WILLNEED",
                POSIX_FADV_DONTNEED: "POSIX_FADV_DONTNEED", POSIX_FADV_NOREUSE: "POSIX_FADV_NOREUSE"}
LLONG_MAX = (1 << 63) - 1
ESPIPE = 29


def advice_name(advice):
    return ADVICE_NAMES.get(advice, str(advice))


@traced(fmt={"f": lambda f: f.file.path, "advice": advice_name}, result=str)
def generic_fadvise(f, offset, length, advice):
    """generic_fadvise: apply advice to bytes [offset, offset+length) of open file f; 0 or -errno."""
    file = f.file
    if length < 0:
        return -EINVAL
    if advice not in ADVICE_NAMES:
        return -EINVAL
    if filemap.is_shmem(file) or file.backing != "disk":
        note(f, "generic_fadvise: no backing device (noop_backing_dev_info): advice ignored")
        return 0
    m = file.machine
    filemap.run_pending(m)
    endbyte = offset + length
    if not length or endbyte > LLONG_MAX:
        endbyte = LLONG_MAX
    else:
        endbyte -= 1                    # inclusive
    if advice == POSIX_FADV_NORMAL:
        f.f_ra.ra_pages = m.disk.ra_pages
        f.f_mode &= ~(FMODE_RANDOM | FMODE_NOREUSE)
    elif advice == POSIX_FADV_RANDOM:
        f.f_mode |= FMODE_RANDOM
    elif advice == POSIX_FADV_SEQUENTIAL:
        f.f_ra.ra_pages = m.disk.ra_pages * 2
        f.f_mode &= ~FMODE_RANDOM
    elif advice == POSIX_FADV_WILLNEED:
        start_index = offset >> PAGE_SHIFT
        end_index = endbyte >> PAGE_SHIFT
        nrpages = end_index - start_index + 1
        if start_index >= 0 and nrpages > 0:
            readahead.force_page_cache_readahead(f, start_index, nrpages)
    elif advice == POSIX_FADV_NOREUSE:
        f.f_mode |= FMODE_NOREUSE
    elif advice == POSIX_FADV_DONTNEED:
        fadvise_dontneed(f, offset, endbyte)
    return 0


def fadvise_dontneed(f, offset, endbyte):
    """POSIX_FADV_DONTNEED: start writeback of the range, then invalidate its whole pages.

    The first and last pages count only if wholly inside the range (a
    range ending at the file's last byte or on a page boundary keeps its
    last page in).
    """
    from . import page_writeback
    file = f.file
    if file.i_mapping is None:
        return
    if offset >= 0:                     # a negative range_start gives writeback no page to start at
        page_writeback.filemap_fdatawrite_range(file, offset, endbyte)
    start_index = (offset + PAGE_SIZE - 1) >> PAGE_SHIFT
    if start_index < 0:
        # Stored in an unsigned pgoff_t, a negative index lies past every page: nothing is dropped.
        return
    end_index = endbyte >> PAGE_SHIFT
    if endbyte & (PAGE_SIZE - 1) != PAGE_SIZE - 1 and endbyte != file.size - 1:
        if end_index == 0:
            return
        end_index -= 1
    if end_index >= start_index:
        n = filemap.invalidate_mapping_pages(file, start_index, end_index)
        note(f, "fadvise DONTNEED: %d page(s) of %d..%d dropped", n, start_index, end_index)


def vfs_fadvise(f, offset, length, advice):
    """vfs_fadvise: file->f_op->fadvise, which is generic_fadvise for every file mmlab has."""
    return generic_fadvise(f, offset, length, advice)


def ksys_fadvise64_64(p, fd, offset, length, advice):
    """fadvise64: the open file behind fd (EBADF), then vfs_fadvise; 0 or -errno."""
    f = p.fget(fd)
    if f is None:
        return -9                       # EBADF
    from .. import fs as _fs
    if not isinstance(f, _fs.OpenFile):
        # A terminal: no page cache to advise (its bdi is the noop one).
        return 0 if advice in ADVICE_NAMES and length >= 0 else -EINVAL
    return vfs_fadvise(f, offset, length, advice)


__all__ = ["generic_fadvise", "vfs_fadvise", "ksys_fadvise64_64"]
