"""`data-parallel`: one replica per device, gradients all-reduced in buckets during backward.

As PyTorch's DistributedDataParallel: gradients are grouped, in the order the backward pass
makes them, into buckets of about `bucket_mb`; a bucket's all-reduce starts when its last
gradient is ready and runs on the network while the backward pass goes on; the optimizer
step starts when every bucket is reduced (backward() returns only then), so the last bucket's
all-reduce is exposed. The batch of the workload is the batch of each replica.

With `replicas = "one"` only replica 0 is simulated and the others are taken to run in lockstep
(exact for identical devices and no stragglers); the collectives still span every device. That
is what makes 1,024-device runs cheap, and it is the default with flow-level collectives.
"""
from __future__ import annotations

from workloads.training import lower_training

from ..collectives import FIDELITIES, collective
from ..lowering import emit_ops, resident_bytes
from ..tasks import TaskGraph
from . import Option, Policy, register


def gradient_buckets(train_graph, bucket_bytes: float) -> list[list[str]]:
    """Names of the ops that produce weight gradients, grouped in backward order."""
    producers = [op for op in train_graph.topo() if op.phase == "backward" and op.params]
    buckets: list[list[str]] = [[]]
    size = 0
    for op in producers:
        if buckets[-1] and size + op.param_bytes > bucket_bytes:
            buckets.append([])
            size = 0
        buckets[-1].append(op.name)
        size += op.param_bytes
    return [b for b in buckets if b]


@register
class DataParallel(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="data-parallel",
            description="A replica per device; gradient buckets all-reduced during backward.",
            options={
                "bucket_mb": Option(25.0, "gradient bucket size in MB (PyTorch DDP: 25)", float,
                                    lambda v: v > 0, "a number > 0"),
                "collectives": Option(None, "'link' (every transfer a task) or 'flow' (closed "
                                            "form); default link up to 64 devices", str,
                                      lambda v: v in FIDELITIES, "link or flow"),
                "replicas": Option(None, "'all' or 'one' (replica 0, others in lockstep); "
                                         "default one with flow collectives", str,
                                   lambda v: v in ("all", "one"), "all or one"),
            })

    def plan(self, graph, cluster, training: bool, bucket_mb=25.0, collectives=None,
             replicas=None) -> TaskGraph:
        n = len(cluster.devices)
        fidelity = collectives or ("link" if n <= 64 else "flow")
        replicas = replicas or ("one" if fidelity == "flow" else "all")
        g = lower_training(graph) if training else graph
        simulated = cluster.devices if replicas == "all" else cluster.devices[:1]
        tg = TaskGraph(f"data-parallel:{graph.name}",
                       meta={"samples": graph.batch * n, "fidelity": fidelity,
                             "replicas": replicas,
                             "resident_bytes": {d.id: resident_bytes(g, training)
                                                for d in simulated}})
        if not training:
            for d in simulated:
                emit_ops(tg, g, d, prefix=f"{d.id}/")
            return tg
        buckets = gradient_buckets(g, bucket_mb * 1e6)
        # Updates wait for their bucket's all-reduce: known only once the collective exists,
        # so emit forward+backward first, then the collectives, then the updates.
        fwd_bwd = [op for op in g.topo() if op.phase != "update"]
        updates = [op for op in g.topo() if op.phase == "update"]
        emitted = {d.id: emit_ops(tg, g, d, ops=fwd_bwd, prefix=f"{d.id}/") for d in simulated}
        done_at: list[dict[str, tuple[str, ...]]] = []
        for b, names in enumerate(buckets):
            deps = {d.id: [emitted[d.id].task_of[nm] for nm in names] for d in simulated}
            nbytes = sum(g.op(nm).param_bytes for nm in names)
            done = collective("allreduce", tg, cluster, [d.id for d in cluster.devices], nbytes,
                              deps if replicas == "all" else deps[simulated[0].id],
                              f"allreduce.b{b}", fidelity=fidelity, priority=-1)
            done_at.append(done)
        for d in simulated:
            grad_task = emitted[d.id].task_of
            # As in DDP, optimizer.step() starts once backward() has waited for every bucket.
            synced = tuple(t for done in done_at for t in done[d.id])
            extra = {op.name: (grad_task[op.inputs[0]], *synced) for op in updates}
            emit_ops(tg, g, d, ops=updates, prefix=f"{d.id}/", extra_deps=extra,
                     priority_base=len(fwd_bwd), track_memory=False)
        return tg
