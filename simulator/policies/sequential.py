"""`sequential`: the whole network on one device, op after op (training step or inference)."""
from __future__ import annotations

from workloads.training import lower_training

from ..lowering import emit_ops, resident_bytes
from ..tasks import TaskGraph
from . import Policy, register


@register
class Sequential(Policy):
    def __init__(self) -> None:
        super().__init__(name="sequential",
                         description="One device runs the forward pass (and backward pass and "
                                     "update when training), op after op.")

    def plan(self, graph, cluster, training: bool, **opts) -> TaskGraph:
        g = lower_training(graph) if training else graph
        dev = cluster.devices[0]
        tg = TaskGraph(f"sequential:{graph.name}",
                       meta={"samples": graph.batch,
                             "resident_bytes": {dev.id: resident_bytes(g, training)}})
        emit_ops(tg, g, dev)
        return tg
