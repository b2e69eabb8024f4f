"""Convolutions on channels-last maps: their own points and kernel class where a profile
measured them, their NCHW twin's prediction where it did not."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import HardwareError
from hwmodels.families import gemm_shape, point_shape
from hwmodels.kernels import KernelRules, nchw_twin
from hwmodels.profile import Profile
from hwmodels.profile_fit import GemmPredictor
from workloads.builder import GraphBuilder
from workloads.kinds.matmul import mark_channels_last
from workloads.training import lower_training

TORCH_CPU = KernelRules(torch_cpu=True, threads=1, channel_block=16)
NCHW_S_PER_FLOP, NHWC_S_PER_FLOP = 2e-10, 5e-11


def conv_ops(c, kernel, batch, size=16, groups=None, nhwc=False):
    """{kind: op} of one convolution's training graph, on channels-last maps with `nhwc`."""
    b = GraphBuilder("one", input_shape=(c, size, size), batch=batch)
    x = b.relu(b.conv2d(b.input(), c, 1))
    with b.scope("tested"):
        y = b.conv2d(x, c, kernel, padding=kernel // 2, groups=groups or c)
    if nhwc:
        mark_channels_last(b.graph, y)
    b.linear(b.flatten(b.adaptive_avgpool(y)), 10)
    return {op.kind: op for op in lower_training(b.build()).topo()
            if op.kind.startswith("conv2d") and op.name.startswith("tested")}


def points(nhwc, s_per_flop, kind="conv2d", groups=None, kernels=(3, 7)):
    out = []
    for c in (32, 64, 96):
        for batch in (2, 4):
            for kernel in kernels:
                op = conv_ops(c, kernel, batch, groups=groups, nhwc=nhwc)[kind]
                out.append((op.flops, op.bytes_moved, 1e-6 + op.flops * s_per_flop,
                            *point_shape(op)))
    return out


def predict(predictor, op):
    return predictor.predict_s(op.flops, op.bytes_moved, point_shape(op))


def test_a_channels_last_convolution_and_its_gradients_add_a_1_to_the_shape():
    nchw, nhwc = conv_ops(64, 7, 2), conv_ops(64, 7, 2, nhwc=True)
    for kind, op in nhwc.items():
        assert point_shape(op) == (*point_shape(nchw[kind]), 1), kind
        assert len(point_shape(nchw[kind])) == 7
        assert TORCH_CPU.kernel_class(kind, point_shape(op)) == "depthwise_nhwc"
        assert TORCH_CPU.kernel_class(kind, point_shape(nchw[kind])) == "depthwise"


@pytest.mark.parametrize("kind", ["conv2d", "conv2d_grad_weight"])
def test_channels_last_depthwise_convolutions_are_fitted_apart(kind):
    """NCHW depthwise kernels 4x slower per FLOP than channels-last ones: an unmeasured shape
    of either is predicted from its own points."""
    predictor = GemmPredictor(points(False, NCHW_S_PER_FLOP, kind)
                              + points(True, NHWC_S_PER_FLOP, kind), kind, TORCH_CPU)
    nchw, nhwc = conv_ops(48, 5, 3)[kind], conv_ops(48, 5, 3, nhwc=True)[kind]
    assert predict(predictor, nhwc) == pytest.approx(1e-6 + nhwc.flops * NHWC_S_PER_FLOP,
                                                     rel=0.25)
    assert predict(predictor, nchw) == pytest.approx(1e-6 + nchw.flops * NCHW_S_PER_FLOP,
                                                     rel=0.25)


def test_a_profile_without_channels_last_points_predicts_them_as_before():
    """An older profile (NCHW points only) costs a channels-last convolution exactly as its
    NCHW twin, a measured shape included."""
    old = GemmPredictor(points(False, NCHW_S_PER_FLOP), "conv2d", TORCH_CPU)
    for c, kernel, batch in ((64, 7, 2), (48, 5, 3)):   # measured, then not
        nchw, nhwc = conv_ops(c, kernel, batch)["conv2d"], conv_ops(c, kernel, batch,
                                                                   nhwc=True)["conv2d"]
        assert predict(old, nhwc) == predict(old, nchw)
    assert predict(old, conv_ops(64, 7, 2, nhwc=True)["conv2d"]) == pytest.approx(
        1e-6 + conv_ops(64, 7, 2)["conv2d"].flops * NCHW_S_PER_FLOP)


def test_channels_last_dense_convolutions_stay_out_of_the_dense_fit():
    """Dense channels-last points are kept as measured shapes; an unmeasured dense
    channels-last convolution is costed as its NCHW twin, whose fit they do not move."""
    dense = points(False, 1e-11, groups=1)
    fast = points(True, 2e-12, groups=1, kernels=(2,))
    both = GemmPredictor(dense + fast, "conv2d", TORCH_CPU)
    alone = GemmPredictor(dense, "conv2d", TORCH_CPU)
    measured = conv_ops(64, 2, 4, groups=1, nhwc=True)["conv2d"]
    assert predict(both, measured) == pytest.approx(1e-6 + measured.flops * 2e-12)
    other = conv_ops(48, 5, 3, groups=1, nhwc=True)["conv2d"]
    assert predict(both, other) == predict(alone, conv_ops(48, 5, 3, groups=1)["conv2d"])


META = {"device_kind": "cpu", "device_name": "xeon-avx512-2c", "threads": 1,
        "torch_version": "2.13.0", "vector_fp32_lanes": 16}


def test_a_profile_keeps_channels_last_points_and_round_trips(tmp_path):
    kinds = {"conv2d": points(False, NCHW_S_PER_FLOP) + points(True, NHWC_S_PER_FLOP)}
    profile = Profile(meta=dict(META), kinds=kinds)
    path = tmp_path / "p.toml"
    profile.save(path)
    again = Profile.load(path)
    assert again.dumps() == profile.dumps()
    assert {len(p) for p in again.points("conv2d")} == {10, 11}
    op = conv_ops(48, 5, 3, nhwc=True)["conv2d"]
    assert again.predictor("conv2d").predict_s(op.flops, op.bytes_moved, point_shape(op)) \
        == pytest.approx(1e-6 + op.flops * NHWC_S_PER_FLOP, rel=0.25)


@pytest.mark.parametrize("kind, point, pattern", [
    ("conv2d", [1e6, 1e5, 1e-4, 64, 1, 9, 16, 9, 1, 64, 0], "channels_last, must be 1"),
    ("conv2d", [1e6, 1e5, 1e-4, 64, 1, 9, 16, 9, 1, 64, 2], "channels_last, must be 1"),
    ("linear", [1e6, 1e5, 1e-4, 64, 16, 9, 1, 1, 1, 1, 1], "must be"),
])
def test_a_malformed_channels_last_point_is_refused_by_name(kind, point, pattern):
    with pytest.raises(HardwareError, match=pattern):
        Profile(meta=dict(META), kinds={kind: [point]})


def test_the_nchw_twin_drops_the_format_only():
    op = conv_ops(64, 7, 2, nhwc=True)["conv2d_grad_weight"]
    assert nchw_twin(point_shape(op)) == gemm_shape(conv_ops(64, 7, 2)["conv2d_grad_weight"])


OLD_PROFILE = {}


@settings(max_examples=20, deadline=None)
@given(c=st.sampled_from([8, 16, 24, 40, 64, 96]), kernel=st.sampled_from([1, 3, 5, 7]),
       batch=st.integers(1, 8), depthwise=st.booleans(),
       kind=st.sampled_from(["conv2d", "conv2d_grad_input", "conv2d_grad_weight"]))
def test_without_channels_last_points_every_convolution_costs_its_nchw_twin(
        c, kernel, batch, depthwise, kind):
    if kind not in OLD_PROFILE:
        OLD_PROFILE[kind] = GemmPredictor(points(False, NCHW_S_PER_FLOP, kind)
                                          + points(False, 1e-11, kind, groups=1), kind,
                                          TORCH_CPU)
    groups = None if depthwise else 1
    nchw = conv_ops(c, kernel, batch, groups=groups)[kind]
    nhwc = conv_ops(c, kernel, batch, groups=groups, nhwc=True)[kind]
    assert predict(OLD_PROFILE[kind], nhwc) == predict(OLD_PROFILE[kind], nchw)
