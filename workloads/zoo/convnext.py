"""ConvNeXt (Liu et al. 2022) as torchvision builds it, on ImageNet (3x224x224): convnext_tiny
has 28,589,128 parameters and 4.46 G multiply-adds.

A block is a 7x7 depthwise conv, then, channels last (a permute, a view), layer norm, a linear
layer to 4x the channels, GELU and a linear layer back, permuted to channels first; a learned
per-channel scale (layer_scale) and stochastic depth (probability rising linearly from 0 to
0.1 over the blocks, a broadcast dropout in training) before the residual add. The stem is a
4x4 conv of stride 4; between stages a layer norm over the channels (LayerNorm2d: permute,
layer_norm, permute) and a 2x2 conv of stride 2. Op names are torchvision's module paths
(features.1.0.block.3, features.2.1, classifier.2).
"""
from __future__ import annotations

from ..graph import OpGraph
from ._base import check_classes, imagenet_preset, scaled, start
from .mobile import stochastic_depth

# (channels, blocks) of the four stages, and the final stochastic depth probability
CONFIGS = {"convnext_tiny": (((96, 3), (192, 3), (384, 9), (768, 3)), 0.1),
           "convnext_small": (((96, 3), (192, 3), (384, 27), (768, 3)), 0.4),
           "convnext_base": (((128, 3), (256, 3), (512, 27), (1024, 3)), 0.5),
           "convnext_large": (((192, 3), (384, 3), (768, 27), (1536, 3)), 0.5)}


def _layer_norm_2d(b, x: str, name: str) -> str:
    """torchvision's LayerNorm2d: layer norm over the channels of an (N, C, H, W) map, as
    permute, layer_norm, permute."""
    channels = b.spec(x).shape[1]
    with b.scope(name):
        x = b.layernorm(b.permute(x, (0, 2, 3, 1), name="permute"), (channels,),
                        name="layer_norm")
        return b.permute(x, (0, 3, 1, 2), name="permute2")


def _block(b, x: str, p: float) -> str:
    channels = b.spec(x).shape[1]
    with b.scope("block"):
        y = b.conv2d(x, channels, 7, padding=3, groups=channels, bias=True, name="0")
        y = b.layernorm(b.permute(y, (0, 2, 3, 1), name="1.permute"), (channels,), name="2")
        y = b.activation(b.linear(y, 4 * channels, name="3"), "gelu", name="4")
        y = b.permute(b.linear(y, channels, name="5"), (0, 3, 1, 2), name="6.permute")
    y = b.op("layer_scale", [y], params=channels, name="layer_scale",
             param_shape=(channels, 1, 1))
    return b.add(stochastic_depth(b, y, p, "stochastic_depth"), x, name="add")


def _convnext(name: str, batch: int, num_classes: int, width: float, input_size: int | None,
              dtype_bytes: int) -> OpGraph:
    check_classes(num_classes)
    stages, last_p = CONFIGS[name]
    b = start(name, (3, 224, 224), batch, input_size, dtype_bytes)
    x = b.conv2d(b.input(), scaled(stages[0][0], width), 4, stride=4, bias=True,
                 name="features.0.0")
    x = _layer_norm_2d(b, x, "features.0.1")
    total, block_id = sum(count for _, count in stages), 0
    for stage, (channels, count) in enumerate(stages):
        index = 2 * stage + 1
        if stage > 0:
            x = _layer_norm_2d(b, x, f"features.{index - 1}.0")
            x = b.conv2d(x, scaled(channels, width), 2, stride=2, bias=True,
                         name=f"features.{index - 1}.1")
        for i in range(count):
            with b.scope(f"features.{index}.{i}"):
                x = _block(b, x, last_p * block_id / (total - 1.0))
            block_id += 1
    x = _layer_norm_2d(b, b.adaptive_avgpool(x, (1, 1), name="avgpool"), "classifier.0")
    b.linear(b.flatten(x, name="classifier.1"), num_classes, name="classifier.2")
    return b.build()


convnext_tiny = imagenet_preset(_convnext, "convnext_tiny")
convnext_small = imagenet_preset(_convnext, "convnext_small")
convnext_base = imagenet_preset(_convnext, "convnext_base")
convnext_large = imagenet_preset(_convnext, "convnext_large")
