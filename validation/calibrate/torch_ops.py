"""One op of an OpGraph (forward, backward or update) as the PyTorch kernel a training step runs.

`op_kernel(op, state)` returns `fn(*inputs) -> output`: the ATen call autograd makes for that op,
fed the op's input tensors in the IR's order. `state` (a KernelState) holds what a real step
keeps between ops: the parameters, what a forward op saves for its backward (max-pool indices,
batch-norm mean and inverse std, log-softmax), the weight gradients the update reads, and the
momentum buffers. `validation.calibrate.replay` runs whole training graphs through these kernels;
`op_callable(op)` runs one op alone on random tensors of its shapes.

    conv2d_grad_input / _grad_weight   convolution_backward with output mask (input | weight+bias)
    linear_grad_input / _grad_weight   dy @ W / dy^T @ x (+ bias: dy.sum(0))
    batchnorm / batchnorm_grad         native_batch_norm (training) / native_batch_norm_backward
    layernorm, groupnorm / _grad       native_layer_norm, native_group_norm / their backward
    relu_grad                          threshold_backward
    mul / mul_grad                     a * b / dy * other, summed to the factor's shape
    scalar / scalar_grad               x + c, x * c or c - x / dy * c
    tanh, gelu, ... / <kind>_grad      the activation / its ATen backward (torch_activations)
    dropout / dropout_grad (training)  bernoulli_ mask, scaled, times x / dy times the mask
    maxpool / maxpool_grad             max_pool2d_with_indices / ..._backward
    softmax_xent / _grad               log_softmax + nll_loss / nll_loss_backward + log_softmax's
    sgd_update                         torch.optim.SGD's per-tensor momentum update
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from workloads.graph import ACTIVATIONS, Op, WorkloadError

from . import torch_activations

from .torch_exec import (BN_EPS, LR, MOMENTUM, NORM_EPS, _shuffle, initial_params,
                         param_shapes, resolve_device, scalar_fn)

aten = torch.ops.aten
Kernel = Callable[..., object]


class KernelState:
    """What a training step keeps between its ops, created on first use (random values)."""

    def __init__(self, device="cpu", seed: int = 0, graph=None) -> None:
        self.graph = graph        # to find an update's forward op (its parameter shapes)
        self.dev = resolve_device(device)
        self.gen = torch.Generator().manual_seed(seed)
        self.params: dict[str, list[torch.Tensor]] = {}      # forward op -> weight (, bias)
        self.saved: dict[str, tuple] = {}                     # forward op -> what backward reads
        self.grads: dict[str, list[torch.Tensor]] = {}        # forward op -> weight gradients
        self.momentum: dict[str, list[torch.Tensor]] = {}
        self._placeholders: dict[tuple, torch.Tensor] = {}

    def rand(self, shape) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.gen).to(self.dev)

    def params_of(self, op: Op) -> list[torch.Tensor]:
        """Parameters of the forward op that `op` (forward, gradient or update) belongs to."""
        owner = op.forward or op.name
        if owner not in self.params:
            fwd = self.graph.op(owner) if self.graph is not None and owner in self.graph else op
            self.params[owner] = (
                [self.rand(s) for s in _forward_param_shapes(fwd)] if fwd.kind == "sgd_update"
                else initial_params(_forward_of(fwd), self.gen, self.dev))
        return self.params[owner]

    def placeholder(self, shape) -> torch.Tensor:
        """A tensor of a shape, made once: operands only read for their shape, and gradient
        slices the IR routes for free (a concat's or a channel pad's gradient)."""
        key = tuple(shape)
        if key not in self._placeholders:
            self._placeholders[key] = self.rand(key)
        return self._placeholders[key]


def op_kernel(op: Op, state: KernelState) -> Kernel | None:
    """`fn(*inputs)` running `op` (inputs in the op's order); None for views (no kernel)."""
    if op.is_view:
        return None
    k, a, dev = op.kind, op.attrs, state.dev
    owner = op.forward or op.name
    if k.startswith("conv2d"):
        w, *b = state.params_of(op)
        conv_args = (a["stride"], a["padding"], a["dilation"])
        if k == "conv2d":
            bias = b[0] if b else None
            return lambda x: F.conv2d(x, w, bias, *conv_args, a["groups"])
        bias_sizes = list(b[0].shape) if b else None
        bwd = (*conv_args, False, [0, 0], a["groups"])
        if k == "conv2d_grad_input":
            x_shape = state.placeholder(a["in_shape"])        # read for its shape only
            return lambda dy: aten.convolution_backward(dy, x_shape, w, None, *bwd,
                                                        [True, False, False])[0]

        def conv_grad_weight(dy, x):
            _, gw, gb = aten.convolution_backward(dy, x, w, bias_sizes, *bwd,
                                                  [False, True, bool(b)])
            state.grads[owner] = [gw, gb] if b else [gw]
            return gw
        return conv_grad_weight
    if k.startswith("linear"):
        w, *b = state.params_of(op)
        if k == "linear":
            bias = b[0] if b else None
            return lambda x: F.linear(x, w, bias)
        if k == "linear_grad_input":
            return lambda dy: dy.reshape(-1, a["out_features"]).mm(w)

        def linear_grad_weight(dy, x):
            dy2 = dy.reshape(-1, a["out_features"])
            gw = dy2.t().mm(x.reshape(-1, a["in_features"]))
            state.grads[owner] = [gw, dy2.sum(0)] if b else [gw]
            return gw
        return linear_grad_weight
    if k in ("layernorm", "layernorm_grad", "groupnorm", "groupnorm_grad"):
        return _norm_kernel(op, state, owner)
    if k in ("batchnorm", "batchnorm_grad"):
        c = a["num_features"]
        w, bias = state.params_of(op) or (None, None)
        rm, rv = torch.zeros(c, device=dev), torch.ones(c, device=dev)
        if k == "batchnorm":
            def batchnorm(x):
                y, mean, invstd = aten.native_batch_norm(x, w, bias, rm, rv, True, 0.1, BN_EPS)
                state.saved[owner] = (mean, invstd)
                return y
            return batchnorm

        def batchnorm_grad(dy, x):
            mean, invstd = state.saved.get(owner) or (torch.zeros(c, device=dev),
                                                      torch.ones(c, device=dev))
            affine = w is not None
            dx, gw, gb = aten.native_batch_norm_backward(dy, x, w, rm, rv, mean, invstd, True,
                                                         BN_EPS, [True, affine, affine])
            state.grads[owner] = [gw, gb] if affine else []
            return dx
        return batchnorm_grad
    if k in ("dropout", "dropout_grad"):
        return _dropout_kernel(op, state, owner)
    if k == "relu":
        return F.relu
    if k == "relu_grad":
        return lambda dy, y: aten.threshold_backward(dy, y, 0)
    if k in ACTIVATIONS:
        return torch_activations.forward(op)
    if k.endswith("_grad") and k.removesuffix("_grad") in ACTIVATIONS:
        return torch_activations.backward(op)
    if k in ("add", "grad_accumulate"):
        return _sum
    if k == "scalar":
        return scalar_fn(a)
    if k == "scalar_grad":
        return lambda dy: dy * a["scale"]
    if k == "mul":
        return torch.mul
    if k == "mul_grad":   # autograd: grad * other, summed to the factor's shape
        return lambda dy, other: (dy * other).sum_to_size(op.out.shape)
    if k in ("maxpool", "maxpool_grad"):
        pool = (list(a["kernel"]), list(a["stride"]), list(a["padding"]), [1, 1],
                bool(a.get("ceil_mode", False)))
        if k == "maxpool":
            def maxpool(x):
                y, idx = aten.max_pool2d_with_indices(x, *pool)
                state.saved[owner] = (idx,)
                return y
            return maxpool

        def maxpool_grad(dy, x):
            if owner not in state.saved:   # run alone: the forward's indices, made untimed once
                state.saved[owner] = (aten.max_pool2d_with_indices(x, *pool)[1],)
            return aten.max_pool2d_with_indices_backward(dy, x, *pool, state.saved[owner][0])
        return maxpool_grad
    if k in ("avgpool", "avgpool_grad"):
        pool = (list(a["kernel"]), list(a["stride"]), list(a["padding"]))
        if k == "avgpool":
            return lambda x: F.avg_pool2d(x, *pool)
        x_shape = state.placeholder(op.out.shape)
        return lambda dy: aten.avg_pool2d_backward(dy, x_shape, *pool, False, True, None)
    if k == "adaptive_avgpool":
        return lambda x: F.adaptive_avg_pool2d(x, a["output_size"])
    if k == "adaptive_avgpool_grad":
        x_shape = state.placeholder(op.out.shape)
        return lambda dy: aten._adaptive_avg_pool2d_backward(dy, x_shape)
    if k == "concat":
        return lambda *xs: torch.cat(xs, a["dim"])
    if k == "channel_shuffle":
        return lambda x: _shuffle(x, a["groups"])
    if k == "channel_shuffle_grad":
        return lambda dy: _shuffle(dy, dy.shape[1] // a["groups"])
    if k == "pad_channels":
        sh, sw = a["stride"]
        return lambda x: F.pad(x[:, :, ::sh, ::sw], (0, 0, 0, 0, *a["pad"]))
    if k in ("softmax_xent", "softmax_xent_grad"):
        n, classes = op.in_specs[-1].shape
        target = torch.randint(0, classes, (n,), generator=state.gen).to(dev)
        if k == "softmax_xent":
            def softmax_xent(logits):
                logp = F.log_softmax(logits, 1)     # what autograd saves for the gradient
                state.saved[owner] = (logp,)
                return F.nll_loss(logp, target)
            return softmax_xent
        one = torch.ones((), device=dev)
        total = torch.tensor(float(n), device=dev)

        def softmax_xent_grad(logits):
            if owner not in state.saved:
                state.saved[owner] = (F.log_softmax(logits, 1),)
            logp = state.saved[owner][0]
            g = aten.nll_loss_backward(one, logp, target, None, 1, -100, total)
            return aten._log_softmax_backward_data(g, logp, 1, logp.dtype)
        return softmax_xent_grad
    if k == "sgd_update":
        params = state.params_of(op)
        bufs = state.momentum.setdefault(owner, [torch.zeros_like(p) for p in params])

        def sgd_update(_grad):
            grads = state.grads.get(owner) or [torch.ones_like(p) for p in params]
            # torch.optim.SGD (momentum, no nesterov, no weight decay), per tensor
            for p, g, buf in zip(params, grads, bufs):
                buf.mul_(MOMENTUM).add_(g.reshape(p.shape))
                p.add_(buf, alpha=-LR)
        return sgd_update
    raise WorkloadError(f"op {op.name!r}: torch_ops cannot run kind {k!r}")


def op_callable(op: Op, device="cpu", seed: int = 0, graph=None) -> Callable[[], object] | None:
    """A zero-argument callable running `op` alone on random tensors of its input shapes;
    None for views. An sgd_update needs its `graph` to know the tensors it steps (else one
    flat tensor of op.params)."""
    state = KernelState(device, seed, graph)
    kernel = op_kernel(op, state)
    if kernel is None:
        return None
    ins = [state.rand(s.shape) for s in op.in_specs]
    if op.kind == "sgd_update":   # gradients of the parameters' own shapes
        state.grads[op.forward or op.name] = [state.rand(p.shape) for p in state.params_of(op)]
    kernel(*ins)                  # builds what the op reads from its forward (untimed)
    return lambda: kernel(*ins)


def _dropout_kernel(op: Op, state: KernelState, owner: str) -> Kernel:
    """What F.dropout runs in training: on CPU a Bernoulli mask, scaled, then a product (the
    mask is saved, and the gradient is the product with it); on CUDA one fused kernel."""
    keep = 1.0 - op.attrs["p"]
    fused = state.dev.type == "cuda"
    if op.kind == "dropout":
        def dropout(x):
            if fused:
                y, mask = aten.native_dropout(x, 1.0 - keep, True)
            else:
                mask = torch.empty_like(x).bernoulli_(keep).div_(keep)
                y = x * mask
            state.saved[owner] = (mask,)
            return y
        return dropout

    def dropout_grad(dy):
        if owner not in state.saved:   # run alone: a mask, made untimed once
            dropout_mask = torch.empty_like(dy).bernoulli_(keep)
            state.saved[owner] = ((dropout_mask > 0) if fused else dropout_mask.div_(keep),)
        mask = state.saved[owner][0]
        return aten.native_dropout_backward(dy, mask, 1.0 / keep) if fused else dy * mask
    return dropout_grad


def _norm_kernel(op: Op, state: KernelState, owner: str) -> Kernel:
    """Layer and group norm as autograd runs them: native_layer_norm / native_group_norm,
    which save the mean and reciprocal std, and their backward."""
    a, params = op.attrs, state.params_of(op)
    w, bias = params or (None, None)
    mask = [True, w is not None, w is not None]
    if op.kind.startswith("layernorm"):
        dims = list(a["normalized_shape"])
        forward = lambda x: aten.native_layer_norm(x, dims, w, bias, NORM_EPS)  # noqa: E731
        backward = lambda dy, x, mean, rstd: aten.native_layer_norm_backward(  # noqa: E731
            dy, x, dims, mean, rstd, w, bias, mask)
    else:
        g = a["num_groups"]

        def sizes(x):
            return x.shape[0], x.shape[1], x[0, 0].numel()
        forward = lambda x: aten.native_group_norm(x, w, bias, *sizes(x), g,  # noqa: E731
                                                   NORM_EPS)
        backward = lambda dy, x, mean, rstd: aten.native_group_norm_backward(  # noqa: E731
            dy, x, mean, rstd, w, *sizes(x), g, mask)
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
        state.grads[owner] = [gw, gb] if w is not None else []
        return dx
    return norm_grad


def _sum(*xs):
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out = out + x
    return out


def _forward_param_shapes(op: Op) -> list[tuple[int, ...]]:
    """Parameter shapes of the forward op that `op` (forward or gradient) belongs to; an update
    whose forward op is unknown steps one flat tensor."""
    if op.kind == "sgd_update":
        return [(op.params,)]
    return param_shapes(_forward_of(op))


def _forward_of(op: Op) -> Op:
    """The forward op a gradient op stands for (its kind without `_grad...`, its attributes)."""
    return Op(op.name, op.kind.split("_grad")[0], (), (), op.out, op.attrs, params=0)
