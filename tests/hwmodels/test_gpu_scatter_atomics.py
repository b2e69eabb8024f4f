"""The data gradient as cuDNN's releases run it: the scatter (BWD_DATA_ALGO_0) adds its products
into dx as L2 atomics at a rate per architecture (gpu_conv.L2_ATOMICS_PER_CLOCK), and the gather
(BWD_DATA_ALGO_1) of cuDNN 5 and 6 runs every filter tap at any stride."""
import math
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import cudnn_releases, gpu_conv, model_for
from validation.calibrate import published_kernels as pk
from workloads.builder import GraphBuilder
from workloads.training import lower_training

KERNELS_CSV = Path(__file__).resolve().parents[2] / "validation/measured/published/kernels.csv"


def data_gradient(channels, kernel, stride, size=40, batch=4, filters=32):
    b = GraphBuilder("stem", input_shape=(channels, size, size), batch=batch)
    b.flatten(b.conv2d(b.input(), filters, kernel, stride=stride, name="conv"))
    g = b.build()
    # a one-parameter input makes the data gradient part of the step
    g = g.copy(g.name, lambda op: replace(op, params=1) if op.kind == "input" else op)
    return next(op for op in lower_training(g) if op.kind == "conv2d_grad_input")


@settings(max_examples=30, deadline=None)
@given(channels=st.integers(1, 64), kernel=st.integers(1, 7), stride=st.integers(1, 3),
       gpu=st.sampled_from(["m40", "titan-xp", "v100", "t4", "a100"]))
def test_the_scatter_pays_one_atomic_per_product_element(channels, kernel, stride, gpu):
    """N*P*Q x C*R*S additions into dx at the architecture's rate and the sustained clock,
    after the GEMM."""
    model = model_for(gpu)
    model.framework = None
    op = data_gradient(channels, kernel, stride)
    conv = gpu_conv.ConvProblem.from_attrs(op.attrs)
    n, _, p, q = op.attrs["out_shape"]
    assert conv.dgrad_scatter_atomics == n * p * q * channels * kernel * kernel
    scatter = model.kernel_options(op)[1]
    rate = gpu_conv.l2_atomics_per_clock(model.spec.architecture) * model.sustained_clock_hz
    assert scatter.serial_s == pytest.approx(conv.dgrad_scatter_atomics / rate)
    fam = model.family_constants
    without = model.option_time_s(scatter._replace(serial_s=0.0), fam, False)
    assert model.option_time_s(scatter, fam, False) == pytest.approx(without + scatter.serial_s)


def test_an_architecture_without_a_fitted_rate_takes_the_newest_fitted_one():
    newest = gpu_conv.L2_ATOMICS_PER_CLOCK[gpu_conv.L2_ATOMICS_NEWEST_FITTED]
    assert gpu_conv.l2_atomics_per_clock("hopper") == newest
    assert gpu_conv.l2_atomics_per_clock(None) == newest


@pytest.mark.parametrize("kernel, stride", [((5, 10), (2, 2)), ((3, 3), (2, 2)), ((1, 1), (2, 2)),
                                            ((3, 3), (1, 1))])
def test_cudnn_5_and_6_gather_every_tap_at_any_stride(kernel, stride):
    """Their strided gather runs all R x S taps per input pixel; cuDNN 7's runs the busiest
    stride phase's, ceil(R / s_h) x ceil(S / s_w). At stride 1 the two agree."""
    conv = gpu_conv.ConvProblem(4, 32, 32, (79, 341), (38, 166), kernel, stride, (1, 1), 1)
    m, n, k_all, _ = conv.implicit_gemm("dgrad", stride_phases=False)
    m7, n7, k_phase, _ = conv.implicit_gemm("dgrad", stride_phases=True)
    assert (m, n) == (m7, n7) == (4 * 79 * 341, 32)
    assert k_all == 32 * kernel[0] * kernel[1]
    assert k_phase == 32 * math.ceil(kernel[0] / stride[0]) * math.ceil(kernel[1] / stride[1])
    assert not cudnn_releases.cudnn_release("maxwell").dgrad_stride_phases
    assert not cudnn_releases.cudnn_release(None, (6, 0, 21)).dgrad_stride_phases
    assert cudnn_releases.cudnn_release(None, (7, 6, 2)).dgrad_stride_phases


def _dgrad_mape(rows, architecture, rate, monkeypatch):
    monkeypatch.setitem(gpu_conv.L2_ATOMICS_PER_CLOCK, architecture, rate)
    errors = [abs(pk.simulate_kernel(r) / r.time_s - 1) for r in rows]
    return sum(errors) / len(errors)


@pytest.mark.parametrize("architecture", ["maxwell", "pascal", "volta", "turing"])
def test_each_fitted_rate_is_the_best_for_its_architectures_data_gradients(architecture,
                                                                         monkeypatch):
    """The rate fitted on DeepBench's data gradients of an architecture: a quarter more or
    less scores its rows no better."""
    rows = [r for r in pk.read_kernel_rows(str(KERNELS_CSV)).rows
            if r.kind == "conv2d_grad_input"
            and model_for(r.gpu).spec.architecture == architecture]
    assert rows
    fitted = gpu_conv.L2_ATOMICS_PER_CLOCK[architecture]
    at_fit = _dgrad_mape(rows, architecture, fitted, monkeypatch)
    for other in (fitted / 1.25, fitted * 1.25):
        assert _dgrad_mape(rows, architecture, other, monkeypatch) >= at_fit - 1e-9
