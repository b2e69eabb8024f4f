"""Subnormal floats: what they cost this CPU, and which ops of a step read them.

A float32 below 2**-126 in magnitude (subnormal) takes a microcode assist on Intel cores
unless the thread flushes them (FTZ/DAZ, `torch.set_flush_denormal(True)`): a product or an
elementwise op reading many runs tens to hundreds of times slower than on normal floats,
while AMD's Zen cores pay little. The values decide it, not the shapes: a softmax over a
large vocabulary that has collapsed to one class (logits tens of units apart) leaves most of
the loss gradient subnormal, and the output layer's two gradient products then dominate the
step. The device model costs normal floats; these tools say when a measured step is not that.

- `subnormal_slowdown()`: calibration's probe, how many times slower a matrix product runs
  with one operand all subnormal than with normal values, on this machine and thread count
  (profile [meta] subnormal_slowdown).
- `subnormal_reads(step)`: run one step and list the ATen ops whose floating-point inputs
  held subnormal values, with how many;
- `flush_speedup(step)`: how much faster the step runs with subnormals flushed to zero, which
  is what they cost it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

# the probe's product: 64 MFLOP, about a millisecond on one core on normal floats
PROBE_M, PROBE_K, PROBE_N = 128, 512, 512
PROBE_ROUNDS = 5
# subnormal values of the probe's operand: 2**-130 and up, in float32's subnormal range
PROBE_SUBNORMAL_SCALE = 2.0 ** -130
# steps each way that flush_speedup times; a step whose subnormals speed up less than
# WARN_SPEEDUP when flushed is not warned about (SqueezeNet's 2-4% subnormal gradients: 1.01)
FLUSH_REPS = 2
WARN_SPEEDUP = 1.1
# in-place ATen ops that overwrite their tensor without reading its values
OVERWRITTEN_UNREAD = frozenset({
    "bernoulli_", "uniform_", "normal_", "random_", "exponential_", "geometric_", "cauchy_",
    "log_normal_", "fill_", "zero_", "copy_", "set_", "resize_"})
# an op reading fewer subnormal values than this fraction of its inputs is not reported: a
# few stray ones cost nothing measurable (0.02% of GPT-2's loss gradient did not slow its
# products; 9% made them 150x slower)
REPORT_FRACTION = 0.01


@dataclass(frozen=True)
class SubnormalRead:
    """An ATen op of a step that read subnormal floats: how many, of how many values."""
    op: str
    subnormal: int
    values: int
    calls: int

    @property
    def fraction(self) -> float:
        return self.subnormal / self.values


def subnormal_slowdown(rounds: int = PROBE_ROUNDS) -> float:
    """Time of a float32 product on subnormal values over its time on normal ones (fastest
    of `rounds` each, interleaved), at the current torch thread count: ~1 where the CPU
    handles them at full speed or the thread flushes them."""
    import torch
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(PROBE_M, PROBE_K, generator=gen) + 0.5          # in [0.5, 1.5): normal
    b = torch.randn(PROBE_K, PROBE_N, generator=gen)
    small = a * PROBE_SUBNORMAL_SCALE
    if not bool((small.abs() < torch.finfo(torch.float32).tiny).all()):
        raise AssertionError("the probe's operand must be subnormal")
    normal_s: list[float] = []
    subnormal_s: list[float] = []
    for operand in (a, small):          # warm the kernel and the memory
        torch.mm(operand, b)
    for _ in range(rounds):
        for operand, times in ((a, normal_s), (small, subnormal_s)):
            t0 = time.perf_counter()
            torch.mm(operand, b)
            times.append(time.perf_counter() - t0)
    return min(subnormal_s) / min(normal_s)


def subnormal_reads(step: Callable[[], object]) -> list[SubnormalRead]:
    """Run `step` once and return the ATen ops (forward and backward) whose floating-point
    inputs held at least REPORT_FRACTION subnormal values, the most subnormal values first.
    Slower than the step (every input is scanned): for a check, never inside a timing."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: dict[str, list[int]] = {}

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            subnormal = values = 0
            for t in _read_tensors(func, args, kwargs or {}):
                tiny = torch.finfo(t.dtype).tiny
                subnormal += int(torch.count_nonzero((t != 0) & (t.abs() < tiny)))
                values += t.numel()
            if subnormal:
                entry = counts.setdefault(str(func), [0, 0, 0])
                entry[0] += subnormal
                entry[1] += values
                entry[2] += 1
            return func(*args, **(kwargs or {}))

    with Count():
        step()
    reads = [SubnormalRead(op, s, n, c) for op, (s, n, c) in counts.items()
             if s >= REPORT_FRACTION * n]
    return sorted(reads, key=lambda r: (-r.subnormal, r.op))


def _read_tensors(func, args, kwargs):
    """The strided floating-point tensors an ATen call reads: not a view's input, an `out=`
    buffer, nor the tensor an in-place fill overwrites without reading (dropout's bernoulli_
    on fresh, unset memory)."""
    import torch
    fills = func.overloadpacket.__name__ in OVERWRITTEN_UNREAD
    for i, arg in enumerate(func._schema.arguments):
        value = args[i] if i < len(args) else kwargs.get(arg.name)
        if arg.alias_info is not None and not arg.alias_info.is_write:
            continue            # a view's input: its values are not read
        if arg.alias_info is not None and (arg.kwarg_only or fills):
            continue
        for t in torch.utils._pytree.tree_leaves(value):
            if (isinstance(t, torch.Tensor) and t.layout == torch.strided
                    and t.is_floating_point() and t.numel()):
                yield t


def flush_speedup(step: Callable[[], object], reps: int = FLUSH_REPS) -> float:
    """How many times faster `step` runs with subnormals flushed to zero: the fewest CPU
    seconds of `reps` steps each way, interleaved (CPU time: other processes' load does not
    count). 1.0 where the CPU cannot flush them."""
    import torch
    if not torch.set_flush_denormal(False):
        return 1.0
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        for _ in range(reps):
            for flushed, spent in times.items():
                torch.set_flush_denormal(flushed)
                t0 = time.process_time()
                step()
                spent.append(time.process_time() - t0)
    finally:
        torch.set_flush_denormal(False)
    return min(times[False]) / max(min(times[True]), 1e-9)


def describe(case: str, reads: list[SubnormalRead], speedup: float,
             slowdown: float | None) -> str:
    """One warning line for a measured step whose ops read subnormal floats and ran
    `speedup` times faster with them flushed."""
    top = ", ".join(f"{r.op} {r.fraction:.0%} of {r.values:,} values" for r in reads[:3])
    probe = (f"; a product on subnormal floats ran {slowdown:.0f}x slower than on normal ones "
             f"at calibration (profile subnormal_slowdown)" if slowdown is not None else "")
    return (f"{case}: the step's ops read subnormal floats ({top}), and the step ran "
            f"{speedup:.1f}x faster with them flushed to zero{probe}; the simulated time costs "
            f"normal floats")
