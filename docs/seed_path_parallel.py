"""Path parallelism's figures of docs/seed-techniques.md (docs/seed_techniques_page.py writes
the page): the largest speedups of the one-node sweep that `dnnsim reproduce --only
path-parallel` takes its bounds over (validation/reproduce/path_parallel/metrics.py), the
two-node what-if, how many of conventional training's GPU ops take no longer than the host
time that issues them (split over the GPUs and whole on one), how often two sampled subnets
share a candidate, and how much of the NASPipe-style pipeline's time each GPU computes.
"""
from __future__ import annotations

from simulator.api import simulate
from validation.reproduce.path_parallel import metrics as sweep
from validation.reproduce.targets import load_all
from workloads.supernet import SPACES

TWO_NODES = 2 * sweep.DEVICES_PER_NODE


def _one_node_points() -> list[dict]:
    """The sweep's points inside one node (the bounds' points), as metrics.sweep lists them."""
    points = [(net, n, n) for net, gpus in sweep.GPU_SWEEP.items() for n in gpus]
    points += [(net, n, p) for net, (n, paths) in sweep.PATH_SWEEP.items() for p in paths
               if p <= n]
    return [sweep.point(net, n, p) for net, n, p in dict.fromkeys(points)
            if n <= sweep.DEVICES_PER_NODE]


def _host_bound_share(network: str, devices: int, paths: int) -> float:
    """The share of gpu0's ops in a supernet-dp run that take no longer than the framework's
    host time per op (the model costs an op at least that: the GPU waits on the host)."""
    cluster = sweep.cluster(devices)
    run = simulate(network, cluster, "supernet-dp", batch=sweep.BATCH[network], paths=paths)
    host_s = cluster.devices[0].model.host_overhead_s
    ops = [r["duration_s"] for r in run.records() if r["resource"] == "gpu0.compute"]
    return sum(1 for d in ops if d <= host_s * (1 + 1e-9)) / len(ops)


def _where(row: dict, paths: bool = True) -> str:
    """'SPOS-CIFAR, 8 GPUs, 8 paths' (the pipeline's runs take no path count of the row)."""
    name = {"spos_cifar": "SPOS-CIFAR", "spos_supernet": "SPOS-ImageNet"}[row["network"]]
    return f"{name}, {row['gpus']} GPUs" + (f", {row['paths']} paths" if paths else "")


def figures() -> tuple[dict[str, str], dict[str, bool]]:
    targets = load_all(["path-parallel"])[0].targets
    bounds = {t.metric.rsplit(":", 1)[-1]: t.published for t in targets}
    rows = _one_node_points()
    over_dp = max(rows, key=lambda r: r["speedup_dp"])
    piped = [r for r in rows if "speedup_pipeline" in r]
    over_pipe = max(piped, key=lambda r: r["speedup_pipeline"])
    two_nodes = sweep.point(over_dp["network"], TWO_NODES, TWO_NODES)
    space = SPACES[over_pipe["network"]]
    share = 1 - (1 - 1 / space.num_choices) ** space.num_blocks
    devices = over_pipe["gpus"]
    pipe = simulate(over_pipe["network"], sweep.cluster(devices), "supernet-pipeline",
                    batch=sweep.BATCH[over_pipe["network"]], paths=2 * devices)
    computing = [pipe.busy_s[f"gpu{i}.compute"] / pipe.makespan_s for i in range(devices)]
    split = _host_bound_share(over_dp["network"], over_dp["gpus"], over_dp["paths"])
    whole = _host_bound_share(over_dp["network"], 1, over_dp["paths"])
    dp_bound = bounds["max_speedup_over_dp"]
    pipe_bound = bounds["max_speedup_over_pipeline"]
    values = {
        "pp_over_dp": f"{over_dp['speedup_dp']:.1f}x",
        "pp_over_dp_where": _where(over_dp),
        "pp_over_pipe": f"{over_pipe['speedup_pipeline']:.1f}x",
        "pp_over_pipe_where": _where(over_pipe, paths=False),
        "pp_dp_ways": str(over_dp["gpus"]),
        "pp_per_gpu": str(sweep.BATCH[over_dp["network"]] // over_dp["gpus"]),
        "pp_host_bound_split": f"{100 * split:.0f}%",
        "pp_host_bound_whole": f"{100 * whole:.0f}%",
        "pp_two_nodes": f"{two_nodes['speedup_dp']:.1f}x",
        "pp_share": f"{100 * share:.1f}%",
        "pp_computing": f"{100 * min(computing):.0f}-{100 * max(computing):.0f}%",
        "pp_subnets": str(2 * devices),
    }
    checks = {
        "the largest speedup over conventional training is within the paper's bound":
            over_dp["speedup_dp"] <= dp_bound,
        "the largest speedup over the pipeline is above the paper's bound":
            over_pipe["speedup_pipeline"] > pipe_bound,
        "the two-node what-if gives more than one node":
            two_nodes["speedup_dp"] > over_dp["speedup_dp"],
        "two sampled subnets almost always share a candidate": share > 0.99,
        "split over the GPUs, most of conventional training's ops wait on the host, fewer at "
        "the whole minibatch": split > 0.5 and whole < split,
    }
    return values, checks
