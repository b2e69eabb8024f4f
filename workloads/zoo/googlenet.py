"""GoogLeNet (Inception-v1, Szegedy et al. 2015) as torchvision builds it, on ImageNet (3x224x224).

torchvision's `googlenet` without its two auxiliary classifiers (they run only in training,
and torchvision's pretrained model drops them): 6,624,904 parameters, 1.50 G multiply-adds.
Every conv is a BasicConv2d (conv without bias, batch norm, ReLU); the max pools round their
output size up (ceil_mode), so 112 -> 56 -> 28 -> 14 -> 7. torchvision's "5x5" branch is a 3x3
conv (a known quirk it keeps for its weights). Op names are its module paths (conv1.conv,
inception3a.branch2.1.bn, maxpool4, fc).

The paper's network differs in three ways: no batch norm (its convs have biases), a 5x5 conv in
the third branch, and two local response norms after the stem. `googlenet_v1` is that network
as Caffe's bvlc_googlenet defines it (no batch norm, 5x5 third branches, dropout 0.4): a local
response norm (size 5, alpha 1e-4, beta 0.75) after maxpool1 and after conv3, 6,998,552
parameters and 1.58 G multiply-adds (the paper budgets "1.5 billion").
`googlenet_v1_nolrn` is the same without the two norms, as soumith/convnet-benchmarks'
googlenet.lua and benchmark_googlenet.py build it ("LRN (not added for now)").
"""
from __future__ import annotations

from ..graph import OpGraph, WorkloadError
from ._base import basic_conv, check_classes, lrn, scaled, start

# an inception module's (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) output channels
# (the paper's Table 1), or the kernel of a stride-2 max pool between stages
STAGES: list[tuple[str, int | tuple[int, ...]]] = [
    ("inception3a", (64, 96, 128, 16, 32, 32)),
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    ("maxpool3", 3),
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    ("maxpool4", 2),
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
]


def _inception(b, x: str, channels: tuple[int, ...], conv, branch3_kernel: int) -> str:
    c1, c3r, c3, c5r, c5, pool_proj = channels
    b1 = conv(x, c1, 1, "branch1")
    with b.scope("branch2"):
        b2 = conv(conv(x, c3r, 1, "0"), c3, 3, "1", padding=1)
    with b.scope("branch3"):
        b3 = conv(conv(x, c5r, 1, "0"), c5, branch3_kernel, "1", padding=branch3_kernel // 2)
    with b.scope("branch4"):
        b4 = conv(b.maxpool(x, 3, stride=1, padding=1, ceil_mode=True, name="0"),
                  pool_proj, 1, "1")
    return b.concat([b1, b2, b3, b4], name="concat")


def googlenet(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
              input_size: int | None = None, dtype_bytes: int = 4, batchnorm: bool = True,
              branch3_kernel: int = 3) -> OpGraph:
    if branch3_kernel not in (3, 5):
        raise WorkloadError(f"googlenet branch3_kernel must be 3 (torchvision) or 5 (the "
                            f"paper), got {branch3_kernel!r}")
    return _build("googlenet", batch, num_classes, width, input_size, dtype_bytes,
                  bool(batchnorm), branch3_kernel, lrn_after_stem=False, dropout=0.2)


def googlenet_v1(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
                 input_size: int | None = None, dtype_bytes: int = 4,
                 lrn_after_stem: bool = True) -> OpGraph:
    """Caffe's bvlc_googlenet without its auxiliary classifiers; lrn_after_stem=False
    (googlenet_v1_nolrn) as soumith/convnet-benchmarks builds it."""
    name = "googlenet_v1" if lrn_after_stem else "googlenet_v1_nolrn"
    return _build(name, batch, num_classes, width, input_size, dtype_bytes, False, 5,
                  bool(lrn_after_stem), dropout=0.4)


def _build(network: str, batch: int, num_classes: int, width: float, input_size: int | None,
           dtype_bytes: int, batchnorm: bool, branch3_kernel: int, lrn_after_stem: bool,
           dropout: float) -> OpGraph:
    check_classes(num_classes)
    b = start(network, (3, 224, 224), batch, input_size, dtype_bytes)

    def conv(x: str, out: int, kernel: int, name: str, stride: int = 1, padding: int = 0) -> str:
        return basic_conv(b, x, scaled(out, width), kernel, name, stride, padding,
                          batchnorm)

    x = conv(b.input(), 64, 7, "conv1", stride=2, padding=3)
    x = b.maxpool(x, 3, stride=2, ceil_mode=True, name="maxpool1")
    x = lrn(b, x, "norm1") if lrn_after_stem else x
    x = conv(conv(x, 64, 1, "conv2"), 192, 3, "conv3", padding=1)
    x = lrn(b, x, "norm2") if lrn_after_stem else x
    x = b.maxpool(x, 3, stride=2, ceil_mode=True, name="maxpool2")
    for name, spec in STAGES:
        if isinstance(spec, int):
            x = b.maxpool(x, spec, stride=2, ceil_mode=True, name=name)
            continue
        with b.scope(name):
            x = _inception(b, x, spec, conv, branch3_kernel)
    x = b.flatten(b.adaptive_avgpool(x, (1, 1), name="avgpool"), name="flatten")
    b.linear(b.dropout(x, dropout, name="dropout"), num_classes, name="fc")
    return b.build()
