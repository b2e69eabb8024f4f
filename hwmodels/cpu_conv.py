"""Direct convolution on an AVX-512 CPU, dense and ReLU-sparse (SparseTrain),
from instruction costs.

Both kernels keep a block of output (or weight-gradient) accumulators in zmm registers and
stream one operand: for each scalar of it they issue one FMA per accumulator that scalar feeds.

Dense (MKL-DNN's AVX-512 direct convolution, the baseline): per input channel and kernel
column, `ocb` weight vectors are loaded and `ur_w` inputs broadcast, then ocb x ur_w FMAs
(ocb <= 4, ocb x ur_w <= 28 accumulators). The step's cycles come from the instruction table
(hwmodels/x86_loop.py): with these blockings it is bound by the FMA ports.

Sparse (SparseTrain's kernels, a fork of MKL-DNN 0.16): data stay dense; per vector of 16
streamed values

    vcmpps k, zmm, [src]       compare with zero (the load folded in)
    kmovw, popcnt, jz          the mask to a register, its non-zero count, skip an empty vector
    add, cmp+jnz               the vector loop's pointer and back edge
    per non-zero:  tzcnt, blsr          the next set bit, and clear it
                   vbroadcastss zmm     broadcast the value ([src + index * 4])
                   shl                  its weights' offset (index * 64 bytes)
                   F x vfmadd231ps [w]  one FMA (its weight vector from memory) per
                                        accumulator the value feeds
                   dec+jnz              the loop over the set bits, counted by popcnt

Register block (MKL-DNN's structure, the authors' limits of 30 zmm accumulators and at most 8
output-channel blocks): forward and backward-by-input keep `ocb` channel blocks x `T` positions
of one row in registers and stream the columns of the other operand that reach them, so a
column at the edge of the block feeds fewer taps than one inside it; F, the FMAs per non-zero,
is the block's (position, tap) pairs x ocb over the columns it streams, maximised over ocb.
Backward-by-weights keeps weight-gradient taps x ocb in registers while a whole row streams.

Per vector the loop costs the most of (hwmodels/x86_loop.py for the first):
- the ports, and rename plus the loop-exit mispredictions (the set-bit loop runs
  Binomial(16, 1 - s) times with uniform random zeros, as the authors' testers draw them);
- the FMA port's bubble: `kmovw` (port 0) and, with two FMA units, `vcmpps` (port 5) issue to
  the FMA ports, so they wait behind the previous vector's ready FMAs; the vector's first FMA
  then waits for the chain kmovw -> tzcnt -> vbroadcastss. Only a vector whose uops all fit
  in the scheduler lets the next mask issue inside its bubble (_bubbles_per_vector);
- the misprediction loop: a mispredicted exit resolves only when its mask count does (kmovw ->
  popcnt -> the count down), and the next vector's mask starts after the penalty and its
  compare's load;
- the weights' stream: when a block's weights (its channel blocks x one 16-channel block of
  the streamed operand x the kernel's taps; 72 KiB for 8 blocks and 3x3) overflow the 32 KiB
  L1, every register block reloads them from L2 at its sustained bandwidth, and a weight line
  serves only the block's non-zeros that use it. The dense kernel's weights stream the same
  way, each line serving its ur_w FMAs.
The expected cycles per vector are summed over the trip-count distribution; the bounds are
combined by their maximum (the resources overlap perfectly: optimistic where two saturate).

Both kernels share MKL-DNN's layouts, tiling and outer loops: what the dense kernel spends
beside its FMA loop (1 / pass efficiency - 1 of the loop: the loops over rows and blocks,
edges, the accumulators' loads and stores, waits on memory, the weight-gradient reduction) the
sparse kernel spends too, in the same cycles whatever the zeros (outer_cycles). Nothing here is
fitted to SparseTrain's published speedups (DirectConvConstants says where each constant comes
from). Not modelled: backward-by-weights' output-gradient operand, taken as an L1 hit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from workloads.graph import Op

from .specs import DeviceSpec, HardwareError
from .x86_loop import CoreTable, binomial_pmf, loop_exit_mispredictions, table_for

FP32_BYTES = 4
PASS_OF_KIND = {"conv2d": "forward", "conv2d_grad_input": "grad_input",
                "conv2d_grad_weight": "grad_weight"}

# The sparse kernel's loop bodies (instruction name -> count), see the module docstring.
SPARSE_PER_VECTOR: dict[str, float] = {
    "vcmpps_k_zmm_m512": 1, "kmovw_r32_k": 1, "popcnt_r32": 1, "fused_jcc_not_taken": 1,
    "add_r64": 1, "fused_jcc_taken": 1}


def sparse_per_nonzero(fmas: float) -> dict[str, float]:
    return {"tzcnt_r32": 1, "blsr_r32": 1, "vbroadcastss_zmm_m32": 1, "shl_r64_imm": 1,
            "vfmadd231ps_zmm_m512": fmas, "fused_jcc_taken": 1}


def dense_step(ocb: int, ur_w: int) -> dict[str, float]:
    return {"vmovups_zmm_load": ocb, "vbroadcastss_zmm_m32": ur_w,
            "vfmadd231ps_zmm": ocb * ur_w}


@dataclass(frozen=True)
class DirectConvConstants:
    # Fraction of the FMA peak MKL-DNN/oneDNN's dense direct conv sustains on large layers; the
    # rest is spent beside the FMA loop, and the sparse kernel (same layouts and outer loops)
    # spends it too. Forward 0.80: the usual figure
    # for MKL-DNN's AVX-512 direct conv on Skylake-X. The other passes keep the ratios to
    # forward measured with PyTorch on this project's AVX-512 machine
    # (validation/measured/sparsetrain_cpu_conv_epyc-zen4-2vcpu.csv, single thread, medians of
    # the best runs: grad_input/forward ~1.06, grad_weight/forward ~0.73). Not fitted to
    # SparseTrain's figures, which depend on them: they set the share of a pass no zero saves.
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


def _row_block_fmas(ocb: int, positions: int, kernel_w: int, stride: int, pass_: str) -> float:
    """FMAs per streamed column of a register block of `positions` x `ocb` accumulators along
    one row: the block's (position, tap) pairs x ocb over the columns that reach the block."""
    if pass_ == "forward":   # outputs in registers, input columns streamed
        pairs = float(positions * kernel_w)
        columns = ((positions - 1) * stride + kernel_w if kernel_w >= stride
                   else positions * kernel_w)
    else:                    # grad_input: input gradients in registers, dO columns streamed
        pairs = positions * kernel_w / stride
        columns = max(1, math.ceil((positions - 1 + kernel_w) / stride))
    return ocb * pairs / columns


