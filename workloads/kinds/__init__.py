"""The op kinds of the IR: one `OpKind` record per kind, everything about the kind in one place.

A record says how an op of its kind is costed (FLOPs, multiply-adds, bytes read and written,
whether it is a view), how it trains (the forward tensors its gradient saves, the backward ops
the training lowering makes for it, the attributes it takes in a training graph), which cost
family a device model sets its efficiency by, what a calibrated profile keys its time on (a
GEMM shape or a layout), its parameters, and how PyTorch runs it (inside a `GraphModule` and
as the ATen kernel a training step calls). workloads/graph.py, workloads/training.py,
hwmodels/families.py and validation/calibrate/torch_exec.py / torch_ops.py read the records;
none of them lists kinds of its own. docs/op-kinds.md says how to add a kind.

The families of kinds live one module each: matmul (convolutions, linear layers, batched
products), elementwise (ReLU, arithmetic, dropout, gradient sums), masked_dropout, activations,
norms, pools, pools3d (of clips), conv_transpose and conv3d (convolutions the matmul roofline
costs), layout (views and copies, permute), loss_update (the loss and the optimizer step),
attention (softmax, the causal mask, fused attention), embedding (token and position tables,
the class token), pointwise_math (pow, rsqrt, the mean over trailing dimensions,
the product with a constant table), lrn (cross-channel local response
normalisation), gather (rows picked by a constant index), unfold (im2col), glu_amax (the
gated linear unit, the maximum over trailing dimensions), constant_matmul (the product with
a constant matrix), constants (a tensor computed from constants for a layer to read, one
sample's tensor repeated over the batch), selection_fused (max, min, top-k and sort along a
dimension with their positions; addcmul's scale and shift in one kernel), recurrent (LSTM,
GRU and RNN layers' recurrence over time, as cuDNN runs it). PyTorch is
imported only when a kernel is built.
"""
from __future__ import annotations

from ._registry import (
    PHASES,
    GemmRole,
    KindError,
    KindSet,
    OpKind,
    SerialSchedule,
    all_kinds,
    is_kind,
    kind_of,
    per_element,
    per_input_element,
    register,
    shape_layout,
    unregister,
)

# Importing the families declares their kinds, in this order (the order kinds are listed in).
# isort: off
from . import (layout, matmul, norms, elementwise, activations, pools,  # noqa: F401
               loss_update, masked_dropout, attention, embedding, layer_scale,
               conv_transpose, conv3d, pools3d, upsample, window_attention, cosine_attention,
               pointwise_math, difference, attention_bias, lrn, gather, unfold, glu_amax,
               constant_matmul, constants, selection_fused, recurrent)
# isort: on

__all__ = ["PHASES", "GemmRole", "KindError", "KindSet", "OpKind", "SerialSchedule", "all_kinds",
           "is_kind", "kind_of", "per_element", "per_input_element", "register", "shape_layout",
           "unregister"]
