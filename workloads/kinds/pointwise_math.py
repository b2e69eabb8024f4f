"""Pointwise math and reductions of normalisations written out by hand (RMSNorm as
x * rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)), and products with a constant table (a
rotary embedding's cos and sin buffers, or its complex table).

Gradients are what PyTorch's autograd runs (tools/autograd/derivatives.yaml):
- pow(x, e): dy * (e * x.pow(e - 1)), reading the saved input (a power, a scaling, a product);
- rsqrt(x) = y: -0.5 * dy * y.pow(3), reading the saved output (a cube, a scaling, a product);
- sqrt(x) = y: dy / (2 * y), reading the saved output;
- x / y, y broadcast over x (a norm written by hand divides by its deviation): dy / y for x,
  and -dy * x / y^2, summed where y broadcast, for y, each reading the saved inputs;
- mean over trailing dims: dy expanded to the input's shape and divided by the count, reading
  nothing saved;
- x * table, the table a buffer: dy * table (summed where x broadcast); the table gets no
  gradient; x seen as complex pairs times a complex table (Meta's rotary embedding): dy times
  the table's conjugate;
- sin(x), cos(x): dy * cos(x), -dy * sin(x), reading the saved input;
- erf(x): dy * 2 / sqrt(pi) * exp(-x^2), reading the saved input.
FLOPs per element are nominal (a power counts 1); a calibrated profile measures each.
"""
from __future__ import annotations

import math

from ._registry import OpKind, per_element, per_input_element, register, shape_layout
from ._torch import torch


def _pow_kernel(op, state):
    e = op.attrs["exponent"]
    if op.kind == "pow":
        return lambda x: torch.pow(x, e)
    return lambda dy, x: dy * (e * x.pow(e - 1))


def _rsqrt_kernel(op, state):
    if op.kind == "rsqrt":
        return torch.rsqrt
    return lambda dy, y: -0.5 * dy * y.pow(3)


def _sqrt_kernel(op, state):
    if op.kind == "sqrt":
        return torch.sqrt
    return lambda dy, y: dy / (2 * y)


def _trig_kernel(op, state):
    """sin, cos; their gradients as autograd computes them: dy * cos(x), -dy * sin(x)."""
    return {"sin": torch.sin, "cos": torch.cos,
            "sin_grad": lambda dy, x: dy * torch.cos(x),
            "cos_grad": lambda dy, x: -dy * torch.sin(x)}[op.kind]


def _erf_kernel(op, state):
    """erf; its gradient as autograd computes it: dy * 2 / sqrt(pi) * exp(-x^2)."""
    if op.kind == "erf":
        return torch.erf
    return lambda dy, x: dy * (2.0 / math.sqrt(math.pi)) * torch.exp(-x * x)


def _div_kernel(op, state):
    if op.kind == "div":
        return torch.div
    if op.kind == "div_grad":
        return lambda dy, y: dy / y
    shape = tuple(op.out.shape)
    return lambda dy, x, y: (-dy * x / (y * y)).sum_to_size(shape)


def _div_backward(ctx, op, dy) -> None:
    """One gradient op per operand that needs one, as autograd's DivBackward makes them."""
    x, y = op.inputs
    if ctx.needs_grad(x):
        ctx.add_grad(x, ctx.grad_op(f"{op.name}.grad0", "div_grad", op, [dy, y], ctx.spec(x),
                                    (y,), dy))
    if ctx.needs_grad(y):
        ctx.add_grad(y, ctx.grad_op(f"{op.name}.grad1", "div_grad_divisor", op, [dy, x, y],
                                    ctx.spec(y), (x, y), dy))


def reduced_dims(op) -> tuple[int, ...]:
    """The trailing dimensions a reduction over `reduced_dims` of them (a mean, a max)
    reduces, as non-negative indices of its input (its gradient's output)."""
    rank = len(op.in_specs[0].shape) if op.phase == "forward" else len(op.out.shape)
    return tuple(range(rank - op.attrs["reduced_dims"], rank))


