"""mmlab: a runnable model of how Linux 6.x and glibc 2.36 allocate memory."""
from .errors import SegmentationFault, BusError, KernelBug, InvariantError, SEGV_MAPERR, SEGV_ACCERR, SI_KERNEL
from .machine import Machine
from . import uapi
from . import libc as _libc      # noqa: F401  (gives every process p.libc)

__all__ = ["Machine", "SegmentationFault", "BusError", "KernelBug", "InvariantError",
           "SEGV_MAPERR", "SEGV_ACCERR", "SI_KERNEL", "uapi"]
__version__ = "0.1.0"
