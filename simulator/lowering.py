"""From an op graph to tasks on one device: durations, dependencies and tensor lifetimes.

Every policy that runs (part of) a graph on a device goes through `emit_ops`, so the rules of
memory are the same everywhere, and follow what PyTorch allocates:
- weights, their gradients and optimizer state are resident for the whole step (`resident_bytes`);
- an op allocates its output when it starts. Views, weight-gradient and update ops allocate
  nothing (they alias, or write into resident buffers), and so does a ReLU that runs in place
  (`inplace_relus`; under a framework calling cuDNN directly its gradient too): its output is
  its input's storage;
- a tensor is freed when the last task that reads it (an input edge or a saved-tensor edge of
  a backward op) ends, in the order the device runs them;
- what autograd keeps besides graph tensors: a max pool's int64 indices (none under a
  framework calling cuDNN directly, whose pool gradient reads x and y), a training
  dropout's bool mask and a recurrent layer's cuDNN reserve space live until the op's
  gradient; under AMP, autocast's half copy of a
  convolution's or linear layer's weights lives from the forward until the layer's gradient,
  and the half weight gradient exists during the weight-gradient op;
- torch.optim's step allocates parameter-sized temporaries (Adam's sqrt(v)): the multi-tensor
  step one for every parameter at once, held from the step's first update op to its last; the
  single-tensor loop (PyTorch 1.x, or off CUDA) one layer's at a time (`optimizer_temp_scope`
  of the device model; a model without one runs the loop);
- a cuDNN convolution holds a workspace while it runs, as large as the device model asks for
  (`device.model.workspace_bytes(op)`, 0 where the model has none) when it fits; where it does
  not, PyTorch's cuDNN falls back to an algorithm without one. An ARM board's convolution
  holds the Arm Compute Library's buffers the same way (hwmodels/arm.py).
On a GPU each tensor counts as the CUDA caching allocator's 512-byte blocks, the CUDA context is
taken off the device's memory, and the allocator is replayed on the step's allocations in
program order (hwmodels/gpu_memory.py): what it reserves beyond the tensors at its peak (segment
rounding, blocks split and cached) is recorded per device in the task graph's `device_memory`
meta, which the engine adds to the tensors when it judges what fits.
Under a framework that allocates the net's buffers once (graph.meta["framework_memory"]
caffe or torch7, simulator/framework_memory.py) none of the per-tensor rules apply: a zero-time
set-up task allocates the framework's footprint and the weights' state before the first op,
and the ops allocate nothing; the CUDA context still counts.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from hwmodels.cudnn_benchmark import CudnnBenchmarkSearch
from hwmodels.gpu_memory import CachingAllocator, block_bytes, runtime_reservation
from hwmodels.residency import fitting_bytes
from workloads.graph import Op, OpGraph
from workloads.kinds.loss_update import optimizer_step
from workloads.training import CUDNN_SAVES, OPTIMIZER_STATE_PER_PARAM, calls_cudnn_directly

from .cluster import Device
from .engine import DEVICE_MEMORY_META
from .framework_memory import framework_memory_of, static_footprint_bytes
from .tasks import SimulationError, TaskGraph

# Outputs these kinds write go into resident buffers (weight gradients, weights).
_RESIDENT_OUTPUT = frozenset({"conv2d_grad_weight", "linear_grad_weight", "sgd_update"})
# Saved by autograd besides graph tensors, bytes per output element: max_pool2d_with_indices'
# int64 indices, native_dropout's bool mask.
_SAVED_EXTRA_BYTES = {"maxpool": 8, "dropout": 1}
HALF_BYTES = 2                     # fp16 and bf16
# task graph meta: per device, where its launch queue stands after the ops emitted so far
# (GPUModel.stream_times_s), so the next emission's ops queue behind them
LAUNCH_QUEUES_META = "launch_queues"
_INPLACE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def resident_bytes(graph: OpGraph, training: bool) -> int:
    """Weights (+ gradients and optimizer state when training) of the graph's forward ops."""
    weights = sum(op.param_bytes for op in graph if op.phase == "forward")
    if not training:
        return weights
    state = OPTIMIZER_STATE_PER_PARAM[graph.meta.get("optimizer", "sgd-momentum")]
    return weights * (2 + state)


