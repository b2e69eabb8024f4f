"""Simulator cost of the `megatron` policy at the scale it is for: GPT-3 175B on 1,024 H100s
(128 DGX-H100 nodes), tp 8 x pp 16 x dp 8, micro-batch 1, bf16, full recomputation.

    python benchmarks/megatron_bench.py [--micro-batches 64,192] [--json]

One rank of each of the 16 stages is simulated (megatron.py, "Symmetry"); the cost grows with
the micro-batches of the step. For each count, prints the tasks, the planning and engine CPU
seconds (processor time: on a shared machine wall time includes waiting for a core) and the
simulated step time and MFU. Goal: well under a minute for the whole case.
"""
from __future__ import annotations

import argparse
import json
import time

from simulator import Cluster, policies
from simulator.api import load_workload
from simulator.policies._runs import run_tasks
from workloads.precision import with_precision


def case(micro_batches: int) -> dict:
    t0 = time.process_time()
    graph = with_precision(load_workload("gpt3_175b", 1), "bf16")
    cluster = Cluster.from_node_type("dgx-h100", 1024)
    policy = policies.get("megatron")
    plan = policy.plan(graph, cluster, True, **policy.resolve(
        {"tp": 8, "pp": 16, "micro_batches": micro_batches, "recompute": "full"}))
    t1 = time.process_time()
    log = run_tasks(plan.tasks, cluster)
    t2 = time.process_time()
    return {"micro_batches": micro_batches, "tasks": len(plan.tasks),
            "plan_cpu_s": round(t1 - t0, 2), "engine_cpu_s": round(t2 - t1, 2),
            "total_cpu_s": round(t2 - t0, 2), "step_s": round(log.makespan_s, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--micro-batches", default="64,192",
                    help="micro-batches per step, comma-separated (192: a global batch of "
                         "1,536 over dp 8)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [case(int(m)) for m in args.micro_batches.split(",")]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'micro-batches':>13} {'tasks':>9} {'plan s':>7} {'engine s':>8} {'total s':>7} "
          f"{'step s':>7}")
    for r in rows:
        print(f"{r['micro_batches']:>13} {r['tasks']:>9,} {r['plan_cpu_s']:>7} "
              f"{r['engine_cpu_s']:>8} {r['total_cpu_s']:>7} {r['step_s']:>7}")


if __name__ == "__main__":
    main()
