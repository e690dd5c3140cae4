"""x86_64 constants the model is built on (arch/x86/include/asm/page_64_types.h,
pgtable_64_types.h, e820).

mmlab models one configuration: 4-level paging, 4 KiB pages and no KASLR, so
the direct map starts at PAGE_OFFSET as the kernel's documentation draws it
(Documentation/arch/x86/x86_64/mm.rst).  A real kernel with
CONFIG_RANDOMIZE_MEMORY moves these bases at boot; the offsets within them
behave the same.
"""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)

PAGE_OFFSET = 0xffff888000000000        # the direct map of all physical memory
VMALLOC_START = 0xffffc90000000000
VMALLOC_END = 0xffffe8ffffffffff        # inclusive, as the kernel defines it
VMEMMAP_START = 0xffffea0000000000      # the struct page array
START_KERNEL_MAP = 0xffffffff80000000   # __START_KERNEL_map: the kernel image
TASK_SIZE = 0x00007ffffffff000          # TASK_SIZE_MAX with 4-level paging

MAX_DMA_PFN = (16 << 20) >> PAGE_SHIFT      # ZONE_DMA ends at 16 MiB
MAX_DMA32_PFN = (4 << 30) >> PAGE_SHIFT     # ZONE_DMA32 ends at 4 GiB

PHYSICAL_START = 0x1000000              # CONFIG_PHYSICAL_START: where the kernel image loads
PCI_HOLE_START = 0xc0000000             # RAM above 3 GiB is moved above 4 GiB, as QEMU and most PCs do
STRUCT_PAGE_SIZE = 64                   # sizeof(struct page) on x86_64

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40

_UNITS = {"": 1, "B": 1, "K": KiB, "KB": KiB, "KIB": KiB, "M": MiB, "MB": MiB, "MIB": MiB,
          "G": GiB, "GB": GiB, "GIB": GiB, "T": TiB, "TB": TiB, "TIB": TiB}


def parse_size(value, name="size"):
    """Bytes from an int or a string such as '512MiB', '4GiB' or '64k' (powers of two)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a string like '4GiB', not bool")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{name} must be an int or a string like '4GiB', not {type(value).__name__}")
    text = value.strip().replace("_", "")
    digits = len(text) - len(text.lstrip("0123456789"))
    number, unit = text[:digits], text[digits:].strip().upper()
    if not number or unit not in _UNITS:
        raise ValueError(f"{name}: cannot read {value!r}; write bytes or a size like '512MiB' or '4GiB'")
    return int(number) * _UNITS[unit]


def human(nbytes):
    """A byte count as the course prints it: '4 KiB', '2 MiB', '1.5 GiB'."""
    for unit, size in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if nbytes >= size:
            q = nbytes / size
            return f"{q:g} {unit}" if q == int(q) else f"{q:.1f} {unit}"
    return f"{nbytes} B"
