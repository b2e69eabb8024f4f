"""`none`: plain training with no memory saving, the name the swap study uses for `sequential`
(the same plan: it runs out of memory beyond its largest minibatch)."""
from __future__ import annotations

from ..tasks import TaskGraph
from . import Policy, register
from ._one_device import one_device_step


@register
class NoSaving(Policy):
    def __init__(self) -> None:
        super().__init__(name="none", any_framework_memory=True,
                         description="Plain training with no swapping or recomputation "
                                     "(= sequential).")

    def plan(self, graph, cluster, training: bool, **opts) -> TaskGraph:
        return one_device_step(self.name, graph, cluster, training)
