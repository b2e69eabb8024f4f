"""How a calibrated profile predicts an op from its measured points (one op kind at a time).

An op whose shape was measured takes the measured time (the mean of repeats). Any other op
gets a fitted model of the kind, times a residual correction (measured / fitted) learnt from
the measured points near it. Two models, by what the points carry:

- Work points [flops, bytes, time_s(, planes, pixels)] (every kind): time = overhead_s +
  FLOPs * s_per_flop + bytes * s_per_byte (+ planes * s_per_plane + planes * pixels *
  s_per_value with a layout: an optimizer steps each tensor apart, so each tensor may cost
  a time of its own; a window pool pays per value it writes), non-negative, least squares on
  relative error; the residual is a distance-weighted mean over the nearest points in the
  log of (planes, pixels, FLOPs, bytes) where points carry a layout (families.layout), else
  it is interpolated between the points nearest in fitted time.
- GEMM points [flops, bytes, time_s, m, n, k, groups, window, stride, pixels] (convolutions
  and linear layers, see families.gemm_shape): time = overhead_s + FLOPs / (rate * e(m) e(n)
  e(k)) + bytes * s_per_byte, with e(d) = d / (d + d_half) the fill of one GEMM dimension,
  fitted apart for each kernel class (hwmodels/kernels.py: PyTorch's native loop, oneDNN's
  dense, grouped and depthwise kernels) on the product the kernel computes (channels padded
  to whole vectors); the residual is what a Gaussian process over the measured points'
  residuals expects in the log of (m, n, k, groups, window, stride, pixels), fading to none
  far from any measured shape (hwmodels/residual_gp.py). (Pixels count: at equal GEMM
  shape a convolution on 8x8 maps runs up to 1.5x faster than on 32x32 ones, as oneDNN
  skips padding taps and blocks rows; the calibration grid's leave-one-out check,
  `python -m validation.experiments.grid_cv`, scores better with the pixel dimension.)
  A prediction is never faster than the fastest rate the kernel class reached on a measured
  shape: the fill curves rise towards an asymptote that larger GEMMs do not reach, as their
  operands leave the caches (the calibration grid's leave-one-out check scores worse
  without this ceiling).

Why: interpolating raw times along one work axis is exact on measured shapes but
extrapolates poorly to shapes it has not seen; a model of how time grows with work knows
more, and for GEMMs the work alone is not enough (a 3-channel first layer or a 2x2-pixel
late layer underfills the vector units however many FLOPs it has). Equal work is not equal
time for other kinds either: a lookup keyed on (FLOPs, bytes) alone would give a
32 x 24 x 32 x 32 max-pool the time of a 256 x 192 x 4 x 4 one, 43% too fast.
"""
from __future__ import annotations

import bisect
import itertools
import math

import numpy as np

from .kernels import CHANNELS_LAST_FITTED, FALLBACK_CLASS, KernelRules, is_channels_last, nchw_twin
from .residual_gp import ResidualGP

Point = tuple[float, ...]  # (flops, bytes_moved, time_s[, *Shape])
Shape = tuple[int, ...]  # (m, n, k, groups, window, stride, pixels) of a GEMM


def predictor_for(points: list[Point], kind: str = "",
                  rules: KernelRules | None = None) -> "WorkPredictor | GemmPredictor":
    """The predictor for one kind's points: GEMM when they carry GEMM shapes, else work (with
    or without a layout). `rules` say which kernel runs each GEMM shape and what it computes
    (hwmodels/kernels.py)."""
    if points and len(points[0]) >= 10:   # an 11th number: a convolution on channels-last maps
        return GemmPredictor(points, kind, rules or KernelRules())
    return WorkPredictor(points)


