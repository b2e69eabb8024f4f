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
    old = golden.load()
    doc = {"about": "figures of every validation target (dnnsim reproduce) and of dnnsim "
                    "simulate --json; rewrite only with tests/golden/update_golden.py --reason",
           "reason": args.reason.strip(),
           "relative_tolerance": golden.RELATIVE_TOLERANCE,
           "targets": dict(old.get("targets", {})), "simulate": dict(old.get("simulate", {}))}
    def wanted(key):
        return not args.only or key in args.only
    targets = golden.target_ids()
    doc["targets"] = {k: v for k, v in doc["targets"].items() if k in targets}  # gone: drop
    for key, target in targets.items():
        if wanted(key):
            entry, seconds = golden.measure_target(target)
            doc["targets"][key] = entry
            print(f"{key}: {entry} ({seconds:.1f} s)", flush=True)
    for entry in doc["targets"].values():
        entry.pop("slow", None)   # slowness is declared in golden.SLOW_PAPERS, not recorded
    doc["simulate"] = {k: v for k, v in doc["simulate"].items()
                       if k in golden.SIMULATE_SCENARIOS}
    for name, argv_ in golden.SIMULATE_SCENARIOS.items():
        if wanted(name):
            doc["simulate"][name] = {"argv": argv_, "json": golden.simulate_json(argv_)}
    moved = golden.differences({k: old.get(k, {}) for k in ("targets", "simulate")},
                               {k: doc[k] for k in ("targets", "simulate")})
    golden.save(doc)
    print(f"wrote {golden.GOLDEN_FILE.name}: {len(doc['targets'])} targets, "
          f"{len(doc['simulate'])} simulate scenarios; {len(moved)} change(s)")
    for line in moved:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
