"""`data-parallel`: one replica per device, gradients all-reduced in buckets during backward.

By default (`gradient_sync = "ddp"`) as PyTorch's DistributedDataParallel runs it
(torch/csrc/distributed/c10d/reducer.cpp):
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
  the last bucket's all-reduce is exposed; so with every `gradient_sync`.
- Gradients are all-reduced in the width of the parameters they belong to: FP32 for FP32
  training and for AMP (FP32 master weights: autocast's gradients are cast back to the
  parameter's type), 2 bytes for pure half precision (the op graph's param_bytes says which).
The batch of the workload is the batch of each replica.

Other frameworks group the gradients differently (`gradient_sync`; _data_parallel.py and
_horovod.py):
- `horovod`: Horovod's background thread wakes every `cycle_time_ms` (HOROVOD_CYCLE_TIME,
  5 ms), takes the gradients every rank has enqueued since its last cycle, fuses them into
  buffers of up to `fusion_mb` (HOROVOD_FUSION_THRESHOLD, 64 MiB; a fused buffer costs a copy
  in and out of device memory) and all-reduces each in turn, once its data is on the GPU.
  TensorFlow and PyTorch enqueue a gradient as the host dispatches its op, ahead of the GPU
  (`horovod_enqueue = "host-dispatch"`, the default): all of a step's gradients fall in one
  cycle and each buffer waits for its last tensor. MXNet's engine enqueues a gradient once
  computed (`"gpu-ready"`): the cycle runs freely across steps, its ticks placed so that the
  last gradient waits half a cycle, the mean wait. On one device Horovod's optimizers
  all-reduce nothing (`horovod_one_rank = "skip"`, the default); MXNet's before Horovod 0.19
  still pass every gradient through the loop (`"cycle"`).
- `kvstore`: MXNet's kvstore 'nccl' under the Module API: per parameter array (a batch
  norm's scale and shift are two) an NCCL reduce and broadcast, one key after another in
  the order the forward pass uses them (one engine variable serialises them in the order
  Module pushes them), so the chain starts when the backward pass ends and is exposed whole.
- `caffe-nccl`: Caffe 1.0 (layer_wise_reduce, its default): an all-reduce of each layer's
  parameters as its backward ends, in backward order.
- `caffe-p2p`: Caffe rc3-rc5's P2PSync (_caffe_p2p.py), a step of its own: the weights
  copied down a tree of GPU pairs before the forward pass, the gradients copied up it and
  added after the whole backward pass, the root alone updating; nothing a GPU sends overlaps
  its own compute. One machine's GPUs only, every replica simulated.
`gradients_ready = "at-end"` makes every gradient ready when the backward pass ends, as one
compiled cluster (XLA's auto-clustering) does; the default `per-op` is eager execution.

The host's input pipeline (`input_pipeline`, default `synthetic`: no cost): each rank's loader
prepares the next batch on the node's CPU cores during the step (hwmodels/host_input.py); a
step ends when the GPU's work and the next batch are both done, so a node whose cores cannot
decode images as fast as its GPUs train is input-bound. Ranks that vary (`rank_spread`, default
0): each rank's compute is slowed by its expected order statistic (rank_time_factors in
_data_parallel.py), rank 0 the slowest; the all-reduces make every rank wait for it. The
`rank_tail` 'exponential' (default) holds each rank up by memoryless stalls, so the slowest of
n lags by the harmonic number H_n (as ln n); 'lognormal' lags by about sqrt(2 ln n) spreads.

The all-reduces run as the framework runs them (`algorithm`, default_algorithm): DDP's and
Horovod's on GPUs as NCCL 2.8's tuning picks for each one's size ('nccl': ring or, across
nodes, tree; LL, LL128 or Simple: nccl_tuning.py, collective_trees.py); Caffe 1.0's,
MXNet's kvstore's and those of devices that are not GPUs on one ring ('ring', NCCL's Simple
protocol), as any of them does when asked for.

Not modelled: Horovod's negotiation messages between ranks each cycle, DDP copying gradients
into its bucket buffers and back (a memory-bound copy of
the gradients, ~0.2% of a ResNet-50 step on a V100), the SMs NCCL's kernels take from the
backward pass while they run, the GPU time of a loader that decodes on the GPU, and Python's
per-step work on the host.

Replicas (policies/_replicas.py, the rule data-parallel and fsdp share): with
`replicas = "classes"`, the default wherever the devices are alike (the cluster has a symmetry
period: identical devices and nodes, no jitter, no straggler; and no rank_spread), one replica
per symmetry class is simulated, each standing for the devices that behave as it does
(collectives.py, "Symmetry"), at any size: the report is `"all"`'s figure for figure (the
tasks simulated aside). That needs every all-reduce built by class: rings, NCCL's rings per
NIC, the hierarchical all-reduce and Gloo's halving-doubling are; an all-reduce NCCL's
tuning puts on a tree is not (a tree tells a root from leaves), so a step with one
simulates every replica: link-level up to 64 devices or where asked for, and beyond
with flow-level collectives. Under jitter, stragglers or rank_spread every replica is simulated
(`"all"`) up to 64 devices, and beyond, the collectives flow-level, one replica of each kind of
device (a flow collective waits for every replica at once: exact for the speeds), or every
replica under jitter. With `replicas = "one"` only replica 0 is simulated and the others are
taken to run in lockstep; the collectives still span every device.
"""
from __future__ import annotations

