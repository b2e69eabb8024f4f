"""Hooks for the swap targets (validation/targets/swap.toml): figures that need a search.

Defaults the paper leaves open (listed in each target's `defaults`): GPU titan-x-pascal (12 GiB,
the Titan X of vDNN's measurements; the AccUDNN poster names none), PCIe 3.0 x16 (the GPU's
catalog host link), fp32, SGD with momentum.
"""
from __future__ import annotations

from hwmodels import catalog
from hwmodels.gpu import GPUModel
from hwmodels.gpu_memory import CONV_KINDS, conv_workspace_bytes, runtime_reservation
from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.framework_memory import caffe_training_bytes
from simulator.policies import _caffe_p2p as caffe_p2p
from simulator.tuner import tune
from workloads import zoo
from workloads.training import lower_training

GIB = 2 ** 30
GPU = "titan-x-pascal"
# How AccUDNN's "stock Caffe" synchronised its GPUs (swap.toml, resnet152-8gpu-scaling-over-
# caffe, says why P2PSync); "caffe-nccl" runs Caffe 1.0's instead
CAFFE_GRADIENT_SYNC = "caffe-p2p"
# Caffe 1.0's CuDNNConvolutionLayer (src/caffe/layers/cudnn_conv_layer.cpp, Reshape): each
# pass's algorithm is chosen within workspace_limit_bytes = 8 MiB, and the layer allocates the
# largest pass's workspace once for each of CUDNN_STREAMS_PER_GROUP = 3 streams per group
CAFFE_CUDNN_WORKSPACE_LIMIT_BYTES = 8 * 2 ** 20
CAFFE_CUDNN_STREAMS_PER_GROUP = 3


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


def caffe_cudnn_workspace_bytes(workload: str, batch: int, memory_gib: float) -> int:
    """The cuDNN workspaces stock Caffe 1.0 built with cuDNN allocates at set-up, before any
    blob: for each convolution layer, the largest of its forward, data-gradient and
    filter-gradient workspaces, times 3 streams per group and its groups. Each pass runs the
    fastest algorithm whose workspace is within 8 MiB: dnnsim's GPU model ranks them where
    Caffe asks cuDNN's heuristic (cudnnGetConvolution*Algorithm, SPECIFY_WORKSPACE_LIMIT),
    a stated choice. The first layer has no data-gradient pass in the graph (nothing is
    propagated to the image), so its bytes are those of the two other passes."""
    model = gpu_cluster(memory_gib).devices[0].model
    if not isinstance(model, GPUModel):
        raise TypeError(f"{GPU} is modelled as {type(model).__name__}, not a GPU")
    fam = model.family_constants
    per_layer: dict[str, int] = {}
    groups: dict[str, int] = {}
    for op in lower_training(zoo.get(workload, batch=batch)).topo():
        if op.kind not in CONV_KINDS or op.is_view:
            continue
        layer = op.name.removesuffix(".grad_input").removesuffix(".grad_weight")
        tensor = model.tensor_cores(op)
        sized = [(model.option_time_s(o, fam, tensor), conv_workspace_bytes(op, o.algorithm))
                 for o in model.kernel_options(op)]
        _, nbytes = min((t, b) for t, b in sized if b <= CAFFE_CUDNN_WORKSPACE_LIMIT_BYTES)
        per_layer[layer] = max(per_layer.get(layer, 0), nbytes)
        groups[layer] = int(op.attrs.get("groups", 1))
    return sum(b * CAFFE_CUDNN_STREAMS_PER_GROUP * groups[layer]
               for layer, b in per_layer.items())


def caffe_cudnn_largest_batch(workload: str, memory_gib: float) -> int:
    """The largest minibatch stock Caffe built with cuDNN trains within `memory_gib`: its blobs
    and buffers (caffe_largest_batch) with each convolution's cuDNN workspaces held too. The
    workspaces grow with the batch up to their limit, so a bisection below the batch that
    fits without them."""
    lo, hi = 0, caffe_largest_batch(workload, memory_gib) + 1    # lo fits, hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        held = caffe_cudnn_workspace_bytes(workload, mid, memory_gib)
        if caffe_largest_batch(workload, memory_gib, held_bytes=held) >= mid:
            lo = mid
        else:
            hi = mid
    return lo


def resnet152_minibatch_ratio(target) -> float:
    """Throughput-optimal minibatch with `swap` (the tuner's, refined to one sample) over the
    largest stock Caffe built with cuDNN trains, 12 GiB."""
    caffe = caffe_cudnn_largest_batch("resnet152", 12.0)
    swap, = tune("resnet152", gpu_cluster(12.0), ["swap"], max_batch=512)
    if caffe == 0 or swap.best is None:
        return float("nan")
    return swap.best.batch / caffe


def vgg16_swap_all_slowdown(target) -> float:
    """vDNN: swap-all step time on a 12 GiB GPU over the step with unlimited memory, minus 1,
    both under the scenario's framework memory."""
    batch = int(target.scenario.get("batch", 256))
    cluster = gpu_cluster(hardware_options=target.scenario.get("hardware_options"),
                          hardware=target.scenario.get("hardware", GPU))
    framework = target.scenario.get("framework_memory")
    run = simulate("vgg16", cluster, "swap-all", batch=batch, framework_memory=framework,
                   **target.scenario.get("options", {}))
    free = simulate("vgg16", cluster, "none", batch=batch, enforce_memory=False,
                    framework_memory=framework)
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
    # AccUDNN is built on Caffe, and neither Caffe ran NCCL 2's tuned all-reduce (P2PSync
    # copies up a tree of pairs, Caffe 1.0 ran NCCL 1's rings): one ring on both sides,
    # stated rather than left to the policies' default (NCCL's choice on GPUs)
    swap8 = (_throughput("resnet152", gpu_cluster(count=8), "swap", 64, algorithm="ring")
             / _throughput("resnet152", gpu_cluster(), "swap", 64))
    b = caffe_multi_gpu_largest_batch("resnet152", 12.0, 8, caffe_sync)
    caffe8 = (_throughput("resnet152", gpu_cluster(count=8), "data-parallel", b,
                          gradient_sync=caffe_sync, framework_memory="caffe",
                          algorithm="ring")
              / _throughput("resnet152", gpu_cluster(), "sequential", b,
                            framework_memory="caffe"))
    return swap8 / caffe8
