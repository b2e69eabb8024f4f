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

from workloads.training import lower_training

from ..lowering import emit_ops, resident_bytes
from ..tasks import TaskGraph
from . import Option, Plan, Policy, register
from ._recompute import SUFFIX, checkpoint_graph


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
