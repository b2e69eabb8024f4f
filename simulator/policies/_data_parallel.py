"""What data-parallel training shares between the policies that run it (`data-parallel`,
`swap`, `swap-all`): DDP's gradient buckets, MXNet's kvstore keys and Caffe's layers (Horovod's
fused cycles: _horovod.py), their all-reduces, the input loader, the ranks' spread, and the
options that set them."""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping

from hwmodels import host_input
from hwmodels.specs import HardwareError

from ..collectives import (
    ALGORITHMS,
    FIDELITIES,
    NCCL_BASE_LATENCY_S,
    collective,
    framework_launch_s,
)
from ..tasks import TaskGraph
from . import ConfigError, Option
from ._horovod import (
    HOROVOD_ENQUEUE,
    HOROVOD_ONE_RANK,
    horovod_sync_groups,
    refuse_horovod_options,
)
from ._sync_group import MIB, SyncGroup, parameter_arrays_bytes

DDP_FIRST_BUCKET_BYTES = 1 * MIB     # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES
# How each framework groups gradients into all-reduces (option gradient_sync)
GRADIENT_SYNCS = ("ddp", "horovod", "kvstore", "caffe-nccl", "caffe-p2p")
# The schemes whose all-reduces run on NCCL 2's all-reduce, which picks its algorithm and
# protocol per call (the default algorithm 'nccl' on GPUs: default_algorithm)
NCCL_ALLREDUCE_SYNCS = ("ddp", "horovod")
# When gradients are ready (option gradients_ready): as each backward op ends (eager), or all
# at the end of the backward pass (one compiled cluster: XLA's auto-clustering puts the
# forward and backward pass in one cluster, Horovod's all-reduces outside it)
GRADIENTS_READY = ("per-op", "at-end")
# How the ranks' step times are distributed about their typical value (option rank_tail;
# rank_time_factors)
RANK_TAILS = ("exponential", "lognormal")


def gradient_buckets(train_graph, bucket_bytes: float,
                     first_bucket_bytes: float = DDP_FIRST_BUCKET_BYTES) -> list[list[str]]:
    """Names of the ops that produce weight gradients, grouped in backward order as DDP's
    buckets: a bucket closes once it holds at least its cap (first_bucket_bytes for the first,
    bucket_bytes after), so a bucket may pass its cap by part of one layer's gradients."""
    buckets: list[list[str]] = [[]]
    size, cap = 0, first_bucket_bytes
    for op in train_graph.topo():
        if op.phase == "backward" and op.params:
            buckets[-1].append(op.name)
            size += op.param_bytes
            if size >= cap:
                buckets.append([])
                size, cap = 0, bucket_bytes
    return [b for b in buckets if b]



def ddp_groups(train_graph, bucket_bytes: float) -> list[SyncGroup]:
    """DDP: one all-reduce per bucket (gradient_buckets)."""
    return [SyncGroup(tuple(names), sum(train_graph.op(nm).param_bytes for nm in names))
            for names in gradient_buckets(train_graph, bucket_bytes)]


def kvstore_groups(train_graph) -> list[SyncGroup]:
    """MXNet's kvstore 'nccl' under the Module API, as one process drives every GPU of a node.

    Module.update() (mxnet/model.py, _update_params_on_kvstore) walks the parameter arrays in
    their index order, the order the forward pass first uses them, and for each calls
    kvstore.push(key, its gradient on every GPU, priority=-index) and kvstore.pull(key, its
    weights on every GPU): per key an NCCL reduce to the root and, after the update there,
    an NCCL broadcast. KVStoreNCCL (src/kvstore/kvstore_nccl.h, MXNet 1.2-1.4; recalled, not
    checked against the file here) runs each on the host and makes every one of them write
    one engine variable, with a synchronisation of the GPUs' NCCL streams after each. MXNet's
    dependency engine runs the operations that write a variable in the order they were
    pushed, whatever their priority: the keys go one after another in index order, so the
    first key, the first layer's weights, whose gradient is ready only when the backward pass
    ends, holds back every other key, and the whole chain runs after the backward pass. Each
    key then costs NCCL's launch twice and a ring's steps twice over (a reduce and a broadcast
    each step through the p GPUs): about 45 us at 4 GPUs and 70 us at 8 on NVLink, 161 keys in
    ResNet-50, whatever the gradients' width. On one GPU Module makes no kvstore
    (model._create_kvstore) and nothing of this is paid.

    Simulated as one ring all-reduce per key (a ring reduce plus a ring broadcast move S bytes
    over each link, an all-reduce 2S(p-1)/p) paying NCCL's launch twice, the keys in index
    order, each after the one before (allreduce_groups chains the groups)."""
    producers = [op for op in train_graph.topo() if op.phase == "backward" and op.params]
    return [SyncGroup((op.name,), nbytes, extra_launch_s=NCCL_BASE_LATENCY_S)
            for op in reversed(producers) for nbytes in parameter_arrays_bytes(op)]


