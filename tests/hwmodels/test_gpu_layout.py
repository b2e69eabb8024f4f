"""Memory formats on a GPU: cuDNN's NCHW <-> NHWC transposes around tensor-core
convolutions, and the algorithms it runs in NCHW only."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import gpu_layout, model_for
from workloads.builder import GraphBuilder
from workloads.memory_format import with_memory_format
from workloads.precision import with_precision
from workloads.training import lower_training


def conv_passes(precision="amp-fp16", memory_format="nchw", batch=16, channels=64, size=28,
                kernel=3, stride=1, groups=1):
    """The passes of a convolution that follows another (so it has a data gradient)."""
    b = GraphBuilder("c", input_shape=(channels, size, size), batch=batch)
    first = b.relu(b.conv2d(b.input(), channels, 1, name="first"))
    b.flatten(b.relu(b.conv2d(first, channels, kernel, stride=stride, padding=kernel // 2,
                              groups=groups, name="conv")))
    g = with_memory_format(with_precision(b.build(), precision), memory_format)
    return {op.kind: op for op in lower_training(g)
            if op.kind.startswith("conv2d") and (op.forward or op.name) == "conv"}


@pytest.mark.parametrize("kind", ["conv2d", "conv2d_grad_input", "conv2d_grad_weight"])
def test_nchw_tensor_core_passes_pay_their_transposes_and_nothing_else(kind):
    v100 = model_for("v100")
    nchw = conv_passes()[kind]
    nhwc = conv_passes(memory_format="nhwc")[kind]
    moved, kernels = gpu_layout.transposed_bytes(nchw)
    fam = v100.family_constants
    transposes_s = (moved / (v100.mem_bandwidth_Bps * v100.mem_efficiency * fam.memory)
                    + kernels * fam.kernel_overhead_s)
    fast, slow = v100.chosen_option(nhwc), v100.chosen_option(nchw)
    assert slow.algorithm == fast.algorithm == "implicit_gemm"
    assert v100.option_time_s(slow, fam, True) == pytest.approx(
        v100.option_time_s(fast, fam, True) + transposes_s, rel=1e-12)


@pytest.mark.parametrize("device", ["v100", "a100", "h100"])
@pytest.mark.parametrize("kind", ["conv2d", "conv2d_grad_input", "conv2d_grad_weight"])
def test_the_transposes_are_bare_launches_inside_the_convolution_call(device, kind):
    """cuDNN launches the transposes inside the one cudnnConvolution* call the framework
    makes: the framework's host time is paid once, each transpose is a bare launch, so a
    small NCHW pass is issued in the NHWC pass's host time plus a few microseconds a
    transpose, not a framework op's time each."""
    gpu = model_for(device)
    nchw = conv_passes(batch=1, channels=8, size=4)[kind]
    nhwc = conv_passes(batch=1, channels=8, size=4, memory_format="nhwc")[kind]
    _, transposes = gpu_layout.transposed_bytes(nchw)
    assert gpu.chosen_option(nchw).kernels == gpu.chosen_option(nhwc).kernels + transposes
    assert gpu.device_and_host_s(nchw)[1] == pytest.approx(
        gpu.device_and_host_s(nhwc)[1] + transposes * gpu.kernel_launch_s, rel=1e-12)
    assert 0 < gpu.kernel_launch_s < gpu.host_overhead_s


def test_kernels_timed_alone_have_no_host_time():
    gpu = model_for("v100")
    gpu.framework = None
    assert gpu.kernel_launch_s == 0.0
    assert gpu.device_and_host_s(conv_passes()["conv2d"])[1] == 0.0


def test_the_transposes_move_each_tensor_the_pass_touches_twice():
    fwd = conv_passes(batch=2, channels=8, size=4, kernel=3)["conv2d"]
    act = 2 * 8 * 4 * 4 * 2                     # batch x C x H x W, half
    filt = 8 * 8 * 3 * 3 * 2
    assert gpu_layout.transposed_bytes(fwd) == (2.0 * (act + act + filt), 3)
    wgrad = conv_passes(batch=2, channels=8, size=4, kernel=3)["conv2d_grad_weight"]
    assert gpu_layout.transposed_bytes(wgrad) == (2.0 * (act + act + filt), 3)


