"""`none`: plain training with no memory saving, the name the swap study uses for `sequential`
(same code: it out-of-memories beyond its largest minibatch)."""
from __future__ import annotations

from . import register
from .sequential import Sequential


@register
class NoSaving(Sequential):
    def __init__(self) -> None:
        super().__init__()
        self.name = "none"
        self.description = "Plain training with no swapping or recomputation (= sequential)."
