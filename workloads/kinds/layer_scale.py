"""A learned tensor multiplied into its input, broadcast over it: ConvNeXt's layer scale
(a (C, 1, 1) parameter times an (N, C, H, W) map), CaiT's LayerScale. attrs: param_shape (the
parameter as PyTorch holds it). Its gradient op makes dx = dy * scale and the parameter's
gradient, the sum of dy * x where the scale broadcast.

A learned tensor added to its input, broadcast over it (`bias_add`: the shift of a norm
written by hand, `weight[:, None, None] * x + bias[:, None, None]`, or `x @ W + b`): the
input's gradient is dy itself, and the parameter's the sum of dy where it broadcast.

A learned tensor computed on before use, once per step (`weight_affine`: RWKV's `1 - mix`;
`weight_exp`: CLIP's `logit_scale.exp()`): a kernel on the parameter alone, no batch
dimension, reading no input; its output is multiplied into a tensor as any factor (a `mul`
broadcast over the batch). Its gradient is the parameter's: -dy for `shift - w`, dy * exp(w) for
exp."""
from __future__ import annotations

from . import backward_rules
from ._registry import OpKind, per_element, per_input_element, register


def _kernel(op, state):
    scale, = state.params_of(op)
    if op.kind == "layer_scale":
        return lambda x: x * scale
    owner = op.forward or op.name

    def layer_scale_grad(dy, x):
        state.grads[owner] = [(dy * x).sum_to_size(scale.shape)]
        return dy * scale
    return layer_scale_grad


def _bias_kernel(op, state):
    bias, = state.params_of(op)
    if op.kind == "bias_add":
        return lambda x: x + bias
    owner = op.forward or op.name

    def bias_add_grad(dy):
        grad = dy.sum_to_size(bias.shape)
        state.grads[owner] = [grad]
        return grad
    return bias_add_grad


def _weight_fn(op):
    """The function a weight_exp / weight_affine op applies to its parameter w."""
    if op.kind == "weight_exp":
        return lambda w: w.exp()
    scale, shift = op.attrs["scale"], op.attrs["shift"]
    return (lambda w: shift - w) if scale == -1.0 else (lambda w: w * scale + shift)


def _weight_fn_kernel(op, state):
    weight, = state.params_of(op)
    if op.phase == "forward":
        fn = _weight_fn(op)
        return lambda: fn(weight)
    owner = op.forward or op.name

    def weight_fn_grad(dy, *saved):   # exp: dy * its output; w * scale + shift: dy * scale
        grad = dy * saved[0] if op.kind == "weight_exp_grad" else dy * op.attrs["scale"]
        state.grads[owner] = [grad]
        return grad
    return weight_fn_grad


def _weight_fn_kinds(name: str, what: str, saves: tuple[str, ...], grad: str) -> tuple:
    return (
        OpKind(name, "elementwise", flops=per_element(1.0), saves=saves,
               bytes_read=lambda op: op.param_bytes,
               backward=backward_rules.parameter_gradient,
               param_shapes=lambda op: [tuple(op.out.shape)], param_tensors=lambda op: 1,
               torch_kernel=_weight_fn_kernel,
               torch_module=lambda op, m, i: (lambda fn: lambda ins: fn(m._p(i, 0)))(
                   _weight_fn(op)),
               doc=f"{what} of a learned tensor w alone, once per step (no batch dimension)"),
        OpKind(f"{name}_grad", "elementwise", "backward", flops=per_element(1.0),
               carries_params=True, torch_kernel=_weight_fn_kernel, doc=grad),
    )


register(
    *_weight_fn_kinds("weight_exp", "exp(w)", ("out",),
                      "dy times the saved exp(w): the parameter's gradient"),
    *_weight_fn_kinds("weight_affine", "w * scale + shift (1 - w: scale -1, shift 1)", (),
                      "dy times the scale: the parameter's gradient"),
    OpKind("layer_scale", "elementwise", flops=per_element(1.0), saves=("in",),
           reads_params=True, param_shapes=lambda op: [tuple(op.attrs["param_shape"])],
           param_tensors=lambda op: 1, param_init="scale_shift", torch_kernel=_kernel,
           torch_module=lambda op, m, i: lambda ins: ins[0] * m._p(i, 0),
           doc="x times a learned tensor of attrs['param_shape'] broadcast over it"),
    # dy * scale, dy * x, and the sum of the latter where the scale broadcast
    OpKind("layer_scale_grad", "elementwise", "backward", flops=per_element(3.0),
           carries_params=True, torch_kernel=_kernel),
    OpKind("bias_add", "elementwise", flops=per_element(1.0), reads_params=True,
           backward=backward_rules.route_and_parameter_gradient,
           param_shapes=lambda op: [tuple(op.attrs["param_shape"])],
           param_tensors=lambda op: 1, torch_kernel=_bias_kernel,
           torch_module=lambda op, m, i: lambda ins: ins[0] + m._p(i, 0),
           doc="x plus a learned tensor of attrs['param_shape'] broadcast over it"),
    # one addition per value of dy, into the parameter's shape
    OpKind("bias_add_grad", "elementwise", "backward", flops=per_input_element(1.0),
           carries_params=True, torch_kernel=_bias_kernel,
           doc="dy summed where the learned tensor broadcast"),
)