def fit_nonnegative(points: list[Point]) -> tuple[float, ...]:
    """(overhead_s, s_per_flop, s_per_byte[, s_per_plane[, s_per_value]]) >= 0 minimising the
    relative squared error, from (flops, bytes, time_s[, planes[, pixels]]) points (values =
    planes * pixels). Few unknowns: try every subset of free coefficients, keep the best
    non-negative one."""
    a = np.array([[1.0, p[0], p[1], *p[3:4], *([p[3] * p[4]] if len(p) > 4 else [])]
                  for p in points])
    y = np.array([p[2] for p in points])
    w = 1.0 / y
    scale = np.maximum(np.abs(a).max(axis=0), 1e-300)  # columns of very different magnitude
    aw = a / scale * w[:, None]
    cols_n = a.shape[1]
    best, best_err = np.zeros(cols_n), float("inf")
    for k in range(1, cols_n + 1):
        for cols in itertools.combinations(range(cols_n), k):
            sol, *_ = np.linalg.lstsq(aw[:, cols], np.ones_like(y), rcond=None)
            if (sol < 0).any():
                continue
            coef = np.zeros(cols_n)
            coef[list(cols)] = sol
            err = float(((aw @ coef - 1.0) ** 2).sum())
            # a fit that is better only by rounding does not replace one with fewer or earlier
            # columns: where the points cannot tell costs apart (all one-pixel planes, so
            # planes, values, FLOPs and bytes are proportional), the cost stays on the work
            # and does not go to whichever layout term rounding favours
            if err < best_err * (1.0 - 1e-9) - 1e-12:
                best, best_err = coef, err
    return tuple(float(c) for c in best / scale)


class WorkPredictor:
    """Time from (FLOPs, bytes): a linear fit, corrected by the residuals of the nearest
    measured points: in the log of (planes, pixels, FLOPs, bytes) where points carry a layout
    (families.layout), else along fitted time."""

    def __init__(self, points: list[Point]) -> None:
        exact: dict[tuple, list[float]] = {}
        for f, b, t, *shape in points:
            exact.setdefault((f, b, *shape), []).append(t)
        self.exact = {k: sum(v) / len(v) for k, v in exact.items()}
        self.shaped = bool(self.exact) and len(next(iter(self.exact))) > 2
        # with a layout, each plane (a tensor, for an update) and each value may cost a time
        # of its own
        self.coef = fit_nonnegative([(*k[:2], t, *k[2:4]) for k, t in self.exact.items()])
        kept = [(k, t) for k, t in self.exact.items() if self.fitted_s(*k[:4]) > 0]
        if self.shaped:
            self.features = np.log([_layout_features(k) for k, _ in kept])
            self.log_residuals = np.log([t / self.fitted_s(*k[:4]) for k, t in kept])
        residuals = sorted((self.fitted_s(*k[:4]), t / self.fitted_s(*k[:4])) for k, t in kept)
        self.xs = [x for x, _ in residuals]
        self.ratios = [r for _, r in residuals]

    def fitted_s(self, flops: float, nbytes: float, planes: float = 0.0,
                 pixels: float = 0.0) -> float:
        c0, c1, c2, *by_layout = self.coef
        per_plane, per_value = (*by_layout, 0.0, 0.0)[:2]
        return c0 + c1 * flops + c2 * nbytes + per_plane * planes + per_value * planes * pixels

    def predict_s(self, flops: float, nbytes: float, shape: Shape | None = None) -> float:
        t = self.exact.get((flops, nbytes, *(shape if self.shaped and shape else ())))
        if t is not None:
            return t
        x = self.fitted_s(flops, nbytes, *(shape[:2] if self.shaped and shape else ()))
        if x <= 0 or not self.xs:
            return x
        if self.shaped and shape:
            key = np.log(_layout_features((flops, nbytes, *shape)))
            return x * math.exp(_neighbour_correction(self.features, self.log_residuals, key))
        i = bisect.bisect_left(self.xs, x)
        if i == 0 or i == len(self.xs):
            ratio = self.ratios[0 if i == 0 else -1]
        else:
            x0, x1 = self.xs[i - 1], self.xs[i]
            frac = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0)) if x1 > x0 else 0
            ratio = math.exp(math.log(self.ratios[i - 1])
                             + frac * (math.log(self.ratios[i]) - math.log(self.ratios[i - 1])))
        return x * ratio


def _layout_features(key: tuple) -> tuple[float, ...]:
    flops, nbytes, planes, pixels = key[:4]
    return (planes, pixels, flops + 1.0, nbytes + 1.0)


