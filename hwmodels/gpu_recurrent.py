"""A recurrent layer's pass on a GPU as cuDNN's RNN call runs it (the kinds of
workloads/kinds/recurrent.py, GEMM role "recurrent"): step after step, its small products
through the library's GEMM tiles (gpu_gemm.gemm_cost, by way of gpu_products' units), then
one fused pointwise kernel, each waiting for the one before.

Why step by step: at a batch of 64 an LSTM step's product is 64 rows by 4H columns, a few
tiles; it leaves most SMs idle whatever the layer's FLOPs, and every step pays the gap
between kernels. Both directions of a bidirectional layer are independent and run side by
side (cuDNN puts them on two streams): a batch of 2 in each step's GEMM.

The weights are read from DRAM at every step unless they fit in the L2 with the step's
operands, in which case once for the whole pass. What is not modelled: cuDNN's persistent
kernels (CUDNN_RNN_ALGO_PERSIST_*, which PyTorch picks only for some half-precision,
single-layer, unidirectional shapes) that keep W_hh in registers across steps, and the overlap
cuDNN finds between a layer's step t and the next layer's step t-1 (layers are ops of the
graph, run one after another).
"""
from __future__ import annotations

from typing import Callable

from workloads.graph import Op
from workloads.kinds import SerialSchedule

from . import gpu_gemm


def recurrent_option(op: Op, schedule: SerialSchedule, l2_bytes: int | None,
                     gemm: Callable[..., gpu_gemm.GemmCost], option_type,
                     framework_bytes: float = 0.0):
    """One KernelOption (option_type) for the whole pass: its steps' products as arithmetic
    and traffic (the max of the two per step is the max of the sums: every step has the same
    shape), the pointwise kernels as serial traffic, a GEMM and a pointwise kernel per step
    launched from one framework call. gemm(m, n, k, batch) -> GemmCost; framework_bytes: what
    the framework moves besides (autocast's cast of the weights to half)."""
    elem = op.out.dtype_bytes
    steps = schedule.steps
    costs = [gemm(m, n, k, b) for m, n, k, b in schedule.gemms]
    weights = sum(n * k * b for _, n, k, b in schedule.gemms) * elem
    step_operands = sum((m * k + m * n) * b for m, n, k, b in schedule.gemms) * elem
    weight_reads = 1 if l2_bytes and weights + step_operands <= l2_bytes else steps
    traffic = (framework_bytes + weights * weight_reads
               + steps * (step_operands + sum(c.extra_bytes for c in costs)))
    kernels = steps * (len(schedule.gemms) + (1 if schedule.pointwise_bytes else 0))
    return option_type("gemm", steps * sum(c.compute_s for c in costs), float(traffic),
                       "recurrent", kernels=kernels, framework_ops=1,
                       serial_bytes=steps * schedule.pointwise_bytes,
                       lone=all(c.rounds == 1 for c in costs), cublas=True)


def issued_in_one_call(op: Op, options: list) -> list:
    """A module's cuDNN RNN is one PyTorch call each way: the framework's host time is paid
    by the op that makes it (attrs["in_cudnn_rnn"]: "first", the first layer's input
    projection, in the forward; "last", the last layer's recurrence, whose gradient is the
    first op of the backward); every other op of the module ("inside") is launched by cuDNN
    within that call, a bare launch per kernel (launch_queue.issue_s)."""
    place = op.attrs.get("in_cudnn_rnn")
    if not place:
        return options
    if op.phase == "forward":
        issues = place == "first"
    else:
        issues = place == "last" and op.kind == "recurrence_grad_input"
    return options if issues else [o._replace(framework_ops=0) for o in options]
