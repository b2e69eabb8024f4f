"""Kinds of Swin Transformer V2's cosine attention: q and k normalised to unit length
(F.normalize over the last dimension), the scores times a learned per-head logit scale
exp(min(s, log 100)), and the continuous position bias: a two-layer MLP run on the fixed
table of log-spaced relative coordinates, gathered to (heads, T, T) by the relative position
index, 16 * sigmoid of it added to the scores. The MLP runs once per step whatever the batch;
its products are the op's multiply-adds, as PyTorch's counter counts its linear layers.
"""
from __future__ import annotations

import math

from . import backward_rules
from ._registry import OpKind, per_element, register
from ._torch import F, torch
from .window_attention import relative_position_index

_EPS = 1e-12                 # F.normalize's default
_LOGIT_MAX = math.log(100.0)  # torchvision clamps the logit scale there


def _normalize_kernel(op, state):
    if op.kind == "l2_normalize":
        return lambda x: F.normalize(x, dim=-1)

    def l2_normalize_grad(dy, x):
        norm = x.norm(dim=-1, keepdim=True).clamp_min(_EPS)
        y = x / norm
        return (dy - y * (dy * y).sum(-1, keepdim=True)) / norm
    return l2_normalize_grad


def _logit_scale_kernel(op, state):
    param, = state.params_of(op)

    def scale():
        return torch.clamp(param, max=_LOGIT_MAX).exp()

    if op.kind == "logit_scale":
        return lambda x: x * scale()
    owner = op.forward or op.name

    def logit_scale_grad(dy, x):
        s = scale()
        state.grads[owner] = [((dy * x).sum_to_size(param.shape) * s * (param < _LOGIT_MAX))]
        return dy * s
    return logit_scale_grad


def coordinate_table(window: int):
    """torchvision's (1, 2s-1, 2s-1, 2) table of log-spaced relative coordinates."""
    r = torch.arange(-(window - 1), window, dtype=torch.float32)
    table = torch.stack(torch.meshgrid([r, r], indexing="ij")).permute(1, 2, 0).unsqueeze(0)
    table = table / (window - 1) * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0


def _bias(op, w1, b1, w2, device):
    t = op.attrs["tokens"]
    window = math.isqrt(t)
    table = F.linear(F.relu(F.linear(coordinate_table(window).to(device), w1, b1)), w2)
    index = relative_position_index(window).to(device).reshape(-1)
    bias = table.view(-1, w2.shape[0])[index].view(t, t, -1).permute(2, 0, 1).contiguous()
    return 16 * torch.sigmoid(bias)


def _cpb_kernel(op, state):
    params = state.params_of(op)
    if op.kind == "continuous_position_bias":
        w1, b1, w2 = params
        return lambda x: x + _bias(op, w1, b1, w2, x.device)
    owner = op.forward or op.name

    def continuous_position_bias_grad(dy):
        # autograd through the small MLP (its forward is recomputed: a few hundred rows)
        leaves = [p.detach().requires_grad_(True) for p in params]
        with torch.enable_grad():
            bias = _bias(op, leaves[0], leaves[1], leaves[2], dy.device)
            grads = torch.autograd.grad(bias, leaves, dy.sum_to_size(bias.shape))
        state.grads[owner] = list(grads)
        return grads[0]
    return continuous_position_bias_grad


def _cpb_params(op):
    a = op.attrs
    return [(a["hidden"], 2), (a["hidden"],), (a["heads"], a["hidden"])]


def _cpb_macs(op) -> float:
    a = op.attrs
    rows = (2 * math.isqrt(a["tokens"]) - 1) ** 2
    return float(rows * a["hidden"] * (2 + a["heads"]))


def _cpb_flops(op) -> float:
    """The MLP's products, its bias and ReLU, the sigmoid and scale of the gathered bias (5 a
    value) and the add to the scores."""
    a = op.attrs
    rows = (2 * math.isqrt(a["tokens"]) - 1) ** 2
    bias_values = a["heads"] * a["tokens"] ** 2
    return 2.0 * op.macs + 2.0 * rows * a["hidden"] + 5.0 * bias_values + op.out.numel


def _cpb_grad_flops(op) -> float:
    """dy summed over the batch and windows, back through the sigmoid, the gather and the
    MLP: both weight gradients and the hidden layer's input gradient."""
    a = op.attrs
    rows = (2 * math.isqrt(a["tokens"]) - 1) ** 2
    return (float(op.in_specs[0].numel) + 3.0 * a["heads"] * a["tokens"] ** 2
            + 2.0 * rows * a["hidden"] * (2 + 2 * a["heads"]))


register(
    OpKind("l2_normalize", "normalization", flops=per_element(3.0), saves=("in",),
           torch_kernel=_normalize_kernel,
           doc="F.normalize(x, dim=-1): x over its L2 norm along the last dimension"),
    OpKind("l2_normalize_grad", "normalization", "backward", flops=per_element(6.0),
           torch_kernel=_normalize_kernel),
    OpKind("logit_scale", "elementwise", flops=per_element(1.0), saves=("in",),
           reads_params=True, param_shapes=lambda op: [tuple(op.attrs["param_shape"])],
           param_tensors=lambda op: 1, param_init="scale_shift",
           torch_kernel=_logit_scale_kernel,
           torch_module=lambda op, m, i: lambda ins: ins[0] * torch.clamp(
               m._p(i, 0), max=_LOGIT_MAX).exp(),
           doc="scores times exp(min(s, log 100)) of a learned per-head s (Swin V2)"),
    OpKind("logit_scale_grad", "elementwise", "backward", flops=per_element(3.0),
           carries_params=True, torch_kernel=_logit_scale_kernel,
           doc="dx and the logit scale's gradient"),
    OpKind("continuous_position_bias", "elementwise", flops=_cpb_flops, macs=_cpb_macs,
           backward=backward_rules.route_and_parameter_gradient, param_shapes=_cpb_params,
           param_tensors=lambda op: 3, torch_kernel=_cpb_kernel,
           torch_module=lambda op, m, i: lambda ins: ins[0] + _bias(
               op, m._p(i, 0), m._p(i, 1), m._p(i, 2), ins[0].device),
           doc="scores plus 16 sigmoid of an MLP (2 -> hidden -> heads) of the relative "
               "coordinates, gathered to (heads, T, T) (attrs: tokens, hidden, heads)"),
    OpKind("continuous_position_bias_grad", "elementwise", "backward", flops=_cpb_grad_flops,
           carries_params=True, torch_kernel=_cpb_kernel,
           doc="dy back through the sigmoid, the gather and the MLP to its weights"),
)
