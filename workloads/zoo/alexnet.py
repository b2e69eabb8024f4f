"""AlexNet (the torchvision ImageNet model and a CIFAR-10 variant) and OverFeat's fast model.

ImageNet (3x224x224): torchvision's `alexnet`, 61,100,840 parameters; op names are its module
paths (features.0, ...). It is the one-tower "One weird trick" AlexNet (Krizhevsky 2014) with
the layers of soumith/convnet-benchmarks' AlexNet-OWT (convs of 64, 192, 384, 256, 256
channels), so no separate `alexnet_owt` is needed; its AdaptiveAvgPool2d((6, 6)) is the
identity at 224x224.

BVLC AlexNet (`alexnet_bvlc`): Caffe's bvlc_alexnet, the two-tower network of Krizhevsky et al.
(2012) on one GPU: convs of 96 (11x11, stride 4), 256 (5x5, padding 2), 384, 384, 256 (3x3,
padding 1) channels, the 2nd, 4th and 5th in two groups (the towers); a local response norm
(size 5, alpha 1e-4, beta 0.75) after the ReLUs of conv1 and conv2, before their pools; 3x3
stride-2 max pools rounding up, as Caffe's do; 9216 -> 4096 -> 4096 -> classes with dropout
after the two hidden layers. 60,965,224 parameters (Caffe's model). Caffe crops 227x227; the
Torch7 harnesses (jcjohnson/cnn-benchmarks, which loaded Caffe's model) fed 224x224, which the
rounding-up pools bring to the same 6x6 maps after conv5 (54 -> 27 -> 13 -> 6), so 224 is the
default. Op names are Caffe's layer names (conv1, relu1, norm1, pool1, ..., fc8).

OverFeat fast (Sermanet et al. 2014, Table 1), 3x231x231, as soumith/convnet-benchmarks runs
it: convs of 96 (11x11, stride 4), 256 (5x5), 512, 1024, 1024 (3x3, padding 1) channels with
2x2 max pools after the 1st, 2nd and 5th, then 1024*6*6 -> 3072 -> 4096 -> classes with
dropout before the first two; 145,920,872 parameters (the paper's "145 million").

CIFAR-10 (3x32x32): the model of bearpaw/pytorch-classification (models/cifar/alexnet.py):
the same five convolutions with CIFAR-sized kernels and a single 256->10 classifier,
2,472,266 parameters.
"""
from __future__ import annotations

from ..graph import OpGraph
from ._base import check_classes, lrn, scaled, start


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


def _classifier(b, x: str, hidden: tuple[int, int], num_classes: int, width: float) -> str:
    """Dropout, linear, ReLU twice, then the logits: one `classifier` nn.Sequential."""
    with b.scope("classifier"):
        for i, features in enumerate(hidden):
            x = b.dropout(x, 0.5, name=str(3 * i))
            x = b.relu(b.linear(x, scaled(features, width), name=str(3 * i + 1)),
                       name=str(3 * i + 2))
        return b.linear(x, num_classes, name="6")


def alexnet(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
            input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
    check_classes(num_classes)
    b = start("alexnet", (3, 224, 224), batch, input_size, dtype_bytes)
    x = _features(b, b.input(), [
        (64, 11, 4, 2), ("M", 3, 2), (192, 5, 1, 2), ("M", 3, 2),
        (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), ("M", 3, 2)], width)
    x = b.flatten(b.adaptive_avgpool(x, (6, 6), name="avgpool"), name="flatten")
    _classifier(b, x, (4096, 4096), num_classes, width)
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


def overfeat_fast(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
                  input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
    check_classes(num_classes)
    b = start("overfeat_fast", (3, 231, 231), batch, input_size, dtype_bytes)
    x = _features(b, b.input(), [
        (96, 11, 4, 0), ("M", 2, 2), (256, 5, 1, 0), ("M", 2, 2),
        (512, 3, 1, 1), (1024, 3, 1, 1), (1024, 3, 1, 1), ("M", 2, 2)], width)
    _classifier(b, b.flatten(x, name="flatten"), (3072, 4096), num_classes, width)
    return b.build()


def alexnet_bvlc(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
                 input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
    check_classes(num_classes)
    b = start("alexnet_bvlc", (3, 224, 224), batch, input_size, dtype_bytes)

    def towers(channels: int) -> int:   # two groups need an even channel count
        return 2 * scaled(channels // 2, width)

    x = b.relu(b.conv2d(b.input(), towers(96), 11, stride=4, bias=True, name="conv1"),
               name="relu1")
    x = b.maxpool(lrn(b, x, "norm1"), 3, stride=2, ceil_mode=True, name="pool1")
    x = b.relu(b.conv2d(x, towers(256), 5, padding=2, groups=2, bias=True, name="conv2"),
               name="relu2")
    x = b.maxpool(lrn(b, x, "norm2"), 3, stride=2, ceil_mode=True, name="pool2")
    for i, (out, groups) in enumerate(((384, 1), (384, 2), (256, 2)), start=3):
        x = b.relu(b.conv2d(x, towers(out), 3, padding=1, groups=groups, bias=True,
                            name=f"conv{i}"), name=f"relu{i}")
    x = b.flatten(b.maxpool(x, 3, stride=2, ceil_mode=True, name="pool5"), name="flatten")
    for i in (6, 7):
        x = b.linear(x, scaled(4096, width), name=f"fc{i}")
        x = b.dropout(b.relu(x, name=f"relu{i}"), 0.5, name=f"drop{i}")
    b.linear(x, num_classes, name="fc8")
    return b.build()
