"""Direct convolution on an AVX-512 CPU, dense and ReLU-sparse (SparseTrain), from instruction costs.

Both kernels keep a block of output (or weight-gradient) accumulators in zmm registers and
stream one operand: for each scalar of it they issue one FMA per accumulator that scalar feeds.

Dense (MKL-DNN's AVX-512 direct convolution, the baseline): per input channel and kernel
column, `ocb` weight vectors are loaded and `ur_w` inputs broadcast, then ocb x ur_w FMAs
(ocb <= 4, ocb x ur_w <= 28 accumulators). The step's cycles come from the instruction table
(hwmodels/x86_loop.py): with these blockings it is bound by the FMA ports.

Sparse (SparseTrain's kernels, a fork of MKL-DNN 0.16): data stay dense; per vector of 16
streamed values

    vcmpps k, zmm, [src]       compare with zero (the load is folded in)
    kmovw, popcnt, test+jz     the mask to a register, its non-zero count, skip an empty vector
    per non-zero:  tzcnt, blsr          the next set bit, and clear it
                   shl/add              its weights' address
                   vbroadcastss zmm     broadcast the value
                   F x vfmadd231ps [w]  one FMA (with its weight vector from memory) per
                                        accumulator it feeds
                   jnz                  the data-dependent loop over the set bits

F = max over ocb of ocb * min(taps, 30 // ocb), ocb <= min(8, channel vectors): the authors'
30 zmm accumulators and at most 8 output-channel blocks, times the kernel taps along the row
the scalar touches (ceil(kernel_w / stride), or kernel_w for backward-by-input). The loop over
the set bits of a vector with uniform random zeros (as the authors' testers draw them) runs
Binomial(16, 1 - s) times; its exit is mispredicted as `loop_exit_mispredictions` says. The
expected cycles per vector are summed over that distribution.

Both kernels share MKL-DNN's layouts, tiling and outer loops, so both are divided by the same
pass efficiency (what MKL-DNN's dense kernel sustains of the FMA peak): the speedup of the
sparse kernel comes from the instruction costs alone. Nothing here is fitted to SparseTrain's
published speedups (DirectConvConstants says where each constant comes from).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from workloads.graph import Op

from .specs import DeviceSpec, HardwareError
from .x86_loop import CoreTable, binomial_pmf, loop_exit_mispredictions, table_for

PASS_OF_KIND = {"conv2d": "forward", "conv2d_grad_input": "grad_input",
                "conv2d_grad_weight": "grad_weight"}

# The sparse kernel's loop bodies (instruction name -> count), see the module docstring.
SPARSE_PER_VECTOR: dict[str, float] = {
    "vcmpps_k_zmm_m512": 1, "kmovw_r32_k": 1, "popcnt_r32": 1, "test_jcc": 1,
    "alu_r64": 1, "jcc": 1}          # the last two: the vector loop's pointer and back-edge


def sparse_per_nonzero(fmas: int) -> dict[str, float]:
    return {"tzcnt_r32": 1, "blsr_r32": 1, "alu_r64": 2, "vbroadcastss_zmm_m32": 1,
            "vfmadd231ps_zmm_m512": fmas, "jcc": 1}


def dense_step(ocb: int, ur_w: int) -> dict[str, float]:
    return {"vmovups_zmm_load": ocb, "vbroadcastss_zmm_m32": ur_w,
            "vfmadd231ps_zmm": ocb * ur_w}


@dataclass(frozen=True)
class DirectConvConstants:
    # Fraction of the FMA peak MKL-DNN/oneDNN's dense direct conv sustains on large layers,
    # applied to both kernels (same layouts and outer loops). Forward 0.80: the usual figure
    # for MKL-DNN's AVX-512 direct conv on Skylake-X. The other passes keep the ratios to
    # forward measured with PyTorch on this project's AVX-512 machine
    # (validation/measured/sparsetrain_cpu_conv_epyc-zen4-2vcpu.csv, single thread, medians of
    # the best runs: grad_input/forward ~1.06, grad_weight/forward ~0.73). Not fitted to
    # SparseTrain's figures; they cancel out of its speedups except against the item overhead.
    dense_efficiency: dict = field(default_factory=lambda: {
        "forward": 0.80, "grad_input": 0.80, "grad_weight": 0.60})
    # The authors' kernels: 30 zmm accumulators, at most 8 output-channel blocks.
    sparse_accumulators: int = 30
    sparse_max_channel_blocks: int = 8
    # MKL-DNN's dense AVX-512 kernel: 28 accumulators, at most 4 output-channel blocks.
    dense_accumulators: int = 28
    dense_max_channel_blocks: int = 4
    # Per work item: OpenMP scheduling, pointer set-up, the first touch of its output block
    # (an estimate, not fitted).
    item_overhead_cycles: float = 2000.0

    def __post_init__(self) -> None:
        for p in PASS_OF_KIND.values():
            e = self.dense_efficiency.get(p)
            if not isinstance(e, (int, float)) or not 0 < e <= 1:
                raise HardwareError(f"direct conv: dense_efficiency[{p!r}] must be in (0, 1], "
                                    f"got {e!r}")
        for name in ("sparse_accumulators", "sparse_max_channel_blocks", "dense_accumulators",
                     "dense_max_channel_blocks"):
            if getattr(self, name) < 1:
                raise HardwareError(f"direct conv: {name} must be >= 1")
        if self.item_overhead_cycles < 0:
            raise HardwareError("direct conv: item_overhead_cycles must be >= 0")


def check_sparsity(value: float, what: str = "sparsity") -> float:
    """A fraction of zeros: a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise HardwareError(f"{what} must be a number in [0, 1], got {value!r}")
    v = float(value)
    if not 0.0 <= v <= 1.0:  # also rejects NaN
        raise HardwareError(f"{what} must be in [0, 1], got {value!r}")
    return v


