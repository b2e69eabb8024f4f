"""The decoupled ResNet-50 of DeCNN (Du et al., IEEE TPDS, "Model Parallelism Optimization for
Distributed Inference via Decoupled CNN Structure").

ResNet-50 v1.5 rebuilt so that its channels fall into `groups` independent groups between two
channel shuffles (ShuffleNet-like): every 3x3 and 1x1 conv of the bottlenecks and of the
downsampling shortcuts is a group conv, and one channel shuffle after the first 1x1 conv of each
bottleneck mixes the groups (`shuffles="block"`, the paper's description: 16 exchanges), or,
as the authors' code builds it (github.com/sysu-eda/Distributed-CNN-Inference), one shuffle
after each of stages 1-3 (`shuffles="stages"`: 3 exchanges). A device that holds one group
then needs the others' data only at the shuffles. The stem conv (3 input channels) stays dense
and the classifier stays one fully connected layer; the DeCNN policy splits them by output
channel and by input feature.

Group convs keep 1/groups of the weights and FLOPs; DeCNN widens the kernels to recover the
accuracy this loses. `width` multiplies every channel count. By default (width=None) it is
sqrt(groups), which gives the grouped layers the parameters and FLOPs of the original network
(a grouped layer scales as width^2 / groups), with each channel count rounded to the nearest
multiple of `groups`. The authors' code trains width 1.5 (stage widths 96/192/384/768) and
1.75 (their top-1 for each: validation/measured/decnn_top1.csv); the stem is scaled like the
stages, which the code's description leaves open.
An explicit width is taken as given: groups must then divide every channel count (an error
names the first layer where it does not). groups=1 with width=1 is exactly resnet50.

Op names follow torchvision's ResNet-50 (conv1, layer1.0.conv1, layer1.0.downsample.0, fc),
with `layerX.Y.shuffle` (or `layerX.shuffle` after a stage) for the channel shuffles.
"""
from __future__ import annotations

import math

from ..graph import OpGraph, WorkloadError
from ._base import check_classes, scaled, start
from .resnet import BOTTLENECK_EXPANSION, IMAGENET_BLOCKS

SHUFFLE_PLACEMENTS = ("block", "stages")


def _channel_rule(groups: object, width: float | None):
    """The function giving each layer's channel count from the original's."""
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise WorkloadError(f"decnn_resnet50: groups must be an integer >= 1, got {groups!r}")
    if width is None:
        w = math.sqrt(groups)
        return lambda c, where: max(groups, int(round(c * w / groups)) * groups)

    def explicit(c: int, where: str) -> int:
        n = scaled(c, width)
        if n % groups:
            raise WorkloadError(f"decnn_resnet50: groups={groups} does not divide the {n} "
                                f"channels of {where} (width {width}); choose groups that "
                                f"divide them or leave width unset (sqrt(groups), rounded)")
        return n
    return explicit


def decnn_resnet50(batch: int = 1, groups: int = 4, width: float | None = None,
                   num_classes: int = 1000, input_size: int | None = None,
                   dtype_bytes: int = 4, shuffles: str = "block") -> OpGraph:
    check_classes(num_classes)
    if shuffles not in SHUFFLE_PLACEMENTS:
        raise WorkloadError(f"decnn_resnet50: shuffles must be one of "
                            f"{', '.join(SHUFFLE_PLACEMENTS)}, got {shuffles!r}")
    channels = _channel_rule(groups, width)
    effective_width = math.sqrt(groups) if width is None else float(width)
    b = start("decnn_resnet50", (3, 224, 224), batch, input_size, dtype_bytes,
              groups=groups, width=effective_width)
    x = b.input()
    x = b.conv2d(x, channels(64, "conv1"), 7, stride=2, padding=3, name="conv1")
    x = b.maxpool(b.relu(b.batchnorm(x, name="bn1"), name="relu"), 3, stride=2, padding=1,
                  name="maxpool")
    _, counts = IMAGENET_BLOCKS[50]
    for stage, count in enumerate(counts):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            where = f"layer{stage + 1}.{i}"
            planes = channels(64 * 2 ** stage, f"{where}.conv1")
            out_ch = channels(64 * 2 ** stage * BOTTLENECK_EXPANSION, f"{where}.conv3")
            with b.scope(f"layer{stage + 1}"), b.scope(str(i)):
                x = _decoupled_bottleneck(b, x, planes, out_ch, stride, groups,
                                          shuffle=shuffles == "block")
        if shuffles == "stages" and groups > 1 and stage < len(counts) - 1:
            x = b.channel_shuffle(x, groups, name=f"layer{stage + 1}.shuffle")
    x = b.flatten(b.adaptive_avgpool(x, (1, 1), name="avgpool"), name="flatten")
    b.linear(x, num_classes, name="fc")
    return b.build()


def _decoupled_bottleneck(b, x: str, planes: int, out_ch: int, stride: int, groups: int,
                          shuffle: bool) -> str:
    out = b.relu(b.batchnorm(b.conv2d(x, planes, 1, groups=groups, name="conv1"), name="bn1"),
                 name="relu")
    if shuffle and groups > 1:  # the one exchange point of the block
        out = b.channel_shuffle(out, groups, name="shuffle")
    out = b.relu(b.batchnorm(b.conv2d(out, planes, 3, stride=stride, padding=1, groups=groups,
                                      name="conv2"), name="bn2"), name="relu2")
    out = b.batchnorm(b.conv2d(out, out_ch, 1, groups=groups, name="conv3"), name="bn3")
    shortcut = x
    if stride != 1 or b.spec(x).shape[1] != out_ch:
        with b.scope("downsample"):
            shortcut = b.batchnorm(b.conv2d(x, out_ch, 1, stride=stride, groups=groups,
                                            name="0"), name="1")
    return b.relu(b.add(out, shortcut), name="relu3")
