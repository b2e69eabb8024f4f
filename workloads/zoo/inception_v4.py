"""Inception-v4 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning") on ImageNet (3x299x299), as TF-slim defines it and as
tf_cnn_benchmarks' inception4 and timm's inception_v4 build it: 42,679,816 parameters,
12.25 G multiply-adds.

The stem (Mixed_3a to Mixed_5a) and the modules (4 x Inception-A at 35x35, Reduction-A,
7 x Inception-B at 17x17, Reduction-B, 3 x Inception-C at 8x8) follow the paper's Figures
3-8. Every conv is a BasicConv2d (conv without bias, batch norm, ReLU); the pooling branch
averages 3x3 windows without counting the padding. Op names follow timm's module numbering
(features.6.branch1.0), each conv named <module>.conv, .bn, .relu (torchvision's BasicConv2d
names, where timm calls its fused norm and activation bn.batchnorm and bn.act). timm's
head dropout is p = 0, no op here.
"""
from __future__ import annotations

from ..graph import OpGraph
from ._base import basic_conv, check_classes, scaled, start


class _Modules:
    """The modules of Inception-v4, on one builder; convs scaled by the width multiplier."""

    def __init__(self, b, width: float) -> None:
        self.b, self.width = b, width

    def conv(self, x: str, out: int, kernel, name: str, stride=1, padding=0) -> str:
        return basic_conv(self.b, x, scaled(out, self.width), kernel, name, stride, padding)

    def chain(self, x: str, layers, name: str) -> str:
        """Convs one after the other, <name>.0, <name>.1, ...: (out, kernel, stride, padding)."""
        for i, (out, kernel, stride, padding) in enumerate(layers):
            x = self.conv(x, out, kernel, f"{name}.{i}", stride, padding)
        return x

    def pool_branch(self, x: str, out: int) -> str:
        x = self.b.avgpool(x, 3, stride=1, padding=1, count_include_pad=False,
                           name="branch3.0")
        return self.conv(x, out, 1, "branch3.1")

    def mixed_4a(self, x: str) -> str:
        b0 = self.chain(x, [(64, 1, 1, 0), (96, 3, 1, 0)], "branch0")
        b1 = self.chain(x, [(64, 1, 1, 0), (64, (1, 7), 1, (0, 3)), (64, (7, 1), 1, (3, 0)),
                            (96, 3, 1, 0)], "branch1")
        return self.b.concat([b0, b1], name="concat")

    def inception_a(self, x: str) -> str:   # 35x35
        b0 = self.conv(x, 96, 1, "branch0")
        b1 = self.chain(x, [(64, 1, 1, 0), (96, 3, 1, 1)], "branch1")
        b2 = self.chain(x, [(64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 1, 1)], "branch2")
        return self.b.concat([b0, b1, b2, self.pool_branch(x, 96)], name="concat")

    def reduction_a(self, x: str) -> str:   # 35x35 -> 17x17
        b0 = self.conv(x, 384, 3, "branch0", stride=2)
        b1 = self.chain(x, [(192, 1, 1, 0), (224, 3, 1, 1), (256, 3, 2, 0)], "branch1")
        pool = self.b.maxpool(x, 3, stride=2, name="branch2")
        return self.b.concat([b0, b1, pool], name="concat")

    def inception_b(self, x: str) -> str:   # 17x17, 7x7 convs factored into 1x7 and 7x1
        b0 = self.conv(x, 384, 1, "branch0")
        b1 = self.chain(x, [(192, 1, 1, 0), (224, (1, 7), 1, (0, 3)),
                            (256, (7, 1), 1, (3, 0))], "branch1")
        b2 = self.chain(x, [(192, 1, 1, 0), (192, (7, 1), 1, (3, 0)),
                            (224, (1, 7), 1, (0, 3)), (224, (7, 1), 1, (3, 0)),
                            (256, (1, 7), 1, (0, 3))], "branch2")
        return self.b.concat([b0, b1, b2, self.pool_branch(x, 128)], name="concat")

    def reduction_b(self, x: str) -> str:   # 17x17 -> 8x8
        b0 = self.chain(x, [(192, 1, 1, 0), (192, 3, 2, 0)], "branch0")
        b1 = self.chain(x, [(256, 1, 1, 0), (256, (1, 7), 1, (0, 3)),
                            (320, (7, 1), 1, (3, 0)), (320, 3, 2, 0)], "branch1")
        pool = self.b.maxpool(x, 3, stride=2, name="branch2")
        return self.b.concat([b0, b1, pool], name="concat")

    def inception_c(self, x: str) -> str:   # 8x8, branches ending in a 1x3 and a 3x1 side by side
        c, cat = self.conv, self.b.concat
        b0 = c(x, 256, 1, "branch0")
        b1 = c(x, 384, 1, "branch1_0")
        b1 = cat([c(b1, 256, (1, 3), "branch1_1a", padding=(0, 1)),
                  c(b1, 256, (3, 1), "branch1_1b", padding=(1, 0))], name="concat")
        b2 = c(x, 384, 1, "branch2_0")
        b2 = c(b2, 448, (3, 1), "branch2_1", padding=(1, 0))
        b2 = c(b2, 512, (1, 3), "branch2_2", padding=(0, 1))
        b2 = cat([c(b2, 256, (1, 3), "branch2_3a", padding=(0, 1)),
                  c(b2, 256, (3, 1), "branch2_3b", padding=(1, 0))], name="concat2")
        return cat([b0, b1, b2, self.pool_branch(x, 256)], name="concat3")


def inception_v4(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
                 input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
    check_classes(num_classes)
    b = start("inception_v4", (3, 299, 299), batch, input_size, dtype_bytes)
    m = _Modules(b, width)
    x = m.conv(b.input(), 32, 3, "features.0", stride=2)
    x = m.conv(x, 32, 3, "features.1")
    x = m.conv(x, 64, 3, "features.2", padding=1)
    with b.scope("features.3"):   # Mixed_3a
        x = b.concat([b.maxpool(x, 3, stride=2, name="maxpool"),
                      m.conv(x, 96, 3, "conv", stride=2)], name="concat")
    with b.scope("features.4"):
        x = m.mixed_4a(x)
    with b.scope("features.5"):   # Mixed_5a
        x = b.concat([m.conv(x, 192, 3, "conv", stride=2),
                      b.maxpool(x, 3, stride=2, name="maxpool")], name="concat")
    modules = [m.inception_a] * 4 + [m.reduction_a] + [m.inception_b] * 7 + \
        [m.reduction_b] + [m.inception_c] * 3
    for index, module in enumerate(modules, start=6):
        with b.scope(f"features.{index}"):
            x = module(x)
    x = b.flatten(b.adaptive_avgpool(x, (1, 1), name="global_pool.pool"),
                  name="global_pool.flatten")
    b.linear(x, num_classes, name="last_linear")
    return b.build()
