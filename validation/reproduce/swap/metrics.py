"""Hooks for the swap targets (validation/targets/swap.toml): figures that need a search.

Defaults the paper leaves open (listed in each target's `defaults`): GPU titan-x-pascal (12 GiB,
the Titan X of vDNN's measurements; the AccUDNN poster names none), PCIe 3.0 x16 (the GPU's
catalog host link), fp32, SGD with momentum.
"""
from __future__ import annotations

from hwmodels import catalog
from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.tuner import tune

GIB = 2 ** 30
GPU = "titan-x-pascal"


def gpu_cluster(memory_gib: float | None = None, count: int = 1, link: str = "pcie3") -> Cluster:
    spec = catalog.device(GPU)
    if memory_gib is not None:
        spec = spec.with_options(memory_bytes=int(memory_gib * GIB))
    return Cluster.build(spec, count, link)


def batch_needing(workload: str, over_gib: float, step: int = 8) -> int:
    """The smallest multiple of `step` whose plain training needs more than `over_gib`."""
    b = step
    while True:
        r = simulate(workload, gpu_cluster(), "none", batch=b, enforce_memory=False)
        if r.peak_memory_bytes["gpu0"] > over_gib * GIB:
            return b
        b += step


def resnet152_swap_peak_gib(target) -> float:
    """Peak device memory (GiB) of `swap` on an 8 GiB GPU at a minibatch that needs > 24 GiB
    without swapping; NaN if it does not train."""
    b = batch_needing("resnet152", 24.0)
    r = simulate("resnet152", gpu_cluster(8.0), "swap", batch=b)
    return r.peak_memory_bytes["gpu0"] / GIB if r.ok else float("nan")


def resnet152_minibatch_ratio(target) -> float:
    """Throughput-optimal minibatch with `swap` over the largest without, under 12 GiB."""
    none, swap = tune("resnet152", gpu_cluster(12.0), ["none", "swap"], max_batch=512)
    if none.largest_trainable is None or swap.best is None:
        return float("nan")
    return swap.best.batch / none.largest_trainable


def vgg16_swap_all_slowdown(target) -> float:
    """vDNN: swap-all step time on a 12 GiB GPU over the step with unlimited memory, minus 1."""
    batch = int(target.scenario.get("batch", 256))
    run = simulate("vgg16", gpu_cluster(), "swap-all", batch=batch)
    free = simulate("vgg16", gpu_cluster(), "none", batch=batch, enforce_memory=False)
    return run.iteration_time_s / free.iteration_time_s - 1.0 if run.ok else float("nan")
