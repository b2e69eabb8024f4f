"""Hooks for the swap targets (validation/targets/swap.toml): figures that need a search.

Defaults the paper leaves open (listed in each target's `defaults`): GPU titan-x-pascal (12 GiB,
the Titan X of vDNN's measurements; the AccUDNN poster names none), PCIe 3.0 x16 (the GPU's
catalog host link), fp32, SGD with momentum.
"""
from __future__ import annotations

from hwmodels import catalog
from hwmodels.gpu_memory import runtime_reservation
from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.framework_memory import caffe_training_bytes
from simulator.policies import _caffe_p2p as caffe_p2p
from simulator.tuner import tune
from workloads import zoo

GIB = 2 ** 30
GPU = "titan-x-pascal"
# How AccUDNN's "stock Caffe" synchronised its GPUs (swap.toml, resnet152-8gpu-scaling-over-
# caffe, says why P2PSync); "caffe-nccl" runs Caffe 1.0's instead
CAFFE_GRADIENT_SYNC = "caffe-p2p"


def gpu_cluster(memory_gib: float | None = None, count: int = 1, link: str = "pcie3",
                hardware_options: dict | None = None, hardware: str = GPU) -> Cluster:
    spec = catalog.device(hardware)
    if hardware_options:
        spec = spec.with_options(**hardware_options)
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
    without swapping: what nvidia-smi would show (tensors, the allocator's rounding and cache,
    the CUDA context), the whole of what the 8 GiB bound is on; NaN if it does not train."""
    b = batch_needing("resnet152", 24.0)
    r = simulate("resnet152", gpu_cluster(8.0), "swap", batch=b)
    return r.peak_device_memory_bytes["gpu0"] / GIB if r.ok else float("nan")


def caffe_largest_batch(workload: str, memory_gib: float, held_bytes: int = 0) -> int:
    """The largest minibatch stock Caffe trains within `memory_gib` (its static blobs and
    gradients, simulator/framework_memory.py, plus the CUDA context and `held_bytes` more:
    P2PSync's buffers for a GPU's children); 0 if none. Closed form of where the `caffe`
    policy, and data-parallel's caffe-p2p on the root, run out of memory (tests check)."""
    spec = gpu_cluster(memory_gib).devices[0].spec
    budget = spec.memory_bytes - runtime_reservation(spec).total_bytes - held_bytes
    one = caffe_training_bytes(zoo.get(workload, batch=1))
    per_sample = caffe_training_bytes(zoo.get(workload, batch=2)) - one
    return max(0, (budget - (one - per_sample)) // per_sample)


def resnet152_minibatch_ratio(target) -> float:
    """Throughput-optimal minibatch with `swap` over the largest stock Caffe trains, 12 GiB."""
    caffe = caffe_largest_batch("resnet152", 12.0)
    swap, = tune("resnet152", gpu_cluster(12.0), ["swap"], max_batch=512)
    if caffe == 0 or swap.best is None:
        return float("nan")
    return swap.best.batch / caffe


def vgg16_swap_all_slowdown(target) -> float:
    """vDNN: swap-all step time on a 12 GiB GPU over the step with unlimited memory, minus 1."""
    batch = int(target.scenario.get("batch", 256))
    cluster = gpu_cluster(hardware_options=target.scenario.get("hardware_options"),
                          hardware=target.scenario.get("hardware", GPU))
    run = simulate("vgg16", cluster, "swap-all", batch=batch,
                   **target.scenario.get("options", {}))
    free = simulate("vgg16", cluster, "none", batch=batch, enforce_memory=False)
    return run.iteration_time_s / free.iteration_time_s - 1.0 if run.ok else float("nan")


def _throughput(workload: str, cluster: Cluster, policy: str, batch: int, **opts) -> float:
    """Samples per second; NaN if the step does not fit."""
    r = simulate(workload, cluster, policy, batch=batch, **opts)
    return r.throughput_samples_per_s if r.ok else float("nan")


def caffe_multi_gpu_largest_batch(workload: str, memory_gib: float, devices: int,
                                  gradient_sync: str) -> int:
    """The largest minibatch per GPU that stock Caffe trains on `devices` GPUs within
    `memory_gib` each: under caffe-p2p the root binds, holding a gradient-sized buffer for
    each of its children besides its own net (_caffe_p2p.receive_buffer_bytes)."""
    held = 0
    if gradient_sync == caffe_p2p.SYNC:
        weights = sum(op.param_bytes for op in zoo.get(workload, batch=1) if op.params)
        held = max(caffe_p2p.receive_buffer_bytes([f"gpu{i}" for i in range(devices)],
                                                  weights).values())
    return caffe_largest_batch(workload, memory_gib, held)


def resnet152_8gpu_scaling_over_caffe(target, caffe_sync: str = CAFFE_GRADIENT_SYNC) -> float:
    """8-GPU speedup of the swap plan (batch 64 per GPU) over that of stock Caffe (its
    multi-GPU training as `caffe_sync` says, data-parallel's gradient_sync: caffe-p2p, the
    P2PSync of Caffe rc3-rc5, or caffe-nccl, Caffe 1.0's), under Caffe's memory
    (framework_memory caffe), at the largest minibatch per GPU its 8-GPU run fits in
    12 GiB per GPU, on 1 and 8 GPUs. Speedups are over one GPU of each; NaN if a step does
    not fit."""
    swap8 = (_throughput("resnet152", gpu_cluster(count=8), "swap", 64)
             / _throughput("resnet152", gpu_cluster(), "swap", 64))
    b = caffe_multi_gpu_largest_batch("resnet152", 12.0, 8, caffe_sync)
    caffe8 = (_throughput("resnet152", gpu_cluster(count=8), "data-parallel", b,
                          gradient_sync=caffe_sync, framework_memory="caffe")
              / _throughput("resnet152", gpu_cluster(), "sequential", b,
                            framework_memory="caffe"))
    return swap8 / caffe8
