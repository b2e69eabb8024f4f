"""The Gaussian process over a GEMM fit's residuals (hwmodels/residual_gp.py)."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.residual_gp import LENGTH_SCALE_BOUNDS, ResidualGP


def smooth_points(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 6.0, size=(n, 2))
    x[:, 1] = 3.0                       # a dimension that does not vary
    return x, 0.3 * np.sin(x[:, 0])


def test_interpolates_a_smooth_residual_between_points():
    x, y = smooth_points()
    gp = ResidualGP(x, y)
    for at in (1.3, 2.9, 4.4):
        assert abs(gp.predict([at, 3.0]) - 0.3 * np.sin(at)) < 0.03


def test_fades_to_no_correction_far_from_every_point():
    x, y = smooth_points()
    gp = ResidualGP(x, y)
    assert abs(gp.predict([40.0, 3.0])) < 1e-6


def test_a_dimension_that_never_varied_is_ignored():
    x, y = smooth_points()
    gp = ResidualGP(x, y)
    assert gp.predict([1.3, 3.0]) == gp.predict([1.3, 50.0])


def test_disagreeing_repeats_are_noise_not_signal():
    # the same shape measured twice, 10% apart: the residual there is between them, shrunk
    x = np.array([[0.0], [0.0], [5.0], [5.0], [10.0], [10.0]])
    y = np.array([0.05, -0.05, 0.15, 0.05, -0.1, 0.0])
    gp = ResidualGP(x, y)
    assert -0.05 < gp.predict([0.0]) < 0.05
    assert 0.0 < gp.predict([5.0]) < 0.15
    assert gp.noise_var > 1e-4


def test_no_points_and_one_point():
    assert ResidualGP(np.zeros((0, 3)), np.zeros(0)).predict([1.0, 2.0, 3.0]) == 0.0
    one = ResidualGP(np.array([[1.0, 2.0]]), np.array([0.2]))
    assert 0.0 < one.predict([1.0, 2.0]) <= 0.2


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.floats(-0.5, 0.5)),
                min_size=2, max_size=30))
def test_hyperparameters_stay_in_bounds_and_fit_is_deterministic(rows):
    data = np.array(rows)
    a, b = ResidualGP(data[:, :2], data[:, 2]), ResidualGP(data[:, :2], data[:, 2])
    lo, hi = LENGTH_SCALE_BOUNDS
    assert ((a.length_scales >= lo) & (a.length_scales <= hi)).all()
    assert np.array_equal(a.weights, b.weights)
    key = data[0, :2]
    value = a.predict(key)
    assert np.isfinite(value) and value == b.predict(key)
