"""Do ops run faster in a training step whose data fits in the caches? Read off a calibration.

The same op shape is often measured in several calibration networks. This command sets each
measurement against the median of its shape over all networks it was measured in, and groups
the ratios by how many bytes the step of its network moves (the sum of its ops' bytes), so a
cache effect shows without any model in between:

    python -m validation.experiments.residency [--ops-csv validation/measured/cpu_ops.csv]

On a 2-vCPU EPYC VM with a 32 MiB L3, ops that take under 200 us run at roughly 0.6-0.8x
their shape's median in steps that move less than the L3 holds, and at 1.0x above; longer ops
do not change (the command prints the figures of the data it is given; a machine whose
neighbours share the L3 shows less). Profiles model it: hwmodels/residency.py."""
from __future__ import annotations

import argparse
import math
import statistics
from collections import defaultdict
from pathlib import Path

from validation.calibrate.profile_build import read_ops_csv
from validation.calibrate.residency_fit import step_bytes_by_key
from validation.paths import MEASURED

DEFAULT_OPS = MEASURED / "cpu_ops.csv"
EDGES_MIB = (16, 32, 64, 256, math.inf)
SMALL_OP_S = 200e-6


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
    lo: dict[str, float] = {}
    for r in rows:
        start = lo.get(r["ops"], 0)
        span = (f"{start}-{r['step_below_mib']} MiB" if r["step_below_mib"] != math.inf
                else f">= {start} MiB")
        lo[r["ops"]] = r["step_below_mib"]
        label = f"under {SMALL_OP_S * 1e6:.0f} us" if r["ops"] == "small" else "longer"
        lines.append(f"{label:22s} {span:>16s} {r['instances']:10d} {r['median_ratio']:20.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.experiments.residency",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops-csv", default=str(DEFAULT_OPS),
                        help="a calibration's op measurements (calibrate --ops-csv)")
    args = parser.parse_args(argv)
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
