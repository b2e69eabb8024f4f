"""AlexNet: the torchvision ImageNet model and a CIFAR-10 variant.

ImageNet (3x224x224): torchvision's `alexnet` (the one-GPU "One weird trick" form of
Krizhevsky 2014), 61,100,840 parameters; op names are its module paths (features.0, ...).

CIFAR-10 (3x32x32): the model of bearpaw/pytorch-classification (models/cifar/alexnet.py):
the same five convolutions with CIFAR-sized kernels and a single 256->10 classifier,
2,472,266 parameters.
"""
from __future__ import annotations

from ..graph import OpGraph
from ._base import check_classes, scaled, start


def _features(b, x: str, layers: list[tuple], width: float) -> str:
    """Conv layers as (out_channels, kernel, stride, padding), "M" for a max pool, all in one
    `features` sequence numbered like an nn.Sequential (conv, relu[, pool])."""
    i = 0
    with b.scope("features"):
        for layer in layers:
            if layer[0] == "M":
                x = b.maxpool(x, layer[1], stride=layer[2], name=str(i))
                i += 1
                continue
            out, kernel, stride, padding = layer
            x = b.conv2d(x, scaled(out, width), kernel, stride=stride, padding=padding,
                         bias=True, name=str(i))
            x = b.relu(x, name=str(i + 1))
            i += 2
    return x


def alexnet(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
            input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
    check_classes(num_classes)
    b = start("alexnet", (3, 224, 224), batch, input_size, dtype_bytes)
    x = _features(b, b.input(), [
        (64, 11, 4, 2), ("M", 3, 2), (192, 5, 1, 2), ("M", 3, 2),
        (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), ("M", 3, 2)], width)
    x = b.flatten(b.adaptive_avgpool(x, (6, 6), name="avgpool"), name="flatten")
    hidden = scaled(4096, width)
    with b.scope("classifier"):
        x = b.dropout(x, 0.5, name="0")
        x = b.relu(b.linear(x, hidden, name="1"), name="2")
        x = b.dropout(x, 0.5, name="3")
        x = b.relu(b.linear(x, hidden, name="4"), name="5")
        b.linear(x, num_classes, name="6")
    return b.build()


def alexnet_cifar(batch: int = 1, num_classes: int = 10, width: float = 1.0,
                  input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
    check_classes(num_classes)
    b = start("alexnet_cifar", (3, 32, 32), batch, input_size, dtype_bytes)
    x = _features(b, b.input(), [
        (64, 11, 4, 5), ("M", 2, 2), (192, 5, 1, 2), ("M", 2, 2),
        (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), ("M", 2, 2)], width)
    x = b.flatten(x, name="flatten")
    b.linear(x, num_classes, name="classifier")
    return b.build()
