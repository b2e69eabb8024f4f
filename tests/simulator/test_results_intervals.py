"""Exposed communication's interval arithmetic (results.py) against unit cells counted one by
one: with whole-number ends every length is exact, so the two agree exactly."""
from hypothesis import given
from hypothesis import strategies as st

from simulator.results import _merge, _subtract_length, _union_length

INTERVAL = st.tuples(st.integers(0, 30), st.integers(1, 8)).map(
    lambda se: (float(se[0]), float(se[0] + se[1])))
INTERVALS = st.lists(INTERVAL, max_size=12)


def cells(intervals):
    return {k for s, e in intervals for k in range(int(s), int(e))}


@given(INTERVALS, INTERVALS)
def test_exposed_length_is_the_cells_covered_by_a_and_not_b(a, b):
    assert _union_length(a) == len(cells(a))
    assert _subtract_length(a, b) == len(cells(a) - cells(b))


@given(INTERVALS)
def test_merged_intervals_are_sorted_apart_and_cover_the_same_cells(a):
    merged = _merge(sorted(a))
    assert cells(merged) == cells(a)
    assert all(e1 < s2 for (_, e1), (s2, _) in zip(merged, merged[1:], strict=False))
