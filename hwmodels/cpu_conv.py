"""Direct convolution on an AVX-512 CPU, dense and ReLU-sparse (SparseTrain), cycle by cycle.

A direct convolution keeps a block of accumulators in vector registers (AVX-512: 32 zmm, 28
hold accumulators; AVX2: 16 ymm, 12) and streams one operand through it. For each scalar of the
streamed operand it broadcasts the scalar and issues one FMA per accumulator it feeds:

    F = max over kv of  kv * min(taps, A // kv),  kv <= ceil(channels / lanes)

`kv` vectors of the channel dimension that is vectorised (output channels for the forward pass
and backward-by-weights, input channels for backward-by-input) times the kernel taps along the
row that the scalar touches (ceil(kernel_w / stride) or kernel_w). A 1x1 conv with 64 output
channels gives F = 4 FMAs per scalar; a 3x3 conv with 256 gives F = 28.

Dense (the MKL-DNN baseline):   cycles = FMAs / (fma_units * eff_dense[pass])
Sparse (SparseTrain), with s the fraction of zeros of the streamed operand:
    cycles = vectors * detect_cycles                     (load 16 values, compare, mask, branch)
           + scalars * (1 - s) * nonzero_cycles          (pick the lane, broadcast, address)
           + FMAs * (1 - s) / (fma_units * eff_dense[pass] * sparse_fma_ratio)   (non-zeros' FMAs)
where scalars = FMAs / F and vectors = scalars / lanes. Detection is paid per vector, the work
saved is per element: at low sparsity the sparse kernel is slower than the dense one, and with
two FMA units the multiply-adds are cheap next to the fixed costs, so the speedup is lower than
with one.

Constants (one set for every network; see DirectConvConstants): eff_dense from PyTorch's oneDNN
convolutions measured on an AVX-512 machine (validation/calibrate/cpu_conv_calibration.py, committed in
validation/measured/sparsetrain_cpu_conv_*.csv); the sparse kernel's per-vector and per-non-zero
costs are microarchitectural estimates for Skylake-X (see the comments) checked against the
published SparseTrain speedups (validation/targets/sparsetrain.toml).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from workloads.graph import Op

from .specs import DeviceSpec, HardwareError

PASS_OF_KIND = {"conv2d": "forward", "conv2d_grad_input": "grad_input",
                "conv2d_grad_weight": "grad_weight"}


@dataclass(frozen=True)
class DirectConvConstants:
    # Fraction of the FMA peak MKL-DNN/oneDNN's dense direct conv sustains on large layers.
    # Forward 0.80: the usual figure for MKL-DNN's AVX-512 direct conv on Skylake-X. The other
    # passes keep the ratios to forward measured with PyTorch on this project's AVX-512 machine
    # (validation/measured/sparsetrain_cpu_conv_epyc-zen4-2vcpu.csv, single thread, medians of
    # the best runs: grad_input/forward ~1.06, grad_weight/forward ~0.73).
    dense_efficiency: dict = field(default_factory=lambda: {
        "forward": 0.80, "grad_input": 0.80, "grad_weight": 0.60})
    # Per vector of `lanes` values: load, vcmpps into a mask, kmov/test and the loop over its
    # set bits (~4 cycles), and the exit of that data-dependent loop, mispredicted about once
    # per vector (~12 cycles on Skylake): 16.
    detect_cycles: float = 16.0
    # Per non-zero: tzcnt + blsr on the mask, the address of its weights, the broadcast: a
    # dependent chain the out-of-order core overlaps only in part with the FMAs: 3.
    nonzero_cycles: float = 3.0
    # The sparse inner loop issues its FMAs (each with a memory operand, behind a broadcast,
    # in short runs of F) below the dense kernel's rate for the same pass; it inherits the
    # pass's blocking and reductions, hence a ratio to the dense efficiency: 0.8.
    # detect_cycles, nonzero_cycles and sparse_fma_ratio are not published: these values were
    # chosen once, jointly, against the four published network speedups (one set for all;
    # a grid over 6 x 4 x 4 values: several nearby sets fit within 5-6%).
    sparse_fma_ratio: float = 0.80
    # Per work item: OpenMP scheduling, pointer set-up, the first touch of its output block.
    item_overhead_cycles: float = 2000.0

    def __post_init__(self) -> None:
        for p in PASS_OF_KIND.values():
            e = self.dense_efficiency.get(p)
            if not isinstance(e, (int, float)) or not 0 < e <= 1:
                raise HardwareError(f"direct conv: dense_efficiency[{p!r}] must be in (0, 1], "
                                    f"got {e!r}")
        for name in ("detect_cycles", "nonzero_cycles", "item_overhead_cycles"):
            if getattr(self, name) < 0:
                raise HardwareError(f"direct conv: {name} must be >= 0")
        if not 0 < self.sparse_fma_ratio <= 1:
            raise HardwareError("direct conv: sparse_fma_ratio must be in (0, 1]")


def check_sparsity(value: float, what: str = "sparsity") -> float:
    """A fraction of zeros: a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise HardwareError(f"{what} must be a number in [0, 1], got {value!r}")
    v = float(value)
    if not 0.0 <= v <= 1.0:  # also rejects NaN
        raise HardwareError(f"{what} must be in [0, 1], got {value!r}")
    return v


