"""glibc, as far as memory goes: malloc and its friends (malloc/malloc.c in glibc 2.36).

    p = m.spawn("a.out")
    a = p.libc.malloc(100)

`p.libc` is created on first use, one per process; see mmlab.libc.malloc.
"""
from .malloc import Libc, GlibcAbort, Mallinfo2, Chunk, check_heap

__all__ = ["Libc", "GlibcAbort", "Mallinfo2", "Chunk", "check_heap", "libc_of"]


def libc_of(process):
    """The process's glibc (p.libc): made on first use and kept on the process."""
    lib = getattr(process, "_libc", None)
    if lib is None:
        lib = Libc(process)
        process._libc = lib
    return lib


def _set_libc(process, value):
    process._libc = value


def _attach():
    """Make p.libc a property of mmlab.process.Process: a Libc made on first use."""
    from .. import process as _process
    if not isinstance(_process.Process.__dict__.get("libc"), property):
        _process.Process.libc = property(libc_of, _set_libc, doc="glibc's malloc for this process (mmlab.libc.Libc)")


_attach()
