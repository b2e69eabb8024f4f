"""AccUDNN's figures of docs/seed-techniques.md (docs/seed_techniques_page.py writes the page):
the `swap` run of ResNet-152 on a Titan X (Pascal) held to 8 GiB at the minibatch the target
resnet152-24gb-in-8gb picks, and stock Caffe's largest minibatch under 12 GiB with and without
cuDNN workspaces (validation/reproduce/swap/metrics.py, the hooks of
`dnnsim reproduce --only swap`).
"""
from __future__ import annotations

from collections import defaultdict

from hwmodels.gpu_memory import CONV_KINDS, runtime_reservation
from simulator.api import simulate
from simulator.framework_memory import caffe_blob_bytes, caffe_param_bytes
from validation.reproduce.swap import metrics as swap
from workloads import zoo

WORKLOAD = "resnet152"
NEEDS_OVER_GIB = 24.0
SWAP_MEMORY_GIB = 8.0
CAFFE_MEMORY_GIB = 12.0
WORKSPACE_WHAT_IF_MIB = (8, 24)   # a workspace per convolution: the limit, and 3 streams of it


def _blobs_alone_largest_batch() -> int:
    """The largest minibatch Caffe's blobs, diffs and parameters alone would fit in 12 GiB
    (no layer's own buffers, no workspace)."""
    spec = swap.gpu_cluster(CAFFE_MEMORY_GIB).devices[0].spec
    budget = spec.memory_bytes - runtime_reservation(spec).total_bytes
    one, two = zoo.get(WORKLOAD, batch=1), zoo.get(WORKLOAD, batch=2)
    per_sample = caffe_blob_bytes(two) - caffe_blob_bytes(one)
    fixed = caffe_blob_bytes(one) - per_sample + caffe_param_bytes(one)
    return max(0, (budget - fixed) // per_sample)


def figures() -> tuple[dict[str, str], dict[str, bool]]:
    batch = swap.batch_needing(WORKLOAD, NEEDS_OVER_GIB)
    run = simulate(WORKLOAD, swap.gpu_cluster(SWAP_MEMORY_GIB), "swap", batch=batch)
    phase_s: dict[tuple[str, str], float] = defaultdict(float)
    for r in run.records():
        phase_s[(r["resource"], r["phase"])] += r["duration_s"]
    peak_gib = run.peak_device_memory_bytes["gpu0"] / swap.GIB
    convs = sum(1 for op in zoo.get(WORKLOAD, batch=1).topo()
                if op.kind in CONV_KINDS and not op.is_view)
    caffe = swap.caffe_cudnn_largest_batch(WORKLOAD, CAFFE_MEMORY_GIB)
    what_if = [swap.caffe_largest_batch(WORKLOAD, CAFFE_MEMORY_GIB,
                                        held_bytes=convs * mib * 2 ** 20)
               for mib in WORKSPACE_WHAT_IF_MIB]
    values = {
        "swap_batch": str(batch),
        "swap_peak_gib": f"{peak_gib:.2f} GiB",
        "swap_offloaded": str(run.extras["offloaded_tensors"]),
        "swap_offloaded_gib": f"{run.extras['offloaded_gib']:.1f} GiB",
        "swap_step_s": f"{run.iteration_time_s:.2f} s",
        "swap_compute_s": f"{run.busy_s['gpu0.compute']:.2f} s",
        "swap_pcie_gb": f"{run.link_bytes['gpu0.d2h'] / 1e9:.1f} GB",
        "swap_pcie_s": f"{max(run.busy_s['gpu0.d2h'], run.busy_s['gpu0.h2d']):.1f} s",
        "swap_forward_s": f"{phase_s[('gpu0.compute', 'forward')]:.2f} s",
        "swap_backward_s": f"{phase_s[('gpu0.compute', 'backward')]:.2f} s",
        "caffe_batch": str(caffe),
        "caffe_blobs_batch": str(_blobs_alone_largest_batch()),
        "caffe_convs": str(convs),
        "caffe_ws_low": f"{WORKSPACE_WHAT_IF_MIB[0]} MiB", "caffe_ws_low_batch": str(what_if[0]),
        "caffe_ws_high": f"{WORKSPACE_WHAT_IF_MIB[1]} MiB",
        "caffe_ws_high_batch": str(what_if[1]),
    }
    checks = {
        "swap trains ResNet-152 within 8 GiB": run.ok and peak_gib <= SWAP_MEMORY_GIB,
        "each way's copies take longer than the pass they overlap":
            phase_s[("gpu0.compute", "forward")] < run.busy_s["gpu0.d2h"]
            and phase_s[("gpu0.compute", "backward")] < run.busy_s["gpu0.h2d"],
        "the step takes longer than its compute": run.iteration_time_s > run.busy_s[
            "gpu0.compute"],
        "every pass of ResNet-152 Caffe picks within 8 MiB needs no workspace":
            swap.caffe_cudnn_workspace_bytes(WORKLOAD, caffe, CAFFE_MEMORY_GIB) == 0,
        "workspaces would leave Caffe a smaller minibatch": what_if[1] < what_if[0] < caffe,
    }
    return values, checks