def _neighbour_correction(features: np.ndarray, log_residuals: np.ndarray,
                          key: np.ndarray) -> float:
    """The log residual at `key`: a distance-weighted mean over the NEIGHBOURS nearest points
    (in log units: 0.7 is a factor 2 in one dimension), shrinking to none far from all of
    them (the 1.0 in the denominator)."""
    d = np.sqrt(((features - key) ** 2).sum(axis=1))
    near = np.argsort(d, kind="stable")[:NEIGHBOURS]
    w = np.exp(-d[near]) / (d[near] + 1e-9)
    return float((w * log_residuals[near]).sum() / (w.sum() + 1.0))


# A class of kernels gets its own GEMM fit from this many distinct shapes on; below that it
# borrows the fit of the class with the most shapes.
MIN_CLASS_POINTS = 6
NEIGHBOURS = 4


class GemmPredictor:
    """Time from a GEMM's shape: the fill of each dimension, and nearby measured residuals.
    Fits and residuals see the product the kernel computes (channels padded to its blocks),
    one fit per kernel class; the exact lookup sees the op's own shape. A convolution on
    channels-last maps whose class has no fit (kernels.CHANNELS_LAST_FITTED, or too few
    measured shapes) is predicted as its NCHW twin, exactly as a profile without
    channels-last points predicts it."""

    def __init__(self, points: list[Point], kind: str = "",
                 rules: KernelRules | None = None) -> None:
        self.kind, self.rules = kind, rules or KernelRules()
        exact: dict[tuple, list[float]] = {}
        for f, b, t, *dims in points:
            exact.setdefault((f, b, *dims), []).append(t)
        self.exact = {k: sum(v) / len(v) for k, v in exact.items()}
        by_class: dict[str, list] = {}
        for key, t in self.exact.items():
            shape = tuple(int(d) for d in key[2:])
            flops, computed = self.rules.computed(kind, key[0], shape)
            by_class.setdefault(self.rules.kernel_class(kind, shape), []).append(
                (flops, key[1], *computed, t))
        # channels-last points of a class fitted as its NCHW twin stay out of every fit
        fitted = (sorted(c for c in by_class
                         if not c.endswith("_nhwc") or c in CHANNELS_LAST_FITTED)
                  or sorted(by_class))
        self.classes = {c: GemmFit(np.array(by_class[c], dtype=float))
                        for c in fitted if len(by_class[c]) >= MIN_CLASS_POINTS}
        if not self.classes:
            biggest = max(fitted, key=lambda c: len(by_class[c]))
            self.classes[biggest] = GemmFit(np.array(by_class[biggest], dtype=float))
        self.fallback = max(sorted(self.classes), key=lambda c: len(by_class[c]))

    def predict_s(self, flops: float, nbytes: float, shape: Shape | None = None) -> float:
        if shape is None:
            raise ValueError("a GEMM profile predicts ops with a GEMM shape only")
        t = self.exact.get((flops, nbytes, *shape))
        if t is not None:
            return t
        shape = tuple(int(d) for d in shape)
        kernel = self.rules.kernel_class(self.kind, shape)
        if is_channels_last(shape) and kernel not in self.classes:
            return self.predict_s(flops, nbytes, nchw_twin(shape))
        fit = (self.classes.get(kernel) or self.classes.get(FALLBACK_CLASS.get(kernel, ""))
               or self.classes[self.fallback])
        computed_flops, computed = self.rules.computed(self.kind, flops, shape)
        return fit.predict_s(computed_flops, nbytes, computed)


class GemmFit:
    """time = overhead_s + flops / (rate * e(m) e(n) e(k)) + bytes * s_per_byte, fitted in
    log space (all six parameters positive), times the residual a Gaussian process expects
    at the shape (hwmodels/residual_gp.py)."""

    def __init__(self, rows: np.ndarray) -> None:
        # rows: flops, bytes, m, n, k, groups, window, stride, pixels, time_s
        self.work = rows[:, :5]
        self.params = _fit_gemm(self.work, rows[:, -1])
        self.log_residuals = np.log(rows[:, -1]) - np.log(_gemm_model(self.params, self.work))
        self.residual = ResidualGP(np.log(rows[:, 2:9]), self.log_residuals)
        self.peak_flops_per_s = float((rows[:, 0] / rows[:, -1]).max())

    def predict_s(self, flops: float, nbytes: float, shape: Shape) -> float:
        fitted = float(_gemm_model(self.params, np.array([[flops, nbytes, *shape[:3]]],
                                                         float))[0])
        corrected = fitted * math.exp(self.residual.predict(np.log(np.asarray(shape[:7],
                                                                              float))))
        # no faster than the kernel ran on any measured shape: the fill curves rise towards a
        # rate that larger GEMMs do not reach (their operands leave the caches)
        return max(corrected, flops / self.peak_flops_per_s)


