"""Simulator cost against GPU count, at each fidelity of the collectives.

Data-parallel ResNet-50 (batch 32, FP32) on DGX-1 nodes (8 V100s on NVLink, 100 Gb InfiniBand
between nodes) by default; --workload, --batch, --precision and --node-type run another.

    python benchmarks/scale_bench.py [--max-gpus 8192] [--gpus 64,256,1024]
                                     [--workload resnet50] [--batch 32] [--precision fp32]
                                     [--node-type dgx1-v100] [--out scale_bench.png] [--json]

Fidelities:
  link-ring          link-level collectives, one ring through every GPU, one replica per
                     symmetry class standing for all (every replica's traffic represented)
  link-hierarchical  the same with NCCL's hierarchical all-reduce
  link-nccl          the same as NCCL's tuning runs each all-reduce (data-parallel's default
                     on GPUs): by class where it puts every one on its rings per NIC, every
                     replica where it puts one on a tree (no class stands for the others;
                     up to 64 GPUs)
  link-all           link-level, every replica built in full (up to 64 GPUs: it grows with
                     the square of the count)
  flow-one           closed-form collectives, replica 0 in lockstep for the others
  default            data-parallel's defaults (simulator/policies/_replicas.py): by class,
                     link-level where the all-reduces are built by class or up to 64 GPUs
  default-ring       the same with one ring through every GPU (always built by class)

Each case runs in a fresh process, so its peak memory (the process's maximum resident set)
is its own; the wall time is planning plus the engine's run, without the interpreter's start,
and the CPU time the same span's processor time (on a machine shared with other work, wall
time includes waiting for a core; CPU time does not, so it is the one to compare across runs).
Prints a table, the exponent b of wall ~ p^b fitted over 64 GPUs and more for each fidelity,
and plots wall time against GPUs.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

from _plot import log_log_plot

FIDELITIES = {  # name -> (collectives, replicas, algorithm, largest GPU count)
    "link-ring": ("link", "classes", "ring", None),
    "link-hierarchical": ("link", "classes", "hierarchical", None),
    "link-nccl": ("link", "classes", "nccl", 64),
    "link-all": ("link", "all", "ring", 64),
    "flow-one": ("flow", "one", "ring", None),
    "default": ("-", "-", "-", None),
    "default-ring": ("-", "-", "ring", None),
}

CASE = """
import json, resource, sys, time
from simulator import Cluster, engine, policies
from workloads import zoo
from simulator.api import apply_precision
gpus, collectives, replicas, algorithm = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
workload, batch, precision, node_type = sys.argv[5], int(sys.argv[6]), sys.argv[7], sys.argv[8]
policy = policies.get("data-parallel")
t0, c0 = time.perf_counter(), time.process_time()
cluster = Cluster.from_node_type(node_type, gpus)
graph = apply_precision(zoo.get(workload, batch=batch), cluster, precision)
asked = {"collectives": collectives, "replicas": replicas, "algorithm": algorithm}
tg = policy.plan(graph, cluster, True, **policy.resolve(
    {k: v for k, v in asked.items() if v != "-"}))
t1 = time.perf_counter()
capacities = {**cluster.resources, **tg.meta.get("extra_resources", {})}
log = engine.run(tg, capacities, cluster.memory_capacity_bytes(),
                 memory_baseline_bytes=tg.meta["resident_bytes"])
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"fidelity_run": tg.meta["fidelity"], "replicas_run": tg.meta["replicas"],
                  "plan_s": t1 - t0, "engine_s": t2 - t1, "wall_s": t2 - t0, "cpu_s": c2 - c0,
                  "tasks": len(tg), "iteration_time_s": log.makespan_s,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_case(gpus: int, fidelity: str, workload: str = "resnet50", batch: int = 32,
             precision: str = "fp32", node_type: str = "dgx1-v100") -> dict:
    collectives, replicas, algorithm, _ = FIDELITIES[fidelity]
    out = subprocess.run([sys.executable, "-c", CASE, str(gpus), collectives, replicas,
                          algorithm, workload, str(batch), precision, node_type],
                         check=True, capture_output=True, text=True).stdout
    return {"gpus": gpus, "fidelity": fidelity, **json.loads(out)}


