"""The loss (softmax cross-entropy over (batch, classes) logits, every position's of a
language model's (batch, ..., classes), or every pixel's or position's of a dense prediction's
(batch, classes, H, W) or (batch, classes, L): attrs class_dim 1) and the optimizer step."""
from __future__ import annotations

from dataclasses import dataclass

from ._registry import OpKind, per_element, per_input_element, register
from ._torch import F, aten, torch

LR = 0.01
MOMENTUM = 0.9
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
ADAMW_WEIGHT_DECAY = 0.01


@dataclass(frozen=True)
class OptimizerStep:
    """What an optimizer's step does per parameter: the state tensors it keeps beside the
    weight and its gradient, which a fused step reads with them and writes back with the
    weight in one pass, and its arithmetic. `passes`: the calls torch.optim's multi-tensor
    (foreach) implementation, PyTorch's default on GPUs, makes instead, each (tensor lists
    read, lists written, lists the call takes: multi_tensor_apply's depth), as
    torch/optim/sgd.py and adam.py make them (no weight decay but AdamW's, no nesterov, no
    amsgrad). `temp_tensors`: the parameter-sized tensors torch.optim's step allocates beyond
    the state, which the memory model holds while it runs (simulator/lowering.py): Adam's
    sqrt(v) (`exp_avg_sq_sqrt` in the multi-tensor step, `denom` in the single-tensor one)."""
    state_tensors: int
    flops_per_param: float
    passes: tuple[tuple[int, int, int], ...]
    temp_tensors: int = 0

    @property
    def tensors_read(self) -> int:
        return 2 + self.state_tensors       # weight, gradient, state

    @property
    def tensors_written(self) -> int:
        return 1 + self.state_tensors       # weight, state


# _multi_tensor_adam's calls: lerp_(m, g); mul_(v); addcmul_(v, g, g); s = sqrt(v);
# div_(s); add_(s, eps); addcdiv_(w, m, s)
_ADAM_PASSES = ((2, 1, 2), (1, 1, 1), (2, 1, 2), (1, 1, 2), (1, 1, 1), (1, 1, 1), (3, 1, 3))
OPTIMIZER_STEPS = {
    "sgd": OptimizerStep(0, 2.0, ((2, 1, 2),)),             # w -= lr*g: add_(w, g)
    # v = m*v + g; w -= lr*v: mul_(v), add_(v, g), add_(w, v)
    "sgd-momentum": OptimizerStep(1, 4.0, ((1, 1, 1), (2, 1, 2), (2, 1, 2))),
    # m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; w -= lr * m_hat / (sqrt(v_hat) + eps)
    "adam": OptimizerStep(2, 12.0, _ADAM_PASSES, temp_tensors=1),
    # Adam, and w *= 1 - lr*wd first (decoupled weight decay: mul_(w))
    "adamw": OptimizerStep(2, 14.0, ((1, 1, 1), *_ADAM_PASSES), temp_tensors=1),
}
DEFAULT_OPTIMIZER = "sgd-momentum"


def optimizer_step(op) -> OptimizerStep:
    """The step of an update op (attrs optimizer, set by the training lowering)."""
    return OPTIMIZER_STEPS[op.attrs.get("optimizer", DEFAULT_OPTIMIZER)]


def loss_rows(shape) -> int:
    """Rows the loss averages over: the batch of (batch, classes) logits, every position of
    (batch, ..., classes) ones (a language model's tokens)."""
    rows = 1
    for d in shape[:-1]:
        rows *= int(d)
    return rows


def as_rows(logits):
    """(rows, classes) logits, as F.cross_entropy takes them after logits.view(-1, classes)."""
    return logits if logits.dim() == 2 else logits.reshape(-1, logits.shape[-1])


def _pixel_targets(op, dev=None, gen=None):
    """Random class ids of each pixel of (batch, classes, H, W) logits: (batch, H, W) (of
    each position of (batch, classes, L) ones: (batch, L))."""
    n, classes, *rest = op.in_specs[-1].shape
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    return torch.randint(0, classes, (n, *rest), generator=gen).to(dev)


def _row_targets(op, dev=None):
    """Random class ids of each row of (batch, ..., classes) logits: each loss of a graph
    that returns several tensors has its own."""
    shape = op.in_specs[-1].shape
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, shape[-1], (loss_rows(shape),), generator=gen).to(dev)


def _pixel_kernel(op, state):
    """F.cross_entropy of (batch, classes, H, W) logits as PyTorch runs it: log_softmax over
    the classes, nll_loss2d / its backward and log_softmax's backward."""
    owner, dev = op.forward or op.name, state.dev
    target = _pixel_targets(op, dev, state.gen)
    if op.kind == "softmax_xent":
        def softmax_xent(logits):
            logp = F.log_softmax(logits, 1)
            state.saved[owner] = (logp,)
            return F.nll_loss(logp, target)
        return softmax_xent
    one = torch.ones((), device=dev)
    total = torch.tensor(float(target.numel()), device=dev)
    # (batch, classes, L): F.nll_loss runs it as nll_loss2d on (batch, classes, 1, L)
    target4 = target if target.dim() == 3 else target.unsqueeze(1)

    def softmax_xent_grad(logits):
        if owner not in state.saved:
            state.saved[owner] = (F.log_softmax(logits, 1),)
        logp = state.saved[owner][0]
        logp4 = logp if logp.dim() == 4 else logp.unsqueeze(2)
        g = aten.nll_loss2d_backward(one, logp4, target4, None, 1, -100, total)
        return aten._log_softmax_backward_data(g.reshape(logp.shape), logp, 1, logp.dtype)
    return softmax_xent_grad


