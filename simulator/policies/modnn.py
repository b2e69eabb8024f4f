"""`modnn`: MoDNN (DATE 2017), the 1-D spatial split that DeCNN's code ships as a baseline:
every feature map cut into N horizontal slabs, each device running the whole network on its
slab and swapping halo rows with the slabs above and below before each windowed op
(_spatial_split.py says what is costed and what is left out).
"""
from __future__ import annotations

from . import register
from ._spatial_split import SpatialSplit


@register
class MoDNN(SpatialSplit):
    layout = "rows"

    def __init__(self) -> None:
        super().__init__("modnn",
                         "MoDNN (DATE 2017): every feature map cut into N horizontal slabs, "
                         "halo rows swapped with the neighbours before each windowed op "
                         "(inference).")
