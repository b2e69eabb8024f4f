"""ShuffleNet V2 (Ma et al. 2018) as torchvision builds it, on ImageNet (3x224x224):
shufflenet_v2_x1_0 has 2,278,604 parameters and 0.14 G multiply-adds.

A unit that keeps its size splits the channels in two halves (x.chunk(2, dim=1): views named
chunk0 and chunk1), runs the second through a 1x1 conv, a 3x3 depthwise conv and a 1x1 conv,
and concatenates it back beside the first; a unit that halves the size runs both branches
on the whole input (branch1: a strided depthwise conv and a 1x1 conv). Each unit ends with a
channel shuffle of two groups. Op names are torchvision's module paths (stage2.0.branch2.3,
conv5.0); the global pool, written x.mean([2, 3]), is the op `mean`.
"""
from __future__ import annotations

from ..graph import OpGraph
from ._base import check_classes, start

# output channels of conv1, stages 2-4 and conv5 per width (torchvision's _stages_out_channels)
STAGE_CHANNELS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024),
                  1.5: (24, 176, 352, 704, 1024), 2.0: (24, 244, 488, 976, 2048)}
STAGE_REPEATS = (4, 8, 4)


def _bn(b, x: str, index: int, relu: bool = False) -> str:
    x = b.batchnorm(x, name=str(index))
    return b.relu(x, name=str(index + 1)) if relu else x


def _branch2(b, x: str, out: int, stride: int) -> str:
    with b.scope("branch2"):
        x = _bn(b, b.conv2d(x, out, 1, name="0"), 1, relu=True)
        x = _bn(b, b.conv2d(x, out, 3, stride=stride, padding=1, groups=out, name="3"), 4)
        return _bn(b, b.conv2d(x, out, 1, name="5"), 6, relu=True)


def _unit(b, x: str, out: int, stride: int) -> str:
    half = out // 2
    if stride == 1:
        channels = b.spec(x).shape[1]
        kept = b.slice(x, 0, channels // 2, name="chunk0")
        y = _branch2(b, b.slice(x, channels // 2, channels, name="chunk1"), half, 1)
    else:
        cin = b.spec(x).shape[1]
        with b.scope("branch1"):
            kept = _bn(b, b.conv2d(x, cin, 3, stride=2, padding=1, groups=cin, name="0"), 1)
            kept = _bn(b, b.conv2d(kept, half, 1, name="2"), 3, relu=True)
        y = _branch2(b, x, half, stride)
    return b.channel_shuffle(b.concat([kept, y], name="concat"), 2, name="channel_shuffle")


def _shufflenet_v2(name: str, width: float, batch: int, num_classes: int,
                   input_size: int | None, dtype_bytes: int) -> OpGraph:
    check_classes(num_classes)
    stem, *stages, last = STAGE_CHANNELS[width]
    b = start(name, (3, 224, 224), batch, input_size, dtype_bytes)
    x = b.input()
    with b.scope("conv1"):
        x = _bn(b, b.conv2d(x, stem, 3, stride=2, padding=1, name="0"), 1, relu=True)
    x = b.maxpool(x, 3, stride=2, padding=1, name="maxpool")
    for stage, (out, repeats) in enumerate(zip(stages, STAGE_REPEATS, strict=True), start=2):
        for i in range(repeats):
            with b.scope(f"stage{stage}.{i}"):
                x = _unit(b, x, out, 2 if i == 0 else 1)
    with b.scope("conv5"):
        x = _bn(b, b.conv2d(x, last, 1, name="0"), 1, relu=True)
    x = b.flatten(b.adaptive_avgpool(x, (1, 1), name="mean"), name="flatten")
    b.linear(x, num_classes, name="fc")
    return b.build()


def _shufflenet_of(width: float, name: str):
    def build(batch: int = 1, num_classes: int = 1000, input_size: int | None = None,
              dtype_bytes: int = 4) -> OpGraph:
        return _shufflenet_v2(name, width, batch, num_classes, input_size, dtype_bytes)
    return build


shufflenet_v2_x0_5 = _shufflenet_of(0.5, "shufflenet_v2_x0_5")
shufflenet_v2_x1_0 = _shufflenet_of(1.0, "shufflenet_v2_x1_0")
shufflenet_v2_x1_5 = _shufflenet_of(1.5, "shufflenet_v2_x1_5")
shufflenet_v2_x2_0 = _shufflenet_of(2.0, "shufflenet_v2_x2_0")
