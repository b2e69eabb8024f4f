"""The GPU model's GEMMs as cuBLAS runs them: tiles and waves, split-K per library
generation, the gemv-like kernel for products a few columns wide."""
import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import gpu_gemm, model_for
from workloads.builder import GraphBuilder
from workloads.training import lower_training


def test_a_partial_last_wave_costs_a_whole_wave():
    sms, peak = 80, 15.7e12
    full = gpu_gemm.gemm_cost(128 * sms, 128, 1024, 1, peak, sms, 1.0).compute_s
    one_more = gpu_gemm.gemm_cost(128 * sms + 1, 128, 1024, 1, peak, sms, 1.0).compute_s
    assert one_more > 1.2 * full


def test_split_k_fills_the_gpu_for_long_reductions():
    cost = gpu_gemm.gemm_cost(64, 64, 1_000_000, 1, 15.7e12, 80, 1.0)
    assert cost.split_k > 1 and cost.extra_bytes > 0


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 512), n=st.integers(1, 512), chunks=st.integers(1, 800))
def test_a_longer_reduction_never_runs_faster(m, n, chunks):
    """Split-K may split a reduction too short to fill every SM in whole rounds: a 64 x 64
    weight gradient over 8,192 pixels must not take longer than over 16,384. (Reductions in
    whole split-K chunks: between them the chunk rule's steps are the library's.)"""
    sms, peak, k = 80, 15.7e12, chunks * gpu_gemm.SPLIT_K_MIN_K
    shorter = gpu_gemm.gemm_cost(m, n, k, 1, peak, sms, 1.0).compute_s
    assert gpu_gemm.gemm_cost(m, n, 2 * k, 1, peak, sms, 1.0).compute_s >= shorter * 0.999


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 20000), n=st.integers(1, 4096), k=st.integers(1, 20000))
def test_gemm_time_is_at_least_the_peak_bound(m, n, k):
    sms, peak = 80, 15.7e12
    cost = gpu_gemm.gemm_cost(m, n, k, 1, peak, sms, 1.0)
    assert math.isfinite(cost.compute_s)
    assert cost.compute_s >= 2.0 * m * n * k / peak * 0.999


def linear_op(rows, in_features, out_features, transposes=None):
    """A linear layer's forward (rows x out_features over in_features); with `transposes`,
    the cuBLAS call a benchmark makes directly (m = rows, n = out_features, k =
    in_features, its op(A), op(B) flags), as validation/calibrate/published_kernels.py reads
    a DeepBench row."""
    b = GraphBuilder("g", input_shape=(in_features,), batch=rows)
    b.linear(b.input(), out_features, bias=False, name="fc")
    op = b.build().op("fc")
    if transposes is None:
        return op
    return dataclasses.replace(op, attrs={**op.attrs, "cublas_transposes": transposes})


def test_maxwells_cublas_pads_a_skinny_product_to_a_wide_tile():
    """DeepBench on a Titan X (Maxwell), CUDA 7.5: 16- and 32-column products of the same
    rows take a wide tile's time; a later library's skinny tiles tell them apart."""
    maxwell, pascal = model_for("titan-x-maxwell"), model_for("gtx1080ti")
    for model, same in ((maxwell, True), (pascal, False)):
        narrow, wide = (model.kernel_options(linear_op(4096, 4096, n))[0].unit_s
                        for n in (16, 32))
        assert (narrow == pytest.approx(wide)) == same
    assert gpu_gemm.cublas_release("maxwell").tiles == gpu_gemm.WIDE_TILES
    assert gpu_gemm.cublas_release("volta").tiles == gpu_gemm.TILES


def test_pascals_cublas_splits_an_nn_reduction_and_never_a_tn_one():
    """DeepBench on CUDA 8.0.88 (GTX 1080 Ti, Titan Xp): NN 2560 x 128 x 2560 takes 0.20 ms,
    less than one round of full-K 128x128 tiles at the peak, so its reduction is split; its TN
    pair takes 0.41-0.50 ms, full-K tiles. A linear layer's forward is a TN call, its input
    gradient an NN one; CUDA 10's cuBLAS on a V100 splits either."""
    pascal = gpu_gemm.cublas_release("pascal")
    assert pascal.splits_k(2560, 128, 2560, "NN") and pascal.splits_k(2560, 128, 2560, "NT")
    assert not pascal.splits_k(2560, 128, 2560, "TN")
    assert gpu_gemm.cublas_release("volta").splits_k(2560, 128, 2560, "TN")
    for gpu, splits in (("gtx1080ti", False), ("v100", True)):
        op = linear_op(2560, 2560, 128)
        gemm = next(o for o in model_for(gpu).kernel_options(op) if o.algorithm == "gemm")
        assert (gemm.traffic_bytes > op.bytes_moved) == splits


def test_maxwells_cublas_splits_only_a_reduction_longer_than_the_output():
    """DeepBench on the M40 (CUDA 7.5): 1760 x 64 x 1760 takes one round of full-K 128x128
    tiles (0.26 ms; splitting it over the idle SMs would take about two thirds of that), while
    512 x 16 x 500,000 spreads its reduction over the SMs."""
    m40 = model_for("m40")
    for (rows, k, n), splits in (((1760, 1760, 64), False), ((512, 500_000, 16), True)):
        op = linear_op(rows, k, n)
        gemm = next(o for o in m40.kernel_options(op) if o.algorithm == "gemm")
        traffic = (rows * k + k * n + rows * n) * op.out.dtype_bytes
        assert (gemm.traffic_bytes > traffic) == splits
        assert gpu_gemm.cublas_release("maxwell").splits_k(rows, n, k) == splits


