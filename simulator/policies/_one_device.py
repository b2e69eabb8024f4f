"""One device runs the whole step, op after op: the plan of `sequential` and `none`."""
from __future__ import annotations

from workloads.training import lower_training

from ..lowering import emit_ops, resident_bytes
from ..tasks import TaskGraph


def one_device_step(policy: str, graph, cluster, training: bool) -> TaskGraph:
    """The forward pass (and backward pass and update when training) on the first device."""
    g = lower_training(graph) if training else graph
    dev = cluster.devices[0]
    tg = TaskGraph(f"{policy}:{graph.name}",
                   meta={"samples": graph.batch,
                         "resident_bytes": {dev.id: resident_bytes(g, training)}})
    emit_ops(tg, g, dev)
    return tg
