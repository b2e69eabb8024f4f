"""The published rows as the GPU fit sees them: every op of every row broken into the terms of
its time (hwmodels/gpu.py: min over its algorithms of max(arithmetic_s / efficiency, bytes /
bandwidth), plus kernel overheads; the framework's host issuing the kernels ahead of the GPU,
GPUModel.stream_times_s), so that published_fit scores a candidate set of constants with a few
array operations.
"""
from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from typing import Iterable

import numpy as np

from hwmodels.gpu import GpuFamily
from hwmodels.gpu_l2 import L2Reuse
from hwmodels.gpu_memory import kernel_launch_s
from hwmodels.launch_queue import PHASE_SYNC_FRAMEWORKS, issue_s

from . import published_gpu as pg
from . import published_kernels as pk

# the CUDA and the cuDNN a row's libraries ran in (hwmodels/gpu_gemm.py cublas_release,
# hwmodels/cudnn_releases.py cudnn_release), where it names them
Version = tuple[int, int, int] | None
# a framework's host time per op where every fit starts
START_HOST_S = 2e-5
# a framework's streaming kernels, and an architecture's library kernels (START.memory), start
# at the part's mem_efficiency: the share a STREAM-like copy reaches
START_STREAM = 1.0

# the phases of a step that a harness timing forward and backward apart publishes
# (pg.NetworkRow.phase_s)
PHASES = ("forward", "backward")
KEYS = ("stream", "gemm", "conv_fwd", "conv_dgrad", "conv_wgrad", "winograd", "winograd_fused",
         "fft")


@dataclasses.dataclass
class Terms:
    """Every option of every op of a set of rows, flattened: row index, key index, tensor-core
    flag, arithmetic seconds at efficiency 1, memory seconds; and each row's measured time."""
    row_of_option: np.ndarray
    op_of_option: np.ndarray
    key: np.ndarray
    tensor: np.ndarray
    unit_s: np.ndarray
    memory_s: np.ndarray
    serial_memory_s: np.ndarray         # memory seconds of kernels run before or after it
    kernels: np.ndarray                 # kernels each option launches
    framework_ops: np.ndarray           # framework ops they are issued as (KernelOption)
    serial_s: np.ndarray                # fixed seconds after it (KernelOption.serial_s)
    ops_per_row: np.ndarray
    measured_s: np.ndarray
    labels: list[str]
    frameworks: list[str | None]        # per row; None for a kernel timed alone
    # each row's share of the loss (network_terms shares a published row's among its phases)
    weights: np.ndarray = dataclasses.field(default_factory=lambda: np.ones(0))
    # steps scored as the sum of their phase rows (network_terms): each row's step index (-1
    # for none), and each step's measured seconds and share of the loss
    step_of_row: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=int))
    step_measured_s: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    step_weights: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    # each op's stretch: ops a framework issues between two waits for the GPU (a row's, or
    # each phase's in launch_queue.PHASE_SYNC_FRAMEWORKS), numbered in order over all rows;
    # None: one stretch per row
    stretch_of_op: np.ndarray | None = None
    # each option's lone flag (KernelOption.lone: its CTAs each alone on an SM)
    lone: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=bool))
    # ... and its TN flags (KernelOption.strided, slow_tn)
    strided: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=bool))
    slow_tn: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=bool))
    # ... and whether it is cuBLAS's (KernelOption.cublas: its traffic at gemm_memory)
    cublas: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=bool))
    host_s: np.ndarray = dataclasses.field(default=None)  # type: ignore[arg-type]
    launch_s: np.ndarray = dataclasses.field(default=None)  # type: ignore[arg-type]
    stream_share: np.ndarray = dataclasses.field(default=None)  # type: ignore[arg-type]

    def set_frameworks(self, hosts: dict[str, float], streams: dict[str, float]) -> None:
        """Each row's host time per op and streaming share, from its framework's (0 and 1
        for kernels timed alone)."""
        self.host_s = np.array([0.0 if f is None else hosts[f] for f in self.frameworks])
        self.launch_s = np.array([0.0 if f is None else kernel_launch_s()
                                  for f in self.frameworks])
        self.stream_share = np.array([1.0 if f is None else streams[f]
                                      for f in self.frameworks])

    def log_errors(self, fam: GpuFamily) -> np.ndarray:
        """|log(predicted / measured)| of each row, then of each step, times its weight."""
        predicted = self.predict_s(fam)
        errors = self.weights * np.abs(np.log(predicted / self.measured_s))
        if not len(self.step_measured_s):
            return errors
        in_step = self.step_of_row >= 0
        steps_s = np.bincount(self.step_of_row[in_step], weights=predicted[in_step],
                              minlength=len(self.step_measured_s))
        return np.concatenate([errors, self.step_weights
                               * np.abs(np.log(steps_s / self.step_measured_s))])

    @property
    def total_weight(self) -> float:
        return float(np.sum(self.weights) + np.sum(self.step_weights))

    def predict_s(self, fam: GpuFamily) -> np.ndarray:
        eff = np.array([1.0] + [getattr(fam, k) for k in KEYS[1:]])[self.key]
        eff = (eff * np.where(self.tensor, fam.tensor_core, 1.0)
               * np.where(self.lone, fam.lone_cta, 1.0) * np.where(self.slow_tn, fam.tn_gemm, 1.0))
        # streaming kernels are the framework's; GEMMs' and convolutions' traffic the library's
        share = np.where(self._is_stream, self.stream_share[self.row_of_option],
                         np.where(self.cublas, fam.gemm_memory, fam.memory)
                         * np.where(self.strided, fam.strided_memory, 1.0))
        option_s = (np.maximum(self.unit_s / eff, self.memory_s / share)
                    + self.serial_memory_s / fam.memory + self.serial_s
                    + self.kernels * fam.kernel_overhead_s)
        n_ops = int(self.op_of_option.max()) + 1 if len(self.op_of_option) else 0
        op_s = np.full(n_ops, np.inf)
        np.minimum.at(op_s, self.op_of_option, option_s)
        # the framework issues the kernels of the fastest option
        chosen = option_s == op_s[self.op_of_option]
        row = self.row_of_option[chosen]
        option_host_s = issue_s(self.kernels[chosen], self.framework_ops[chosen],
                                self.host_s[row], self.launch_s[row])
        host_s = np.zeros(n_ops)
        np.maximum.at(host_s, self.op_of_option[chosen], option_host_s)
        stretch_s = queued_stretch_s(op_s, host_s, self._stretches)
        return np.bincount(self._row_of_stretch, weights=stretch_s,
                           minlength=len(self.measured_s))

    # predict_s runs thousands of times per fit on the same arrays: what depends on them alone
    # is worked out once
    @functools.cached_property
    def _row_of_op(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.ops_per_row)), self.ops_per_row)

    @functools.cached_property
    def _stretches(self) -> np.ndarray:
        return self._row_of_op if self.stretch_of_op is None else self.stretch_of_op

    @functools.cached_property
    def _row_of_stretch(self) -> np.ndarray:
        """The row of each stretch, in queued_stretch_s' order (the runs of _stretches)."""
        stretches = self._stretches
        if not len(stretches):
            return np.zeros(0, dtype=int)
        return self._row_of_op[np.flatnonzero(np.r_[True, stretches[1:] != stretches[:-1]])]

    @functools.cached_property
    def _is_stream(self) -> np.ndarray:
        return self.key == 0


