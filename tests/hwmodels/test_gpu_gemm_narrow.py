"""cuBLAS's own streaming: a GEMM's (and gemv's) traffic at the architecture's gemm_memory
share, a convolution's at cuDNN's `memory`; and CUDA 8.0.88's 16-column products, which run
as two passes of 8 columns, each streaming the wide operand (from DRAM where it does not fit
in the L2)."""
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import gpu_gemm
from hwmodels.gpu import builtin_families
from validation.calibrate import published_fit as pf
from validation.calibrate import published_kernels as pk
from validation.calibrate.published_terms import kernel_terms

GEMM_HEADER = "row_id,kind,gpu,library_stack,precision,M,N,K,transA,transB,time_fwd_ms\n"
CONV_HEADER = ("row_id,kind,gpu,library_stack,precision,W,H,C,N_batch,K_filters,filter_h,"
               "filter_w,pad_h,pad_w,stride_h,stride_w,time_fwd_ms\n")


def _gemm(tmp_path, gpu, stack, m, n, k, trans_a="N"):
    path = tmp_path / "gemm.csv"
    path.write_text(GEMM_HEADER + f"G1,gemm,{gpu},{stack},FP32,{m},{n},{k},{trans_a},N,1.0\n")
    (row,) = pk.read_kernel_rows(str(path)).rows
    return row


def _conv(tmp_path):
    """A 1x1 layer of 64 channels on 112x112 maps at batch 32: memory-bound."""
    path = tmp_path / "conv.csv"
    path.write_text(CONV_HEADER + "C1,conv,V100,CUDA 10.1.243,FP32,112,112,64,32,64,1,1,0,0,"
                                  "1,1,1.0\n")
    return pk.read_kernel_rows(str(path)).rows[0]


def _with(**constants):
    return {name: replace(fam, **constants) for name, fam in builtin_families().items()}


@pytest.mark.parametrize("cuda,passes", [((7, 5, 0), 1), ((8, 0, 0), 1), ((8, 0, 88), 2),
                                         ((10, 1, 0), 1)])
def test_sixteen_column_products_take_two_passes_on_cuda_8_0_88(cuda, passes):
    release = gpu_gemm.cublas_release("pascal", cuda)
    assert release.wide_operand_reads(4096, 16) == passes
    assert release.wide_operand_reads(16, 4096) == passes      # narrow either way round
    assert release.wide_operand_reads(4096, 8) == 1             # one pass of 8 columns
    assert release.wide_operand_reads(4096, 32) == 1            # a tile's width


@settings(max_examples=50, deadline=None)
@given(m=st.integers(1, 1 << 14), n=st.integers(1, 1 << 14),
       cuda=st.sampled_from([r.version for r in gpu_gemm.CUBLAS_RELEASES]))
def test_a_product_reads_its_wide_operand_at_least_once_and_twice_at_most(m, n, cuda):
    reads = gpu_gemm.cublas_release(None, cuda).wide_operand_reads(m, n)
    assert 1 <= reads <= 2
    if not gpu_gemm.NARROW_PASS_COLUMNS < min(m, n) <= 16:
        assert reads == 1


def test_the_second_pass_reads_the_wide_operand_again(tmp_path):
    """4096 x 16 x 4096 NN on the GTX 1080 Ti: CUDA 8.0.88's call moves the 67 MB matrix once
    more than CUDA 10.1's would on the same card."""
    old, new = (_gemm(tmp_path, "GTX 1080 Ti", stack, 4096, 16, 4096)
                for stack in ("CUDA 8.0.88", "CUDA 10.1.243"))
    old_model, new_model = (pk.gpu_model("gtx1080ti", framework=None, cuda=r.cuda)
                            for r in (old, new))
    old_bytes = old_model.chosen_option(old.op).traffic_bytes
    new_bytes = new_model.chosen_option(new.op).traffic_bytes
    assert old_bytes - new_bytes == pytest.approx(4096 * 4096 * 4)


def test_the_second_pass_finds_a_wide_operand_that_fits_in_the_l2(tmp_path, monkeypatch):
    """1024 x 16 x 512 NN on the GTX 1080 Ti (2.75 MB of L2): the 2 MB matrix the first pass
    read is still in the L2 for the second, so the call moves it from DRAM once, as a single
    pass would (0.011 ms measured, as for 512 x 16 x 512)."""
    row = _gemm(tmp_path, "GTX 1080 Ti", "CUDA 8.0.88", 1024, 16, 512)
    model = pk.gpu_model("gtx1080ti", framework=None, cuda=row.cuda)
    assert model.spec.l2_bytes > 1024 * 512 * 4
    assert model.cuda_version is not None
    assert gpu_gemm.cublas_release("pascal", model.cuda_version).wide_operand_reads(1024, 16) == 2
    two_passes = model.kernel_options(row.op)
    monkeypatch.setattr(gpu_gemm.CublasRelease, "wide_operand_reads", lambda self, m, n: 1)
    one_pass = model.kernel_options(row.op)
    assert ([o.traffic_bytes for o in two_passes]
            == pytest.approx([o.traffic_bytes for o in one_pass]))


def test_cublas_kernels_stream_at_gemm_memory_and_cudnn_kernels_at_memory(tmp_path):
    """Halving gemm_memory doubles a memory-bound GEMM's traffic time and leaves a
    convolution's alone; halving memory does the converse."""
    gemm, conv = _gemm(tmp_path, "V100", "CUDA 10.1.243", 7680, 16, 2560), _conv(tmp_path)

    def memory_s(row, **constants):
        model = pk.gpu_model("v100", _with(**constants), framework=None, cuda=row.cuda)
        option = model.chosen_option(row.op)
        return model.work_terms_s(option, model.family_constants, False)[1], option

    for row, own, other in ((gemm, "gemm_memory", "memory"), (conv, "memory", "gemm_memory")):
        full_s, option = memory_s(row, **{own: 1.0, other: 1.0})
        assert option.cublas == (row is gemm)
        assert memory_s(row, **{own: 0.5, other: 1.0})[0] == pytest.approx(2 * full_s)
        assert memory_s(row, **{own: 1.0, other: 0.5})[0] == pytest.approx(full_s)


def test_the_fit_learns_gemm_memory_only_from_cublas_rows(tmp_path):
    gemm = kernel_terms([_gemm(tmp_path, "V100", "CUDA 10.1.243", 2048, 16, 2048)])
    conv = kernel_terms([_conv(tmp_path)])
    assert "gemm_memory" in pf._used_parameters([gemm])
    assert "gemm_memory" not in pf._used_parameters([conv])
