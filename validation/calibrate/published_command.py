"""`dnnsim calibrate --published DIR_OR_CSV`: the GPU architectures' and frameworks' constants
fitted to published tables or a user's own training rows, written as a families file that
`--gpu-families` (simulate, sweep, validate --published) then uses; printed: what the fit
moved, on how many rows, the error on those rows before and after, and a held-out estimate
(docs/calibrate-gpu.md)."""
from __future__ import annotations

import os
import sys

from simulator import limits
from simulator.outputs import check_output
from workloads.graph import WorkloadError

from . import published_fit as pf
from . import published_gpu as pg
from . import published_holdout as ph
from .published_user import FitInput, moved_constants, read_inputs

DEFAULT_FAMILIES_OUT = "gpu_families.toml"
# flags of the measuring calibration, which a fit to tables does not take
MEASURING_FLAGS = (("--device", "device", "cpu"), ("--quick", "quick", False),
                   ("--threads", "threads", 1), ("--device-name", "device_name", None),
                   ("--partial", "partial", None), ("--ops-csv", "ops_csv", None),
                   ("--rounds", "rounds", None), ("--max-rounds", "max_rounds", None),
                   ("--steps-csv", "steps_csv", None), ("--heldout-csv", "heldout_csv", None),
                   ("--refit", "refit", None))


def run_published(args) -> int:
    given = [flag for flag, attr, default in MEASURING_FLAGS if getattr(args, attr) != default]
    if given:
        raise WorkloadError(f"--published fits constants to tables and measures nothing; it "
                            f"takes no {', '.join(given)}")
    if args.workers is not None:   # refused before the fit, whether or not held-out fits run
        limits.check_workers(args.workers)
    out = args.out or DEFAULT_FAMILIES_OUT
    if os.path.exists(out):   # a families file is never replaced, named or not
        raise WorkloadError(f"--out {out}: exists; not overwritten (remove it or name "
                            f"another file)")
    check_output(out, "--out")   # a folder that cannot take the file: refused before the fit
    inputs = read_inputs(args.published, args.alone)
    if inputs.skipped and not (inputs.shipped or args.skip_unusable):
        raise WorkloadError(f"--published {args.published}: {len(inputs.skipped)} row(s) "
                            f"cannot be fitted ({_first(inputs.skipped)}); fix them, or give "
                            f"--skip-unusable to fit the others")
    for skip in inputs.skipped if not inputs.shipped else ():
        print(f"calibrate: not fitted: {skip.row_id}: {skip.reason}", file=sys.stderr)
    fitted = pf.fit_all(inputs.kernels, inputs.networks)
    with open(out, "x", encoding="utf-8") as fh:
        fh.write(pf.families_toml(fitted, inputs.sources))
    families, frameworks = fitted
    print(f"wrote {out}: architectures {', '.join(sorted(families))}; frameworks "
          f"{', '.join(sorted(frameworks))}")
    if inputs.shipped:
        return 0   # the shipped fit: its out-of-sample figures are validate's leave-one-GPU-out
    _report(inputs, fitted, args.held_out or "network", not args.no_progress, args.workers)
    return 0


def _report(inputs: FitInput, fitted: pf.Fitted, mode: str, progress: bool,
            workers: int | None) -> None:
    print(f"fitted to {'; '.join(inputs.sources)}")
    print("constants that moved from the shipped ones (hwmodels/catalog/gpu_families.toml):")
    print("\n".join(moved_constants(fitted, inputs.own)))
    fit_errors = [abs(pg.simulate_row(r, *fitted) / r.throughput - 1) for r in inputs.own]
    shipped_errors = [abs(pg.simulate_row(r) / r.throughput - 1) for r in inputs.own]
    print(f"your {len(inputs.own)} rows: shipped constants MAPE {_mean(shipped_errors):.1%} "
          f"(max {max(shipped_errors):.1%}); fitted, in-sample MAPE {_mean(fit_errors):.1%} "
          f"(max {max(fit_errors):.1%})")
    if mode == "none":
        return
    if len(inputs.own) < 2:
        print("held-out estimate: needs two rows or more of your own", file=sys.stderr)
        return
    predictions = ph.predict(inputs.kernels, inputs.networks, inputs.own, mode, progress,
                             limits.workers_for(workers))
    print("\n".join(ph.summary(predictions, mode)))


def _first(skipped: list[pg.Skip], most: int = 3) -> str:
    named = "; ".join(f"{s.row_id}: {s.reason}" for s in skipped[:most])
    return named + ("; ..." if len(skipped) > most else "")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
