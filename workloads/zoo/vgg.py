"""VGG (Simonyan & Zisserman 2015): configurations A, D and E on ImageNet, D on CIFAR-10.

ImageNet (3x224x224): torchvision's `vgg11` (configuration A, "VGG-A", 132,863,336 parameters),
`vgg16` (D, 138,357,544) and `vgg19` (E, 143,667,240), without batch norm; the `_bn` names are
torchvision's `vgg11_bn`, `vgg16_bn`, `vgg19_bn`, with a batch norm after each convolution. Op
names are torchvision's module paths (features.0, ..., classifier.6).

CIFAR-10 (3x32x32): the model of kuangliu/pytorch-cifar (models/vgg.py): the 13 convolutions of
configuration D each followed by batch norm, then a single 512->10 linear classifier,
14,728,266 parameters. (Its final AvgPool2d(1, 1) is the identity and is left out.)
`batchnorm=False` drops the norms.
"""
from __future__ import annotations

from ..graph import OpGraph
from ._base import check_classes, scaled, start

# output channels of each 3x3 conv, "M" for a 2x2 max pool (the paper's Table 1)
CFG_A = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
CFG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
CFG_E = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def _features(b, x: str, cfg: list, width: float, batchnorm: bool) -> str:
    i = 0  # nn.Sequential index, so names are torchvision's module paths
    with b.scope("features"):
        for v in cfg:
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


def _imagenet_vgg(name: str, cfg: list, batch: int, num_classes: int, width: float,
                  input_size: int | None, dtype_bytes: int, batchnorm: bool) -> OpGraph:
    check_classes(num_classes)
    b = start(name, (3, 224, 224), batch, input_size, dtype_bytes)
    x = _features(b, b.input(), cfg, width, batchnorm)
    x = b.flatten(b.adaptive_avgpool(x, (7, 7), name="avgpool"), name="flatten")
    hidden = scaled(4096, width)
    with b.scope("classifier"):
        x = b.dropout(b.relu(b.linear(x, hidden, name="0"), name="1"), 0.5, name="2")
        x = b.dropout(b.relu(b.linear(x, hidden, name="3"), name="4"), 0.5, name="5")
        b.linear(x, num_classes, name="6")
    return b.build()


def _imagenet(name: str, cfg: list, batchnorm: bool):
    def build(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
              input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
        return _imagenet_vgg(name, cfg, batch, num_classes, width, input_size, dtype_bytes,
                             batchnorm)
    return build


vgg11, vgg11_bn = _imagenet("vgg11", CFG_A, False), _imagenet("vgg11_bn", CFG_A, True)
vgg16, vgg16_bn = _imagenet("vgg16", CFG_D, False), _imagenet("vgg16_bn", CFG_D, True)
vgg19, vgg19_bn = _imagenet("vgg19", CFG_E, False), _imagenet("vgg19_bn", CFG_E, True)


def vgg16_cifar(batch: int = 1, num_classes: int = 10, width: float = 1.0,
                input_size: int | None = None, dtype_bytes: int = 4,
                batchnorm: bool = True) -> OpGraph:
    check_classes(num_classes)
    b = start("vgg16_cifar", (3, 32, 32), batch, input_size, dtype_bytes)
    x = _features(b, b.input(), CFG_D, width, batchnorm=bool(batchnorm))
    x = b.flatten(x, name="flatten")
    b.linear(x, num_classes, name="classifier")
    return b.build()
