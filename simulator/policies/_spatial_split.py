"""Spatial model parallelism for inference, shared by `modnn` (modnn.py) and `coates`
(coates.py), the two baselines that DeCNN's code ships (MoDNN, DATE 2017: the feature maps cut
into N horizontal slabs; Coates et al., ICML 2013: a 2x2 grid of tiles).

Every device runs the whole original network on its part of every feature map and holds all
of its weights. Before each op whose window spans more than one pixel (the 3x3 convs of the
blocks and the max-pool; the stem reads its own slab of the image, halo included, from local
storage) the devices swap halos with their neighbours: kernel // 2 rows (and, on the grid,
columns) of the op's input. ResNet-50 has 17 such ops per image. The pooled features are
partial sums, reduced to device 0, which runs the classifier.

Each device's share is costed as the network at an input of equal area (side H / sqrt(N)),
so the halo's extra compute and a slab's shape are left out; on the grid the corner pixels
that a 3x3 window also needs are left out of the exchange (a pixel per channel).
"""
from __future__ import annotations

import math

from workloads import zoo
from workloads.graph import OpGraph

from . import ConfigError
from ._channel_split import INFERENCE_OPTIONS, Exchange, SplitPlan
from ._channel_split_tasks import SplitInferencePolicy

WINDOWED = frozenset({"conv2d", "maxpool"})


def _local_graph(graph: OpGraph, n: int, policy: str) -> OpGraph:
    if not zoo.known(graph.name):
        raise ConfigError(f"policy {policy!r} rebuilds the network on a part of the image: "
                          f"{graph.name!r} is not a zoo network")
    h = graph.input_op.out.shape[2]
    side = max(1, round(h / math.sqrt(n)))
    return zoo.get(graph.name, batch=graph.batch, input_size=side)


def _without(graph: OpGraph, drop: set[str]) -> OpGraph:
    out = OpGraph(graph.name, graph.meta)
    for op in graph.topo():
        if op.name not in drop:
            out.add(op)
    return out


def halo_bytes(graph: OpGraph, op_name: str, layout: str) -> int:
    """Bytes one device sends one neighbour before `op_name` (original, full-size graph)."""
    op = graph.op(op_name)
    n_, c, _, w = graph.op(op.inputs[0]).out.shape
    rows = int(op.attrs["kernel"][0]) // 2
    width = w if layout == "rows" else math.ceil(w / 2)
    return n_ * c * rows * width * graph.op(op.inputs[0]).out.dtype_bytes


def spatial_plan(graph: OpGraph, n: int, layout: str, policy: str) -> SplitPlan:
    if layout == "grid" and n != 4:
        raise ConfigError(f"policy {policy!r} splits the image into a 2x2 grid: it needs 4 "
                          f"devices, got {n}")
    local = _local_graph(graph, n, policy)
    forward = [op for op in local.topo() if op.phase == "forward"]
    classifier = forward[-1].name
    pooled = forward[-1].inputs[0]
    stem = next(op.name for op in forward if op.kind == "conv2d")
    exchanges = []
    for op in forward:
        if (op.kind in WINDOWED and op.name != stem
                and max(int(k) for k in op.attrs["kernel"]) > 1):
            nbytes = halo_bytes(graph, op.name, layout)
            exchanges.append(Exchange(f"halo_{layout}", f"{op.name}.halo", op.inputs[0],
                                      op.name, [nbytes] * n))
    exchanges.append(Exchange("reduce", "features.reduce", pooled, classifier,
                              [local.op(pooled).out.nbytes] * n))
    rest = _without(local, {classifier})
    return SplitPlan(n, [local] + [rest] * (n - 1), exchanges, final=classifier)


class SpatialSplit(SplitInferencePolicy):
    """Base of `modnn` and `coates`: `layout` is "rows" (slabs) or "grid" (2x2 tiles)."""
    layout = ""

    def __init__(self, name: str, description: str) -> None:
        super().__init__(name=name, description=description,
                         options=dict(INFERENCE_OPTIONS), inference_only=True)

    def split(self, graph: OpGraph, cluster) -> SplitPlan:
        return spatial_plan(graph, len(cluster.devices), self.layout, self.name)
