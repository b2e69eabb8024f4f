"""cuDNN's convolution kernels per release (cudnn_releases.CUDNN_RELEASES): which release a
library description or an architecture picks, and what each release's fill does to a
convolution's cost."""
from pathlib import Path

import pytest

from hwmodels import cudnn_releases, model_for
from validation.calibrate import published_kernels as pk
from workloads.builder import GraphBuilder
from workloads.training import lower_training

KERNELS_CSV = Path(__file__).resolve().parents[2] / "validation/measured/published/kernels.csv"


@pytest.mark.parametrize("text, version", [
    ("CUDA 8.0.88, cuDNN 6.0.21 (cuBLAS for GEMM)", (6, 0, 21)),
    ("CUDA 7.5.18, cuDNN 5 (cuBLAS for GEMM)", (5, 1, 0)),
    ("cuDNN 5.0.05", (5, 0, 5)),
    ("cuDNN v7", (7, 0, 0)),
    ("cuDNN 7.0.04 (assumed same as main table)", (7, 0, 4)),
    ("cuDNN R4 fp32 (Torch)", (4, 0, 0)),
    ("CUDA 10.1.243", None),
    ("", None),
])
def test_a_library_description_names_its_cudnn(text, version):
    assert cudnn_releases.cudnn_version(text) == version


def test_a_cudnn_version_takes_the_last_release_at_or_below_it():
    assert cudnn_releases.cudnn_release(None, (7, 0, 4)).version == (7, 0, 0)
    assert cudnn_releases.cudnn_release(None, (7, 6, 2)).version == (7, 6, 0)
    assert cudnn_releases.cudnn_release(None, (8, 9, 0)) is cudnn_releases.CUDNN_RELEASES[-1]
    assert cudnn_releases.cudnn_release(None, (4, 0, 0)) is cudnn_releases.CUDNN_RELEASES[0]
    assert cudnn_releases.cudnn_release(None, (3, 0, 0)) is cudnn_releases.CUDNN_RELEASES[0]
    assert cudnn_releases.cudnn_release(None, (5, 1, 10)).version == (5, 1, 5)
    assert cudnn_releases.cudnn_release(None, (5, 1, 3)).version == (5, 1, 0)
    assert cudnn_releases.cudnn_release(None, (5, 0, 5)).version == (5, 0, 0)
    assert cudnn_releases.cudnn_release(None, (6, 0, 21)).version == (6, 0, 0)


def test_every_recorded_algorithm_is_one_its_rows_release_has():
    """A kernel row that names the algorithm cuDNN ran names one its release has: DeepBench's
    "cuDNN 5" rows record WINOGRAD_NONFUSED, new in 5.1, so they are read as a 5.1 build, and
    5.0 (which has no non-fused Winograd) does not offer it. (Two 1x1 stride-2 rows of the
    Titan X (Pascal) also record WINOGRAD_NONFUSED, a shape the library's tables give no
    Winograd: they are left out.)"""
    rows = [r for r in pk.read_kernel_rows(str(KERNELS_CSV)).rows
            if r.algorithm in ("winograd_fused", "winograd_nonfused")
            and tuple(r.op.attrs["stride"]) == (1, 1)]
    nonfused = [r for r in rows if r.algorithm == "winograd_nonfused"]
    assert {r.cudnn for r in nonfused} >= {(5, 1, 0)}
    for r in rows:
        release = cudnn_releases.cudnn_release(None, r.cudnn)
        assert release.offers(r.algorithm, "maxwell", "fwd", tuple(r.op.attrs["kernel"])), r
    five_0 = cudnn_releases.cudnn_release(None, (5, 0, 5))
    assert not five_0.offers("winograd_nonfused", "pascal", "fwd", (3, 3))
    assert five_0.offers("winograd_fused", "pascal", "fwd", (3, 3))


def test_a_gpu_without_a_named_cudnn_runs_its_architectures_tables_release():
    for architecture in ("kepler", "maxwell", "pascal"):
        assert (cudnn_releases.cudnn_release(architecture).version
                <= cudnn_releases.ARCHITECTURE_CUDNN[architecture])
    assert cudnn_releases.cudnn_release("volta") is cudnn_releases.CUDNN_RELEASES[-1]
    assert cudnn_releases.cudnn_release("hopper") is cudnn_releases.CUDNN_RELEASES[-1]


def conv_forward(batch=2, channels=64, size=14):
    b = GraphBuilder("c", input_shape=(channels, size, size), batch=batch)
    b.conv2d(b.input(), channels, 3, padding=1, name="conv")
    b.flatten("conv")
    return next(op for op in lower_training(b.build()) if op.kind == "conv2d")


def options_under(cudnn):
    v100 = model_for("v100")
    v100.framework, v100.cudnn_version = None, cudnn
    return {o.algorithm: o for o in v100.kernel_options(conv_forward())}