def _xent_kernel(op, state):
    """log_softmax + nll_loss (the log-probabilities saved) / nll_loss_backward and
    log_softmax's backward, against random targets."""
    if op.attrs.get("class_dim", -1) == 1:
        return _pixel_kernel(op, state)
    owner, dev = op.forward or op.name, state.dev
    n, classes = loss_rows(op.in_specs[-1].shape), op.in_specs[-1].shape[-1]
    target = torch.randint(0, classes, (n,), generator=state.gen).to(dev)
    if op.kind == "softmax_xent":
        def softmax_xent(logits):
            logp = F.log_softmax(as_rows(logits), 1)     # what autograd saves for the gradient
            state.saved[owner] = (logp,)
            return F.nll_loss(logp, target)
        return softmax_xent
    one = torch.ones((), device=dev)
    total = torch.tensor(float(n), device=dev)

    def softmax_xent_grad(logits):
        if owner not in state.saved:
            state.saved[owner] = (F.log_softmax(as_rows(logits), 1),)
        logp = state.saved[owner][0]
        g = aten.nll_loss_backward(one, logp, target, None, 1, -100, total)
        return aten._log_softmax_backward_data(g, logp, 1, logp.dtype)
    return softmax_xent_grad


def _xent_module(op, m, i):
    if op.attrs.get("class_dim", -1) == 1:
        return lambda ins: F.cross_entropy(ins[0], getattr(m, f"pixel_targets{i}"))
    return lambda ins: F.cross_entropy(as_rows(ins[0]), getattr(m, f"row_targets{i}"))


def _update_kernel(op, state):
    """torch.optim's update of one layer's parameters, tensor by tensor, with the passes over
    each tensor the op's optimizer makes: SGD (with momentum, no nesterov, no weight decay),
    Adam or AdamW (the bias correction left out of the step size: the kernel is run to be
    timed)."""
    owner = op.forward or op.name
    params = state.params_of(op)
    name = op.attrs.get("optimizer", DEFAULT_OPTIMIZER)
    bufs = state.optimizer_state.setdefault(
        owner, [[torch.zeros_like(p) for _ in range(OPTIMIZER_STEPS[name].state_tensors)]
                for p in params])
    (beta1, beta2) = ADAM_BETAS

    def sgd_update(*_grads):   # the layer's gradient (and those of shared calls)
        grads = state.grads.get(owner) or [torch.ones_like(p) for p in params]
        for p, g, buf in zip(params, grads, bufs, strict=True):
            g = g.reshape(p.shape)
            if name == "sgd":
                p.add_(g, alpha=-LR)
            elif name == "sgd-momentum":
                buf[0].mul_(MOMENTUM).add_(g)
                p.add_(buf[0], alpha=-LR)
            else:
                if name == "adamw":
                    p.mul_(1 - LR * ADAMW_WEIGHT_DECAY)
                buf[0].mul_(beta1).add_(g, alpha=1 - beta1)
                buf[1].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                p.addcdiv_(buf[0], buf[1].sqrt().add_(ADAM_EPS), value=-LR)
    return sgd_update


register(
    # the loss reduces its logits to a scalar: its work scales with the input
    OpKind("softmax_xent", "loss", flops=per_input_element(5.0), saves=("in",),
           torch_kernel=_xent_kernel, torch_module=_xent_module,
           torch_buffers=lambda op, dev: [("pixel_targets", _pixel_targets(op, dev))]
           if op.attrs.get("class_dim", -1) == 1 else [("row_targets", _row_targets(op, dev))],
           doc="softmax cross-entropy of (batch, ..., classes) logits (classes), or of "
               "(batch, classes, H, W) ones per pixel (class_dim 1)"),
    OpKind("softmax_xent_grad", "loss", "backward", flops=per_element(2.0),
           torch_kernel=_xent_kernel),
    # the optimizer steps tensor by tensor: a profile keys it on (tensors, values)
    OpKind("sgd_update", "update", "update",
           flops=lambda op: optimizer_step(op).flops_per_param * op.params,
           bytes_read=lambda op: optimizer_step(op).tensors_read * op.param_bytes,
           bytes_written=lambda op: optimizer_step(op).tensors_written * op.param_bytes,
           layout=lambda op: (int(op.attrs.get("tensors", 1)), max(int(op.params), 1)),
           torch_kernel=_update_kernel,
           doc="the optimizer's step over one layer's parameters (attrs optimizer: sgd, "
               "sgd-momentum, adam, adamw)"),
)
