"""EfficientNet-B0 to B7 (Tan & Le 2019) and EfficientNetV2-S, M and L (Tan & Le 2021) as
torchvision builds them, on ImageNet at each one's resolution (B0 224, B1 240, B2 288, B3 300,
B4 380, B5 456, B6 528, B7 600; V2-S 384, V2-M and L 480).

B0's stages (the paper's Table 1) of inverted residual blocks with a squeeze-and-excitation
gate (mobile.py's blocks, SiLU, a sigmoid gate squeezing to a quarter of the block's input
channels); B1-B7 scale every stage's channels by a width factor (rounded to multiples of 8)
and its blocks by a depth factor (rounded up). In training a block's branch is dropped per
sample (stochastic depth, probability rising linearly from 0 to 0.2 over the blocks: a
broadcast dropout op, as torch.fx imports torchvision's). Op names are torchvision's module
paths (features.2.1.block.2.fc1). V2's first stages are FusedMBConv blocks: one k x k conv
in place of the expansion and the depthwise conv, no gate. Parameters: efficientnet_b0
5,288,548, efficientnet_b4 19,341,616, efficientnet_v2_s 21,458,488 (torchvision's weights
tables).
"""
from __future__ import annotations

import math

from ..graph import OpGraph
from ._base import check_width, imagenet_preset
from .mobile import (
    classifier_head,
    conv_norm_act,
    make_divisible,
    squeeze_excitation,
    stem,
    stochastic_depth,
)

# B0: (expansion, kernel, stride, channels in, channels out, layers), as torchvision's
# MBConvConfig lists the paper's Table 1
_B0 = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
       (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
STOCHASTIC_DEPTH = 0.2
# (width factor, depth factor, classifier dropout, resolution), torchvision's builders
CONFIGS = {"efficientnet_b0": (1.0, 1.0, 0.2, 224), "efficientnet_b1": (1.0, 1.1, 0.2, 240),
           "efficientnet_b2": (1.1, 1.2, 0.3, 288), "efficientnet_b3": (1.2, 1.4, 0.3, 300),
           "efficientnet_b4": (1.4, 1.8, 0.4, 380), "efficientnet_b5": (1.6, 2.2, 0.4, 456),
           "efficientnet_b6": (1.8, 2.6, 0.5, 528), "efficientnet_b7": (2.0, 3.1, 0.5, 600)}
# EfficientNetV2 (Tan & Le 2021), torchvision's stages: (fused, expansion, kernel, stride,
# channels in, channels out, layers); then the last conv's width, classifier dropout and
# resolution
_V2_S = [(True, 1, 3, 1, 24, 24, 2), (True, 4, 3, 2, 24, 48, 4), (True, 4, 3, 2, 48, 64, 4),
         (False, 4, 3, 2, 64, 128, 6), (False, 6, 3, 1, 128, 160, 9),
         (False, 6, 3, 2, 160, 256, 15)]
_V2_M = [(True, 1, 3, 1, 24, 24, 3), (True, 4, 3, 2, 24, 48, 5), (True, 4, 3, 2, 48, 80, 5),
         (False, 4, 3, 2, 80, 160, 7), (False, 6, 3, 1, 160, 176, 14),
         (False, 6, 3, 2, 176, 304, 18), (False, 6, 3, 1, 304, 512, 5)]
_V2_L = [(True, 1, 3, 1, 32, 32, 4), (True, 4, 3, 2, 32, 64, 7), (True, 4, 3, 2, 64, 96, 7),
         (False, 4, 3, 2, 96, 192, 10), (False, 6, 3, 1, 192, 224, 19),
         (False, 6, 3, 2, 224, 384, 25), (False, 6, 3, 1, 384, 640, 7)]
V2_CONFIGS = {"efficientnet_v2_s": (_V2_S, 1280, 0.2, 384),
              "efficientnet_v2_m": (_V2_M, 1280, 0.3, 480),
              "efficientnet_v2_l": (_V2_L, 1280, 0.4, 480)}


def _mbconv(b, x: str, inputs: int, out: int, t: int, kernel: int, stride: int,
            p: float) -> str:
    expanded = make_divisible(inputs * t)
    with b.scope("block"):
        y, layer = x, 0
        if expanded != inputs:
            y, layer = conv_norm_act(b, y, expanded, 1, "0", act="silu"), 1
        y = conv_norm_act(b, y, expanded, kernel, str(layer), stride=stride, groups=expanded,
                          act="silu")
        y = squeeze_excitation(b, y, max(1, inputs // 4), "silu", "sigmoid", str(layer + 1))
        y = conv_norm_act(b, y, out, 1, str(layer + 2), act=None)
    if stride == 1 and inputs == out:
        y = b.add(stochastic_depth(b, y, p, "stochastic_depth"), x, name="add")
    return y


def _fused_mbconv(b, x: str, inputs: int, out: int, t: int, kernel: int, stride: int,
                  p: float) -> str:
    """EfficientNetV2's FusedMBConv: one k x k conv expanding the channels (and striding),
    then a 1x1 projection; with no expansion the k x k conv alone; no gate."""
    expanded = make_divisible(inputs * t)
    with b.scope("block"):
        if expanded == inputs:
            y = conv_norm_act(b, x, out, kernel, "0", stride=stride, act="silu")
        else:
            y = conv_norm_act(b, x, expanded, kernel, "0", stride=stride, act="silu")
            y = conv_norm_act(b, y, out, 1, "1", act=None)
    if stride == 1 and inputs == out:
        y = b.add(stochastic_depth(b, y, p, "stochastic_depth"), x, name="add")
    return y


def _efficientnet(name: str, batch: int, num_classes: int, width: float,
                  input_size: int | None, dtype_bytes: int) -> OpGraph:
    check_width(width)
    if name in V2_CONFIGS:
        setting, last_channel, dropout, resolution = V2_CONFIGS[name]
        stages = [(fused, t, k, s, make_divisible(cin * width), make_divisible(cout * width),
                   layers) for fused, t, k, s, cin, cout, layers in setting]
    else:
        width_factor, depth_factor, dropout, resolution = CONFIGS[name]
        width *= width_factor
        stages = [(False, t, k, s, make_divisible(cin * width), make_divisible(cout * width),
                   int(math.ceil(layers * depth_factor))) for t, k, s, cin, cout, layers in _B0]
        last_channel = 4 * stages[-1][5]
    b, x = stem(name, batch, num_classes, input_size, dtype_bytes, stages[0][4], "silu",
                resolution)
    total, block_id = sum(stage[-1] for stage in stages), 0
    for stage, (fused, t, kernel, stride, cin, cout, layers) in enumerate(stages, start=1):
        block = _fused_mbconv if fused else _mbconv
        for i in range(layers):
            with b.scope(f"features.{stage}.{i}"):
                x = block(b, x, cin if i == 0 else cout, cout, t, kernel,
                          stride if i == 0 else 1, STOCHASTIC_DEPTH * float(block_id) / total)
            block_id += 1
    x = conv_norm_act(b, x, last_channel, 1, f"features.{len(stages) + 1}", act="silu")
    classifier_head(b, x, [], dropout, num_classes)
    return b.build()


efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3, efficientnet_b4, \
    efficientnet_b5, efficientnet_b6, efficientnet_b7 = (imagenet_preset(_efficientnet, name)
                                                         for name in CONFIGS)
efficientnet_v2_s, efficientnet_v2_m, efficientnet_v2_l = (imagenet_preset(_efficientnet, name)
                                                           for name in V2_CONFIGS)
