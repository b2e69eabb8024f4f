"""A layer's bias on a GPU: kernels of their own beside the convolution or GEMM, as cuDNN's,
cuBLAS's and the frameworks' training code runs them (hwmodels/gpu_frameworks.py, bias_pass)."""
from __future__ import annotations

import pytest

from hwmodels import model_for
from hwmodels.gpu import GPUModel
from workloads.builder import GraphBuilder
from workloads.graph import Op
from workloads.training import lower_training


def _conv_ops(bias: bool, batch: int = 16, channels: int = 256, size: int = 28) -> dict[str, Op]:
    b = GraphBuilder("c", input_shape=(channels, size, size), batch=batch)
    stem = b.conv2d(b.input(), channels, 3, padding=1, name="stem")
    b.flatten(b.relu(b.conv2d(stem, channels, 3, padding=1, bias=bias, name="conv")))
    return {op.kind: op for op in lower_training(b.build()) if op.name.startswith("conv")}


def _linear_ops(bias: bool, rows: int = 256, width: int = 4096) -> dict[str, Op]:
    b = GraphBuilder("l", input_shape=(width,), batch=rows)
    stem = b.linear(b.input(), width, bias=False, name="stem")
    b.flatten(b.relu(b.linear(stem, width, bias=bias, name="fc")))
    return {op.kind: op for op in lower_training(b.build()) if op.name.startswith("fc")}


def _gpu(name: str) -> GPUModel:
    gpu = model_for(name)
    assert isinstance(gpu, GPUModel)
    return gpu


def _library_bandwidth_Bps(gpu: GPUModel) -> float:
    return gpu.mem_bandwidth_Bps * gpu.mem_efficiency * gpu.family_constants.memory


@pytest.mark.parametrize("device", ["v100", "gtx1080", "a100"])
@pytest.mark.parametrize("ops", [_conv_ops, _linear_ops])
def test_a_bias_costs_its_own_passes_over_the_output_and_dy(device, ops):
    """The forward add reads and writes the output, the bias gradient reads dy once; each is a
    kernel, so a layer with a bias costs more than one without by those bytes at the
    library's bandwidth plus a kernel's gap, pass by pass."""
    gpu = _gpu(device)
    with_bias, without = ops(True), ops(False)
    forward = next(k for k in with_bias if k in ("conv2d", "linear"))
    grad_weight = f"{forward}_grad_weight"
    bandwidth = _library_bandwidth_Bps(gpu)
    gap_s = gpu.family_constants.kernel_overhead_s
    out_bytes = with_bias[forward].out.nbytes
    expected = {forward: 2.0 * out_bytes / bandwidth + gap_s,       # read + write y
                grad_weight: out_bytes / bandwidth + gap_s}         # read dy
    for kind, extra_s in expected.items():
        added_s = gpu.curve_time_s(with_bias[kind]) - gpu.curve_time_s(without[kind])
        assert added_s == pytest.approx(extra_s, rel=0.02), kind
    # the data gradient never touches the bias
    grad_input = f"{forward}_grad_input"
    assert gpu.curve_time_s(with_bias[grad_input]) == gpu.curve_time_s(without[grad_input])


def test_xla_fuses_the_forward_add_but_not_the_gradient():
    gpu = _gpu("v100")
    gpu.framework = "tensorflow-xla"
    with_bias, without = _conv_ops(True), _conv_ops(False)
    assert gpu.curve_time_s(with_bias["conv2d"]) == gpu.curve_time_s(without["conv2d"])
    assert (gpu.curve_time_s(with_bias["conv2d_grad_weight"])
            > gpu.curve_time_s(without["conv2d_grad_weight"]))


@pytest.mark.parametrize("kind", ["conv2d", "conv2d_grad_weight"])
def test_a_bias_kernel_inside_the_op_is_a_bare_launch(kind):
    """PyTorch adds the bias and reduces its gradient inside the convolution op (its C++
    launches the kernel): the op is issued with the framework's host time once and a bare
    launch for the bias kernel; at small sizes that is the op's time."""
    gpu = _gpu("v100")
    tiny = _conv_ops(True, batch=1, channels=8, size=4)[kind]
    plain = _conv_ops(False, batch=1, channels=8, size=4)[kind]
    assert gpu.device_and_host_s(tiny)[1] == pytest.approx(
        gpu.device_and_host_s(plain)[1] + gpu.kernel_launch_s, rel=1e-12)
    assert gpu.curve_time_s(tiny) == pytest.approx(gpu.host_overhead_s + gpu.kernel_launch_s)


@pytest.mark.parametrize("kind", ["conv2d", "conv2d_grad_weight"])
def test_tensorflows_bias_ops_pay_the_frameworks_host_time(kind):
    """TensorFlow's BiasAdd and BiasAddGrad are ops of their own, each issued by the
    framework (XLA fuses the forward add away, not the gradient)."""
    gpu = _gpu("v100")
    gpu.framework = "tensorflow"
    tiny = _conv_ops(True, batch=1, channels=8, size=4)[kind]
    plain = _conv_ops(False, batch=1, channels=8, size=4)[kind]
    assert gpu.device_and_host_s(tiny)[1] == pytest.approx(
        gpu.device_and_host_s(plain)[1] + gpu.host_overhead_s, rel=1e-12)
