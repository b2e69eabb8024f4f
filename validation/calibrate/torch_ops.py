"""One op of an OpGraph (forward, backward or update) as the PyTorch kernel a training step runs.

`op_kernel(op, state)` returns `fn(*inputs) -> output`: the ATen call autograd makes for that op,
fed the op's input tensors in the IR's order. `state` (a KernelState) holds what a real step
keeps between ops: the parameters, what a forward op saves for its backward (max-pool indices,
batch-norm mean and inverse std, log-softmax), the weight gradients the update reads, and
the optimizer's state (momentum, Adam's moments). `validation.calibrate.replay` runs whole
training graphs through these kernels; `op_callable(op)` runs one op alone on random tensors
of its shapes.

Each kind declares its kernel in its record (workloads/kinds/, `OpKind.torch_kernel`): the
convolution and linear gradients as convolution_backward / dy @ W / dy^T @ x, the norms as
native_*_norm and their backward, max-pool with its indices, the loss as log_softmax +
nll_loss, the update as torch.optim's per-tensor step of the graph's optimizer.
"""
from __future__ import annotations

from typing import Callable

import torch

from workloads.graph import Op, WorkloadError

from .torch_exec import initial_params, param_shapes, resolve_device

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
        # forward op -> each parameter's optimizer state (momentum; Adam's two moments)
        self.optimizer_state: dict[str, list[list[torch.Tensor]]] = {}
        self._placeholders: dict[tuple, torch.Tensor] = {}

    def rand(self, shape) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.gen).to(self.dev)

    def params_of(self, op: Op) -> list[torch.Tensor]:
        """Parameters of the forward op that `op` (forward, gradient or update) belongs to
        (those of the op holding them, for a later call of shared weights)."""
        owner = op.forward or op.name
        if self.graph is not None:
            owner = self.graph.meta.get("shared_params", {}).get(owner, owner)
        if owner not in self.params:
            fwd = self.graph.op(owner) if self.graph is not None and owner in self.graph else op
            self.params[owner] = (
                [self.rand(s) for s in _forward_param_shapes(fwd)] if fwd.kind == "sgd_update"
                else initial_params(_forward_of(fwd), self.gen, self.dev))
        return self.params[owner]

    def tensor_for(self, spec, op: Op) -> torch.Tensor:
        """A random input of `spec` for op: values, or ids below the table op reads (token
        ids for an embedding)."""
        if not spec.integer:
            return self.rand(spec.shape)
        high = op.attrs.get("num_embeddings") or op.attrs.get("tokens", 1)
        return torch.randint(0, high, tuple(spec.shape), generator=self.gen).to(self.dev)

    def input_of(self, op: Op) -> torch.Tensor:
        """The network's input as a replayed step reads it: made once."""
        if not op.out.integer:
            return self.placeholder(op.out.shape)
        key = ("ids", op.name)
        if key not in self._placeholders:
            self._placeholders[key] = self.tensor_for(op.out, op)
        return self._placeholders[key]

    def placeholder(self, shape) -> torch.Tensor:
        """A tensor of a shape, made once: operands only read for their shape, and gradient
        slices the IR routes for free (a concat's or a channel pad's gradient)."""
        key = tuple(shape)
        if key not in self._placeholders:
            self._placeholders[key] = self.rand(key)
        return self._placeholders[key]


def op_kernel(op: Op, state: KernelState) -> Kernel | None:
    """`fn(*inputs)` running `op` (inputs in the op's order); None for views (no kernel). The
    kernel is the one the op's kind declares (workloads/kinds/: OpKind.torch_kernel)."""
    if op.is_view:
        return None
    make = op.kind_record.torch_kernel
    if make is None:
        raise WorkloadError(f"op {op.name!r}: torch_ops cannot run kind {op.kind!r}")
    return make(op, state)


def op_callable(op: Op, device="cpu", seed: int = 0, graph=None) -> Callable[[], object] | None:
    """A zero-argument callable running `op` alone on random tensors of its input shapes;
    None for views. An sgd_update needs its `graph` to know the tensors it steps (else one
    flat tensor of op.params)."""
    state = KernelState(device, seed, graph)
    kernel = op_kernel(op, state)
    if kernel is None:
        return None
    ins = [state.tensor_for(s, op) for s in op.in_specs]
    if op.kind == "sgd_update":   # gradients of the parameters' own shapes
        state.grads[op.forward or op.name] = [state.rand(p.shape) for p in state.params_of(op)]
    kernel(*ins)                  # builds what the op reads from its forward (untimed)
    return lambda: kernel(*ins)


def _forward_param_shapes(op: Op) -> list[tuple[int, ...]]:
    """Parameter shapes of the forward op that `op` (forward or gradient) belongs to; an update
    whose forward op is unknown steps one flat tensor."""
    if op.kind == "sgd_update":
        return [(op.params,)]
    return param_shapes(_forward_of(op))


def _forward_of(op: Op) -> Op:
    """The forward op a gradient op stands for (its kind without `_grad...`, its attributes)."""
    return Op(op.name, op.kind.split("_grad")[0], (), (), op.out, op.attrs, params=0)
