"""CUDA 10.1's sliced SGEMM kernels: a product of at most 32 columns (or rows) runs in skinny
tiles whose k loop is sliced over four groups of warps, each thread keeping a wide tile's
register tile (gpu_gemm.CublasRelease.k_slices)."""
import pytest

from hwmodels import gpu_gemm, model_for
from tests.hwmodels.test_gpu_gemm_model import linear_op


def test_a_sliced_skinny_tile_reuses_its_loads_as_a_wide_one():
    assert gpu_gemm.tile_efficiency(128, 32, k_slices=4) == pytest.approx(
        gpu_gemm.tile_efficiency(128, 128))
    assert gpu_gemm.tile_efficiency(32, 64, k_slices=4) == pytest.approx(
        gpu_gemm.tile_efficiency(64, 128))
    assert gpu_gemm.tile_efficiency(128, 32, k_slices=4) > gpu_gemm.tile_efficiency(128, 32)
    # a tile wider than the sliced kernels' is not sliced
    assert gpu_gemm.tile_efficiency(64, 64, k_slices=4) == gpu_gemm.tile_efficiency(64, 64)


@pytest.mark.parametrize("cuda, slices", [((7, 5, 0), 1), ((8, 0, 0), 1), ((8, 0, 88), 1),
                                          ((10, 1, 0), 4)])
def test_only_cuda_10_1_slices_a_narrow_product(cuda, slices):
    release = gpu_gemm.cublas_release(None, cuda)
    assert release.slices(8448, 32) == slices
    assert release.slices(16, 8448) == slices     # narrow either way round
    assert release.slices(8448, 33) == 1          # wider than the sliced kernels' tiles


def test_a_v100_runs_a_32_column_product_faster_than_unsliced_tiles_allow():
    """DeepBench on the V100 (CUDA 10.1): NN 8448 x 32 x 2816 takes 0.135 ms, 0.72 of the FP32
    peak, where an unsliced 128x32 tile sustains 0.63 of the reference tile's rate: the
    sliced kernels' arithmetic is shorter, and never shorter than the peak allows."""
    v100 = model_for("v100")
    v100.framework = None       # the kernel alone
    op = linear_op(8448, 2816, 32, "NN")
    gemm = next(o for o in v100.kernel_options(op) if o.algorithm == "gemm")
    units_peak = v100.spec.sustained_peak_flops_for("fp32")
    unsliced = gpu_gemm.gemm_cost(8448, 32, 2816, 1, units_peak, v100.sm_count, 1.0)
    assert gemm.unit_s < 0.8 * unsliced.compute_s
    assert gemm.unit_s >= op.flops / units_peak
    # a product 64 wide runs the same tiles as before
    wide = linear_op(8448, 2816, 64, "NN")
    gemm_wide = next(o for o in v100.kernel_options(wide) if o.algorithm == "gemm")
    assert gemm_wide.unit_s == pytest.approx(
        gpu_gemm.gemm_cost(8448, 64, 2816, 1, units_peak, v100.sm_count, 1.0).compute_s)
