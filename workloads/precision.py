"""Training precision: how wide each tensor is stored and in which arithmetic each op runs.

    fp32      everything FP32 (on Ampere and newer, PyTorch runs convolutions as TF32 by
              default: torch.backends.cudnn.allow_tf32 is True; matmuls stay FP32 since
              torch.backends.cuda.matmul.allow_tf32 defaults to False)
    tf32      FP32 storage, convolutions and matmuls on TF32 tensor cores
    fp16      pure half precision (model.half()): weights, activations and arithmetic
    bf16      pure bfloat16 (model.bfloat16())
    amp-fp16  torch.autocast(float16) + GradScaler: FP32 master weights, gradients and
              optimizer state; convolutions and matmuls in FP16 on half copies of the
              weights; each activation stored in the dtype autocast gives it (below)
    amp-bf16  the same with bfloat16 (no loss scaling)

Under AMP a tensor's width follows PyTorch's CUDA autocast op lists: ops on its float16 list
(convolutions, matmuls, attention) write half; ops on its float32 list (pow, rsqrt, softmax,
the norms, the loss) write FP32; every other op writes the widest of its float inputs, as
PyTorch's type promotion does, and an op holding FP32 parameters promotes with them (an
embedding, a learned scale or position table), except a batch norm, whose cuDNN kernel writes
its input's dtype. So a Llama block's RMSNorm and the residual stream after an FP32 embedding
stay FP32. Not modelled: the half copy autocast makes of an FP32 tensor a half-list op reads
(that op is taken to read and save the FP32 tensor), and the network input, stored in half.

The precision is stamped on every op (`op.attrs["precision"]`) so a device model can cost each
op by itself, and recorded in `graph.meta["precision"]`. Which arithmetic unit runs an op is the
device model's business (hwmodels/gpu.py): the same op graph runs on any part.
"""
from __future__ import annotations

import dataclasses

from .errors import did_you_mean
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
        raise WorkloadError(f"unknown precision {precision!r}"
                            f"{did_you_mean(precision, PRECISIONS)}; "
                            f"known: {', '.join(PRECISIONS)}")
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
    width = _autocast_widths(graph, act, par) if is_amp(precision) else \
        {op.name: act for op in graph}

    def spec(s: TensorSpec, nbytes: int) -> TensorSpec:
        return s if s.dtype_bytes == nbytes or s.integer else TensorSpec(s.shape, nbytes)

    def convert(op: Op) -> Op:
        attrs = {**op.attrs, "precision": precision}
        if op.params:
            attrs["param_dtype_bytes"] = par
        else:
            attrs.pop("param_dtype_bytes", None)
        ins = tuple(spec(s, width[op.inputs[i]] if i < len(op.inputs) else act)
                    for i, s in enumerate(op.in_specs))
        return dataclasses.replace(op, in_specs=ins, out=spec(op.out, width[op.name]),
                                   attrs=attrs)

    out = graph.copy(graph.name, convert)
    out.meta["precision"] = precision
    return out


# PyTorch's CUDA autocast op lists ("CUDA Ops that can autocast to float16" and "... to
# float32" in the torch.amp documentation; aten/src/ATen/autocast_mode.cpp), by the kinds that
# run those ops. continuous_position_bias is an MLP ending in a linear layer; an LRN
# (F.local_response_norm) ends in x / d.pow(beta), a float32 pow.
AUTOCAST_HALF_KINDS = frozenset({"conv2d", "conv_transpose2d", "conv3d", "linear",
                                 "batched_matmul", "constant_matmul", "attention",
                                 "continuous_position_bias"})
AUTOCAST_FP32_KINDS = frozenset({"pow", "rsqrt", "softmax", "softmax_xent", "layernorm",
                                 "groupnorm", "softplus", "l2_normalize", "lrn"})
# off both lists and holding FP32 parameters, yet writing the input's dtype: cuDNN's batch norm
# takes half activations with FP32 scale and shift
_KEEPS_INPUT_DTYPE = frozenset({"batchnorm"})
# off both lists, reading a constant FP32 table (a buffer: autocast leaves buffers as they
# are), so promoting with it: Hugging Face's rotary x * cos, its cos made in FP32
_READS_FP32_BUFFER = frozenset({"mul_table", "mul_table_complex"})


def _autocast_widths(graph: OpGraph, half: int, param: int) -> dict[str, int]:
    """Bytes per element of each op's output under autocast (module docstring)."""
    shared = graph.meta.get("shared_params", {})
    width: dict[str, int] = {}
    for op in graph.topo():
        if op.kind in AUTOCAST_HALF_KINDS:
            width[op.name] = half
        elif op.kind in AUTOCAST_FP32_KINDS:
            width[op.name] = 4
        else:
            floats = [width[t] for t, s in zip(op.inputs, op.in_specs, strict=False)
                      if not s.integer]
            holds_fp32 = (op.params or op.name in shared) and op.kind not in _KEEPS_INPUT_DTYPE
            if holds_fp32 or op.kind in _READS_FP32_BUFFER:
                floats.append(param)
            width[op.name] = max(floats, default=half)
    return width
