"""What the pipeline policies share: partitions at registers, placement, and the schedule emitter.

Layers are counted as the paper counts them: every conv and fully connected layer, 1-based from
the input (`Op.layer`); ResNet-56 has layers 1..56 (55 convs and the classifier; the option-A
shortcuts have no parameters). A *register after layer L* cuts the network between layer L and
layer L+1, so `registers = [19]` gives partition 0 = layers 1..19 (with their batch norm, ReLU
and residual adds) and partition 1 = layers 20..56 with the loss.

Op placement: a layer op goes to the partition its index falls in; any other forward op goes
with the latest layer before it in program order (or a later input's partition), so a residual
shortcut computed next to layer 21 runs with it rather than crossing as a second tensor;
backward and update ops go with the forward op they serve; a gradient sum with no forward op (a
residual fork) runs where its inputs are, so one summed tensor crosses.

A schedule is, per device, an ordered list of *units*: ("F", i) the forward ops of that
partition for minibatch i, ("B", i) its backward ops (and weight updates when the schedule
updates every minibatch), ("U", None) the updates alone (GPipe's flush). Each device runs its
units in that order (a barrier task closes every unit); tensors crossing partitions are transfer
tasks on the cluster's links, which run beside compute. The schedules themselves are in
_pipeline_schedules.py.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Callable

from workloads.graph import Op, OpGraph, TensorSpec
from workloads.training import OPTIMIZER_STATE_PER_PARAM, lower_training

from ..lowering import Emitted, emit_ops, output_bytes
from ..tasks import Task, TaskGraph
from . import ConfigError, parse_int_list

Unit = tuple[str, int | None]


# -- registers and partitions -----------------------------------------------------------------
def layer_count(graph: OpGraph) -> int:
    return len(graph.layers())


def parse_registers(value, graph: OpGraph, option: str = "registers") -> list[int] | None:
    """'19' / '19,37' / [19, 37] -> checked list; 'auto' -> None (placement decides)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        regs = parse_int_list(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option {option!r}: cannot read {value!r} (layer indices such as "
                          f"'19' or '19,37', or 'auto')") from None
    n = layer_count(graph)
    if not regs:
        raise ConfigError(f"option {option!r}: give at least one layer index, or 'auto'")
    for r in regs:
        if not 1 <= r < n:
            raise ConfigError(f"option {option!r}: layer {r} is out of range for {graph.name} "
                              f"(a register goes after layer 1..{n - 1}; it has {n} layers)")
    if any(b <= a for a, b in itertools.pairwise(regs)):
        raise ConfigError(f"option {option!r}: layer indices must be strictly increasing, "
                          f"got {regs}")
    return regs


def check_partitions(k: int, cluster, option: str = "registers") -> None:
    n = len(cluster.devices)
    if k > n:
        raise ConfigError(f"option {option!r}: {k} partitions need {k} devices, but the cluster "
                          f"has {n} (one partition per device)")


def assign_partitions(train: OpGraph, registers: list[int]) -> dict[str, int]:
    """Partition index of every op of a (training) graph."""
    return place_ops(train, lambda op: None if op.layer is None else
                     sum(1 for r in registers if op.layer > r))


def place_ops(train: OpGraph, section: Callable[[Op], int | None]) -> dict[str, int]:
    """Partition of every op: a forward op for which `section` names one opens it, any other
    forward op goes with the latest opened before it (or a later input's); backward and update
    ops with the forward op they serve; a gradient sum with none where its inputs are."""
    part: dict[str, int] = {}
    latest = 0   # the partition opened latest in program order
    for op in train.topo():
        if op.phase == "forward":
            opened = section(op)
            if opened is not None:
                latest = opened
            p = max(max((part[i] for i in op.inputs), default=0), latest)
        elif op.forward is not None:
            p = part[op.forward]
        else:
            p = max((part[i] for i in op.inputs), default=0)
        part[op.name] = p
    return part


def op_time_table(train: OpGraph, device) -> dict[str, float]:
    return {op.name: device.model.op_time_s(op) for op in train.topo()}


def auto_registers(train: OpGraph, k: int, device) -> list[int]:
    """Registers that minimise the slowest partition's compute time (forward + backward +
    update), by dynamic programming over cut points between layers."""
    n = max((op.layer for op in train.topo() if op.layer is not None), default=0)
    if k < 1 or k > n:
        raise ConfigError(f"option 'partitions': {k} partitions for {n} layers; give 1..{n}")
    groups = assign_partitions(train, list(range(1, n)))   # group g = ops of layer g+1
    times = op_time_table(train, device)
    cost = [0.0] * n
    for name, g in groups.items():
        cost[g] += times[name]
    prefix = [0.0]
    for c in cost:
        prefix.append(prefix[-1] + c)
    inf = float("inf")
    # best[j][m]: min over splits of layers[0:m] into j parts of the max part cost
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for j in range(1, k + 1):
        for m in range(j, n + 1):
            for s in range(j - 1, m):
                v = max(best[j - 1][s], prefix[m] - prefix[s])
                if v < best[j][m] - 1e-15:
                    best[j][m], cut[j][m] = v, s
    regs, m = [], n
    for j in range(k, 1, -1):
        m = cut[j][m]
        regs.append(m)
    return sorted(regs)


def resolve_partitions(graph: OpGraph, cluster, registers, partitions) -> tuple[list[int], str]:
    """(registers, 'explicit' | 'auto') after checking them against graph and cluster."""
    regs = parse_registers(registers, graph)
    if regs is None:
        k = partitions if partitions is not None else len(cluster.devices)
        check_partitions(k, cluster, "partitions")
        if k < 2:
            raise ConfigError("option 'partitions': a pipeline needs at least 2 partitions")
        return auto_registers(lower_training(graph), k, cluster.devices[0]), "auto"
    if partitions is not None and partitions != len(regs) + 1:
        raise ConfigError(f"option 'partitions': {partitions} does not match the "
                          f"{len(regs) + 1} partitions that registers {regs} make")
    check_partitions(len(regs) + 1, cluster)
    return regs, "explicit"


# -- micro-batches ----------------------------------------------------------------------------
def rebatch(graph: OpGraph, batch: int) -> OpGraph:
    """The same forward graph for another batch size (GPipe's micro-batches)."""
    old = graph.batch
    if batch == old:
        return graph

    def shape(s: tuple) -> tuple:
        return (batch, *s[1:]) if s and s[0] == old else s

    def spec(t: TensorSpec) -> TensorSpec:
        return TensorSpec(shape(t.shape), t.dtype_bytes)

    new = OpGraph(graph.name, {**graph.meta, "batch": batch})
    for op in graph.topo():
        attrs = dict(op.attrs)
        # shapes an op keeps besides its tensors': a copy's source layout, a transposed
        # convolution's sizes, a dropout mask drawn per sample (its first dimension the batch)
        for key in ("in_shape", "out_shape", "source_shape", "mask_shape"):
            if key in attrs:
                attrs[key] = shape(tuple(attrs[key]))
        if "batch_rows" in attrs:
            attrs["batch_rows"] = attrs["batch_rows"] * batch // old
        new.add(dataclasses.replace(op, out=spec(op.out), attrs=attrs,
                                    in_specs=tuple(spec(s) for s in op.in_specs)))
    for u, v, data in graph.g.edges(data=True):
        if "tensor" not in data:
            new.add_dependency(u, v)
    return new


# -- the emitter ------------------------------------------------------------------------------
@dataclass
class ScheduleNames:
    """The names of a schedule's unit barriers, by which a run is read back."""
    k: int
    devices: list[str]
    prefix: str = "mb"

    def start(self, p: int, unit: str, mb: int | None) -> str:
        """The zero-time task that opens unit F or B of partition p for minibatch mb."""
        return f"{self.prefix}{mb}/p{p}/{unit}.start"

    def done(self, p: int, unit: str, mb: int | None) -> str:
        """The zero-time barrier that closes it."""
        return f"{self.prefix}{mb}/p{p}/{unit}.done"


class EmitterHooks:
    """What a policy adds to each unit of a PipelineEmitter: extra dependencies of its ops
    (op name -> tasks; `prefix` names the unit's tasks) and the transfer of a tensor that
    crosses partitions, which must end in a task named `name` (its consumers wait for it);
    autocast_copies as emit_ops takes it (False where the policy counts half weights itself);
    reuse_units: every minibatch's unit of a partition from the third on is the second's,
    renamed (replay_unit): nothing but the names differs between them once the host issues
    ahead of the GPU (the first pays its start in emit_ops' launch queue)."""
    autocast_copies = True
    reuse_units = False

    def unit_deps(self, p: int, mb: int, prefix: str) -> dict[str, list[str]]:
        return {}

    def send(self, name: str, src: int, dst: int, nbytes: int, after: str) -> None:
        raise NotImplementedError


class PipelineEmitter:
    """Emits units of one training graph cut into partitions, one partition per device."""

    def __init__(self, tg: TaskGraph, train: OpGraph, cluster, registers: list[int],
                 update_each: bool = True, stash_weights: bool = False,
                 overlap_communication: bool = False, *, part: dict[str, int] | None = None,
                 devices: list | None = None, hooks: "EmitterHooks | None" = None) -> None:
        """part: each op's partition, in place of the registers' (megatron's blocks);
        devices: the device of each partition (default the cluster's first k); hooks: what
        a policy adds to each unit (tensor-parallel collectives, its own transfers)."""
        self.tg, self.train, self.cluster = tg, train, cluster
        self.part = part if part is not None else assign_partitions(train, registers)
        self.k = max(self.part.values()) + 1 if part is not None else len(registers) + 1
        self.devs = devices or [cluster.devices[p] for p in range(self.k)]
        self.hooks = hooks
        self._templates: dict[int, tuple[list[Task], Emitted, str]] = {}
        self._emitted: dict[int, int] = {}
        self.update_each = update_each
        self.stash = stash_weights
        self.overlap = overlap_communication
        ops = train.topo()
        self.fwd = [[o for o in ops if o.phase == "forward" and self.part[o.name] == p]
                    for p in range(self.k)]
        self.bwd = [[o for o in ops if o.phase == "backward" and self.part[o.name] == p]
                    for p in range(self.k)]
        self.upd = [[o for o in ops if o.phase == "update" and self.part[o.name] == p]
                    for p in range(self.k)]
        self.weight_bytes = [sum(o.param_bytes for o in self.fwd[p]) for p in range(self.k)]
        # tensors that cross partitions: (producer op, destination partition)
        self.crossing: list[tuple[str, int]] = []
        for op in ops:
            for src in dict.fromkeys(list(op.inputs) + list(op.saved)):
                if src in self.part and self.part[src] != self.part[op.name]:
                    key = (src, self.part[op.name])
                    if key not in self.crossing:
                        self.crossing.append(key)
        self.names = ScheduleNames(self.k, [d.id for d in self.devs])
        self.mb_prefix = self.names.prefix

    def resident(self) -> dict[str, int]:
        """Weights, gradients and optimizer state of each partition, on its device."""
        state = OPTIMIZER_STATE_PER_PARAM[self.train.meta.get("optimizer", "sgd-momentum")]
        return {d.id: self.weight_bytes[p] * (2 + state) for p, d in enumerate(self.devs)}

    def activation_bytes(self, p: int) -> int:
        """Bytes one minibatch keeps alive between its forward and backward on partition p."""
        saved = {s for o in self.bwd[p] for s in o.saved}
        own = sum(output_bytes(self.train.op(s)) for s in saved if self.part[s] == p)
        received = sum(self.train.op(s).out.nbytes for s, d in self.crossing
                       if d == p and self.train.op(s).phase == "forward")
        return own + received

    def xfer_name(self, mb: int, src: str, dst: int) -> str:
        return f"{self.mb_prefix}{mb}/xfer/{src}->p{dst}"

    def emit_minibatch(self, p: int, mb: int, prev_f: str | None, prev_b: str | None,
                       prev_u: str | None = None) -> None:
        """Forward and backward (and update) units of partition p for minibatch mb.

        prev_f / prev_b: the barrier the F / B unit waits for on this device (None: first)."""
        dev = self.devs[p]
        tg, g = self.tg, self.train
        local = self.fwd[p] + self.bwd[p] + (self.upd[p] if self.update_each else [])
        fset = {o.name for o in self.fwd[p]}
        bset = {o.name for o in local} - fset
        extra: dict[str, list[str]] = {}
        received = 0
        for src, dst in self.crossing:
            if dst != p:
                continue
            xname = self.xfer_name(mb, src, p)
            consumers = [o.name for o in local if src in o.inputs or src in o.saved]
            for c in consumers:
                extra.setdefault(c, []).append(xname)
            received += g.op(src).out.nbytes
        start, bstart = self.names.start(p, "F", mb), self.names.start(p, "B", mb)
        for o in self.fwd[p]:
            if not any(q in fset for q in g.predecessors(o.name)):
                extra.setdefault(o.name, []).append(start)
        for o in local:
            if o.name in bset and not any(q in bset for q in g.predecessors(o.name)):
                extra.setdefault(o.name, []).append(bstart)
        stash = self.weight_bytes[p] if self.stash else 0
        # a stashed weight version lives from the forward to the end of the backward
        tg.new(start, dev.compute, 0.0, deps=[prev_f] if prev_f else [], category="wait",
               device=dev.id, alloc={dev.id: stash} if stash else {},
               meta={"unit": "F", "mb": mb, "partition": p})
        tg.new(bstart, dev.compute, 0.0, deps=[prev_b] if prev_b else [], category="wait",
               device=dev.id, meta={"unit": "B", "mb": mb, "partition": p})
        tag = f"{self.mb_prefix}{mb}/"
        template = self._templates.get(p)
        if template is not None:     # the unit's tasks as the first's, renamed
            em = replay_unit(tg, *template, tag, mb)
        else:
            first = len(tg)
            if self.hooks is not None:
                for name, tasks in self.hooks.unit_deps(p, mb, f"{tag}p{p}/").items():
                    extra.setdefault(name, []).extend(tasks)
            em = emit_ops(tg, g, dev, ops=local, prefix=f"{tag}p{p}/",
                          extra_deps=extra, meta={"mb": mb, "partition": p},
                          autocast_copies=self.hooks is None or self.hooks.autocast_copies)
            # the second, not the first: the first's ops pay the host's start (launch queue)
            self._emitted[p] = self._emitted.get(p, 0) + 1
            if self.hooks is not None and self.hooks.reuse_units and self._emitted[p] == 2:
                self._templates[p] = (tg.tasks[first:], em, tag)
        def succ_in(name, s):
            return any(q in s for q in g.successors(name))
        f_sinks = [em.task_of[n] for n in fset if not succ_in(n, fset)]
        b_sinks = [em.task_of[n] for n in bset if not succ_in(n, bset)]
        fdone, bdone = self.names.done(p, "F", mb), self.names.done(p, "B", mb)
        tg.new(fdone, dev.compute, 0.0, deps=sorted(f_sinks), category="wait", device=dev.id,
               meta={"unit": "F", "mb": mb, "partition": p})
        # received tensors are released when the backward of this minibatch is over
        free = received + stash
        tg.new(bdone, dev.compute, 0.0, deps=sorted(b_sinks), category="wait", device=dev.id,
               free={dev.id: free} if free else {},
               meta={"unit": "B", "mb": mb, "partition": p})
        # outgoing tensors of this partition for this minibatch
        for src, dst in self.crossing:
            if self.part[src] != p:
                continue
            nbytes = g.op(src).out.nbytes
            if self.hooks is not None:
                self.hooks.send(self.xfer_name(mb, src, dst), p, dst, nbytes, em.task_of[src])
                continue
            res, dur = self.cluster.transfer(dev.id, self.devs[dst].id, nbytes)
            if not self.overlap:   # a blocking copy: both devices wait for it
                res = (*res, dev.compute, self.devs[dst].compute)
            tg.new(self.xfer_name(mb, src, dst), res, dur, deps=[em.task_of[src]],
                   category="comm", device=dev.id, alloc={self.devs[dst].id: nbytes},
                   meta={"bytes": nbytes, "mb": mb, "src": p, "dst": dst})

    def emit_updates(self, p: int, deps: list[str], tag: str) -> str:
        """GPipe's flush: one update of partition p after every micro-batch's backward."""
        dev = self.devs[p]
        extra = {o.name: list(deps) for o in self.upd[p]}
        em = emit_ops(self.tg, self.train, dev, ops=self.upd[p], prefix=f"{tag}/p{p}/",
                      extra_deps=extra, track_memory=False, meta={"partition": p})
        done = f"{tag}/p{p}/U.done"
        self.tg.new(done, dev.compute, 0.0, deps=sorted(em.task_of.values()) or list(deps),
                    category="wait", device=dev.id, meta={"unit": "U", "partition": p})
        return done


def replay_unit(tg: TaskGraph, tasks: list[Task], em: Emitted, old: str, new: str,
                mb: int) -> Emitted:
    """Copies of a unit's tasks (and of the tasks its hooks made) for another minibatch: every
    name that starts with the first's prefix `old` takes `new` in its place."""
    n = len(old)

    def rn(name: str) -> str:
        return new + name[n:] if name.startswith(old) else name
    for t in tasks:
        meta = {**t.meta, "mb": mb} if "mb" in t.meta else t.meta
        tg.add(dataclasses.replace(t, name=rn(t.name), deps=tuple(rn(d) for d in t.deps),
                                   meta=meta))
    return Emitted({k: rn(v) for k, v in em.task_of.items()}, em.order)


def emit_sequences(em: PipelineEmitter, sequences: list[list[Unit]]) -> None:
    """Emit every (partition, minibatch) once, chaining units in each device's order."""
    prev_of: dict[tuple[int, str, int | None], str | None] = {}
    for p, seq in enumerate(sequences):
        last = None
        for kind, mb in seq:
            prev_of[(p, kind, mb)] = last
            last = em.names.done(p, kind, mb)
    for p, seq in enumerate(sequences):
        for kind, mb in seq:
            if kind == "F" and mb is not None:
                em.emit_minibatch(p, mb, prev_of[(p, "F", mb)], prev_of[(p, "B", mb)])
