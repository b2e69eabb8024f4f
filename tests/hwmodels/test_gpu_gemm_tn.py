"""A TN product (both operands read along K) as each cuBLAS release runs it: its traffic at
the architecture's strided_memory share on every release, and its arithmetic at the tn_gemm
share on the releases whose TN kernels are slower (CublasRelease.slow_tn: CUDA 7.5 to 8.0.88,
not 10.1)."""
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import gpu_gemm
from hwmodels.gpu import builtin_families
from validation.calibrate import published_fit as pf
from validation.calibrate import published_kernels as pk
from validation.calibrate.published_terms import kernel_terms

HEADER = "row_id,kind,gpu,library_stack,precision,M,N,K,transA,transB,time_fwd_ms\n"


def _rows(tmp_path, gpu, stack, m, n, k):
    """The NN and the TN call of one shape on one GPU and CUDA."""
    path = tmp_path / "kernels.csv"
    path.write_text(HEADER + "".join(f"K{i},gemm,{gpu},{stack},FP32,{m},{n},{k},{ta},N,1.0\n"
                                     for i, ta in enumerate("NT")))
    return pk.read_kernel_rows(str(path)).rows


def _with(**constants):
    return {name: replace(fam, **constants) for name, fam in builtin_families().items()}


@pytest.mark.parametrize("gpu,stack,slow", [("Tesla M40", "CUDA 7.5.18", True),
                                            ("Titan X Pascal", "CUDA 8.0", True),
                                            ("GTX 1080 Ti", "CUDA 8.0.88", True),
                                            ("V100", "CUDA 10.1.243", False)])
def test_a_large_tn_product_is_slower_than_its_nn_pair_only_where_the_release_says(
        tmp_path, gpu, stack, slow):
    """5124 x 9124 x 2560 is compute-bound on every GPU: at tn_gemm 0.5 its TN call takes
    twice its NN call's arithmetic on CUDA 7.5, 8.0 and 8.0.88, and the NN call's time on
    CUDA 10.1, whose TN kernels run as fast as its NN ones (DeepBench's V100: 17.5 against
    18.6 ms)."""
    nn, tn = _rows(tmp_path, gpu, stack, 5124, 9124, 2560)
    halved = _with(tn_gemm=0.5)
    nn_s, tn_s = (pk.simulate_kernel(r, halved) for r in (nn, tn))
    if slow:
        assert tn_s == pytest.approx(2 * nn_s, rel=0.01)
    else:
        assert tn_s == pytest.approx(nn_s, rel=1e-9)
    # at tn_gemm 1 the release makes no difference
    assert pk.simulate_kernel(tn, _with(tn_gemm=1.0)) == pytest.approx(
        pk.simulate_kernel(nn, _with(tn_gemm=1.0)), rel=1e-9)


def test_a_narrow_tn_product_moves_its_operands_at_the_strided_share_on_every_release(
        tmp_path):
    """7680 x 16 x 2560 streams its 79 MB: on the V100 (CUDA 10.1) the TN call reads them at
    strided_memory of the NN call's bandwidth, whatever tn_gemm is."""
    nn, tn = _rows(tmp_path, "V100", "CUDA 10.1.243", 7680, 16, 2560)
    fams = _with(strided_memory=0.5, tn_gemm=0.3)
    model = pk.gpu_model("v100", fams, framework=None, cuda=tn.cuda)
    fam = model.family_constants
    (nn_option,), (tn_option,) = (model.kernel_options(r.op) for r in (nn, tn))
    assert not nn_option.strided and tn_option.strided and not tn_option.slow_tn
    nn_memory_s = model.work_terms_s(nn_option, fam, False)[1]
    assert model.work_terms_s(tn_option, fam, False)[1] == pytest.approx(2 * nn_memory_s)


def test_tensor_core_and_non_tn_products_are_never_strided():
    release = gpu_gemm.cublas_release("maxwell")
    assert release.slow_tn and not gpu_gemm.cublas_release("volta").slow_tn
    from hwmodels import model_for
    from workloads.builder import GraphBuilder
    from workloads.training import lower_training
    b = GraphBuilder("g", input_shape=(1024,), batch=64)
    b.linear(b.input(), 1024, bias=False, name="fc")
    maxwell = model_for("titan-x-maxwell")
    by_kind = {op.kind: maxwell.kernel_options(op)[0]
               for op in lower_training(b.build()) if op.kind.startswith("linear")}
    # the forward is a TN call; the gradients NN and NT
    assert by_kind["linear"].strided and by_kind["linear"].slow_tn
    assert not any(o.strided or o.slow_tn for k, o in by_kind.items() if k != "linear")


def test_the_fit_learns_tn_gemm_only_from_a_release_with_slow_tn_kernels(tmp_path):
    v100 = kernel_terms(_rows(tmp_path, "V100", "CUDA 10.1.243", 2048, 16, 2048))
    m40 = kernel_terms(_rows(tmp_path, "Tesla M40", "CUDA 7.5.18", 2048, 16, 2048))
    assert {"strided_memory"} <= pf._used_parameters([v100])
    assert "tn_gemm" not in pf._used_parameters([v100])
    assert {"strided_memory", "tn_gemm"} <= pf._used_parameters([m40])


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 8192), n=st.integers(1, 8192), k=st.integers(1, 8192),
       share=st.floats(0.25, 1.0), gpu=st.sampled_from(["m40", "gtx1080ti", "v100"]))
def test_a_lower_tn_share_never_makes_a_tn_call_faster(m, n, k, share, gpu):
    from workloads.builder import GraphBuilder
    b = GraphBuilder("g", input_shape=(k,), batch=n)
    b.linear(b.input(), m, bias=False, name="fc")      # its forward: the TN call m x n x k
    op = b.build().op("fc")
    times = []
    for value in (1.0, share):
        model = pk.gpu_model(gpu, _with(tn_gemm=value, strided_memory=value), framework=None)
        times.append(model.op_time_s(op))
    assert times[1] >= times[0] * (1 - 1e-12)
