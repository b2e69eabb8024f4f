"""A Gaussian process over the log residuals of a fitted GEMM model: how far measured shapes
near an unmeasured one ran from the fit, and how far to trust them.

The fit (profile_fit.GemmFit) gets the broad curve of time against GEMM shape; the residual
of a measured shape (log of measured / fitted) is 10-25% and has structure the curve misses
(oneDNN's blocking and algorithm choices). Near a measured shape the residual carries over;
far from all of them it should fade to none. A GP with a squared-exponential kernel does both,
and learns from the points themselves how quickly the residual changes along each dimension
(a length scale per dimension) and how much of it is noise (the same shape measured in two
networks differs by 4-9%). Its hyperparameters maximise the marginal likelihood of the
calibration's own points: nothing is tuned to a validation case.

Why not a nearest-neighbour mean: that weighs every dimension alike and trusts any single
point fully; the GP scores better on the calibration grid and the held-out modules
(`python -m validation.experiments.grid_cv`). The same GP over the layouts of other kinds (pools,
normalisation, activations) scored worse and took ten times as long: they keep their
nearest-neighbour correction.
"""
from __future__ import annotations

import math

import numpy as np

# Multiplicative steps of the coordinate search, and its bounds: a length scale (in log
# units of a dimension: 0.7 is a factor 2) below 0.1 would let one point explain itself away,
# one above 30 ignores the dimension
SEARCH_FACTORS = (0.25, 0.5, 0.7, 1.4, 2.0, 4.0)
LENGTH_SCALE_BOUNDS = (0.1, 30.0)
VARIANCE_FLOOR = 1e-4          # (1%)^2: no residual is known better than the timer
SWEEPS = 3


class ResidualGP:
    """Mean of a zero-mean GP (squared-exponential, one length scale per dimension, with
    noise) conditioned on log residuals at log features. Dimensions that do not vary among
    the points carry no information and are left out."""

    def __init__(self, features: np.ndarray, log_residuals: np.ndarray) -> None:
        features = np.asarray(features, float)
        y = np.asarray(log_residuals, float)
        varies = features.std(axis=0) > 1e-9 if len(y) > 1 else np.zeros(features.shape[1], bool)
        self.active = np.flatnonzero(varies)
        self.points = features[:, self.active]
        # squared differences per dimension, computed once for the whole search
        diffs = (self.points[:, None, :] - self.points[None, :, :]) ** 2
        self._diffs = np.moveaxis(diffs, 2, 0)
        spread = max(float(y.var()), VARIANCE_FLOOR) if len(y) else VARIANCE_FLOOR
        self.length_scales = np.ones(len(self.active))
        self.signal_var, self.noise_var = spread, max(spread / 4, VARIANCE_FLOOR)
        self.weights = np.zeros(len(y))
        if len(y):
            self._fit(y)

    def _nll(self, y: np.ndarray, scales: np.ndarray, signal: float, noise: float
             ) -> tuple[float, np.ndarray | None]:
        """Negative log marginal likelihood (less a constant) and K^-1 y."""
        sq = np.tensordot(1.0 / scales ** 2, self._diffs, axes=1) if len(scales) else 0.0
        k = signal * np.exp(-0.5 * sq) + noise * np.eye(len(y))
        try:
            chol = np.linalg.cholesky(k)
        except np.linalg.LinAlgError:
            return math.inf, None
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
        return 0.5 * float(y @ alpha) + float(np.log(np.diag(chol)).sum()), alpha

    def _fit(self, y: np.ndarray) -> None:
        """Coordinate search in log space: deterministic, a few hundred Cholesky factorings
        of at most a few hundred points."""
        best, alpha = self._nll(y, self.length_scales, self.signal_var, self.noise_var)
        lo, hi = LENGTH_SCALE_BOUNDS
        for _ in range(SWEEPS):
            improved = False
            for coord in [*range(len(self.active)), "signal", "noise"]:
                for f in SEARCH_FACTORS:
                    scales, signal, noise = self.length_scales, self.signal_var, self.noise_var
                    if coord == "signal":
                        signal = max(signal * f, VARIANCE_FLOOR)
                    elif coord == "noise":
                        noise = max(noise * f, VARIANCE_FLOOR)
                    else:
                        scales = scales.copy()
                        scales[coord] = min(max(scales[coord] * f, lo), hi)
                    value, a = self._nll(y, scales, signal, noise)
                    if value < best - 1e-9:
                        best, alpha = value, a
                        self.length_scales = scales
                        self.signal_var, self.noise_var = signal, noise
                        improved = True
            if not improved:
                break
        self.weights = alpha if alpha is not None else np.zeros(len(y))
        self._diffs = None   # only the search needs them

    def predict(self, features) -> float:
        """The log residual expected at `features` (log units, all dimensions)."""
        if not len(self.weights):
            return 0.0
        key = np.asarray(features, float)[self.active]
        sq = (((self.points - key) / self.length_scales) ** 2).sum(axis=1)
        return float(self.signal_var * np.exp(-0.5 * sq) @ self.weights)
