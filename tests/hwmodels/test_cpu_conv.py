"""The direct-convolution cycle model of hwmodels/cpu_conv.py (dense and ReLU-sparse)."""
from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import HardwareError, catalog
from hwmodels.cpu_conv import (
    SPARSE_PER_VECTOR,
    CPUDirectConv,
    DirectConvConstants,
    _bubbles_per_vector,
    _fma_port_bubble,
    _row_block_fmas,
    _sparse_vector_cycles,
    sparse_per_nonzero,
    streamed_lines_per_fma,
)
from hwmodels.x86_loop import binomial_pmf, loop_exit_mispredictions
from workloads.builder import GraphBuilder
from workloads.training import lower_training

MEASURED = (Path(__file__).resolve().parents[2] / "validation" / "measured"
            / "sparsetrain_cpu_conv_epyc-zen4-2vcpu.csv")


def _conv(cin, cout, k, hw=28, stride=1, batch=4):
    b = GraphBuilder("t", (16, hw, hw), batch=batch)
    x = b.relu(b.conv2d(b.input(), cin, 1, name="pre"))  # so that "c" has a grad_input
    x = b.relu(b.conv2d(x, cout, k, stride=stride, padding=k // 2, name="c"), name="r")
    b.linear(b.flatten(b.adaptive_avgpool(x, (1, 1))), 10)
    g = lower_training(b.build())
    return {p: g.op(n) for p, n in (("forward", "c"), ("grad_input", "c.grad_input"),
                                    ("grad_weight", "c.grad_weight")) if n in g}


@pytest.fixture(scope="module")
def skx():
    return CPUDirectConv(catalog.device("skylake-x-6c"))


@pytest.fixture(scope="module")
def skx2():
    return CPUDirectConv(catalog.device("skylake-x-6c").with_options(fma_units_per_core=2))


def test_register_blocking_fmas_per_scalar(skx):
    assert skx.fmas_per_scalar(_conv(256, 64, 1)["forward"]) == 4      # 4 vectors, 1 tap
    assert skx.fmas_per_scalar(_conv(256, 64, 1)["grad_input"]) == 8   # at most 8 blocks
    # 8 blocks x 3 outputs: 5 input columns reach them, 9 (output, tap) pairs
    assert skx.fmas_per_scalar(_conv(256, 256, 3)["forward"]) == pytest.approx(8 * 9 / 5)
    # 4 vectors x 7 outputs: 9 columns, 21 pairs
    assert skx.fmas_per_scalar(_conv(64, 64, 3)["forward"]) == pytest.approx(4 * 21 / 9)
    # weight gradients: 8 blocks x 3 taps stay in registers while the row streams
    assert skx.fmas_per_scalar(_conv(256, 256, 3)["grad_weight"]) == 24


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 30), st.integers(1, 7), st.integers(1, 3),
       st.sampled_from(["forward", "grad_input"]))
def test_block_edge_columns_feed_fewer_fmas(ocb, positions, kernel_w, stride, pass_):
    """A streamed column feeds at most ocb x the positions one column reaches (an input column
    ceil(kw / stride) outputs, an output-gradient column kw inputs): the block's edges only
    lower the average."""
    reach = math.ceil(kernel_w / stride) if pass_ == "forward" else kernel_w
    f = _row_block_fmas(ocb, positions, kernel_w, stride, pass_)
    assert 0 < f <= ocb * reach + 1e-9
    if stride == 1:   # a longer block has relatively fewer edge columns
        assert _row_block_fmas(ocb, positions + 1, kernel_w, stride, pass_) >= f - 1e-9


@settings(max_examples=50, deadline=None)
@given(st.floats(0.01, 1.0), st.floats(1.0, 30.0))
def test_streamed_weight_lines_per_fma(p, uses):
    """All non-zero: one line per `uses` FMAs; rarer non-zeros share a line less often."""
    lines = streamed_lines_per_fma(uses, p)
    assert 1 / uses - 1e-9 <= lines <= 1 + 1e-9
    assert streamed_lines_per_fma(uses, min(1.0, p * 1.5)) <= lines + 1e-9
    assert streamed_lines_per_fma(uses, 1.0) == pytest.approx(1 / uses)


def test_weights_stream_from_l2_when_the_block_overflows_l1(skx, skx2):
    # 8 channel blocks x 16 x 3 x 3 vectors = 72 KiB > 32 KiB: reloaded per block of 3 outputs
    blk = skx.sparse_block(_conv(256, 256, 3)["forward"])
    assert skx.weight_uses_per_block(_conv(256, 256, 3)["forward"], blk.channel_blocks,
                                     blk.positions) == 3
    assert skx.weight_uses_per_block(_conv(256, 256, 1)["forward"], 8, 3) == 0  # 8 KiB
    assert skx.weight_uses_per_block(_conv(256, 256, 3)["grad_weight"], 8, 3) == 0
    # one FMA unit: the FMA port binds before the L2 does; two units: the L2 binds
    q = 200_000   # 80% zeros
    assert _sparse_vector_cycles(skx.table, 14.4, 16, q, 3.0) == pytest.approx(
        _sparse_vector_cycles(skx.table, 14.4, 16, q, 0.0))
    assert _sparse_vector_cycles(skx2.table, 14.4, 16, q, 3.0) > 1.1 * _sparse_vector_cycles(
        skx2.table, 14.4, 16, q, 0.0)


