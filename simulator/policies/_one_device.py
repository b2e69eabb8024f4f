"""One device runs the whole step, op after op: the plan of `sequential` and `none`, and of
`caffe` and `torch7` under their framework's memory."""
from __future__ import annotations

from workloads.training import lower_training

from ..framework_memory import (
    FrameworkMemory,
    framework_memory_of,
    with_framework_memory,
)
from ..lowering import emit_ops, resident_bytes
from ..policies import ConfigError
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


def framework_step(policy: str, framework: FrameworkMemory, graph, cluster,
                   training: bool) -> TaskGraph:
    """`one_device_step` under `framework`'s memory: a policy named after a framework. The
    graph's own framework memory must be the default or the same."""
    own = framework_memory_of(graph)
    if own.static and own != framework:
        raise ConfigError(f"policy {policy!r} trains under framework_memory "
                          f"{framework.text!r}, not {own.text!r}; use policy 'sequential' "
                          f"with framework_memory {own.text!r}")
    return one_device_step(policy, with_framework_memory(graph, framework), cluster, training)
