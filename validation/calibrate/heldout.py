"""Held-out networks: plain PyTorch modules that calibration never sees.

The zoo is built with the repository's GraphBuilder and its shapes are calibrated on; a user's
network is neither. These modules are written the way a user writes them (torch.nn layers,
no dnnsim code), brought in through `workloads.from_torch`, and their shapes are in no
calibration case, so scoring them says how the profile generalises:

    dnnsim validate --profile validation/measured/cpu_profile.toml --heldout
    dnnsim validate --profile ... --measured validation/measured/cpu_heldout_steps.csv

Each entry: (module factory, input (channels, height, width), the batches measured).
"""
from __future__ import annotations

import statistics
from typing import Callable

import torch
from torch import nn

from workloads.graph import OpGraph, WorkloadError


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU()]


def small_vgg() -> nn.Module:
    """3x3 conv-BN-ReLU pairs, 24 to 96 channels, max pooling, a linear head."""
    layers: list = []
    cin = 3
    for c in (24, 48, 96):
        layers += _conv_bn(cin, c, 3) + _conv_bn(c, c, 3) + [nn.MaxPool2d(2)]
        cin = c
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(96 * 4 * 4, 10))


def cnn5x5() -> nn.Module:
    """Two 5x5 convolutions with biases and pooling, then a two-layer MLP head with dropout."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(256, 10))


def mobilenet_like() -> nn.Module:
    """A strided 3x3 stem, then depthwise 3x3 + pointwise 1x1 blocks, global pooling."""
    layers = _conv_bn(3, 24, 3, stride=2)
    cin = 24
    for cout, stride in ((48, 1), (96, 2), (96, 1), (192, 2), (192, 1)):
        layers += _conv_bn(cin, cin, 3, stride, groups=cin) + _conv_bn(cin, cout, 1)
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand, with an identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = 4 * width
        self.body = nn.Sequential(*_conv_bn(cin, width, 1), *_conv_bn(width, width, 3, stride),
                                  nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = (nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.short(x))


def bottleneck_resnet() -> nn.Module:
    """A small ResNet of bottleneck blocks (widths 16, 32, 64) on 32x32 images."""
    return nn.Sequential(
        *_conv_bn(3, 32, 3), Bottleneck(32, 16), Bottleneck(64, 16), Bottleneck(64, 32, 2),
        Bottleneck(128, 32), Bottleneck(128, 64, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(256, 10))


def mlp() -> nn.Module:
    """A fully connected network on flattened 28x28 images."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 512),
                         nn.ReLU(), nn.Linear(512, 10))


def lenet_300_100() -> nn.Module:
    """LeCun's fully connected LeNet-300-100 on flattened 28x28 images."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100),
                         nn.ReLU(), nn.Linear(100, 10))


class Fire(nn.Module):
    """SqueezeNet's fire module: a 1x1 squeeze, then 1x1 and 3x3 expands concatenated."""

    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.expand1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.expand3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x):
        s = self.squeeze(x)
        return torch.cat([self.expand1(s), self.expand3(s)], 1)


