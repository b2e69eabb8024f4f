"""`dnnsim sweep SWEEP.toml --out RESULTS.jsonl`: every point of a factorial sweep, one JSON line
each, written as it finishes; running it again resumes where it stopped."""
from __future__ import annotations

from .. import limits
from ..sweep import Sweep, run_sweep
from ..workers import single_threaded_numerics

NAME = "sweep"
HELP = "Simulate the factorial product of scenario fields; one JSON line per point (resumable)."


def add_arguments(p) -> None:
    p.add_argument("sweep", help="a sweep TOML file: [base] scenario, [axes], [[exclude]]")
    p.add_argument("--out", required=True, help="results file (JSON lines); existing points "
                                                "of the same sweep are skipped")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default and most: one per CPU this process may use; "
                        "1 runs in this process)")
    p.add_argument("--dask", metavar="ADDRESS|local",
                   help="run on a Dask distributed scheduler (tcp://host:8786), or 'local' "
                        "for a LocalCluster on this machine")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--max-memory", metavar="SIZE", help="stop with an error, not the kernel's "
                   "OOM killer, past this much memory (e.g. 4G; each worker too)")


def run(args) -> int:
    single_threaded_numerics()
    limits.apply_max_memory(args.max_memory)
    sweep = Sweep.load(args.sweep)
    stats = run_sweep(sweep, args.out, workers=args.workers, dask=args.dask,
                      progress=not args.quiet)
    print(f"{stats.total} points: {stats.skipped} already in {args.out}, {stats.ran} simulated"
          + (f", {stats.out_of_memory} out of memory" if stats.out_of_memory else "")
          + (f", {stats.errors} could not be simulated (see their 'error')"
             if stats.errors else ""))
    return 0
