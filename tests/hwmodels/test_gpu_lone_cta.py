"""A GEMM whose CTAs all fit in one round runs each alone on its SM, at the architecture's
lone_cta share of the rate CTAs keep when they share SMs (hwmodels/gpu_gemm.py GemmCost.rounds,
GpuFamily.lone_cta)."""
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import gpu_gemm, model_for
from hwmodels.gpu import builtin_families
from validation.calibrate import published_fit as pf
from workloads.builder import GraphBuilder


def linear_op(rows, in_features, out_features):
    b = GraphBuilder("g", input_shape=(in_features,), batch=rows)
    b.linear(b.input(), out_features, bias=False, name="fc")
    return b.build().op("fc")


def gemm_option(model, op):
    return next(o for o in model.kernel_options(op) if o.algorithm == "gemm")


def test_only_a_one_round_gemm_runs_at_the_lone_share():
    v100 = model_for("v100")
    fam = builtin_families()["volta"]
    halved = replace(fam, lone_cta=0.5)
    small = gemm_option(v100, linear_op(256, 1024, 256))       # 4 CTAs on 80 SMs
    large = gemm_option(v100, linear_op(8192, 4096, 4096))     # many rounds
    assert small.lone and not large.lone
    for option, ratio in ((small, 2.0), (large, 1.0)):
        full = v100.work_terms_s(option, replace(fam, lone_cta=1.0), False)[0]
        assert v100.work_terms_s(option, halved, False)[0] == pytest.approx(ratio * full)


def test_the_rounds_of_a_gemm_are_its_busiest_sms_ctas():
    sms = 80
    one = gpu_gemm.gemm_cost(128 * sms, 128, 1024, 1, 15.7e12, sms, 1.0, split_k=False,
                             tiles=((128, 128),), transposable=False)
    two = gpu_gemm.gemm_cost(128 * sms + 1, 128, 1024, 1, 15.7e12, sms, 1.0, split_k=False,
                             tiles=((128, 128),), transposable=False)
    assert (one.rounds, two.rounds) == (1, 2)


def test_every_fitted_share_keeps_more_work_from_finishing_sooner():
    """At half its rate, a lone CTA takes as long as two sharing its SM; below that a GEMM
    one row too large for one round would finish sooner than one that fits: the fit's bound."""
    lo, hi = pf.BOUNDS["lone_cta"]
    assert lo >= 0.5 and hi == 1.0
    assert all(lo <= f.lone_cta <= hi for f in builtin_families().values())


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 4096), extra=st.integers(1, 512), cols=st.integers(1, 1024),
       k=st.integers(1, 4096), lone=st.floats(0.5, 1.0))
def test_more_rows_never_finish_sooner(rows, extra, cols, k, lone):
    def seconds(m):
        cost = gpu_gemm.gemm_cost(m, cols, k, 1, 15.7e12, 80, 1.0, split_k=False,
                                  tiles=((128, 128),), transposable=False)
        return cost.compute_s / (lone if cost.rounds == 1 else 1.0)
    assert seconds(rows + extra) >= seconds(rows) * 0.999
