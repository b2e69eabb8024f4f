"""`pipedream`: PipeDream's 1F1B schedule with weight stashing, on the partitions of
`pipeline-stale` (Narayanan et al., SOSP 2019), as the paper's baseline.

Partition p (0-based) of K admits K-p minibatches, then alternates one backward and one forward,
updating its weights after each backward. Each in-flight minibatch keeps the weight version its
forward used (a stashed copy of the partition's weights, held from forward to the end of the
backward), so forward and backward see the same weights: weight drift 0, forward staleness K-1-p.
"""
from __future__ import annotations

from . import Policy, register
from ._pipeline_policy import (
    PipelinePlan,
    pipeline_options,
    pipelined_extras,
    plan_minibatch_pipeline,
)
from ._pipeline_schedules import one_f_one_b_sequences


@register
class PipeDream(Policy[PipelinePlan]):
    def __init__(self) -> None:
        super().__init__(
            name="pipedream",
            description="PipeDream 1F1B pipelining with weight stashing on K partitions.",
            options=pipeline_options(), training_only=True)

    def plan(self, graph, cluster, training: bool, **opts) -> PipelinePlan:
        return plan_minibatch_pipeline("pipedream", graph, cluster, training, opts,
                                       one_f_one_b_sequences, stash_weights=True)

    def finish(self, result, plan: PipelinePlan) -> float:
        extras = pipelined_extras(result, plan, stashed_per_inflight=True)
        # updates do land between a forward and its backward, but the backward runs with the
        # stashed version its forward used: no drift
        extras["updates_during_flight"] = extras["weight_drift_minibatches"]
        extras["weight_drift_minibatches"] = [0] * extras["partitions"]
        result.extras.update(extras)
        return extras["steady_period_s"]