def caffe_nccl_groups(train_graph) -> list[SyncGroup]:
    """Caffe 1.0's NCCL class with layer_wise_reduce (its default; src/caffe/parallel.cpp,
    NCCL::run): as each layer's backward ends, one ncclAllReduce of all its parameters'
    gradients (contiguous in Caffe's diff buffer), on a stream of its own beside the backward
    pass, in backward order; every GPU then updates its own weights."""
    return [SyncGroup((op.name,), op.param_bytes) for op in train_graph.topo()
            if op.phase == "backward" and op.params]


def sync_groups(tg: TaskGraph, train_graph, cluster, fwd_bwd, task_of: dict[str, dict[str, str]],
                gradient_sync: str, bucket_mb: float, cycle_time_ms: float | None,
                fusion_mb: float | None, gradients_ready: str,
                horovod_one_rank: str | None = None,
                horovod_enqueue: str | None = None) -> list[SyncGroup]:
    """The all-reduces of a step as `gradient_sync` groups the gradients (GRADIENT_SYNCS),
    for the simulated ranks whose forward and backward ops (`fwd_bwd`) are emitted as
    task_of says ('caffe-p2p' is a step of its own: _caffe_p2p.py). Horovod's options given
    to another scheme are refused."""
    refuse_horovod_options(gradient_sync, cycle_time_ms, fusion_mb, horovod_one_rank,
                           horovod_enqueue)
    if gradient_sync == "ddp":
        return ddp_groups(train_graph, bucket_mb * MIB)
    if gradient_sync == "kvstore":
        if cluster.nodes > 1:
            # KVStoreNCCL drives the GPUs of one process; across machines MXNet runs
            # 'dist_sync' (ps-lite's parameter servers), another scheme
            raise ConfigError(f"gradient_sync 'kvstore' is MXNet's kvstore 'nccl', which "
                              f"runs within one machine: this cluster has {cluster.nodes} "
                              f"nodes (MXNet's 'dist_sync' parameter servers are not "
                              f"modelled; 'horovod' is how NVIDIA's MXNet scripts scale out)")
        return kvstore_groups(train_graph)
    if gradient_sync == "caffe-nccl":
        return caffe_nccl_groups(train_graph)
    return horovod_sync_groups(tg, train_graph, cluster, fwd_bwd, task_of, cycle_time_ms,
                               fusion_mb, gradients_ready, horovod_one_rank, horovod_enqueue)


def default_algorithm(cluster, gradient_sync: str | None = None) -> str:
    """The collective algorithm a framework runs when none is given: 'nccl' on GPUs for
    every framework that calls NCCL 2's collectives, whose tuning picks ring or tree and the
    protocol per call: PyTorch DDP and Horovod (gradient_sync in NCCL_ALLREDUCE_SYNCS), and
    the policies that model PyTorch or Megatron-LM, whose FSDP, tensor parallelism and
    process groups run on NCCL (gradient_sync None). Else 'ring': Caffe 1.0 (caffe-nccl) ran
    NCCL 1's rings, MXNet's kvstore a reduce and a broadcast per key (NCCL's tuning of those
    is not modelled), Caffe's P2PSync no collective, and devices that are not GPUs MPI's or
    Gloo's rings."""
    gpus = all(d.spec.kind == "gpu" for d in cluster.devices)
    nccl = gradient_sync is None or gradient_sync in NCCL_ALLREDUCE_SYNCS
    return "nccl" if gpus and nccl else "ring"


def record_algorithm(result, cluster, algorithm: str | None) -> None:
    """Name the algorithm a policy's collectives ran (`algorithm`, or the framework's) in
    its result, which the header of `dnnsim simulate` shows; on one device none ran."""
    if len(cluster.devices) > 1:
        result.extras["collective_algorithm"] = algorithm or default_algorithm(cluster)


# The algorithms a policy whose collectives span part of a cluster (a tensor-parallel group,
# the same rank of every replica) offers: the hierarchical and tree algorithms need every
# device of the cluster in order
NCCL_OR_RING = ("nccl", "ring")


