"""The registry of op kinds: the `OpKind` record, `register` and the lookups (re-exported by
workloads.kinds, whose modules declare the kinds)."""
from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple

from ..errors import WorkloadError

PHASES = ("forward", "backward", "update")


class KindError(WorkloadError):
    """A kind declared inconsistently, or one the registry does not have."""


def _zero(op) -> float:
    return 0.0


def per_element(flops: float) -> Callable:
    """FLOPs of an elementwise kind: `flops` per output element (nominal counts for an exp, a
    tanh or an erf; a calibrated profile measures what each really costs)."""
    return lambda op: flops * op.out.numel


def per_input_element(flops: float) -> Callable:
    """`flops` per element of the first input (a reduction's work scales with what it reads)."""
    return lambda op: flops * op.in_specs[0].numel


def shape_layout(shape) -> tuple[int, int]:
    """(planes, pixels) of a tensor: N*C planes of H*W pixels for an image tensor, N rows of F
    features for a 2-D one, 1 plane otherwise."""
    if len(shape) >= 3:
        return int(shape[0] * shape[1]), _product(shape[2:])
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    return 1, _product(shape)


def _product(dims) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return max(out, 1)


GEMM_LIBRARIES = ("blas", "batched", "conv", "sdpa", "recurrent")
GEMM_PASSES = ("forward", "grad_input", "grad_weight")


class SerialSchedule(NamedTuple):
    """What a recurrent layer's pass runs, step after step, each step waiting for the one
    before (a recurrence over time): per step the products `gemms`, each (m, n, k, batch),
    then the pointwise work that combines them (cuDNN fuses it into one kernel; PyTorch's
    own cell runs `pointwise_ops` ATen ops for it), moving `pointwise_bytes` and doing
    `pointwise_flops`."""
    steps: int
    gemms: tuple[tuple[int, int, int, int], ...]
    pointwise_bytes: float
    pointwise_flops: float
    pointwise_ops: int


@dataclass(frozen=True)
class GemmRole:
    """How a kind runs as matrix products, which device models cost as the library kernel
    that runs them (hwmodels/gpu_products.py) and which a tensor-core format applies to.

    library: "blas" one GEMM (cuBLAS, MKL); "batched" a strided-batched GEMM; "conv" a
    convolution pass (cuDNN's implicit GEMMs, built from the op's attributes); "sdpa" fused
    attention (its own kernels); "recurrent" cuDNN's RNN call, products and fused pointwise
    kernels run step after step (schedule: op -> SerialSchedule). gemm_pass: the forward
    product, or the gradient it makes (of the input, or of the weight: reduced over the
    rows). dims: op -> (m, n, k, batch) of
    the GEMM a "blas" or "batched" kind runs (m rows of the output, n its columns, k the
    reduction). weights: one operand is the op's parameters (autocast casts them to half,
    a bias may come with them); a weightless product multiplies activations or constants.
    fp32_buffer: op -> elements of a constant operand held in FP32 (a buffer), which
    autocast casts to half at each call as it does the weights."""

    library: str
    gemm_pass: str = "forward"
    dims: Callable | None = None
    weights: bool = False
    fp32_buffer: Callable | None = None
    schedule: Callable | None = None

    def __post_init__(self) -> None:
        if self.library not in GEMM_LIBRARIES:
            raise KindError(f"GEMM library {self.library!r} is not one of "
                            f"{', '.join(GEMM_LIBRARIES)}")
        if self.gemm_pass not in GEMM_PASSES:
            raise KindError(f"GEMM pass {self.gemm_pass!r} is not one of "
                            f"{', '.join(GEMM_PASSES)}")
        if (self.dims is None) != (self.library in ("conv", "sdpa", "recurrent")):
            raise KindError(f"a {self.library!r} GEMM role takes dims exactly where it is "
                            "'blas' or 'batched'")
        if (self.schedule is None) != (self.library != "recurrent"):
            raise KindError(f"a {self.library!r} GEMM role takes a schedule exactly where it "
                            "is 'recurrent'")

    def autocast_cast_elements(self, op) -> float:
        """Elements autocast casts from FP32 to half each time a forward product runs: its
        weights, or the FP32 buffer it reads; none for a gradient, whose operands are cast
        already."""
        if self.gemm_pass != "forward":
            return 0.0
        if self.weights:
            return float(op.params)
        return float(self.fp32_buffer(op)) if self.fp32_buffer is not None else 0.0

    @property
    def weight_gradient(self) -> bool:
        """The gradient of the op's parameters (written into the parameter's .grad)."""
        return self.weights and self.gemm_pass == "grad_weight"


