"""Horovod's background thread as data-parallel training runs it (gradient_sync 'horovod'):
its cycle, its fusion buffer and when it is told of each gradient."""
from __future__ import annotations

import math

from ..tasks import TaskGraph
from . import ConfigError
from ._sync_group import MIB, SyncGroup, parameter_arrays_bytes

# Horovod's defaults, read from its sources 0.15.2, 0.16.2 and 0.19.1 alike
# (horovod/common/operations.cc: cycle_time_ms = 5 and tensor_fusion_threshold = 64 * 1024 *
# 1024 in 0.15.2's HorovodGlobalState; SetCycleTimeMs(5) and
# SetTensorFusionThresholdBytes(64 * 1024 * 1024) in BackgroundThreadLoop from 0.16.2)
HOROVOD_CYCLE_TIME_MS = 5.0
HOROVOD_FUSION_MB = 64.0
# What Horovod does on one rank (option horovod_one_rank): its TensorFlow and PyTorch
# optimizers all-reduce nothing when size() is 1 (`if size() > 1` in
# horovod/tensorflow/__init__.py and horovod/torch/__init__.py, read in 0.15.2, 0.16.2 and
# 0.19.1), nor does its MXNet optimizer from 0.19 (`if size() == 1: return` in
# horovod/mxnet/__init__.py, 0.19.1); 0.16.2's MXNet optimizer all-reduces every gradient
# through the background loop whatever the size
HOROVOD_ONE_RANK = ("skip", "cycle")
# When Horovod is told of a gradient (option horovod_enqueue): TensorFlow's and PyTorch's ops
# enqueue it as the host dispatches them, with an event recorded on the GPU's stream
# (TFReadyEvent in horovod/tensorflow/mpi_ops.cc, RecordReadyEvent in
# horovod/torch/mpi_ops_v2.cc), and the background thread polls that event before it
# reduces (WAIT_FOR_DATA in PerformOperation); MXNet's engine runs Horovod's op once the
# gradient is computed and passes no event (nullptr in horovod/mxnet/mpi_ops.cc). Read in
# 0.16.2 and 0.19.1.
HOROVOD_ENQUEUE = ("host-dispatch", "gpu-ready")


def refuse_horovod_options(gradient_sync: str, cycle_time_ms: float | None,
                           fusion_mb: float | None, one_rank: str | None = None,
                           enqueue: str | None = None) -> None:
    """Horovod's options given to another scheme are refused, by name."""
    if gradient_sync != "horovod":
        given = [k for k, v in (("cycle_time_ms", cycle_time_ms), ("fusion_mb", fusion_mb),
                                ("horovod_one_rank", one_rank), ("horovod_enqueue", enqueue))
                 if v is not None]
        if given:
            raise ConfigError(f"{' and '.join(given)} set Horovod's background thread: give "
                              f"them with gradient_sync='horovod' (got {gradient_sync!r})")


def stream_ready_s(tg: TaskGraph, ops, task_of: dict[str, str]) -> dict[str, float]:
    """When each op's task ends, from the start of the step, where a rank's stream runs `ops`
    back to back in order (as the engine runs one stream's tasks in priority order)."""
    clock, ready = 0.0, {}
    for op in ops:
        clock += tg[task_of[op.name]].duration_s
        ready[op.name] = clock
    return ready