def algorithm_option(choices: tuple[str, ...] = NCCL_OR_RING) -> Option:
    """A policy's `algorithm` option, named as data-parallel's: its collectives' algorithm,
    by default the framework's (default_algorithm)."""
    text = {"nccl": "'nccl' (per collective, NCCL's choice: ring or tree and the protocol "
                    "its tuning picks; across nodes a ring per NIC)",
            "ring": "'ring' (one ring through every device, NCCL's Simple protocol)",
            "hierarchical": "'hierarchical' (NCCL's intra-node, per-rank inter-node, "
                            "intra-node)",
            "tree": "'tree' (NCCL's double binary tree across nodes)",
            "halving-doubling": "'halving-doubling' (as hierarchical, Gloo's recursive "
                                "halving and doubling across nodes)"}
    return Option(None, "the collectives' algorithm (default: 'nccl' on GPUs, as the "
                        "framework calls NCCL; else 'ring'): "
                        + ", ".join(text[c] for c in choices), str,
                  lambda v: v in choices, " or ".join(choices))


def allreduce_groups(tg: TaskGraph, cluster, groups: list[SyncGroup],
                     task_of: dict[str, dict[str, str]], fidelity: str,
                     algorithm: str = "ring", symmetric: bool = False,
                     also_after: Mapping[str, tuple[str, ...]] | None = None
                     ) -> list[dict[str, tuple[str, ...]]]:
    """One all-reduce per group over every device of the cluster, each after its group's
    gradients (task_of: simulated device -> op name -> task), its `after` tasks, the group
    before it (reduced in order, on one NCCL stream) and `also_after` of the device (a
    compiled backward: its last task). Devices not in task_of run in lockstep with the first
    simulated one (symmetric: with their symmetry class's representative, and the collective
    is built per class). Returns, per group, per device, the tasks whose end means the group
    is reduced there."""
    ids = [d.id for d in cluster.devices]
    lead = next(iter(task_of))
    launch_s = framework_launch_s(cluster)
    done_at: list[dict[str, tuple[str, ...]]] = []
    previous: dict[str, tuple[str, ...]] = {}
    also = also_after or {}
    for b, group in enumerate(groups):
        deps = {d: [task_of.get(d, task_of[lead])[nm] for nm in group.ops]
                + list(group.after) + list(previous.get(d, ()))
                + list(also.get(d, also.get(lead, ()))) for d in ids}
        previous = collective("allreduce", tg, cluster, ids, group.nbytes, deps,
                              f"allreduce.b{b}", fidelity=fidelity, priority=-1,
                              launch_latency_s=launch_s + group.extra_launch_s,
                              algorithm=algorithm, symmetric=symmetric)
        done_at.append(previous)
    return done_at


def step_after_sync(updates, grad_task: Mapping[str, str],
                    done_at: list[dict[str, tuple[str, ...]]], device: str
                    ) -> dict[str, tuple[str, ...]]:
    """What each update waits for on `device`: its gradient and, as DDP's optimizer.step()
    starts once backward() has waited for every bucket, the last bucket's all-reduce (the
    buckets are reduced in order: the last one's end is every one's)."""
    synced = done_at[-1][device] if done_at else ()
    return {op.name: (grad_task[op.inputs[0]], *synced) for op in updates}


def rank_time_factors(n: int, spread: float, tail: str = "exponential") -> list[float]:
    """What each of n ranks' compute times are multiplied by when the ranks' step times vary
    by `spread` with the given tail (RANK_TAILS): the expected order statistics, slowest
    first, scaled so that one rank runs at factor 1. A synchronous step waits for the
    slowest.

    'exponential': a rank's step is T (1 + spread X), X ~ Exp(1): memoryless stalls (the
    shifted-exponential worker time of the straggler literature), spread their mean and
    standard deviation as a fraction of the step. The i-th slowest of n expects
    X = 1/(i+1) + ... + 1/n, so the slowest lags by the harmonic number H_n, which grows as
    ln n (2.7 at 8 ranks, 3.4 at 16, 6.1 at 256).
    'lognormal': log-step times normal with standard deviation `spread` (Blom's
    approximation, quantile (i + 0.625) / (n + 0.25) of rank i); the slowest lags by about
    sqrt(2 ln n) spreads (1.4 at 8 ranks, 1.8 at 16, 2.8 at 256)."""
    if tail == "lognormal":
        normal = statistics.NormalDist()
        return [math.exp(-spread * normal.inv_cdf((i + 0.625) / (n + 0.25)))
                for i in range(n)]
    if tail != "exponential":
        raise ConfigError(f"rank_tail must be one of {', '.join(RANK_TAILS)}, got {tail!r}")
    expected, tail_sum = [], 0.0
    for j in range(n, 0, -1):       # from the fastest: the i-th slowest sums 1/n .. 1/(i+1)
        tail_sum += 1 / j
        expected.append(tail_sum)
    return [(1 + spread * x) / (1 + spread) for x in reversed(expected)]


