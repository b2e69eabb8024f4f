"""Leave one calibration network out: how well a profile predicts each synthetic grid network
(validation/calibrate/calibration_nets.py) from the measurements of all the others.

The check for a change to how a profile fits and interpolates (hwmodels/profile_fit.py) that
looks at no validation case, so that the zoo's steps and the held-out modules stay a test of
it rather than the data it was chosen on. Each grid network's "measured" step is the one its
own measured op times add up to (each op's time in that network, plus the step overhead per
op: no model in between, so a change to the model cannot move the reference); its prediction
comes from a profile built without any of its op shapes (build_profile's exclude_network, in
validation/calibrate/profile_build.py).

    python -m validation.experiments.grid_cv [--profile validation/measured/cpu_profile.toml]
                                             [--ops-csv validation/measured/cpu_ops.csv]
                                             [--networks ...]
"""
from __future__ import annotations

import argparse
import os

from hwmodels.profile import Profile
from validation.calibrate.calibration_nets import GRID_CASES, get
from validation.calibrate.cases import find_measured
from validation.calibrate.profile_build import build_profile, read_ops_csv
from validation.paths import MEASURED
from validation.validate.compare import (
    Comparison,
    format_table,
    machine_checked_elsewhere,
    simulate_graph,
)
from workloads.training import lower_training


def leave_one_grid_network_out(records: list[dict], meta: dict, overhead_s: float,
                               cases=GRID_CASES) -> list[Comparison]:
    """One Comparison per grid case that the records measured: its step from its own measured
    ops (measured_s) and from a profile that has none of them (simulated_s). A grid network
    added after the calibration was made is left out."""
    measured = {network for rec in records for network in rec["sources"]}
    out = []
    for network in dict.fromkeys(name for name, _ in cases if name in measured):
        without = build_profile(records, meta, overhead_s, exclude_network=network)
        for name, batch in cases:
            if name == network:
                graph = get(name, batch)
                with machine_checked_elsewhere():    # the records' machine, not this one
                    simulated_s = simulate_graph(graph, without)[0]
                out.append(Comparison(name, batch, True,
                                      measured_step_s(records, graph, name, overhead_s),
                                      simulated_s))
    return out


def measured_step_s(records: list[dict], graph, network: str, overhead_s: float) -> float:
    """A network's training step as its own op measurements add up: each non-view op's time
    in this network (records_of_replay's time_s) plus the step overhead."""
    times = {rec["key"]: rec["time_s"] for rec in records if network in rec["sources"]}
    ops = [op for op in lower_training(graph).topo() if not op.is_view]
    found = {op.name: find_measured(op, times) for op in ops}
    missing = [name for name, t in found.items() if t is None]
    if missing:
        raise ValueError(f"{network}: no measurement of {len(missing)} ops ({missing[0]}, ...)")
    return sum(t + overhead_s for t in found.values() if t is not None)


def rows_for(profile_path, ops_csv, networks=None) -> list[Comparison]:
    """The check on a calibration's profile (for its meta and step overhead) and ops CSV."""
    profile = Profile.load(profile_path)
    cases = [c for c in GRID_CASES if not networks or c[0] in networks]
    if not cases:
        known = ", ".join(sorted({n for n, _ in GRID_CASES}))
        raise ValueError(f"no grid network among {', '.join(networks)}; known: {known}")
    return leave_one_grid_network_out(read_ops_csv(ops_csv), profile.meta,
                                      float(profile.meta.get("step_overhead_s", 0.0)), cases)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.path.join(MEASURED, "cpu_profile.toml"))
    ap.add_argument("--ops-csv", default=os.path.join(MEASURED, "cpu_ops.csv"))
    ap.add_argument("--networks", nargs="+", help="only these grid networks")
    args = ap.parse_args(argv)
    try:
        rows = rows_for(args.profile, args.ops_csv, args.networks)
    except (OSError, ValueError) as exc:   # a missing file, a malformed profile, a bad name
        ap.error(str(exc))
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
