"""Inception-v3 (Szegedy et al. 2016) as torchvision builds it, on ImageNet (3x299x299).

torchvision's `inception_v3` without its auxiliary classifier (it runs only in training; with
it torchvision counts 27,161,264 parameters): 23,834,568 parameters, 5.71 G multiply-adds.
Every conv is a BasicConv2d (conv without bias, batch norm, ReLU); the 17x17 and 8x8 modules
factor n x n convs into 1 x n and n x 1 ones. Op names are its module paths (Conv2d_1a_3x3.conv,
Mixed_6b.branch7x7_2.bn, fc); pools and concatenations written as functions in its forward
are named <module>.avgpool, <module>.maxpool, <module>.concat (then concat2, concat3), as
workloads/torch_import.py names them.
"""
from __future__ import annotations

from typing import Callable

from ..graph import OpGraph
from ._base import basic_conv, check_classes, scaled, start


class _Blocks:
    """The five module types of torchvision's Inception3 (InceptionA to E), on one builder."""

    def __init__(self, b, width: float) -> None:
        self.b, self.width = b, width

    def conv(self, x: str, out: int, kernel, name: str, stride=1, padding=0) -> str:
        return basic_conv(self.b, x, scaled(out, self.width), kernel, name, stride, padding)

    def avg_branch(self, x: str, out: int) -> str:
        return self.conv(self.b.avgpool(x, 3, stride=1, padding=1, name="avgpool"), out, 1,
                         "branch_pool")

    def inception_a(self, x: str, pool_features: int) -> str:   # 35x35
        c = self.conv
        b1 = c(x, 64, 1, "branch1x1")
        b5 = c(c(x, 48, 1, "branch5x5_1"), 64, 5, "branch5x5_2", padding=2)
        b3 = c(c(x, 64, 1, "branch3x3dbl_1"), 96, 3, "branch3x3dbl_2", padding=1)
        b3 = c(b3, 96, 3, "branch3x3dbl_3", padding=1)
        return self.b.concat([b1, b5, b3, self.avg_branch(x, pool_features)], name="concat")

    def inception_b(self, x: str) -> str:   # 35x35 -> 17x17
        c = self.conv
        b3 = c(x, 384, 3, "branch3x3", stride=2)
        dbl = c(c(x, 64, 1, "branch3x3dbl_1"), 96, 3, "branch3x3dbl_2", padding=1)
        dbl = c(dbl, 96, 3, "branch3x3dbl_3", stride=2)
        pool = self.b.maxpool(x, 3, stride=2, name="maxpool")
        return self.b.concat([b3, dbl, pool], name="concat")

    def inception_c(self, x: str, c7: int) -> str:   # 17x17, 7x7 convs factored into 1x7 and 7x1
        c = self.conv
        b1 = c(x, 192, 1, "branch1x1")
        b7 = c(x, c7, 1, "branch7x7_1")
        b7 = c(b7, c7, (1, 7), "branch7x7_2", padding=(0, 3))
        b7 = c(b7, 192, (7, 1), "branch7x7_3", padding=(3, 0))
        dbl = c(x, c7, 1, "branch7x7dbl_1")
        for i, (kernel, padding) in enumerate([((7, 1), (3, 0)), ((1, 7), (0, 3)),
                                               ((7, 1), (3, 0)), ((1, 7), (0, 3))]):
            dbl = c(dbl, 192 if i == 3 else c7, kernel, f"branch7x7dbl_{i + 2}", padding=padding)
        return self.b.concat([b1, b7, dbl, self.avg_branch(x, 192)], name="concat")

    def inception_d(self, x: str) -> str:   # 17x17 -> 8x8
        c = self.conv
        b3 = c(c(x, 192, 1, "branch3x3_1"), 320, 3, "branch3x3_2", stride=2)
        b7 = c(x, 192, 1, "branch7x7x3_1")
        b7 = c(b7, 192, (1, 7), "branch7x7x3_2", padding=(0, 3))
        b7 = c(b7, 192, (7, 1), "branch7x7x3_3", padding=(3, 0))
        b7 = c(b7, 192, 3, "branch7x7x3_4", stride=2)
        pool = self.b.maxpool(x, 3, stride=2, name="maxpool")
        return self.b.concat([b3, b7, pool], name="concat")

    def inception_e(self, x: str) -> str:   # 8x8, each 3x3 ends in a 1x3 and a 3x1 side by side
        c, cat = self.conv, self.b.concat
        b1 = c(x, 320, 1, "branch1x1")
        b3 = c(x, 384, 1, "branch3x3_1")
        b3 = cat([c(b3, 384, (1, 3), "branch3x3_2a", padding=(0, 1)),
                  c(b3, 384, (3, 1), "branch3x3_2b", padding=(1, 0))], name="concat")
        dbl = c(c(x, 448, 1, "branch3x3dbl_1"), 384, 3, "branch3x3dbl_2", padding=1)
        dbl = cat([c(dbl, 384, (1, 3), "branch3x3dbl_3a", padding=(0, 1)),
                   c(dbl, 384, (3, 1), "branch3x3dbl_3b", padding=(1, 0))], name="concat2")
        return cat([b1, b3, dbl, self.avg_branch(x, 192)], name="concat3")


def inception_v3(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
                 input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
    check_classes(num_classes)
    b = start("inception_v3", (3, 299, 299), batch, input_size, dtype_bytes)
    blocks = _Blocks(b, width)
    x = blocks.conv(b.input(), 32, 3, "Conv2d_1a_3x3", stride=2)
    x = blocks.conv(x, 32, 3, "Conv2d_2a_3x3")
    x = blocks.conv(x, 64, 3, "Conv2d_2b_3x3", padding=1)
    x = b.maxpool(x, 3, stride=2, name="maxpool1")
    x = blocks.conv(x, 80, 1, "Conv2d_3b_1x1")
    x = blocks.conv(x, 192, 3, "Conv2d_4a_3x3")
    x = b.maxpool(x, 3, stride=2, name="maxpool2")
    k = blocks
    modules: list[tuple[str, Callable[..., str], tuple[int, ...]]] = [
        ("Mixed_5b", k.inception_a, (32,)), ("Mixed_5c", k.inception_a, (64,)),
        ("Mixed_5d", k.inception_a, (64,)), ("Mixed_6a", k.inception_b, ()),
        ("Mixed_6b", k.inception_c, (128,)), ("Mixed_6c", k.inception_c, (160,)),
        ("Mixed_6d", k.inception_c, (160,)), ("Mixed_6e", k.inception_c, (192,)),
        ("Mixed_7a", k.inception_d, ()), ("Mixed_7b", k.inception_e, ()),
        ("Mixed_7c", k.inception_e, ())]
    for name, block, args in modules:
        with b.scope(name):
            x = block(x, *args)
    x = b.dropout(b.adaptive_avgpool(x, (1, 1), name="avgpool"), 0.5, name="dropout")
    b.linear(b.flatten(x, name="flatten"), num_classes, name="fc")
    return b.build()
