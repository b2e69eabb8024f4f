"""Small ops for the hardware-model tests, built with the real builder (as fixtures, so the
test modules need no import path of their own)."""
from __future__ import annotations

import pytest

from workloads.builder import GraphBuilder
from workloads.graph import Op


def _conv_relu_ops(batch: int = 32, channels: int = 256, size: int = 56,
                   groups: int = 1) -> dict[str, Op]:
    """input -> conv3x3 -> relu -> flatten; ops by kind."""
    b = GraphBuilder("hw", input_shape=(channels, size, size), batch=batch)
    x = b.input()
    c = b.conv2d(x, channels, kernel=3, padding=1, groups=groups)
    r = b.relu(c)
    b.flatten(r)
    return {op.kind: op for op in b.build()}


def _conv_op(batch: int, channels: int = 64, size: int = 28, groups: int = 1) -> Op:
    return _conv_relu_ops(batch, channels, size, groups)["conv2d"]


@pytest.fixture
def conv_relu_ops():
    return _conv_relu_ops


@pytest.fixture
def conv_op():
    return _conv_op
