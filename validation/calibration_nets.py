"""Synthetic networks that calibration replays besides the zoo: a grid of op shapes.

The zoo's networks cover few shapes (CIFAR ResNets use only 3x3 convolutions of 16-64 channels).
A profile must also predict networks it has never seen (users bring their own through
`from_torch`), so calibration also measures these: residual stages of k x k convolutions
(k = 1, 3, 5, 7) from 64x64 down to 4x4 pixels and 16 to 256 channels, depthwise-separable
stages with concatenation, and a stack of fully connected layers. They are never validated
against, so they add coverage without leaking any validation case into the profile.
"""
from __future__ import annotations

from workloads import zoo
from workloads.builder import GraphBuilder
from workloads.graph import OpGraph, WorkloadError

STAGE_CHANNELS = (16, 32, 64, 128, 256)   # one stage per resolution: 64, 32, 16, 8, 4 pixels


def conv_grid(kernel: int, batch: int) -> OpGraph:
    b = GraphBuilder(f"grid_k{kernel}", input_shape=(3, 64, 64), batch=batch)
    x = b.input()
    pad = kernel // 2
    for i, c in enumerate(STAGE_CHANNELS):
        with b.scope(f"stage{i}"):
            x = b.relu(b.batchnorm(b.conv2d(x, c, kernel, stride=1 if i == 0 else 2,
                                            padding=pad)))
            y = b.relu(b.batchnorm(b.conv2d(x, c, kernel, padding=pad)))
            y = b.batchnorm(b.conv2d(y, c, kernel, padding=pad))
            x = b.relu(b.add(x, y))
    x = b.flatten(b.adaptive_avgpool(x))
    b.linear(x, 10)
    return b.build()


def separable_grid(batch: int) -> OpGraph:
    """MobileNet-like stages: 3x3 depthwise then 1x1 pointwise, two branches concatenated."""
    b = GraphBuilder("grid_separable", input_shape=(3, 64, 64), batch=batch)
    x = b.relu(b.batchnorm(b.conv2d(b.input(), 16, 3, padding=1)))
    for i, c in enumerate(STAGE_CHANNELS[1:]):
        with b.scope(f"stage{i}"):
            cin = b.spec(x).shape[1]
            d = b.relu(b.batchnorm(b.conv2d(x, cin, 3, stride=2, padding=1, groups=cin)))
            p = b.relu(b.batchnorm(b.conv2d(d, c // 2, 1)))
            q = b.relu(b.batchnorm(b.conv2d(b.maxpool(x, 2), c // 2, 1)))
            x = b.concat([p, q])
    x = b.flatten(b.avgpool(x, 4))
    b.linear(x, 10)
    return b.build()


def mlp_grid(batch: int) -> OpGraph:
    b = GraphBuilder("grid_mlp", input_shape=(3, 32, 32), batch=batch)
    x = b.flatten(b.input())
    for width in (2048, 1024, 512, 256):
        x = b.dropout(b.relu(b.linear(x, width)))
    b.linear(x, 10)
    return b.build()


NETWORKS = {
    **{f"grid_k{k}": (lambda batch, k=k: conv_grid(k, batch)) for k in (1, 3, 5, 7)},
    "grid_separable": separable_grid,
    "grid_mlp": mlp_grid,
}
# (network, batch): every synthetic network at two batches
GRID_CASES: tuple[tuple[str, int], ...] = (
    ("grid_k1", 4), ("grid_k1", 16), ("grid_k3", 2), ("grid_k3", 8), ("grid_k5", 2),
    ("grid_k5", 4), ("grid_k7", 1), ("grid_k7", 4), ("grid_separable", 4),
    ("grid_separable", 16), ("grid_mlp", 32), ("grid_mlp", 256),
)


def get(name: str, batch: int) -> OpGraph:
    """A synthetic calibration network, or a zoo network."""
    if name in NETWORKS:
        if not isinstance(batch, int) or batch < 1:
            raise WorkloadError(f"batch size must be an integer >= 1, got {batch!r}")
        g = NETWORKS[name](batch)
        g.meta.setdefault("network", name)
        return g
    return zoo.get(name, batch=batch)