from hwmodels.residency import fitting_bytes
from workloads.training import lower_training

from ..lowering import emit_ops, resident_bytes
from ..stragglers import wait_for_slowest
from ..tasks import TaskGraph
from . import Policy, _replicas, register
from . import _caffe_p2p as caffe_p2p
from ._data_parallel import (
    allreduce_groups,
    data_parallel_options,
    default_algorithm,
    input_batch_tasks,
    rank_time_factors,
    step_after_sync,
    sync_groups,
)
from ._horovod import refuse_horovod_options


@register
class DataParallel(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="data-parallel", any_framework_memory=True,
            description="A replica per device; gradient buckets all-reduced during backward "
                        "(PyTorch DDP on NCCL).",
            options=data_parallel_options())

    def plan(self, graph, cluster, training: bool, *, bucket_mb, gradient_sync, cycle_time_ms,
             fusion_mb, horovod_one_rank, horovod_enqueue, gradients_ready, collectives,
             replicas, algorithm, input_pipeline, loader_threads, host_cores,
             rank_spread, rank_tail) -> TaskGraph:
        if gradient_sync == caffe_p2p.SYNC:
            caffe_p2p.check_caffe_p2p(cluster, replicas=replicas, collectives=collectives,
                                      algorithm=algorithm)
            refuse_horovod_options(gradient_sync, cycle_time_ms, fusion_mb, horovod_one_rank,
                                   horovod_enqueue)
            replicas = "all"
        algorithm = algorithm or default_algorithm(cluster, gradient_sync)
        step = dict(graph=graph, cluster=cluster, training=training, bucket_mb=bucket_mb,
                    gradient_sync=gradient_sync, cycle_time_ms=cycle_time_ms,
                    fusion_mb=fusion_mb, horovod_one_rank=horovod_one_rank,
                    horovod_enqueue=horovod_enqueue, gradients_ready=gradients_ready,
                    algorithm=algorithm, input_pipeline=input_pipeline,
                    loader_threads=loader_threads, host_cores=host_cores,
                    rank_spread=rank_spread, rank_tail=rank_tail)
        fidelity, chosen = _replicas.choose(cluster, collectives, replicas, rank_spread)
        tg = _plan_step(fidelity=fidelity, replicas=chosen, **step)
        if tg is None:   # 'classes' asked of a step whose collectives have no class
            fidelity, chosen = _replicas.without_classes(cluster, collectives, replicas)
            tg = _plan_step(fidelity=fidelity, replicas=chosen, **step)
            assert tg is not None
        return tg

    def finalize(self, result, graph, cluster, training: bool, **opts) -> None:
        # the loader's batch time, beside the step it may bound (host_input.py)
        loads = [t.duration_s for t in result.log.tasks if t.category == "input"]
        if loads:
            result.extras["input_batch_s"] = max(loads)
        # ranks that are not alike: what the step loses to the slowest (stragglers.py)
        if any(d.speed != 1.0 or d.jitter is not None for d in cluster.devices):
            result.extras.update(wait_for_slowest(result.log))
        # which all-reduce ran (the header of `dnnsim simulate` names it)
        sync = opts["gradient_sync"]
        if training and len(cluster.devices) > 1 and sync != caffe_p2p.SYNC:
            result.extras["allreduce_algorithm"] = (opts["algorithm"]
                                                    or default_algorithm(cluster, sync))


