"""What every zoo network shares: its entry in the registry and how it starts a builder."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..builder import GraphBuilder
from ..graph import OpGraph, WorkloadError


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    # one sample: (channels, height, width) for images, (tokens,) for sequence models
    input_shape: tuple[int, ...]
    num_classes: int
    description: str
    build: Callable[..., OpGraph] = field(repr=False, compare=False)
    fixed: dict = field(default_factory=dict, repr=False, compare=False)  # options the name sets


def start(name: str, input_shape: tuple[int, int, int], batch: int, input_size: int | None,
          dtype_bytes: int, **meta) -> GraphBuilder:
    """A builder for one network; `input_size` replaces the height and width of the input."""
    c, h, w = input_shape
    if input_size is not None:
        if not isinstance(input_size, int) or input_size < 1:
            raise WorkloadError(f"{name}: input_size must be an integer >= 1, got {input_size!r}")
        h = w = input_size
    if dtype_bytes not in (1, 2, 4, 8):
        raise WorkloadError(f"{name}: dtype_bytes must be 1, 2, 4 or 8, got {dtype_bytes!r}")
    return GraphBuilder(name, input_shape=(c, h, w), batch=batch, dtype_bytes=dtype_bytes,
                        **meta)


def imagenet_preset(build: Callable[..., OpGraph], key: str | int) -> Callable[..., OpGraph]:
    """A zoo builder with the ImageNet options (batch, num_classes, width, input_size,
    dtype_bytes) of one configuration `key` of a family's `build(key, batch, num_classes,
    width, input_size, dtype_bytes)`."""
    def preset(batch: int = 1, num_classes: int = 1000, width: float = 1.0,
               input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
        return build(key, batch, num_classes, width, input_size, dtype_bytes)
    return preset


def check_width(width: float) -> float:
    """The width multiplier, refused unless a number > 0 (get() refuses inf and nan)."""
    if not isinstance(width, (int, float)) or isinstance(width, bool) or width <= 0:
        raise WorkloadError(f"width multiplier must be > 0, got {width!r}")
    return width


def scaled(channels: int, width: float) -> int:
    """Channels after the width multiplier (at least one)."""
    return max(1, int(round(channels * check_width(width))))


def check_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or num_classes < 1:
        raise WorkloadError(f"num_classes must be an integer >= 1, got {num_classes!r}")


def basic_conv(b: GraphBuilder, x: str, out: int, kernel, name: str, stride=1, padding=0,
               batchnorm: bool = True) -> str:
    """torchvision's BasicConv2d (GoogLeNet, Inception-v3): a conv without bias, batch norm and
    ReLU, named <name>.conv, <name>.bn, <name>.relu; without batch norm the conv has a bias."""
    with b.scope(name):
        x = b.conv2d(x, out, kernel, stride=stride, padding=padding, bias=not batchnorm,
                     name="conv")
        if batchnorm:
            x = b.batchnorm(x, name="bn")
        return b.relu(x, name="relu")


def lrn(b: GraphBuilder, x: str, name: str, size: int = 5, alpha: float = 1e-4,
        beta: float = 0.75, k: float = 1.0) -> str:
    """Cross-channel local response norm of an (N, C, H, W) map (workloads/kinds/lrn.py);
    the defaults are Caffe's AlexNet and GoogLeNet layers' (local_size 5, alpha 1e-4,
    beta 0.75, k 1), as nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)."""
    if len(b.spec(x).shape) != 4:
        raise WorkloadError(f"lrn {name!r} needs an (N, C, H, W) input, got "
                            f"{b.spec(x).shape}")
    return b.op("lrn", [x], name=name, size=size, alpha=alpha, beta=beta, k=k)
