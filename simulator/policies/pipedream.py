"""`pipedream`: PipeDream's 1F1B schedule with weight stashing, on the partitions of
`pipeline-stale` (Narayanan et al., SOSP 2019), as the paper's baseline.

Partition p (0-based) of K admits K-p minibatches, then alternates one backward and one forward,
updating its weights after each backward. Each in-flight minibatch keeps the weight version its
forward used (a stashed copy of the partition's weights, held from forward to the end of the
backward), so forward and backward see the same weights: weight drift 0, forward staleness K-1-p.
"""
from __future__ import annotations

from workloads.training import lower_training

from ..tasks import TaskGraph
from . import Policy, register
from ._pipeline import PipelineEmitter, emit_sequences, one_f_one_b_sequences, resolve_partitions
from ._pipeline_policy import PipelinePlan, default_minibatches, pipeline_options, pipelined_extras


@register
class PipeDream(Policy[PipelinePlan]):
    def __init__(self) -> None:
        super().__init__(
            name="pipedream",
            description="PipeDream 1F1B pipelining with weight stashing on K partitions.",
            options=pipeline_options(), training_only=True)

    def plan(self, graph, cluster, training: bool, **opts) -> PipelinePlan:
        regs, how = resolve_partitions(graph, cluster, opts["registers"], opts["partitions"])
        k = len(regs) + 1
        n = default_minibatches(k, opts["minibatches"])
        tg = TaskGraph(f"pipedream:{graph.name}", meta={"samples": graph.batch, "iterations": n})
        em = PipelineEmitter(tg, lower_training(graph), cluster, regs, update_each=True,
                             stash_weights=True,
                             overlap_communication=opts["overlap_communication"])
        tg.meta["resident_bytes"] = em.resident()
        emit_sequences(em, one_f_one_b_sequences(k, n))
        return PipelinePlan(tg, graph, cluster, training, opts, em, regs, how, n)

    def finish(self, result, plan: PipelinePlan) -> float:
        extras = pipelined_extras(result, plan, stashed_per_inflight=True)
        # updates do land between a forward and its backward, but the backward runs with the
        # stashed version its forward used: no drift
        extras["updates_during_flight"] = extras["weight_drift_minibatches"]
        extras["weight_drift_minibatches"] = [0] * extras["partitions"]
        result.extras.update(extras)
        return extras["steady_period_s"]