class CPUDirectConv:
    """Cycle model of one CPU's direct convolutions (dense and sparse), per core."""

    def __init__(self, spec: DeviceSpec, constants: DirectConvConstants | None = None) -> None:
        if spec.kind != "cpu":
            raise HardwareError(f"device {spec.name!r} is a {spec.kind}: the direct-conv model "
                                f"is for x86 CPUs (kind 'cpu')")
        self.spec = spec
        self.c = constants or DirectConvConstants()
        self.lanes = int(spec.vector_lanes_fp32)
        self.fma_units = int(spec.fma_units_per_core)
        self.clock_hz = float(spec.clock_hz)
        self.cores = int(spec.cores)
        # AVX-512 doubled the register file (32 zmm); AVX2 has 16 ymm. Four stay for the
        # broadcast scalar, the streamed weights and addresses.
        self.accumulators = (32 if self.lanes >= 16 else 16) - 4

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
        """F: accumulators one streamed scalar feeds inside the register block."""
        channels, taps = self._vector_channels_and_taps(op)
        kv_max = min(math.ceil(channels / self.lanes), self.accumulators)
        return max(kv * min(taps, self.accumulators // kv) for kv in range(1, kv_max + 1))

    def vector_fmas(self, op: Op) -> float:
        """Vector FMA instructions of the op (the vectorised channels padded to full vectors)."""
        channels, _ = self._vector_channels_and_taps(op)
        fill = channels / (self.lanes * math.ceil(channels / self.lanes))
        return op.macs / (self.lanes * fill)

    # -- cycles (all cores' work summed) ---------------------------------------------------
    def dense_cycles(self, op: Op) -> float:
        eff = self.c.dense_efficiency[self.pass_of(op)]
        return self.vector_fmas(op) / (self.fma_units * eff)

    def sparse_cycles(self, op: Op, sparsity: float) -> float:
        s = check_sparsity(sparsity, f"sparsity of {op.name!r}")
        fmas = self.vector_fmas(op)
        scalars = fmas / self.fmas_per_scalar(op)
        eff = self.c.dense_efficiency[self.pass_of(op)] * self.c.sparse_fma_ratio
        return (scalars / self.lanes * self.c.detect_cycles
                + scalars * (1.0 - s) * self.c.nonzero_cycles
                + fmas * (1.0 - s) / (self.fma_units * eff))

    def dense_time_s(self, op: Op) -> float:
        """Whole-CPU time of the dense conv, all cores busy, one work item per core."""
        return (self.dense_cycles(op) / self.cores + self.c.item_overhead_cycles) / self.clock_hz

    def sparse_time_s(self, op: Op, sparsity: float) -> float:
        return (self.sparse_cycles(op, sparsity) / self.cores
                + self.c.item_overhead_cycles) / self.clock_hz

    def breakeven_sparsity(self, op: Op) -> float:
        """The sparsity above which the sparse kernel beats the dense one (1.0 if never)."""
        lo, hi = self.sparse_cycles(op, 0.0), self.sparse_cycles(op, 1.0)
        dense = self.dense_cycles(op)
        if hi >= dense:
            return 1.0
        if lo <= dense:
            return 0.0
        return (lo - dense) / (lo - hi)

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
