"""ResNets: torchvision's ImageNet models (with ResNeXt and Wide ResNet), Fixup ResNet-50, and
the CIFAR ResNets of He et al.

ImageNet (3x224x224), torchvision-exact; op names are torchvision's module paths (conv1,
layer1.0.conv1, layer1.0.downsample.0, fc). A block's ReLU module is called two or three times;
its calls are named relu, relu2, relu3. Where a bottleneck halves the size, its stride is on the
3x3 conv in `resnet50` (v1.5: torchvision, NVIDIA's DeepLearningExamples, and fb.resnet.torch,
which moved it there, Gross & Wilber 2016) and on the first 1x1 conv in `resnet50_v1` (v1: He et
al. 2016's Caffe models, tf_cnn_benchmarks' resnet50). The two have the same parameters; v1's
first 1x1 conv of the three downsampling blocks runs on a quarter of the pixels, so v1.5 does
6% more multiply-adds (ResNet-50: 4.09 against 3.86 G). `resnet200` has fb.resnet.torch's
bottleneck blocks (3, 24, 36, 3), laid out as the v1.5 nets (64,673,832 parameters); the
pre-activation ResNet-200 (He et al. 2016b) has the same convolutions, with its batch norms
and ReLUs before them instead of after. ResNeXt (Xie et al. 2017: resnext50_32x4d 25,028,904
parameters, resnext101_32x4d 44,177,704 as NVIDIA's DeepLearningExamples train it,
resnext101_32x8d) makes each bottleneck's 3x3 conv grouped, 32 groups of 4 or 8 channels
per 64 of its planes; Wide ResNet-50-2 and -101-2 (Zagoruyko & Komodakis 2016, as
torchvision builds them: 68,883,240 and 126,886,696) double the 3x3 convs' channels.
SE-ResNeXt-50 and -101 32x4d gate each block's branch with squeeze-and-excitation
(27,559,896 and 48,955,416 parameters, as timm counts its seresnext50_32x4d and
seresnext101_32x4d); the gate's ops are named as torchvision's SqueezeExcitation names them.

Fixup ResNet-50 (Zhang et al. 2019): ResNet-50 with no batch norm, downsampling by a 1x1 conv
alone. Fixup's scalar biases and multipliers (7 per block, 2 per network: 114 parameters,
one elementwise add or multiply each) are left out: their cost is below the noise of the model.

CIFAR-10 (3x32x32), depth n = 6k+2 (He et al. 2016, section 4.2): a 3x3 conv of 16 channels,
three stages of k basic blocks at 16, 32 and 64 channels, global average pool, 64->10 linear.
Names follow akamaster/pytorch_resnet_cifar10 (conv1, layer1.0.conv1, layer2.0.shortcut, linear).
Where a stage halves the size, the shortcut is the paper's option A (`pad_channels`: take every
second row and column, then add zero channels; no parameters, ResNet-56 has 853,018) or, with
`shortcut="B"`, a 1x1 conv projection with batch norm.
"""
from __future__ import annotations

from ..graph import OpGraph, WorkloadError
from ._base import check_classes, scaled, start
from .mobile import squeeze_excitation

IMAGENET_BLOCKS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                   50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
                   152: ("bottleneck", (3, 8, 36, 3)), 200: ("bottleneck", (3, 24, 36, 3))}
BOTTLENECK_EXPANSION = 4
SE_REDUCTION = 16


def _conv_bn(b, x: str, out: int, kernel: int, stride: int, index: str, batchnorm: bool,
             groups: int = 1) -> str:
    padding = kernel // 2
    x = b.conv2d(x, out, kernel, stride=stride, padding=padding, groups=groups,
                 name=f"conv{index}")
    return b.batchnorm(x, name=f"bn{index}") if batchnorm else x


def _basic_block(b, x: str, planes: int, stride: int, batchnorm: bool, shortcut) -> str:
    out = b.relu(_conv_bn(b, x, planes, 3, stride, "1", batchnorm))
    out = _conv_bn(b, out, planes, 3, 1, "2", batchnorm)
    return b.relu(b.add(out, shortcut(x, planes)))


