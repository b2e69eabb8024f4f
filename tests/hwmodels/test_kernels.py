"""Kernel rules: PyTorch CPU's convolution dispatch and oneDNN's channel blocking."""
import pytest

from hwmodels.families import gemm_shape, layout, point_shape
from hwmodels.kernels import KernelRules, vector_fp32_lanes
from hwmodels.profile import Profile
from hwmodels.profile_fit import GemmPredictor, WorkPredictor
from workloads.builder import GraphBuilder
from workloads.training import lower_training

TORCH_CPU = KernelRules(torch_cpu=True, threads=1, channel_block=16)


def conv_ops(cin, cout, kernel, batch, size=16, stride=1, groups=1):
    """{kind: op} of one convolution's training graph (its input needs a gradient)."""
    b = GraphBuilder("one", input_shape=(cin, size, size), batch=batch)
    x = b.relu(b.conv2d(b.input(), cin, 1))   # so that the convolution's input needs a grad
    with b.scope("tested"):
        y = b.conv2d(x, cout, kernel, stride=stride, padding=kernel // 2, groups=groups)
    b.linear(b.flatten(b.adaptive_avgpool(y)), 10)
    return {op.kind: op for op in lower_training(b.build()).topo()
            if op.kind.startswith("conv2d") and op.name.startswith("tested")}


def classes(rules, **conv):
    return {k: rules.kernel_class(k, gemm_shape(op)) for k, op in conv_ops(**conv).items()}


def test_pytorch_runs_small_batch_1x1_convolutions_natively_on_one_thread():
    native = dict.fromkeys(("conv2d", "conv2d_grad_input", "conv2d_grad_weight"), "native")
    assert classes(TORCH_CPU, cin=32, cout=64, kernel=1, batch=8) == native
    assert set(classes(TORCH_CPU, cin=32, cout=64, kernel=1, batch=16).values()) == {"dense"}
    two_threads = KernelRules(torch_cpu=True, threads=2, channel_block=16)
    assert set(classes(two_threads, cin=32, cout=64, kernel=1, batch=8).values()) == {"dense"}
    # a strided 1x1 goes to oneDNN, in its dense kernels
    strided = classes(TORCH_CPU, cin=32, cout=64, kernel=1, batch=8, stride=2)
    assert set(strided.values()) == {"dense"}
    # batch 1: a 3x3 on a small input is native, a 5x5 or a large input is not
    assert classes(TORCH_CPU, cin=16, cout=16, kernel=3, batch=1, size=8) == native
    assert set(classes(TORCH_CPU, cin=16, cout=16, kernel=5, batch=1, size=8).values()) == {
        "dense"}
    assert set(classes(TORCH_CPU, cin=64, cout=16, kernel=3, batch=1, size=32).values()) == {
        "dense"}
    # depthwise and grouped never; a profile without rules (a GPU's) has no native class
    assert set(classes(TORCH_CPU, cin=32, cout=32, kernel=1, batch=8, groups=32).values()) == {
        "depthwise"}
    assert set(classes(TORCH_CPU, cin=32, cout=32, kernel=3, batch=8, groups=8).values()) == {
        "grouped"}
    assert set(classes(KernelRules(), cin=32, cout=64, kernel=1, batch=8).values()) == {"dense"}


def test_onednn_pads_channels_to_whole_vectors():
    ops = conv_ops(cin=24, cout=40, kernel=3, batch=4)
    fwd = ops["conv2d"]
    flops, shape = TORCH_CPU.computed("conv2d", fwd.flops, gemm_shape(fwd))
    m, n, k = gemm_shape(fwd)[:3]
    assert shape[:3] == (m, 48, 32 * 9) and flops == pytest.approx(fwd.flops * 48 * 32 / (40 * 24))
    gi = ops["conv2d_grad_input"]
    assert TORCH_CPU.computed(gi.kind, gi.flops, gemm_shape(gi))[1][1:3] == (32, 48 * 9)
    gw = ops["conv2d_grad_weight"]
    assert TORCH_CPU.computed(gw.kind, gw.flops, gemm_shape(gw))[1][:2] == (48, 32 * 9)
    # fewer input channels than one vector are read unblocked, forward and weight gradient;
    # outputs are written in whole vectors, and the input gradient writes the input's
    small = conv_ops(cin=6, cout=12, kernel=5, batch=4)
    m, n, k = gemm_shape(small["conv2d"])[:3]
    assert TORCH_CPU.computed("conv2d", 1.0, gemm_shape(small["conv2d"]))[1][:3] == (m, 16, k)
    gw = gemm_shape(small["conv2d_grad_weight"])
    assert TORCH_CPU.computed("conv2d_grad_weight", 1.0, gw)[1][:3] == (16, gw[1], gw[2])
    gi = gemm_shape(small["conv2d_grad_input"])
    assert TORCH_CPU.computed("conv2d_grad_input", 1.0, gi)[1][1:3] == (16, 16 * 25)
    # depthwise: blocked across the groups
    for dw in conv_ops(cin=24, cout=24, kernel=3, batch=4, groups=24).values():
        flops, shape = TORCH_CPU.computed(dw.kind, dw.flops, gemm_shape(dw))
        assert shape[3] == 32 and flops == pytest.approx(dw.flops * 32 / 24), dw.kind
    # the native path and a profile without a vector width pad nothing
    native = conv_ops(cin=24, cout=40, kernel=1, batch=4)["conv2d"]
    assert TORCH_CPU.computed("conv2d", native.flops, gemm_shape(native))[1] == gemm_shape(native)
    assert KernelRules().computed("conv2d", fwd.flops, gemm_shape(fwd))[1] == gemm_shape(fwd)


def test_rules_come_from_what_the_profile_records():
    meta = {"device_kind": "cpu", "torch_version": "2.13.0", "threads": 1,
            "vector_fp32_lanes": 16}
    assert KernelRules.for_profile(Profile(meta=meta, kinds={})) == TORCH_CPU
    assert KernelRules.for_profile(Profile(meta={**meta, "device_kind": "gpu"},
                                           kinds={})) == KernelRules()
    no_lanes = {k: v for k, v in meta.items() if k != "vector_fp32_lanes"}
    assert KernelRules.for_profile(Profile(meta=no_lanes, kinds={})).channel_block == 1


def test_a_padded_shape_is_predicted_from_the_whole_vectors_it_computes():
    """32-channel convolutions measured at the time of their FLOPs: a 24-channel one, which
    computes 32, takes what 32 take; without rules it would be predicted much faster."""
    points = []
    for c in (32, 48, 64, 96, 128):
        for batch in (2, 4, 8, 16):
            op = conv_ops(cin=c, cout=c, kernel=3, batch=batch)["conv2d"]
            points.append((op.flops, op.bytes_moved, 1e-6 + op.flops / 5e10, *gemm_shape(op)))
    op24 = conv_ops(cin=24, cout=24, kernel=3, batch=4)["conv2d"]
    op32 = conv_ops(cin=32, cout=32, kernel=3, batch=4)["conv2d"]
    t32 = 1e-6 + op32.flops / 5e10
    blocked = GemmPredictor(points, "conv2d", TORCH_CPU)
    assert blocked.predict_s(op24.flops, op24.bytes_moved, gemm_shape(op24)) == pytest.approx(
        t32, rel=0.05)
    plain = GemmPredictor(points, "conv2d", KernelRules())
    assert plain.predict_s(op24.flops, op24.bytes_moved, gemm_shape(op24)) < 0.8 * t32


def test_a_grouped_convolution_computes_whole_vectors_of_output_channels():
    """4 channels per group fill 4 of 16 lanes: the kernel does four times the FLOPs; 32 per
    group fill two vectors, no more."""
    for per_group, factor in ((4, 4), (8, 2), (32, 1)):
        ops = conv_ops(cin=64, cout=64, kernel=3, batch=2, groups=64 // per_group)
        for kind, op in ops.items():
            shape = gemm_shape(op)
            flops, computed = TORCH_CPU.computed(kind, op.flops, shape)
            assert flops == pytest.approx(op.flops * factor)
            padded = 0 if kind == "conv2d_grad_weight" else 1   # the output channels
            assert computed[padded] == shape[padded] * factor
        assert KernelRules().computed("conv2d", 1.0, gemm_shape(ops["conv2d"]))[0] == 1.0


def grouped_points(groups_of: dict[int, int], s_per_flop: float) -> list[tuple]:
    """Points of 3x3 convolutions of 64 channels in `groups` groups at four batches, each
    taking `s_per_flop` per FLOP (plus 1 us)."""
    points = []
    for groups in groups_of:
        for batch in (2, 4, 8, 16):
            op = conv_ops(cin=64, cout=64, kernel=3, batch=batch, groups=groups)["conv2d"]
            points.append((op.flops, op.bytes_moved, 1e-6 + op.flops * s_per_flop,
                           *gemm_shape(op)))
    return points


def test_grouped_and_depthwise_convolutions_are_fitted_apart():
    """Depthwise convolutions 10x slower per FLOP than grouped ones: a grouped shape that was
    not measured is predicted from the grouped ones, a depthwise one from the depthwise."""
    depthwise = grouped_points({64: 1}, 2e-10)
    grouped = grouped_points({32: 1, 8: 1}, 2e-11)
    both = GemmPredictor(depthwise + grouped, "conv2d", TORCH_CPU)
    op = conv_ops(cin=64, cout=64, kernel=3, batch=6, groups=16)["conv2d"]
    expected = 1e-6 + op.flops * 2e-11
    assert both.predict_s(op.flops, op.bytes_moved, gemm_shape(op)) == pytest.approx(
        expected, rel=0.1)
    dw = conv_ops(cin=64, cout=64, kernel=3, batch=6, groups=64)["conv2d"]
    assert both.predict_s(dw.flops, dw.bytes_moved, gemm_shape(dw)) > 3 * (
        1e-6 + dw.flops * 2e-11)
    # a profile with no grouped shapes predicts them from its depthwise ones (as measured
    # before grouped convolutions were calibrated), not from its dense ones
    dense = [p for c in (32, 64, 128) for batch in (2, 4, 8)
             for p in [(lambda o: (o.flops, o.bytes_moved, 1e-6 + o.flops * 5e-12,
                                   *gemm_shape(o)))(
                 conv_ops(cin=c, cout=c, kernel=3, batch=batch)["conv2d"])]]
    old = GemmPredictor(depthwise + dense, "conv2d", TORCH_CPU)
    assert old.predict_s(op.flops, op.bytes_moved, gemm_shape(op)) > 3 * (
        1e-6 + op.flops * 5e-12)


def test_layout_tells_apart_ops_of_equal_work():
    """Two max-pools of equal FLOPs and bytes, laid out differently, keep their own times."""
    def pool(channels, size, batch):
        b = GraphBuilder("p", input_shape=(channels, size, size), batch=batch)
        b.maxpool(b.input(), 2)
        return [op for op in b.build().topo() if op.kind == "maxpool"][0]
    small_planes, big_planes = pool(192, 4, 256), pool(24, 32, 32)
    assert small_planes.flops == big_planes.flops
    assert small_planes.bytes_moved == big_planes.bytes_moved
    # a forward pool is laid out by what it writes
    assert layout(small_planes) == (256 * 192, 4) and layout(big_planes) == (32 * 24, 256)
    points = [(small_planes.flops, small_planes.bytes_moved, 2e-3, *layout(small_planes)),
              (big_planes.flops, big_planes.bytes_moved, 3.6e-3, *layout(big_planes))]
    pred = WorkPredictor(points)
    assert pred.predict_s(big_planes.flops, big_planes.bytes_moved, layout(big_planes)) == 3.6e-3
    assert pred.predict_s(small_planes.flops, small_planes.bytes_moved,
                          layout(small_planes)) == 2e-3


def test_an_update_is_laid_out_by_its_parameter_tensors():
    b = GraphBuilder("u", input_shape=(8, 4, 4), batch=2)
    y = b.batchnorm(b.conv2d(b.input(), 8, 3, padding=1, bias=True))
    b.linear(b.flatten(y), 10, bias=False)
    updates = {op.forward: op for op in lower_training(b.build()).topo()
               if op.kind == "sgd_update"}
    assert sorted(point_shape(op)[0] for op in updates.values()) == [1, 2, 2]
    assert all(point_shape(op)[1] == op.params for op in updates.values())


def test_each_plane_may_cost_a_fixed_time():
    """An update steps its tensors one by one: a fit of time to FLOPs and bytes alone would
    give a two-tensor update of few values the time of a one-tensor one."""
    def point(tensors, params):
        return (4.0 * params, 20.0 * params, 1e-5 * tensors + 5e-10 * params, tensors, params)
    points = [point(t, n) for t in (1, 2) for n in (16, 64, 256, 1024, 4096, 65536)]
    pred = WorkPredictor(points)
    assert pred.coef[3] == pytest.approx(1e-5, rel=0.05)
    f, b, want, *layout_ = point(2, 2000)
    assert pred.predict_s(f, b, tuple(layout_)) == pytest.approx(want, rel=0.05)


def test_a_window_pool_pays_per_value_it_writes():
    """A 2x2 pool writes a quarter of what it reads, a global pool one value per plane: with
    equal FLOPs and bytes per value read, only a cost per value written tells them apart."""
    def avgpool(size, kernel, batch):
        b = GraphBuilder("p", input_shape=(16, size, size), batch=batch)
        b.avgpool(b.input(), kernel)
        return [op for op in b.build().topo() if op.kind == "avgpool"][0]

    def point(op):
        planes, pixels = layout(op)
        return (op.flops, op.bytes_moved, 2e-5 + 0.5e-9 * op.flops + 7e-9 * planes * pixels,
                planes, pixels)
    ops = [avgpool(s, k, n) for s in (8, 16, 32) for k in (2, s) for n in (2, 8, 32)]
    pred = WorkPredictor([point(op) for op in ops])
    assert pred.coef[4] == pytest.approx(7e-9, rel=0.05)
    unseen = avgpool(64, 2, 4)
    f, b, want, *layout_ = point(unseen)
    assert pred.predict_s(f, b, tuple(layout_)) == pytest.approx(want, rel=0.05)


def test_channel_blocks_come_from_the_isa_flags_onednn_dispatches_on():
    assert vector_fp32_lanes(("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq",
                              "avx512vl", "amx_tile")) == 16
    assert vector_fp32_lanes(("avx", "avx2", "fma", "avx512f")) == 8   # no avx512_core
    assert vector_fp32_lanes(("avx",)) is None
