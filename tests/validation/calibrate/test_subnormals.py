"""validation.calibrate.subnormals: which ops of a step read subnormal floats, and the probe of
what they cost."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from validation.calibrate import subnormals as sn  # noqa: E402

TINY = float(np.finfo(np.float32).tiny)


def test_an_op_reading_subnormal_floats_is_named_with_its_count():
    a = torch.ones(100, 10)
    a[:30] = TINY / 4                          # 300 subnormal values of 1000
    b = torch.ones(10, 10)
    reads = sn.subnormal_reads(lambda: torch.mm(a, b))
    assert [r.op for r in reads] == ["aten.mm.default"]
    assert (reads[0].subnormal, reads[0].values, reads[0].calls) == (300, 1100, 1)
    assert reads[0].fraction == pytest.approx(300 / 1100)


def test_normal_values_zeros_and_stray_subnormals_are_not_reported():
    a = torch.zeros(1000, 100)
    a[0, 0] = TINY / 2                      # one in 100,000: below REPORT_FRACTION
    b = torch.randn(100, 10)
    assert sn.subnormal_reads(lambda: torch.mm(a, b)) == []


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, -3.5, TINY, TINY / 2, -TINY / 8, 1e-45]),
                min_size=1, max_size=200))
def test_the_count_is_the_number_of_nonzero_values_below_the_smallest_normal(values):
    t = torch.tensor(values, dtype=torch.float32)
    want = sum(1 for x in np.array(values, dtype=np.float32) if x != 0 and abs(x) < TINY)
    reads = sn.subnormal_reads(lambda: t.neg())
    if want < sn.REPORT_FRACTION * len(values):
        assert reads == []
    else:
        assert [(r.op, r.subnormal, r.values) for r in reads] == \
            [("aten.neg.default", want, len(values))]


def test_the_warning_names_the_case_the_ops_the_steps_speedup_and_the_probe():
    reads = [sn.SubnormalRead("aten.mm.default", 25, 100, 2)]
    line = sn.describe("gpt2_s128", reads, 4.83, 152.3)
    assert line.startswith("gpt2_s128:") and "aten.mm.default 25% of 100 values" in line
    assert "4.8x faster with them flushed" in line and "152x slower" in line
    assert "costs normal floats" in line
    assert "subnormal_slowdown" not in sn.describe("gpt2_s128", reads, 4.83, None)


def subnormal_product_step():
    """A step whose product reads 130,000 subnormal floats: 67 MFLOP."""
    x = torch.full((256, 512), TINY / 2)
    w = torch.randn(512, 512, generator=torch.Generator().manual_seed(0))
    return lambda: torch.mm(x, w)


def test_flushing_speeds_up_a_step_of_subnormal_products_as_the_probe_says():
    slowdown = sn.subnormal_slowdown(rounds=3)
    if slowdown < 3:
        pytest.skip(f"this CPU computes subnormal floats at near full speed ({slowdown:.1f}x)")
    assert sn.flush_speedup(subnormal_product_step(), reps=3) > 2
    w = torch.randn(512, 512)
    # normal floats: the same either way (timing noise of a shared machine allowed)
    assert 0.3 < sn.flush_speedup(lambda: torch.mm(w, w), reps=3) < 3


def test_the_probe_reports_a_ratio_near_1_when_the_thread_flushes_subnormals():
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    try:
        flushed = sn.subnormal_slowdown(rounds=3)
    finally:
        torch.set_flush_denormal(False)
    # flushed, both products run on normal floats and zeros: the same work (timing noise
    # of a shared machine allowed)
    assert math.isfinite(flushed) and 0.2 < flushed < 5
    assert sn.subnormal_slowdown(rounds=3) > 0


def test_a_buffer_an_op_overwrites_unread_is_not_a_read():
    """Dropout's bernoulli_ fills fresh memory (whatever bits were there) and an out= buffer
    is written; an in-place add reads its tensor."""
    garbage = torch.full((100,), TINY / 2)
    out = torch.full((100,), TINY / 2)
    assert sn.subnormal_reads(lambda: garbage.clone().bernoulli_(0.5)) == [
        sn.SubnormalRead("aten.clone.default", 100, 100, 1)]
    assert sn.subnormal_reads(lambda: torch.add(torch.ones(100), 1.0, out=out)) == []
    assert [r.op for r in sn.subnormal_reads(lambda: garbage.clone().add_(1.0))] == [
        "aten.add_.Tensor", "aten.clone.default"]       # as many values each: by name


def test_a_view_reads_no_values():
    a = torch.full((10, 10), TINY / 2)
    assert sn.subnormal_reads(lambda: a.t()[::2].unsqueeze(0).view(5, 10)) == []