def _mean_kernel(op, state):
    """mean / sum over the trailing dimensions, and their gradients: dy broadcast back to the
    input (divided by the count for a mean; a sum's, copied as the next kernel reads it)."""
    dims, keepdim = reduced_dims(op), op.attrs["keepdim"]
    if op.kind in ("mean", "sum"):
        reduce = torch.mean if op.kind == "mean" else torch.sum
        return lambda x: reduce(x, dims, keepdim)
    shape = tuple(op.out.shape)
    kept = tuple(1 if d in dims else s for d, s in enumerate(shape))
    if op.kind == "sum_grad":
        return lambda dy: dy.reshape(kept).expand(shape).contiguous()
    count = math.prod(shape[d] for d in dims)
    return lambda dy: dy.reshape(kept).expand(shape) / count


def _table(op, dev=None):
    """A constant table of the op's table_shape (its values do not change the time)."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn(tuple(op.attrs["table_shape"]), generator=gen).to(dev)


def _mul_table_kernel(op, state):
    table = _table(op, state.dev if state is not None else None)
    if op.kind == "mul_table_grad":   # summed back where x broadcast (an outer product)
        shape = tuple(op.out.shape)
        return lambda dy: (dy * table.to(dy.dtype)).sum_to_size(shape)
    return lambda x: x * table.to(x.dtype)


def _table_bytes(op) -> int:
    return math.prod(op.attrs["table_shape"]) * op.out.dtype_bytes


def _complex_table(op, dev=None):
    """A constant complex table of the op's table_shape (complex64: its values do not change
    the time)."""
    gen = torch.Generator().manual_seed(0)
    return torch.polar(torch.ones(tuple(op.attrs["table_shape"])),
                       torch.randn(tuple(op.attrs["table_shape"]), generator=gen)).to(dev)


def _mul_table_complex_kernel(op, state):
    """x, real and imaginary parts paired in its last dimension, times the complex table
    (torch.view_as_complex, the product, torch.view_as_real: one kernel); its gradient, dy
    times the table's conjugate."""
    table = _complex_table(op, state.dev if state is not None else None)
    if op.kind.endswith("_grad"):
        table = table.conj()
    return lambda x: torch.view_as_real(torch.view_as_complex(x.contiguous()) * table)


def _complex_table_bytes(op) -> int:   # two parts per value
    return 2 * math.prod(op.attrs["table_shape"]) * op.out.dtype_bytes


