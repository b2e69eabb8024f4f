"""The op-graph IR: tensors, ops and the graph that links them.

Every op produces exactly one tensor, named after the op; an op's inputs name the ops whose
tensors it reads. Costs (FLOPs, bytes) are derived from the kind, the shapes and the attributes,
so an op carries everything needed both to simulate it and to execute it in PyTorch.
A multiply-add counts as 2 FLOPs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import networkx as nx


class WorkloadError(ValueError):
    """A network, an op or an option that cannot be built as asked."""


class ShapeError(WorkloadError):
    """Shapes that do not fit together (a kernel larger than its input, mismatched adds, ...)."""


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype_bytes: int = 4

    def __post_init__(self) -> None:
        if any((not isinstance(d, int)) or d < 1 for d in self.shape):
            raise ShapeError(f"tensor shape {self.shape} must be positive integers")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype_bytes


# Pointwise activations besides ReLU, each with its gradient `<kind>_grad`, and the attributes
# they take with their defaults (PyTorch's; nn.ReLU6 is a hardtanh from 0 to 6).
ACTIVATIONS: dict[str, dict] = {
    "tanh": {}, "sigmoid": {}, "silu": {}, "hardswish": {},
    "hardtanh": {"min_val": -1.0, "max_val": 1.0},
    "leaky_relu": {"negative_slope": 0.01},
    "elu": {"alpha": 1.0},
    "gelu": {"approximate": "none"},
    "hardsigmoid": {}, "mish": {}, "selu": {},
    "softplus": {"beta": 1.0, "threshold": 20.0},
}
FORWARD_KINDS = frozenset({
    "input", "conv2d", "linear", "batchnorm", "layernorm", "groupnorm", "relu", "add",
    "maxpool", "avgpool", "adaptive_avgpool", "flatten", "concat", "channel_shuffle", "dropout",
    "softmax_xent", "slice", "reshape", "mul", "scalar", "pad_channels",
    *ACTIVATIONS,
})
BACKWARD_KINDS = frozenset({
    "conv2d_grad_input", "conv2d_grad_weight", "linear_grad_input", "linear_grad_weight",
    "batchnorm_grad", "layernorm_grad", "groupnorm_grad", "relu_grad", "maxpool_grad",
    "avgpool_grad", "adaptive_avgpool_grad", "channel_shuffle_grad", "softmax_xent_grad",
    "grad_accumulate", "dropout_grad", "mul_grad", "scalar_grad",
    *(f"{k}_grad" for k in ACTIVATIONS),
})
UPDATE_KINDS = frozenset({"sgd_update"})
ALL_KINDS = FORWARD_KINDS | BACKWARD_KINDS | UPDATE_KINDS

# Normalisations: statistics over some dimensions, then a scale and shift per channel or value.
NORM_KINDS = ("batchnorm", "layernorm", "groupnorm")

# Ops that only reinterpret memory: no arithmetic, no traffic. Dropout is one too, except in a
# training graph (lower_training sets attrs["training"]), where it draws a random mask, scales
# it and multiplies: 12 ns per element on one EPYC core, a tenth of an MLP's step.
VIEW_KINDS = frozenset({"input", "flatten", "slice", "reshape"})
# Ops whose cost is the multiply-adds of a convolution or a matrix product.
MATMUL_KINDS = frozenset({
    "conv2d", "conv2d_grad_input", "conv2d_grad_weight",
    "linear", "linear_grad_input", "linear_grad_weight",
})

# Elementwise arithmetic per output element (why: batch norm in training computes mean, variance,
# normalisation and the affine; its gradient roughly twice that).
_ELEMENTWISE_FLOPS = {
    "batchnorm": 5.0, "batchnorm_grad": 10.0, "relu": 1.0, "relu_grad": 1.0, "add": 1.0,
    "layernorm": 5.0, "layernorm_grad": 10.0, "groupnorm": 5.0, "groupnorm_grad": 10.0,
    "mul": 1.0, "scalar": 1.0, "scalar_grad": 1.0,
    "softmax_xent": 5.0, "softmax_xent_grad": 2.0, "channel_shuffle": 0.0,
    "channel_shuffle_grad": 0.0, "concat": 0.0, "maxpool_grad": 1.0, "avgpool_grad": 1.0,
    "adaptive_avgpool_grad": 1.0, "pad_channels": 0.0,
    "dropout": 3.0, "dropout_grad": 1.0,    # draw, scale, multiply / multiply by the mask
    # nominal counts (an exp, a tanh or an erf as a few FLOPs); a calibrated profile measures
    # what each really costs
    "tanh": 6.0, "tanh_grad": 3.0, "sigmoid": 5.0, "sigmoid_grad": 3.0,
    "silu": 6.0, "silu_grad": 8.0, "hardswish": 4.0, "hardswish_grad": 4.0,
    "hardtanh": 2.0, "hardtanh_grad": 2.0, "leaky_relu": 2.0, "leaky_relu_grad": 2.0,
    "elu": 5.0, "elu_grad": 4.0, "gelu": 10.0, "gelu_grad": 12.0,
    "hardsigmoid": 3.0, "hardsigmoid_grad": 2.0, "mish": 12.0, "mish_grad": 15.0,
    "selu": 6.0, "selu_grad": 5.0, "softplus": 6.0, "softplus_grad": 4.0,
}
SGD_MOMENTUM_FLOPS_PER_PARAM = 4.0  # v = m*v + g (+ weight decay); w -= lr*v


@dataclass
class Op:
    """One operation. `inputs` name the producing ops; `out` is the tensor this op produces."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    in_specs: tuple[TensorSpec, ...]
    out: TensorSpec
    attrs: dict = field(default_factory=dict)
    params: int = 0                      # parameter count (elements)
    phase: str = "forward"               # forward | backward | update
    layer: int | None = None             # conv/linear index from the input, 1-based (forward)
    forward: str | None = None           # for backward and update ops: the forward op they serve
    saved: tuple[str, ...] = ()          # for backward ops: the forward tensors they need

    def __post_init__(self) -> None:
        if self.kind not in ALL_KINDS:
            raise WorkloadError(f"op {self.name!r}: unknown kind {self.kind!r}")
        if len(self.inputs) != len(self.in_specs):
            raise WorkloadError(f"op {self.name!r}: {len(self.inputs)} inputs but "
                                f"{len(self.in_specs)} input specs")

    # -- derived costs -------------------------------------------------------------------
    @property
    def param_bytes(self) -> int:
        """Bytes of this op's parameters (FP32 master weights under AMP, whatever the width of
        its activations: workloads/precision.py)."""
        return self.params * int(self.attrs.get("param_dtype_bytes", self.out.dtype_bytes))

    @property
    def macs(self) -> float:
        """Multiply-adds of a conv/linear op (forward or either gradient); 0 otherwise."""
        if self.kind not in MATMUL_KINDS:
            return 0.0
        a = self.attrs
        if self.kind.startswith("conv2d"):
            out_shape = a["out_shape"]  # forward output (N, Cout, Ho, Wo)
            n, cout, ho, wo = out_shape
            kh, kw = a["kernel"]
            return float(n * cout * ho * wo * (a["in_channels"] // a["groups"]) * kh * kw)
        n = a["batch_rows"]
        return float(n * a["in_features"] * a["out_features"])

    @property
    def flops(self) -> float:
        if self.is_view:
            return 0.0
        if self.kind in MATMUL_KINDS:
            flops = 2.0 * self.macs
            if self.attrs.get("bias") and self.kind in ("conv2d", "linear"):
                flops += self.out.numel
            return flops
        if self.kind in ("maxpool", "avgpool"):
            kh, kw = self.attrs["kernel"]
            return float(self.out.numel * kh * kw)
        if self.kind == "adaptive_avgpool":
            return float(self.in_specs[0].numel)
        if self.kind == "grad_accumulate":
            return float(self.out.numel * (len(self.inputs) - 1))
        if self.kind == "sgd_update":
            return SGD_MOMENTUM_FLOPS_PER_PARAM * self.params
        if self.kind == "mul_grad":   # dy times the other factor, summed where it broadcast
            dy = self.in_specs[0].numel
            return float(dy if self.out.numel == dy else 2 * dy)
        # The loss reduces its logits to a scalar: its work scales with the input.
        numel = self.in_specs[0].numel if self.kind == "softmax_xent" else self.out.numel
        return _ELEMENTWISE_FLOPS[self.kind] * numel

    @property
    def bytes_read(self) -> int:
        if self.is_view:
            return 0
        if self.kind == "sgd_update":
            return 3 * self.param_bytes          # weight, gradient, momentum
        if self.kind == "dropout_grad":
            return 2 * self.out.nbytes           # the gradient and the saved mask
        weights = self.param_bytes if self.kind in ("conv2d", "linear", "conv2d_grad_input",
                                                    "linear_grad_input", *NORM_KINDS,
                                                    *(f"{k}_grad" for k in NORM_KINDS)) else 0
        return sum(s.nbytes for s in self.in_specs) + weights

    @property
    def bytes_written(self) -> int:
        if self.is_view:
            return 0
        if self.kind == "sgd_update":
            return 2 * self.param_bytes          # weight, momentum
        if self.kind == "dropout":
            return 2 * self.out.nbytes           # the output and the mask it saves
        return self.out.nbytes

    @property
    def bytes_moved(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def is_view(self) -> bool:
        if self.kind == "dropout":   # identity at inference (and with p = 0), as in PyTorch
            return not (self.attrs.get("training") and self.attrs.get("p", 0) > 0)
        return self.kind in VIEW_KINDS

    def __repr__(self) -> str:  # short: graphs have thousands of ops
        return f"Op({self.name!r}, {self.kind}, out={self.out.shape})"


class OpGraph:
    """A DAG of ops (networkx), with tensors on the edges. Insertion order is kept and is a
    topological order: ops may only read ops added before them."""

    def __init__(self, name: str, meta: dict | None = None) -> None:
        self.name = name
        self.meta: dict = dict(meta or {})
        self.g = nx.DiGraph()
        self._ops: dict[str, Op] = {}

    # -- construction --------------------------------------------------------------------
    def add(self, op: Op) -> Op:
        if op.name in self._ops:
            raise WorkloadError(f"graph {self.name!r}: duplicate op name {op.name!r}")
        for src, spec in zip(op.inputs, op.in_specs):
            if src not in self._ops:
                raise WorkloadError(f"graph {self.name!r}: op {op.name!r} reads unknown op {src!r}")
        self._ops[op.name] = op
        self.g.add_node(op.name)
        for src, spec in zip(op.inputs, op.in_specs):
            self.g.add_edge(src, op.name, tensor=spec)
        return op

    def add_dependency(self, src: str, dst: str) -> None:
        """A data dependency that is not an input edge (e.g. a saved activation)."""
        if not self.g.has_edge(src, dst):
            self.g.add_edge(src, dst)

    # -- access --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self._ops.values())

    def __contains__(self, name: object) -> bool:
        return name in self._ops

    def op(self, name: str) -> Op:
        try:
            return self._ops[name]
        except KeyError:
            raise WorkloadError(f"graph {self.name!r} has no op {name!r}") from None

    @property
    def ops(self) -> list[Op]:
        return list(self._ops.values())

    def topo(self) -> list[Op]:
        """Ops in insertion order, which the graph keeps topological."""
        return list(self._ops.values())

    def validate(self) -> None:
        if not nx.is_directed_acyclic_graph(self.g):
            cycle = nx.find_cycle(self.g)
            raise WorkloadError(f"graph {self.name!r} has a cycle through {cycle[0][0]!r}")

    def successors(self, name: str) -> list[str]:
        return list(self.g.successors(name))

    def predecessors(self, name: str) -> list[str]:
        return list(self.g.predecessors(name))

    def phase(self, phase: str) -> list[Op]:
        return [op for op in self._ops.values() if op.phase == phase]

    def layers(self) -> list[Op]:
        """The conv and linear forward ops, in order from the input (1-based `layer`)."""
        return [op for op in self._ops.values() if op.layer is not None]

    # -- totals --------------------------------------------------------------------------
    @property
    def batch(self) -> int:
        return int(self.meta.get("batch", 1))

    @property
    def input_op(self) -> Op:
        return next(op for op in self._ops.values() if op.kind == "input")

    def params(self) -> int:
        return sum(op.params for op in self._ops.values() if op.phase == "forward")

    def flops(self, phases: Iterable[str] | None = None) -> float:
        wanted = set(phases) if phases else None
        return sum(op.flops for op in self._ops.values() if wanted is None or op.phase in wanted)

    def macs(self) -> float:
        return sum(op.macs for op in self._ops.values() if op.phase == "forward")

    def activation_bytes(self) -> int:
        """Bytes of every forward tensor that is materialised (views excluded)."""
        return sum(op.out.nbytes for op in self._ops.values()
                   if op.phase == "forward" and not op.is_view)

    def summary(self) -> dict:
        return {
            "name": self.name,
            "batch": self.batch,
            "ops": len(self),
            "params": self.params(),
            "flops": self.flops(),
            "activation_bytes": self.activation_bytes(),
        }

    def copy(self, name: str | None = None, transform=None) -> "OpGraph":
        """A new graph of the same ops (shared; `transform(op)` may return a replacement)."""
        new = OpGraph(name or self.name, self.meta)
        for op in self._ops.values():
            new.add(transform(op) if transform else op)
        for u, v, data in self.g.edges(data=True):
            if "tensor" not in data:
                new.add_dependency(u, v)
        return new