def _plan_step(*, graph, cluster, training, fidelity, replicas, bucket_mb, gradient_sync,
               cycle_time_ms, fusion_mb, horovod_one_rank, horovod_enqueue, gradients_ready,
               algorithm, input_pipeline, loader_threads, host_cores, rank_spread,
               rank_tail) -> TaskGraph | None:
    """The step's tasks with these replicas at this fidelity; None where 'classes' is asked
    link-level and the step's all-reduces are not built by class (_replicas.py)."""
    n = len(cluster.devices)
    jitter = any(d.jitter is not None for d in cluster.devices)
    by_class = replicas == "classes" and fidelity == "link"
    period = (cluster.symmetry_period() if by_class and _replicas.alike(cluster, rank_spread)
              else None)
    if by_class and period is None:
        return None
    g = lower_training(graph) if training else graph
    simulated = cluster.devices[:{"all": n, "one": 1}.get(replicas, period or n)]
    if replicas == "classes" and fidelity == "flow" and not jitter:
        # a flow collective waits for every replica at once: devices that compute alike
        # end alike, so one of each kind stands for the rest
        first_of_kind: dict = {}
        for d in cluster.devices:
            first_of_kind.setdefault((d.spec.name, d.speed), d.id)
        simulated = [d for d in cluster.devices if first_of_kind[(d.spec.name, d.speed)]
                     == d.id]
    slowdown = ({d.id: f for d, f in zip(cluster.devices,
                                         rank_time_factors(n, rank_spread, rank_tail),
                                         strict=True)} if rank_spread else {})
    tg = TaskGraph(f"data-parallel:{graph.name}",
                   meta={"samples": graph.batch * n, "fidelity": fidelity,
                         "replicas": replicas,
                         "resident_bytes": {d.id: resident_bytes(g, training)
                                            for d in simulated}})
    if period:
        tg.meta.update(_replicas.class_meta(cluster, period))
    input_batch_tasks(tg, cluster, simulated, graph.batch, input_pipeline, loader_threads,
                      host_cores)
    if not training:
        for d in simulated:
            emit_ops(tg, g, d, prefix=f"{d.id}/", duration=_rank_duration(
                g.topo(), d, slowdown.get(d.id, 1.0)))
        return tg
    # Updates wait for the last all-reduce: known only once the collectives exist, so
    # emit forward+backward first, then the collectives, then the updates.
    fwd_bwd = [op for op in g.topo() if op.phase != "update"]
    updates = [op for op in g.topo() if op.phase == "update"]
    if gradient_sync == caffe_p2p.SYNC:
        _plan_caffe_p2p(tg, g, cluster, fwd_bwd, updates, slowdown)
        return tg
    emitted = {d.id: emit_ops(tg, g, d, ops=fwd_bwd, prefix=f"{d.id}/",
                              duration=_rank_duration(fwd_bwd, d, slowdown.get(d.id, 1.0)))
               for d in simulated}
    task_of = {d.id: emitted[d.id].task_of for d in simulated}
    groups = sync_groups(tg, g, cluster, fwd_bwd, task_of, gradient_sync, bucket_mb,
                         cycle_time_ms, fusion_mb, gradients_ready, horovod_one_rank,
                         horovod_enqueue)
    if by_class and n > 1 and not _replicas.builds_by_class(
            cluster, algorithm, [group.nbytes for group in groups]):
        return None
    tg.meta["bucket_bytes"] = [group.nbytes for group in groups]
    tg.meta["gradient_sync"] = gradient_sync
    backward = [op.name for op in fwd_bwd if op.phase == "backward"]
    compiled = ({d: (tasks[backward[-1]],) for d, tasks in task_of.items()}
                if gradients_ready == "at-end" and backward else None)
    done_at = allreduce_groups(tg, cluster, groups, task_of, fidelity, algorithm,
                               symmetric=by_class, also_after=compiled)
    for d in simulated:
        grad_task = emitted[d.id].task_of
        extra = step_after_sync(updates, grad_task, done_at, d.id)
        emit_ops(tg, g, d, ops=updates, prefix=f"{d.id}/", extra_deps=extra,
                 priority_base=len(fwd_bwd), track_memory=False,
                 duration=_rank_duration(updates, d, slowdown.get(d.id, 1.0)))
    return tg