@pytest.mark.parametrize("fmas", [4.0, 8.0, 14.4, 24.0])
@pytest.mark.parametrize("nonzeros", [1, 3, 8, 16])
def test_one_unit_charges_every_fma_and_the_kmovw_to_port_0(skx, skx2, fmas, nonzeros):
    """One unit: F FMAs per non-zero and the vector's kmovw can only issue to port 0 (the
    compare stays on port 5, the scalar work finds ports 1, 5 and 6), so the body's port
    bound is exactly F k + 1. Two units: the FMAs share ports 0 and 5 with kmovw and the
    compare (and, with few FMAs, the ALU ports with the scalar work)."""
    body = dict(SPARSE_PER_VECTOR)
    for name, count in sparse_per_nonzero(fmas).items():
        body[name] = body.get(name, 0) + nonzeros * count
    assert skx.table.port_cycles(body) == pytest.approx(fmas * nonzeros + 1)
    two = skx2.table.port_cycles(body)
    assert (fmas * nonzeros + 2) / 2 <= two + 1e-9 < fmas * nonzeros + 1


def test_fma_port_bubble_from_the_latencies(skx, skx2):
    # one unit: kmovw (p0) waits, then kmovw 3 + tzcnt 3 + vbroadcastss 8; two units: vcmpps
    # (p5) waits too, 3 more
    assert _fma_port_bubble(skx.table) == 14
    assert _fma_port_bubble(skx2.table) == 17


@pytest.mark.parametrize("fmas", [4.0, 14.4, 24.0])
def test_a_vector_too_big_for_the_scheduler_pays_the_bubble_with_no_zeros(skx, skx2, fmas):
    """No zeros: every exit is predicted, yet the next kmovw waits behind this vector's ready
    FMAs (16 x (2F + 5) unfused uops do not fit the 97-entry scheduler), so each vector costs
    its FMAs, its kmovw and the bubble on one unit (more than the dense FMAs on two)."""
    assert _sparse_vector_cycles(skx.table, fmas, 16, 1_000_000) == pytest.approx(
        16 * fmas + 14)
    assert _sparse_vector_cycles(skx2.table, fmas, 16, 1_000_000) >= 16 * fmas / 2 + 17


def test_vectors_that_fit_the_scheduler_share_their_bubbles(skx):
    """At 95% zeros a vector with non-zeros (4 FMAs each) mostly fits the scheduler, its
    exit mostly predicted: it hides its successor's bubble, so fewer than all pay it; with
    24 FMAs per non-zero two non-zeros already overflow it."""
    pmf, wrong = binomial_pmf(16, 0.05), loop_exit_mispredictions(0.05, 16)
    assert 0.5 <= _bubbles_per_vector(skx.table, 4.0, pmf, wrong) < 0.8
    pmf, wrong = binomial_pmf(16, 0.5), loop_exit_mispredictions(0.5, 16)
    assert _bubbles_per_vector(skx.table, 24.0, pmf, wrong) == 1.0


def test_dense_vectors_pay_the_bubble_when_exits_mispredict(skx):
    """At 50% zeros nearly every exit mispredicts: each vector costs its FMAs plus about the
    bubble (the FMAs dominate the other bounds)."""
    fmas = 24.0
    per_vector = _sparse_vector_cycles(skx.table, fmas, 16, 500_000)
    assert 8 * fmas + 10 < per_vector < 8 * fmas + 14 + 1


def test_dense_kernel_is_bound_by_the_fma_units(skx, skx2):
    op = _conv(256, 256, 3)["forward"]
    assert skx.dense_cycles_per_fma(op) == pytest.approx(1.0)
    assert skx2.dense_cycles_per_fma(op) == pytest.approx(0.5)


def test_sparse_kernel_loses_when_dense_wins_when_sparse(skx2):
    op = _conv(256, 64, 1)["forward"]  # F = 4 on two FMA units: the loop's overheads weigh most
    assert skx2.sparse_cycles(op, 0.0) > skx2.dense_cycles(op)
    times = [skx2.sparse_cycles(op, s / 10) for s in range(2, 11)]
    assert all(a > b for a, b in zip(times[:-1], times[1:], strict=True))
    even = skx2.breakeven_sparsity(op)
    assert 0.5 < even < 0.95
    assert skx2.sparse_cycles(op, even) < skx2.dense_cycles(op)
    assert skx2.sparse_cycles(op, even - 0.01) >= skx2.dense_cycles(op)
    wide = _conv(256, 256, 1)["forward"]  # F = 8
    assert skx2.sparse_cycles(wide, 0.9) < skx2.dense_cycles(wide) / 1.5


