"""How well a fit of `dnnsim calibrate --published` predicts rows it was not fitted on: the
user's rows are split into folds (one per network, or k folds where the rows run fewer
networks than two), each fold is predicted by constants fitted to every other row (the
user's other rows and whatever else the fit takes: the shipped tables), and the errors of
those predictions are the estimate. The folds are deterministic: the same rows give the same
folds and the same figures.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from . import published_fit as pf
from . import published_gpu as pg
from . import published_kernels as pk

HOLDOUT_MODES = ("network", "folds", "none")
FOLDS = 5


@dataclass(frozen=True)
class Prediction:
    row: pg.NetworkRow
    fold: str
    shipped: float      # samples/s with the shipped constants
    held_out: float     # samples/s with constants fitted without the row's fold

    @property
    def error(self) -> float:
        return self.held_out / self.row.throughput - 1.0

    @property
    def shipped_error(self) -> float:
        return self.shipped / self.row.throughput - 1.0


def folds(rows: list[pg.NetworkRow], mode: str) -> list[tuple[str, list[pg.NetworkRow]]]:
    """(name, rows) of each fold: one per network for "network" where the rows run two
    networks or more, else FOLDS folds (fewer with fewer rows) dealt in the rows' order."""
    if mode == "network":
        networks = sorted({r.network for r in rows})
        if len(networks) >= 2:
            return [(n, [r for r in rows if r.network == n]) for n in networks]
    k = min(FOLDS, len(rows))
    return [(f"fold {i + 1} of {k}", rows[i::k]) for i in range(k)]


def predict(kernels: list[pk.KernelRow], networks: list[pg.NetworkRow],
            own: list[pg.NetworkRow], mode: str, progress: bool = True,
            workers: int = 1) -> list[Prediction]:
    """Each of `own`'s rows predicted by a fit to `kernels` and `networks` without its fold;
    the folds' fits run in `workers` processes (the figures do not depend on how many)."""
    parts = folds(own, mode)
    position = {id(r): i for i, r in enumerate(networks)}
    jobs = [(kernels, networks, [position[id(r)] for r in held]) for _, held in parts]
    if workers <= 1 or len(jobs) <= 1:
        predicted = []
        for i, ((name, held), job) in enumerate(zip(parts, jobs, strict=True)):
            _progress(progress, i, len(parts), name, len(held))
            predicted.append(fold_predictions(*job))
    else:
        predicted = _in_processes(jobs, parts, workers, progress)
    return [Prediction(r, name, pg.simulate_row(r), value)
            for (name, held), values in zip(parts, predicted, strict=True)
            for r, value in zip(held, values, strict=True)]


def _progress(progress: bool, i: int, total: int, name: str, rows: int) -> None:
    if progress:
        print(f"calibrate: held-out fit {i + 1}/{total} ({name}, {rows} rows)", file=sys.stderr)


def _in_processes(jobs: list, parts: list, workers: int, progress: bool) -> list[list[float]]:
    from concurrent.futures import as_completed

    from simulator.workers import process_pool, stop_pool
    pool, pipe = process_pool(min(workers, len(jobs)))
    try:
        futures = {pool.submit(fold_predictions, *job): i for i, job in enumerate(jobs)}
        out: dict[int, list[float]] = {}
        for fut in as_completed(futures):
            i = futures[fut]
            out[i] = fut.result()
            _progress(progress, len(out) - 1, len(jobs), parts[i][0], len(parts[i][1]))
    except BaseException:
        stop_pool(pool, pipe)
        raise
    pool.shutdown()
    pipe.close()
    return [out[i] for i in range(len(jobs))]


def fold_predictions(kernels: list[pk.KernelRow], networks: list[pg.NetworkRow],
                     held: list[int]) -> list[float]:
    """Samples/s of the rows networks[i] for i in `held`, by a fit to every other row."""
    left_out = set(held)
    families, frameworks = pf.fit_all(kernels, [r for i, r in enumerate(networks)
                                                if i not in left_out])
    return [pg.simulate_row(networks[i], families, frameworks) for i in held]


def summary(predictions: list[Prediction], mode: str) -> list[str]:
    """The held-out error per fold and overall, beside the shipped constants' error on the
    same rows."""
    lines = [f"{'held out':<22}{'rows':>5}{'shipped MAPE':>14}{'held-out MAPE':>15}"
             f"{'held-out max':>14}"]
    names = list(dict.fromkeys(p.fold for p in predictions))
    for name in [*names, "all"]:
        group = [p for p in predictions if name in ("all", p.fold)]
        shipped = sum(abs(p.shipped_error) for p in group) / len(group)
        held = [abs(p.error) for p in group]
        lines.append(f"{name:<22}{len(group):>5}{shipped:>13.1%} {sum(held) / len(held):>14.1%}"
                     f" {max(held):>13.1%}")
    how = ("each network predicted by a fit without any of its rows" if mode == "network"
           and not names[0].startswith("fold ") else
           "each fold predicted by a fit without its rows")
    return [f"held-out estimate ({how}):", *lines]
