"""The published fit's use of the kernel table's algorithm column (each cuDNN algorithm's
efficiency is fitted on the rows that ran it) and of the network rows' phase times."""
import numpy as np
import pytest

from validation.calibrate import published_fit as pf
from validation.calibrate import published_gpu as pg
from validation.calibrate import published_kernels as pk
from validation.calibrate import published_terms as pt

HEADER = ("row_id,kind,gpu,precision,M,N,K,W,H,C,N_batch,K_filters,filter_w,filter_h,pad_w,"
          "pad_h,stride_w,stride_h,time_fwd_ms,time_bwd_data_ms,time_bwd_filter_ms,fwd_algo\n")
CONV = "c{i},conv,V100,FP32,,,,28,28,256,16,256,3,3,1,1,1,1,0.5,0.6,0.7,{algo}\n"


def kernel_rows(tmp_path, algos):
    path = tmp_path / "kernels.csv"
    path.write_text(HEADER + "".join(CONV.format(i=i, algo=a) for i, a in enumerate(algos)),
                    encoding="utf-8")
    return pk.read_kernel_rows(str(path)).rows


@pytest.mark.parametrize("column,algorithm", [
    ("WINOGRAD", "winograd_fused"),
    ("WINOGRAD_NONFUSED", "winograd_nonfused"),
    ("IMPLICIT_PRECOMP_GEMM", "implicit_gemm"),
    ("LICIT_PRECOMP_GEMM", "implicit_gemm"),        # cut at its start in the source table
    ("CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM", "implicit_gemm"),
    ("FFT", "fft"),                                 # whole-image FFT (cuDNN 5's)
    ("", None),
])
def test_the_forward_algorithm_column_is_read_onto_the_models_names(tmp_path, column, algorithm):
    rows = kernel_rows(tmp_path, [column])
    by_kind = {r.kind: r for r in rows}
    assert by_kind["conv2d"].algorithm == algorithm
    # the column names the forward pass's algorithm only
    assert by_kind["conv2d_grad_input"].algorithm is None
    assert by_kind["conv2d_grad_weight"].algorithm is None


def test_a_row_with_a_recorded_algorithm_is_fitted_on_that_algorithm_alone(tmp_path):
    recorded, unknown = kernel_rows(tmp_path, ["WINOGRAD", ""])[0::3]
    assert recorded.kind == unknown.kind == "conv2d"
    model = pg.gpu_model("v100", framework=None)
    every = {o.algorithm for o in model.kernel_options(recorded.op)}
    assert len(every) > 1
    terms = pt.kernel_terms([recorded, unknown])
    keys = [pt.KEYS[k] for k, row in zip(terms.key, terms.row_of_option, strict=True)
            if row == 0]
    assert keys == ["winograd_fused"]
    assert len(terms.key[terms.row_of_option == 1]) == len(model.kernel_options(unknown.op))


def test_a_kernel_row_is_scored_on_the_algorithm_it_records(tmp_path):
    """The kernel table costs what the library ran: a row naming an algorithm is simulated as
    that algorithm, whichever the model's autotuner would take; a row naming none (or one its
    release lacks: cuDNN 7.6 has no whole-image FFT) as the model's fastest."""
    winograd, nonfused, implicit, unknown = (
        r for r in kernel_rows(tmp_path, ["WINOGRAD", "WINOGRAD_NONFUSED",
                                          "IMPLICIT_PRECOMP_GEMM", "FFT"])
        if r.kind == "conv2d")
    model = pg.gpu_model("v100", framework=None)
    fam, tensor = model.family_constants, model.tensor_cores(winograd.op)
    cost = {o.algorithm: model.option_time_s(o, fam, tensor)
            for o in model.kernel_options(winograd.op)}
    assert len(set(cost.values())) == len(cost) > 2      # the algorithms' costs differ
    for row in (winograd, nonfused, implicit):
        assert pk.simulate_kernel(row) == pytest.approx(cost[row.algorithm])
        assert pk.simulate_kernel(row, recorded=False) == pytest.approx(min(cost.values()))
    assert unknown.algorithm == "fft" and "fft" not in cost
    assert pk.simulate_kernel(unknown) == pytest.approx(min(cost.values()))
    assert pk.model_algorithm(winograd) == min(cost, key=cost.__getitem__)


def test_the_kernel_report_gives_the_own_choice_and_the_agreement(tmp_path):
    from validation.validate import published as pv
    rows = kernel_rows(tmp_path, ["WINOGRAD", "IMPLICIT_PRECOMP_GEMM", ""])
    groups = {g.name: g for g in pv.kernel_groups(rows)}
    assert set(groups) == {"conv2d", "conv2d" + pv.OWN_CHOICE, "conv2d_grad_input",
                           "conv2d_grad_weight"}
    assert groups["conv2d"].rows == groups["conv2d" + pv.OWN_CHOICE].rows == 3
    # the three rows share one shape, so one fastest algorithm
    fastest = pk.model_algorithm(rows[0])
    named = [r for r in rows if r.algorithm is not None]
    assert pv.algorithm_agreement(rows) == (sum(r.algorithm == fastest for r in named), 2)


NETWORK_HEADER = ("row_id,network,gpu,precision,batch_per_gpu,throughput_img_s,framework,"
                  "fwd_ms,bwd_ms\n")


def network_rows(tmp_path, body):
    path = tmp_path / "rows.csv"
    path.write_text(NETWORK_HEADER + body, encoding="utf-8")
    return pg.read_network_rows(str(path)).rows


def test_a_row_with_phase_times_is_fitted_on_each_phase_and_on_its_step(tmp_path):
    timed, untimed = network_rows(tmp_path, (
        "a,ResNet-18,GTX 1080,FP32,16,320.0,Torch7 (cudnn.torch),16.0,34.0\n"
        "b,ResNet-18,V100,FP32,16,780.0,PyTorch,,\n"))
    terms = pt.network_terms([timed, untimed])
    assert terms.labels == ["a:forward", "a:backward", "b"]
    assert list(terms.step_of_row) == [0, 0, -1]
    assert terms.step_measured_s == pytest.approx([16 / 320.0])
    # every published row weighs one: half the timed row's to its step, a quarter per phase
    assert list(terms.weights) == [0.25, 0.25, 1.0] and list(terms.step_weights) == [0.5]
    assert terms.total_weight == 2.0
    fam = pg.gpu_model("gtx1080").family_constants
    terms.set_frameworks({"torch7": 2e-5, "pytorch": 2e-5}, {"torch7": 0.6, "pytorch": 1.0})
    predicted = terms.predict_s(fam)
    errors = terms.log_errors(fam)
    assert errors[:2] == pytest.approx(0.25 * abs(np.log(predicted[:2] / [0.016, 0.034])))
    assert errors[3] == pytest.approx(0.5 * abs(np.log(predicted[:2].sum() / (16 / 320.0))))


def test_the_fit_sees_how_a_step_splits_into_its_phases(tmp_path):
    """Two rows of one step time, split differently between forward and backward, score
    differently: a fit on totals alone could not tell them apart."""
    even, skewed = (network_rows(tmp_path, f"a,ResNet-18,GTX 1080,FP32,16,320.0,"
                                           f"Torch7 (cudnn.torch),{fwd},{bwd}\n")[0]
                    for fwd, bwd in ((16.0, 34.0), (25.0, 25.0)))
    fam = pg.gpu_model("gtx1080").family_constants
    losses = [pf.loss(fam, [pt.network_terms([row])]) for row in (even, skewed)]
    assert losses[0] != pytest.approx(losses[1], rel=1e-3)