@dataclass(frozen=True)
class OpKind:
    """Everything about one op kind. Costs take the op (its shapes and attributes)."""

    name: str
    family: str                                   # cost family (hwmodels/families.py)
    phase: str = "forward"                        # forward | backward | update
    flops: Callable = _zero                       # op -> FLOPs (a multiply-add is 2)
    macs: Callable | None = None                  # op -> multiply-adds (GEMM-like kinds)
    # op -> (m, n, k, groups, window, stride, pixels): set for kinds a profile keys on their
    # GEMM shape (hwmodels/families.gemm_shape); these are graph.MATMUL_KINDS
    gemm_shape: Callable | None = None
    gemm_role: GemmRole | None = None             # runs as matrix products (GemmRole)
    layout: Callable | None = None                # op -> (planes, pixels) where not the input's
    view: bool | Callable = False                 # no kernel, no traffic (or op -> bool)
    aliases_input: bool = False                   # a view of its first input's storage
    reads_params: bool = False                    # bytes read include the parameters
    bytes_read: Callable | None = None            # op -> bytes; default: inputs (+ params)
    bytes_written: Callable | None = None         # op -> bytes; default: the output
    # training: forward tensors the gradient reads ("in" the first input, "in1", "in2" the
    # others, "out" the output)
    saves: tuple[str, ...] = ()
    # forward kinds: the lowering rule (ctx, op, dy) making its backward ops
    # (kinds/backward_rules.py); None: one `<kind>_grad` op reading dy and what it saves
    backward: Callable | None = None
    carries_params: bool = False                  # a gradient kind that makes the param grads
    training_attrs: dict = field(default_factory=dict)   # set on the op in a training graph
    saves_mask: bool = False                      # keeps an output-sized mask for its gradient
    # op -> bytes the forward keeps for its gradient that are no tensor of the graph (cuDNN's
    # RNN reserve space beyond the saved input and output)
    reserve_bytes: Callable | None = None
    # parameters: shapes as PyTorch holds them (weight first), how many tensors the optimizer
    # steps, and how a step starts them ("he": He-normal weight, zero bias; "scale_shift":
    # ones then zeros, as a normalisation's affine)
    param_shapes: Callable | None = None
    param_tensors: Callable | None = None
    param_init: str = "he"
    attr_defaults: dict | None = None             # pointwise activations: attributes + defaults
    # PyTorch: torch_kernel(op, state) -> fn(*inputs), the ATen call a training step makes
    # (state: validation/calibrate/torch_ops.KernelState, or None where the kernel keeps
    # nothing); torch_module(op, module, i) -> fn(inputs) inside a GraphModule (default: the
    # kernel with no state); torch_buffers(op, device) -> [(prefix, tensor)] it registers
    torch_kernel: Callable | None = None
    torch_module: Callable | None = None
    torch_buffers: Callable | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise KindError(f"kind {self.name!r}: phase {self.phase!r} is not one of "
                            f"{', '.join(PHASES)}")
        if self.param_init not in ("he", "scale_shift"):
            raise KindError(f"kind {self.name!r}: param_init {self.param_init!r} is not "
                            "'he' or 'scale_shift'")

    @property
    def is_activation(self) -> bool:
        return self.attr_defaults is not None

    def is_view(self, op) -> bool:
        return self.view(op) if callable(self.view) else self.view

    def parameter_tensors(self, op) -> int:
        if self.param_tensors is not None:
            return self.param_tensors(op)
        return 1 + bool(op.attrs.get("bias"))


_REGISTRY: dict[str, OpKind] = {}


def register(*kinds: OpKind) -> None:
    """Add kinds to the IR. A name may be declared once."""
    for k in kinds:
        if k.name in _REGISTRY:
            raise KindError(f"op kind {k.name!r} is already declared")
        _REGISTRY[k.name] = k


def unregister(name: str) -> None:
    """Remove a kind (for kinds a test declares for itself)."""
    _REGISTRY.pop(name, None)


def kind_of(name: str) -> OpKind:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KindError(f"unknown op kind {name!r}") from None


def is_kind(name: object) -> bool:
    return name in _REGISTRY


def all_kinds() -> list[OpKind]:
    """Every declared kind, in declaration order."""
    return list(_REGISTRY.values())


class KindSet(Set):
    """A live set of kind names chosen by a predicate on the records: a kind declared later
    is in it as soon as it is declared. Iterates in declaration order."""

    def __init__(self, predicate: Callable[[OpKind], bool]) -> None:
        self._predicate = predicate

    def __contains__(self, name: object) -> bool:
        k = _REGISTRY.get(name) if isinstance(name, str) else None
        return k is not None and self._predicate(k)

    def __iter__(self) -> Iterator[str]:
        return iter([k.name for k in _REGISTRY.values() if self._predicate(k)])

    def __len__(self) -> int:
        return sum(1 for k in _REGISTRY.values() if self._predicate(k))

    @classmethod
    def _from_iterable(cls, it):
        return frozenset(it)

    def __repr__(self) -> str:
        return f"KindSet({sorted(self)})"
