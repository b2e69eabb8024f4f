"""Time every op of a training step where it really runs: inside the step.

An op timed alone, on operands left in cache by its own previous repetition, is 5-20% faster
than the same op inside a training step, where it finds its operands written long ago (saved
activations), its output in memory just freed by another op, and its weights updated since the
last step. Summing such times underpredicts steps by 10% on ResNets (measured on a 2-vCPU
EPYC). Replaying the whole training graph instead (each op's ATen kernel, fed the
tensors its producers made, tensors freed after their last reader, as autograd frees them)
gives each op its in-step time, and the replay's total is the step minus the framework's own
per-op overhead (autograd, the Python module), which calibration measures separately.

    rounds = replay_times(lower_training(zoo.get("resnet20", batch=32)), "cpu", rounds=3)
    rounds[0]["layer1.0.conv1"]          # seconds, in the first timed round

The replay flushes subnormal floats to zero (FTZ/DAZ) while it runs: its values are synthetic
(random parameters, stepped by the replay's own updates), and where an update collapses a
loss over many classes to one, most of the next loss gradient is subnormal, which an Intel
core computes 100x slower (GPT-2's output-layer products: 0.06 s flushed, 12 s not). The
model costs ops on normal floats (subnormals.py), so calibration measures that.
"""
from __future__ import annotations

import time

from workloads.graph import OpGraph

from .torch_ops import KernelState, op_kernel


def replay_times(train: OpGraph, device="cpu", rounds: int = 3, warmup: int = 1,
                 seed: int = 0) -> list[dict[str, float]]:
    """Per-op wall times (op name -> seconds) of `rounds` replays of a training graph, after
    `warmup` untimed ones. Views take no time and are left out."""
    import torch

    from .torch_exec import free_after, steady_allocator
    steady_allocator()
    state = KernelState(device, seed, graph=train)
    order = train.topo()
    kernels = {op.name: op_kernel(op, state) for op in order}
    freed = free_after(order)
    sync = torch.cuda.synchronize if state.dev.type == "cuda" else (lambda: None)
    out: list[dict[str, float]] = []
    flushing = torch.set_flush_denormal(True)     # False where the CPU cannot
    try:
        _replay_rounds(order, kernels, freed, state, sync, warmup, rounds, out)
    finally:
        if flushing:
            torch.set_flush_denormal(False)
    return out


def _replay_rounds(order, kernels, freed, state, sync, warmup: int, rounds: int,
                   out: list[dict[str, float]]) -> None:
    clock = time.perf_counter
    for r in range(warmup + rounds):
        env: dict[str, object] = {}
        times: dict[str, float] = {}
        for i, op in enumerate(order):
            ins = [_as_shape(env[t], spec.shape, state)
                   for t, spec in zip(op.inputs, op.in_specs, strict=True)]
            kernel = kernels[op.name]
            if kernel is None:          # a view: reinterpret the input, no kernel
                env[op.name] = _view(op, ins, state)
            else:
                sync()
                t0 = clock()
                env[op.name] = kernel(*ins)
                sync()
                times[op.name] = clock() - t0
            for t in freed[i]:
                del env[t]
        if r >= warmup:
            out.append(times)


def _view(op, ins, state):
    """A view op as PyTorch makes it: the same storage with the view's strides (a permuted
    view stays strided, so the copy that makes it contiguous, or a kernel that reads it as
    it is, does the reads a step does)."""
    if op.kind == "input":
        return state.input_of(op)
    if op.kind == "slice":
        a = op.attrs
        return ins[0].narrow(a["dim"], a["start"], a["stop"] - a["start"])
    if op.kind == "permute":
        return ins[0].permute(op.attrs["dims"])
    # flatten, reshape, dropout (free by design): a view where the strides allow, as
    # PyTorch's reshape (the IR puts a `contiguous` copy where they do not)
    return ins[0].reshape(op.out.shape)


def _as_shape(t, shape, state):
    """A tensor as the reading op's spec has it: reshaped when only the view differs (a
    flattened gradient), else a placeholder (a gradient slice the IR routes for free)."""
    if t is None or tuple(t.shape) == tuple(shape):
        return t
    if t.numel() == _numel(shape):
        return t.reshape(shape)
    return state.placeholder(shape)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