def _plan_caffe_p2p(tg: TaskGraph, g, cluster, fwd_bwd, updates, slowdown) -> None:
    """Caffe's P2PSync step (_caffe_p2p.py): the weights broadcast down the tree of pairs,
    forward and backward on every GPU, the gradients summed up the tree, the update on the
    root alone. Workers keep no optimizer state; each parent a buffer per child."""
    weights = [op for op in g.topo() if op.phase == "forward" and op.params]
    gradient_bytes = sum(op.param_bytes for op in weights)
    dtype_bytes = weights[0].param_bytes // weights[0].params if weights else 4
    ids = [d.id for d in cluster.devices]
    root = cluster.devices[0]
    resident = tg.meta["resident_bytes"]
    for d in ids[1:]:
        resident[d] = 2 * gradient_bytes     # weights and their gradients: no history
    setup: dict[str, tuple[str, ...]] = {}
    for d, nbytes in caffe_p2p.receive_buffer_bytes(ids, gradient_bytes).items():
        device = cluster.device(d)
        setup[d] = (tg.new(f"{d}/p2p.receive_buffers", device.compute, 0.0,
                           alloc={d: nbytes} if nbytes else {}, category="compute",
                           device=d).name,)
    started = caffe_p2p.p2p_broadcast(tg, cluster, gradient_bytes, setup)
    names = {op.name for op in fwd_bwd}
    firsts = [op.name for op in fwd_bwd if not any(p in names for p in g.predecessors(op.name))]
    backward_done = {}
    root_tasks: dict[str, str] = {}
    for d in cluster.devices:
        sources = {nm: started[d.id] for nm in firsts}
        emitted = emit_ops(tg, g, d, ops=fwd_bwd, prefix=f"{d.id}/", extra_deps=sources,
                           duration=_rank_duration(fwd_bwd, d, slowdown.get(d.id, 1.0)))
        backward_done[d.id] = emitted.task_of[fwd_bwd[-1].name]
        if d is root:
            root_tasks = emitted.task_of
    scaled = caffe_p2p.p2p_reduce(tg, cluster, gradient_bytes, dtype_bytes, backward_done)
    extra = {op.name: (root_tasks[op.inputs[0]], scaled) for op in updates}
    emit_ops(tg, g, root, ops=updates, prefix=f"{root.id}/", extra_deps=extra,
             priority_base=len(fwd_bwd), track_memory=False,
             duration=_rank_duration(updates, root, slowdown.get(root.id, 1.0)))
    tg.meta["gradient_sync"] = caffe_p2p.SYNC
    tg.meta["bucket_bytes"] = [gradient_bytes]


def _rank_duration(ops, device, factor: float):
    """The op-time function of a rank slowed by `factor` (None: emit_ops' own, factor 1)."""
    if factor == 1.0:
        return None
    step_bytes = fitting_bytes(list(ops))    # as emit_ops costs the same ops
    return lambda op: device.model.op_time_s(op, step_bytes) * factor