def saved_extra_bytes(op: Op, cudnn: bool = False) -> int:
    """What autograd keeps for op's gradient besides graph tensors: max_pool's indices,
    dropout's mask, a recurrent layer's cuDNN reserve space (OpKind.reserve_bytes). With
    `cudnn` (a framework calling cuDNN directly), a kind whose cuDNN gradient reads graph
    tensors instead (workloads.training.CUDNN_SAVES: max pooling's x and y) keeps nothing."""
    if op.is_view or (cudnn and op.kind in CUDNN_SAVES):
        return 0
    reserve = op.kind_record.reserve_bytes
    if reserve is not None:
        return int(reserve(op))
    return op.out.numel * _SAVED_EXTRA_BYTES.get(op.kind, 0)


def output_bytes(op: Op, blocks: bool = True) -> int:
    """Bytes an op's output storage takes (0 for views and resident-buffer writers), as the
    CUDA caching allocator counts them (whole 512-byte blocks) unless `blocks` is False."""
    if op.is_view or op.kind in _RESIDENT_OUTPUT:
        return 0
    return block_bytes(op.out.nbytes) if blocks else op.out.nbytes


def inplace_relus(graph: OpGraph) -> frozenset[str]:
    """The ReLUs that run in place: written to (graph.meta["inplace_ops"], as torchvision's
    nn.ReLU(inplace=True); under a framework calling cuDNN directly every ReLU, and every
    ReLU's gradient over its dy, as cudnnActivationForward and Backward allow y to be x and dx
    to be dy), and whose input may be overwritten: no other op reads it (forward, or saved
    for a backward; a ReLU's own backward reads its output), and it is no view of another
    tensor."""
    written = graph.meta.get("inplace_ops", ())
    cudnn = calls_cudnn_directly(graph)
    key = (len(graph), len(written), cudnn)
    cached = _INPLACE_CACHE.get(graph)
    if cached is not None and cached[0] == key:
        return cached[1]
    if cudnn:
        written = [op.name for op in graph if op.kind in ("relu", "relu_grad")]
    readers: dict[str, int] = {}
    for op in graph:
        for t in {*op.inputs, *op.saved}:
            readers[t] = readers.get(t, 0) + 1
    found = frozenset(
        name for name in written if name in graph
        and ((op := graph.op(name)).kind == "relu" and op.phase == "forward"
             or cudnn and op.kind == "relu_grad")
        and readers.get(op.inputs[0], 0) == 1 and not graph.op(op.inputs[0]).is_view)
    _INPLACE_CACHE[graph] = (key, found)
    return found


def storage_owner(graph: OpGraph, name: str) -> str:
    """The op whose allocation holds tensor `name` (views and in-place ReLUs point back to
    their source)."""
    inplace = inplace_relus(graph)
    op = graph.op(name)
    while (op.is_view or op.name in inplace) and op.inputs:
        op = graph.op(op.inputs[0])
    return op.name


def is_amp(graph: OpGraph) -> bool:
    return str(graph.meta.get("precision", "")).startswith("amp-")


@dataclass
class Emitted:
    """What emit_ops made: task name of each op, and the op order used for lifetimes."""
    task_of: dict[str, str]
    order: list[str]


