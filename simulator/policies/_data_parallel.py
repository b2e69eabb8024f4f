"""What data-parallel training shares between the policies that run it (`data-parallel`,
`swap`, `swap-all`): DDP's gradient buckets, their all-reduces, and the options that set them."""
from __future__ import annotations

import math
import statistics

from hwmodels import host_input
from hwmodels.specs import HardwareError

from ..collectives import ALGORITHMS, FIDELITIES, NCCL_BASE_LATENCY_S, collective
from ..tasks import TaskGraph
from . import ConfigError, Option

MIB = 1024 * 1024
DDP_FIRST_BUCKET_BYTES = 1 * MIB     # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES


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


def allreduce_buckets(tg: TaskGraph, train_graph, cluster, buckets: list[list[str]],
                      task_of: dict[str, dict[str, str]], fidelity: str,
                      algorithm: str = "ring", symmetric: bool = False
                      ) -> list[dict[str, tuple[str, ...]]]:
    """One all-reduce per bucket over every device of the cluster, each after its bucket's
    gradients (task_of: simulated device -> op name -> task) and after the bucket before it.
    Devices not in task_of run in lockstep with the first simulated one (symmetric: with
    their symmetry class's representative, and the collective is built per class). Returns,
    per bucket, per device, the tasks whose end means the bucket is reduced there."""
    ids = [d.id for d in cluster.devices]
    lead = next(iter(task_of))
    launch_s = NCCL_BASE_LATENCY_S if all(d.spec.kind == "gpu" for d in cluster.devices) else 0.0
    done_at: list[dict[str, tuple[str, ...]]] = []
    previous: dict[str, tuple[str, ...]] = {}
    for b, names in enumerate(buckets):
        deps = {d: [task_of.get(d, task_of[lead])[nm] for nm in names] + list(previous.get(d, ()))
                for d in ids}
        nbytes = sum(train_graph.op(nm).param_bytes for nm in names)
        previous = collective("allreduce", tg, cluster, ids, nbytes, deps, f"allreduce.b{b}",
                              fidelity=fidelity, priority=-1, launch_latency_s=launch_s,
                              algorithm=algorithm, symmetric=symmetric)
        done_at.append(previous)
    return done_at


def rank_time_factors(n: int, spread: float) -> list[float]:
    """What each of n ranks' compute times are multiplied by when the ranks' step times vary
    with a lognormal spread (standard deviation of the log): the expected order statistics
    (Blom's approximation, quantile (i + 0.625) / (n + 0.25) of rank i), slowest first. A
    synchronous step waits for the slowest, whose expected lag grows with n (about 1.4
    spreads at 8 ranks, 1.8 at 16); one rank runs at the median (factor 1)."""
    normal = statistics.NormalDist()
    return [math.exp(-spread * normal.inv_cdf((i + 0.625) / (n + 0.25))) for i in range(n)]


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
                              f"catalog knows (catalog/input_pipelines.toml)")
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


def data_parallel_options(*names: str) -> dict[str, Option]:
    """The options of DDP-style training (those named; default all): bucket cap, collective
    fidelity and algorithm, replicas simulated."""
    table = {
        "bucket_mb": Option(25.0, "gradient bucket cap in MiB (DDP's bucket_cap_mb: "
                                  "25; the first bucket 1 MiB)", float,
                            lambda v: v > 0, "a number > 0"),
        "collectives": Option(None, "'link' (every transfer a task: the default up to 64 "
                                    "devices or on a symmetric cluster) or 'flow' (closed "
                                    "form)", str,
                              lambda v: v in FIDELITIES, "link or flow"),
        "replicas": Option(None, "'all' (the default up to 64 devices and under jitter), "
                                 "'classes' (one per symmetry class, or with flow "
                                 "collectives one per kind of device: the default beyond) "
                                 "or 'one' "
                                 "(replica 0, others in lockstep)", str,
                           lambda v: v in ("all", "classes", "one"),
                           "all, classes or one"),
        "algorithm": Option("ring", "link-level all-reduce across nodes: 'ring' (one "
                                    "ring through every GPU) or 'hierarchical' "
                                    "(NCCL's intra-node, per-rank inter-node, "
                                    "intra-node)", str,
                            lambda v: v in ALGORITHMS, " or ".join(ALGORITHMS)),
        "input_pipeline": Option(host_input.SYNTHETIC,
                                 "where each batch comes from: 'synthetic' (tensors already on "
                                 "the GPU: no cost) or a loader decoding JPEGs on the node's "
                                 "CPUs (" + ", ".join(host_input.loader_names()[1:]) + "; "
                                 "catalog/input_pipelines.toml)", str,
                                 lambda v: v in host_input.loader_names(),
                                 " or ".join(host_input.loader_names())),
        "loader_threads": Option(None, "CPU threads of each rank's loader (default: the "
                                       "node's cores shared evenly by its ranks)", float,
                                 lambda v: v > 0, "a number > 0"),
        "host_cores": Option(None, "CPU cores of a node (default: the node type's, from "
                                   "catalog/input_pipelines.toml)", float,
                             lambda v: v > 0, "a number > 0"),
        "rank_spread": Option(0.0, "spread (standard deviation of the log) of the ranks' "
                                   "step times; the step waits for the slowest rank (expected "
                                   "order statistics; 0: every rank alike)", float,
                              lambda v: 0 <= v < 1, "a number in [0, 1)"),
    }
    return {k: table[k] for k in (names or table)}