def queued_stretch_s(gpu_s: np.ndarray, host_s: np.ndarray, stretch: np.ndarray) -> np.ndarray:
    """Seconds of each stretch of ops (`stretch`: each op's, non-decreasing from 0) that a host
    issues ahead of the GPU (GPUModel.stream_times_s): the GPU ends op n at
    max over k <= n of (host time of ops 1..k + GPU time of ops k..n), the host having issued
    op k when the GPU last waited for it."""
    if not len(gpu_s):
        return np.zeros(0)
    starts = np.flatnonzero(np.r_[True, stretch[1:] != stretch[:-1]])
    lengths = np.diff(np.r_[starts, len(stretch)])
    host_cum, gpu_cum = np.cumsum(host_s), np.cumsum(gpu_s)
    host_before = np.repeat(host_cum[starts] - host_s[starts], lengths)
    gpu_to_end = np.repeat(gpu_cum[starts + lengths - 1], lengths) - gpu_cum + gpu_s
    return np.maximum.reduceat(host_cum - host_before + gpu_to_end, starts)


Item = tuple[str, str, list, float, str | None, Version, Version, float]


def _terms(items: Iterable[Item], algorithms: Iterable[str | None] | None = None) -> Terms:
    """items: (label, gpu, ops, measured seconds, framework or None, the CUDA and the cuDNN
    its libraries ran in or None, weight) per row; algorithms, per
    row, the one the library is known to have run (only its options are kept) or None."""
    ran = iter(algorithms) if algorithms is not None else None
    cols: dict[str, list] = defaultdict(list)
    ops_per_row, measured, labels, frameworks, weights = [], [], [], [], []
    stretch_of_op: list[int] = []
    op_index = 0
    reuse, published_row = L2Reuse(None), None
    for row_index, (label, gpu, ops, measured_s, framework, cuda, cudnn,
                    weight) in enumerate(items):
        model = pg.gpu_model(gpu, framework=framework, cuda=cuda, cudnn=cudnn)
        bandwidth = model.mem_bandwidth_Bps * model.mem_efficiency
        counted = 0
        algorithm = next(ran) if ran is not None else None
        stretch, phase = (stretch_of_op[-1] + 1 if stretch_of_op else 0), None
        if label.split(":")[0] != published_row:   # a row's phases run on one stream
            reuse, published_row = L2Reuse(model.spec.l2_bytes), label.split(":")[0]
        for op in ops:
            hit_bytes = reuse.hit_bytes(op, model.passes_through(op))
            if model.passes_through(op):
                continue
            if phase is not None and op.phase != phase and framework in PHASE_SYNC_FRAMEWORKS:
                stretch += 1
            phase = op.phase
            stretch_of_op.append(stretch)
            tensor = model.tensor_cores(op)
            options = model.kernel_options(op)
            known = [o for o in options if o.algorithm == algorithm]
            for option in known or options:
                cols["row"].append(row_index)
                cols["op"].append(op_index)
                cols["key"].append(KEYS.index(option.key))
                cols["tensor"].append(tensor)
                cols["unit"].append(option.unit_s)
                cols["mem"].append(max(0.0, option.traffic_bytes - hit_bytes) / bandwidth)
                cols["serial"].append(option.serial_bytes / bandwidth)
                cols["kernels"].append(option.kernels)
                cols["framework_ops"].append(option.framework_ops)
                cols["serial_s"].append(option.serial_s)
                cols["lone"].append(option.lone)
                cols["strided"].append(option.strided)
                cols["slow_tn"].append(option.slow_tn)
                cols["cublas"].append(option.cublas)
            op_index += 1
            counted += 1
        ops_per_row.append(counted)
        measured.append(measured_s)
        labels.append(label)
        frameworks.append(framework)
        weights.append(weight)
    terms = Terms(np.array(cols["row"], dtype=int), np.array(cols["op"], dtype=int),
                  np.array(cols["key"], dtype=int), np.array(cols["tensor"], dtype=bool),
                  np.array(cols["unit"]), np.array(cols["mem"]), np.array(cols["serial"]),
                  np.array(cols["kernels"], dtype=float),
                  np.array(cols["framework_ops"], dtype=float), np.array(cols["serial_s"]),
                  np.array(ops_per_row), np.array(measured), labels, frameworks,
                  np.array(weights), stretch_of_op=np.array(stretch_of_op, dtype=int),
                  lone=np.array(cols["lone"], dtype=bool),
                  strided=np.array(cols["strided"], dtype=bool),
                  slow_tn=np.array(cols["slow_tn"], dtype=bool),
                  cublas=np.array(cols["cublas"], dtype=bool))
    terms.set_frameworks(defaultdict(lambda: START_HOST_S), defaultdict(lambda: START_STREAM))
    return terms


