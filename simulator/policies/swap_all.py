"""`swap-all`: vDNN-style offloading (Rhu et al., MICRO 2016), the baseline of `swap`.

vDNN_conv (`layers=conv`, the default): every conv input goes to host memory once its forward
readers are done, and comes back one layer ahead: the prefetch of layer L's input is issued
when the backward pass of layer L+1 begins. vDNN_all (`layers=all`): every saved feature map
(the inputs of pooling and other layers too, which vDNN_conv keeps on the GPU) is offloaded
the same way, prefetched when the backward of the conv or linear layer before its reader's
begins. No performance model: what is offloaded and when does not depend on the budget.
"""
from __future__ import annotations

from workloads.training import lower_training

from ..collectives import ALGORITHMS
from ..lowering import storage_owner
from ..tasks import TaskGraph
from . import Option, Plan, Policy, register
from ._data_parallel import (
    algorithm_option,
    data_parallel_options,
    default_algorithm,
    record_algorithm,
)
from ._offload import (
    REPLICAS,
    OffloadPlan,
    add_offload_extras,
    check_host_capacity,
    emit_training_step,
    offload_candidates,
    step_ops,
)

LAYER_CHOICES = ("conv", "all")


def vdnn_plan(g, ops, candidates, layers: str = "conv") -> OffloadPlan:
    pos = {op.name: i for i, op in enumerate(ops)}
    first_bwd: dict[int, int] = {}   # layer index -> position of its first backward op
    for i, op in enumerate(ops):
        if op.phase == "backward" and op.forward in pos and g.op(op.forward).layer:
            first_bwd.setdefault(g.op(op.forward).layer, i)
    if layers == "all":
        return _vdnn_all_plan(ops, candidates, sorted(first_bwd.values()))
    offload, trigger = [], {}
    for conv in g.layers():
        if conv.kind != "conv2d":
            continue
        owner = storage_owner(g, conv.inputs[0])
        t = candidates.get(owner)
        if t is None or owner in trigger:
            continue
        nxt = first_bwd.get(conv.layer + 1, t.first_use)   # next layer's backward begins
        at = min(nxt - 1, t.first_use - 1)
        offload.append(owner)
        trigger[owner] = ops[max(at, t.swap_out_after)].name
    offload.sort(key=lambda s: candidates[s].produced_at)
    return OffloadPlan(tuple(offload), trigger)


def _vdnn_all_plan(ops, candidates, layer_starts: list[int]) -> OffloadPlan:
    """Every candidate offloaded; its prefetch issued as the backward of the layer before the
    one holding its first backward reader begins (backward runs the layers last to first)."""
    trigger = {}
    for owner, t in candidates.items():
        own = [i for i in layer_starts if i <= t.first_use]
        earlier = [i for i in layer_starts if own and i < own[-1]]
        at = (earlier[-1] if earlier else t.first_use) - 1
        trigger[owner] = ops[max(min(at, t.first_use - 1), t.swap_out_after)].name
    return OffloadPlan(tuple(candidates), trigger)


@register
class SwapAll(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="swap-all", training_only=True,
            description="vDNN: every conv input (layers=all: every saved feature map) "
                        "offloaded to host memory after forward use, prefetched one layer "
                        "ahead in the backward pass.",
            options={"layers": Option("conv", "'conv' (vDNN_conv: conv inputs) or 'all' "
                                              "(vDNN_all: every saved feature map)", str,
                                      lambda v: v in LAYER_CHOICES, "conv or all"),
                     **data_parallel_options("bucket_mb", "collectives"), "replicas": REPLICAS,
                     "algorithm": algorithm_option(ALGORITHMS)})

    def plan(self, graph, cluster, training: bool, *, layers, bucket_mb, collectives,
             replicas, algorithm) -> TaskGraph:
        g = lower_training(graph)
        ops = step_ops(g)
        candidates = offload_candidates(g, ops)
        plan = vdnn_plan(g, ops, candidates, layers)
        check_host_capacity(cluster, plan, candidates, self.name)
        return emit_training_step(f"swap-all:{graph.name}", g, cluster, plan, candidates,
                                  bucket_mb=bucket_mb, collectives=collectives,
                                  replicas=replicas,
                                  algorithm=algorithm or default_algorithm(cluster))

    def finish(self, result, plan: Plan) -> None:
        add_offload_extras(result)
        record_algorithm(result, plan.cluster, plan.options["algorithm"])
