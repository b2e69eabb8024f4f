"""From an op graph to tasks on one device: durations, dependencies and tensor lifetimes.

Every policy that runs (part of) a graph on a device goes through `emit_ops`, so the rules of
memory are the same everywhere:
- weights, their gradients and optimizer state are resident for the whole step (`resident_bytes`);
- an op allocates its output when it starts (views and weight-gradient/update ops allocate
  nothing: they alias, or write into resident buffers);
- a tensor is freed when the last task that reads it (an input edge or a saved-tensor edge of
  a backward op) ends, in the order the device runs them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from hwmodels.residency import fitting_bytes
from workloads.graph import Op, OpGraph
from workloads.training import OPTIMIZER_STATE_PER_PARAM

from .cluster import Device
from .tasks import TaskGraph

# Outputs these kinds write go into resident buffers (weight gradients, weights).
_RESIDENT_OUTPUT = frozenset({"conv2d_grad_weight", "linear_grad_weight", "sgd_update"})


def resident_bytes(graph: OpGraph, training: bool) -> int:
    """Weights (+ gradients and optimizer state when training) of the graph's forward ops."""
    weights = sum(op.param_bytes for op in graph if op.phase == "forward")
    if not training:
        return weights
    state = OPTIMIZER_STATE_PER_PARAM[graph.meta.get("optimizer", "sgd-momentum")]
    return weights * (2 + state)


def output_bytes(op: Op) -> int:
    """Bytes an op allocates for its output (0 for views and resident-buffer writers)."""
    if op.is_view or op.kind in _RESIDENT_OUTPUT:
        return 0
    return op.out.nbytes


def storage_owner(graph: OpGraph, name: str) -> str:
    """The op whose allocation holds tensor `name` (views point back to their source)."""
    op = graph.op(name)
    while op.is_view and op.inputs:
        op = graph.op(op.inputs[0])
    return op.name


@dataclass
class Emitted:
    """What emit_ops made: task name of each op, and the op order used for lifetimes."""
    task_of: dict[str, str]
    order: list[str]


def emit_ops(tg: TaskGraph, graph: OpGraph, device: Device, *, ops: Iterable[Op] | None = None,
             prefix: str = "", extra_deps: Mapping[str, Iterable[str]] | None = None,
             priority_base: int = 0, duration: Callable[[Op], float] | None = None,
             track_memory: bool = True, memory_device: str | None = None,
             keep_outputs: Iterable[str] = (), meta: dict | None = None) -> Emitted:
    """Add one compute task per op (in graph order) on `device`'s compute stream.

    ops: a subset of the graph (default all); dependencies on ops outside the subset are
    dropped, so callers wire cross-device edges themselves through `extra_deps` (op name ->
    task names). Tensors produced outside the subset are neither allocated nor freed here.
    """
    selected = list(ops) if ops is not None else graph.topo()
    names = {op.name for op in selected}
    position = {op.name: i for i, op in enumerate(selected)}
    mem_dev = memory_device or device.id
    if duration is None:
        # what this device's part of the step moves: a calibrated profile's small ops run
        # faster when it fits in the cache (hwmodels/residency.py)
        step_bytes = fitting_bytes(selected)

        def cost(op: Op) -> float:
            return device.model.op_time_s(op, step_bytes)
    else:
        cost = duration
    extra = extra_deps or {}
    keep = set(keep_outputs)

    # Last reader of each locally produced storage, in this device's order.
    last_reader: dict[str, str] = {}
    if track_memory:
        for op in selected:
            readers = list(op.inputs) + list(op.saved)
            for t in readers:
                if t in graph:
                    owner = storage_owner(graph, t)
                    if owner in names and owner not in keep and output_bytes(graph.op(owner)):
                        prev = last_reader.get(owner)
                        if prev is None or position[op.name] > position[prev]:
                            last_reader[owner] = op.name
    frees: dict[str, int] = {}
    for owner, reader in last_reader.items():
        frees[reader] = frees.get(reader, 0) + output_bytes(graph.op(owner))

    task_of: dict[str, str] = {}
    for i, op in enumerate(selected):
        deps = [task_of[p] for p in graph.predecessors(op.name) if p in task_of]
        deps += list(extra.get(op.name, ()))
        alloc = output_bytes(op) if track_memory else 0
        free = frees.get(op.name, 0)
        if track_memory and alloc and op.name not in last_reader and op.name not in keep:
            free += alloc  # nobody reads it (the loss): gone when it is done
        name = f"{prefix}{op.name}"
        tg.new(name, device.compute, cost(op), deps=deps, priority=priority_base + i,
               alloc={mem_dev: alloc} if alloc else {}, free={mem_dev: free} if free else {},
               category="compute", device=device.id,
               meta={"op": op.name, "kind": op.kind, "phase": op.phase, **(meta or {})})
        task_of[op.name] = name
    return Emitted(task_of, [op.name for op in selected])
