"""hwmodels.residency: small ops in a step that fits in the cache, and its fit."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.profile import Profile
from hwmodels.residency import (
    MIN_PAIRS,
    Residency,
    fit_residency,
    fitting_bytes,
    meta_of,
)
from hwmodels.specs import HardwareError

MIB = 2**20
R = Residency(below_bytes=32 * MIB, ratio=0.6, cap_s=20e-6)


def test_only_a_step_that_fits_changes_and_no_op_saves_more_than_the_cap():
    assert R.time_s(10e-6, None) == 10e-6                   # step unknown: as measured
    assert R.time_s(10e-6, 33 * MIB) == 10e-6               # does not fit
    assert R.time_s(10e-6, 32 * MIB) == pytest.approx(6e-6)  # tiny op: the ratio
    assert R.time_s(1e-3, 1 * MIB) == pytest.approx(1e-3 - 20e-6)   # long op: the cap


@settings(max_examples=200, deadline=None)
@given(t=st.floats(1e-7, 1.0), ratio=st.floats(0.3, 1.0), cap=st.floats(0.0, 1e-3))
def test_spilled_time_inverts_the_resident_time(t, ratio, cap):
    r = Residency(MIB, ratio, cap)
    resident = r.time_s(t, MIB)
    assert 0 < resident <= t
    assert r.spilled_s(resident) == pytest.approx(t, rel=1e-9)


def test_the_fit_recovers_the_ratio_and_cap_it_was_made_with():
    spilled = [5e-6 * 1.4**i for i in range(12)]            # 5 us .. 200 us
    pairs = [(R.time_s(t, MIB), t) for t in spilled]
    fit = fit_residency(pairs, 32 * MIB)
    assert (fit.ratio, fit.cap_s) == pytest.approx((0.6, 20e-6), rel=0.02)
    assert fit.below_bytes == 32 * MIB


def test_no_fit_from_too_few_shapes_or_without_a_speedup():
    assert fit_residency([(6e-6, 10e-6)] * (MIN_PAIRS - 1), MIB) is None
    assert fit_residency([(t, t) for t in (1e-5, 2e-5, 4e-5, 8e-5, 1e-4)], MIB) is None


def profile(**meta):
    return Profile(meta={"device_kind": "cpu", "device_name": "xeon-avx512-2c", **meta},
                   kinds={"relu": [[10.0, 80.0, 1e-5]]})


def test_a_profile_carries_its_fit_all_three_fields_or_none():
    assert profile().residency is None
    assert profile(**meta_of(R)).residency == R
    with pytest.raises(HardwareError, match="resident_cap_s"):
        profile(resident_below_bytes=float(MIB), resident_ratio=0.6)
    with pytest.raises(HardwareError, match="resident_ratio <= 1"):
        profile(**{**meta_of(R), "resident_ratio": 1.5})


def test_the_device_model_applies_it_when_it_knows_the_step():
    from hwmodels.model import model_for
    from workloads.builder import GraphBuilder
    b = GraphBuilder("tiny", input_shape=(8,), batch=2)
    b.relu(b.input())
    relu = next(op for op in b.build().topo() if op.kind == "relu")
    with_fit = model_for("xeon-avx512-2c", profile(**meta_of(R)))
    measured = model_for("xeon-avx512-2c", profile()).op_time_s(relu)
    assert with_fit.op_time_s(relu) == measured
    assert with_fit.op_time_s(relu, step_bytes=64 * MIB) == measured
    assert with_fit.op_time_s(relu, step_bytes=1 * MIB) == pytest.approx(0.6 * measured)


def test_a_simulated_step_that_fits_runs_its_profiled_ops_faster():
    from validation.validate.compare import simulate_graph
    from workloads.builder import GraphBuilder
    b = GraphBuilder("tiny", input_shape=(64,), batch=4)
    b.relu(b.linear(b.input(), 32))
    graph = b.build()
    spilled, _ = simulate_graph(graph, profile(), training=False)
    resident, _ = simulate_graph(graph, profile(**meta_of(R)), training=False)
    # the relu's time is profiled (it saves what its model says); the linear's is not
    from hwmodels.model import model_for
    relu = next(op for op in graph.topo() if op.kind == "relu")
    relu_s = model_for("xeon-avx512-2c", profile()).op_time_s(relu)
    assert spilled - resident == pytest.approx(relu_s - R.time_s(relu_s, 0), rel=1e-6)
    assert spilled > resident


def test_a_step_fits_by_the_bytes_its_ops_move_and_never_with_a_convolution():
    from workloads.builder import GraphBuilder
    from workloads.training import lower_training
    b = GraphBuilder("small_mlp", input_shape=(3, 8, 8), batch=2)
    b.linear(b.relu(b.flatten(b.input())), 10)
    ops = list(lower_training(b.build()).topo())
    assert fitting_bytes(ops) == sum(op.bytes_moved for op in ops if not op.is_view)
    assert R.fits(fitting_bytes(ops))
    b = GraphBuilder("small_cnn", input_shape=(3, 8, 8), batch=2)
    b.linear(b.flatten(b.relu(b.conv2d(b.input(), 4, kernel=3, padding=1))), 10)
    assert not R.fits(fitting_bytes(list(lower_training(b.build()).topo())))