def input_batch_tasks(tg: TaskGraph, cluster, simulated, batch: int, input_pipeline: str,
                      loader_threads: float | None, host_cores: float | None) -> None:
    """Per simulated rank, the loader preparing the next batch on the host's CPUs while this
    step runs (hwmodels/host_input.py), on a resource of its own ({device}.input): the step
    ends when both the GPU's work and the next batch are done."""
    if input_pipeline == host_input.SYNTHETIC:
        return
    cores = host_cores
    if cores is None:
        cpus = host_input.host_cpus(cluster.node_type)
        if cpus is None:
            raise ConfigError(f"input_pipeline {input_pipeline!r} needs the host's CPU cores: "
                              f"give the option host_cores, or a node type whose CPUs the "
                              f"catalog knows (a cpu table in catalog/nodes.toml)")
        cores = cpus.cores
    ranks_on_node: dict[int, int] = {}
    for d in cluster.devices:
        ranks_on_node[d.node] = ranks_on_node.get(d.node, 0) + 1
    extra = tg.meta.setdefault("extra_resources", {})
    for d in simulated:
        try:
            load_s = host_input.batch_time_s(input_pipeline, batch, cores,
                                             ranks_on_node[d.node], loader_threads)
        except HardwareError as exc:
            raise ConfigError(str(exc)) from None
        extra[f"{d.id}.input"] = 1
        # the host's work, not the GPU's: attributed to no device, so that the GPU's figures
        # (exposed communication, compute utilisation) stay the GPU's
        tg.new(f"{d.id}/input.next_batch", f"{d.id}.input", load_s, category="input",
               meta={"input_pipeline": input_pipeline, "images": batch, "rank": d.id})


def _positive(default: float | None, help_text: str) -> Option:
    """A number > 0."""
    return Option(default, help_text, float, lambda v: v > 0, "a number > 0")