@dataclass(frozen=True)
class RegisterBlock:
    fmas: float              # F: FMAs per streamed non-zero, averaged over the block's columns
    channel_blocks: int      # ocb: 16-channel vectors of the accumulators
    positions: int           # T: row positions (forward, grad_input) or taps (grad_weight)


def _register_block(channel_vectors: int, kernel_w: int, stride: int, pass_: str,
                    accumulators: int, max_blocks: int) -> RegisterBlock:
    """The sparse kernel's register block: the channel blocking ocb that feeds a streamed
    non-zero the most FMAs."""
    top = max(1, min(channel_vectors, max_blocks, accumulators))
    if pass_ == "grad_weight":   # taps x ocb accumulators stay while a whole row streams
        taps = max(1, math.ceil(kernel_w / stride))
        return max((RegisterBlock(float(k * min(taps, accumulators // k)), k,
                                  min(taps, accumulators // k)) for k in range(1, top + 1)),
                   key=lambda blk: blk.fmas)
    return max((RegisterBlock(_row_block_fmas(k, accumulators // k, kernel_w, stride, pass_),
                              k, accumulators // k) for k in range(1, top + 1)),
               key=lambda blk: blk.fmas)


def streamed_lines_per_fma(uses_per_block: float, nonzero_p: float) -> float:
    """Cache lines an FMA's weight operand brings from L2 when the block's weights overflow L1
    (each block then reloads them): a weight vector is one line, loaded if any of its
    `uses_per_block` uses (each with probability nonzero_p) comes."""
    if nonzero_p <= 0.0:
        return 0.0
    r = max(1.0, uses_per_block)
    return (1.0 - (1.0 - nonzero_p) ** r) / (r * nonzero_p)


def _fma_port_bubble(table: CoreTable) -> float:
    """Cycles the FMA ports idle between two vectors' FMAs when the next mask waits behind
    them: from the first mask uop that issues to an FMA port to the first FMA's operand."""
    chain = ["vcmpps_k_zmm_zmm", "kmovw_r32_k", "tzcnt_r32", "vbroadcastss_zmm_m32"]
    first = next(i for i, name in enumerate(chain) if table.shares_fma_port(name))
    return sum(table.latency(name) for name in chain[first:])


def _bubbles_per_vector(table: CoreTable, fmas: float, pmf: list[float],
                        wrong: list[float]) -> float:
    """Share of the vectors with non-zeros whose FMAs start after an FMA-port bubble.

    A vector's mask uop on an FMA port (kmovw) is younger than the previous vector's FMAs and,
    the scheduler issuing the oldest ready uop per port, waits until those have issued; its
    FMAs then wait for the mask chain. The next mask issues inside that bubble only if it is
    already in the scheduler: the whole vector, whose uops all wait on its mask, fits there
    (unfused uops: a micro-fused FMA's load takes an entry of its own) and its exit did not
    stop the front end by a misprediction. Such a vector hides its successor's bubble, so
    with q the chance of that, 1 / (1 + q) of the vectors pay one."""
    per_nonzero = sum(table.body_uops(sparse_per_nonzero(fmas))[0].values())
    # its own detection uops and the next vector's, up to that one's mask
    detection = 2 * sum(table.body_uops(SPARSE_PER_VECTOR)[0].values())
    nonempty = 1.0 - pmf[0]
    if nonempty <= 0.0:
        return 0.0
    hides = sum(pk for k, (pk, w) in enumerate(zip(pmf, wrong, strict=True))
                if k > 0 and w == 0 and k * per_nonzero + detection <= table.scheduler_entries)
    return 1.0 / (1.0 + hides / nonempty)


def _mispredicted_exit_cycles(table: CoreTable, trips: int) -> float:
    """Cycles from one vector's mask to the next's when its loop exit is mispredicted: the exit
    resolves after kmovw -> popcnt -> the count down, then the penalty, then the next compare
    (its load folded in) and kmovw."""
    return (table.latency("kmovw_r32_k") + table.latency("popcnt_r32")
            + trips * table.latency("add_r64") + table.latency("fused_jcc_taken")
            + table.branch_mispredict_cycles + table.latency("vcmpps_k_zmm_m512") + 1.0)


@lru_cache(maxsize=65536)
def _sparse_vector_cycles(table: CoreTable, fmas: float, lanes: int, nonzero_q: int,
                          weight_uses_per_block: float = 0.0) -> float:
    """Expected cycles of one streamed vector, non-zero probability nonzero_q / 1e6.
    weight_uses_per_block > 0: the block's weights overflow L1 and stream from L2."""
    p = nonzero_q / 1e6
    pmf = binomial_pmf(lanes, p)
    wrong = loop_exit_mispredictions(p, lanes)
    port_or_front = table.cycles_over_trip_counts(SPARSE_PER_VECTOR, sparse_per_nonzero(fmas),
                                                  wrong)
    bubble = _fma_port_bubble(table) * _bubbles_per_vector(table, fmas, pmf, wrong)
    fma_issue = table.port_cycles({"vfmadd231ps_zmm_m512": fmas})
    l2_per_nonzero = 0.0
    if weight_uses_per_block > 0:
        line_bytes = lanes * FP32_BYTES
        l2_per_nonzero = (fmas * streamed_lines_per_fma(weight_uses_per_block, p) * line_bytes
                          / table.l2_bytes_per_cycle)
    total = 0.0
    for k, (pk, base, w) in enumerate(zip(pmf, port_or_front, wrong, strict=True)):
        cycles = max(base, k * l2_per_nonzero)
        if k > 0:
            cycles = max(cycles, bubble + k * fma_issue)
        if w > 0:
            cycles = max(cycles, _mispredicted_exit_cycles(table, k))
        total += pk * cycles
    return total


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

    def _vector_channels(self, op: Op) -> int:
        a = op.attrs
        groups = int(a.get("groups", 1))
        if self.pass_of(op) == "grad_input":
            return int(a["in_channels"]) // groups
        return int(a["out_channels"]) // groups

    def sparse_block(self, op: Op) -> RegisterBlock:
        a = op.attrs
        return _register_block(math.ceil(self._vector_channels(op) / self.lanes),
                               int(a["kernel"][1]), int(a["stride"][1]), self.pass_of(op),
                               self.c.sparse_accumulators, self.c.sparse_max_channel_blocks)

    def fmas_per_scalar(self, op: Op) -> float:
        """F: FMAs one streamed non-zero feeds inside the sparse kernel's register block
        (averaged over the block's columns)."""
        return self.sparse_block(op).fmas

    def weight_uses_per_block(self, op: Op, channel_blocks: int, positions: int) -> float:
        """Uses of one weight vector per register block when the weights of a block (its
        channel blocks x one 16-channel block of the streamed operand x the kernel's taps)
        overflow L1 and are reloaded from L2 for every block; 0 when they stay in L1.
        Backward-by-weights streams output gradients, not weights: taken as L1 hits."""
        p = self.pass_of(op)
        if p == "grad_weight":
            return 0.0
        kh, kw = (int(v) for v in op.attrs["kernel"])
        footprint = channel_blocks * self.lanes * kh * kw * self.lanes * FP32_BYTES
        if footprint <= self.table.l1d_bytes:
            return 0.0
        stride_w = int(op.attrs["stride"][1])
        return float(positions) if p == "forward" else max(1.0, positions / stride_w)

    def vector_fmas(self, op: Op) -> float:
        """Vector FMA instructions of the op (the vectorised channels padded to full vectors)."""
        channels = self._vector_channels(op)
        fill = channels / (self.lanes * math.ceil(channels / self.lanes))
        return op.macs / (self.lanes * fill)

    def dense_cycles_per_fma(self, op: Op) -> float:
        channels = self._vector_channels(op)
        ocb = max(1, min(math.ceil(channels / self.lanes), self.c.dense_max_channel_blocks))
        ur_w = max(1, self.c.dense_accumulators // ocb)
        per_fma = self.table.cycles(dense_step(ocb, ur_w)) / (ocb * ur_w)
        uses = self.weight_uses_per_block(op, ocb, ur_w)
        if uses > 0:   # every weight line of the block from L2, used by the block's ur_w
            per_fma = max(per_fma, self.lanes * FP32_BYTES / uses / self.table.l2_bytes_per_cycle)
        return per_fma

    # -- cycles (all cores' work summed) ---------------------------------------------------
    def dense_loop_cycles(self, op: Op) -> float:
        """The dense kernel's FMA loop alone, at its instruction bound."""
        return self.vector_fmas(op) * self.dense_cycles_per_fma(op)

    def outer_cycles(self, op: Op) -> float:
        """What MKL-DNN's dense kernel spends beside its FMA loop, (1 / efficiency - 1) x
        the loop: row and channel-block loops, edges, accumulator loads and stores, waits on
        memory. SparseTrain keeps those loops and data: it spends the same cycles on them
        whatever the zeros."""
        eff = self.c.dense_efficiency[self.pass_of(op)]
        return self.dense_loop_cycles(op) * (1.0 / eff - 1.0)

    def dense_cycles(self, op: Op) -> float:
        return self.dense_loop_cycles(op) + self.outer_cycles(op)

    def sparse_loop_cycles(self, op: Op, sparsity: float) -> float:
        """The zero-skipping loop alone (per vector: hwmodels/x86_loop.py and the bounds in
        the module docstring)."""
        s = check_sparsity(sparsity, f"sparsity of {op.name!r}")
        block = self.sparse_block(op)
        vectors = self.vector_fmas(op) / block.fmas / self.lanes
        return vectors * _sparse_vector_cycles(
            self.table, block.fmas, self.lanes, round((1.0 - s) * 1e6),
            self.weight_uses_per_block(op, block.channel_blocks, block.positions))

    def sparse_cycles(self, op: Op, sparsity: float) -> float:
        return self.sparse_loop_cycles(op, sparsity) + self.outer_cycles(op)

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
