import pytest

from hwmodels import DeviceSpec, HardwareError, catalog, model_for
from hwmodels.families import KIND_FAMILY
from hwmodels.gpu import GPUModel
from workloads.graph import ALL_KINDS
from workloads.training import lower_training


def test_every_ir_kind_has_a_family():
    assert set(KIND_FAMILY) == set(ALL_KINDS)
    for name in ("v100", "skylake-x-6c", "rk3399"):
        m = model_for(name)
        for family in set(KIND_FAMILY.values()):
            assert 0 < m.max_efficiency(family) <= 1
            assert m.half_efficiency_flops(family) > 0


def test_large_conv_compute_bound_relu_memory_bound(conv_relu_ops):
    ops = conv_relu_ops()
    v100 = model_for("v100")
    assert v100.is_compute_bound(ops["conv2d"])
    assert not v100.is_compute_bound(ops["relu"])
    # a relu is paced by memory: bytes / effective bandwidth, plus the launch
    relu = ops["relu"]
    bandwidth = 900e9 * v100.mem_efficiency * v100.stream_memory
    expect = relu.bytes_moved / bandwidth + v100.launch_overhead_s
    assert v100.op_time_s(relu) == pytest.approx(expect)


def test_large_conv_reaches_high_efficiency_on_gpu(conv_relu_ops, conv_op):
    # a 3x3 stride-1 layer runs as Winograd: above the peak of its direct multiply count,
    # below the 4x that Winograd F(4x4, 3x3) saves
    v100 = model_for("v100")
    eff = v100.efficiency(conv_relu_ops()["conv2d"])
    assert 1.0 < eff < 4.0


def test_h100_faster_than_k40(conv_relu_ops):
    conv = conv_relu_ops()["conv2d"]
    assert model_for("h100").op_time_s(conv) < model_for("k40").op_time_s(conv) / 5


def test_views_cost_exactly_zero(conv_relu_ops):
    ops = conv_relu_ops()
    for name in ("v100", "skylake-x-6c", "rk3399"):
        m = model_for(name)
        assert m.op_time_s(ops["input"]) == 0.0
        assert m.op_time_s(ops["flatten"]) == 0.0


def test_launch_overhead_included(conv_op):
    import dataclasses

    from hwmodels.gpu import builtin_families
    # depthwise: one algorithm, so the overhead cannot change which one runs
    conv = conv_op(1, channels=8, size=8, groups=8)
    times = []
    for overhead in (0.0, 1e-4):
        m = model_for("v100")
        fams = builtin_families()
        m.families = {k: dataclasses.replace(f, kernel_overhead_s=overhead)
                      for k, f in fams.items()}
        m.framework = None        # no host time per op: the kernel alone
        times.append(m.op_time_s(conv))
    assert times[1] - times[0] == pytest.approx(1e-4)
    assert times[0] > 0


def test_efficiency_grows_with_size_and_saturates(conv_op):
    m = model_for("v100")
    effs = [m.efficiency(conv_op(b)) for b in (1, 4, 16, 64, 256)]
    assert effs == sorted(effs) and effs[-1] < 4.0
    # time per FLOP falls with size
    per_flop = [m.op_time_s(conv_op(b)) / conv_op(b).flops for b in (1, 16, 256)]
    assert per_flop == sorted(per_flop, reverse=True)


def test_grouped_and_depthwise_convs_less_efficient(conv_op):
    m = model_for("v100")
    dense = m.efficiency(conv_op(64, channels=256, groups=1))
    grouped = m.efficiency(conv_op(64, channels=256, groups=8))
    depthwise = m.efficiency(conv_op(64, channels=256, groups=256))
    assert dense > grouped > depthwise and depthwise < 0.1 * dense


