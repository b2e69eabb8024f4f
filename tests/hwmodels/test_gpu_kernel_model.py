"""The GPU kernel model's convolutions as cuDNN runs them (tiles, algorithms, workspaces), and the
arithmetic per precision; GEMMs as cuBLAS runs them are in test_gpu_gemm_model.py."""
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import cudnn_releases, gpu_conv, gpu_gemm, model_for
from hwmodels.specs import HardwareError
from workloads.builder import GraphBuilder
from workloads.precision import with_precision
from workloads.training import lower_training


def conv_ops(batch=16, channels=256, size=28, kernel=3, stride=1, precision="fp32"):
    b = GraphBuilder("c", input_shape=(channels, size, size), batch=batch)
    b.flatten(b.relu(b.conv2d(b.input(), channels, kernel, stride=stride,
                              padding=kernel // 2, name="conv")))
    g = with_precision(b.build(), precision)
    return {op.kind: op for op in g}


def test_winograd_competes_for_3x3_stride_1_in_fp32_only():
    v100 = model_for("v100")
    fp32 = conv_ops()["conv2d"]
    keys = [o.key for o in v100.kernel_options(fp32)]
    assert "winograd" in keys
    strided = conv_ops(stride=2)["conv2d"]
    assert "winograd" not in [o.key for o in v100.kernel_options(strided)]
    amp = conv_ops(precision="amp-fp16")["conv2d"]
    assert [o.key for o in v100.kernel_options(amp)] == ["conv_fwd"]


def test_a_5x5_layer_runs_non_fused_winograd_only():
    """cuDNN's WINOGRAD_NONFUSED takes 5x5 filters as F(4x4, 5x5): 64 products per 16 outputs
    of 25 taps, 6.25x fewer multiplies than the direct count; its fused kernel is 3x3 only."""
    v100 = model_for("v100")
    five = conv_ops(channels=192, size=28, kernel=5)["conv2d"]
    options = {o.algorithm: o for o in v100.kernel_options(five)}
    assert "winograd_nonfused" in options and "winograd_fused" not in options
    m, n, k, points, _ = gpu_conv.ConvProblem.from_attrs(five.attrs).winograd("fwd", fused=False)
    assert points == 64 and m == 16 * 7 * 7
    assert 2.0 * m * n * k * points * 6.25 == pytest.approx(five.flops, rel=0.01)


@pytest.mark.parametrize("kernel,stride,sharing", [
    (1, 1, 1), (3, 1, 9), (5, 2, 9), (7, 2, 16), (3, 2, 4)])
def test_a_weight_gradient_shares_each_input_pixel_among_the_taps_over_it(kernel, stride,
                                                                          sharing):
    conv = gpu_conv.ConvProblem(16, 64, 64, (56, 56), (56 // stride, 56 // stride),
                          (kernel, kernel), (stride, stride), (1, 1), 1)
    assert conv.wgrad_sharing == sharing


@settings(max_examples=30, deadline=None)
@given(tm=st.sampled_from([32, 64, 128, 256]), tn=st.sampled_from([8, 32, 64, 128]),
       sharing=st.integers(2, 50))
def test_sharing_the_loaded_columns_raises_a_tiles_rate(tm, tn, sharing):
    alone = gpu_gemm.tile_efficiency(tm, tn)
    shared = gpu_gemm.tile_efficiency(tm, tn, sharing)
    assert alone == gpu_gemm.tile_efficiency(tm, tn, 1)
    # rises with the reuse, by at most the square root of the loads it saves
    assert alone < shared <= alone * math.sqrt((tm + tn) / tm) * 1.000001


def test_a_small_weight_gradient_spreads_its_short_reduction_over_the_sms():
    """A 1x1 layer of 32 channels on 16 x 16 maps at batch 32: one 32 x 32 output tile and
    8192 pixels, too few to split into a round of 80 CTAs of 256 pixels or more, is still
    split 32 ways rather than run in one CTA."""
    v100 = model_for("v100")
    b = GraphBuilder("w", input_shape=(32, 16, 16), batch=32)
    b.flatten(b.conv2d(b.input(), 32, 1, name="conv"))
    g = b.build()
    g = g.copy(g.name, lambda op: replace(op, params=1) if op.kind == "input" else op)
    op = {o.kind: o for o in lower_training(g)}["conv2d_grad_weight"]
    peak = v100.spec.sustained_peak_flops_for("fp32")
    cost = gpu_gemm.gemm_cost(32, 32, 8192, 1, peak, v100.sm_count, 1.0, True,
                              gpu_conv.CONV_TILES, True)
    assert cost.split_k == 32
    assert v100.op_time_s(op) < 50e-6


def test_a_3x3_weight_gradient_runs_faster_per_flop_than_a_1x1_of_the_same_gemm():
    """Same GEMM (M = 64 filters, N = 576, K = N*P*Q): the 3x3 layer's 576 columns are 64
    channels x 9 taps reading the same input pixels, the 1x1 layer's 576 channels each its
    own."""
    v100 = model_for("v100")

    def wgrad(channels, kernel):
        b = GraphBuilder("w", input_shape=(channels, 28, 28), batch=16)
        b.flatten(b.conv2d(b.input(), 64, kernel, padding=kernel // 2, name="conv"))
        g = b.build()
        g = g.copy(g.name, lambda op: replace(op, params=1) if op.kind == "input" else op)
        op = {o.kind: o for o in lower_training(g)}["conv2d_grad_weight"]
        return [o for o in v100.kernel_options(op) if o.algorithm == "implicit_gemm"][0]

    three, one = wgrad(64, 3), wgrad(576, 1)
    assert three.unit_s < 0.9 * one.unit_s


def test_arithmetic_follows_pytorch_defaults():
    a100, v100 = model_for("a100"), model_for("v100")
    conv = conv_ops()["conv2d"]
    assert a100.arithmetic_precision(conv) == "tf32"       # cudnn.allow_tf32 defaults to True
    assert v100.arithmetic_precision(conv) == "fp32"
    assert v100.arithmetic_precision(conv_ops(precision="amp-fp16")["conv2d"]) == "fp16"
    relu = conv_ops(precision="amp-fp16")["relu"]
    assert v100.arithmetic_precision(relu) == "fp32"


def test_half_storage_computes_at_the_fp32_rate_without_tensor_cores():
    """PyTorch's FP32 compute type for half convolutions and GEMMs runs on tensor cores at
    their FP16 rate, but not in the P100's packed FP16 (FP16-accumulate) units."""
    p100 = model_for("p100")
    assert p100.spec.peak_flops_for("fp16") > 1.9 * p100.spec.peak_flops_for("fp32")
    for precision in ("amp-fp16", "fp16"):
        assert p100.arithmetic_precision(conv_ops(precision=precision)["conv2d"]) == "fp32"
    assert model_for("t4").arithmetic_precision(conv_ops(precision="fp16")["conv2d"]) == "fp16"


def test_a_precision_the_part_lacks_names_the_ones_it_has():
    with pytest.raises(HardwareError, match="cannot train in bf16; it can in: fp32, fp16"):
        model_for("v100").op_time_s(conv_ops(precision="bf16")["conv2d"])


def test_mixed_precision_is_faster_on_tensor_cores():
    v100 = model_for("v100")
    def step(precision):
        g = lower_training(with_precision(small_net(), precision))
        return sum(v100.op_time_s(op) for op in g)
    assert step("amp-fp16") < 0.6 * step("fp32")


def small_net():
    b = GraphBuilder("n", input_shape=(64, 56, 56), batch=64)
    x = b.input()
    for i in range(3):
        x = b.relu(b.conv2d(x, 256, 3, padding=1, name=f"c{i}"))
    b.linear(b.flatten(b.adaptive_avgpool(x)), 10)
    return b.build()


def test_the_workspace_is_the_chosen_algorithms():
    v100 = model_for("v100")
    for op in conv_ops().values():
        chosen = v100.chosen_option(op) if op.kind == "conv2d" else None
        if chosen is None:
            assert v100.workspace_bytes(op) == 0
            continue
        expect_zero = chosen.algorithm in ("implicit_gemm", "winograd_fused")
        assert (v100.workspace_bytes(op) == 0) == expect_zero
    amp = conv_ops(precision="amp-fp16")["conv2d"]
    assert v100.chosen_option(amp).algorithm == "implicit_gemm"
    assert v100.workspace_bytes(amp) == 0


def test_only_the_weight_gradient_splits_its_reduction():
    """A batch-1 forward convolution on 80 SMs has too few output tiles to fill them, and a
    GEMM of its shape would split K; cuDNN's forward kernel runs one CTA per output tile, in
    its own tiles (128 output pixels a side)."""
    v100 = model_for("v100")
    fwd = conv_ops(batch=1, channels=512, size=14, kernel=3)["conv2d"]
    shape = gpu_conv.ConvProblem.from_attrs(fwd.attrs).implicit_gemm("fwd")
    peak = v100.spec.sustained_peak_flops_for("fp32")
    assert gpu_gemm.gemm_cost(*shape, peak, v100.sm_count, 1.0).split_k > 1
    implicit = [o for o in v100.kernel_options(fwd) if o.algorithm == "implicit_gemm"][0]
    assert implicit.traffic_bytes == fwd.bytes_moved            # no partial sums
    assert implicit.unit_s == pytest.approx(gpu_gemm.gemm_cost(
        *shape, peak, v100.sm_count, 1.0, split_k=False, tiles=gpu_conv.CONV_TILES,
        transposable=False, k_fill=cudnn_releases.cudnn_release("volta").k_fill).compute_s)


def test_a_convolution_with_few_pixels_fills_part_of_cudnns_tiles():
    """cuDNN's convolution tiles are 128 output pixels a side (gpu_conv.CONV_TILES): a late layer
    at batch 1 (14 x 14 = 196 pixels) runs two of them per column of channels, where cuBLAS,
    free to take a 32-row tile or lay its tiles the other way round, would waste less."""
    sms, peak = 80, 15.7e12
    m, n, k = 196, 512, 4608
    cudnn = gpu_gemm.gemm_cost(m, n, k, 1, peak, sms, 1.0, split_k=False,
                               tiles=gpu_conv.CONV_TILES, transposable=False)
    cublas = gpu_gemm.gemm_cost(m, n, k, 1, peak, sms, 1.0, split_k=False)
    assert cudnn.tile[0] == 128 and cudnn.compute_s > cublas.compute_s
    # laid either way round, the same tiles may put their 128 side along the channels
    either = gpu_gemm.gemm_cost(m, n, k, 1, peak, sms, 1.0, split_k=False,
                                tiles=gpu_conv.CONV_TILES)
    assert either.compute_s <= cudnn.compute_s


def test_fused_winograd_runs_at_its_own_efficiency():
    """cuDNN's fused F(2x2, 3x3) kernel and its non-fused F(4x4, 3x3) are different code: each
    has its own share of the peak (GpuFamily.winograd_fused, .winograd); the weight gradient
    has only the non-fused one."""
    v100 = model_for("v100")
    b = GraphBuilder("c", input_shape=(256, 28, 28), batch=16)
    b.flatten(b.conv2d(b.input(), 256, 3, padding=1, name="conv"))
    ops = {op.kind: op for op in lower_training(b.build())}
    fwd = {o.algorithm: o.key for o in v100.kernel_options(ops["conv2d"])}
    assert fwd["winograd_fused"] == "winograd_fused"
    assert fwd["winograd_nonfused"] == "winograd"
    wgrad = {o.algorithm for o in v100.kernel_options(ops["conv2d_grad_weight"])}
    assert "winograd_fused" not in wgrad and "winograd_nonfused" in wgrad
    slow = replace(v100.family_constants, winograd_fused=0.05)
    fused = [o for o in v100.kernel_options(ops["conv2d"]) if o.algorithm == "winograd_fused"][0]
    assert v100.option_time_s(fused, slow, False) > v100.option_time_s(
        fused, v100.family_constants, False)


@settings(max_examples=20, deadline=None)
@given(share=st.floats(0.1, 1.0))
def test_a_frameworks_streaming_share_paces_its_own_kernels_only(share):
    """A ReLU is the framework's kernel: its time follows the framework's stream_memory; a
    compute-bound library convolution does not move."""
    from dataclasses import replace

    from hwmodels.gpu import builtin_frameworks
    ops = conv_ops(batch=64)
    base = model_for("v100")
    slower = model_for("v100")
    slower.frameworks = {name: replace(fw, stream_memory=fw.stream_memory * share)
                         for name, fw in builtin_frameworks().items()}
    fam = base.family_constants
    relu = ops["relu"]
    stream_s = base.op_time_s(relu) - fam.kernel_overhead_s
    assert slower.op_time_s(relu) - fam.kernel_overhead_s == pytest.approx(stream_s / share)
    assert slower.op_time_s(ops["conv2d"]) == pytest.approx(base.op_time_s(ops["conv2d"]))


@pytest.mark.parametrize("value", [0, 1.5, "fast", True])
def test_a_streaming_share_outside_0_1_is_an_error(value):
    from hwmodels.gpu import load_frameworks
    text = (f"[frameworks.pytorch]\nhost_overhead_s = 2e-5\nstream_memory = "
            f"{value!r}\nfitted_to = \"x\"\n").replace("'", '"').replace("True", "true")
    with pytest.raises(HardwareError, match="frameworks.pytorch.stream_memory must be in"):
        load_frameworks(text, "mine.toml")


def test_a_framework_table_without_its_streaming_share_is_an_error():
    from hwmodels.gpu import load_frameworks
    text = "[frameworks.pytorch]\nhost_overhead_s = 2e-5\nfitted_to = \"x\"\n"
    with pytest.raises(HardwareError, match="takes host_overhead_s, stream_memory, fitted_to"):
        load_frameworks(text, "mine.toml")


def first_layer_ops(channels, kernel, stride, size=64):
    b = GraphBuilder("stem", input_shape=(channels, size, size), batch=8)
    b.flatten(b.conv2d(b.input(), 32, kernel, stride=stride, name="conv"))
    g = b.build()
    # a one-parameter input makes the data gradient part of the step, as DeepBench times it
    g = g.copy(g.name, lambda op: replace(op, params=1) if op.kind == "input" else op)
    return {op.kind: op for op in lower_training(g)}


@settings(max_examples=40, deadline=None)
@given(kernel=st.integers(1, 7), stride=st.integers(1, 3), out=st.integers(4, 30))
def test_a_strided_data_gradient_runs_every_pixel_for_its_busiest_phase(kernel, stride, out):
    """The data gradient as a gather: every input pixel runs the taps of the stride phase
    with the most, ceil(R / stride)^2 (a CTA's pixels mix the phases); at stride 1 that is
    the whole filter, and a 1x1 filter at stride 2 computes every input pixel once."""
    size = (out - 1) * stride + kernel          # unpadded: every input pixel is read
    conv = gpu_conv.ConvProblem(2, 16, 32, (size, size), (out, out), (kernel, kernel),
                          (stride, stride), (1, 1), 1)
    m, n, k, _ = conv.implicit_gemm("dgrad")
    assert (m, n) == (2 * size * size, 16)
    assert k == 32 * math.ceil(kernel / stride) ** 2
    # never less than the taps the gradient really has
    assert m * n * k >= 2 * size * size * 16 * 32 * kernel * kernel / stride ** 2 * 0.999


def test_a_first_layers_data_gradient_scatters_over_its_few_input_channels():
    """With one input channel, the gather's GEMM is one column wide; cuDNN's BWD_DATA_ALGO_0
    multiplies each output pixel's gradient by the filter instead (R x S x C columns) and adds
    the results into the zeroed input gradient: two kernels."""
    v100 = model_for("v100")
    dgrad = first_layer_ops(1, (5, 20), 2)["conv2d_grad_input"]
    gather, scatter = v100.kernel_options(dgrad)[:2]
    assert scatter.unit_s < gather.unit_s / 4 and scatter.kernels == 2
    assert v100.chosen_option(dgrad) == scatter


def test_the_scatter_zeroes_the_input_gradient_before_adding_into_it():
    """BWD_DATA_ALGO_0 adds each output pixel's contributions into dx, so dx is zeroed first,
    a pass of its own that writes dx once, and written again by the atomics that follow the
    GEMM, not under its arithmetic: a 1x1 stride-2 layer, whose scatter computes a quarter of
    the gather's pixels, still pays for writing all of them twice, while the gather writes dx
    under its arithmetic."""
    v100 = model_for("v100")
    dgrad = first_layer_ops(256, (1, 1), 2)["conv2d_grad_input"]
    gather, scatter = v100.kernel_options(dgrad)[:2]
    assert scatter.serial_bytes == 2 * dgrad.out.nbytes and gather.serial_bytes == 0
    assert scatter.traffic_bytes == gather.traffic_bytes - dgrad.out.nbytes
    fam = v100.family_constants
    zeroed = v100.option_time_s(scatter, fam, False)
    unzeroed = v100.option_time_s(scatter._replace(serial_bytes=0.0), fam, False)
    assert zeroed - unzeroed == pytest.approx(
        2 * dgrad.out.nbytes / (v100.mem_bandwidth_Bps * v100.mem_efficiency * fam.memory))


def test_transform_algorithms_launch_a_kernel_per_stage():
    v100 = model_for("v100")
    options = {o.algorithm: o for o in v100.kernel_options(conv_ops()["conv2d"])}
    assert options["winograd_fused"].kernels == 1
    assert options["winograd_nonfused"].kernels == gpu_conv.TRANSFORM_KERNELS
    assert options["fft_tiling"].kernels == gpu_conv.TRANSFORM_KERNELS
    assert options["implicit_gemm"].kernels == 1


@pytest.mark.parametrize("framework,fused", [("mxnet", True), ("tensorflow-xla", True),
                                             ("pytorch", False), ("torch7", False)])
def test_fusing_frameworks_fold_pointwise_ops_into_their_producers(framework, fused):
    ops = conv_ops(batch=64)
    model = model_for("v100")
    model.framework = framework
    pytorch = model_for("v100")
    assert (model.op_time_s(ops["relu"]) == 0.0) == fused
    assert model.op_time_s(ops["conv2d"]) == pytest.approx(pytorch.op_time_s(ops["conv2d"]))


def test_torch7_weight_gradients_read_the_gradient_they_add_to():
    """nn's accGradParameters adds into the gradient (beta = 1), so Torch7's weight gradients
    read the old one too; PyTorch's write a fresh gradient."""
    wgrad = first_layer_ops(64, 3, 1)["conv2d_grad_weight"]
    torch7, pytorch = model_for("v100"), model_for("v100")
    torch7.framework = "torch7"
    read = [o.traffic_bytes + o.serial_bytes for o in torch7.kernel_options(wgrad)]
    fresh = [o.traffic_bytes + o.serial_bytes for o in pytorch.kernel_options(wgrad)]
    assert [r - f for r, f in zip(read, fresh, strict=True)] == [wgrad.out.nbytes] * len(read)


@pytest.mark.parametrize("gpu,published_ms", [("v100", 0.192), ("t4", 0.439)])
def test_fft_tiling_products_are_not_padded_to_the_convolution_tiles(gpu, published_ms):
    """DeepBench's 5x5 layer of 16 x 192 x 28 x 28 -> 32 ran FFT_TILING (cuDNN 7.6): one
    28x28 output tile per image gives each frequency's complex product 16 rows, which a
    128-row convolution tile would pad eightfold and make about 4x the published time."""
    b = GraphBuilder("c", input_shape=(192, 28, 28), batch=16)
    b.flatten(b.conv2d(b.input(), 32, 5, padding=2, name="conv"))
    op = b.build().op("conv")
    model = model_for(gpu)
    model.framework = None
    fft = next(o for o in model.kernel_options(op) if o.algorithm == "fft_tiling")
    simulated_ms = model.option_time_s(fft, model.family_constants, False) * 1e3
    assert published_ms / 2 < simulated_ms < published_ms * 2