def test_all_zero_vectors_cost_only_their_detection(skx):
    op = _conv(256, 256, 3)["forward"]
    vectors = skx.vector_fmas(op) / skx.fmas_per_scalar(op) / skx.lanes
    per_vector = skx.sparse_loop_cycles(op, 1.0) / vectors
    assert 1.0 <= per_vector <= 2.0  # compare, kmov, popcnt, branches: 1.5 cycles of rename
    # the loops around the FMA loop stay: all zeros cost them and the detection
    assert skx.sparse_cycles(op, 1.0) == pytest.approx(skx.outer_cycles(op)
                                                       + skx.sparse_loop_cycles(op, 1.0))


def test_one_fma_unit_gains_more_than_two(skx, skx2):
    op = _conv(256, 256, 3)["forward"]
    def gain(m):
        return m.dense_cycles(op) / m.sparse_cycles(op, 0.8)
    assert gain(skx) > gain(skx2) > 1.0


def test_small_vector_count_limits_the_gain(skx2):
    narrow, wide = _conv(256, 64, 1)["forward"], _conv(256, 256, 3)["forward"]
    def gain(op):
        return skx2.dense_cycles(op) / skx2.sparse_cycles(op, 0.5)
    assert gain(narrow) < 1.0 < gain(wide)


def test_only_avx512_parts_with_an_instruction_table():
    with pytest.raises(HardwareError, match="16 fp32 lanes"):
        CPUDirectConv(catalog.device("skylake-x-6c").with_options(vector_lanes_fp32=8))
    with pytest.raises(HardwareError, match="no instruction table.*xeon-avx512-2c"):
        CPUDirectConv(catalog.device("xeon-avx512-2c"))


@pytest.mark.parametrize("bad", [-0.1, 1.2, float("nan"), "0.5", True])
def test_sparsity_outside_unit_interval_is_an_error(skx, bad):
    with pytest.raises(HardwareError, match="sparsity"):
        skx.sparse_cycles(_conv(64, 64, 3)["forward"], bad)


def test_work_items_keep_the_work_and_are_deterministic(skx):
    op = _conv(128, 128, 3)["forward"]
    dense = skx.work_items_s(op, 24)
    assert len(set(dense)) == 1
    a = skx.work_items_s(op, 24, 0.6, 0.05, np.random.default_rng(1))
    b = skx.work_items_s(op, 24, 0.6, 0.05, np.random.default_rng(1))
    flat = skx.work_items_s(op, 24, 0.6)
    assert a == b and len(set(a)) > 1
    # centred draw: about the same total work (the cost is nearly linear in the sparsity)
    assert sum(a) == pytest.approx(sum(flat), rel=1e-2)
    with pytest.raises(HardwareError):
        skx.work_items_s(op, 24, 0.6, 0.05)              # a spread needs a Generator
    with pytest.raises(HardwareError):
        skx.work_items_s(op, 0)


def test_rejects_gpus_and_bad_constants():
    with pytest.raises(HardwareError, match="cpu"):
        CPUDirectConv(catalog.device("v100"))
    with pytest.raises(HardwareError, match="dense_efficiency"):
        DirectConvConstants(dense_efficiency={"forward": 1.5, "grad_input": 0.8,
                                              "grad_weight": 0.6})
    with pytest.raises(HardwareError, match="sparse_accumulators"):
        DirectConvConstants(sparse_accumulators=0)


def test_dense_constants_follow_the_committed_measurement():
    """The pass ratios of the dense constants stay near PyTorch's measured ones."""
    with MEASURED.open() as fh:
        header = fh.readline()
        rows = list(csv.DictReader(fh))
    assert "on '" in header  # names the machine
    best = {p: statistics.median(float(r["fraction_of_peak_best"]) for r in rows
                                 if r["pass"] == p and r["threads"] == "1")
            for p in ("forward", "grad_input", "grad_weight")}
    eff = DirectConvConstants().dense_efficiency
    for p in ("grad_input", "grad_weight"):
        assert eff[p] / eff["forward"] == pytest.approx(best[p] / best["forward"], abs=0.3)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([(64, 64, 3), (256, 256, 3), (256, 64, 1), (128, 256, 3)]),
       st.sampled_from(["forward", "grad_input", "grad_weight"]), st.floats(0.0, 1.0),
       st.sampled_from([1, 2]))
def test_no_sparsity_saves_the_loops_around_the_fma_loop(shape, pass_, sparsity, units):
    """The dense kernel's time is its FMA loop over the pass efficiency; the sparse kernel
    spends the same cycles beside its loop, so no sparsity speeds a pass up by more than
    1 / (1 - efficiency): 5x at 0.8, 2.5x at 0.6."""
    m = CPUDirectConv(catalog.device("skylake-x-6c").with_options(fma_units_per_core=units))
    op = _conv(*shape)[pass_]
    eff = m.c.dense_efficiency[pass_]
    assert m.dense_cycles(op) == pytest.approx(m.dense_loop_cycles(op) / eff)
    gain = m.dense_cycles(op) / m.sparse_cycles(op, sparsity)
    assert gain < 1.0 / (1.0 - eff)
    assert m.sparse_cycles(op, sparsity) > m.outer_cycles(op) > 0
