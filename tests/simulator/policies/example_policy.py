"""A small policy kept as an example of adding one: this file, plus one registration line
(`policies.register(ReplicatedInference)`, as test_policy_modules.py does; a built-in policy
is listed in `_BUILTIN` of simulator/policies/__init__.py and decorated with `@register`).

`replicated-inference`: every device runs the whole forward pass on its own batch, with no
communication; throughput scales with the devices, latency does not.
"""
from __future__ import annotations

from simulator.lowering import emit_ops, resident_bytes
from simulator.policies import Option, Plan, Policy
from simulator.tasks import TaskGraph


class ReplicatedInference(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="replicated-inference", inference_only=True,
            description="Every device runs the forward pass on its own batch, independently.",
            options={"replicas": Option(0, "devices used (0: all)", int, lambda v: v >= 0,
                                        "an integer >= 0")})

    def plan(self, graph, cluster, training: bool, *, replicas) -> Plan:
        devices = cluster.devices[:replicas or len(cluster.devices)]
        tg = TaskGraph(f"{self.name}:{graph.name}",
                       meta={"samples": graph.batch * len(devices),
                             "resident_bytes": {d.id: resident_bytes(graph, False)
                                                for d in devices}})
        for d in devices:
            emit_ops(tg, graph, d, prefix=f"{d.id}/")
        return Plan(tg, graph, cluster, training, {"replicas": len(devices)})

    def finish(self, result, plan: Plan) -> None:
        result.extras["replicas"] = plan.options["replicas"]
