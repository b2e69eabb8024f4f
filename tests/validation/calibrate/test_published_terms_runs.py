"""Terms.predict_s takes each op's fastest option over the runs of options _terms lays out
(ufunc.reduceat); any other layout goes through ufunc.at. Both give the same seconds, bit for
bit, whatever the constants."""
import copy
import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from validation.calibrate import published_fit as pf
from validation.calibrate import published_terms as pt

EFFICIENCY = st.floats(0.05, 1.0)


@st.composite
def terms_and_family(draw):
    options_per_op = draw(st.lists(st.integers(1, 4), min_size=1, max_size=12))
    n_rows = draw(st.integers(1, 3))
    ops_per_row = [0] * n_rows
    rows_of_op = sorted(draw(st.integers(0, n_rows - 1)) for _ in options_per_op)
    for r in rows_of_op:
        ops_per_row[r] += 1
    op_of_option = np.repeat(np.arange(len(options_per_op)), options_per_op)
    n = len(op_of_option)

    def column(elements, dtype=float):
        return np.array(draw(st.lists(elements, min_size=n, max_size=n)), dtype=dtype)

    seconds = st.floats(0.0, 1e-3)
    terms = pt.Terms(
        np.array(rows_of_op)[op_of_option], op_of_option,
        column(st.integers(0, len(pt.KEYS) - 1), int),
        column(st.booleans(), bool), column(seconds), column(seconds), column(seconds),
        column(st.integers(1, 3)), column(seconds), np.array(ops_per_row),
        np.full(n_rows, 1e-3), [f"r{i}" for i in range(n_rows)],
        [draw(st.sampled_from([None, "pytorch"])) for _ in range(n_rows)], np.ones(n_rows))
    terms.set_frameworks({"pytorch": draw(st.floats(1e-6, 3e-4))},
                         {"pytorch": draw(EFFICIENCY)})
    fam = dataclasses.replace(pf.START, **{k: draw(EFFICIENCY) for k in pt.KEYS[1:]},
                              tensor_core=draw(EFFICIENCY), memory=draw(EFFICIENCY),
                              kernel_overhead_s=draw(st.floats(1e-6, 5e-5)))
    return terms, fam


@settings(max_examples=60, deadline=None)
@given(terms_and_family())
def test_the_runs_of_options_give_what_ufunc_at_gives(case):
    terms, fam = case
    assert terms._op_starts is not None   # _terms' layout: the fast path is taken
    scattered = copy.copy(terms)
    scattered.__dict__["_op_starts"] = None   # as a layout out of runs is costed
    fast, reference = terms.predict_s(fam), scattered.predict_s(fam)
    assert fast.tobytes() == reference.tobytes()


def test_options_out_of_runs_are_not_taken_for_runs():
    base = dict(row_of_option=np.zeros(3, int), key=np.zeros(3, int),
                tensor=np.zeros(3, bool), unit_s=np.ones(3), memory_s=np.ones(3),
                serial_memory_s=np.zeros(3), kernels=np.ones(3), serial_s=np.zeros(3),
                ops_per_row=np.array([2]), measured_s=np.ones(1), labels=["r"],
                frameworks=[None])
    assert pt.Terms(op_of_option=np.array([0, 1, 0]), **base)._op_starts is None
    assert pt.Terms(op_of_option=np.array([0, 2, 2]), **base)._op_starts is None
    assert list(pt.Terms(op_of_option=np.array([0, 0, 1]), **base)._op_starts) == [0, 2]
