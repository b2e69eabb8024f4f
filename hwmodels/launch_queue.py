"""A framework's host issuing kernels ahead of the GPU, as CUDA runs asynchronous launches.

The host issues an op once it has issued the one before (its host time); the GPU starts it
once it is issued and the op before is done. An op's time on the stream is its GPU time plus
what the GPU waits for the host before it, so the sum of the times is the time to the last
op's end. Frameworks in PHASE_SYNC_FRAMEWORKS wait for the GPU at the end of each phase of a
step, so the next phase starts with an empty queue.

An op's host time is the framework's host time once per framework op it is (the Python call,
the dispatcher, autograd and its first launch), and a bare kernel launch for each further
kernel a library or the framework's C++ launches inside that op (issue_s).
"""
from __future__ import annotations

from typing import Callable, Sequence

from workloads.graph import Op

# Frameworks whose host waits for the GPU at the end of each phase of a step: Torch7's
# criterion returns the loss as a Lua number (a device-to-host copy once the forward is done),
# and its benchmark harnesses call cutorch.synchronize() after the forward and after the
# backward to time them apart. PyTorch, TensorFlow and MXNet keep issuing from the forward
# into the backward and the update (the loss stays a device tensor) and wait once, at the end
# of the step.
PHASE_SYNC_FRAMEWORKS = frozenset({"torch7"})


def issue_s(kernels, framework_ops, host_overhead_s, kernel_launch_s):
    """Host seconds to issue an op of `kernels` kernels that is `framework_ops` framework ops:
    host_overhead_s for each framework op, kernel_launch_s for each kernel beyond those.
    Plain arithmetic, so that it takes numbers or numpy arrays alike."""
    return framework_ops * host_overhead_s + (kernels - framework_ops) * kernel_launch_s


def queued_times_s(ops: Sequence[Op], device_and_host_s: Callable[[Op], tuple[float, float]],
                   framework: str | None, queue: dict | None = None) -> list[float]:
    """Each op's seconds on one stream, issued in this order; device_and_host_s(op) gives its
    (GPU, host) seconds. queue: the state a previous call on this stream left
    ({"host_done_s", "gpu_done_s", "phase"}: when the host had issued its last op and the GPU
    run it, counted from the first call's start, and that op's phase), read and updated, so
    ops issued in several calls queue exactly as in one; None: the host starts with the GPU."""
    out = []
    state = queue if queue is not None else {}
    host_done_s = float(state.get("host_done_s", 0.0))
    gpu_done_s = float(state.get("gpu_done_s", 0.0))
    phase = state.get("phase")
    sync_each_phase = framework in PHASE_SYNC_FRAMEWORKS
    for op in ops:
        if op.phase != phase and sync_each_phase:
            host_done_s = gpu_done_s
        phase = op.phase
        device_s, host_s = device_and_host_s(op)
        host_done_s += host_s
        end_s = max(host_done_s, gpu_done_s) + device_s
        out.append(end_s - gpu_done_s)
        gpu_done_s = end_s
    state.update(host_done_s=host_done_s, gpu_done_s=gpu_done_s, phase=phase)
    return out
