"""`fsdp`: sharded data parallelism, as PyTorch's FullyShardedDataParallel and DeepSpeed's ZeRO
run it (Rajbhandari et al., SC 2020). A replica per device, each on its own batch; the
training state is split among the devices of a shard group (`shard_group`, default every
device) instead of copied on each.

Memory (_sharding.py): `stage` 1 shards the optimizer's state (with the FP32 master weights
under AMP), 2 also the gradients, 3 (the default, FSDP's FULL_SHARD) also the parameters.
Under AMP the plan runs as ZeRO's mixed precision and FSDP's MixedPrecision(param_dtype=half,
reduce_dtype=half): the forward and backward read half parameters, the gradients are reduced
in half, and autocast makes no copies of its own.

Time, stage 3: the model is wrapped per numbered block (a transformer layer, a residual block:
_sharding.wrap_unit, as FSDP's auto-wrap policies wrap them); the rest is the root unit,
gathered once before the forward pass and kept until its gradients are reduced (FSDP keeps
the root unsharded between forward and backward). Each block's parameters are all-gathered
before its forward and again before its backward, and its gradients reduce-scattered once its
backward is done, on NCCL's streams beside the compute: with `prefetch` (default) the next
unit's all-gather runs while this one computes (FSDP's backward_prefetch BACKWARD_PRE, and in
the forward the host running ahead under limit_all_gathers), at most two units unsharded at
once; without, each all-gather waits for the compute before its unit. A unit's unsharded
parameters live from its all-gather until its compute ends, its unsharded gradients from its
backward's all-gather until their reduce-scatter ends. Per step: two all-gathers of P and a
reduce-scatter of G bytes per parameter, 1.5 times an all-reduce's traffic (the root's
parameters are gathered once).

Time, stages 1 and 2: the gradients are reduce-scattered in DDP's buckets (`bucket_mb`) as the
backward pass makes them, the optimizer steps its shard, and the updated parameters are
all-gathered in the same buckets after the step: an all-reduce's traffic, the all-gather
exposed. Stage 2 holds a bucket's unsharded gradients until it is reduced.

With `shard_group` g smaller than the devices (FSDP's HYBRID_SHARD: shard within a node,
replicate across), every collective runs within groups of g consecutive devices, and each
gradient shard is then all-reduced across the groups, among the devices of the same rank in
their group. The optimizer steps each rank's 1/g shard: at stage 3 one update per unit of
1/g of its flat parameter's values (FSDP's FlatParameter: one tensor per unit), at stages 1
and 2 the layers' update ops on 1/g of their values, as many tensors as unsharded.
Collectives run on the cluster's topology (collectives.py), so contention and the fabric
between nodes come with them, and as PyTorch runs them, on NCCL (`algorithm = "nccl"`, the
default on GPUs: the all-gathers and reduce-scatters on NCCL's rings, across nodes one per
NIC, the all-reduces across groups as its tuning picks), or on one ring through every device
(`"ring"`).

Not modelled: FSDP's copies into and out of its flat parameters, the host's dispatch of the
hooks, a unit's reshard of gradients kept for accumulation, CPU offload of the shards.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

from workloads.graph import Op, TensorSpec
from workloads.training import OPTIMIZER_STATE_PER_PARAM, lower_training

from ..collectives import FIDELITIES, collective, framework_launch_s
from ..lowering import HALF_BYTES, block_bytes, emit_ops, is_amp
from ..tasks import TaskGraph
from . import ConfigError, Option, Policy, _replicas, parse_bool, register
from ._data_parallel import (
    algorithm_option,
    data_parallel_options,
    default_algorithm,
    gradient_buckets,
    record_algorithm,
)
from ._sharding import (
    ROOT,
    STAGES,
    StateBytes,
    flat_parameter_updates,
    resident_state_bytes,
    units_of,
    wrap_unit,
)
from ._sync_group import MIB

Deps = dict[str, list[str]]


@register
class Fsdp(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="fsdp", training_only=True,
            description="Sharded data parallelism: ZeRO stage 1/2/3 (3: PyTorch FSDP "
                        "FULL_SHARD), per-block all-gathers and reduce-scatters overlapped "
                        "with compute.",
            options={
                "stage": Option(3, "ZeRO stage: 1 (optimizer state sharded), 2 (and "
                                   "gradients), 3 (and parameters: FSDP FULL_SHARD)", int,
                                lambda v: v in STAGES, "1, 2 or 3"),
                "shard_group": Option(None, "devices that shard the state among them "
                                            "(default all: FULL_SHARD); fewer (a node's: "
                                            "HYBRID_SHARD) replicates the shards across "
                                            "groups; must divide the devices", int,
                                      lambda v: v >= 1, "an integer >= 1"),
                "prefetch": Option(True, "stage 3: all-gather the next unit while this one "
                                         "computes (FSDP's BACKWARD_PRE; at most two units "
                                         "unsharded)", parse_bool),
                "optimizer": Option(None, "optimizer whose state is sharded: "
                                          + ", ".join(OPTIMIZER_STATE_PER_PARAM)
                                          + " (default: the scenario's, sgd-momentum)",
                                    str, lambda v: v in OPTIMIZER_STATE_PER_PARAM,
                                    " or ".join(OPTIMIZER_STATE_PER_PARAM)),
                # stages 1 and 2: DDP's buckets
                **data_parallel_options("bucket_mb"),
                "algorithm": algorithm_option(),
                "collectives": Option(None, "'link' (every transfer a task: the default up "
                                            "to 64 devices, and by class at any size) or "
                                            "'flow' (closed form)", str,
                                      lambda v: v in FIDELITIES, "link or flow"),
                "replicas": Option(None, "'classes' (one device per symmetry class, the "
                                         "others alike: the default on alike devices, "
                                         "exact), 'all' (every device's compute) or 'one' "
                                         "(device 0's, the others in lockstep; the "
                                         "collectives span every device)", str,
                                   lambda v: v in ("all", "classes", "one"),
                                   "all, classes or one"),
            })

    def plan(self, graph, cluster, training: bool, *, stage, shard_group, prefetch, optimizer,
             bucket_mb, algorithm, collectives, replicas) -> TaskGraph:
        ids = [d.id for d in cluster.devices]
        n = len(ids)
        group = shard_group or n
        if n % group:
            raise ConfigError(f"policy 'fsdp' option 'shard_group': {group} does not divide "
                              f"the {n} devices")
        g = lower_training(graph, optimizer)
        units = units_of(g)
        state = resident_state_bytes(units, stage, group)
        # collectives within shard groups are built in full: by class only over every device
        fidelity, replicas = _replicas.resolve(cluster, collectives, replicas,
                                               by_class=group == n)
        period = cluster.symmetry_period() if replicas == "classes" else None
        replicas = "all" if replicas == "classes" and period is None else replicas
        simulated = cluster.devices[:{"all": n, "one": 1}.get(replicas, period or n)]
        tg = TaskGraph(f"fsdp:{graph.name}", meta={
            "samples": graph.batch * n, "replicas": replicas, "fidelity": fidelity,
            "resident_bytes": {d.id: state.total for d in simulated},
            "fsdp": {"stage": stage, "shard_group": group, "units": list(units),
                     "state_bytes": vars(state)}})
        if period:
            tg.meta.update(_replicas.class_meta(cluster, period))
        tg.meta.setdefault("extra_resources", {}).update(
            {f"{d.id}.{what}": 1 for d in simulated for what in ("unshard", "reshard")})
        steps = _Steps(tg, cluster, ids, [d.id for d in simulated], group, g,
                       algorithm or default_algorithm(cluster))
        fwd_bwd = [op for op in g.topo() if op.phase != "update"]
        if stage == 3:
            synced = steps.full_shard(units, fwd_bwd, prefetch)
        else:
            synced = steps.bucketed(fwd_bwd, bucket_mb, stage == 2)
        # stage 3 steps FSDP's flat parameters, one tensor per unit
        stepped = flat_parameter_updates(g) if stage == 3 else g
        updates = [op for op in stepped.topo() if op.phase == "update"]
        for d in simulated:
            emit_ops(tg, g, d, ops=fwd_bwd, prefix=f"{d.id}/", extra_deps=steps.extra[d.id],
                     autocast_copies=False)
            emit_ops(tg, stepped, d, ops=updates, prefix=f"{d.id}/",
                     priority_base=len(fwd_bwd),
                     extra_deps={op.name: (*(f"{d.id}/{t}" for t in op.inputs), *synced[d.id])
                                 for op in updates},
                     track_memory=False, costed_as=_shard_of(group))
        if stage < 3:
            steps.gather_updated(updates, bucket_mb)
        return tg

    def finalize(self, result, graph, cluster, training: bool, **opts) -> None:
        fsdp = result.log.meta.get("fsdp", {})
        result.extras["fsdp_state_bytes_per_device"] = fsdp.get("state_bytes")
        result.extras["fsdp_units"] = len(fsdp.get("units", ()))
        record_algorithm(result, cluster, opts["algorithm"])


def _shard_of(group: int) -> Callable[[Op], Op]:
    """An update as a rank runs it on its 1/group shard: the same op on a 1/group share of its
    values and as many tensors, issued in the launch queue as the rest of the step (emit_ops'
    costed_as)."""
    def shard(op: Op) -> Op:
        share = math.ceil(op.params / group)
        return dataclasses.replace(
            op, params=share, out=TensorSpec((share,), op.out.dtype_bytes),
            in_specs=tuple(TensorSpec((share,), s.dtype_bytes) for s in op.in_specs))
    return shard


class _Steps:
    """The collectives and memory tasks of one plan, and each simulated device's extra
    dependencies of its compute ops (`extra`: device -> op name -> tasks)."""

    def __init__(self, tg: TaskGraph, cluster, ids: list[str], simulated: list[str],
                 group: int, train, algorithm: str) -> None:
        self.tg, self.cluster, self.ids, self.simulated = tg, cluster, ids, simulated
        self.train, self.algorithm = train, algorithm
        # devices in lockstep: a collective over the whole cluster is built for one symmetry
        # class of devices alone (collectives.py, "Symmetry"), with the same times
        self.symmetric = len(simulated) < len(ids)
        self._reps = {d: simulated[i % len(simulated)] for i, d in enumerate(ids)}
        self.groups = [ids[k:k + group] for k in range(0, len(ids), group)]
        self.extra: dict[str, Deps] = {d: {} for d in simulated}
        self.fidelity = tg.meta["fidelity"]
        self.launch_s = framework_launch_s(cluster)
        self.amp = is_amp(train)

    # -- naming ------------------------------------------------------------------------
    def _rep(self, device: str) -> str:
        """The simulated device whose tasks stand for `device`: itself, its class's
        representative, or device 0."""
        return self._reps[device]

    def task(self, device: str, op: str) -> str:
        return f"{self._rep(device)}/{op}"

    def need(self, op: str, done: dict[str, tuple[str, ...]]) -> None:
        """Op waits, on every simulated device, for `done` there."""
        for d in self.simulated:
            self.extra[d].setdefault(op, []).extend(done[d])

    def memory(self, what: str, kind: str, nbytes: int, deps: dict[str, list[str]]
               ) -> dict[str, tuple[str, ...]]:
        """A zero-time task per simulated device allocating (kind 'unshard') or freeing
        ('reshard') `nbytes` there; per device, what to depend on."""
        out = {}
        for d in self.simulated:
            effect = {"alloc" if kind == "unshard" else "free": {d: nbytes}} if nbytes else {}
            name = f"{d}/fsdp.{what}"
            self.tg.new(name, f"{d}.{kind}", 0.0, deps=deps.get(d, ()), category="compute",
                        device=d, meta={"fsdp": what}, **effect)
            out[d] = (name,)
        return {d: out[self._rep(d)] for d in self.ids}

    def collective(self, kind: str, nbytes: float, deps: Mapping[str, Sequence[str]],
                   name: str) -> dict[str, tuple[str, ...]]:
        """`kind` within each shard group; after a reduce-scatter with several groups, the
        shards all-reduced across them (HYBRID_SHARD)."""
        done: dict[str, tuple[str, ...]] = {}
        for k, members in enumerate(self.groups):
            done.update(collective(kind, self.tg, self.cluster, members, nbytes,
                                   {d: deps[d] for d in members}, f"{name}.g{k}",
                                   fidelity=self.fidelity, priority=-1,
                                   launch_latency_s=self.launch_s, algorithm=self.algorithm,
                                   symmetric=self.symmetric))
        if kind == "reduce_scatter" and len(self.groups) > 1:
            across = {}
            for j in range(len(self.groups[0])):
                members = [grp[j] for grp in self.groups]
                across.update(collective("allreduce", self.tg, self.cluster, members,
                                         nbytes / len(self.groups[0]),
                                         {d: done[d] for d in members}, f"{name}.x{j}",
                                         fidelity=self.fidelity, priority=-1,
                                         launch_latency_s=self.launch_s,
                                         algorithm=self.algorithm))
            done = across
        return done

    def after_ops(self, ops: list[str], *more: dict[str, tuple[str, ...]]) -> Deps:
        return {d: [self.task(d, op) for op in ops] + [t for m in more for t in m.get(d, ())]
                for d in self.ids}

    # -- stage 3 -----------------------------------------------------------------------
    def full_shard(self, units: dict[str, StateBytes], fwd_bwd, prefetch: bool
                   ) -> dict[str, tuple[str, ...]]:
        """Per unit: all-gathers before its forward and backward, a reduce-scatter after
        its backward (module notes). Returns per device what the optimizer waits for."""
        train = self.train
        unit_of = {op.name: wrap_unit(op.name if op.phase == "forward" else
                                      (op.forward or op.name)) for op in fwd_bwd}
        position = {op.name: i for i, op in enumerate(fwd_bwd)}
        # ops of each unit per pass that read its parameters, and all of its ops
        readers: dict[tuple[str, str], list[str]] = {}
        members: dict[tuple[str, str], list[str]] = {}
        grads: dict[str, list[str]] = {}
        for op in fwd_bwd:
            key = (unit_of[op.name], op.phase)
            members.setdefault(key, []).append(op.name)
            fwd = op if op.phase == "forward" else train.op(op.forward) if op.forward else None
            if fwd is not None and fwd.param_bytes:
                readers.setdefault(key, []).append(op.name)
            if op.phase == "backward" and op.params:
                grads.setdefault(unit_of[op.name], []).append(op.name)
        blocks = [u for u in units if u != ROOT]
        events = [(u, "forward") for u in blocks] + [(u, "backward") for u in reversed(blocks)]
        no_deps: dict[str, tuple[str, ...]] = {d: () for d in self.ids}
        gathered = no_deps
        if ROOT in units:
            root = units[ROOT]
            alloc = self.memory("unshard.root", "unshard", block_bytes(root.params), {})
            gathered = self.collective("allgather", root.params, alloc, "fsdp.ag.root")
            for op in readers.get((ROOT, "forward"), []) + readers.get((ROOT, "backward"), []):
                self.need(op, gathered)
        freed: list[dict[str, tuple[str, ...]]] = []
        freed_forward: dict[str, dict[str, tuple[str, ...]]] = {}
        reduced = no_deps
        for e, (unit, phase) in enumerate(events):
            state = units[unit]
            first = position[members[(unit, phase)][0]]
            before = [fwd_bwd[first - 1].name] if first else []
            waits = [freed[e - 2]] if prefetch and e >= 2 else []
            if not prefetch:
                waits += freed[e - 1:e] if e else []
            if phase == "backward":
                waits.append(freed_forward[unit])
            nbytes = block_bytes(state.params) + (block_bytes(state.grads)
                                                  if phase == "backward" else 0)
            alloc = self.memory(f"unshard.{unit}.{phase}", "unshard", nbytes,
                                self.after_ops([] if prefetch else before, *waits))
            gathered = self.collective("allgather", state.params,
                                       {d: alloc[d] + gathered[d] for d in self.ids},
                                       f"fsdp.ag.{unit}.{phase}")
            for op in readers.get((unit, phase), []):
                self.need(op, gathered)
            freed.append(self.memory(f"reshard.{unit}.{phase}", "reshard",
                                     block_bytes(state.params),
                                     self.after_ops(members[(unit, phase)])))
            if phase == "forward":
                freed_forward[unit] = freed[-1]
            else:
                reduced = self.collective("reduce_scatter", state.grads,
                                          self.after_ops(grads.get(unit, []), reduced),
                                          f"fsdp.rs.{unit}")
                self.memory(f"reshard.{unit}.grads", "reshard", block_bytes(state.grads),
                            {d: list(reduced[d]) for d in self.ids})
        if ROOT in units:
            root = units[ROOT]
            backward = [op.name for op in fwd_bwd if op.phase == "backward"]
            # the root's gradients exist from the start of the backward pass
            grads_alloc = self.memory("unshard.root.grads", "unshard", block_bytes(root.grads),
                                      self.after_ops(
                                          [fwd_bwd[position[backward[0]] - 1].name]
                                          if backward else []))
            for op in grads.get(ROOT, []):
                self.need(op, grads_alloc)
            reduced = self.collective("reduce_scatter", root.grads,
                                      self.after_ops(grads.get(ROOT, []), reduced),
                                      "fsdp.rs.root")
            self.memory("reshard.root", "reshard",
                        block_bytes(root.params) + block_bytes(root.grads),
                        self.after_ops(members.get((ROOT, "backward"), []), reduced))
        return reduced

    # -- stages 1 and 2 ----------------------------------------------------------------
    def bucketed(self, fwd_bwd, bucket_mb: float, hold_buckets: bool
                 ) -> dict[str, tuple[str, ...]]:
        """The gradients reduce-scattered in DDP's buckets as they are made; with
        `hold_buckets` (stage 2) each bucket's unsharded gradients allocated before its first
        gradient and freed once reduced."""
        position = {op.name: i for i, op in enumerate(fwd_bwd)}
        reduced: dict[str, tuple[str, ...]] = {d: () for d in self.ids}
        for b, names in enumerate(gradient_buckets(self.train, bucket_mb * MIB)):
            nbytes = sum(self._grad_bytes(nm) for nm in names)
            if hold_buckets:
                first = min(position[nm] for nm in names)
                before = [fwd_bwd[first - 1].name] if first else []
                alloc = self.memory(f"unshard.bucket{b}", "unshard", block_bytes(nbytes),
                                    self.after_ops(before))
                for nm in names:
                    self.need(nm, alloc)
            reduced = self.collective("reduce_scatter", nbytes, self.after_ops(names, reduced),
                                      f"fsdp.rs.b{b}")
            if hold_buckets:
                self.memory(f"reshard.bucket{b}", "reshard", block_bytes(nbytes),
                            {d: list(reduced[d]) for d in self.ids})
        return reduced

    def gather_updated(self, updates, bucket_mb: float) -> None:
        """Stages 1 and 2: after the step, each bucket's updated parameters all-gathered."""
        done = self.after_ops([op.name for op in updates])
        gathered: dict[str, tuple[str, ...]] = {d: tuple(v) for d, v in done.items()}
        for b, names in enumerate(gradient_buckets(self.train, bucket_mb * MIB)):
            nbytes = sum(self._grad_bytes(nm) for nm in names)   # parameters as wide
            gathered = self.collective("allgather", nbytes, gathered, f"fsdp.ag.b{b}")

    def _grad_bytes(self, backward_op: str) -> int:
        """The gradient a backward op makes, as reduced: half under AMP (_sharding.py)."""
        op = self.train.op(backward_op)
        return op.params * HALF_BYTES if self.amp else op.param_bytes