def emit_ops(tg: TaskGraph, graph: OpGraph, device: Device, *, ops: Iterable[Op] | None = None,
             prefix: str = "", extra_deps: Mapping[str, Iterable[str]] | None = None,
             priority_base: int = 0, duration: Callable[[Op], float] | None = None,
             track_memory: bool = True, memory_device: str | None = None,
             keep_outputs: Iterable[str] = (), meta: dict | None = None,
             autocast_copies: bool = True,
             costed_as: Callable[[Op], Op] | None = None) -> Emitted:
    """Add one compute task per op (in graph order) on `device`'s compute stream.

    ops: a subset of the graph (default all); dependencies on ops outside the subset are
    dropped, so callers wire cross-device edges themselves through `extra_deps` (op name ->
    task names). Tensors produced outside the subset are neither allocated nor freed here.
    keep_outputs: storage owners whose bytes other tasks free (offloading).
    autocast_copies: under AMP, whether autocast's half copies of the weights and the half
    weight gradients are allocated (False where the plan holds half weights itself: fsdp).
    costed_as: the op each op is costed as, in the same launch queue (fsdp: the shard of an
    update a rank steps); `duration` instead replaces the costing altogether.
    """
    selected = list(ops) if ops is not None else graph.topo()
    mem_dev = memory_device or device.id
    cost: Callable[[Op], float]
    if duration is None:
        # what this device's part of the step moves: a calibrated profile's small ops run
        # faster when it fits in the cache (hwmodels/residency.py)
        step_bytes = fitting_bytes(selected)
        # in emission order on the device's stream: a GPU's host issues them ahead of it,
        # carrying on from the ops emitted on the device before (LAUNCH_QUEUES_META)
        queue = tg.meta.setdefault(LAUNCH_QUEUES_META, {}).setdefault(device.id, {})
        costed = [costed_as(op) for op in selected] if costed_as else selected
        stream_s = dict(zip([op.name for op in selected],
                            device.model.stream_times_s(costed, step_bytes, queue),
                            strict=True))

        def modelled(op: Op) -> float:
            return stream_s[op.name]
        cost = modelled
    else:
        cost = duration
    if device.speed != 1.0 or device.jitter is not None:   # a straggler, jitter: stragglers.py
        base_cost = cost

        def slowed(op: Op) -> float:
            return base_cost(op) * device.time_factor(f"{prefix}{op.name}")
        cost = slowed
    extra = extra_deps or {}
    gpu = device.spec.kind == "gpu"
    if gpu:
        _record_reservation(tg, mem_dev, device)
    framework = framework_memory_of(graph)
    if track_memory and framework.static:
        setup = _static_setup(tg, graph, selected, device, mem_dev, prefix, keep_outputs)
        extra = {op.name: (*extra.get(op.name, ()), setup) for op in selected}
        track_memory = False
    plan = (_MemoryPlan(graph, selected, device, set(keep_outputs), autocast_copies)
            if track_memory else None)
    if plan is not None and gpu:
        plan.replay(tg, mem_dev)

    task_of: dict[str, str] = {}
    for i, op in enumerate(selected):
        deps = [task_of[p] for p in graph.predecessors(op.name) if p in task_of]
        deps += list(extra.get(op.name, ()))
        alloc, free = plan.task_bytes(op.name) if plan is not None else (0, 0)
        name = f"{prefix}{op.name}"
        tg.new(name, device.compute, cost(op), deps=deps, priority=priority_base + i,
               alloc={mem_dev: alloc} if alloc else {}, free={mem_dev: free} if free else {},
               category="compute", device=device.id,
               meta={"op": op.name, "kind": op.kind, "phase": op.phase, **(meta or {})})
        task_of[op.name] = name
    return Emitted(task_of, [op.name for op in selected])


def held_beyond_tensors_bytes(graph: OpGraph, device: Device,
                              ops: Iterable[Op] | None = None) -> int:
    """What `device` holds besides the tensors when it runs `ops` of `graph` (default all):
    the driver's and the CUDA context's bytes and the caching allocator's overhead; 0 off
    GPUs. A planner that budgets tensors takes this off the device's memory."""
    scratch = TaskGraph("held-bytes")
    emit_ops(scratch, graph, device, ops=ops, duration=lambda op: 0.0)
    entry = scratch.meta.get(DEVICE_MEMORY_META, {}).get(device.id, {})
    return sum(int(entry.get(k, 0)) for k in ("driver_bytes", "context_bytes",
                                                "allocator_overhead_bytes"))