def zeroing_bytes(op, option):
    """What an option moves before or after its kernel other than transposes: the data
    gradient's scatter zeroes dx first (a pass of its own, two kernels in all) and writes it
    again with the atomics that follow its GEMM; cuDNN 5 and
    6's weight gradient zeroes its FP32 dW before adding into it with atomics; the
    whole-image FFT's transform kernels move the tensors and write the spectra."""
    scatter = op.kind == "conv2d_grad_input" and option.kernels == 2
    atomic_dw = op.kind == "conv2d_grad_weight" and option.kernels == 2
    if option.algorithm == "fft":
        return option.serial_bytes
    if atomic_dw:
        return 4.0 * op.out.numel
    return 2 * op.out.nbytes if scatter else 0


def test_cuda_core_convolutions_pay_no_transposes():
    # FP32, and FP16 storage on a part without fast half arithmetic (cuDNN computes in FP32
    # on NCHW directly)
    for gpu, precision in (("v100", "fp32"), ("titan-x-maxwell", "fp16")):
        model = model_for(gpu)
        for op in conv_passes(precision=precision).values():
            assert not model.tensor_cores(op)
            assert all(o.serial_bytes == zeroing_bytes(op, o) for o in model.kernel_options(op))


def test_tf32_convolutions_run_nchw_kernels_of_their_own():
    a100 = model_for("a100")
    for op in conv_passes(precision="fp32").values():
        assert a100.arithmetic_precision(op) == "tf32"
        assert all(o.serial_bytes == zeroing_bytes(op, o) for o in a100.kernel_options(op))
    for op in conv_passes(precision="amp-bf16").values():
        assert any(o.serial_bytes > 0 for o in a100.kernel_options(op))


def test_nhwc_loses_winograd_and_fft():
    v100 = model_for("v100")
    nchw = {o.algorithm for o in v100.kernel_options(conv_passes("fp32")["conv2d"])}
    nhwc = {o.algorithm for o in v100.kernel_options(conv_passes("fp32", "nhwc")["conv2d"])}
    assert {"winograd_fused", "fft_tiling"} <= nchw
    assert nhwc == nchw - gpu_layout.NCHW_ONLY_ALGORITHMS == {"implicit_gemm"}


def test_depthwise_convolutions_are_the_same_in_either_format():
    v100 = model_for("v100")
    for kind, op in conv_passes(groups=64).items():
        other = conv_passes(groups=64, memory_format="nhwc")[kind]
        assert v100.op_time_s(op) == v100.op_time_s(other)


def test_only_gpus_are_modelled_in_more_than_one_format():
    assert gpu_layout.memory_formats_for("gpu") == ("nchw", "nhwc")
    assert gpu_layout.memory_formats_for("cpu") == ("nchw",)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 64), channels=st.sampled_from([3, 16, 64, 96, 256]),
       size=st.integers(4, 56), kernel=st.sampled_from([1, 3, 5, 7]),
       stride=st.sampled_from([1, 2]))
def test_nhwc_is_never_slower_on_tensor_cores_nor_faster_on_cuda_cores(batch, channels, size,
                                                                       kernel, stride):
    """Channels-last only removes transposes under tensor cores, and only removes algorithms
    on CUDA cores; cudnn.benchmark takes the algorithm that is fastest on the GPU (the host's
    time per kernel launched can still make a one-kernel algorithm the faster step)."""
    v100 = model_for("v100")
    fam = v100.family_constants

    def gpu_time_s(op):
        return v100.option_time_s(v100.chosen_option(op), fam, v100.tensor_cores(op))

    for precision, faster in (("amp-fp16", True), ("fp32", False)):
        shape = dict(batch=batch, channels=channels, size=size, kernel=kernel, stride=stride)
        nchw, nhwc = conv_passes(precision, **shape), conv_passes(precision, "nhwc", **shape)
        for kind in nchw:
            t_nchw, t_nhwc = gpu_time_s(nchw[kind]), gpu_time_s(nhwc[kind])
            assert (t_nhwc <= t_nchw) if faster else (t_nhwc >= t_nchw)