def _bottleneck(b, x: str, planes: int, stride: int, batchnorm: bool, shortcut,
                stride_in_1x1: bool = False, groups: int = 1, base_width: int = 64,
                se: bool = False) -> str:
    """torchvision's Bottleneck: the 3x3 conv has `groups` groups of `base_width` channels
    per 64 of `planes` (ResNeXt's cardinality and group width; twice the width in
    Wide ResNet's); the 1x1 convs around it take it from and back to planes x 4. `se`: a
    squeeze-and-excitation gate (Hu et al. 2018, reduction 16) on the branch before the
    residual add."""
    stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
    inner = int(planes * (base_width / 64.0)) * groups
    out = b.relu(_conv_bn(b, x, inner, 1, stride_1x1, "1", batchnorm))
    out = b.relu(_conv_bn(b, out, inner, 3, stride_3x3, "2", batchnorm, groups))
    out = _conv_bn(b, out, planes * BOTTLENECK_EXPANSION, 1, 1, "3", batchnorm)
    if se:
        out = squeeze_excitation(b, out, planes * BOTTLENECK_EXPANSION // SE_REDUCTION, "relu",
                                 "sigmoid", "se")
    return b.relu(b.add(out, shortcut(x, planes * BOTTLENECK_EXPANSION)))


def _imagenet_resnet(name: str, depth: int, batch: int, num_classes: int, width: float,
                     input_size: int | None, dtype_bytes: int, batchnorm: bool = True,
                     stride_in_1x1: bool = False, groups: int = 1,
                     base_width: int = 64, se: bool = False) -> OpGraph:
    check_classes(num_classes)
    kind, counts = IMAGENET_BLOCKS[depth]

    def block(b, x, planes, stride, batchnorm, shortcut):
        if kind == "basic":
            return _basic_block(b, x, planes, stride, batchnorm, shortcut)
        return _bottleneck(b, x, planes, stride, batchnorm, shortcut, stride_in_1x1, groups,
                           base_width, se)
    b = start(name, (3, 224, 224), batch, input_size, dtype_bytes)
    x = b.input()
    x = b.conv2d(x, scaled(64, width), 7, stride=2, padding=3, name="conv1")
    if batchnorm:
        x = b.batchnorm(x, name="bn1")
    x = b.maxpool(b.relu(x, name="relu"), 3, stride=2, padding=1, name="maxpool")
    for stage, count in enumerate(counts):
        planes = scaled(64 * 2 ** stage, width)
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1

            def shortcut(x_in: str, out: int, stride=stride) -> str:
                if stride == 1 and b.spec(x_in).shape[1] == out:
                    return x_in
                with b.scope("downsample"):
                    y = b.conv2d(x_in, out, 1, stride=stride, name="0")
                    return b.batchnorm(y, name="1") if batchnorm else y

            with b.scope(f"layer{stage + 1}"), b.scope(str(i)):
                x = block(b, x, planes, stride, batchnorm, shortcut)
    x = b.flatten(b.adaptive_avgpool(x, (1, 1), name="avgpool"), name="flatten")
    b.linear(x, num_classes, name="fc")
    return b.build()


