"""`pipeline-stale`: pipelined training with stale weights (Zhang & Abdelrahman, arXiv 1912.12675).

Pipeline registers after given layers (conv and fully connected layers counted 1-based from the
input: `--registers 19` or `19,37`; see _pipeline.py) cut the network into K partitions, one per
device. Forward F1..FK and backward BK..B1 are 2K stages; a new minibatch enters every cycle,
with no micro-batches and no weight stashing. Every stage takes one cycle: in cycle c device p
(0-based) runs the backward of minibatch c-(2K-1-p) and then the forward of minibatch c-p, and
updates its weights after each backward. Activations and gradients cross devices as transfer
tasks on the links, beside compute.

The steady-state iteration time is the period between consecutive minibatch completions once
the pipe is full (the cycle time: the slowest device's forward + backward + update plus any
communication it cannot hide: by default a transfer is a blocking copy that holds both
devices, as in a plain PyTorch implementation; `overlap_communication` runs it beside compute),
measured on `minibatches` simulated minibatches; fill and drain are reported apart in
result.extras. So is the staleness: for partition p, the forward of minibatch i misses the
updates of `staleness_minibatches[p]` = 2(K-1-p) earlier minibatches, and its backward runs with
weights `weight_drift_minibatches[p]` updates newer than its forward
(validation/reproduce/pipeline_stale/staleness.py trains with exactly these delays).
"""
from __future__ import annotations

from . import Policy, register
from ._pipeline_policy import (
    PipelinePlan,
    pipeline_options,
    pipelined_extras,
    plan_minibatch_pipeline,
)
from ._pipeline_schedules import stale_sequences


@register
class PipelineStale(Policy[PipelinePlan]):
    def __init__(self) -> None:
        super().__init__(
            name="pipeline-stale",
            description="Pipelined training with stale weights: K partitions at pipeline "
                        "registers, 2K stages, a new minibatch every cycle, no micro-batches, "
                        "no weight stashing.",
            options=pipeline_options(), training_only=True)

    def plan(self, graph, cluster, training: bool, **opts) -> PipelinePlan:
        return plan_minibatch_pipeline("pipeline-stale", graph, cluster, training, opts,
                                       stale_sequences)

    def finish(self, result, plan: PipelinePlan) -> float:
        extras = pipelined_extras(result, plan, stashed_per_inflight=False)
        result.extras.update(extras)
        return extras["steady_period_s"]
