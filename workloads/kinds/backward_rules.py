"""How a forward kind's gradient is lowered (an `OpKind.backward` rule).

A rule is called as rule(ctx, op, dy) for each forward op whose output gets a gradient, in
reverse topological order; dy names the op holding the whole gradient of the op's output (None
for a loss, which starts the backward pass). `ctx` (workloads/training.py) makes ops and routes
gradients:

    ctx.needs_grad(t)             whether tensor t needs a gradient (downstream of a parameter)
    ctx.add_grad(t, name)         op `name` holds (a contribution to) the gradient of t
    ctx.saved(op)                 the forward tensors op's kind saves (OpKind.saves)
    ctx.spec(t)                   the TensorSpec of tensor t
    ctx.param_grad_spec(op)       the TensorSpec of op's flat weight gradient (of the layer
                                  whose weight it shares, for a tied one)
    ctx.flat_spec(size, op)       a flat TensorSpec of `size` values of op's activation width
    ctx.grad_op(name, kind, fwd, reads, out, saved, dy, **attrs) -> name   a backward op
    ctx.weight_grad(fwd, name)    op `name` holds fwd's parameter gradients (its update reads it)
    ctx.trains(op)                whether op holds parameters that get a gradient (not frozen,
                                  not a constant weight)
"""
from __future__ import annotations


def reads(dy: str | None, saved: tuple[str, ...]) -> list[str]:
    """What a gradient op reads: dy, then the saved tensors (dy once)."""
    return ([dy] if dy else []) + [t for t in saved if t != dy]


def route(ctx, op, dy) -> None:
    """No op: each input's gradient is dy itself (a slice of it for a concat, a channel pad).
    A concat's input whose slice of dy is not contiguous in memory is marked so: the op that
    reads it may copy it first (ctx.add_grad's strided; hwmodels/gpu_frameworks.py)."""
    for src in op.inputs:
        if ctx.needs_grad(src):
            ctx.add_grad(src, dy, strided=op.kind == "concat" and len(op.inputs) > 1
                         and not slice_contiguous(op.out.shape, op.attrs.get("dim", 1),
                                                  ctx.memory_format(op)))


# where each dimension of a 4-D tensor lies in memory, outermost first, per memory format
PHYSICAL_ORDER = {"nchw": (0, 1, 2, 3), "nhwc": (0, 2, 3, 1)}


def slice_contiguous(shape: tuple[int, ...], dim: int, memory_format: str) -> bool:
    """Whether a slice along `dim` of a tensor of `shape` is one contiguous block: every
    dimension laid out outside it has size 1 (a channel slice of an NCHW batch of one is; of
    16 images it is 16 blocks, and in NHWC one per pixel)."""
    dim %= len(shape)
    order = PHYSICAL_ORDER.get(memory_format, tuple(range(len(shape))))
    order = order if len(shape) == 4 else tuple(range(len(shape)))
    outer = order[:order.index(dim)]
    return all(shape[d] == 1 for d in outer)


def gradient(ctx, op, dy) -> None:
    """One `<kind>_grad` op of the first input's shape, reading dy and the saved tensors; it
    makes the op's parameter gradients too, if it has parameters."""
    saved = ctx.saved(op)
    src = op.inputs[0]
    grad = ctx.grad_op(f"{op.name}.grad", f"{op.kind}_grad", op, reads(dy, saved),
                       ctx.spec(src), saved, dy)
    if ctx.needs_grad(src):
        ctx.add_grad(src, grad)
    if op.params and ctx.trains(op):
        ctx.weight_grad(op.name, grad)


def input_and_weight(ctx, op, dy) -> None:
    """A layer with weights (convolution, linear): `<kind>_grad_input` reads dy and the weight
    (not the saved input), only where the input needs a gradient; `<kind>_grad_weight` reads dy
    and the saved input."""
    saved = ctx.saved(op)
    src = op.inputs[0]
    if ctx.needs_grad(src):
        ctx.add_grad(src, ctx.grad_op(f"{op.name}.grad_input", f"{op.kind}_grad_input", op,
                                      [dy], ctx.spec(src), (), dy))
    if not ctx.trains(op):   # frozen or constant weights: the input's gradient alone
        return
    ctx.weight_grad(op.name, ctx.grad_op(f"{op.name}.grad_weight", f"{op.kind}_grad_weight",
                                         op, reads(dy, saved), ctx.param_grad_spec(op),
                                         saved, dy))


def per_factor(ctx, op, dy) -> None:
    """A product of two tensors: one `<kind>_grad` per factor that needs a gradient, dy times
    the other (saved) factor, summed where the factor broadcast."""
    for i, src in enumerate(op.inputs):
        if ctx.needs_grad(src):
            other = op.inputs[1 - i]
            ctx.add_grad(src, ctx.grad_op(f"{op.name}.grad{i}", f"{op.kind}_grad", op,
                                          [dy, other], ctx.spec(src), (other,), dy, factor=i))


def parameter_gradient(ctx, op, dy) -> None:
    """Only the parameters get a gradient (an embedding: its input is token ids): one
    `<kind>_grad` op of the parameters' size, reading dy and the saved tensors (none where
    they are frozen)."""
    if not ctx.trains(op):
        return
    saved = ctx.saved(op)
    ctx.weight_grad(op.name, ctx.grad_op(f"{op.name}.grad", f"{op.kind}_grad", op,
                                         reads(dy, saved), ctx.param_grad_spec(op), saved,
                                         dy))


def route_and_parameter_gradient(ctx, op, dy) -> None:
    """A parameter added to (or put beside) the input: the input's gradient is dy itself (or
    a slice of it), and `<kind>_grad` reduces dy to the parameters' gradient."""
    route(ctx, op, dy)
    parameter_gradient(ctx, op, dy)


def fused_gradient(ctx, op, dy) -> None:
    """One `<kind>_grad` op makes the gradients of all inputs at once (a fused attention's
    backward kernel): its output holds them all, flat, and each input reads its own part."""
    saved = ctx.saved(op)
    size = sum(ctx.spec(src).numel for src in op.inputs)
    grad = ctx.grad_op(f"{op.name}.grad", f"{op.kind}_grad", op, reads(dy, saved),
                       ctx.flat_spec(size, op), saved, dy)
    for src in dict.fromkeys(op.inputs):
        if ctx.needs_grad(src):
            ctx.add_grad(src, grad)
