"""`recompute`: gradient checkpointing (Chen et al. 2016, "Training deep nets with sublinear
memory cost"), a baseline of `swap`.

The forward pass is cut into segments of about sqrt(n) conv/linear layers, at tensors that are
the only thing a later op needs of the earlier ones (so a segment can be re-run from its input
alone). Only segment boundaries are kept for the backward pass; just before the backward ops of
a segment need its activations, its forward ops run again. This is a graph transformation: the
recomputed ops are ordinary ops of the backward phase and the backward ops read their outputs,
so emit_ops frees everything at its last reader with no special case.
"""
from __future__ import annotations

import dataclasses
import math

from workloads.graph import OpGraph
from workloads.training import lower_training

from ..lowering import emit_ops, resident_bytes
from ..tasks import TaskGraph
from . import Option, Plan, Policy, register

SUFFIX = ".recompute"


def boundaries(forward_ops: list) -> list[int]:
    """Positions whose output is all the later ops need of everything up to them."""
    pos = {op.name: i for i, op in enumerate(forward_ops)}
    last_use = {op.name: pos[op.name] for op in forward_ops}
    for i, op in enumerate(forward_ops):
        for t in op.inputs:
            last_use[t] = max(last_use[t], i)
    out = []
    alive: dict[int, int] = {}   # position -> 1 while its output is still needed
    ends: dict[int, list[int]] = {}
    for op in forward_ops:
        ends.setdefault(last_use[op.name], []).append(pos[op.name])
    for i, op in enumerate(forward_ops):
        alive[i] = 1
        for j in ends.get(i, ()):
            if j != i or last_use[op.name] == i:
                alive.pop(j, None)
        if list(alive) == [i]:
            out.append(i)
    return out


def checkpoint_graph(train: OpGraph, segment_layers: int | None = None) -> tuple[OpGraph, int]:
    """The training graph with recomputation; returns it and the number of segments."""
    fwd = [op for op in train.topo() if op.phase == "forward"]
    n_layers = sum(1 for op in fwd if op.layer)
    per = segment_layers or max(1, round(math.sqrt(max(n_layers, 1))))
    cuts, count = [], 0
    cut_ok = set(boundaries(fwd))
    for i, op in enumerate(fwd[:-1]):
        count += 1 if op.layer else 0
        if count >= per and i in cut_ok:
            cuts.append(i)
            count = 0
    segment_of: dict[str, int] = {}
    start = 0
    for s, c in enumerate(cuts):
        for op in fwd[start:c]:        # the cut op itself is kept: it is the next input
            segment_of[op.name] = s
        start = c + 1
    recomputed = {name for name in segment_of if train.op(name).kind != "input"}
    renamed = {name: name + SUFFIX for name in recomputed}
    g = OpGraph(train.name, meta={**train.meta, "recompute_segments": len(cuts)})
    for op in fwd:
        g.add(op)
    inserted: set[int] = set()

    def insert(seg: int) -> None:
        inserted.add(seg)
        for op in fwd:
            if segment_of.get(op.name) == seg and op.name in recomputed:
                g.add(dataclasses.replace(op, name=renamed[op.name], phase="backward",
                                          forward=op.name,
                                          inputs=tuple(renamed.get(t, t) for t in op.inputs)))

    for op in train.topo():
        if op.phase == "forward":
            continue
        reads = (*op.inputs, *op.saved)
        for seg in sorted({segment_of[t] for t in reads if t in recomputed}, reverse=True):
            if seg not in inserted:
                insert(seg)
        new = dataclasses.replace(op, inputs=tuple(renamed.get(t, t) for t in op.inputs),
                                  saved=tuple(renamed.get(t, t) for t in op.saved))
        g.add(new)
        for t in new.saved:
            g.add_dependency(t, new.name)
    return g, len(cuts)


@register
class Recompute(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="recompute", training_only=True,
            description="Gradient checkpointing: keep every ~sqrt(n)-th layer's activation, "
                        "recompute the rest in the backward pass.",
            options={"segment_layers": Option(None, "conv/linear layers per segment (default "
                                                    "round(sqrt(layers)))", int,
                                              lambda v: v >= 1, "an integer >= 1")})

    def plan(self, graph, cluster, training: bool, *, segment_layers) -> TaskGraph:
        g, segments = checkpoint_graph(lower_training(graph), segment_layers)
        dev = cluster.devices[0]
        tg = TaskGraph(f"recompute:{graph.name}",
                       meta={"samples": graph.batch,
                             "resident_bytes": {dev.id: resident_bytes(g, True)}})
        em = emit_ops(tg, g, dev)
        for name, task in em.task_of.items():
            if name.endswith(SUFFIX):
                tg[task].meta["recompute"] = True
        return tg

    def finish(self, result, plan: Plan) -> None:
        rec = [t for t in result.log.tasks if t.meta.get("recompute")]
        result.extras["recomputed_ops"] = len(rec)
        result.extras["recompute_s"] = round(sum(t.duration_s for t in rec), 6)
