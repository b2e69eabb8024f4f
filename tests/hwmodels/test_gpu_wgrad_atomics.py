"""cuDNN 5 and 6's weight gradient (cudnn_releases.CudnnRelease.wgrad_atomics): the FP32
filter gradient is zeroed by a kernel of its own, then each CTA adds its product into it as L2
atomics after its main loop, a cost in the filter's size that the batch does not change."""
import dataclasses
from pathlib import Path

from hwmodels import cudnn_releases, gpu, gpu_conv, model_for
from validation.calibrate import published_kernels as pk
from workloads.builder import GraphBuilder
from workloads.training import lower_training

KERNELS_CSV = Path(__file__).resolve().parents[2] / "validation/measured/published/kernels.csv"


def weight_gradient(channels, filters, kernel, height, width, batch):
    b = GraphBuilder("w", input_shape=(channels, height, width), batch=batch)
    b.flatten(b.conv2d(b.input(), filters, kernel, padding=kernel // 2, name="conv"))
    return next(op for op in lower_training(b.build()) if op.kind == "conv2d_grad_weight")


def implicit_gemm(model, op):
    return next(o for o in model.kernel_options(op) if o.algorithm == "implicit_gemm")


def test_the_atomics_grow_with_the_filter_not_the_batch():
    """On the GTX 1080 Ti (cuDNN 6) the 512 -> 512 3x3 layer's additions take its 2.36M filter
    elements at Pascal's L2 atomic rate, the same at batch 8 and 16, and twice those of
    256 -> 512; the zeroing kernel writes the FP32 filter once."""
    model = model_for("gtx1080ti")
    assert cudnn_releases.cudnn_release("pascal").wgrad_atomics
    rate = gpu_conv.l2_atomics_per_clock("pascal") * model.sustained_clock_hz
    small, large = (implicit_gemm(model, weight_gradient(512, 512, 3, 14, 14, batch))
                    for batch in (8, 16))
    assert small.serial_s == large.serial_s == 512 * 512 * 9 / rate
    assert small.serial_bytes == 4.0 * 512 * 512 * 9 and small.kernels == 2
    half = implicit_gemm(model, weight_gradient(256, 512, 3, 14, 14, 8))
    assert half.serial_s == small.serial_s / 2


def test_cudnn_7_adds_no_atomics():
    model = model_for("v100")
    assert not cudnn_releases.cudnn_release("volta").wgrad_atomics
    option = implicit_gemm(model, weight_gradient(512, 512, 3, 14, 14, 8))
    assert option.serial_s == 0.0 and option.serial_bytes == 0.0


def test_the_atomics_score_cudnn_5_and_6s_weight_gradients_better(monkeypatch):
    """DeepBench's weight-gradient rows of the five Maxwell and Pascal cards (cuDNN 5.1 and
    6) at the shipped constants: costed with the atomics they miss by at least a point less
    (mean absolute error) than without."""
    rows = [r for r in pk.read_kernel_rows(str(KERNELS_CSV)).rows
            if r.kind == "conv2d_grad_weight" and r.gpu not in ("v100", "t4")]
    assert len(rows) == 5 * 94

    def mape():
        return sum(abs(pk.simulate_kernel(r) / r.time_s - 1) for r in rows) / len(rows)

    with_atomics = mape()
    release = cudnn_releases.cudnn_release
    monkeypatch.setattr(cudnn_releases, "cudnn_release", lambda *args: dataclasses.replace(
        release(*args), wgrad_atomics=False))
    monkeypatch.setattr(gpu, "_CHOSEN_OPTIONS", {})    # the choices made with the atomics
    assert mape() > with_atomics + 0.01
