"""Path parallelism: the sweep behind the bound targets and the figures.

The paper's hardware, search space and baselines are unknown, so its figures are bounds; the
sweep shows where dnnsim's speedups fall. Every point compares per subnet trained (samples x
subnets per second): path-parallel (P paths per step, (G, g) searched) against supernet-dp (one
subnet per step over all GPUs, the same P paths) and supernet-pipeline (NASPipe-style, 2N
subnets through an N-stage pipeline). Settings of the sweep (documented defaults, not the
paper's): V100 GPUs, NVLink inside a node of 8, 10 Gb Ethernet between nodes, minibatch 256 per
subnet, seed 0.

The bounds are taken over the points inside one node (8 GPUs joined by NVLink, the targets'
scenario): nothing known of the paper's cluster says that it spanned nodes. The two-node point
(16 GPUs over 10 Gb Ethernet) is a what-if that the figures show beside them.
"""
from __future__ import annotations

from functools import lru_cache

from simulator.api import simulate
from simulator.cluster import Cluster
from workloads.supernet import SPACES

HARDWARE = "v100"
LINK = "nvlink2"
DEVICES_PER_NODE = 8
INTER_NODE_LINK = "eth10g"
BATCH = {"spos_cifar": 256, "spos_supernet": 256}
# (network, GPUs, paths): GPU sweep at P = N, paths sweep at 8 GPUs, two nodes of 8.
GPU_SWEEP = {"spos_cifar": (2, 4, 8, 16), "spos_supernet": (4, 8)}
PATH_SWEEP = {"spos_cifar": (8, (1, 2, 4, 8)), "spos_supernet": (8, (2, 8))}


def cluster(devices: int) -> Cluster:
    multi = devices > DEVICES_PER_NODE
    return Cluster.build(HARDWARE, devices, LINK,
                         devices_per_node=DEVICES_PER_NODE if multi else None,
                         inter_node_link=INTER_NODE_LINK if multi else None)


@lru_cache(maxsize=None)
def point(network: str, devices: int, paths: int, **variant) -> dict:
    """One sweep point: per-subnet throughput of each policy and the speedups."""
    c = cluster(devices)
    batch = BATCH[network]
    opts = dict(variant)
    pp = simulate(network, c, "path-parallel", batch=batch, paths=paths, **opts)
    dp = simulate(network, c, "supernet-dp", batch=batch, paths=paths)
    row = {"network": network, "gpus": devices, "paths": paths, **variant,
           "path_parallel": pp.throughput_samples_per_s, "dp": dp.throughput_samples_per_s,
           "groups": pp.extras.get("groups"), "gpus_per_group": pp.extras.get("gpus_per_group"),
           "flops_saved": pp.extras.get("flops_saved", 0.0),
           "flops_separate": pp.extras.get("flops_separate", 0.0),
           "gradient_bytes_saved": pp.extras.get("gradient_bytes_saved", 0.0),
           "gradient_bytes_separate": pp.extras.get("gradient_bytes_separate", 0.0)}
    row["speedup_dp"] = row["path_parallel"] / row["dp"]
    if devices <= SPACES[network].num_blocks + 2:   # a stage per GPU needs enough units
        pipe = simulate(network, c, "supernet-pipeline", batch=batch, paths=2 * devices)
        row["pipeline"] = pipe.throughput_samples_per_s
        row["speedup_pipeline"] = row["path_parallel"] / row["pipeline"]
    return row


def sweep(quick: bool = False) -> list[dict]:
    rows = []
    for network, gpus in GPU_SWEEP.items():
        for n in (gpus[:2] if quick else gpus):
            rows.append(point(network, n, n))
    for network, (n, paths) in PATH_SWEEP.items():
        for p in (paths[:2] if quick else paths):
            if p <= n:
                rows.append(point(network, n, p))
    return rows


def one_node_rows() -> list[dict]:
    """The sweep's points that fit in one node: those the bounds are taken over."""
    return [r for r in sweep() if r["gpus"] <= DEVICES_PER_NODE]


def max_speedup_over_dp(target=None) -> float:
    return max(r["speedup_dp"] for r in one_node_rows())


def max_speedup_over_pipeline(target=None) -> float:
    return max(r["speedup_pipeline"] for r in one_node_rows() if "speedup_pipeline" in r)
