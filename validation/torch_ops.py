"""One op of an OpGraph (forward, backward or update) as a PyTorch call on tensors of its shapes.

`op_callable(op, device)` returns a zero-argument callable running the ATen kernel that
autograd runs for that op in a training step, so an op timed here is the op of a real step:

    conv2d_grad_input / _grad_weight   convolution_backward with output mask (input | weight+bias)
    linear_grad_input / _grad_weight   dy @ W / dy^T @ x (+ bias: dy.sum(0))
    batchnorm / batchnorm_grad         batch_norm (training) / native_batch_norm_backward
    relu_grad                          threshold_backward
    maxpool / maxpool_grad             max_pool2d_with_indices / ..._backward
    softmax_xent / _grad               cross_entropy / nll_loss_backward + log_softmax backward
    sgd_update                         torch.optim.SGD's per-tensor momentum update
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from workloads.graph import Op, WorkloadError

from .torch_exec import BN_EPS, LR, MOMENTUM, _shuffle, param_shapes, resolve_device

aten = torch.ops.aten


def op_callable(op: Op, device="cpu", seed: int = 0, graph=None) -> Callable[[], object] | None:
    """A callable that runs `op` once; None for views (no kernel runs). An sgd_update op needs
    its `graph` to know the tensors it steps (else one flat tensor of op.params)."""
    dev = resolve_device(device)
    gen = torch.Generator().manual_seed(seed)

    def rand(shape):
        return torch.randn(tuple(shape), generator=gen).to(dev)

    k, a = op.kind, op.attrs
    ins = [rand(s.shape) for s in op.in_specs]
    if op.is_view:
        return None
    if k.startswith("conv2d"):
        w_shape, *b = _forward_param_shapes(op)
        w = rand(w_shape)
        x = ins[0] if k == "conv2d" else rand(a["in_shape"])
        conv_args = (a["stride"], a["padding"], a["dilation"])
        if k == "conv2d":
            bias = rand(b[0]) if b else None
            return lambda: F.conv2d(x, w, bias, *conv_args, a["groups"])
        dy = ins[0]
        mask = [True, False, False] if k == "conv2d_grad_input" else [False, True, bool(b)]
        bias_sizes = list(b[0]) if b else None
        return lambda: aten.convolution_backward(dy, x, w, bias_sizes, *conv_args, False, [0, 0],
                                                 a["groups"], mask)
    if k.startswith("linear"):
        w_shape, *b = _forward_param_shapes(op)
        w = rand(w_shape)
        if k == "linear":
            bias = rand(b[0]) if b else None
            return lambda: F.linear(ins[0], w, bias)
        dy = ins[0].reshape(-1, a["out_features"])
        if k == "linear_grad_input":
            return lambda: dy.mm(w)
        x = ins[1].reshape(-1, a["in_features"]) if len(ins) > 1 else rand(
            (a["batch_rows"], a["in_features"]))
        if b:
            return lambda: (dy.t().mm(x), dy.sum(0))
        return lambda: dy.t().mm(x)
    if k in ("batchnorm", "batchnorm_grad"):
        c = a["num_features"]
        w, bias = rand((c,)), rand((c,))
        rm, rv = torch.zeros(c, device=dev), torch.ones(c, device=dev)
        if k == "batchnorm":
            return lambda: F.batch_norm(ins[0], rm, rv, w, bias, True, 0.1, BN_EPS)
        dy, x = ins[0], ins[-1]
        _, mean, invstd, *_ = aten.native_batch_norm(x, w, bias, rm, rv, True, 0.1, BN_EPS)
        return lambda: aten.native_batch_norm_backward(dy, x, w, rm, rv, mean, invstd, True,
                                                       BN_EPS, [True, True, True])
    if k == "relu":
        return lambda: F.relu(ins[0])
    if k == "relu_grad":
        dy, y = ins[0], F.relu(ins[-1])
        return lambda: aten.threshold_backward(dy, y, 0)
    if k == "add":
        return lambda: ins[0] + ins[1]
    if k == "grad_accumulate":
        return lambda: _sum(ins)
    if k in ("maxpool", "maxpool_grad"):
        pool = (list(a["kernel"]), list(a["stride"]), list(a["padding"]), [1, 1], False)
        if k == "maxpool":
            return lambda: aten.max_pool2d_with_indices(ins[0], *pool)
        dy, x = ins[0], ins[-1]
        _, idx = aten.max_pool2d_with_indices(x, *pool)
        return lambda: aten.max_pool2d_with_indices_backward(dy, x, *pool, idx)
    if k in ("avgpool", "avgpool_grad"):
        pool = (list(a["kernel"]), list(a["stride"]), list(a["padding"]))
        if k == "avgpool":
            return lambda: F.avg_pool2d(ins[0], *pool)
        x = rand(op.out.shape)
        return lambda: aten.avg_pool2d_backward(ins[0], x, *pool, False, True, None)
    if k == "adaptive_avgpool":
        return lambda: F.adaptive_avg_pool2d(ins[0], a["output_size"])
    if k == "adaptive_avgpool_grad":
        x = rand(op.out.shape)
        return lambda: aten._adaptive_avg_pool2d_backward(ins[0], x)
    if k == "concat":
        return lambda: torch.cat(ins, a["dim"])
    if k == "channel_shuffle":
        return lambda: _shuffle(ins[0], a["groups"])
    if k == "channel_shuffle_grad":
        c = ins[0].shape[1]
        return lambda: _shuffle(ins[0], c // a["groups"])
    if k == "pad_channels":
        sh, sw = a["stride"]
        return lambda: F.pad(ins[0][:, :, ::sh, ::sw], (0, 0, 0, 0, *a["pad"]))
    if k in ("softmax_xent", "softmax_xent_grad"):
        logits = ins[-1]
        n, classes = logits.shape
        target = torch.randint(0, classes, (n,), generator=gen).to(dev)
        if k == "softmax_xent":
            return lambda: F.cross_entropy(logits, target)
        logp = F.log_softmax(logits, 1)
        one = torch.ones((), device=dev)
        total = torch.tensor(float(n), device=dev)

        def xent_grad():
            g = aten.nll_loss_backward(one, logp, target, None, 1, -100, total)
            return aten._log_softmax_backward_data(g, logp, 1, logp.dtype)
        return xent_grad
    if k == "sgd_update":
        shapes = _update_shapes(op, graph)
        params = [rand(s) for s in shapes]
        grads = [rand(s) for s in shapes]
        bufs = [torch.zeros(s, device=dev) for s in shapes]

        def update():
            # torch.optim.SGD (momentum, no nesterov, no weight decay), per tensor
            for p, g, buf in zip(params, grads, bufs):
                buf.mul_(MOMENTUM).add_(g)
                p.add_(buf, alpha=-LR)
        return update
    raise WorkloadError(f"op {op.name!r}: torch_ops cannot run kind {k!r}")


def _sum(xs):
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out = out + x
    return out


def _forward_param_shapes(op: Op) -> list[tuple[int, ...]]:
    """Parameter shapes of the forward op that `op` (forward or gradient) belongs to."""
    base = op.kind.split("_grad")[0]
    fake = Op(op.name, base, (), (), op.out, op.attrs, params=0)
    return param_shapes(fake)


def _update_shapes(op: Op, graph) -> list[tuple[int, ...]]:
    """Parameter tensors an sgd_update op steps: its forward op's when the graph is known."""
    if graph is not None and op.forward and op.forward in graph:
        return param_shapes(graph.op(op.forward))
    return [(op.params,)]
