"""Synthetic networks that calibration replays besides the zoo: a grid of op shapes.

The zoo's networks cover few shapes (CIFAR ResNets use only 3x3 convolutions of 16-64 channels).
A profile must also predict networks it has never seen (users bring their own through
`from_torch`), so calibration also measures a grid: residual stages of k x k convolutions (k =
1, 3, 5, 7) from 64x64 down to 4x4 pixels at three widths (8-128, 16-256 and 32-512 channels),
so channels and resolution vary apart, and for k = 1, 3 at channel counts that are not whole
vectors (20-320), from 48x48 down to 3x3 pixels (map sizes between the powers of two) and
squeezed to a third and expanded back (24-384 channels); first layers on 1- and 3-channel images
(kernels 3 to 11, strides 1 to 4); depthwise-separable stages (strides 1 and 2) with
concatenation at three widths; grouped 3x3 convolutions of 2 to 32 channels per group
between 1x1 convolutions, from 64x64 down to 4x4 pixels; 2x2 and 3x3 max and average pooling;
stacks of fully connected layers; and every pointwise activation besides ReLU (tanh, sigmoid,
GELU, ...) on images of three resolutions and on fully connected layers (with a batch norm of
features); products of maps with per-channel gates (squeeze-and-excitation) and with their own
sigmoid; and group, layer and plain batch norm on images and on features; and small transformers
(calibration_transformers.py): one decoder block at sequence lengths 64 to 512, head dims 32 and
64, attention fused and written out, and one encoder block on image patches; and blocks of
post-2016 networks (calibration_blocks.py): ConvNeXt, ShuffleNetV2, MBConv with
squeeze-and-excitation, Llama, a decoder with a 65536-token vocabulary, PoolFormer, an
encoder-decoder of maps, Caffe-era local response normalisation; and windowed attention, Swin's
and Swin V2's (calibration_windows.py).
No validation case's shapes were copied into it (the odd widths, the pooling and the funnels
were added once held-out modules showed that kinds of kernel were missing, not their shapes;
the 48-pixel stages once leave-one-out showed that equal GEMMs on smaller maps run faster),
and it is never validated against, so it adds coverage without leaking any validation case
into the profile.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

from workloads import zoo
from workloads.builder import GraphBuilder
from workloads.graph import ACTIVATIONS, OpGraph, WorkloadError

from .calibration_blocks import BLOCK_CASES, BLOCK_NETWORKS
from .calibration_transformers import TRANSFORMER_CASES, TRANSFORMER_NETWORKS
from .calibration_windows import WINDOW_CASES, WINDOW_NETWORKS

STAGE_CHANNELS = (16, 32, 64, 128, 256)   # one stage per resolution: 64, 32, 16, 8, 4 pixels
# the same stages from a 48x48 input (48, 24, 12, 6, 3 pixels), for k = 1, 3: at equal GEMM
# shape a convolution runs faster on smaller maps (oneDNN skips padding taps, blocks rows),
# so the grid needs map sizes between its powers of two, as ImageNet networks have (56, 28, 14, 7)
MID_SIZE = 48
WIDTHS = {"narrow": 0.5, "": 1.0, "wide": 2.0}
# channel counts that are not whole vectors (20, 40: oneDNN pads them to 32, 48 with AVX-512;
# hwmodels/kernels.py), for the common kernels
ODD_WIDTH = 1.25
# funnels: stage widths squeezed to a third (8-128 channels) and expanded back
FUNNEL_CHANNELS = (24, 48, 96, 192, 384)
# activations with the parameters networks set (ReLU6, a 0.2 leaky slope, GPT's GELU)
ACTIVATION_ATTRS: dict[str, dict[str, Any]] = {"hardtanh": {"min_val": 0.0, "max_val": 6.0},
                    "leaky_relu": {"negative_slope": 0.2}, "gelu": {"approximate": "tanh"}}
# grouped stages: channels per stage (64x64 down to 4x4 pixels), and channels per group (2 to
# 32: from two lanes of a vector to two vectors)
GROUPED_CHANNELS = (32, 64, 128, 256, 512)
GROUP_WIDTHS = (2, 4, 8, 16, 32)
# first layers: (out channels, kernel, stride), each a branch from the image
STEMS = ((16, 3, 1), (6, 5, 1), (32, 7, 2), (64, 11, 4), (24, 3, 2), (48, 5, 2))


def conv_grid(kernel: int, batch: int, width: float = 1.0, name: str | None = None,
              size: int = 64) -> OpGraph:
    b = GraphBuilder(name or f"grid_k{kernel}", input_shape=(3, size, size), batch=batch)
    x = b.input()
    pad = kernel // 2
    for i, c in enumerate(STAGE_CHANNELS):
        c = max(4, int(c * width))
        with b.scope(f"stage{i}"):
            x = b.relu(b.batchnorm(b.conv2d(x, c, kernel, stride=1 if i == 0 else 2,
                                            padding=pad)))
            y = b.relu(b.batchnorm(b.conv2d(x, c, kernel, padding=pad)))
            y = b.batchnorm(b.conv2d(y, c, kernel, padding=pad))
            x = b.relu(b.add(x, y))
    x = b.flatten(b.adaptive_avgpool(x))
    b.linear(x, 10)
    return b.build()


def funnel_grid(kernel: int, batch: int, name: str | None = None) -> OpGraph:
    """Convolutions whose input and output widths differ by 3x, both ways: per stage, a k x k
    squeeze from c to c/3 channels and a k x k expansion back, around a residual (the shape
    of a bottleneck block's 1x1 convolutions, of a dense block's narrow growth layers).
    conv_grid keeps the widths equal, and a GEMM's fill is not a product of its dimensions'
    fills: a kernel with one vector of output channels runs no faster for more input channels.
    (3x, not the 4x of ResNet bottlenecks: the grid is to cover kinds of shape, not copy any.)"""
    b = GraphBuilder(name or f"grid_k{kernel}_funnel", input_shape=(3, 64, 64), batch=batch)
    x = b.input()
    pad = kernel // 2
    for i, c in enumerate(FUNNEL_CHANNELS):
        with b.scope(f"stage{i}"):
            x = b.relu(b.batchnorm(b.conv2d(x, c, 3, stride=1 if i == 0 else 2, padding=1)))
            y = b.relu(b.batchnorm(b.conv2d(x, c // 3, kernel, padding=pad)))
            y = b.batchnorm(b.conv2d(y, c, kernel, padding=pad))
            x = b.relu(b.add(x, y))
    x = b.flatten(b.adaptive_avgpool(x))
    b.linear(x, 10)
    return b.build()


def stem_grid(channels: int, batch: int) -> OpGraph:
    """First layers (no input gradient) on a `channels`-channel image, side by side."""
    size = 28 if channels == 1 else 64
    b = GraphBuilder(f"grid_stem{channels}", input_shape=(channels, size, size), batch=batch)
    x = b.input()
    branches = []
    for i, (c, kernel, stride) in enumerate(STEMS):
        with b.scope(f"stem{i}"):
            y = b.relu(b.conv2d(x, c, kernel, stride=stride, padding=kernel // 2 if i % 2 else 0))
            branches.append(b.flatten(b.adaptive_avgpool(y)))
    b.linear(b.concat(branches, dim=1), 10)
    return b.build()


def separable_grid(batch: int, width: float = 1.0, name: str = "grid_separable",
                   kernel: int = 3) -> OpGraph:
    """MobileNet-like stages: a strided k x k depthwise then 1x1 pointwise, concatenated with a
    pooled 1x1 branch, then a stride-1 depthwise-pointwise pair. (PyTorch's CPU depthwise
    kernels for 5x5 and 7x7 windows are another code path: their weight gradients run 10-20x
    slower per FLOP than the 3x3 ones, so the grid measures them too.)"""
    b = GraphBuilder(name, input_shape=(3, 64, 64), batch=batch)
    x = b.relu(b.batchnorm(b.conv2d(b.input(), int(16 * width), 3, padding=1)))
    for i, c in enumerate(STAGE_CHANNELS[1:]):
        c = int(c * width)
        with b.scope(f"stage{i}"):
            cin = b.spec(x).shape[1]
            d = b.relu(b.batchnorm(b.conv2d(x, cin, kernel, stride=2, padding=kernel // 2,
                                            groups=cin)))
            p = b.relu(b.batchnorm(b.conv2d(d, c // 2, 1)))
            q = b.relu(b.batchnorm(b.conv2d(b.maxpool(x, 2), c // 2, 1)))
            x = b.concat([p, q])
            d = b.relu(b.batchnorm(b.conv2d(x, c, kernel, padding=kernel // 2, groups=c)))
            x = b.relu(b.batchnorm(b.conv2d(d, c, 1)))
    x = b.flatten(b.avgpool(x, 4))
    b.linear(x, 10)
    return b.build()


def grouped_grid(batch: int, group_width: int, channels=GROUPED_CHANNELS) -> OpGraph:
    """Bottleneck stages around a grouped 3x3 convolution of `group_width` channels per group
    (1x1 in, grouped 3x3, 1x1 out, residual), at `channels` wide from 64x64 down to 4x4 pixels.

    Why: oneDNN runs a grouped convolution with fewer channels per group than a vector holds
    in its direct kernel, blocked by the group's channels (4 or 8 of the 16 fp32 lanes of
    AVX-512 filled; the weight gradient of 4 per group goes to im2col + GEMM), and a
    depthwise one in a kernel of its own, so neither depthwise nor dense measurements tell
    how fast they run: 3x3 convolutions of 4, 8 and 16 channels per group ran at 11, 40 and
    55 GFLOP/s on an AVX-512 Xeon core where a dense one ran at 138."""
    b = GraphBuilder(grouped_name(group_width), input_shape=(3, 64, 64), batch=batch)
    x = b.input()
    for i, c in enumerate(channels):
        with b.scope(f"stage{i}"):
            x = b.relu(b.batchnorm(b.conv2d(x, c, 1)))
            y = b.relu(b.batchnorm(b.conv2d(x, c, 3, stride=1 if i == 0 else 2, padding=1,
                                            groups=max(1, c // group_width))))
            x = b.relu(b.batchnorm(b.conv2d(y, c, 1)))
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def grouped_name(group_width: int) -> str:
    return f"grid_grouped_w{group_width}"


def pool_grid(batch: int) -> OpGraph:
    """Pooling at three resolutions and widths: 2x2 and overlapping 3x3 stride-2 max and
    average pools side by side, concatenated, then a 1x1 convolution (so that every pool
    has a gradient)."""
    b = GraphBuilder("grid_pool", input_shape=(3, 64, 64), batch=batch)
    x = b.relu(b.conv2d(b.input(), 16, 3, padding=1))
    for i, c in enumerate((16, 32, 64)):
        with b.scope(f"stage{i}"):
            pools = [b.maxpool(x, 2), b.avgpool(x, 2), b.maxpool(x, 3, 2, 1),
                     b.avgpool(x, 3, 2, 1)]
            x = b.relu(b.conv2d(b.concat(pools), 2 * c, 1))
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def mlp_grid(batch: int, widths=(2048, 1024, 512, 256), name: str = "grid_mlp") -> OpGraph:
    b = GraphBuilder(name, input_shape=(3, 32, 32), batch=batch)
    x = b.flatten(b.input())
    for width in widths:
        x = b.dropout(b.relu(b.linear(x, width)))
    b.linear(x, 10)
    return b.build()


def activation_grid(batch: int) -> OpGraph:
    """Each activation of the IR (graph.ACTIVATIONS, with non-default attributes where it
    has any) after a convolution, at three resolutions (32x32 of 16 channels to 8x8 of 64):
    each kind's time per value on image layouts."""
    b = GraphBuilder("grid_act", input_shape=(3, 32, 32), batch=batch)
    x = b.input()
    for i, c in enumerate((16, 32, 64)):
        with b.scope(f"stage{i}"):
            x = b.conv2d(x, c, 3, stride=1 if i == 0 else 2, padding=1)
            for kind in ACTIVATIONS:
                x = b.activation(x, kind, **ACTIVATION_ATTRS.get(kind, {}))
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def activation_mlp_grid(batch: int) -> OpGraph:
    """Each activation between fully connected layers (1024, 256 features), after a batch
    norm: the layout of an MLP's activations (rows x features)."""
    b = GraphBuilder("grid_act_mlp", input_shape=(3, 32, 32), batch=batch)
    x = b.flatten(b.input())
    for width in (1024, 256):
        x = b.batchnorm(b.linear(x, width))
        for kind in ACTIVATIONS:
            x = b.activation(x, kind, **ACTIVATION_ATTRS.get(kind, {}))
    b.linear(x, 10)
    return b.build()


