"""Gradient checkpointing as a graph transformation (Chen et al. 2016), shared by the
`recompute` policy (segments of about sqrt(n) layers) and `megatron` (one segment per
transformer block: Megatron's --recompute-granularity full).

Only segment boundaries are kept for the backward pass; just before the backward ops of a
segment need its activations, its forward ops run again, as ordinary ops of the backward phase
named `<op>.recompute`, so emit_ops frees everything at its last reader with no special case.
"""
from __future__ import annotations

import dataclasses
import math

from workloads.graph import OpGraph

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


def checkpoint_graph(train: OpGraph, segment_layers: int | None = None,
                     cut_after: set[str] | None = None) -> tuple[OpGraph, int]:
    """The training graph with recomputation; returns it and the number of segments.
    Segments close after `segment_layers` conv/linear layers (default about sqrt(n)), or,
    given `cut_after`, at those forward ops (each must be a boundary)."""
    fwd = [op for op in train.topo() if op.phase == "forward"]
    n_layers = sum(1 for op in fwd if op.layer)
    per = segment_layers or max(1, round(math.sqrt(max(n_layers, 1))))
    cuts, count = [], 0
    cut_ok = set(boundaries(fwd))
    for i, op in enumerate(fwd[:-1]):
        count += 1 if op.layer else 0
        if cut_after is not None:
            if op.name in cut_after and i in cut_ok:
                cuts.append(i)
        elif count >= per and i in cut_ok:
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