def squeezenet_like() -> nn.Module:
    """A small SqueezeNet: strided stem, fire modules, a 1x1 classifier conv, global pooling."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, stride=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        Fire(64, 16, 64), Fire(128, 16, 64), nn.MaxPool2d(3, 2),
        Fire(128, 32, 128), Fire(256, 48, 192), nn.Dropout(0.5),
        nn.Conv2d(384, 10, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class DenseLayer(nn.Module):
    """DenseNet's BN-ReLU-3x3 conv producing `growth` channels, concatenated to its input."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(),
                                  nn.Conv2d(cin, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


def densenet_like() -> nn.Module:
    """Two dense blocks of growth 12 (24 to 78 channels) with a 1x1 transition between."""
    block1 = [DenseLayer(24 + 12 * i, 12) for i in range(3)]
    block2 = [DenseLayer(30 + 12 * i, 12) for i in range(4)]
    return nn.Sequential(
        nn.Conv2d(3, 24, 3, padding=1, bias=False), *block1,
        nn.BatchNorm2d(60), nn.ReLU(), nn.Conv2d(60, 30, 1, bias=False), nn.AvgPool2d(2),
        *block2, nn.BatchNorm2d(78), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(78, 10))


def strided_cnn() -> nn.Module:
    """A 7x7 stride-2 stem of 36 channels, 3x3 convolutions with biases (one strided), average
    pooling and a dropout head."""
    return nn.Sequential(
        nn.Conv2d(3, 36, 7, stride=2, padding=3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(36, 72, 3, padding=1), nn.ReLU(),
        nn.Conv2d(72, 144, 3, stride=2, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(144 * 4 * 4, 100), nn.ReLU(),
        nn.Linear(100, 10))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: a 1x1 expansion, a 3x3 depthwise convolution, a 1x1 projection,
    ReLU6 between, and a residual where the shape allows."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        mid = cin * expand
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
            nn.ReLU6(inplace=True), nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def mobilenet_v2_like() -> nn.Module:
    """A small MobileNetV2 on 32x32 images: ReLU6, inverted residuals, a spatial mean."""
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 24, 3, 1, 1, bias=False), nn.BatchNorm2d(24),
                                      nn.ReLU6(inplace=True))
            self.blocks = nn.Sequential(
                InvertedResidual(24, 24, 1), InvertedResidual(24, 40, 2),
                InvertedResidual(40, 40, 1), InvertedResidual(40, 80, 2),
                InvertedResidual(80, 80, 1))
            self.head = nn.Linear(80, 10)

        def forward(self, x):
            return self.head(self.blocks(self.stem(x)).mean((2, 3)))
    return Net()


def mlp_gelu() -> nn.Module:
    """An MLP with batch norm and GELU (600, 200 hidden units) on 28x28 images."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 600), nn.BatchNorm1d(600), nn.GELU(),
                         nn.Linear(600, 200), nn.BatchNorm1d(200), nn.GELU(),
                         nn.Linear(200, 10))


def cnn_tanh() -> nn.Module:
    """A LeNet-style CNN of the classic kind on 3x32x32 images: tanh and average pooling, a
    leaky-ReLU head; wider than LeNet-5 (12 and 32 channels)."""
    return nn.Sequential(
        nn.Conv2d(3, 12, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(12, 32, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(32 * 5 * 5, 160), nn.LeakyReLU(0.1), nn.Linear(160, 10))


class SqueezeExcite(nn.Module):
    """A squeeze-and-excitation gate, written with linears and a view as most code does."""

    def __init__(self, c: int, reduction: int = 8) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // reduction), nn.ReLU(inplace=True),
                                nn.Linear(c // reduction, c), nn.Sigmoid())

    def forward(self, x):
        n, c, _, _ = x.size()
        return x * self.fc(x.mean((2, 3))).view(n, c, 1, 1)


class SEBasicBlock(nn.Module):
    """A ResNet basic block with a squeeze-and-excitation gate before the residual sum."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(cin, cout, 3, stride),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout), SqueezeExcite(cout))
        self.short = (nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def se_resnet() -> nn.Module:
    """A small SE-ResNet on 32x32 images: widths 20, 40, 80, one block each after the first."""
    return nn.Sequential(*_conv_bn(3, 20, 3), SEBasicBlock(20, 20), SEBasicBlock(20, 40, 2),
                         SEBasicBlock(40, 80, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(80, 10))


class V3Block(nn.Module):
    """MobileNetV3's block: 1x1 expansion, depthwise k x k, a gate of 1x1 convolutions with a
    hard sigmoid, 1x1 projection; hard swish between."""

    def __init__(self, cin: int, mid: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid),
                                    nn.Hardswish())
        self.depthwise = nn.Sequential(
            nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False),
            nn.BatchNorm2d(mid), nn.Hardswish())
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, mid // 4, 1),
                                  nn.ReLU(), nn.Conv2d(mid // 4, mid, 1), nn.Hardsigmoid())
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.depthwise(self.expand(x))
        y = self.project(y * self.gate(y))
        return x + y if self.residual else y


def mobilenet_v3_like() -> nn.Module:
    """A small MobileNetV3 on 64x64 images (5x5 and 3x3 depthwise, 16 to 64 channels)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish(),
        V3Block(16, 64, 24, 3, 2), V3Block(24, 72, 24, 3, 1), V3Block(24, 96, 40, 5, 2),
        V3Block(40, 120, 40, 5, 1), V3Block(40, 160, 64, 3, 2), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(64, 128), nn.Hardswish(), nn.Linear(128, 10))


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


def mish_cnn() -> nn.Module:
    """A VGG-style CNN with Mish, a hand-written swish and 28 to 112 channels, on 48x48 images."""
    return nn.Sequential(
        nn.Conv2d(3, 28, 3, padding=1), nn.BatchNorm2d(28), nn.Mish(), nn.MaxPool2d(2),
        nn.Conv2d(28, 56, 3, padding=1), nn.BatchNorm2d(56), Swish(), nn.MaxPool2d(2),
        nn.Conv2d(56, 112, 3, padding=1), nn.BatchNorm2d(112), nn.Mish(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(112, 10))


def selu_mlp() -> nn.Module:
    """A self-normalising MLP (SELU; 700, 350, 120 hidden units) with a softplus layer, on
    3x32x32 images."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 700), nn.SELU(),
                         nn.Linear(700, 350), nn.SELU(), nn.Linear(350, 120), nn.Softplus(),
                         nn.Linear(120, 10))


def groupnorm_cnn() -> nn.Module:
    """3x3 convolutions with group norm (8 groups; 24 to 96 channels) on 32x32 images, for
    the small batches group norm is used at. (Written first with 32 to 128 channels, whose
    convolutions at batch 2 turned out to be the grid's own shapes; changed before its steps
    were scored, and measured again.)"""
    def block(cin: int, cout: int) -> list:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(8, cout), nn.SiLU()]
    return nn.Sequential(*block(3, 24), *block(24, 24), nn.MaxPool2d(2), *block(24, 48),
                         *block(48, 48), nn.MaxPool2d(2), *block(48, 96),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, 10))


