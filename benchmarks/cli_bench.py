"""What users run, timed: dnnsim commands from the command line, each in a fresh process.

    python benchmarks/cli_bench.py [--repeats 3] [--only NAME ...] [--tree DIR ...] [--json]

Cases (NAME): one GPU, FSDP at 64 GPUs, data parallelism at 1,024 GPUs, the published-table
validation (and its leave-one-GPU-out form), the papers' reproduction and a 50-point sweep;
CASES below gives each command line. Each run is a new interpreter, so a case's time includes
starting Python and importing dnnsim, as a user's command does.

For each case: the least wall time and the least CPU time (user + system of the child) over the
repeats, and a digest of what the command printed (and, for commands that write files, of those
files) so that two code trees can be checked to give the same output byte for byte. On a machine
shared with other work the wall time includes waiting for a core and the CPU time does not: the
CPU time is the figure to compare between runs.

--tree DIR (repeatable) runs every case with DIR first on PYTHONPATH: give two checkouts (before
and after a change) and their runs are interleaved, repeat by repeat, so both see the same load;
the table then shows each tree's figures, their ratio and whether their outputs agree.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP_50 = """\
[base]
workload = "resnet50"
batch = 32
hardware = "v100"
policy = "data-parallel"
node_type = "dgx1-v100"

[axes]
batch = [16, 32, 64, 96, 128]
devices = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
"""
PUBLISHED = ["--published", "validation/measured/published/single_gpu.csv",
             "--kernels", "validation/measured/published/kernels.csv", "--no-progress"]
# name -> (dnnsim arguments; {out} is a fresh folder per run, {sweep} the 50-point sweep file,
# files under {out} whose bytes the digest covers)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "resnet50-1gpu": (["simulate", "--workload", "resnet50", "--batch", "256", "--hardware",
                       "v100", "--precision", "amp-fp16", "--devices", "1", "--json"], []),
    "llama2_7b-fsdp-64": (["simulate", "--workload", "llama2_7b", "--batch", "1", "--hardware",
                           "h100", "--node-type", "dgx-h100", "--devices", "64", "--policy",
                           "fsdp", "--precision", "amp-bf16", "--json"], []),
    "gpt2-dp-1024": (["simulate", "--workload", "gpt2", "--batch", "8", "--hardware", "v100",
                      "--node-type", "dgx1-v100", "--devices", "1024", "--policy",
                      "data-parallel", "--json"], []),
    "validate-published": (["validate", *PUBLISHED], []),
    "validate-leave-one-gpu-out": (["validate", *PUBLISHED, "--leave-one-gpu-out"], []),
    "reproduce": (["reproduce", "--out", "{out}/report", "--workers", "1", "--quiet"],
                  ["report/results.json"]),
    "sweep-50": (["sweep", "{sweep}", "--out", "{out}/sweep.jsonl", "--workers", "1",
                  "--quiet"], ["sweep.jsonl"]),
}
RUN_CLI = "import sys; from simulator.cli import main; sys.exit(main())"


def run_once(name: str, tree: Path, scratch: Path) -> dict:
    """One run of a case with `tree`'s code: wall and CPU seconds, exit status, digest."""
    args, outputs = CASES[name]
    out = Path(tempfile.mkdtemp(dir=scratch))
    sweep = scratch / "sweep50.toml"
    argv = [a.format(out=out, sweep=sweep) for a in args]
    env = {**os.environ, "PYTHONPATH": str(tree), "MPLBACKEND": "Agg"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUN_CLI, *argv], cwd=tree, env=env,
                          capture_output=True)
    wall_s = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": wall_s, "returncode": proc.returncode,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "digest": output_digest(proc.stdout, out, outputs),
            "stderr_tail": proc.stderr.decode(errors="replace")[-400:]}


def output_digest(stdout: bytes, out: Path, outputs: list[str]) -> str:
    """What a run printed and the files it wrote under `out`, hashed; the name of the fresh
    folder `out` is no output of the command's own, so it is left out of what it printed."""
    digest = hashlib.sha256(stdout.replace(str(out).encode(), b"{out}"))
    for rel in outputs:
        path = out / rel
        digest.update(path.read_bytes() if path.exists() else b"(missing)")
    return digest.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs per case and tree (least kept)")
    ap.add_argument("--only", action="append", choices=sorted(CASES),
                    help="run only this case (repeatable; default all)")
    ap.add_argument("--tree", action="append", type=Path,
                    help="a checkout whose code runs the cases (repeatable; default this one)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")
    trees = [t.resolve() for t in (args.tree or [Path(__file__).resolve().parent.parent])]
    for t in trees:
        if not (t / "simulator" / "cli.py").is_file():
            ap.error(f"--tree {t}: not a dnnsim checkout (no simulator/cli.py)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        (scratch / "sweep50.toml").write_text(SWEEP_50)
        for name in args.only or list(CASES):
            runs: dict[Path, list[dict]] = {t: [] for t in trees}
            for _ in range(args.repeats):
                for t in trees:   # interleaved: each tree sees the same drift in load
                    runs[t].append(run_once(name, t, scratch))
            row = {"case": name, "trees": []}
            for t in trees:
                rs = runs[t]
                row["trees"].append({
                    "tree": str(t), "wall_s": round(min(r["wall_s"] for r in rs), 3),
                    "cpu_s": round(min(r["cpu_s"] for r in rs), 3),
                    "returncodes": sorted({r["returncode"] for r in rs}),
                    "digests": sorted({r["digest"] for r in rs})})
            rows.append(row)
            if not args.json:
                print_row(row, runs)
    if args.json:
        print(json.dumps({"repeats": args.repeats, "cases": rows}, indent=2))


def print_row(row: dict, runs: dict[Path, list[dict]]) -> None:
    first = row["trees"][0]
    parts = []
    for k, t in enumerate(row["trees"]):
        ratio = "" if k == 0 else f" ({t['cpu_s'] / first['cpu_s']:.2f}x CPU of the first)"
        parts.append(f"{t['wall_s']:7.2f} s wall {t['cpu_s']:7.2f} s CPU{ratio}")
    same = len({d for t in row["trees"] for d in t["digests"]}) == 1
    status = "" if same else "  OUTPUTS DIFFER: " + " / ".join(
        ",".join(t["digests"]) for t in row["trees"])
    codes = {c for t in row["trees"] for c in t["returncodes"]}
    print(f"{row['case']:28s} " + " | ".join(parts) + f"  exit {sorted(codes)}{status}",
          flush=True)
    if codes - {0, 1, 3}:
        for rs in runs.values():
            print("   stderr:", rs[-1]["stderr_tail"].strip().replace("\n", "\n   "))


if __name__ == "__main__":
    main()
