"""The ways a call into the model can fail, named as Linux and glibc report them.

Expected failures are not exceptions here: allocators return 0 (NULL) and
syscalls raise OSError with Linux's errno, as Python's os module does.
The classes below are for the three other outcomes a learner must tell apart.
"""
import errno as _errno
import os as _os

import numpy as _np

SEGV_MAPERR = 1     # no mapping at the address (include/uapi/asm-generic/siginfo.h)
SEGV_ACCERR = 2     # a mapping exists but its protection forbids the access
SI_KERNEL = 0x80    # sent by the kernel itself: a general protection fault, si_addr 0


class SegmentationFault(Exception):
    """A user access the kernel answers with SIGSEGV.

    `address` is the faulting address and `code` is SEGV_MAPERR or
    SEGV_ACCERR, as siginfo's si_addr and si_code carry them; a
    non-canonical address raises a general protection fault instead of a
    page fault, which arrives as SI_KERNEL with address 0.
    """

    def __init__(self, address, code, reason=""):
        self.address = address
        self.code = code
        self.reason = reason
        name = {SEGV_MAPERR: "SEGV_MAPERR", SEGV_ACCERR: "SEGV_ACCERR", SI_KERNEL: "SI_KERNEL"}.get(code, str(code))
        msg = f"SIGSEGV at {address:#x} ({name})"
        super().__init__(f"{msg}: {reason}" if reason else msg)


BUS_ADRERR = 2      # the address has no backing page (a file mapping past its end)


class BusError(Exception):
    """SIGBUS: the mapping exists but no page can back the address (a file page past its end).

    `address` and `code` (BUS_ADRERR) as siginfo carries them.
    """

    def __init__(self, address, code=BUS_ADRERR, reason=""):
        self.address, self.code, self.reason = address, code, reason
        super().__init__(f"SIGBUS at {address:#x} (BUS_ADRERR)" + (f": {reason}" if reason else ""))


class KernelBug(Exception):
    """Misuse that a real kernel answers with an oops or a BUG report.

    The model refuses the call, says why, and changes nothing, so the
    machine stays usable after the lesson the error teaches.
    """


class InvariantError(AssertionError):
    """m.check() found the model in a state Linux could never be in.

    The message starts with the name of the broken invariant.  This is a bug
    in mmlab (or in code a learner wrote into it), never an expected outcome.
    """


def oserror(code, what=""):
    """An OSError carrying errno `code`, worded as Python's os module words it."""
    return OSError(code, _os.strerror(code) + (f" ({what})" if what else ""))


def require_int(name, value, minimum=None, maximum=None):
    """Check that parameter `name` is an int within [minimum, maximum].

    Raises TypeError for a non-int (bool included: True is not a size) and
    ValueError naming the parameter when out of range.  Returns the value.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        if not isinstance(value, _np.integer):     # numpy ints are ints to a learner
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


EINVAL = _errno.EINVAL
ENOMEM = _errno.ENOMEM
EEXIST = _errno.EEXIST
EACCES = _errno.EACCES
EBADF = _errno.EBADF
EFAULT = _errno.EFAULT
EPERM = _errno.EPERM
EAGAIN = _errno.EAGAIN
ENODEV = _errno.ENODEV
EOVERFLOW = _errno.EOVERFLOW
ENOENT = _errno.ENOENT
EFBIG = _errno.EFBIG
EBUSY = _errno.EBUSY
EOPNOTSUPP = _errno.EOPNOTSUPP
EISDIR = _errno.EISDIR
ESPIPE = _errno.ESPIPE
