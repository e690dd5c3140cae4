"""/proc files, printed in Linux's layout (mm/vmstat.c, fs/proc/meminfo.c).

Each renderer reads the model's state and returns the text the real file
would hold, so a learner can put the model's file beside the kernel's.
"""
from .arch import PAGE_SHIFT
from .mm import page_alloc as pa


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
