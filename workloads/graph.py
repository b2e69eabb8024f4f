"""The op-graph IR: tensors, ops and the graph that links them.

Every op produces exactly one tensor, named after the op; an op's inputs name the ops whose
tensors it reads. Costs (FLOPs, bytes) are derived from the kind, the shapes and the attributes
by the kind's record (workloads/kinds/), so an op carries everything needed both to simulate
it and to execute it in PyTorch. A multiply-add counts as 2 FLOPs.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import networkx as nx

from .errors import ShapeError, WorkloadError
from .kinds import KindSet, OpKind, all_kinds, is_kind, kind_of

# The most elements one tensor may hold: 2**53, the largest count a float (FLOPs and bytes are
# floats) holds exactly, and 32 PiB in FP32, past any device's memory. A larger shape (a width
# of 1e300) would overflow the FLOP counts deep inside rather than be refused where it is made.
MAX_TENSOR_ELEMENTS = 2 ** 53


def count_text(n: int) -> str:
    """A count as it reads in a message: exact up to a million, else 3 significant digits (a
    batch of 1e300 is not 301 digits)."""
    return str(n) if n < 10 ** 6 else f"{float(n):.3g}"


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype_bytes: int = 4
    integer: bool = False   # token or class ids (int64): no precision changes their width

    def __post_init__(self) -> None:
        if any((not isinstance(d, int)) or d < 1 for d in self.shape):
            raise ShapeError(f"tensor shape {self.shape} must be positive integers")
        if self.numel > MAX_TENSOR_ELEMENTS:
            shape = "x".join(count_text(d) for d in self.shape)
            raise ShapeError(f"a tensor of shape {shape} holds {float(self.numel):.3g} "
                             f"elements, past the most one tensor may hold (2**53 = "
                             f"{float(MAX_TENSOR_ELEMENTS):.3g})")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype_bytes


class _Activations(Mapping):
    """The pointwise activations besides ReLU (each with its gradient `<kind>_grad`) and the
    attributes each takes with its defaults (PyTorch's): kinds/activations.py."""

    def __getitem__(self, name: str) -> dict:
        if not is_kind(name) or not kind_of(name).is_activation:
            raise KeyError(name)
        return kind_of(name).attr_defaults or {}

    def __iter__(self) -> Iterator[str]:
        return iter([k.name for k in all_kinds() if k.is_activation])

    def __len__(self) -> int:
        return sum(1 for k in all_kinds() if k.is_activation)


# Sets of kind names, read from the kind records (workloads/kinds/); a kind declared later is
# in them at once.
ACTIVATIONS: Mapping[str, dict] = _Activations()
FORWARD_KINDS = KindSet(lambda k: k.phase == "forward")
BACKWARD_KINDS = KindSet(lambda k: k.phase == "backward")
UPDATE_KINDS = KindSet(lambda k: k.phase == "update")
ALL_KINDS = KindSet(lambda k: True)
# Ops that only reinterpret memory: no arithmetic, no traffic (dropout is one outside a
# training graph: its record decides per op).
VIEW_KINDS = KindSet(lambda k: k.view is True)
# Ops whose cost is the multiply-adds of a convolution or a matrix product, which a profile
# keys on their GEMM shape.
MATMUL_KINDS = KindSet(lambda k: k.gemm_shape is not None)


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
        if not is_kind(self.kind):
            raise WorkloadError(f"op {self.name!r}: unknown kind {self.kind!r}")
        if len(self.inputs) != len(self.in_specs):
            raise WorkloadError(f"op {self.name!r}: {len(self.inputs)} inputs but "
                                f"{len(self.in_specs)} input specs")

    @property
    def kind_record(self) -> OpKind:
        """Everything about this op's kind (workloads/kinds/)."""
        return kind_of(self.kind)

    # -- derived costs (the kind's record says how) --------------------------------------
    @property
    def param_bytes(self) -> int:
        """Bytes of this op's parameters (FP32 master weights under AMP, whatever the width of
        its activations: workloads/precision.py)."""
        return self.params * int(self.attrs.get("param_dtype_bytes", self.out.dtype_bytes))

    @property
    def macs(self) -> float:
        """Multiply-adds of a GEMM-like op (forward or either gradient); 0 otherwise."""
        macs = self.kind_record.macs
        return macs(self) if macs is not None else 0.0

    @property
    def flops(self) -> float:
        return 0.0 if self.is_view else self.kind_record.flops(self)

    @property
    def bytes_read(self) -> int:
        if self.is_view:
            return 0
        k = self.kind_record
        if k.bytes_read is not None:
            return k.bytes_read(self)
        return sum(s.nbytes for s in self.in_specs) + (self.param_bytes if k.reads_params
                                                       else 0)

    @property
    def bytes_written(self) -> int:
        if self.is_view:
            return 0
        k = self.kind_record
        return k.bytes_written(self) if k.bytes_written is not None else self.out.nbytes

    @property
    def bytes_moved(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def is_view(self) -> bool:
        # an op's kind is checked when it is made; one changed afterwards is not a view, and
        # whoever costs it names the kind it does not know
        return is_kind(self.kind) and self.kind_record.is_view(self)

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
        for src in op.inputs:
            if src not in self._ops:
                raise WorkloadError(f"graph {self.name!r}: op {op.name!r} "
                                    f"reads unknown op {src!r}")
        self._ops[op.name] = op
        self.g.add_node(op.name)
        for src, spec in zip(op.inputs, op.in_specs, strict=True):
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
