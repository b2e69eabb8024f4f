"""`data-parallel`: one replica per device, gradients all-reduced in buckets during backward.

As PyTorch's DistributedDataParallel runs it (torch/csrc/distributed/c10d/reducer.cpp):
- Buckets: the parameters' gradients, in the order the backward pass makes them ready (the
  order DDP rebuilds its buckets in after the first iteration: about the reverse of the
  forward), fill a bucket until it holds at least its cap; the first bucket's cap is 1 MiB
  (dist._DEFAULT_FIRST_BUCKET_BYTES), the others `bucket_mb` MiB (bucket_cap_mb, default 25).
  A layer's parameters go in whole: their gradients are ready together.
- A bucket's all-reduce is launched when its last gradient is ready and the bucket before it
  has been launched (DDP reduces buckets in order); NCCL runs them one after another on its
  stream, side by side with the rest of the backward pass. On GPUs each all-reduce pays NCCL's
  base latency once (collectives.NCCL_BASE_LATENCY_S) and runs on NCCL's rings over the
  cluster's topology (ring channels: several on a DGX-1's NVLinks or an NVSwitch).
- The optimizer step starts when every bucket is reduced (backward() returns only then), so
  the last bucket's all-reduce is exposed.
- Gradients are all-reduced in the width of the parameters they belong to: FP32 for FP32
  training and for AMP (FP32 master weights: autocast's gradients are cast back to the
  parameter's type), 2 bytes for pure half precision (the op graph's param_bytes says which).
The batch of the workload is the batch of each replica.

Not modelled: DDP copying gradients into its bucket buffers and back (a memory-bound copy of
the gradients, ~0.2% of a ResNet-50 step on a V100), the SMs NCCL's kernels take from the
backward pass while they run, and the host: the input pipeline and Python's per-step work.

With `replicas = "one"` only replica 0 is simulated and the others are taken to run in lockstep
(exact for identical devices and no stragglers); the collectives still span every device. That
is the default with flow-level collectives. With `replicas = "classes"` (the default with
link-level ones beyond 64 devices) one replica per symmetry class is simulated, each standing for the devices
that behave as it does (collectives.py, "Symmetry"): the whole cluster's figures, at a cost
that grows with the ring's steps, not with their square; on a cluster without symmetry (a
straggler, jitter, a DGX-1's cube-mesh alone) every replica is.
"""
from __future__ import annotations

from workloads.training import lower_training

from ..collectives import ALGORITHMS, FIDELITIES, NCCL_BASE_LATENCY_S, collective
from ..lowering import emit_ops, resident_bytes
from ..stragglers import wait_for_slowest
from ..tasks import TaskGraph
from . import Option, Policy, register

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


@register
class DataParallel(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="data-parallel",
            description="A replica per device; gradient buckets all-reduced during backward "
                        "(PyTorch DDP on NCCL).",
            options={
                "bucket_mb": Option(25.0, "gradient bucket cap in MiB (DDP's bucket_cap_mb: "
                                          "25; the first bucket 1 MiB)", float,
                                    lambda v: v > 0, "a number > 0"),
                "collectives": Option(None, "'link' (every transfer a task: the default) or "
                                            "'flow' (closed form)", str,
                                      lambda v: v in FIDELITIES, "link or flow"),
                "replicas": Option(None, "'all' (the default up to 64 devices), 'classes' (one "
                                         "per symmetry class: the default beyond) or 'one' "
                                         "(replica 0, others in lockstep: the default with "
                                         "flow collectives)", str,
                                   lambda v: v in ("all", "classes", "one"),
                                   "all, classes or one"),
                "algorithm": Option("ring", "link-level all-reduce across nodes: 'ring' (one "
                                            "ring through every GPU) or 'hierarchical' "
                                            "(NCCL's intra-node, per-rank inter-node, "
                                            "intra-node)", str,
                                    lambda v: v in ALGORITHMS, " or ".join(ALGORITHMS)),
            })

    def plan(self, graph, cluster, training: bool, bucket_mb=25.0, collectives=None,
             replicas=None, algorithm="ring") -> TaskGraph:
        n = len(cluster.devices)
        fidelity = collectives or "link"
        replicas = replicas or ("one" if fidelity == "flow" else "all" if n <= 64 else "classes")
        period = cluster.symmetry_period() if replicas == "classes" else None
        g = lower_training(graph) if training else graph
        simulated = cluster.devices[:{"all": n, "one": 1}.get(replicas, period or n)]
        tg = TaskGraph(f"data-parallel:{graph.name}",
                       meta={"samples": graph.batch * n, "fidelity": fidelity,
                             "replicas": replicas,
                             "resident_bytes": {d.id: resident_bytes(g, training)
                                                for d in simulated}})
        if not training:
            for d in simulated:
                emit_ops(tg, g, d, prefix=f"{d.id}/")
            return tg
        buckets = gradient_buckets(g, bucket_mb * MIB)
        tg.meta["bucket_bytes"] = [sum(g.op(nm).param_bytes for nm in b) for b in buckets]
        # Updates wait for the last bucket's all-reduce: known only once the collectives
        # exist, so emit forward+backward first, then the collectives, then the updates.
        fwd_bwd = [op for op in g.topo() if op.phase != "update"]
        updates = [op for op in g.topo() if op.phase == "update"]
        emitted = {d.id: emit_ops(tg, g, d, ops=fwd_bwd, prefix=f"{d.id}/") for d in simulated}
        done_at = allreduce_buckets(tg, g, cluster, buckets,
                                    {d.id: emitted[d.id].task_of for d in simulated}, fidelity,
                                    algorithm, symmetric=replicas == "classes")
        for d in simulated:
            grad_task = emitted[d.id].task_of
            # As in DDP, optimizer.step() starts once backward() has waited for every bucket
            # (the buckets are reduced in order: the last one's end is every one's).
            synced = done_at[-1][d.id] if done_at else ()
            extra = {op.name: (grad_task[op.inputs[0]], *synced) for op in updates}
            emit_ops(tg, g, d, ops=updates, prefix=f"{d.id}/", extra_deps=extra,
                     priority_base=len(fwd_bwd), track_memory=False)
        return tg

    def finalize(self, result, graph, cluster, training: bool, **opts) -> None:
        # ranks that are not alike: what the step loses to the slowest (stragglers.py)
        if any(d.speed != 1.0 or d.jitter is not None for d in cluster.devices):
            result.extras.update(wait_for_slowest(result.log))
