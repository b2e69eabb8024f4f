"""Which algorithms cuDNN's weight gradient has per release and architecture
(cudnn_releases.CudnnRelease.gemm_wgrad_architectures): DeepBench's cuDNN 5.1 build ("cuDNN
5") on Maxwell runs it as implicit GEMM (or whole-image FFT), never as non-fused Winograd or
FFT_TILING, which its forward keeps, and which Pascal on that build and every architecture on
5.1.05 and later run."""
from dataclasses import replace
from pathlib import Path

import pytest

from hwmodels import cudnn_releases, gpu, model_for
from validation.calibrate import published_kernels as pk
from workloads.builder import GraphBuilder
from workloads.training import lower_training

KERNELS_CSV = Path(__file__).resolve().parents[2] / "validation/measured/published/kernels.csv"
TILE_TRANSFORMS = {"winograd_nonfused", "fft_tiling"}


def conv_passes(channels=128, size=28, batch=8):
    """A 3x3 stride-1 layer's forward and weight gradient."""
    b = GraphBuilder("c", input_shape=(channels, size, size), batch=batch)
    b.flatten(b.conv2d(b.input(), channels, 3, padding=1, name="conv"))
    return {op.kind: op for op in lower_training(b.build()) if op.kind.startswith("conv2d")}


def algorithms(gpu, kind, cudnn=None):
    model = model_for(gpu)
    model.framework, model.cudnn_version = None, cudnn
    return {o.algorithm for o in model.kernel_options(conv_passes()[kind])}


@pytest.mark.parametrize("gpu", ["m40", "titan-x-maxwell"])
def test_cudnn_5_runs_a_maxwell_weight_gradient_without_transforms_of_tiles(gpu):
    assert not TILE_TRANSFORMS & algorithms(gpu, "conv2d_grad_weight")
    assert "implicit_gemm" in algorithms(gpu, "conv2d_grad_weight")
    # the forward of the same layer keeps them
    assert algorithms(gpu, "conv2d") >= TILE_TRANSFORMS


@pytest.mark.parametrize("gpu, cudnn", [("m40", (5, 1, 5)), ("titan-x-maxwell", (5, 1, 10)),
                                        ("m40", (6, 0, 21)), ("m40", (7, 6, 2)),
                                        ("titan-x-pascal", None), ("titan-x-pascal", (5, 1, 5)),
                                        ("titan-xp", None), ("v100", None)])
def test_other_releases_and_architectures_transform_tiles_in_the_weight_gradient(gpu, cudnn):
    assert algorithms(gpu, "conv2d_grad_weight", cudnn) >= TILE_TRANSFORMS


def test_cudnn_4_takes_5s_weight_gradient_on_maxwell():
    release = cudnn_releases.cudnn_release(None, (4, 0, 0))
    assert not release.tiles_wgrad_transforms("maxwell")
    assert release.tiles_wgrad_transforms("pascal")
    assert cudnn_releases.cudnn_release(None, (5, 1, 5)).tiles_wgrad_transforms("maxwell")


def _maxwell_3x3_weight_gradients():
    rows = [r for r in pk.read_kernel_rows(str(KERNELS_CSV)).rows
            if r.kind == "conv2d_grad_weight" and r.gpu in ("m40", "titan-x-maxwell")]
    return [r for r in rows if tuple(r.op.attrs["kernel"]) == (3, 3)
            and tuple(r.op.attrs["stride"]) == (1, 1) and r.op.attrs["in_shape"][1] > 64]


def test_maxwells_3x3_weight_gradients_score_better_as_implicit_gemm(monkeypatch):
    """DeepBench's 3x3 stride-1 weight gradients of 128-512 channels on the M40 and the
    Titan X (Maxwell), cuDNN 5: the shipped constants score them at least 10 points better
    (mean absolute error) costed as cuDNN 5 runs them than with Winograd and FFT_TILING
    offered, where the model's autotuner takes the transforms on most of them."""
    rows = _maxwell_3x3_weight_gradients()
    assert len(rows) == 40

    def mape():
        return sum(abs(pk.simulate_kernel(r) / r.time_s - 1) for r in rows) / len(rows)

    as_gemm = mape()
    releases = tuple(r if r.version != (5, 1, 0) else
                     replace(r, gemm_wgrad_architectures=frozenset())
                     for r in cudnn_releases.CUDNN_RELEASES)
    monkeypatch.setattr(cudnn_releases, "CUDNN_RELEASES", releases)
    monkeypatch.setattr(gpu, "_CHOSEN_OPTIONS", {})    # the choices made under the others
    transformed = [pk.model_algorithm(r) for r in rows]
    assert sum(a in TILE_TRANSFORMS for a in transformed) > len(rows) // 2
    assert mape() > as_gemm + 0.10
