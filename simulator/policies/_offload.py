"""Offloading saved activations to host memory: the mechanism shared by `swap` and `swap-all`.

A plan names storage owners (forward ops whose output the backward pass reads) to send to host
memory, and for each the op after whose end its prefetch is issued. On the device:
- the tensor is allocated as usual when its producer starts (emit_ops);
- a swap-out copy on the device's d2h engine starts once the producer and every forward reader
  are done (the copy reads the tensor; freeing it earlier would pull it from under a reader),
  allocates the bytes on host memory at its start and frees the device bytes at its end;
- a prefetch on the h2d engine, after the trigger op and the swap-out, allocates the device
  bytes and frees the host bytes at its end; every backward reader waits for it. The program
  issues it right after its trigger (its priority is the trigger's position), so its device
  bytes are allocated before those of the ops issued after the trigger, even when its copy
  waits behind another (memory is granted in issue order, engine.py);
- the last backward reader frees the device bytes again.
Host memory is tracked as "host{node}" only when the cluster names a host (its capacity).

`emit_training_step` wires this for one device or, with several, as data parallelism: one
replica per device with the same plan, gradients all-reduced in data-parallel's buckets.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..lowering import Emitted, emit_ops, output_bytes, resident_bytes, storage_owner
from ..tasks import TaskGraph
from . import ConfigError, Option, _replicas
from ._data_parallel import allreduce_groups, ddp_groups, step_after_sync
from ._sync_group import MIB

GIB = 2 ** 30
# From this many devices an offloading step whose replicas run in lockstep exactly simulates
# replica 0 alone by default (its cost grows with the replicas; below, every device's own
# figures are kept: one 8-GPU machine)
LOCKSTEP_MIN_DEVICES = 9
# Replicas of an offloading step: not by symmetry class (policies/_replicas.py), since a
# node's devices swap into one host memory, which one class of devices would not fill
REPLICAS = Option(None, "'all' (every device) or 'one' (device 0, the others in lockstep; "
                        "the all-reduces span every device); default: 'one' beyond "
                        f"{LOCKSTEP_MIN_DEVICES - 1} devices where it gives 'all''s step "
                        "(alike devices whose host copies share no PCIe switch uplink, no "
                        "host memory tracked), else 'all'", str,
                  lambda v: v in ("all", "one"), "all or one")


@dataclass(frozen=True)
class Tensor:
    """A storage owner and who reads it, as positions in the step's op order."""
    name: str
    nbytes: int
    produced_at: int
    forward_readers: tuple[int, ...]
    backward_readers: tuple[int, ...]

    @property
    def swap_out_after(self) -> int:      # the op whose end lets the swap-out start
        return max((self.produced_at, *self.forward_readers))

    @property
    def first_use(self) -> int:
        return self.backward_readers[0]

    @property
    def last_use(self) -> int:
        return self.backward_readers[-1]


@dataclass
class OffloadPlan:
    offload: tuple[str, ...] = ()                            # storage owners, forward order
    prefetch_after: dict[str, str] = field(default_factory=dict)   # owner -> trigger op name
    predicted: dict = field(default_factory=dict)            # the planner's figures, if any


def step_ops(train_graph) -> list:
    """Forward and backward ops in graph order (what the compute stream runs before updates)."""
    return [op for op in train_graph.topo() if op.phase != "update"]


def offload_candidates(train_graph, ops: list | None = None) -> dict[str, Tensor]:
    """Saved activations that could be offloaded: forward outputs some backward op reads."""
    ops = ops if ops is not None else step_ops(train_graph)
    pos = {op.name: i for i, op in enumerate(ops)}
    fwd: dict[str, set[int]] = {}
    bwd: dict[str, set[int]] = {}
    for i, op in enumerate(ops):
        for t in (*op.inputs, *op.saved):
            if t not in train_graph:
                continue
            owner = storage_owner(train_graph, t)
            (fwd if op.phase == "forward" else bwd).setdefault(owner, set()).add(i)
    out: dict[str, Tensor] = {}
    for name, readers in bwd.items():
        op = train_graph.op(name)
        nbytes = output_bytes(op)
        if op.phase != "forward" or nbytes == 0 or name not in pos:
            continue
        t = Tensor(name, nbytes, pos[name], tuple(sorted(fwd.get(name, ()))),
                   tuple(sorted(readers)))
        if t.first_use > t.swap_out_after + 1:   # something runs between: room to hide a copy
            out[name] = t
    return dict(sorted(out.items(), key=lambda kv: kv[1].produced_at))


def host_of(cluster, device) -> str | None:
    return f"host{device.node}" if cluster.host is not None else None


def check_host_capacity(cluster, plan: OffloadPlan, candidates: dict[str, Tensor],
                        policy: str) -> None:
    """The host must hold every offloaded tensor at once (they all live there at the peak)."""
    if cluster.host is None or not plan.offload:
        return
    per_node = max(sum(1 for d in cluster.devices if d.node == n) for n in range(cluster.nodes))
    need = per_node * sum(candidates[s].nbytes for s in plan.offload)
    have = int(cluster.host.memory_bytes)
    if need > have:
        gib = 2 ** 30
        raise ConfigError(f"policy {policy!r}: host memory {cluster.host.name!r} holds "
                          f"{have / gib:.2f} GiB but the plan offloads {need / gib:.2f} GiB "
                          f"per node ({(need - have) / gib:.2f} GiB short); give a larger "
                          "host or a larger memory budget")


