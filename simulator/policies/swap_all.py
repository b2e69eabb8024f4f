"""`swap-all`: vDNN's offloading (Rhu et al., MICRO 2016), the baseline of `swap`.

vDNN_conv (`layers=conv`, the default) offloads the input feature map (X) of every convolution
to host memory once its forward readers are done; vDNN_all (`layers=all`) offloads every
saved feature map (the inputs of pooling and the other layers too). No performance model:
what is offloaded and when does not depend on the budget.

Prefetching follows vDNN's prefetch layer search (the paper's Algorithm 1): when the
backward of layer n begins, layers n-1, n-2, ... are searched towards the input; the first
whose X is offloaded and not yet prefetched has its X prefetched, and the search stops at the
first convolution it meets, so at most one layer's X is prefetched per layer and never from
beyond the next convolution. A layer is what vDNN's figures list as one: every forward op
that computes (CONV, ACTV, POOL, batch norm, add, FC ...), in the graph's forward order; a
view (flatten) computes nothing and is none. A ReLU run in place is a layer of its own, as
vDNN's ACTV is: its backward is a kernel of its own whose start the search runs at, but its
X is its producer's storage, which its reader takes as X too, so that storage is offloaded
and prefetched once. A tensor the search never reaches (one no layer takes as input) is
prefetched right before its first backward reader.
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
    if layers == "all":
        offloaded = set(candidates)
    else:
        offloaded = {storage_owner(g, op.inputs[0]) for op in g.layers()
                     if op.kind == "conv2d"} & set(candidates)
    vdnn_layers = [op for op in ops
                   if op.phase == "forward" and op.kind != "input" and not op.is_view]
    index = {op.name: k for k, op in enumerate(vdnn_layers)}
    x_offloaded = [sorted({storage_owner(g, t) for t in op.inputs if t in g} & offloaded)
                   for op in vdnn_layers]
    backward_start: dict[int, int] = {}   # layer index -> position of its first backward op
    for i, op in enumerate(ops):
        if op.phase == "backward" and op.forward in index:
            backward_start.setdefault(index[op.forward], i)
    trigger: dict[str, str] = {}

    def prefetch(owner: str, before: int) -> None:
        t = candidates[owner]
        trigger[owner] = ops[max(min(before, t.first_use) - 1, t.swap_out_after)].name

    for n, start in sorted(backward_start.items(), key=lambda kv: kv[1]):
        for m in range(n - 1, -1, -1):        # vDNN's search, towards the input
            due = [s for s in x_offloaded[m] if s not in trigger]
            for owner in due:
                prefetch(owner, start)
            if due or vdnn_layers[m].kind == "conv2d":
                break
    for owner in sorted(offloaded - trigger.keys()):   # no layer's X: back before its first reader
        prefetch(owner, candidates[owner].first_use)
    offload = sorted(offloaded, key=lambda s: candidates[s].produced_at)
    return OffloadPlan(tuple(offload), trigger)


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
