"""`coates`: Coates et al. (ICML 2013), the 2x2 spatial split that DeCNN's code ships as a
baseline: every feature map cut into a 2x2 grid of tiles on 4 devices, each swapping halos with
its row and column neighbours before each windowed op (_spatial_split.py says what is costed
and what is left out).
"""
from __future__ import annotations

from . import register
from ._spatial_split import SpatialSplit


@register
class Coates(SpatialSplit):
    layout = "grid"

    def __init__(self) -> None:
        super().__init__("coates",
                         "Coates et al. (ICML 2013): every feature map cut into a 2x2 grid, "
                         "halos swapped with the neighbours before each windowed op "
                         "(inference, 4 devices).")
