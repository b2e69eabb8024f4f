"""The GPU model's GEMMs with their operands' transposes as cuBLAS takes them: which way
round a product may be tiled, and the calls a linear layer's passes make."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import gpu_gemm
from validation.calibrate import published_kernels as pk

HEADER = "row_id,kind,gpu,library_stack,precision,M,N,K,transA,transB,time_fwd_ms\n"


def test_a_linear_layers_passes_make_the_calls_addmm_makes():
    """Row-major activations and weights, read column-major by cuBLAS: the forward computes
    W^T x^T (TN), the input gradient W dy^T (NN), the weight gradient x^T dy (NT), each the
    transpose of the row-major product."""
    rows, n_in, n_out = 32, 1024, 10
    assert gpu_gemm.blas_call("forward", rows, n_out, n_in) == (n_out, rows, n_in, "TN")
    assert gpu_gemm.blas_call("grad_input", rows, n_in, n_out) == (n_in, rows, n_out, "NN")
    assert gpu_gemm.blas_call("grad_weight", n_out, n_in, rows) == (n_in, n_out, rows, "NT")
    # a benchmark's direct call keeps its own shape and flags
    assert gpu_gemm.blas_call("forward", rows, n_out, n_in, "NN") == (rows, n_out, n_in, "NN")


def test_a_networks_input_gradient_runs_as_an_nn_call():
    """On a CUDA 7.5 Maxwell the input gradient of a 10-class layer over 4096 features at
    batch 35 (NN: 4096 x 35) is tiled as written, its 35 columns padded to a 64-wide tile;
    the forward (TN: 10 x 35) may turn."""
    from hwmodels import model_for
    from workloads.builder import GraphBuilder
    from workloads.training import lower_training
    b = GraphBuilder("g", input_shape=(64,), batch=35)
    b.linear(b.linear(b.input(), 4096, name="pre"), 10, bias=False, name="fc")
    grad_input = next(op for op in lower_training(b.build())
                      if op.kind == "linear_grad_input" and op.attrs["in_features"] == 4096)
    maxwell = model_for("titan-x-maxwell")
    rate = maxwell.spec.sustained_peak_flops_for("fp32") / maxwell.sm_count
    # 4096 / 128 = 32 tiles of 128 x 64 over 4096 + 32 k-steps, on 24 SMs: two rounds
    padded_s = 2 * 2.0 * 128 * 64 * (10 + gpu_gemm.K_FILL) / (
        rate * gpu_gemm.tile_efficiency(128, 64))
    assert maxwell.kernel_options(grad_input)[0].unit_s == pytest.approx(padded_s)


@pytest.mark.parametrize("transposes", ["NN", "TN", "NT", "TT"])
def test_only_a_product_of_two_alike_operands_needs_tt_kernels_to_turn(transposes):
    """C^T = op(B)^T op(A)^T swaps the operands and flips both flags."""
    without = gpu_gemm.cublas_release("maxwell")
    assert not without.tt_kernels
    assert without.tiles_either_way(transposes) == (transposes in ("TN", "NT"))
    assert gpu_gemm.cublas_release("volta").tiles_either_way(transposes)


def _kernel_rows(tmp_path, lines):
    path = tmp_path / "kernels.csv"
    path.write_text(HEADER + "".join(lines))
    return pk.read_kernel_rows(str(path))


def test_cuda_7_5_tiles_an_nn_product_as_written(tmp_path):
    """DeepBench on the M40 (CUDA 7.5): 35 x 8457 x 2560 takes 1.32 ms NN, where its 128-row
    tiles along M pad 35 rows to 128, and 0.98 ms TN, turned so they run along N. CUDA 10.1
    on the V100 turns either (0.26 and 0.28 ms)."""
    table = _kernel_rows(tmp_path, [
        f"{i},gemm,{gpu},{stack},FP32,35,8457,2560,{ta},N,1.0\n"
        for i, (gpu, stack, ta) in enumerate(
            (g, s, t) for g, s in (("Tesla M40", "CUDA 7.5.18"), ("V100", "CUDA 10.1.243"))
            for t in "NT")])
    m40_nn, m40_tn, v100_nn, v100_tn = (pk.simulate_kernel(r) for r in table.rows)
    assert m40_nn > 1.3 * m40_tn
    assert v100_nn == pytest.approx(v100_tn)


def test_cuda_7_5_has_no_gemv_for_a_transposed_a(tmp_path):
    """DeepBench, 1024 x 8 x 500,000 on the M40 (CUDA 7.5): NN streams the matrix once in
    the gemv-like kernel (8.0 ms); TN takes 33.6 ms, about its 16-column pair's 35.8, as it
    runs in tiles. CUDA 8.0's Titan X (Pascal) streams both (7.8 and 6.7 ms)."""
    table = _kernel_rows(tmp_path, [
        f"{i},gemm,{gpu},{stack},FP32,1024,{n},500000,{ta},N,1.0\n"
        for i, (gpu, stack, n, ta) in enumerate(
            (g, s, n, t) for g, s in (("Tesla M40", "CUDA 7.5.18"),
                                      ("Titan X (Pascal)", "CUDA 8.0"))
            for n, t in ((8, "N"), (8, "T"), (16, "T")))])
    m40_nn, m40_tn, m40_tn16, tp_nn, tp_tn, _ = (pk.simulate_kernel(r) for r in table.rows)
    assert m40_tn > 2 * m40_nn and m40_tn == pytest.approx(m40_tn16, rel=0.05)
    assert tp_tn < 1.2 * tp_nn


def test_cuda_8_0_has_no_gemv_for_a_transposed_b(tmp_path):
    """DeepBench on the Titan X (Pascal), CUDA 8.0: 512 x 16 x 512 takes 0.011 ms NN, in the
    gemv-like kernel, and 0.046 ms NT, as NT 32 columns (0.047 ms) do in a 128x128 tile."""
    table = _kernel_rows(tmp_path, [
        f"{i},gemm,Titan X (Pascal),CUDA 8.0,FP32,512,{n},512,N,{tb},1.0\n"
        for i, (n, tb) in enumerate(((16, "N"), (16, "T"), (32, "T")))])
    nn, nt, nt32 = (pk.simulate_kernel(r) for r in table.rows)
    assert nt > 3 * nn and nt == pytest.approx(nt32, rel=0.05)


def test_a_transpose_flag_other_than_n_or_t_is_a_named_skip(tmp_path):
    table = _kernel_rows(tmp_path, ["K1,gemm,V100,CUDA 10.1,FP32,64,64,64,X,N,0.01\n",
                                    "K2,gemm,V100,CUDA 10.1,FP32,64,64,64,,,0.01\n"])
    assert [s.row_id for s in table.skipped] == ["K1"]
    assert "transA" in table.skipped[0].reason
    assert table.rows[0].op.attrs["cublas_transposes"] == "NN"     # blank: the plain operand


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 9000), n=st.integers(1, 9000), k=st.integers(1, 5000),
       architecture=st.sampled_from(["maxwell", "pascal", "volta"]))
def test_a_product_that_may_turn_costs_the_same_either_way_round(m, n, k, architecture):
    release = gpu_gemm.cublas_release(architecture)
    cost = [gpu_gemm.gemm_cost(a, b, k, 1, 10e12, 28, 1.0, release.splits_k(a, b, k),
                               release.tiles, release.tiles_either_way("TN")).compute_s
            for a, b in ((m, n), (n, m))]
    assert cost[0] == pytest.approx(cost[1])

