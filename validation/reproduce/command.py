"""`dnnsim reproduce`: simulate every published figure in validation/targets/ and write a
report folder (report.md, report.html, results.json, figures, traces)."""
from __future__ import annotations

from simulator.policies import ConfigError

from .report import summary_line
from .run import failing_checked, reproduce

NAME = "reproduce"
HELP = "Reproduce the papers' published figures and write a report (--check: fail if off)."


def add_arguments(p) -> None:
    p.add_argument("--only", action="append", default=[], metavar="PAPER",
                   help="only this paper (its target file's `paper`); repeat or comma-separate")
    p.add_argument("--out", default="report", help="report folder (default: report)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a solid target is outside its tolerance or a bound outside "
                   "its bounds (or one marked as a known miss comes within)")
    p.add_argument("--resume", action="store_true",
                   help="keep the targets already measured in OUT/results.json")
    p.add_argument("--targets", metavar="DIR",
                   help="a folder of target files (default: validation/targets/)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes (default: one per CPU; 1 runs everything in this process)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    only = [name.strip() for item in args.only for name in item.split(",") if name.strip()]
    if args.only and not only:   # an empty --only is a slip, not a request for every paper
        raise ConfigError(f"--only {', '.join(map(repr, args.only))} names no paper; give a "
                          "target file's paper (validation/targets/)")
    doc = reproduce(args.out, only=only or None, folder=args.targets, resume=args.resume,
                    progress=not args.quiet, workers=args.workers)
    print(summary_line(doc))
    for rec in doc["targets"]:
        if not rec["within"]:
            got = "no value" if rec["simulated"] is None else f"{rec['simulated']:.4g}"
            print(f"  outside: {rec['paper']}/{rec['id']} ({rec['status']}): published "
                  f"{rec['published']:.4g}, simulated {got}"
                  + (f" [{rec['failure']}]" if rec.get("failure") else "")
                  + (f" (known miss: {rec['known_miss']})" if rec.get("known_miss") else ""))
    for paper, info in doc["papers"].items():
        for key in ("figures_error", "trace_error"):
            if info.get(key):
                print(f"  {paper}: {key.replace('_', ' ')}: {info[key]}")
    print(f"report: {args.out}/report.html, {args.out}/report.md, {args.out}/results.json")
    failing = failing_checked(doc)
    if args.check and failing:
        names = ", ".join(f"{r['paper']}/{r['id']}" for r in failing)
        print(f"check failed: {len(failing)} solid or bound target(s) outside their tolerance "
              f"or bounds, or known misses now within: {names}")
        return 1
    return 0