def _imagenet(depth: int, name: str | None = None, batchnorm: bool = True,
              stride_in_1x1: bool = False, groups: int = 1, base_width: int = 64,
              se: bool = False):
    def build(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
              input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
        return _imagenet_resnet(name or f"resnet{depth}", depth, batch, num_classes, width,
                                input_size, dtype_bytes, batchnorm, stride_in_1x1, groups,
                                base_width, se)
    return build


resnet18, resnet34, resnet50 = _imagenet(18), _imagenet(34), _imagenet(50)
resnet101, resnet152, resnet200 = _imagenet(101), _imagenet(152), _imagenet(200)
resnet50_v1 = _imagenet(50, "resnet50_v1", stride_in_1x1=True)
resnet101_v1 = _imagenet(101, "resnet101_v1", stride_in_1x1=True)
resnet152_v1 = _imagenet(152, "resnet152_v1", stride_in_1x1=True)
fixup_resnet50 = _imagenet(50, "fixup_resnet50", batchnorm=False)
# ResNeXt (Xie et al. 2017): 32 groups of 4 channels per 64 of planes; Wide ResNet-50-2
# (Zagoruyko & Komodakis 2016, as torchvision builds it): the 3x3 convs twice as wide
resnext50_32x4d = _imagenet(50, "resnext50_32x4d", groups=32, base_width=4)
resnext101_32x4d = _imagenet(101, "resnext101_32x4d", groups=32, base_width=4)
resnext101_32x8d = _imagenet(101, "resnext101_32x8d", groups=32, base_width=8)
# SE-ResNeXt (Hu et al. 2018), as NVIDIA's DeepLearningExamples, Cadene's pretrainedmodels
# and timm build it
se_resnext50_32x4d = _imagenet(50, "se_resnext50_32x4d", groups=32, base_width=4, se=True)
se_resnext101_32x4d = _imagenet(101, "se_resnext101_32x4d", groups=32, base_width=4, se=True)
wide_resnet50_2 = _imagenet(50, "wide_resnet50_2", base_width=128)
wide_resnet101_2 = _imagenet(101, "wide_resnet101_2", base_width=128)


def is_cifar_depth(depth: object) -> bool:
    """Whether a CIFAR ResNet has this depth: 6k+2 with k >= 1 (He et al. 2016, section 4.2)."""
    return isinstance(depth, int) and not isinstance(depth, bool) and depth >= 8 and \
        (depth - 2) % 6 == 0


# The deepest CIFAR ResNet built: its forward graph has about 3.5 ops per layer, so this keeps
# it under the half million ops a simulation handles (simulator/limits.py MAX_GRAPH_OPS),
# refused by name before minutes of building it.
MAX_CIFAR_DEPTH = 140_000


def check_cifar_depth(depth: object) -> int:
    if not isinstance(depth, int) or not is_cifar_depth(depth):
        raise WorkloadError(f"CIFAR ResNet depth must be 6k+2 with k >= 1 (20, 32, 44, 56, "
                            f"110, ...), got {depth!r}")
    if depth > MAX_CIFAR_DEPTH:
        raise WorkloadError(f"CIFAR ResNet depth {depth:,} is past dnnsim's limit of "
                            f"{MAX_CIFAR_DEPTH:,} (see docs/reliability.md)")
    return depth


def cifar_resnet(batch: int = 1, depth: int = 20, num_classes: int = 10, width: float = 1.0,
                 input_size: int | None = None, dtype_bytes: int = 4,
                 shortcut: str = "A") -> OpGraph:
    check_classes(num_classes)
    blocks = (check_cifar_depth(depth) - 2) // 6
    if shortcut not in ("A", "B"):
        raise WorkloadError(f"cifar resnet shortcut must be 'A' (zero-pad) or 'B' (1x1 conv), "
                            f"got {shortcut!r}")
    b = start(f"cifar_resnet{depth}", (3, 32, 32), batch, input_size, dtype_bytes,
              depth=depth, shortcut=shortcut)
    x = b.input()
    x = b.relu(b.batchnorm(b.conv2d(x, scaled(16, width), 3, padding=1, name="conv1"),
                           name="bn1"), name="relu")
    for stage in range(3):
        planes = scaled(16 * 2 ** stage, width)
        for i in range(blocks):
            stride = 2 if stage > 0 and i == 0 else 1

            def short(x_in: str, out: int, stride=stride) -> str:
                cin = b.spec(x_in).shape[1]
                if stride == 1 and cin == out:
                    return x_in
                if shortcut == "A":
                    extra = out - cin   # split like F.pad(..., planes // 4 on each side)
                    return b.pad_channels(x_in, (extra // 2, extra - extra // 2), stride,
                                          name="shortcut")
                with b.scope("shortcut"):
                    return b.batchnorm(b.conv2d(x_in, out, 1, stride=stride, name="0"), name="1")

            with b.scope(f"layer{stage + 1}"), b.scope(str(i)):
                x = _basic_block(b, x, planes, stride, True, short)
    # the reference code pools with F.avg_pool2d(out, out.size()[3]): one window over it all
    x = b.avgpool(x, b.spec(x).shape[2:], name="avgpool")
    b.linear(b.flatten(x, name="flatten"), num_classes, name="linear")
    return b.build()