def test_a_shorter_fill_shortens_every_cudnn_kernel():
    """cuDNN 7.0 pays the GEMM side's fill per CTA, 7.6 half of it: with a reduction of
    9 x 64 (implicit GEMM) or 64 (Winograd) the fill is a large share of the time."""
    old, new = options_under((7, 0, 4)), options_under((7, 6, 2))
    for algorithm in ("implicit_gemm", "winograd_fused", "winograd_nonfused"):
        assert new[algorithm].unit_s < old[algorithm].unit_s
    # the implicit GEMM's reduction is 576 long: (576 + 16) / (576 + 32) of the time
    ratio = new["implicit_gemm"].unit_s / old["implicit_gemm"].unit_s
    assert ratio == pytest.approx((576 + 16) / (576 + 32))


def test_a_fused_winograd_pays_one_fill_for_all_its_points_where_its_release_does():
    """F(2x2, 3x3) runs 16 products of reduction C = 64 per tile: one fill of 16 in cuDNN
    7.6 (64 + 1 per product), one of 32 per product in 7.0 (64 + 32), in the same blocks."""
    old, new = options_under((7, 0, 4)), options_under((7, 6, 2))
    ratio = new["winograd_fused"].unit_s / old["winograd_fused"].unit_s
    assert ratio == pytest.approx((64 + 16 / 16) / (64 + 32))
    # the non-fused kernels run their products apart: one fill each
    ratio = new["winograd_nonfused"].unit_s / old["winograd_nonfused"].unit_s
    assert ratio == pytest.approx((64 + 16) / (64 + 32))


def test_kepler_runs_no_winograd_in_any_release():
    k80 = model_for("k80")
    op = conv_forward()
    for release in cudnn_releases.CUDNN_RELEASES:
        k80.cudnn_version = release.version
        assert not any(o.algorithm.startswith("winograd") for o in k80.kernel_options(op))


@pytest.mark.parametrize("cudnn, filters, has_nonfused", [
    ((5, 1, 0), 5, False), ((6, 0, 21), 5, False), ((7, 6, 2), 5, True),
    ((5, 1, 0), 3, True), ((6, 0, 21), 3, True), ((7, 6, 2), 3, True),
    ((5, 0, 5), 3, False),
])
def test_cudnn_5_1_and_6_run_non_fused_winograd_on_3x3_filters_only(cudnn, filters,
                                                                      has_nonfused):
    """DeepBench's 5x5 stride-1 layers ran implicit GEMM on cuDNN 5.1 and 6, non-fused
    Winograd or FFT on 7.6: the older releases have no 5x5 Winograd, and 5.0 none at all
    (5.1's release notes list it as new)."""
    b = GraphBuilder("c", input_shape=(64, 14, 14), batch=8)
    b.conv2d(b.input(), 64, filters, padding=filters // 2, name="conv")
    b.flatten("conv")
    titan = model_for("titan-xp")
    titan.framework, titan.cudnn_version = None, cudnn
    for op in lower_training(b.build()):
        if op.kind.startswith("conv2d"):
            algorithms = {o.algorithm for o in titan.kernel_options(op)}
            assert ("winograd_nonfused" in algorithms) == has_nonfused


def test_cudnn_4_has_no_winograd():
    """Winograd came with cuDNN 5: convnet-benchmarks' cuDNN R4 rows run a 3x3 layer as
    implicit GEMM or FFT, on every architecture."""
    assert not {"winograd_fused", "winograd_nonfused"} & set(options_under((4, 0, 0)))
    assert {"winograd_fused", "winograd_nonfused"} <= set(options_under((5, 1, 5)))
    assert "fft_tiling" in options_under((4, 0, 0))


def fused_winograd_unit_s(gpu, cudnn, hw, batch=8, channels=512):
    b = GraphBuilder("c", input_shape=(channels, *hw), batch=batch)
    b.conv2d(b.input(), channels, 3, padding=1, name="conv")
    b.flatten("conv")
    op = next(op for op in lower_training(b.build()) if op.kind == "conv2d")
    model = model_for(gpu)
    model.framework, model.cudnn_version = None, cudnn
    return next(o.unit_s for o in model.kernel_options(op) if o.algorithm == "winograd_fused")


def test_a_fused_winograd_pays_for_whole_strips_of_eight_tiles_and_blocks_of_four_images():
    """A 7x7 map has 4x4 tiles of 2x2, half of each strip of 8 a CTA runs
    (gpu_conv.FUSED_WINOGRAD_BLOCK): it costs what an 8x16 map (4x8 tiles, twice the work)
    does, in every release; and a batch of 1 what a batch of 4 does."""
    for gpu, cudnn in (("titan-xp", (6, 0, 21)), ("m40", (5, 1, 0)), ("v100", (7, 6, 2))):
        assert fused_winograd_unit_s(gpu, cudnn, (7, 7)) == pytest.approx(
            fused_winograd_unit_s(gpu, cudnn, (8, 16)))
        assert fused_winograd_unit_s(gpu, cudnn, (14, 14), batch=1) == pytest.approx(
            fused_winograd_unit_s(gpu, cudnn, (14, 14), batch=4))
        assert fused_winograd_unit_s(gpu, cudnn, (14, 14), batch=5) > fused_winograd_unit_s(
            gpu, cudnn, (14, 14), batch=4)