def _static_setup(tg: TaskGraph, graph: OpGraph, selected: list[Op], device: Device,
                  mem_dev: str, prefix: str, keep_outputs: Iterable[str]) -> str:
    """The zero-time task allocating the footprint of a framework that allocates once (as
    Caffe's Net::Init and Torch7's first forward do); its name. The footprint is the whole
    net's, so the emission must run the whole step and free nothing early. The weights, their
    gradients and optimizer state are allocated there too (the plan's resident bytes for the
    device move into the task), so a net that does not fit fails at set-up, having allocated
    nothing."""
    framework = framework_memory_of(graph)
    names = {op.name for op in selected}
    missing = [op.name for op in graph if op.phase != "update" and op.name not in names]
    if missing or list(keep_outputs):
        what = (f"runs only part of the step there ({missing[0]!r} is elsewhere)" if missing
                else "frees offloaded tensors early")
        raise SimulationError(f"framework_memory {framework.text!r} holds the whole net's "
                              f"buffers on {device.id}, but this plan {what}")
    resident = tg.meta.get("resident_bytes", {})
    if mem_dev not in resident:
        raise SimulationError(f"framework_memory {framework.text!r}: the plan declares no "
                              f"resident bytes for {mem_dev} before its ops")
    weights = int(resident[mem_dev])
    resident[mem_dev] = 0
    task = tg.new(f"{prefix}{framework.name}.net_init", device.compute, 0.0,
                  alloc={mem_dev: static_footprint_bytes(graph, framework) + weights},
                  category="compute", device=device.id)
    return task.name


def _record_reservation(tg: TaskGraph, mem_dev: str, device: Device) -> None:
    held = runtime_reservation(device.spec)
    entry = tg.meta.setdefault(DEVICE_MEMORY_META, {}).setdefault(mem_dev, {})
    entry.update(driver_bytes=held.driver_bytes, context_bytes=held.context_bytes)
    entry.setdefault("allocator_overhead_bytes", 0)