def horovod_groups(tg: TaskGraph, train_graph, ready_s: dict[str, float], cycle_s: float,
                   fusion_bytes: float, copy_Bps: float | None,
                   copy_launch_s: float = 0.0) -> list[SyncGroup]:
    """Horovod's background thread (horovod/common/operations.cc, RunLoopOnce; read in
    0.16.2 and 0.19.1): it sleeps until a cycle after the last cycle's start, takes the
    gradients every rank has enqueued since (ready_s: when each op's gradients are ready on
    the last rank; with the response cache, on by default from 0.16, one MPI_Allreduce of
    the cached tensors' bits finds those every rank holds), fuses them in that order, a
    tensor per parameter array (parameter_arrays_bytes: a weight and its bias apart), into
    buffers of at most `fusion_bytes` (FuseResponses: a larger tensor goes alone; its
    look-ahead only skips tensors of another dtype, and every gradient here has its
    parameter's), and all-reduces each, one after another. A fused buffer is filled and
    emptied by one cudaMemcpyAsync per tensor (MemcpyInFusionBuffer and
    MemcpyOutFusionBuffer, device to device on Horovod's stream): its bytes read and written
    twice at copy_Bps (the device's memory bandwidth; None: not counted) and, per tensor,
    two copies' launch (copy_launch_s: the gap the device leaves between dependent kernels).
    The loop runs freely across steps, so the cycle's phase against the step is arbitrary:
    the ticks are placed so that the last gradient waits half a cycle, the mean wait. Each
    tick is a task on a resource of its own ('horovod.cycle') ending at its time."""
    producers = sorted((op.name for op in train_graph.topo()
                        if op.phase == "backward" and op.params), key=lambda nm: ready_s[nm])
    if not producers:
        return []
    phase = ready_s[producers[-1]] + cycle_s / 2
    by_tick: dict[int, list[str]] = {}
    for nm in producers:   # the first tick at or after it is ready
        by_tick.setdefault(-math.floor((phase - ready_s[nm]) / cycle_s), []).append(nm)
    tg.meta.setdefault("extra_resources", {})["horovod.cycle"] = 1
    groups: list[SyncGroup] = []
    clock = 0.0
    for k in sorted(by_tick):
        at = max(phase + k * cycle_s, 0.0)
        tick = tg.new(f"horovod.tick{len(groups)}", "horovod.cycle", at - clock,
                      deps=[groups[-1].after[0]] if groups else [], category="wait",
                      meta={"cycle_s": cycle_s}).name
        clock = at
        # each gradient tensor is a request of its own: a layer's weight and bias, a
        # normalisation's scale and shift, are two
        fused: list[list[tuple[str, int]]] = [[]]
        size = 0.0
        for nm in by_tick[k]:
            for nbytes in parameter_arrays_bytes(train_graph.op(nm)):
                if fused[-1] and size + nbytes > fusion_bytes:
                    fused.append([])
                    size = 0.0
                fused[-1].append((nm, nbytes))
                size += nbytes
        for tensors in fused:
            nbytes = sum(b for _, b in tensors)
            copies = 0.0
            if len(tensors) > 1:      # a tensor alone is reduced in place
                copies = (4 * nbytes / copy_Bps if copy_Bps else 0.0) \
                    + 2 * len(tensors) * copy_launch_s
            names = tuple(dict.fromkeys(nm for nm, _ in tensors))
            groups.append(SyncGroup(names, nbytes, (tick,), copies))
    return groups




def horovod_sync_groups(tg: TaskGraph, train_graph, cluster, fwd_bwd,
                        task_of: dict[str, dict[str, str]], cycle_time_ms: float | None,
                        fusion_mb: float | None, gradients_ready: str,
                        one_rank: str | None = None,
                        enqueue: str | None = None) -> list[SyncGroup]:
    """The all-reduces of a step as Horovod's background thread makes them (horovod_groups),
    for the simulated ranks whose forward and backward ops (`fwd_bwd`) are emitted as
    task_of says, each option at Horovod's default where None."""
    if len(cluster.devices) == 1 and (one_rank or "skip") == "skip":
        return []       # Horovod's optimizer hands the gradients over as they are
    ready: dict[str, float] = {}      # on the last rank: Horovod waits for every rank
    for tasks in task_of.values():
        for nm, t in stream_ready_s(tg, fwd_bwd, tasks).items():
            ready[nm] = max(ready.get(nm, 0.0), t)
    if gradients_ready == "at-end" and ready:
        end = max(ready.values())
        ready = dict.fromkeys(ready, end)
    if (enqueue or "host-dispatch") == "host-dispatch":
        # the host dispatches a step's ops far ahead of the GPU (tens of microseconds an op
        # against the GPU's hundreds): every gradient is enqueued and negotiated before the
        # GPU makes the first, so they all fall in one cycle, fused in backward order, and
        # each buffer's all-reduce waits on the GPU for its last tensor, not for a cycle
        ready = dict.fromkeys(ready, 0.0)
    gpus = all(d.spec.kind == "gpu" for d in cluster.devices)
    first = cluster.devices[0]
    return horovod_groups(tg, train_graph, ready,
                          (cycle_time_ms or HOROVOD_CYCLE_TIME_MS) * 1e-3,
                          (fusion_mb or HOROVOD_FUSION_MB) * MIB,
                          first.spec.mem_bandwidth_Bps if gpus else None,
                          first.model.launch_overhead_s if gpus else 0.0)
