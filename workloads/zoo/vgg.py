"""VGG-16 (configuration D of Simonyan & Zisserman 2015): ImageNet and CIFAR-10.

ImageNet (3x224x224): torchvision's `vgg16` without batch norm, 138,357,544 parameters; op names
are its module paths (features.0, ..., classifier.6).

CIFAR-10 (3x32x32): the model of kuangliu/pytorch-cifar (models/vgg.py): the same 13 convolutions
each followed by batch norm, then a single 512->10 linear classifier, 14,728,266 parameters.
(Its final AvgPool2d(1, 1) is the identity and is left out.) `batchnorm=False` drops the norms.
"""
from __future__ import annotations

from ..graph import OpGraph
from ._base import check_classes, scaled, start

CFG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _features(b, x: str, width: float, batchnorm: bool) -> str:
    i = 0  # nn.Sequential index, so names are torchvision's module paths
    with b.scope("features"):
        for v in CFG_D:
            if v == "M":
                x = b.maxpool(x, 2, stride=2, name=str(i))
                i += 1
                continue
            x = b.conv2d(x, scaled(v, width), 3, padding=1, bias=True, name=str(i))
            i += 1
            if batchnorm:
                x = b.batchnorm(x, name=str(i))
                i += 1
            x = b.relu(x, name=str(i))
            i += 1
    return x


def vgg16(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
          input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
    check_classes(num_classes)
    b = start("vgg16", (3, 224, 224), batch, input_size, dtype_bytes)
    x = _features(b, b.input(), width, batchnorm=False)
    x = b.flatten(b.adaptive_avgpool(x, (7, 7), name="avgpool"), name="flatten")
    hidden = scaled(4096, width)
    with b.scope("classifier"):
        x = b.dropout(b.relu(b.linear(x, hidden, name="0"), name="1"), 0.5, name="2")
        x = b.dropout(b.relu(b.linear(x, hidden, name="3"), name="4"), 0.5, name="5")
        b.linear(x, num_classes, name="6")
    return b.build()


def vgg16_cifar(batch: int = 1, num_classes: int = 10, width: float = 1.0,
                input_size: int | None = None, dtype_bytes: int = 4,
                batchnorm: bool = True) -> OpGraph:
    check_classes(num_classes)
    b = start("vgg16_cifar", (3, 32, 32), batch, input_size, dtype_bytes)
    x = _features(b, b.input(), width, batchnorm=bool(batchnorm))
    x = b.flatten(x, name="flatten")
    b.linear(x, num_classes, name="classifier")
    return b.build()
