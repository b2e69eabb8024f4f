"""Engine speed: one data-parallel ResNet-50 training iteration at scale.

    python benchmarks/engine_bench.py [--json]

Prints, for 64 devices with link-level collectives (every replica), 1,024 devices with
flow-level ones (replica 0 in lockstep) and 1,024 devices in DGX-1 nodes with link-level ones
on one ring (one replica per symmetry class, policies/_replicas.py; NCCL's trees would have
none): planning time, the engine's
time (engine.run: checking, reading the graph and running it) and, of it, the set-up (reading
the graph: dependency names to positions, successor lists, resource names to numbers) apart
from the loop; tasks and the ports they hold; the engine's tasks per second; and those tasks
per second divided by bare SimPy timeout events per second (how close the engine comes to
SimPy's own event rate). Both rates count whole runs: the engine's is simulated tasks over the
seconds of engine.run, set-up included (planning is not), SimPy's is timeouts over the
seconds of env.run.

Set-up and loop are reported apart because they grow with different things: the set-up with
tasks and dependencies, the loop with tasks, distinct instants and the ports each task holds.
The flow-level case has 517 tasks of which five collectives hold 2,048 ports each, so its
tasks per second measure per-port work, not per-task work: its ratio is printed but is not
one of the engine's goal cases (its wall time is planning's).

Each engine run is paired with a bare SimPy run just before it, REPEATS times, and the ratio
is the median of the pairs' ratios: on a machine shared with other work the load drifts, and
a pair sees about the same load. Goals: each case under 5 s on a 2-core machine; ratio >= 0.25
for the link-level cases.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import simpy

from simulator import Cluster, engine, policies
from simulator.tasks import cyclic_gc_paused
from workloads import zoo

REPEATS = 5


def bare_simpy_events_per_s(n: int = 200_000) -> float:
    """One process yielding n timeouts: SimPy's own event rate."""
    env = simpy.Environment()

    def proc(env):
        for _ in range(n):
            yield env.timeout(1e-6)

    env.process(proc(env))
    t0 = time.perf_counter()
    env.run()
    return n / (time.perf_counter() - t0)


def setup_s(graph, capacities: dict, memory: dict, resident: dict) -> float:
    """Seconds the engine takes to read the graph, as engine.run does before its loop (the
    cyclic collector paused, as there)."""
    with cyclic_gc_paused():
        t = time.perf_counter()
        engine._Run(graph, capacities, dict(memory), dict(resident), True)
        return time.perf_counter() - t


def case(devices: int, fidelity: str, replicas: str, node_type: str | None = None,
         algorithm: str | None = None) -> dict:
    t0 = time.perf_counter()
    cluster = (Cluster.from_node_type(node_type, devices) if node_type
               else Cluster.build("v100", devices, "nvlink2"))
    policy = policies.get("data-parallel")
    graph = policy.plan(zoo.get("resnet50", batch=32), cluster, True,
                        **policy.resolve({"collectives": fidelity, "replicas": replicas,
                                          "algorithm": algorithm}))
    # a plan may add resources of its own (an input pipeline's {device}.input)
    capacities = {**cluster.resources, **graph.meta.get("extra_resources", {})}
    memory, resident = cluster.memory_capacity_bytes(), graph.meta["resident_bytes"]
    t1 = time.perf_counter()
    runs = []   # (engine seconds, bare SimPy events per second just before, set-up seconds)
    for _ in range(REPEATS):
        simpy_rate = bare_simpy_events_per_s()
        t = time.perf_counter()
        log = engine.run(graph, capacities, memory, memory_baseline_bytes=resident)
        runs.append((time.perf_counter() - t, simpy_rate, setup_s(graph, capacities, memory,
                                                                  resident)))
    tasks = len(log.tasks)
    engine_s = statistics.median(s for s, _, _ in runs)
    engine_setup_s = statistics.median(s for _, _, s in runs)
    return {"devices": devices, "collectives": fidelity, "replicas": replicas,
            "nodes": node_type or "one switch",
            "wall_s": round(t1 - t0 + engine_s, 3), "plan_s": round(t1 - t0, 3),
            "engine_s": round(engine_s, 3), "engine_setup_s": round(engine_setup_s, 3),
            "engine_loop_s": round(max(0.0, engine_s - engine_setup_s), 3), "tasks": tasks,
            "ports_held": sum(len(t.resources) for t in log.tasks),
            "tasks_per_s": round(tasks / engine_s), "iteration_time_s": round(log.makespan_s, 6),
            "bare_simpy_events_per_s": round(statistics.median(r for _, r, _ in runs)),
            "ratio_to_bare_simpy": round(statistics.median(tasks / s / r for s, r, _ in runs), 3),
            "goal_case": fidelity == "link"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    rows = [case(64, "link", "all"), case(1024, "flow", "one"),
            case(1024, "link", "classes", "dgx1-v100", "ring")]
    if args.json:
        print(json.dumps({"cases": rows}, indent=2))
        return
    for r in rows:
        goal = "" if r["goal_case"] else " (per-port work: not a goal case)"
        print(f"{r['devices']:5d} devices ({r['nodes']}), {r['collectives']} collectives "
              f"({r['replicas']} replicas): {r['wall_s']:.2f} s wall (plan {r['plan_s']:.2f}, "
              f"engine {r['engine_s']:.3f} = set-up {r['engine_setup_s']:.3f} + loop "
              f"{r['engine_loop_s']:.3f}), {r['tasks']:,d} tasks holding {r['ports_held']:,d} "
              f"ports, {r['tasks_per_s']:,d} tasks/s (set-up included), bare SimPy "
              f"{r['bare_simpy_events_per_s']:,d} events/s, ratio "
              f"{r['ratio_to_bare_simpy']:.2f}{goal}, iteration "
              f"{r['iteration_time_s'] * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