class _MemoryPlan:
    """The buffers of one emission: which op allocates each and which op's end frees it."""

    def __init__(self, graph: OpGraph, selected: list[Op], device: Device, keep: set[str],
                 autocast_copies: bool = True):
        self.graph, self.selected, self.device = graph, selected, device
        blocks = device.spec.kind == "gpu"
        names = {op.name for op in selected}
        position = {op.name: i for i, op in enumerate(selected)}
        inplace = inplace_relus(graph)
        # buffers: key -> (bytes, producer, last reader or None)
        self.buffers: dict[str, list] = {}
        for op in selected:
            nbytes = 0 if op.name in inplace else output_bytes(op, blocks)
            if nbytes:
                self.buffers[op.name] = [nbytes, op.name, None]
        owners: dict[str, str] = {}   # a tensor read by several ops: its owner found once
        for op in selected:
            for t in (*op.inputs, *op.saved):
                owner = owners.get(t)
                if owner is None and t in graph:
                    owner = owners[t] = storage_owner(graph, t)
                if owner is not None:
                    buf = self.buffers.get(owner)
                    if buf is not None and owner in names and \
                            (buf[2] is None or position[op.name] > position[buf[2]]):
                        buf[2] = op.name
        self.kept = {k for k in keep if k in self.buffers}
        # what autograd keeps besides graph tensors, freed by the op's last backward op
        backward_of: dict[str, str] = {}
        for op in selected:
            if op.phase == "backward" and op.forward in names:
                backward_of[op.forward] = op.name   # the last one, in this device's order
        amp = is_amp(graph) and autocast_copies
        cudnn = calls_cudnn_directly(graph)
        size = block_bytes if blocks else int
        workspace = getattr(device.model, "workspace_bytes", None)
        # per op: (what, bytes) held only while it runs
        self.transient: dict[str, list[tuple[str, int]]] = {}
        for op in selected:
            if (extra := saved_extra_bytes(op, cudnn)) and op.name in backward_of:
                self.buffers[f"{op.name}#saved"] = [size(extra), op.name,
                                                    backward_of[op.name]]
            if amp and op.params and op.kind in ("conv2d", "linear"):
                self.buffers[f"{op.name}#half_weights"] = [
                    size(op.params * HALF_BYTES), op.name, backward_of.get(op.name)]
            if amp and op.kind in ("conv2d_grad_weight", "linear_grad_weight"):
                self.transient.setdefault(op.name, []).append(
                    ("half_weight_grad", size(op.params * HALF_BYTES)))
            ws = int(workspace(op)) if workspace is not None else 0
            if ws > 0:
                self.transient.setdefault(op.name, []).append(("workspace", size(ws)))
        self._optimizer_temps(selected, size)
        # per op: bytes allocated at start and freed at end, for the engine
        self.alloc: dict[str, int] = {}
        self.free: dict[str, int] = {}
        self.frees_at: dict[str, list[str]] = {}
        for key, (nbytes, producer, last) in self.buffers.items():
            self.alloc[producer] = self.alloc.get(producer, 0) + nbytes
            end = last or producer   # nobody reads it (the loss): gone when it is done
            self.frees_at.setdefault(end, []).append(key)
            if key not in self.kept:
                self.free[end] = self.free.get(end, 0) + nbytes
        self.produced: dict[str, list[str]] = {}
        for key, (_, producer, _) in self.buffers.items():
            self.produced.setdefault(producer, []).append(key)

    def _optimizer_temps(self, selected: list[Op], size: Callable[[int], int]) -> None:
        """The step's temporaries (OptimizerStep.temp_tensors): a transient of each update op
        where the step loops over the tensors, one buffer over the whole step where its
        multi-tensor calls make them all at once."""
        scope_of = getattr(self.device.model, "optimizer_temp_scope", None)
        step: list[Op] = []
        for op in selected:
            if op.phase != "update" or op.is_view:
                continue
            temps = optimizer_step(op).temp_tensors
            scope = scope_of(op) if scope_of is not None else ("op" if temps else None)
            if scope == "op":
                self.transient.setdefault(op.name, []).append(
                    ("optimizer_temp", size(temps * op.param_bytes)))
            elif scope == "step":
                step.append(op)
        if step:
            self.buffers["#optimizer_step_temp"] = [
                sum(size(optimizer_step(op).temp_tensors * op.param_bytes) for op in step),
                step[0].name, step[-1].name]

    def task_bytes(self, op_name: str) -> tuple[int, int]:
        scratch = sum(b for _, b in self.transient.get(op_name, ()))
        return (self.alloc.get(op_name, 0) + scratch, self.free.get(op_name, 0) + scratch)

    def replay(self, tg: TaskGraph, mem_dev: str) -> None:
        """Run PyTorch's caching allocator over the emission in program order, after the
        resident state of its forward ops; a workspace that does not fit becomes 0. With
        graph.meta["cudnn_benchmark"], each convolution shape's algorithm search runs first
        (hwmodels/cudnn_benchmark.py). Records what the allocator reserves beyond the tensors at
        its peak."""
        spec = self.device.spec
        limit = spec.memory_bytes - runtime_reservation(spec).total_bytes
        allocator = CachingAllocator(max(limit, 0))
        training = bool(self.graph.meta.get("training"))
        copies = 2 + OPTIMIZER_STATE_PER_PARAM[self.graph.meta.get("optimizer", "sgd-momentum")]
        for op in self.selected:
            if op.phase == "forward" and op.params:
                for i in range(copies if training else 1):
                    allocator.malloc((op.name, "state", i), op.param_bytes, overcommit=True)
        search = (CudnnBenchmarkSearch.for_device(
            spec.architecture, getattr(self.device.model, "cudnn_version", None))
            if self.graph.meta.get("cudnn_benchmark") else None)
        for op in self.selected:
            for key in self.produced.get(op.name, ()):
                allocator.malloc(key, self.buffers[key][0], overcommit=True)
            if search is not None:
                search.run(allocator, op)
            scratch = self.transient.get(op.name)
            if scratch:
                kept = []
                for what, nbytes in scratch:
                    fits = allocator.malloc(what, nbytes, overcommit=what != "workspace")
                    kept.append((what, nbytes if fits else 0))
                for what, _ in kept:
                    allocator.free(what)
                self.transient[op.name] = kept
            for key in self.frees_at.get(op.name, ()):
                allocator.free(key)
        overhead = max(0, allocator.peak_reserved - allocator.peak_requested)
        entry = tg.meta[DEVICE_MEMORY_META][mem_dev]
        entry["allocator_overhead_bytes"] = max(entry["allocator_overhead_bytes"], overhead)