@pytest.mark.parametrize("text, version", [
    ("CUDA 8.0.88, cuDNN 6.0.21 (cuBLAS for GEMM)", (8, 0, 88)),
    ("CUDA 8, cuDNN 5 (cuBLAS for GEMM)", (8, 0, 0)),
    ("cuda 10.1.243", (10, 1, 243)),
    ("cuDNN 7.6 only", None),
    ("", None),
])
def test_the_cuda_a_library_description_names(text, version):
    assert gpu_gemm.cuda_version(text) == version


def test_a_cuda_version_takes_the_last_release_at_or_below_it():
    """Each release's kernels hold until the next: CUDA 9 runs 8.0.88's, 12.4 runs 10.1's, a
    version older than the first table runs the first's; without a version, the release the
    architecture's tables ran with, or the newest for an architecture without tables."""
    versions = [r.version for r in gpu_gemm.CUBLAS_RELEASES]
    assert versions == sorted(versions)
    assert gpu_gemm.cublas_release(None, (9, 2, 0)).version == (8, 0, 88)
    assert gpu_gemm.cublas_release(None, (12, 4, 0)) is gpu_gemm.CUBLAS_RELEASES[-1]
    assert gpu_gemm.cublas_release(None, (6, 5, 0)) is gpu_gemm.CUBLAS_RELEASES[0]
    assert gpu_gemm.cublas_release("pascal").version == (8, 0, 88)
    assert gpu_gemm.cublas_release("pascal", (8, 0, 0)).tiles == gpu_gemm.WIDE_TILES
    assert gpu_gemm.cublas_release("hopper") is gpu_gemm.CUBLAS_RELEASES[-1]


def test_the_cuda_a_gpu_runs_decides_its_gemm_kernels():
    """DeepBench on a Titan X (Pascal) with CUDA 8.0 as first released: 512 x 32 x 512 takes
    one 128x128 tile's time (0.05 ms), where CUDA 8.0.88 on the same architecture runs a
    skinny tile (0.006-0.007 ms on a GTX 1080 Ti and Titan Xp)."""
    op = linear_op(512, 512, 32)
    times = {}
    for cuda in ((8, 0, 0), (8, 0, 88)):
        model = model_for("titan-x-pascal")
        model.cuda_version, model.framework = cuda, None    # the kernel alone
        times[cuda] = model.op_time_s(op)
    assert times[(8, 0, 0)] > 2 * times[(8, 0, 88)]


def test_a_kernel_row_is_simulated_in_the_library_it_names(tmp_path):
    from validation.calibrate import published_kernels as pk
    header = ("row_id,kind,gpu,library_stack,precision,M,N,K,time_fwd_ms\n")
    path = tmp_path / "kernels.csv"
    path.write_text(header + 'K1,gemm,Titan X (Pascal),"CUDA 8, cuDNN 5",FP32,512,32,512,0.05\n'
                    + "K2,gemm,Titan X (Pascal),,FP32,512,32,512,0.05\n")
    first, unnamed = pk.read_kernel_rows(str(path)).rows
    assert first.cuda == (8, 0, 0) and unnamed.cuda is None
    assert pk.simulate_kernel(first) > 2 * pk.simulate_kernel(unnamed)


def test_a_product_eight_wide_streams_its_matrix_once():
    """DeepBench, M = 1024, N = 8, K = 500,000 (NN): the M40, the Titan X (Maxwell) and the
    V100 take about the time of reading the 2 GB matrix once, where a 128-wide tile would pad
    the 8 columns 16-fold; 16 columns already run in tiles."""
    for gpu in ("titan-x-maxwell", "v100"):
        model = model_for(gpu)
        narrow, wider = (linear_op(1024, 500_000, n, "NN") for n in (8, 16))
        assert model.chosen_option(narrow).algorithm == "gemv"
        assert model.chosen_option(wider).algorithm == "gemm"
        read_once_s = 1024 * 500_000 * 4 / model.mem_bandwidth_Bps
        assert read_once_s < model.op_time_s(narrow) < 2 * read_once_s


def test_a_gemv_reads_the_matrix_its_op_does_not_count():
    """A batch-1 linear layer's input gradient reads the whole weight; the gemv kernel pays
    for it even where the op's own traffic leaves the weight out."""
    v100 = model_for("v100")
    b = GraphBuilder("g", input_shape=(64,), batch=1)
    b.linear(b.linear(b.input(), 25088, name="pre"), 4096, bias=False, name="fc")
    grad_input = next(op for op in lower_training(b.build())
                      if op.kind == "linear_grad_input" and op.attrs["in_features"] == 25088)
    gemv = next(o for o in v100.kernel_options(grad_input) if o.algorithm == "gemv")
    assert gemv.traffic_bytes >= 25088 * 4096 * 4
    assert v100.op_time_s(grad_input) > 25088 * 4096 * 4 / v100.mem_bandwidth_Bps