def fitted_exponent(rows: list[dict], smallest: int = 64, cost: str = "wall_s"
                    ) -> float | None:
    """Least-squares slope of log(cost) on log(GPUs), over counts >= smallest."""
    pts = [(math.log(r["gpus"]), math.log(r[cost])) for r in rows if r["gpus"] >= smallest]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def plot(rows: list[dict], path: str, workload: str = "resnet50",
         node_type: str = "dgx1-v100") -> None:
    series = {f: ([r["gpus"] for r in rows if r["fidelity"] == f],
                  [r["wall_s"] for r in rows if r["fidelity"] == f]) for f in FIDELITIES}
    log_log_plot({f: xy for f, xy in series.items() if xy[0]}, path,
                 xlabel=f"GPUs ({node_type} nodes)", ylabel="simulator wall time (s)",
                 title=f"Data-parallel {workload}: simulator cost")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-gpus", type=int, default=8192,
                    help="largest GPU count (powers of two from 8 up to it; default 8192)")
    ap.add_argument("--fidelity", action="append", choices=sorted(FIDELITIES),
                    help="fidelities to run (default all; repeatable)")
    ap.add_argument("--gpus", help="GPU counts, comma-separated (default: powers of two "
                                   "from 8 to --max-gpus)")
    ap.add_argument("--workload", default="resnet50", help="zoo network (default resnet50)")
    ap.add_argument("--batch", type=int, default=32, help="batch per GPU (default 32)")
    ap.add_argument("--precision", default="fp32", help="precision (default fp32)")
    ap.add_argument("--node-type", default="dgx1-v100", help="node type (default dgx1-v100)")
    ap.add_argument("--out", default="scale_bench.png", help="PNG to write")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    if args.max_gpus < 8:
        ap.error(f"--max-gpus must be at least 8 (the smallest count run), got {args.max_gpus}")
    counts = [2 ** k for k in range(3, 14) if 2 ** k <= args.max_gpus]
    if args.gpus:
        try:
            counts = sorted({int(n) for n in args.gpus.split(",")})
        except ValueError:
            ap.error(f"--gpus takes whole numbers separated by commas, got {args.gpus!r}")
        if counts[0] < 1:
            ap.error(f"--gpus must be at least 1, got {args.gpus!r}")
    rows = []
    for fidelity in args.fidelity or list(FIDELITIES):
        largest = FIDELITIES[fidelity][3] or args.max_gpus
        for gpus in (c for c in counts if c <= largest):
            rows.append(run_case(gpus, fidelity, args.workload, args.batch, args.precision,
                                 args.node_type))
            r = rows[-1]
            if not args.json:
                print(f"{fidelity:18s} {gpus:5d} GPUs: {r['wall_s']:7.2f} s wall "
                      f"(plan {r['plan_s']:6.2f}, engine {r['engine_s']:6.2f}), "
                      f"{r['cpu_s']:7.2f} s CPU, "
                      f"{r['tasks']:8,d} tasks, {r['peak_rss_mib']:7.0f} MiB peak, "
                      f"iteration {r['iteration_time_s'] * 1e3:7.2f} ms "
                      f"({r['fidelity_run']}, {r['replicas_run']})", flush=True)
    exponents = {f: fitted_exponent([r for r in rows if r["fidelity"] == f])
                 for f in FIDELITIES}
    cpu_exponents = {f: fitted_exponent([r for r in rows if r["fidelity"] == f], cost="cpu_s")
                     for f in FIDELITIES}
    if args.json:
        print(json.dumps({"rows": rows, "exponents": exponents, "cpu_exponents": cpu_exponents},
                         indent=2))
    else:
        for f, b in exponents.items():
            if b is not None:
                print(f"{f}: wall time grows as GPUs^{b:.2f}, CPU time as "
                      f"GPUs^{cpu_exponents[f]:.2f} (fitted from 64 GPUs up)")
    plot(rows, args.out, args.workload, args.node_type)
    if not args.json:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
