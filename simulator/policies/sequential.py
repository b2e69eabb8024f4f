"""`sequential`: the whole network on one device, op after op (training step or inference)."""
from __future__ import annotations

from ..tasks import TaskGraph
from . import Policy, register
from ._one_device import one_device_step


@register
class Sequential(Policy):
    def __init__(self) -> None:
        super().__init__(name="sequential", any_framework_memory=True,
                         description="One device runs the forward pass (and backward pass and "
                                     "update when training), op after op.")

    def plan(self, graph, cluster, training: bool, **opts) -> TaskGraph:
        return one_device_step(self.name, graph, cluster, training)
