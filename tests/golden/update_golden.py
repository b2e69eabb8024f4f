"""Rewrite tests/golden/reproduce_figures.json on purpose.

    .venv/bin/python tests/golden/update_golden.py --reason "calibrated V100 conv efficiency"
    .venv/bin/python tests/golden/update_golden.py --reason "..." --only swap/resnet152-8gpu

Prints every figure that moves. Commit the file in the same commit as the change that moved
the figures, and put the reason in the commit message (it is also kept in the file).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reason", required=True, help="why the figures move (for the commit)")
    p.add_argument("--only", action="append", default=[], metavar="PAPER/ID|SCENARIO",
                   help="recompute only these entries (repeatable); the rest are kept")
    args = p.parse_args(argv)
    if not args.reason.strip():
        p.error("--reason must say why the figures move")
    def wanted(key):
        return not args.only or key in args.only
    targets = golden.target_ids()
    fresh_targets: dict = {}
    for key, target in targets.items():
        if wanted(key):
            entry, seconds = golden.measure_target(target)
            fresh_targets[key] = entry
            print(f"{key}: {entry} ({seconds:.1f} s)", flush=True)
    fresh_simulate = {name: {"argv": argv_, "json": golden.simulate_json(argv_)}
                      for name, argv_ in golden.SIMULATE_SCENARIOS.items() if wanted(name)}
    # Merge into the file as it is now, not as it was when this run started: another
    # regeneration of other entries may have written it meanwhile, and its figures stay.
    current = golden.load()
    doc = {"about": "figures of every validation target (dnnsim reproduce) and of dnnsim "
                    "simulate --json; rewrite only with tests/golden/update_golden.py --reason",
           "reason": args.reason.strip(),
           "relative_tolerance": golden.RELATIVE_TOLERANCE,
           "targets": {k: v for k, v in {**current.get("targets", {}), **fresh_targets}.items()
                       if k in targets},  # gone: drop
           "simulate": {k: v for k, v in {**current.get("simulate", {}), **fresh_simulate}.items()
                        if k in golden.SIMULATE_SCENARIOS}}
    for entry in doc["targets"].values():
        entry.pop("slow", None)   # slowness is declared in golden.SLOW_PAPERS, not recorded
    moved = golden.differences({k: current.get(k, {}) for k in ("targets", "simulate")},
                               {k: doc[k] for k in ("targets", "simulate")})
    golden.save(doc)
    print(f"wrote {golden.GOLDEN_FILE.name}: {len(doc['targets'])} targets, "
          f"{len(doc['simulate'])} simulate scenarios; {len(moved)} change(s)")
    for line in moved:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