def data_parallel_options(*names: str) -> dict[str, Option]:
    """The options of data-parallel training (those named; default all): how gradients are
    grouped (DDP's bucket cap, Horovod's cycle and fusion, MXNet's kvstore), when they are
    ready, collective fidelity and algorithm, replicas simulated, the input pipeline and the
    ranks' spread."""
    table = {
        "bucket_mb": _positive(25.0, "gradient bucket cap in MiB (DDP's bucket_cap_mb: 25; "
                                     "the first bucket 1 MiB)"),
        "gradient_sync": Option("ddp", "how gradients are grouped into all-reduces: 'ddp' "
                                       "(PyTorch DDP's buckets, bucket_mb), 'horovod' "
                                       "(Horovod's background thread: every cycle_time_ms "
                                       "the gradients ready on every rank, fused up to "
                                       "fusion_mb), 'kvstore' (MXNet's kvstore 'nccl', "
                                       "one machine: a reduce and a broadcast per "
                                       "parameter array, one after another once the "
                                       "backward pass ends), "
                                       "'caffe-nccl' (Caffe 1.0: an all-reduce per layer "
                                       "during backward) or 'caffe-p2p' (Caffe rc3-rc5's "
                                       "P2PSync: weights broadcast and gradients summed "
                                       "over a tree of GPU pairs, nothing overlapped, the "
                                       "root alone updating)", str,
                                lambda v: v in GRADIENT_SYNCS, " or ".join(GRADIENT_SYNCS)),
        "cycle_time_ms": _positive(None, "Horovod's cycle (HOROVOD_CYCLE_TIME; default "
                                         "5 ms) with gradient_sync 'horovod'"),
        "fusion_mb": _positive(None, "Horovod's fusion buffer in MiB "
                                     "(HOROVOD_FUSION_THRESHOLD; default 64) with "
                                     "gradient_sync 'horovod'"),
        "horovod_one_rank": Option(None, "what Horovod does with gradient_sync 'horovod' on "
                                         "one device: 'skip' (the default: its TensorFlow "
                                         "and PyTorch optimizers, and MXNet's from 0.19, "
                                         "all-reduce nothing) or 'cycle' (MXNet's before "
                                         "0.19: every gradient passes through the "
                                         "background loop, waiting for its cycle)", str,
                                   lambda v: v in HOROVOD_ONE_RANK,
                                   " or ".join(HOROVOD_ONE_RANK)),
        "horovod_enqueue": Option(None, "when Horovod is told of a gradient, with "
                                        "gradient_sync 'horovod': 'host-dispatch' (the "
                                        "default: TensorFlow and PyTorch, as the host "
                                        "dispatches its op ahead of the GPU; every gradient "
                                        "falls in one cycle and each fused buffer waits on "
                                        "the GPU for its data) or 'gpu-ready' (MXNet, whose "
                                        "engine runs Horovod's op once the gradient is "
                                        "computed: the next cycle takes it)", str,
                                  lambda v: v in HOROVOD_ENQUEUE, " or ".join(HOROVOD_ENQUEUE)),
        "gradients_ready": Option("per-op", "when gradients are ready: 'per-op' (as each "
                                            "backward op ends, eager) or 'at-end' (all when "
                                            "the backward pass ends: one compiled cluster, "
                                            "as XLA's auto-clustering makes)", str,
                                  lambda v: v in GRADIENTS_READY, " or ".join(GRADIENTS_READY)),
        "collectives": Option(None, "'link' (every transfer a task: the default up to 64 "
                                    "devices, and at any size where the replicas are "
                                    "simulated by class) or 'flow' (closed form)", str,
                              lambda v: v in FIDELITIES, "link or flow"),
        "replicas": Option(None, "'classes' (one per symmetry class, the same figures as "
                                 "'all': the default where the devices are alike; every "
                                 "replica where the step's all-reduces have no class, "
                                 "NCCL's trees; with flow collectives one per kind of "
                                 "device), 'all' (the default under jitter, stragglers or "
                                 "rank_spread) or 'one' (replica 0, others in lockstep)",
                           str,
                           lambda v: v in ("all", "classes", "one"),
                           "all, classes or one"),
        "algorithm": Option(None, "all-reduce algorithm (default: 'nccl' for gradient_sync "
                                  "ddp and horovod on GPUs, as PyTorch DDP and Horovod run "
                                  "NCCL; else 'ring'): 'ring' (one ring through every GPU, "
                                  "NCCL's Simple protocol), 'hierarchical' (NCCL's "
                                  "intra-node, per-rank inter-node, intra-node), 'tree' "
                                  "(NCCL's double binary tree across nodes), 'nccl' (per "
                                  "all-reduce, the ring or tree and protocol NCCL 2.8's "
                                  "tuning picks) or 'halving-doubling' (as hierarchical, "
                                  "Gloo's recursive halving and doubling across nodes)", str,
                            lambda v: v in ALGORITHMS, " or ".join(ALGORITHMS)),
        "input_pipeline": Option(host_input.SYNTHETIC,
                                 "where each batch comes from: 'synthetic' (tensors already on "
                                 "the GPU: no cost) or a loader decoding JPEGs on the node's "
                                 "CPUs (" + ", ".join(host_input.loader_names()[1:]) + "; "
                                 "catalog/input_pipelines.toml)", str,
                                 lambda v: v in host_input.loader_names(),
                                 " or ".join(host_input.loader_names())),
        "loader_threads": _positive(None, "CPU threads of each rank's loader (default: "
                                          "the node's cores shared evenly by its ranks)"),
        "host_cores": _positive(None, "CPU cores of a node (default: the node type's, from "
                                      "catalog/nodes.toml)"),
        "rank_spread": Option(0.0, "spread of the ranks' step times, as rank_tail "
                                   "says; the step waits for the slowest rank (expected "
                                   "order statistics; 0: every rank alike)", float,
                              lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "rank_tail": Option("exponential", "how the ranks' step times vary with rank_spread: "
                                           "'exponential' (each rank held up by memoryless "
                                           "stalls of mean rank_spread x its step: the "
                                           "slowest of n lags by H_n, as ln n) or "
                                           "'lognormal' (rank_spread the standard deviation "
                                           "of the log: the slowest lags by about "
                                           "sqrt(2 ln n) spreads)", str,
                            lambda v: v in RANK_TAILS, " or ".join(RANK_TAILS)),
    }
    return {k: table[k] for k in (names or table)}
