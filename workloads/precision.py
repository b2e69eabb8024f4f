"""Training precision: how wide each tensor is stored and in which arithmetic each op runs.

    fp32      everything FP32 (on Ampere and newer, PyTorch runs convolutions as TF32 by
              default: torch.backends.cudnn.allow_tf32 is True; matmuls stay FP32 since
              torch.backends.cuda.matmul.allow_tf32 defaults to False)
    tf32      FP32 storage, convolutions and matmuls on TF32 tensor cores
    fp16      pure half precision (model.half()): weights, activations and arithmetic
    bf16      pure bfloat16 (model.bfloat16())
    amp-fp16  torch.autocast(float16) + GradScaler: FP32 master weights, gradients and
              optimizer state; convolutions and matmuls in FP16 on half copies of the
              weights; activations stored in half; the loss in FP32
    amp-bf16  the same with bfloat16 (no loss scaling)

The precision is stamped on every op (`op.attrs["precision"]`) so a device model can cost each
op by itself, and recorded in `graph.meta["precision"]`. Which arithmetic unit runs an op is the
device model's business (hwmodels/gpu.py): the same op graph runs on any part.
"""
from __future__ import annotations

import dataclasses

from .graph import Op, OpGraph, TensorSpec, WorkloadError

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "amp-fp16", "amp-bf16")
DEFAULT_PRECISION = "fp32"
# bytes per element of activations and of parameters
_STORAGE_BYTES = {"fp32": (4, 4), "tf32": (4, 4), "fp16": (2, 2), "bf16": (2, 2),
                  "amp-fp16": (2, 4), "amp-bf16": (2, 4)}
# the half format an AMP or pure-half precision computes in
HALF_FORMAT = {"fp16": "fp16", "amp-fp16": "fp16", "bf16": "bf16", "amp-bf16": "bf16"}


def check_precision(precision: object) -> str:
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise WorkloadError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    return precision


def activation_bytes(precision: str) -> int:
    return _STORAGE_BYTES[check_precision(precision)][0]


def parameter_bytes(precision: str) -> int:
    return _STORAGE_BYTES[check_precision(precision)][1]


def is_amp(precision: str) -> bool:
    return check_precision(precision).startswith("amp-")


def precision_of(op: Op) -> str:
    return op.attrs.get("precision", DEFAULT_PRECISION)


def with_precision(graph: OpGraph, precision: str) -> OpGraph:
    """The same network in `precision`: tensors re-sized, every op stamped. A graph already in
    that precision is returned as it is."""
    check_precision(precision)
    if graph.meta.get("precision", DEFAULT_PRECISION) == precision and all(
            precision_of(op) == precision for op in graph):
        return graph
    act, par = _STORAGE_BYTES[precision]
    # an AMP loss runs in FP32 (autocast's fp32 list): its scalar output stays 4 bytes
    loss_bytes = 4 if is_amp(precision) else act

    def spec(s: TensorSpec, nbytes: int) -> TensorSpec:
        return s if s.dtype_bytes == nbytes or s.integer else TensorSpec(s.shape, nbytes)

    def convert(op: Op) -> Op:
        out_bytes = loss_bytes if op.kind == "softmax_xent" else act
        attrs = {**op.attrs, "precision": precision}
        if op.params:
            attrs["param_dtype_bytes"] = par
        else:
            attrs.pop("param_dtype_bytes", None)
        return dataclasses.replace(op, in_specs=tuple(spec(s, act) for s in op.in_specs),
                                   out=spec(op.out, out_bytes), attrs=attrs)

    out = graph.copy(graph.name, convert)
    out.meta["precision"] = precision
    return out