def emit_offloaded(tg: TaskGraph, g, device, cluster, plan: OffloadPlan,
                   candidates: dict[str, Tensor], ops: list, prefix: str = "") -> Emitted:
    """Compute tasks for `ops` on `device`, plus the swap-out and prefetch of each offloaded
    tensor; returns emit_ops' Emitted."""
    host = host_of(cluster, device)
    prefetch_task = {s: f"{prefix}prefetch.{s}" for s in plan.offload}
    extra: dict[str, list[str]] = {}
    for s in plan.offload:
        for r in candidates[s].backward_readers:
            extra.setdefault(ops[r].name, []).append(prefetch_task[s])
    em = emit_ops(tg, g, device, ops=ops, prefix=prefix, extra_deps=extra,
                  keep_outputs=plan.offload)
    for s in plan.offload:   # forward order
        t = candidates[s]
        res, dur = cluster.host_copy(device.id, t.nbytes, "d2h")
        deps = [em.task_of[ops[i].name] for i in (t.produced_at, *t.forward_readers)]
        tg.new(f"{prefix}swapout.{s}", res, dur, deps=deps, priority=t.swap_out_after,
               alloc={host: t.nbytes} if host else {}, free={device.id: t.nbytes},
               category="copy", device=device.id,
               meta={"op": s, "kind": "swap_out", "phase": "forward", "bytes": t.nbytes})
    position = {op.name: i for i, op in enumerate(ops)}
    for s in sorted(plan.offload, key=lambda s: candidates[s].first_use):
        t = candidates[s]
        res, dur = cluster.host_copy(device.id, t.nbytes, "h2d")
        trigger = em.task_of[plan.prefetch_after[s]]
        tg.new(prefetch_task[s], res, dur, deps=[trigger, f"{prefix}swapout.{s}"],
               priority=position[plan.prefetch_after[s]], alloc={device.id: t.nbytes},
               free={host: t.nbytes} if host else {}, category="copy", device=device.id,
               meta={"op": s, "kind": "prefetch", "phase": "backward", "bytes": t.nbytes})
        last = tg[em.task_of[ops[t.last_use].name]]
        last.free[device.id] = last.free.get(device.id, 0) + t.nbytes
    return em


def in_lockstep(cluster) -> bool:
    """Whether every replica of an offloading step does what replica 0 does at the same
    times, so that replica 0 alone ('one') gives every replica's step: devices alike (one
    kind, speed, no jitter), host copies on engines of their own (no PCIe switch uplink
    shared: its queue depends on the other replicas' copies), and no host memory tracked
    (a node's replicas fill one host memory)."""
    first = cluster.devices[0]
    alike = all(d.spec == first.spec and d.speed == first.speed and d.jitter is None
                for d in cluster.devices)
    shared = any(len(group) > 1 for group in cluster.layout.pcie_switches or ())
    return alike and not shared and cluster.host is None


def emit_training_step(name: str, g, cluster, plan: OffloadPlan,
                       candidates: dict[str, Tensor], *, bucket_mb: float = 25.0,
                       collectives: str | None = None, replicas: str | None = None,
                       meta: dict | None = None, algorithm: str = "ring") -> TaskGraph:
    """A training step with `plan` on every device; several devices all-reduce gradients in
    DDP's buckets of `bucket_mb` MiB as data-parallel does (_data_parallel.ddp_groups and
    allreduce_groups: one after another, each paying the launch), each by `algorithm`
    (collectives.ALGORITHMS); the updates wait for the last bucket, as DDP's step does."""
    n = len(cluster.devices)
    fidelity = _replicas.default_fidelity(cluster, collectives)
    replicas = replicas or ("one" if n >= LOCKSTEP_MIN_DEVICES and in_lockstep(cluster)
                            else "all")
    simulated = cluster.devices if replicas == "all" else cluster.devices[:1]
    tg = TaskGraph(name, meta={"samples": g.batch * n, "fidelity": fidelity,
                               "replicas": replicas, **(meta or {}),
                               "resident_bytes": {d.id: resident_bytes(g, True)
                                                  for d in simulated}})
    ops = step_ops(g)
    updates = [op for op in g.topo() if op.phase == "update"]
    emitted = {d.id: emit_offloaded(tg, g, d, cluster, plan, candidates, ops,
                                    prefix=f"{d.id}/" if n > 1 else "") for d in simulated}
    if n == 1:
        em = emitted[cluster.devices[0].id]
        extra: dict[str, tuple[str, ...]] = {op.name: (em.task_of[op.inputs[0]],)
                                             for op in updates}
        emit_ops(tg, g, cluster.devices[0], ops=updates, extra_deps=extra,
                 priority_base=len(ops), track_memory=False)
        return tg
    # data-parallel's buckets and all-reduces, at the launch cost and in the order DDP's run
    groups = ddp_groups(g, bucket_mb * MIB)
    done_at = allreduce_groups(tg, cluster, groups,
                               {d.id: emitted[d.id].task_of for d in simulated}, fidelity,
                               algorithm)

    for d in simulated:
        extra = step_after_sync(updates, emitted[d.id].task_of, done_at, d.id)
        emit_ops(tg, g, d, ops=updates, prefix=f"{d.id}/", extra_deps=extra,
                 priority_base=len(ops), track_memory=False)
    return tg


def add_offload_extras(result) -> None:
    """Offloaded tensors and bytes per step (device 0), read back from the run's tasks."""
    outs = [t for t in result.log.tasks if t.meta.get("kind") == "swap_out"
            and t.device == result.log.tasks[0].device]
    result.extras["offloaded_tensors"] = len(outs)
    result.extras["offloaded_gib"] = round(sum(t.meta["bytes"] for t in outs) / GIB, 4)