def kernel_terms(rows: list[pk.KernelRow]) -> Terms:
    """A kernel row whose table names the algorithm cuDNN ran is fitted on that algorithm's
    time alone: each algorithm's efficiency is then learnt from the rows that ran it, whatever
    the model would have chosen."""
    return _terms(((r.row_id, r.gpu, [r.op], r.time_s, None, r.cuda, r.cudnn, 1.0)
                   for r in rows), (r.algorithm for r in rows))


def network_terms(rows: list[pg.NetworkRow]) -> Terms:
    """Each row's whole step against its published time. A row that also publishes its
    forward and backward times (pg.NetworkRow.phase_s) is fitted on each phase's ops against
    that phase's time too, its weight shared out (STEP_WEIGHT to the step, the rest to the
    phases alike), so every published row weighs the same. Totals alone let an architecture
    trade its forward efficiency against its backward: the K80, with no kernel rows, fitted on
    totals ran its forward convolutions at a third of its backward's efficiency, and its
    forward passes came out 58% slow."""
    items: list[Item] = []
    step_of_row: list[int] = []
    steps_s: list[float] = []
    for r in rows:
        ops = pg.row_ops(r)
        framework = pg.framework_key(r.framework)
        if r.phase_s is None:
            items.append((r.row_id, r.gpu, ops, r.batch / r.throughput, framework, r.cuda,
                          r.cudnn, 1.0))
            step_of_row.append(-1)
            continue
        for phase, seconds in zip(PHASES, r.phase_s, strict=True):
            items.append((f"{r.row_id}:{phase}", r.gpu, [op for op in ops if op.phase == phase],
                          seconds, framework, r.cuda, r.cudnn, (1 - STEP_WEIGHT) / len(PHASES)))
            step_of_row.append(len(steps_s))
        steps_s.append(r.batch / r.throughput)
    terms = _terms(items)
    terms.step_of_row = np.array(step_of_row, dtype=int)
    terms.step_measured_s = np.array(steps_s)
    terms.step_weights = np.full(len(steps_s), STEP_WEIGHT)
    return terms


# the share of a row's weight its whole step takes where the row publishes its phases too
STEP_WEIGHT = 0.5