def _gemm_model(p: np.ndarray, work: np.ndarray) -> np.ndarray:
    """p = log of (overhead_s, rate, m_half, n_half, k_half, s_per_byte)."""
    flops, nbytes, dims = work[:, 0], work[:, 1], work[:, 2:5]
    c0, rate, halves, per_byte = np.exp(p[0]), np.exp(p[1]), np.exp(p[2:5]), np.exp(p[5])
    slowdown = np.prod((dims + halves) / dims, axis=1)
    return c0 + flops * slowdown / rate + nbytes * per_byte


def _gemm_jacobian(p: np.ndarray, work: np.ndarray) -> np.ndarray:
    """d model / d p (p in log space), one row per point."""
    flops, nbytes, dims = work[:, 0], work[:, 1], work[:, 2:5]
    halves = np.exp(p[2:5])
    compute = flops * np.prod((dims + halves) / dims, axis=1) / np.exp(p[1])
    return np.column_stack([np.full_like(flops, np.exp(p[0])), -compute,
                            compute[:, None] * halves / (dims + halves),
                            nbytes * np.exp(p[5])])


_LOG_BOUNDS = np.log([[1e-9, 1e3], [1e6, 1e17], [1e-2, 1e6], [1e-2, 1e6], [1e-2, 1e6],
                      [1e-16, 1e-6]])


def _fit_gemm(work: np.ndarray, time_s: np.ndarray) -> np.ndarray:
    """Levenberg-Marquardt on log(model) - log(time), from a few starts; the best one wins.
    Deterministic: fixed starts, fixed iteration count."""
    best, best_cost = None, math.inf
    flops_rate = float(np.median(work[:, 0] / time_s))
    for half in (4.0, 32.0, 256.0):
        p = np.log([max(float(time_s.min()) / 4, 1e-9), flops_rate * 2, half, half, half,
                    1e-11])
        p, cost = _levenberg_marquardt(p, work, np.log(time_s))
        if cost < best_cost:
            best, best_cost = p, cost
    if best is None:   # no start reached a finite cost
        raise ValueError("the GEMM fit diverged from every start (infinite or NaN cost)")
    return best


def _levenberg_marquardt(p: np.ndarray, work: np.ndarray, log_y: np.ndarray,
                         iterations: int = 200) -> tuple[np.ndarray, float]:
    def residual(q):
        return np.log(_gemm_model(q, work)) - log_y
    r = residual(p)
    cost, damping = float(r @ r), 1e-3
    for _ in range(iterations):
        jac = _gemm_jacobian(p, work) / _gemm_model(p, work)[:, None]
        jtj, grad = jac.T @ jac, jac.T @ r
        try:
            step = np.linalg.solve(jtj + damping * (np.diag(np.diag(jtj))
                                                    + 1e-12 * np.eye(6)), -grad)
        except np.linalg.LinAlgError:
            # a dimension no point varies (a class of one kernel size: k the same in every
            # shape) leaves jtj singular once the damping has shrunk: damp more, as after a
            # step that did not help
            damping *= 4
            if damping > 1e12:
                break
            continue
        q = np.clip(p + step, _LOG_BOUNDS[:, 0], _LOG_BOUNDS[:, 1])
        r_new = residual(q)
        new_cost = float(r_new @ r_new)
        if new_cost < cost:
            p, r, damping = q, r_new, damping / 3
            if cost - new_cost < 1e-12 * max(cost, 1e-30):
                cost = new_cost
                break
            cost = new_cost
        else:
            damping *= 4
            if damping > 1e12:
                break
    return p, cost
