"""The network zoo: forward graphs (ending at the logits) built without PyTorch.

    g = workloads.zoo.get("resnet50", batch=32)          # options: num_classes, width, ...
    train = workloads.training.lower_training(g)           # adds the loss, backward, updates

Every network takes `num_classes`, `width` (a channel multiplier), `input_size` (height and
width of the input) and `dtype_bytes`; CIFAR ResNets also take `depth` (through
`cifar_resnet`) and `shortcut` ("A" zero-pad, "B" 1x1 conv). `resnet<N>` names a CIFAR ResNet of
any depth N = 6k+2 that is not an ImageNet name (resnet50 and resnet152 are the ImageNet models;
take `get("cifar_resnet", depth=50)` for the CIFAR one). A name `path/to/net.py:factory` is a
PyTorch module of the user's (workloads/torch_file.py; option input_shape).
"""
from __future__ import annotations

import inspect
import math
import re

from .. import supernet
from ..graph import OpGraph, WorkloadError
from . import alexnet, decoupled, lenet, resnet, vgg
from ._base import NetworkInfo

__all__ = ["get", "names", "info", "NetworkInfo"]

_CIFAR_RESNET_DEPTHS = (20, 32, 44, 56, 110, 224, 362)


def _cifar_resnet_info(name: str, depth: int | None) -> NetworkInfo:
    what = f"ResNet-{depth}" if depth else "ResNet-(6k+2)"
    return NetworkInfo(name, (3, 32, 32), 10,
                       f"CIFAR-10 {what} (He et al. 2016), option-A shortcuts",
                       resnet.cifar_resnet, {"depth": depth} if depth else {})


_REGISTRY: dict[str, NetworkInfo] = {n.name: n for n in [
    NetworkInfo("lenet5", (1, 28, 28), 10, "LeNet-5 on MNIST (ReLU, max pool)", lenet.lenet5),
    NetworkInfo("alexnet", (3, 224, 224), 1000, "AlexNet, torchvision (ImageNet)",
                alexnet.alexnet),
    NetworkInfo("alexnet_cifar", (3, 32, 32), 10, "AlexNet for CIFAR-10 (bearpaw)",
                alexnet.alexnet_cifar),
    NetworkInfo("vgg16", (3, 224, 224), 1000, "VGG-16, torchvision, no batch norm (ImageNet)",
                vgg.vgg16),
    NetworkInfo("vgg16_cifar", (3, 32, 32), 10, "VGG-16 with batch norm, 512->10 (CIFAR-10)",
                vgg.vgg16_cifar),
    NetworkInfo("resnet18", (3, 224, 224), 1000, "ResNet-18, torchvision (ImageNet)",
                resnet.resnet18),
    NetworkInfo("resnet34", (3, 224, 224), 1000, "ResNet-34, torchvision (ImageNet)",
                resnet.resnet34),
    NetworkInfo("resnet50", (3, 224, 224), 1000, "ResNet-50 v1.5, torchvision (ImageNet)",
                resnet.resnet50),
    NetworkInfo("resnet101", (3, 224, 224), 1000, "ResNet-101 v1.5, torchvision (ImageNet)",
                resnet.resnet101),
    NetworkInfo("resnet152", (3, 224, 224), 1000, "ResNet-152 v1.5, torchvision (ImageNet)",
                resnet.resnet152),
    NetworkInfo("fixup_resnet50", (3, 224, 224), 1000,
                "Fixup ResNet-50: no batch norm, scalar biases not modelled (ImageNet)",
                resnet.fixup_resnet50),
    NetworkInfo("decnn_resnet50", (3, 224, 224), 1000,
                "DeCNN decoupled ResNet-50: group convs + channel shuffles (options groups, "
                "width)", decoupled.decnn_resnet50),
    NetworkInfo("spos_supernet", (3, 224, 224), 1000,
                "SPOS ShuffleNetV2 supernet, 20 blocks x 4 candidates: one subnet (options "
                "choices, seed)", supernet.zoo_builder(supernet.SPOS_IMAGENET)),
    NetworkInfo("spos_cifar", (3, 32, 32), 10,
                "small SPOS-style supernet on CIFAR-10, 8 blocks x 4 candidates: one subnet "
                "(options choices, seed)", supernet.zoo_builder(supernet.SPOS_CIFAR)),
    _cifar_resnet_info("cifar_resnet", None),
    *(_cifar_resnet_info(f"resnet{d}", d) for d in _CIFAR_RESNET_DEPTHS),
]}


def names() -> list[str]:
    """The registered names (any other resnet<6k+2> is accepted by `get` too)."""
    return list(_REGISTRY)


def info(name: str) -> NetworkInfo:
    if name in _REGISTRY:
        return _REGISTRY[name]
    from ..torch_file import file_info, is_file_spec
    if is_file_spec(name):   # a PyTorch module in the user's file: path/to/net.py:factory
        return file_info(name)
    match = re.fullmatch(r"resnet(\d+)", name)
    if match:
        return _cifar_resnet_info(name, resnet.check_cifar_depth(int(match.group(1))))
    raise WorkloadError(f"unknown network {name!r}; known: {', '.join(names())} "
                        f"(and resnet<N> for any CIFAR depth N = 6k+2, or a PyTorch module "
                        f"of yours as path/to/net.py:factory)")


def get(name: str, batch: int = 1, **options) -> OpGraph:
    """The forward graph of network `name` for a batch of `batch` samples."""
    entry = info(name)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise WorkloadError(f"batch size must be an integer >= 1, got {batch!r}")
    accepted = set(inspect.signature(entry.build).parameters) - {"batch"} - set(entry.fixed)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise WorkloadError(f"{name}: unknown option(s) {', '.join(unknown)}; "
                            f"accepted: {', '.join(sorted(accepted))}")
    for key, value in options.items():  # int(width * c) would fail obscurely on these
        if isinstance(value, float) and not math.isfinite(value):
            raise WorkloadError(f"{name}: option {key!r} must be a finite number, got {value}")
    graph = entry.build(batch=batch, **entry.fixed, **options)
    graph.meta.setdefault("network", name)
    return graph
