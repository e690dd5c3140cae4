"""Machine(...): what it accepts, what it refuses, and what a fresh one looks like."""
import pytest

from mmlab import Machine
from mmlab.arch import PAGE_OFFSET
from mmlab.mm import page_alloc as pa

MiB, GiB = 1 << 20, 1 << 30

BAD_MACHINES = [
    pytest.param({"ram": "32MiB"}, ValueError, "ram", id="ram below 64 MiB"),
    pytest.param({"ram": 62 * MiB}, ValueError, "ram", id="ram in bytes, below 64 MiB"),
    pytest.param({"ram": "2TiB"}, ValueError, "ram", id="ram above 1 TiB"),
    pytest.param({"ram": "65MiB"}, ValueError, "2 MiB", id="ram not a multiple of 2 MiB"),
    pytest.param({"ram": 64 * MiB + 4096}, ValueError, "2 MiB", id="ram in bytes, one page over"),
    pytest.param({"ram": "lots"}, ValueError, "ram", id="ram as garbage text"),
    pytest.param({"ram": "4 gigs"}, ValueError, "ram", id="ram with an unknown unit"),
    pytest.param({"ram": ""}, ValueError, "ram", id="ram as an empty string"),
    pytest.param({"ram": -GiB}, ValueError, "ram", id="negative ram"),
    pytest.param({"ram": 1.5 * GiB}, TypeError, "ram", id="ram as a float"),
    pytest.param({"ram": None}, TypeError, "ram", id="ram as None"),
    pytest.param({"ram": True}, TypeError, "ram", id="ram as a bool"),
    pytest.param({"cpus": 0}, ValueError, "cpus", id="no CPUs"),
    pytest.param({"cpus": -1}, ValueError, "cpus", id="negative CPUs"),
    pytest.param({"cpus": "2"}, TypeError, "cpus", id="cpus as a string"),
    pytest.param({"cpus": 2.0}, TypeError, "cpus", id="cpus as a float"),
    pytest.param({"seed": "x"}, TypeError, "seed", id="seed as a string"),
    pytest.param({"seed": 0.5}, TypeError, "seed", id="seed as a float"),
    pytest.param({"seed": None}, TypeError, "seed", id="seed as None"),
    pytest.param({"pcp": 1}, TypeError, "pcp", id="pcp as an int"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD_MACHINES)
def test_bad_machine_arguments(kwargs, error, match):
    args = {"ram": "64MiB", **kwargs}
    with pytest.raises(error, match=match):
        Machine(**args)


GOOD_RAM = [
    pytest.param(64 * MiB, 64 * MiB, id="bytes"),
    pytest.param("64MiB", 64 * MiB, id="MiB"),
    pytest.param("64 MiB", 64 * MiB, id="a space before the unit"),
    pytest.param("64m", 64 * MiB, id="a one-letter unit, lower case"),
    pytest.param("1GiB", GiB, id="GiB"),
    pytest.param("1_024MiB", GiB, id="digits grouped with _"),
]


@pytest.mark.parametrize("ram, size", GOOD_RAM)
def test_ram_spellings(ram, size):
    assert Machine(ram=ram).ram == size


def test_fresh_machine_holds_together():
    """A fresh machine: the invariants hold, RAM is managed less what boot keeps, a readable repr."""
    m = Machine(ram="256MiB", cpus=4, seed=7)
    m.check()
    assert repr(m) == "Machine(ram='256 MiB', cpus=4, seed=7)"
    assert m.totalram_pages == sum(z.managed_pages for z in m.zones)
    # 256 MiB: 158 RAM frames below 640 KiB (pfn 1 to 0x9e) and 65280 from 1 MiB are present;
    # boot keeps the first MiB, 24 MiB of kernel image and 4 MiB of struct pages.
    present = sum(z.present_pages for z in m.zones)
    assert present == 158 + (256 - 1) * 256
    assert m.totalram_pages == present - 158 - (24 + 4) * 256
    assert [z.populated() for z in m.zones] == [True, True, False, False, False]


def test_machines_built_alike_are_alike():
    """The seed fixes every choice: two machines from the same arguments run the same."""
    a, b = Machine(ram="128MiB", seed=3), Machine(ram="128MiB", seed=3)
    assert [a.alloc_pages(o) for o in (0, 3, 9, 1)] == [b.alloc_pages(o) for o in (0, 3, 9, 1)]
    assert a.proc.zoneinfo() == b.proc.zoneinfo()


def test_direct_map_addresses_round_trip():
    """page_address and virt_to_phys/phys_to_virt: the direct map at PAGE_OFFSET."""
    m = Machine(ram="64MiB")
    pfn = m.alloc_pages(0)
    addr = m.page_address(pfn)
    assert addr == PAGE_OFFSET + pfn * 4096
    assert m.virt_to_phys(addr) == pfn * 4096
    assert m.phys_to_virt(pfn * 4096 + 5) == addr + 5
    with pytest.raises(ValueError, match="pfn"):
        m.page_address(m.max_pfn)                                       # beyond the last frame
    with pytest.raises(ValueError, match="addr"):
        m.virt_to_phys(PAGE_OFFSET - 1)                                  # below the direct map
    with pytest.raises(TypeError, match="phys"):
        m.phys_to_virt("0x1000")


def test_set_min_free_kbytes_recomputes_the_watermarks(unchanged):
    """sysctl vm.min_free_kbytes: each zone's min is its share of the new value; bad values change nothing."""
    m = Machine(ram="256MiB")
    m.set_min_free_kbytes(4096)
    lowmem = sum(z.managed_pages for z in m.zones)
    for z in m.zones[:2]:
        assert z.watermark[pa.WMARK_MIN] == 1024 * z.managed_pages // lowmem
    with unchanged(m), pytest.raises(ValueError, match="kbytes"):
        m.set_min_free_kbytes(-1)
    with unchanged(m), pytest.raises(TypeError, match="kbytes"):
        m.set_min_free_kbytes("4096")
