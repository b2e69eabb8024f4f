"""DenseNet-121, -161, -169 and -201 (Huang et al. 2017) as torchvision builds them, on
ImageNet (3x224x224). DenseNet-121: 7,978,856 parameters, 2.83 G multiply-adds.

Each dense layer concatenates every earlier output of its block (torch.cat, a copy, even of
the block's one input in its first layer), then runs batch norm, ReLU, a 1x1 conv to
bn_size x growth channels, batch norm, ReLU and a 3x3 conv to `growth` new channels. A
transition halves the channels with batch norm, ReLU and a 1x1 conv, and the size with a 2x2
average pool. Op names are torchvision's module paths (features.denseblock1.denselayer1.conv1,
features.transition1.pool); the concatenations are <layer>.concat and, ending a block,
<block>.concat.
"""
from __future__ import annotations

from ..graph import OpGraph
from ._base import check_classes, imagenet_preset, scaled, start

# growth rate, channels of the stem, dense layers per block (torchvision's configurations)
CONFIGS = {121: (32, 64, (6, 12, 24, 16)), 161: (48, 96, (6, 12, 36, 24)),
           169: (32, 64, (6, 12, 32, 32)), 201: (32, 64, (6, 12, 48, 32))}
BN_SIZE = 4


def _norm_relu_conv(b, x: str, out: int, kernel: int, index: str = "") -> str:
    x = b.relu(b.batchnorm(x, name=f"norm{index}"), name=f"relu{index}")
    return b.conv2d(x, out, kernel, padding=kernel // 2, name=f"conv{index}")


def _densenet(depth: int, batch: int, num_classes: int, width: float,
              input_size: int | None, dtype_bytes: int) -> OpGraph:
    check_classes(num_classes)
    growth, stem, counts = CONFIGS[depth]
    growth = scaled(growth, width)
    b = start(f"densenet{depth}", (3, 224, 224), batch, input_size, dtype_bytes)
    x = b.input()
    with b.scope("features"):
        x = b.conv2d(x, scaled(stem, width), 7, stride=2, padding=3, name="conv0")
        x = b.relu(b.batchnorm(x, name="norm0"), name="relu0")
        x = b.maxpool(x, 3, stride=2, padding=1, name="pool0")
        for block, count in enumerate(counts, start=1):
            with b.scope(f"denseblock{block}"):
                outputs = [x]
                for layer in range(1, count + 1):
                    with b.scope(f"denselayer{layer}"):
                        y = b.concat(outputs, name="concat")
                        y = _norm_relu_conv(b, y, BN_SIZE * growth, 1, "1")
                        outputs.append(_norm_relu_conv(b, y, growth, 3, "2"))
                x = b.concat(outputs, name="concat")
            if block < len(counts):
                with b.scope(f"transition{block}"):
                    x = _norm_relu_conv(b, x, b.spec(x).shape[1] // 2, 1)
                    x = b.avgpool(x, 2, stride=2, name="pool")
        x = b.batchnorm(x, name="norm5")
    x = b.adaptive_avgpool(b.relu(x, name="relu"), (1, 1), name="adaptive_avgpool")
    b.linear(b.flatten(x, name="flatten"), num_classes, name="classifier")
    return b.build()


densenet121, densenet161 = imagenet_preset(_densenet, 121), imagenet_preset(_densenet, 161)
densenet169, densenet201 = imagenet_preset(_densenet, 169), imagenet_preset(_densenet, 201)
