"""Normalisations: statistics over some dimensions (N, H, W for batch norm; a sample's trailing
dimensions for layer norm; a group of channels for group norm), then a scale and shift.
FLOPs per element: mean, variance, normalisation and the affine; the gradient about twice."""
from __future__ import annotations

from ._registry import OpKind, per_element, register
from ._torch import F, aten, torch

EPS = 1e-5   # PyTorch's default for batch, layer and group norm


def _params(op):
    """A scale and a shift, per channel (per value for layer norm); none without affine; the
    scale alone for a layer norm without bias (nn.LayerNorm(bias=False))."""
    a = op.attrs
    if not a.get("affine", True):
        return []
    kind = op.kind.removesuffix("_grad")
    per = (tuple(a["normalized_shape"]) if kind == "layernorm"
           else (a["num_channels"],) if kind == "groupnorm" else (a["num_features"],))
    return [per, per] if a.get("bias", True) else [per]


def _batchnorm_kernel(op, state):
    """native_batch_norm in training (saving the mean and inverse std) and its backward."""
    owner, dev = op.forward or op.name, state.dev
    c = op.attrs["num_features"]
    w, bias = state.params_of(op) or (None, None)
    rm, rv = torch.zeros(c, device=dev), torch.ones(c, device=dev)
    if op.kind == "batchnorm":
        def batchnorm(x):
            y, mean, invstd = aten.native_batch_norm(x, w, bias, rm, rv, True, 0.1, EPS)
            state.saved[owner] = (mean, invstd)
            return y
        return batchnorm

    def batchnorm_grad(dy, x):
        mean, invstd = state.saved.get(owner) or (torch.zeros(c, device=dev),
                                                  torch.ones(c, device=dev))
        affine = w is not None
        dx, gw, gb = aten.native_batch_norm_backward(dy, x, w, rm, rv, mean, invstd, True,
                                                     EPS, [True, affine, affine])
        state.grads[owner] = [gw, gb] if affine else []
        return dx
    return batchnorm_grad


def _batchnorm_module(op, m, i):
    return lambda ins: F.batch_norm(ins[0], getattr(m, f"rm{i}"), getattr(m, f"rv{i}"),
                                    m._p(i, 0), m._p(i, 1), m.training, 0.1, EPS)


def _batchnorm_buffers(op, dev):
    c = op.attrs["num_features"]
    return [("rm", torch.zeros(c, device=dev)), ("rv", torch.ones(c, device=dev))]


def _norm_kernel(op, state):
    """Layer and group norm as autograd runs them: native_layer_norm / native_group_norm,
    which save the mean and reciprocal std, and their backward."""
    a, owner, params = op.attrs, op.forward or op.name, state.params_of(op)
    w, bias = (list(params) + [None, None])[:2]   # a layer norm without bias: the scale alone
    mask = [True, w is not None, bias is not None]
    if op.kind.startswith("layernorm"):
        dims = list(a["normalized_shape"])

        def forward(x):
            return aten.native_layer_norm(x, dims, w, bias, EPS)

        def backward(dy, x, mean, rstd):
            return aten.native_layer_norm_backward(dy, x, dims, mean, rstd, w, bias, mask)
    else:
        g = a["num_groups"]

        def sizes(x):
            return x.shape[0], x.shape[1], x[0, 0].numel()

        def forward(x):
            return aten.native_group_norm(x, w, bias, *sizes(x), g, EPS)

        def backward(dy, x, mean, rstd):
            return aten.native_group_norm_backward(dy, x, mean, rstd, w, *sizes(x), g, mask)
    if not op.kind.endswith("_grad"):
        def norm(x):
            y, mean, rstd = forward(x)
            state.saved[owner] = (mean, rstd)
            return y
        return norm

    def norm_grad(dy, x):
        if owner not in state.saved:   # run alone: the forward's statistics, made untimed once
            state.saved[owner] = forward(x)[1:]
        dx, gw, gb = backward(dy, x, *state.saved[owner])
        state.grads[owner] = [g for g in (gw, gb) if g is not None]
        return dx
    return norm_grad


def _layernorm_module(op, m, i):
    return lambda ins: F.layer_norm(ins[0], op.attrs["normalized_shape"], m._p(i, 0),
                                    m._p(i, 1), EPS)


def _groupnorm_module(op, m, i):
    return lambda ins: F.group_norm(ins[0], op.attrs["num_groups"], m._p(i, 0), m._p(i, 1),
                                    EPS)


def _norm(name: str, kernel, module, doc: str, buffers=None) -> tuple[OpKind, OpKind]:
    common = dict(reads_params=True, param_shapes=_params,
                  param_tensors=lambda op: 2 if op.attrs.get("bias", True) else 1,
                  param_init="scale_shift", torch_kernel=kernel)
    return (OpKind(name, "normalization", flops=per_element(5.0), saves=("in",),
                   torch_module=module, torch_buffers=buffers, doc=doc, **common),
            OpKind(f"{name}_grad", "normalization", "backward", flops=per_element(10.0),
                   carries_params=True, **common))


register(
    *_norm("batchnorm", _batchnorm_kernel, _batchnorm_module,
           "batch norm over (N, C, H, W) or (N, F) (num_features, affine)",
           _batchnorm_buffers),
    *_norm("layernorm", _norm_kernel, _layernorm_module,
           "layer norm over the trailing normalized_shape (affine; bias False: the scale "
           "alone)"),
    *_norm("groupnorm", _norm_kernel, _groupnorm_module,
           "group norm of num_groups groups of channels (affine)"),
)
