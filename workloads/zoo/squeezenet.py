"""SqueezeNet 1.1 (Iandola et al. 2016; the 1.1 layout of the authors' repository) as
torchvision builds it, on ImageNet (3x224x224): 1,235,496 parameters, 0.35 G multiply-adds.

Fire modules squeeze to a few channels with a 1x1 conv, then expand with 1x1 and 3x3 convs
side by side whose outputs are concatenated; every conv has a bias and a ReLU. The classifier
is a 1x1 conv to the classes, ReLU and a global average pool, so the logits come from a
flatten, not a linear layer. Op names are torchvision's module paths (features.3.squeeze,
classifier.1); each Fire module's concatenation is <module>.concat.
"""
from __future__ import annotations

from ..graph import OpGraph
from ._base import check_classes, scaled, start

# (squeeze, expand) channels of each Fire module, with the max pools (None) between them
_LAYOUT_1_1 = [(16, 64), (16, 64), None, (32, 128), (32, 128), None,
               (48, 192), (48, 192), (64, 256), (64, 256)]


def _fire(b, x: str, squeeze: int, expand: int) -> str:
    s = b.relu(b.conv2d(x, squeeze, 1, bias=True, name="squeeze"), name="squeeze_activation")
    e1 = b.relu(b.conv2d(s, expand, 1, bias=True, name="expand1x1"),
                name="expand1x1_activation")
    e3 = b.relu(b.conv2d(s, expand, 3, padding=1, bias=True, name="expand3x3"),
                name="expand3x3_activation")
    return b.concat([e1, e3], name="concat")


def squeezenet1_1(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
                  input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
    check_classes(num_classes)
    b = start("squeezenet1_1", (3, 224, 224), batch, input_size, dtype_bytes)
    x = b.conv2d(b.input(), scaled(64, width), 3, stride=2, bias=True, name="features.0")
    x = b.maxpool(b.relu(x, name="features.1"), 3, stride=2, ceil_mode=True, name="features.2")
    for index, fire in enumerate(_LAYOUT_1_1, start=3):
        if fire is None:
            x = b.maxpool(x, 3, stride=2, ceil_mode=True, name=f"features.{index}")
            continue
        with b.scope(f"features.{index}"):
            x = _fire(b, x, scaled(fire[0], width), scaled(fire[1], width))
    x = b.dropout(x, 0.5, name="classifier.0")
    x = b.relu(b.conv2d(x, num_classes, 1, bias=True, name="classifier.1"), name="classifier.2")
    x = b.adaptive_avgpool(x, (1, 1), name="classifier.3")
    b.flatten(x, name="flatten")
    return b.build()