def layernorm_mlp() -> nn.Module:
    """An MLP with layer norm and GELU (512, 512, 128 hidden units) on 28x28 images."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.LayerNorm(512), nn.GELU(),
                         nn.Linear(512, 512), nn.LayerNorm(512), nn.GELU(),
                         nn.Linear(512, 128), nn.LayerNorm(128), nn.GELU(), nn.Linear(128, 10))


MODULES: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int], tuple[int, ...]]] = {
    "small_vgg": (small_vgg, (3, 32, 32), (8, 32)),
    "cnn5x5": (cnn5x5, (3, 32, 32), (16, 64)),
    "mobilenet_like": (mobilenet_like, (3, 64, 64), (8, 32)),
    "bottleneck_resnet": (bottleneck_resnet, (3, 32, 32), (4, 16)),
    "mlp": (mlp, (1, 28, 28), (64, 512)),
    "lenet_300_100": (lenet_300_100, (1, 28, 28), (100, 1000)),
    "squeezenet_like": (squeezenet_like, (3, 64, 64), (4, 16)),
    "densenet_like": (densenet_like, (3, 32, 32), (8, 32)),
    "strided_cnn": (strided_cnn, (3, 64, 64), (4, 16)),
    "mobilenet_v2_like": (mobilenet_v2_like, (3, 32, 32), (4, 16)),
    "mlp_gelu": (mlp_gelu, (1, 28, 28), (32, 256)),
    "cnn_tanh": (cnn_tanh, (3, 32, 32), (16, 128)),
    "se_resnet": (se_resnet, (3, 32, 32), (4, 16)),
    "mobilenet_v3_like": (mobilenet_v3_like, (3, 64, 64), (8, 32)),
    "mish_cnn": (mish_cnn, (3, 48, 48), (8, 32)),
    "selu_mlp": (selu_mlp, (3, 32, 32), (32, 256)),
    "groupnorm_cnn": (groupnorm_cnn, (3, 32, 32), (2, 8)),
    "layernorm_mlp": (layernorm_mlp, (1, 28, 28), (64, 512)),
}
CASES: tuple[tuple[str, int], ...] = tuple((n, b) for n, (_, _, bs) in MODULES.items()
                                           for b in bs)


def module_and_input(name: str, batch: int, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    if name not in MODULES:
        raise WorkloadError(f"unknown held-out network {name!r}; known: {', '.join(MODULES)}")
    factory, shape, _ = MODULES[name]
    torch.manual_seed(seed)
    return factory(), torch.randn(batch, *shape)


def graph(name: str, batch: int) -> OpGraph:
    """The forward OpGraph `from_torch` makes of a held-out module."""
    from workloads import from_torch
    module, x = module_and_input(name, batch)
    return from_torch(module, x, name=name)


def step_timers(device="cpu", cases=CASES, reps: int = 2) -> dict:
    """{(name, batch): (forward OpGraph, callable timing `reps` more steps of the module's
    training loop, after one untimed)} for rounds over many cases (calibrate --heldout-csv)."""
    from .torch_exec import measure, module_step, resolve_device
    dev = resolve_device(device)
    out = {}
    for c in cases:
        module, x = module_and_input(*c)
        step = module_step(module.to(dev), x.to(dev))
        out[c] = (graph(*c), lambda step=step: measure(step, dev, 1, reps).samples_s)
    return out


def measure(cases=CASES, device="cpu", rounds: int = 6, reps: int = 2,
            progress: bool = True) -> list[dict]:
    """Measured training steps (median sample, as calibration counts) of held-out modules, in
    interleaved rounds, in the layout of the measured-steps CSV (steps_csv.py)."""
    from tqdm import tqdm

    timers = step_timers(device, cases, reps)
    samples: dict = {c: [] for c in cases}
    with tqdm(total=rounds * len(cases), desc="held-out steps", disable=not progress) as bar:
        for _ in range(rounds):
            for c in cases:
                samples[c] += timers[c][1]()
                bar.update()
    return [{"network": n, "batch": b, "mode": "train",
             "measured_s": statistics.median(samples[(n, b)])}
            for n, b in cases]
