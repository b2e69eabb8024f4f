"""A tensor made of constants in the forward, for a layer to read, and one sample's tensor
repeated over the batch.

- constant_tensor: a tensor the forward computes from constants alone (torch.arange, sin and
  cos, cat: the Fourier positional encoding's grid that XCiT and EdgeNeXt put through a
  convolution). PyTorch computes it each forward; costed as one elementwise kernel writing
  it. It reads no input and gets no gradient (the layer reading it gets its weight gradient
  alone).
- repeat_batch: x of a leading 1 repeated over the batch, x.repeat(N, 1, ...) (XCiT's
  positional encoding, computed once, given to every sample): a copy writing N times x; its
  gradient sums dy over the batch.
"""
from __future__ import annotations

from . import backward_rules
from ._registry import OpKind, per_element, per_input_element, register
from ._torch import torch


def _constant_kernel(op, state):
    """A tensor of the op's shape (its values do not change the time)."""
    dev = state.dev if state is not None else None
    gen = torch.Generator().manual_seed(0)
    value = torch.randn(tuple(op.out.shape), generator=gen).to(dev)
    return lambda: value.clone()


def _repeat_kernel(op, state):
    if op.kind == "repeat_batch_grad":
        return lambda dy: dy.sum(0, keepdim=True)
    repeats = (op.out.shape[0], *(1,) * (len(op.out.shape) - 1))
    return lambda x: x.repeat(*repeats)


register(
    OpKind("constant_tensor", "elementwise", flops=per_element(1.0),
           bytes_read=lambda op: 0, backward=backward_rules.route,   # no input: no gradient
           torch_kernel=_constant_kernel,
           doc="a tensor the forward computes from constants alone (a positional encoding's "
               "grid), read by a layer; no input, no gradient"),
    OpKind("repeat_batch", "data_movement", flops=lambda op: 0.0, torch_kernel=_repeat_kernel,
           doc="x of a leading 1 repeated over the batch: x.repeat(N, 1, ...), a copy"),
    OpKind("repeat_batch_grad", "data_movement", "backward", flops=per_input_element(1.0),
           torch_kernel=_repeat_kernel, doc="dy summed over the batch"),
)
