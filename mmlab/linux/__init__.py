"""mmlab.linux: the real kernel beside the model.

`probes` reads this machine's /proc and /sys into plain dicts with the same
parsers that read the model's m.proc files, so the two can be compared as
data.  Off Linux, or without root where a file needs it, probes raise
HostUnavailable and skip_reason() says why, for tests and notebook cells.
"""
from .probes import HostUnavailable, skip_reason, host_machine_params
from . import probes

__all__ = ["HostUnavailable", "skip_reason", "host_machine_params", "probes"]
