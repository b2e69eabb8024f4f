"""Do ops run faster in a training step whose data fits in the caches? Read off a calibration.

The same op shape is often measured in several calibration networks. This command sets each
measurement against the median of its shape over all networks it was measured in, and groups
the ratios by how many bytes the step of its network moves (the sum of its ops' bytes), so a
cache effect shows without any model in between:

    python -m validation.residency [--ops-csv validation/measured/cpu_ops.csv]

On the ninth session's data (a 2-vCPU EPYC VM with a 32 MiB L3), ops that take under 200 us
ran at 0.62x their shape's median in steps that move under 16 MiB, 0.67x at 16-32 MiB, 0.94x
at 32-64 MiB and 1.00x above; longer ops did not change. The sixth session's data gives 0.66x
and 0.58x under 32 MiB, the eighth's (a busier machine, whose neighbours share the L3) 0.87x
and 0.94x, the committed data (with two small MLPs in its grid) 0.60x and 0.83x. Profiles
model it: hwmodels/residency.py."""
from __future__ import annotations

import argparse
import functools
import math
import statistics
from collections import defaultdict
from pathlib import Path

DEFAULT_OPS = Path(__file__).resolve().parent / "measured" / "cpu_ops.csv"
EDGES_MIB = (16, 32, 64, 256, math.inf)
SMALL_OP_S = 200e-6


@functools.cache
def step_bytes_by_key(fitting: bool = False) -> dict[tuple[str, str], float]:
    """(op key, network name) -> bytes the network's training step moves, for every
    calibration case (a key names its shapes, so its batch too); with `fitting`, as
    residency counts them (infinite for a step with a convolution)."""
    from hwmodels.residency import fitting_bytes
    from workloads.training import lower_training

    from .calibrate import calibration_cases, op_key
    from .calibration_nets import get
    out: dict[tuple[str, str], float] = {}
    for name, batch in calibration_cases(grid=True):
        ops = [op for op in lower_training(get(name, batch)).topo() if not op.is_view]
        step = fitting_bytes(ops) if fitting else float(sum(op.bytes_moved for op in ops))
        for op in ops:
            out[(op_key(op), name)] = step
    return out


def record_step_bytes(rec: dict) -> float | None:
    """The bytes the step of a record's networks moves as residency counts them (the largest,
    if several measured the same time); None if one of them is not a calibration case."""
    sizes = [step_bytes_by_key(True).get((rec["key"], network)) for network in rec["sources"]]
    return None if not sizes or None in sizes else max(sizes)


def fit_records(records: list[dict], meta: dict, statistic: str = "time_s"):
    """The Residency of a calibration (hwmodels/residency.py), fitted on the op shapes it
    measured both in steps that fit in the profiled device's L3 and in steps that do not:
    each shape's median time in either. None where the device has no known L3 or too few
    shapes were measured both ways."""
    from hwmodels import catalog
    from hwmodels.residency import fit_residency
    from hwmodels.specs import HardwareError
    try:
        below = catalog.device(meta.get("device_name", "")).l3_bytes
    except HardwareError:
        below = None
    if not below:
        return None
    fits, spills = defaultdict(list), defaultdict(list)
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


def residency_table(records: list[dict], step_bytes: dict) -> list[dict]:
    """One row per step-size bucket and op-time class: the median of (time / the shape's
    median over networks), over shapes measured in at least two networks."""
    by_key = defaultdict(list)
    for rec in records:
        for network in rec["sources"]:
            if (rec["key"], network) in step_bytes:
                by_key[rec["key"]].append((rec["time_s"], step_bytes[(rec["key"], network)]))
    ratios = defaultdict(list)
    for instances in by_key.values():
        if len(instances) < 2:
            continue
        median_s = statistics.median(t for t, _ in instances)
        size = "small" if median_s < SMALL_OP_S else "large"
        for t, step in instances:
            edge = next(e for e in EDGES_MIB if step / 2**20 < e)
            ratios[(size, edge)].append(t / median_s)
    return [{"ops": size, "step_below_mib": edge, "instances": len(ratios[(size, edge)]),
             "median_ratio": statistics.median(ratios[(size, edge)])}
            for size in ("small", "large") for edge in EDGES_MIB if ratios[(size, edge)]]


def format_table(rows: list[dict]) -> str:
    lines = [f"{'ops':22s} {'step moves':>16s} {'instances':>10s} {'time / shape median':>20s}"]
    lo = {}
    for r in rows:
        start = lo.get(r["ops"], 0)
        span = (f"{start}-{r['step_below_mib']} MiB" if r["step_below_mib"] != math.inf
                else f">= {start} MiB")
        lo[r["ops"]] = r["step_below_mib"]
        label = f"under {SMALL_OP_S * 1e6:.0f} us" if r["ops"] == "small" else "longer"
        lines.append(f"{label:22s} {span:>16s} {r['instances']:10d} {r['median_ratio']:20.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.residency",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops-csv", default=str(DEFAULT_OPS),
                        help="a calibration's op measurements (calibrate --ops-csv)")
    args = parser.parse_args(argv)
    from .calibrate import read_ops_csv
    if not Path(args.ops_csv).is_file():
        parser.error(f"--ops-csv {args.ops_csv}: no such file")
    records = read_ops_csv(args.ops_csv)
    rows = residency_table(records, step_bytes_by_key())
    if not rows:
        parser.error(f"--ops-csv {args.ops_csv}: no op shape of the calibration networks "
                     "measured in two of them")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