def _register_block(channel_vectors: int, taps: int, accumulators: int,
                    max_blocks: int) -> int:
    """FMAs one streamed scalar feeds: the best ocb * min(taps, accumulators // ocb)."""
    top = max(1, min(channel_vectors, max_blocks, accumulators))
    return max(k * min(taps, accumulators // k) for k in range(1, top + 1))


@lru_cache(maxsize=65536)
def _sparse_vector_cycles(table: CoreTable, fmas: int, lanes: int, nonzero_q: int) -> float:
    """Expected cycles of one streamed vector, non-zero probability nonzero_q / 1e6."""
    p = nonzero_q / 1e6
    per_trip = table.cycles_over_trip_counts(SPARSE_PER_VECTOR, sparse_per_nonzero(fmas),
                                             loop_exit_mispredictions(p, lanes))
    return sum(pk * c for pk, c in zip(binomial_pmf(lanes, p), per_trip, strict=True))


class CPUDirectConv:
    """Cycle model of one CPU's direct convolutions (dense and sparse), per core."""

    def __init__(self, spec: DeviceSpec, constants: DirectConvConstants | None = None) -> None:
        if spec.kind != "cpu":
            raise HardwareError(f"device {spec.name!r} is a {spec.kind}: the direct-conv model "
                                f"is for x86 CPUs (kind 'cpu')")
        if int(spec.vector_lanes_fp32 or 0) != 16:
            raise HardwareError(f"device {spec.name!r}: the direct-conv model is of the "
                                f"AVX-512 kernels (16 fp32 lanes), got "
                                f"{spec.vector_lanes_fp32} lanes")
        self.spec = spec
        self.c = constants or DirectConvConstants()
        self.table = table_for(spec)
        self.lanes = int(spec.vector_lanes_fp32 or 0)
        self.fma_units = int(spec.fma_units_per_core or 0)
        self.clock_hz = float(spec.clock_hz or 0.0)
        self.cores = int(spec.cores or 0)

    # -- geometry --------------------------------------------------------------------------
    @staticmethod
    def pass_of(op: Op) -> str:
        try:
            return PASS_OF_KIND[op.kind]
        except KeyError:
            raise HardwareError(f"op {op.name!r} of kind {op.kind!r} is not a convolution") \
                from None

    def _vector_channels_and_taps(self, op: Op) -> tuple[int, int]:
        a = op.attrs
        groups = int(a.get("groups", 1))
        kw = int(a["kernel"][1])
        stride_w = int(a["stride"][1])
        if self.pass_of(op) == "grad_input":
            return int(a["in_channels"]) // groups, kw
        return int(a["out_channels"]) // groups, max(1, math.ceil(kw / stride_w))

    def fmas_per_scalar(self, op: Op) -> int:
        """F: accumulators one streamed scalar feeds inside the sparse kernel's block."""
        channels, taps = self._vector_channels_and_taps(op)
        return _register_block(math.ceil(channels / self.lanes), taps,
                               self.c.sparse_accumulators, self.c.sparse_max_channel_blocks)

    def vector_fmas(self, op: Op) -> float:
        """Vector FMA instructions of the op (the vectorised channels padded to full vectors)."""
        channels, _ = self._vector_channels_and_taps(op)
        fill = channels / (self.lanes * math.ceil(channels / self.lanes))
        return op.macs / (self.lanes * fill)

    def dense_cycles_per_fma(self, op: Op) -> float:
        channels, _ = self._vector_channels_and_taps(op)
        ocb = max(1, min(math.ceil(channels / self.lanes), self.c.dense_max_channel_blocks))
        ur_w = max(1, self.c.dense_accumulators // ocb)
        return self.table.cycles(dense_step(ocb, ur_w)) / (ocb * ur_w)

    # -- cycles (all cores' work summed) ---------------------------------------------------
    def dense_cycles(self, op: Op) -> float:
        eff = self.c.dense_efficiency[self.pass_of(op)]
        return self.vector_fmas(op) * self.dense_cycles_per_fma(op) / eff

    def sparse_cycles(self, op: Op, sparsity: float) -> float:
        s = check_sparsity(sparsity, f"sparsity of {op.name!r}")
        fmas = self.fmas_per_scalar(op)
        vectors = self.vector_fmas(op) / fmas / self.lanes
        per_vector = _sparse_vector_cycles(self.table, fmas, self.lanes,
                                           round((1.0 - s) * 1e6))
        return vectors * per_vector / self.c.dense_efficiency[self.pass_of(op)]
    def dense_time_s(self, op: Op) -> float:
        """Whole-CPU time of the dense conv, all cores busy, one work item per core."""
        return (self.dense_cycles(op) / self.cores + self.c.item_overhead_cycles) / self.clock_hz

    def sparse_time_s(self, op: Op, sparsity: float) -> float:
        return (self.sparse_cycles(op, sparsity) / self.cores
                + self.c.item_overhead_cycles) / self.clock_hz

    def breakeven_sparsity(self, op: Op, step: float = 0.01) -> float:
        """The least sparsity (on a grid of `step`) from which on the sparse kernel beats the
        dense one (1.0 if never). Not a straight line: a little sparsity costs mispredictions
        before it saves FMAs."""
        dense = self.dense_cycles(op)
        grid = [min(1.0, i * step) for i in range(int(round(1 / step)) + 1)]
        wins = [self.sparse_cycles(op, s) < dense for s in grid]
        if not wins[-1]:
            return 1.0
        i = len(wins) - 1
        while i > 0 and wins[i - 1]:
            i -= 1
        return grid[i]

    # -- work items ------------------------------------------------------------------------
    def work_items_s(self, op: Op, items: int, sparsity: float | None = None,
                     spread: float = 0.0, rng: np.random.Generator | None = None
                     ) -> list[float]:
        """Durations of `items` equal output blocks of the op, each run by one core.

        sparsity None: the dense kernel. Otherwise each block gets its own sparsity around the
        mean (normal, std = spread * 2 * sqrt(s (1 - s)), centred so the mean is kept, clipped
        to [0, 1]): the blocks of uneven sparsity are what makes cores wait for each other.
        """
        if not isinstance(items, int) or items < 1:
            raise HardwareError(f"work items must be an integer >= 1, got {items!r}")
        overhead = self.c.item_overhead_cycles
        if sparsity is None:
            return [(self.dense_cycles(op) / items + overhead) / self.clock_hz] * items
        s = check_sparsity(sparsity, f"sparsity of {op.name!r}")
        shares = np.full(items, s)
        if spread > 0 and items > 1 and 0 < s < 1:
            if rng is None:
                raise HardwareError("work_items_s: a spread needs a seeded numpy Generator")
            z = rng.standard_normal(items)
            shares = np.clip(s + spread * 2 * math.sqrt(s * (1 - s)) * (z - z.mean()), 0, 1)
        return [(self.sparse_cycles(op, float(si)) / items + overhead) / self.clock_hz
                for si in shares]