register(
    OpKind("pow", "elementwise", flops=per_element(1.0), saves=("in",),
           torch_kernel=_pow_kernel,
           doc="x ** exponent, a constant exponent (torch.square: exponent 2)"),
    OpKind("pow_grad", "elementwise", "backward", flops=per_element(3.0),
           torch_kernel=_pow_kernel, doc="dy * e * x^(e-1), from the saved input"),
    OpKind("rsqrt", "elementwise", flops=per_element(1.0), saves=("out",),
           torch_kernel=_rsqrt_kernel, doc="1 / sqrt(x)"),
    OpKind("rsqrt_grad", "elementwise", "backward", flops=per_element(4.0),
           torch_kernel=_rsqrt_kernel, doc="-0.5 * dy * y^3, from the saved output"),
    # a sum and, per output value, a division
    OpKind("mean", "normalization", flops=per_input_element(1.0), torch_kernel=_mean_kernel,
           doc="the mean over the trailing `reduced_dims` dimensions (keepdim or not)"),
    # keyed on what it writes: its input, the reduced gradient, is the smaller
    OpKind("mean_grad", "normalization", "backward", flops=per_element(1.0),
           layout=lambda op: shape_layout(op.out.shape), torch_kernel=_mean_kernel,
           doc="dy broadcast to the input and divided by the count"),
    OpKind("sum", "normalization", flops=per_input_element(1.0), torch_kernel=_mean_kernel,
           doc="the sum over the trailing `reduced_dims` dimensions (keepdim or not)"),
    # why a kernel: PyTorch's gradient is dy.expand(...), a view, which the next gradient
    # kernel reads broadcast; costed as writing it once
    OpKind("sum_grad", "normalization", "backward",
           layout=lambda op: shape_layout(op.out.shape), torch_kernel=_mean_kernel,
           doc="dy broadcast to the input"),
    OpKind("mul_table", "elementwise", flops=per_element(1.0),
           bytes_read=lambda op: op.in_specs[0].nbytes + _table_bytes(op),
           torch_kernel=_mul_table_kernel,
           torch_buffers=lambda op, dev: [("table", _table(op, dev))],
           torch_module=lambda op, m, i: lambda ins: ins[0] * getattr(m, f"table{i}"),
           doc="x times a constant table (a buffer: no gradient into it) of `table_shape` "
               "broadcast over x's trailing dimensions (rotary cos and sin); x's dimensions "
               "of size 1 broadcast over the table's (timesteps times frequencies)"),
    OpKind("mul_table_grad", "elementwise", "backward", flops=per_input_element(1.0),
           bytes_read=lambda op: op.in_specs[0].nbytes + _table_bytes(op),
           torch_kernel=_mul_table_kernel,
           doc="dy times the table (summed where x broadcast); the table gets none"),
    # a complex product: four products and two sums per pair, 3 FLOPs per real value
    OpKind("mul_table_complex", "elementwise", flops=per_element(3.0),
           bytes_read=lambda op: op.in_specs[0].nbytes + _complex_table_bytes(op),
           torch_kernel=_mul_table_complex_kernel,
           torch_buffers=lambda op, dev: [("table", _complex_table(op, dev))],
           torch_module=lambda op, m, i: lambda ins: torch.view_as_real(
               torch.view_as_complex(ins[0].contiguous()) * getattr(m, f"table{i}")),
           doc="x of (..., D, 2), real and imaginary parts, times a constant complex table "
               "of `table_shape` broadcast over (..., D): a rotary embedding as Meta's LLaMA "
               "and Llama 4 apply it (view_as_complex, the product, view_as_real)"),
    OpKind("mul_table_complex_grad", "elementwise", "backward", flops=per_element(3.0),
           bytes_read=lambda op: op.in_specs[0].nbytes + _complex_table_bytes(op),
           torch_kernel=_mul_table_complex_kernel,
           doc="dy times the conjugate of the table; the table gets none"),
    OpKind("sqrt", "elementwise", flops=per_element(1.0), saves=("out",),
           torch_kernel=_sqrt_kernel, doc="sqrt(x)"),
    OpKind("sqrt_grad", "elementwise", "backward", flops=per_element(2.0),
           torch_kernel=_sqrt_kernel, doc="dy / (2 * y), from the saved output"),
    # a sinusoidal embedding's (of timesteps, of positions); a sine counts a few FLOPs
    OpKind("sin", "elementwise", flops=per_element(8.0), saves=("in",),
           torch_kernel=_trig_kernel, doc="sin(x)"),
    OpKind("sin_grad", "elementwise", "backward", flops=per_element(9.0),
           torch_kernel=_trig_kernel, doc="dy * cos(x), from the saved input"),
    OpKind("cos", "elementwise", flops=per_element(8.0), saves=("in",),
           torch_kernel=_trig_kernel, doc="cos(x)"),
    OpKind("cos_grad", "elementwise", "backward", flops=per_element(10.0),
           torch_kernel=_trig_kernel, doc="-dy * sin(x), from the saved input"),
    # the exact GELU written out (ESM's x * 0.5 * (1 + erf(x / sqrt(2)))); erf is a rational
    # approximation of some ten multiply-adds, its gradient a square, an exp and two products
    OpKind("erf", "elementwise", flops=per_element(10.0), saves=("in",),
           torch_kernel=_erf_kernel, doc="erf(x)"),
    OpKind("erf_grad", "elementwise", "backward", flops=per_element(11.0),
           torch_kernel=_erf_kernel, doc="dy * 2 / sqrt(pi) * exp(-x^2), from the saved input"),
    OpKind("div", "elementwise", flops=per_element(1.0), saves=("in", "in1"),
           backward=_div_backward,
           torch_kernel=_div_kernel,
           doc="x / y of two tensors; y may broadcast over x (1 where they differ)"),
    OpKind("div_grad", "elementwise", "backward", flops=per_element(1.0),
           torch_kernel=_div_kernel, doc="dy / y: the gradient of x in x / y"),
    # a product, a square, a division and a negation per value of dy, then the sum
    OpKind("div_grad_divisor", "elementwise", "backward", flops=per_input_element(4.0),
           torch_kernel=_div_kernel,
           doc="-dy * x / y^2 summed where y broadcast: the gradient of y in x / y"),
)
