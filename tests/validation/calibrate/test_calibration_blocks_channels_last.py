"""The ConvNeXt block on channels-last maps: its convolutions after the first LayerNorm2d are
channels-last, and the points it gives a profile fit channels-last depthwise kernels apart."""
from hwmodels.families import point_shape
from hwmodels.kernels import KernelRules
from hwmodels.profile import Profile
from validation.calibrate import profile_build
from validation.calibrate.calibration_blocks import BLOCK_CASES, CONVNEXT_NHWC_STAGES
from validation.calibrate.calibration_nets import GRID_CASES, get
from validation.calibrate.journal import records_of_replay
from workloads.training import lower_training

META = {"device_kind": "cpu", "device_name": "xeon-avx512-2c", "threads": 1,
        "torch_version": "2.13.0", "vector_fp32_lanes": 16}
NAME = "grid_convnext_nhwc"


def test_every_convolution_but_the_stem_is_channels_last():
    graph = get(NAME, 2)
    convs = [op for op in graph.topo() if op.kind == "conv2d"]
    assert convs[0].attrs.get("memory_format") is None          # on the image
    assert all(op.attrs["memory_format"] == "nhwc" for op in convs[1:])
    depthwise = [op for op in convs if op.attrs["groups"] > 1]
    assert [(op.attrs["groups"], op.attrs["kernel"][0]) for op in depthwise] == [
        (c, k) for c, kernels in CONVNEXT_NHWC_STAGES for k in kernels]
    assert {c for c in GRID_CASES if c[0] == NAME} == {c for c in BLOCK_CASES if c[0] == NAME}


def test_its_points_fit_a_channels_last_depthwise_class_of_their_own():
    """Replayed (synthetic times) at its two batches, the block gives each convolution kind
    enough channels-last depthwise shapes for a fit of their own."""
    rules = KernelRules.for_profile(Profile(meta=dict(META), kinds={}))
    records = []
    for name, batch in (c for c in BLOCK_CASES if c[0] == NAME):
        train = lower_training(get(name, batch))
        times = {op.name: 1e-6 + 1e-10 * op.flops for op in train.topo() if not op.is_view}
        records += records_of_replay(name, train, [times])
    profile = profile_build.build_profile(records, META)
    for kind in ("conv2d", "conv2d_grad_input", "conv2d_grad_weight"):
        shapes = [tuple(int(d) for d in p[3:]) for p in profile.points(kind)]
        assert any(len(s) == 8 for s in shapes)
        assert "depthwise_nhwc" in profile.predictor(kind).classes, kind
        assert all(rules.kernel_class(kind, s).endswith("_nhwc") == (len(s) == 8)
                   for s in shapes)
    op = next(o for o in lower_training(get(NAME, 3)).topo()
              if o.kind == "conv2d_grad_weight" and o.attrs["groups"] > 1)
    assert len(point_shape(op)) == 8