def test_backward_kinds_costed_and_wgrad_slower_on_gpu():
    from workloads.builder import GraphBuilder
    b = GraphBuilder("t", input_shape=(64, 28, 28), batch=32)
    x = b.input()
    # 1x1 layers: implicit GEMM only (a 3x3 one may run its gradient as Winograd)
    x = b.relu(b.batchnorm(b.conv2d(x, 64, 1)))
    x = b.relu(b.batchnorm(b.conv2d(x, 64, 1)))
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    g = lower_training(b.build())
    m = model_for("v100")
    for op in g:
        t = m.op_time_s(op)
        assert t >= 0 and (t == 0) == op.is_view
    by_kind = {op.kind: op for op in g}
    assert (m.op_time_s(by_kind["conv2d_grad_weight"])
            > m.op_time_s(next(o for o in g if o.kind == "conv2d" and o.macs
                               == by_kind["conv2d_grad_weight"].macs)))


def test_unmapped_kind_raises(conv_relu_ops):
    op = conv_relu_ops()["relu"]
    op.kind = "softsign"  # bypasses the IR's own check on purpose
    with pytest.raises(HardwareError, match="op kind 'softsign' has no cost family"):
        model_for("v100").op_time_s(op)


def test_model_for_picks_class_and_checks_kind():
    assert type(model_for("v100")).__name__ == "GPUModel"
    assert type(model_for("skylake-x-6c")).__name__ == "CPUModel"
    assert type(model_for("rpi4")).__name__ == "ARMModel"
    assert type(model_for(catalog.device("h100"))).__name__ == "GPUModel"
    with pytest.raises(HardwareError, match="is a cpu, not a gpu"):
        GPUModel(catalog.device("skylake-x-6c"))
    with pytest.raises(HardwareError, match="unknown device 'nope'"):
        model_for("nope")


def test_spec_efficiency_overrides_the_architecture(conv_relu_ops):
    # a part's own efficiency table sets the implicit-GEMM efficiency; an AMP conv has no
    # Winograd alternative, so its arithmetic time scales by the ratio (channels_last: no
    # NCHW transposes, whose memory-bound time the efficiency does not scale)
    from workloads.builder import GraphBuilder
    from workloads.memory_format import with_memory_format
    from workloads.precision import with_precision
    b = GraphBuilder("t", input_shape=(256, 28, 28), batch=64)
    b.flatten(b.conv2d(b.input(), 256, 3, padding=1, name="conv"))
    conv = with_memory_format(with_precision(b.build(), "amp-fp16"), "nhwc").op("conv")
    base = model_for("v100")
    half = base.family_constants.conv_fwd / 2
    slow = model_for(catalog.device("v100").with_options(efficiency={"conv": half}))
    overhead = base.launch_overhead_s
    assert slow.op_time_s(conv) - overhead == pytest.approx(
        2 * (base.op_time_s(conv) - overhead), rel=0.02)


def test_cpu_fma_units_change_conv_time(conv_relu_ops):
    conv = conv_relu_ops(batch=8)["conv2d"]
    sk = catalog.device("skylake-x-6c")
    t2 = model_for(sk.with_options(fma_units_per_core=2)).op_time_s(conv)
    t1 = model_for(sk.with_options(fma_units_per_core=1)).op_time_s(conv)
    assert 1.8 < t1 / t2 <= 2.0


def test_arm_is_slow_and_memory_starved(conv_relu_ops):
    ops = conv_relu_ops(batch=1, channels=64, size=56)
    arm, cpu = model_for("rk3399"), model_for("skylake-x-6c")
    # the board's Winograd multiplies a quarter of what the server's direct convolution does
    assert arm.op_time_s(ops["conv2d"]) > 5 * cpu.op_time_s(ops["conv2d"])
    eff_bw = arm.mem_bandwidth_Bps * arm.mem_efficiency
    assert 4e9 <= eff_bw <= 10e9
    assert arm.memory_bytes == 4 * 2**30


def test_deterministic(conv_relu_ops):
    conv = conv_relu_ops()["conv2d"]
    assert model_for("v100").op_time_s(conv) == model_for("v100").op_time_s(conv)


def test_base_model_without_defaults_names_missing_family(conv_relu_ops):
    from hwmodels import DeviceModel
    spec = DeviceSpec("g", "gpu", mem_bandwidth_Bps=1e11, memory_bytes=1, launch_overhead_s=0,
                      source="x", peak_flops=1e12)
    with pytest.raises(HardwareError, match="no efficiency for family 'conv'"):
        DeviceModel(spec).op_time_s(conv_relu_ops()["conv2d"])
