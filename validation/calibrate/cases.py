"""What calibration measures: the (network, batch) cases it replays, and the key that names an
op's measurement (its kind, shapes and attributes: ops with one key are one point)."""
from __future__ import annotations

import json

from workloads.graph import Op

from .calibration_nets import GRID_CASES

# The networks and batches the committed data set validates (steps of 5 ms - 0.4 s on one core)
DEFAULT_CASES: tuple[tuple[str, int], ...] = (
    ("lenet5", 64), ("lenet5", 256), ("resnet20", 16), ("resnet20", 32),
    ("resnet56", 8), ("resnet56", 16), ("alexnet_cifar", 32), ("alexnet_cifar", 128),
    ("vgg16_cifar", 8), ("vgg16_cifar", 16),
)
GRID_BATCH_FACTORS = (0.5, 2.0)

# A fixed validation case whose replay says how fast the machine runs: calibrate records its
# median round (rounds are spread over the whole run), validate replays it again and compares
# (a shared VM drifts by 10-30% over minutes)
REFERENCE_CASE = ("resnet20", 16)


# Attributes that say how a framework issues an op around its kernel, not what the measured
# kernel is: an update's step (how many tensors its multi-tensor calls share, whether it is
# fused, whether torch.optim loops over the tensors), and whether a backward op's dy is a
# strided slice some frameworks copy first (a kernel of its own,
# gpu_frameworks.SLICE_COPY_FRAMEWORKS). An update's optimizer is its kernel (SGD's step reads
# and writes other tensors than Adam's): op_key keeps it.
ISSUE_ATTRS = frozenset({"step_tensors", "fused_optimizer", "optimizer_loop", "dy_strided"})


def op_key(op: Op) -> str:
    """Identity of an op for measurement: kind, input and output shapes, attributes (of an
    update, its optimizer among them)."""
    return op_keys(op)[0]


def op_keys(op: Op) -> tuple[str, ...]:
    """The keys an op's measurement may be recorded under, the most specific first: an
    update's with its optimizer, then without, the key of a measurement that does not name
    the optimizer it stepped with (the committed CPU measurements: PyTorch's SGD with
    momentum), which is found when none with its optimizer is."""
    attrs = {k: v for k, v in sorted(op.attrs.items()) if k not in ISSUE_ATTRS}
    shapes = [list(s.shape) for s in op.in_specs]
    keys = [json.dumps([op.kind, shapes, list(op.out.shape), op.params, repr(attrs)])]
    if "optimizer" in attrs:
        del attrs["optimizer"]
        keys.append(json.dumps([op.kind, shapes, list(op.out.shape), op.params, repr(attrs)]))
    return tuple(keys)


def find_measured(op: Op, measured: dict[str, float]) -> float | None:
    """The op's measurement under its most specific key that `measured` has; None if none."""
    return next((measured[k] for k in op_keys(op) if k in measured), None)


def calibration_cases(cases=DEFAULT_CASES, grid: bool = True,
                      synthetic: bool = True) -> list[tuple[str, int]]:
    """(network, batch) pairs to replay: the cases, with `grid` their half and double batches,
    with `synthetic` the shape-grid networks of calibration_nets."""
    out: set[tuple[str, int]] = set()
    for name, batch in cases:
        out.add((name, batch))
        if grid:
            out |= {(name, max(1, int(batch * f))) for f in GRID_BATCH_FACTORS}
    if synthetic:
        out |= set(GRID_CASES)
    return sorted(out)
