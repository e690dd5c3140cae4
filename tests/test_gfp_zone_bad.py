"""gfp_zone must refuse every zone-flag combination Linux lists in GFP_ZONE_BAD.

include/linux/gfp.h marks as bad not only __GFP_DMA | __GFP_DMA32, but any pair
of the three zone modifiers __GFP_DMA, __GFP_DMA32 and __GFP_HIGHMEM, with or
without __GFP_MOVABLE (gfp_zone then hits VM_BUG_ON).  The model rejects only
__GFP_DMA | __GFP_DMA32 and quietly maps, for instance,
GFP_HIGHUSER_MOVABLE | GFP_DMA32 to ZONE_DMA32.

Regression test for a bug found while writing chapter 01's exercises: gfp_zone
once accepted these combinations.
"""
import pytest

from mmlab.mm import page_alloc as pa
from mmlab.uapi import __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM, __GFP_MOVABLE


@pytest.mark.parametrize("bits", [
    __GFP_DMA | __GFP_HIGHMEM,                                  # DMA with HIGHMEM
    __GFP_DMA32 | __GFP_HIGHMEM,                                # DMA32 with HIGHMEM
    __GFP_MOVABLE | __GFP_HIGHMEM | __GFP_DMA,                  # the same, movable
    __GFP_MOVABLE | __GFP_DMA32 | __GFP_HIGHMEM,                # GFP_HIGHUSER_MOVABLE | GFP_DMA32
])
def test_gfp_zone_bad_combinations_raise(bits):
    with pytest.raises(ValueError, match="gfp"):
        pa.gfp_zone(bits)


@pytest.mark.parametrize("bits, zone", [
    (0, pa.ZONE_NORMAL),                                        # no modifier
    (__GFP_DMA, pa.ZONE_DMA),                                   # DMA
    (__GFP_DMA32, pa.ZONE_DMA32),                               # DMA32
    (__GFP_HIGHMEM, pa.ZONE_NORMAL),                            # no HighMem on 64-bit
    (__GFP_MOVABLE, pa.ZONE_NORMAL),                            # movable alone stays in Normal
    (__GFP_MOVABLE | __GFP_HIGHMEM, pa.ZONE_MOVABLE),           # user pages
    (__GFP_MOVABLE | __GFP_DMA, pa.ZONE_DMA),                   # allowed by GFP_ZONE_TABLE
    (__GFP_MOVABLE | __GFP_DMA32, pa.ZONE_DMA32),               # allowed by GFP_ZONE_TABLE
])
def test_gfp_zone_good_combinations(bits, zone):
    assert pa.gfp_zone(bits) == zone
