"""What a run's throughput means in tokens and FLOPs: the tokens in one sample, the op graph's
counted FLOPs per sample, and the devices' peak in the run's arithmetic (docs/metrics.md).

FLOPs are the op graph's own (workloads/kinds declare them per kind), not 6 x parameters x
tokens: the same count serves a CNN, an encoder, a decoder and an imported model, and it holds
attention's products, which 6N leaves out. Only the network's forward and backward ops count:
the optimizer update, recomputed forwards and communication are work the model does not need
(the usual meaning of model FLOPs utilisation).
"""
from __future__ import annotations

import math

from workloads.graph import OpGraph
from workloads.training import lower_training


def tokens_per_sample(graph: OpGraph) -> int | None:
    """Tokens one sample holds: the elements of a sample of the graph's first token-id input
    (an embedding's input, `input(tokens=V)`); None for a graph without one (a CNN, a ViT,
    whose input is an image)."""
    for op in graph.topo():
        if op.kind == "input" and "tokens" in op.attrs:
            return math.prod(op.out.shape[1:])
    return None


def model_flops_per_sample(graph: OpGraph, training: bool) -> float:
    """FLOPs of one sample's step: the forward ops, and for training the loss and backward ops
    of its lowering; every op's FLOPs scale with the batch, so the step's over the batch."""
    if training:
        graph = lower_training(graph)
        flops = graph.flops(("forward", "backward"))
    else:
        flops = graph.flops(("forward",))
    return flops / graph.batch


def peak_flops_per_s(graph: OpGraph, cluster) -> float:
    """The cluster's rated (datasheet) peak, summed over its devices, each in the arithmetic
    that runs most of the graph's FLOPs there: tensor cores where the precision puts the
    products on them (fp16 under amp-fp16, TF32 for fp32 convolutions on Ampere and newer),
    FP32 otherwise (and on devices without tensor formats)."""
    peaks: dict = {}   # a cluster's devices share a few specs: each looked at once
    for device in cluster.devices:
        if device.spec not in peaks:
            peaks[device.spec] = _device_peak_flops_per_s(graph, device)
    return sum(peaks[device.spec] for device in cluster.devices)


def _device_peak_flops_per_s(graph: OpGraph, device) -> float:
    arithmetic = getattr(device.model, "arithmetic_precision", None)   # GPUs only
    by_unit: dict[str, float] = {}
    for op in graph.topo():
        if arithmetic is not None and op.flops > 0:
            unit = arithmetic(op)
            by_unit[unit] = by_unit.get(unit, 0.0) + op.flops
    unit = max(sorted(by_unit), key=lambda u: by_unit[u]) if by_unit else "fp32"
    return device.spec.peak_flops_for(unit)