def gate_grid(batch: int) -> OpGraph:
    """Products of maps and gates at four resolutions (64x64 of 16 channels to 8x8 of 128):
    a per-channel gate computed by fully connected layers (sigmoid) and one by 1x1
    convolutions (hard sigmoid), each an (N, C, 1, 1) factor broadcast over the map, and a
    map times its own sigmoid (swish written out): what squeeze-and-excitation blocks and
    gated activations run; and a hard swish written out with constants (x + 3, / 6)."""
    b = GraphBuilder("grid_gate", input_shape=(3, 64, 64), batch=batch)
    x = b.input()
    for i, c in enumerate(STAGE_CHANNELS[:4]):
        with b.scope(f"stage{i}"):
            x = b.batchnorm(b.conv2d(x, c, 3, stride=1 if i == 0 else 2, padding=1))
            x = b.mul(x, b.activation(x, "sigmoid"))
            pooled = b.adaptive_avgpool(x)
            fc = b.linear(b.relu(b.linear(b.flatten(pooled), max(4, c // 4))), c)
            x = b.mul(x, b.reshape(b.activation(fc, "sigmoid"), (batch, c, 1, 1)))
            conv = b.conv2d(b.relu(b.conv2d(b.adaptive_avgpool(x), max(4, c // 4), 1)), c, 1)
            x = b.mul(x, b.activation(conv, "hardsigmoid"))
            # hard swish written with constants: x * relu6(x + 3) / 6
            relu6 = b.activation(b.scalar(x, shift=3.0), "hardtanh", min_val=0.0, max_val=6.0)
            x = b.scalar(b.mul(x, relu6), scale=1 / 6)
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def norm_grid(batch: int) -> OpGraph:
    """Group norm (groups of 4 and of half the channels) and batch norm without scale and
    shift, after 3x3 convolutions at four resolutions (64x64 of 16 channels to 8x8 of 128),
    and a layer norm over a whole (C, H, W) map."""
    b = GraphBuilder("grid_norm", input_shape=(3, 64, 64), batch=batch)
    x = b.input()
    for i, c in enumerate(STAGE_CHANNELS[:4]):
        with b.scope(f"stage{i}"):
            x = b.relu(b.groupnorm(b.conv2d(x, c, 3, stride=1 if i == 0 else 2, padding=1),
                                   c // 4))
            x = b.relu(b.groupnorm(b.conv2d(x, c, 3, padding=1), 2))
            x = b.relu(b.batchnorm(b.conv2d(x, c, 3, padding=1), affine=False))
    x = b.layernorm(x, b.spec(x).shape[1:])
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def norm_mlp_grid(batch: int) -> OpGraph:
    """Layer norm between fully connected layers (1024 and 256 features, with and without
    scale and shift), and group norm of features."""
    b = GraphBuilder("grid_norm_mlp", input_shape=(3, 32, 32), batch=batch)
    x = b.flatten(b.input())
    x = b.relu(b.layernorm(b.linear(x, 1024), (1024,)))
    x = b.relu(b.layernorm(b.linear(x, 256), (256,), affine=False))
    x = b.reshape(b.linear(x, 256), (batch, 256, 1))
    x = b.flatten(b.relu(b.groupnorm(x, 16)))
    b.linear(x, 10)
    return b.build()


def _grid_name(kernel: int, width: str) -> str:
    return f"grid_k{kernel}_{width}" if width else f"grid_k{kernel}"


def _mid_name(kernel: int, width: str) -> str:
    return f"{_grid_name(kernel, width)}_px{MID_SIZE}"


NETWORKS: dict[str, Callable[..., OpGraph]] = {
    # partial(conv_grid, k, ...)(batch) is conv_grid(k, batch, ...)
    **{_grid_name(k, w): partial(conv_grid, k, width=s, name=_grid_name(k, w))
       for k in (1, 3, 5, 7) for w, s in WIDTHS.items()},
    **{_grid_name(k, "odd"): partial(conv_grid, k, width=ODD_WIDTH, name=_grid_name(k, "odd"))
       for k in (1, 3)},
    **{_grid_name(k, "funnel"): (lambda batch, k=k: funnel_grid(k, batch)) for k in (1, 3)},
    **{_mid_name(k, w): partial(conv_grid, k, width=s, name=_mid_name(k, w), size=MID_SIZE)
       for k in (1, 3) for w, s in (("narrow", 0.5), ("", 1.0))},
    "grid_stem1": lambda batch: stem_grid(1, batch),
    "grid_stem3": lambda batch: stem_grid(3, batch),
    "grid_separable": separable_grid,
    "grid_separable_wide": lambda batch: separable_grid(batch, 2.0, "grid_separable_wide"),
    "grid_separable_odd": lambda batch: separable_grid(batch, ODD_WIDTH, "grid_separable_odd"),
    **{f"grid_separable_k{k}": (lambda batch, k=k: separable_grid(batch, 1.0,
                                                                  f"grid_separable_k{k}", k))
       for k in (5, 7)},
    **{grouped_name(w): (lambda batch, w=w: grouped_grid(batch, w)) for w in GROUP_WIDTHS},
    "grid_pool": pool_grid,
    "grid_mlp": mlp_grid,
    "grid_mlp_narrow": lambda batch: mlp_grid(batch, (512, 192, 64), "grid_mlp_narrow"),
    # steps that move less than a 32 MiB L3 (hwmodels/residency.py fits on them)
    "grid_mlp_small": lambda batch: mlp_grid(batch, (256, 64), "grid_mlp_small"),
    "grid_mlp_tiny": lambda batch: mlp_grid(batch, (128, 32), "grid_mlp_tiny"),
    "grid_act": activation_grid,
    "grid_act_mlp": activation_mlp_grid,
    "grid_gate": gate_grid,
    "grid_norm": norm_grid,
    "grid_norm_mlp": norm_mlp_grid,
    **TRANSFORMER_NETWORKS,
    **BLOCK_NETWORKS,
    **WINDOW_NETWORKS,
}
# (network, batch): every synthetic network at two batches (steps of about 5-300 ms on one core)
GRID_CASES: tuple[tuple[str, int], ...] = (
    ("grid_k1_narrow", 8), ("grid_k1_narrow", 32), ("grid_k1", 4), ("grid_k1", 16),
    ("grid_k1_wide", 2), ("grid_k1_wide", 8), ("grid_k1_odd", 4), ("grid_k1_odd", 16),
    ("grid_k3_narrow", 4), ("grid_k3_narrow", 16), ("grid_k3", 2), ("grid_k3", 8),
    ("grid_k3_wide", 1), ("grid_k3_wide", 2), ("grid_k3_odd", 2), ("grid_k3_odd", 8),
    ("grid_k1_funnel", 4), ("grid_k1_funnel", 16), ("grid_k3_funnel", 2), ("grid_k3_funnel", 8),
    ("grid_k1_narrow_px48", 16), ("grid_k1_narrow_px48", 64), ("grid_k1_px48", 8),
    ("grid_k1_px48", 32), ("grid_k3_narrow_px48", 8), ("grid_k3_narrow_px48", 32),
    ("grid_k3_px48", 4), ("grid_k3_px48", 16),
    ("grid_k5_narrow", 2), ("grid_k5_narrow", 8), ("grid_k5", 2), ("grid_k5", 4),
    ("grid_k5_wide", 1), ("grid_k5_wide", 2),
    ("grid_k7_narrow", 1), ("grid_k7_narrow", 4), ("grid_k7", 1), ("grid_k7", 4),
    ("grid_k7_wide", 1), ("grid_k7_wide", 2),
    ("grid_stem1", 16), ("grid_stem1", 128), ("grid_stem3", 2), ("grid_stem3", 16),
    ("grid_separable", 4), ("grid_separable", 16),
    ("grid_separable_wide", 2), ("grid_separable_wide", 8),
    ("grid_separable_odd", 4), ("grid_separable_odd", 16),
    ("grid_separable_k5", 2), ("grid_separable_k5", 8),
    ("grid_separable_k7", 2), ("grid_separable_k7", 8),
    *((grouped_name(w), batch) for w in GROUP_WIDTHS for batch in (2, 8)),
    ("grid_pool", 4), ("grid_pool", 16),
    ("grid_mlp", 32), ("grid_mlp", 256), ("grid_mlp_narrow", 16), ("grid_mlp_narrow", 128),
    ("grid_mlp_small", 16), ("grid_mlp_small", 128), ("grid_mlp_tiny", 8), ("grid_mlp_tiny", 200),
    ("grid_act", 2), ("grid_act", 8), ("grid_act", 32),
    ("grid_act_mlp", 16), ("grid_act_mlp", 128), ("grid_act_mlp", 512),
    ("grid_gate", 4), ("grid_gate", 16), ("grid_norm", 4), ("grid_norm", 16),
    ("grid_norm_mlp", 32), ("grid_norm_mlp", 256),
    *TRANSFORMER_CASES,
    *BLOCK_CASES,
    *WINDOW_CASES,
)


def get(name: str, batch: int) -> OpGraph:
    """A synthetic calibration network, or a zoo network."""
    if name in NETWORKS:
        if not isinstance(batch, int) or batch < 1:
            raise WorkloadError(f"batch size must be an integer >= 1, got {batch!r}")
        g = NETWORKS[name](batch)
        g.meta.setdefault("network", name)
        return g
    return zoo.get(name, batch=batch)
