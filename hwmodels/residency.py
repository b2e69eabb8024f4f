"""Small ops run faster in a training step whose data stays in the last-level cache.

A step that moves less data than the L3 holds finds, at each op, what the op needs (its
operands and parameters, its code, the dispatcher's and the allocator's state) still in cache
from the step before; a larger step has evicted it, and each op pays for reloading it. The
payment is about the same for any op, so it matters for small ops only
(`python -m validation.experiments.residency` shows it in a calibration's own measurements:
the same op shape, measured in several networks, runs faster in the networks whose steps move
less than the L3 holds; `python -m validation.experiments.cold_start` shows the per-op
penalty after a heavy op).

The model has two facts and two fitted constants. The threshold is the L3 the machine
reports (profile [meta] l3_bytes, recorded by calibration; else its catalog device's): a step
fits when the bytes its ops move (as the IR counts them) are at most that. A step with a
convolution never fits: oneDNN's convolutions touch far more memory than the bytes the IR
counts (operands reordered to blocked layouts, scratchpads), and the op after one pays more
than after streaming 32 MiB (`python -m validation.experiments.cold_start`). Calibration
fits the rest on its own measurements, the op shapes it measured both in steps that fit and
in steps that do not (validation/calibrate/residency_fit.py):

    time in a step that fits = t - min(cap_s, (1 - ratio) * t)     t: time in a larger step

so tiny ops run at `ratio` of their time and no op saves more than `cap_s`. Profiles keep
every point as the time in a step that does not fit (`spilled_s` converts the others), and the
device model applies `time_s` when it knows the step (simulator/lowering.py)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RATIOS = np.round(np.arange(0.30, 1.0001, 0.01), 2)
CAPS_S = np.round(np.arange(0, 201) * 1e-6, 9)       # 0 .. 200 us by 1 us
MIN_PAIRS = 5        # fewer op shapes measured in both kinds of step: no fit, no correction


def fitting_bytes(ops) -> float:
    """What a step of these ops moves, as residency counts it: the sum of their bytes, or
    infinity if one is a convolution (see above)."""
    total = 0.0
    for op in ops:
        if op.is_view:
            continue
        if op.kind.startswith("conv2d"):
            return math.inf
        total += op.bytes_moved
    return total


@dataclass(frozen=True)
class Residency:
    below_bytes: float
    ratio: float
    cap_s: float

    def fits(self, step_bytes: float | None) -> bool:
        return step_bytes is not None and step_bytes <= self.below_bytes

    def time_s(self, spilled_s: float, step_bytes: float | None) -> float:
        """An op's time in a step that moves `step_bytes` (None: unknown, as measured)."""
        if not self.fits(step_bytes):
            return spilled_s
        return spilled_s - min(self.cap_s, (1.0 - self.ratio) * spilled_s)

    def spilled_s(self, resident_s: float) -> float:
        """The inverse: the time in a larger step of an op measured in a step that fits."""
        return min(resident_s / self.ratio, resident_s + self.cap_s)


def fit_residency(pairs: list[tuple[float, float]], below_bytes: float) -> Residency | None:
    """(time in a step that fits, time in a larger step) of op shapes measured in both ->
    the ratio and cap that minimise the squared log error, on a fixed grid (deterministic);
    None with fewer than MIN_PAIRS shapes."""
    if len(pairs) < MIN_PAIRS:
        return None
    resident = np.array([r for r, _ in pairs])[:, None, None]
    spilled = np.array([s for _, s in pairs])[:, None, None]
    saved = np.minimum(CAPS_S[None, None, :], (1.0 - RATIOS)[None, :, None] * spilled)
    predicted = np.maximum(spilled - saved, 1e-12)
    loss = (np.log(resident / predicted) ** 2).sum(axis=0)
    i, j = np.unravel_index(int(np.argmin(loss)), loss.shape)   # first minimum: smallest
    ratio, cap_s = float(RATIOS[i]), float(CAPS_S[j])              # ratio, then cap
    if ratio >= 1.0 or cap_s <= 0.0:
        return None
    return Residency(float(below_bytes), ratio, cap_s)


def meta_of(residency: Residency | None) -> dict:
    """Profile [meta] fields of a fit (none for no fit)."""
    if residency is None:
        return {}
    return {"resident_below_bytes": residency.below_bytes, "resident_ratio": residency.ratio,
            "resident_cap_s": residency.cap_s}
