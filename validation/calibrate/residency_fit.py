"""Cache residency in a calibration: an op of a training step whose data fits in the L3 runs
faster than the same op in a step that does not (`python -m validation.experiments.residency`
shows it). Profile points are times in steps that do not fit; building a profile fits the
calibration's Residency (hwmodels/residency.py) and converts the points measured in steps that
fit."""
from __future__ import annotations

import functools
import statistics
from collections import defaultdict

from hwmodels import catalog
from hwmodels.residency import fit_residency, fitting_bytes
from hwmodels.specs import HardwareError
from workloads.training import lower_training

from .calibration_nets import get
from .cases import calibration_cases, op_keys


@functools.cache
def step_bytes_by_key(fitting: bool = False) -> dict[tuple[str, str], float]:
    """(op key, network name) -> bytes the network's training step moves, for every
    calibration case (a key names its shapes, so its batch too); with `fitting`, as
    residency counts them (infinite for a step with a convolution)."""
    out: dict[tuple[str, str], float] = {}
    for name, batch in calibration_cases(grid=True):
        ops = [op for op in lower_training(get(name, batch)).topo() if not op.is_view]
        step = fitting_bytes(ops) if fitting else float(sum(op.bytes_moved for op in ops))
        for op in ops:   # under each key a record of the op may have (cases.op_keys)
            for key in op_keys(op):
                out[(key, name)] = step
    return out


def record_step_bytes(rec: dict) -> float | None:
    """The bytes the step of a record's networks moves as residency counts them (the largest,
    if several measured the same time); None if one of them is not a calibration case."""
    sizes = [step_bytes_by_key(True).get((rec["key"], network)) for network in rec["sources"]]
    known = [s for s in sizes if s is not None]
    return max(known) if sizes and len(known) == len(sizes) else None


def fit_records(records: list[dict], meta: dict, statistic: str = "time_s"):
    """The Residency of a calibration (hwmodels/residency.py), fitted on the op shapes it
    measured both in steps that fit in the measured machine's L3 and in steps that do not:
    each shape's median time in either. The L3 is the one the machine reported
    (meta l3_bytes), else its catalog device's. None where neither is known or too few
    shapes were measured both ways."""
    below = meta.get("l3_bytes")
    if not below:
        try:
            below = catalog.device(meta.get("device_name", "")).l3_bytes
        except HardwareError:
            below = None
    if not below:
        return None
    fits: defaultdict[str, list[float]] = defaultdict(list)
    spills: defaultdict[str, list[float]] = defaultdict(list)
    for rec in records:
        step = record_step_bytes(rec)
        if step is not None:
            (fits if step <= below else spills)[rec["key"]].append(float(rec[statistic]))
    pairs = [(statistics.median(fits[k]), statistics.median(spills[k]))
             for k in sorted(fits) if k in spills]
    return fit_residency(pairs, below)


def as_spilled(rec: dict, residency, statistic: str = "time_s") -> float:
    """A record's time as in a step that does not fit in the cache."""
    t = float(rec[statistic])
    if residency is None or not residency.fits(record_step_bytes(rec)):
        return t
    return residency.spilled_s(t)
