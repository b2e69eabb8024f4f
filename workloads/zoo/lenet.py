"""LeNet-5 on MNIST (1x28x28), in the form most PyTorch code uses.

LeCun et al. (1998) took 32x32 inputs; on 28x28 MNIST the first convolution pads by 2 so that
every later shape (and so the 61,706 parameters) is the paper's. Tanh and subsampling are
replaced by ReLU and max pooling, as in the usual PyTorch version: neither has parameters, and
the IR has no tanh kind.

    conv1 1->6 5x5 pad 2 (156) . relu . pool 2 . conv2 6->16 5x5 (2,416) . relu . pool 2
    . fc1 400->120 (48,120) . relu . fc2 120->84 (10,164) . relu . fc3 84->10 (850)
"""
from __future__ import annotations

from ..graph import OpGraph
from ._base import check_classes, scaled, start

INPUT_SHAPE = (1, 28, 28)


def lenet5(batch: int = 1, num_classes: int = 10, width: float = 1.0,
           input_size: int | None = None, dtype_bytes: int = 4) -> OpGraph:
    check_classes(num_classes)
    b = start("lenet5", INPUT_SHAPE, batch, input_size, dtype_bytes)
    x = b.input()
    c1, c2 = scaled(6, width), scaled(16, width)
    x = b.maxpool(b.relu(b.conv2d(x, c1, 5, padding=2, bias=True, name="conv1"), name="relu1"),
                  2, name="pool1")
    x = b.maxpool(b.relu(b.conv2d(x, c2, 5, bias=True, name="conv2"), name="relu2"), 2,
                  name="pool2")
    x = b.flatten(x, name="flatten")
    x = b.relu(b.linear(x, scaled(120, width), name="fc1"), name="relu3")
    x = b.relu(b.linear(x, scaled(84, width), name="fc2"), name="relu4")
    b.linear(x, num_classes, name="fc3")
    return b.build()
