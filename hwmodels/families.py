"""Op-kind families: the unit at which a device model's efficiency is set.

Every kind of the IR (workloads.graph.ALL_KINDS) is mapped here explicitly, so a new kind added
to the IR without a decision about its cost fails loudly (see DeviceModel.family) instead of
silently taking some default.
"""
from __future__ import annotations

from workloads.graph import ACTIVATIONS, MATMUL_KINDS

# Why these groups: kernels in one family share a library implementation and therefore a
# fraction of peak they reach (cuDNN implicit GEMM for conv, cuBLAS SGEMM for linear, one
# memory-streaming kernel for elementwise ops, ...). Gradients of conv are separate families
# because cuDNN/MKL-DNN use different algorithms for them (see the device models).
KIND_FAMILY: dict[str, str] = {
    # views: no arithmetic, no traffic; costed 0 before any family lookup matters
    "input": "view", "flatten": "view", "slice": "view", "reshape": "view",
    # convolution (forward, and the two gradients)
    "conv2d": "conv",
    "conv2d_grad_input": "conv_grad_input",
    "conv2d_grad_weight": "conv_grad_weight",
    # matrix products (fully connected layers)
    "linear": "matmul",
    "linear_grad_input": "matmul_grad",
    "linear_grad_weight": "matmul_grad",
    # streaming elementwise arithmetic
    "relu": "elementwise", "relu_grad": "elementwise", "add": "elementwise",
    "mul": "elementwise", "mul_grad": "elementwise",
    "scalar": "elementwise", "scalar_grad": "elementwise",
    "grad_accumulate": "elementwise",
    "dropout": "elementwise", "dropout_grad": "elementwise",   # a view outside training
    **{k: "elementwise" for a in ACTIVATIONS for k in (a, f"{a}_grad")},
    # normalisation: a reduction (over N,H,W; a sample; a group) then an elementwise pass
    "batchnorm": "normalization", "batchnorm_grad": "normalization",
    "layernorm": "normalization", "layernorm_grad": "normalization",
    "groupnorm": "normalization", "groupnorm_grad": "normalization",
    # pooling (window reductions) and their scatter-like gradients
    "maxpool": "pooling", "avgpool": "pooling", "adaptive_avgpool": "pooling",
    "maxpool_grad": "pooling", "avgpool_grad": "pooling", "adaptive_avgpool_grad": "pooling",
    # pure data movement with strided access (copies, no arithmetic)
    "concat": "data_movement", "channel_shuffle": "data_movement",
    "channel_shuffle_grad": "data_movement",
    "pad_channels": "data_movement",  # ResNet option-A shortcut: strided subsample + zero pad
    # loss: softmax + cross entropy, a small reduction per sample
    "softmax_xent": "loss", "softmax_xent_grad": "loss",
    # optimizer step over the parameters
    "sgd_update": "update",
}

FAMILIES: frozenset[str] = frozenset(KIND_FAMILY.values())

# Families whose efficiency is scaled down for grouped convolutions (attrs["groups"] > 1).
CONV_FAMILIES: frozenset[str] = frozenset({"conv", "conv_grad_input", "conv_grad_weight"})


def gemm_shape(op) -> tuple[int, int, int, int, int, int, int] | None:
    """(m, n, k, groups, window, stride, pixels) of the matrix product an op of a GEMM kind
    performs, else None: m rows (output positions), n columns (output channels), k the
    reduction, per group for grouped convolutions; window and stride are the kernel's and the
    stride's area, pixels the positions per sample (m / batch), which tells apart convolutions
    of one GEMM (16 maps of 8x8 from 4 of 16x16); all 1 for linear layers.

    Why: libraries run convolutions and fully connected layers as (implicit) GEMMs, and how
    close a GEMM gets to peak depends on each of its three dimensions, not only on its FLOPs
    (a 3-channel first layer or a 2x2-pixel late layer underfills the vector units however
    many FLOPs it has); and a strided or 1x1 convolution may take another algorithm than a
    3x3 one of the same GEMM (a strided input gradient scatters)."""
    a = op.attrs
    if op.kind.startswith("conv2d"):
        n_batch, c_in, h_in, w_in = a["in_shape"]
        _, c_out, h_out, w_out = a["out_shape"]
        g = int(a.get("groups", 1))
        kh, kw = a["kernel"]
        sh, sw = a["stride"]
        pixels = h_in * w_in if op.kind == "conv2d_grad_input" else h_out * w_out
        tail = (g, kh * kw, sh * sw, pixels)
        if op.kind == "conv2d":
            return (n_batch * h_out * w_out, c_out // g, c_in // g * kh * kw, *tail)
        if op.kind == "conv2d_grad_input":
            return (n_batch * h_in * w_in, c_in // g, c_out // g * kh * kw, *tail)
        return (c_out // g, c_in // g * kh * kw, n_batch * h_out * w_out, *tail)  # grad_weight
    if op.kind.startswith("linear"):
        rows, n_in, n_out = a["batch_rows"], a["in_features"], a["out_features"]
        if op.kind == "linear":
            return rows, n_out, n_in, 1, 1, 1, 1
        if op.kind == "linear_grad_input":
            return rows, n_in, n_out, 1, 1, 1, 1
        return n_out, n_in, rows, 1, 1, 1, 1                            # grad_weight
    return None


# forward pools are keyed on their output: a window kernel's cost goes with what it writes
# (a 2x2 pool costs 3x a global pool per input value on a 2-vCPU EPYC)
WINDOW_POOLS = ("maxpool", "avgpool", "adaptive_avgpool")


def layout(op) -> tuple[int, int]:
    """(planes, pixels) of the first input of an op that is not a GEMM (of the output for a
    forward pool): N*C planes of H*W pixels for an image tensor, N rows of F features for a
    2-D one, 1 plane otherwise; for an optimizer update, (parameter tensors, parameters).

    Why: ops of one kind with equal FLOPs and bytes run at different speeds by how their data
    is laid out (kernels loop over planes): measured on a 2-vCPU EPYC, a 2x2 max-pool over
    256 x 192 planes of 4x4 pixels takes 2.6 ns per value, one over 32 x 24 planes of 32x32
    pixels 4.6 ns, though their FLOPs and bytes are the same."""
    if op.kind == "sgd_update":   # (tensors, values): the optimizer steps tensor by tensor
        return int(op.attrs.get("tensors", 1)), max(int(op.params), 1)
    shape = op.in_specs[0].shape if op.in_specs else op.out.shape
    if op.kind in WINDOW_POOLS:
        shape = op.out.shape
    if len(shape) >= 3:
        planes = shape[0] * shape[1]
        return int(planes), int(_product(shape[2:]))
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    return 1, int(_product(shape))


def point_shape(op) -> tuple[int, ...]:
    """What a calibrated profile keys an op's time on besides FLOPs and bytes: the GEMM shape
    of a convolution or linear layer, the layout of any other op."""
    return gemm_shape(op) if op.kind in MATMUL_KINDS else layout(op)


def _product(dims) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return max(out, 1)
