"""`hybrid`: pipelined training with stale weights for the first `pipelined_fraction` of the
run, then non-pipelined training to recover accuracy (arXiv 1912.12675, section on hybrid).

The figures cover the whole training run of `epochs` x `iterations_per_epoch` minibatches:
the pipelined part costs its fill, its steady-state period per minibatch and its drain; the
non-pipelined part keeps the same partitions on the same devices (the paper's implementation
switches the pipeline off rather than moving the model) and runs one minibatch at a time, with
the activations and gradients still crossing the links. Both parts are simulated in one task
graph (`minibatches` pipelined, then 2 non-pipelined) and extrapolated to the run; the result's
iteration time is the run's time over its iterations.
"""
from __future__ import annotations

import math

from . import Option, Policy, register
from ._pipeline_policy import (
    PipelinePlan,
    pipeline_options,
    pipelined_extras,
    plan_minibatch_pipeline,
)
from ._pipeline_report import completions, task_times
from ._pipeline_schedules import sequential_sequences, stale_sequences

CIFAR10_TRAIN_SAMPLES = 50_000
TAIL_MINIBATCHES = 2


def _options() -> dict[str, Option]:
    return pipeline_options({
        "pipelined_fraction": Option(0.5, "fraction of the run's iterations that are pipelined",
                                     float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]"),
        "epochs": Option(164, "epochs of the training run (164: He et al.'s CIFAR schedule)",
                         int, lambda v: v >= 1, "an integer >= 1"),
        "iterations_per_epoch": Option(None, "minibatches per epoch (default: CIFAR-10's 50,000 "
                                             "samples / batch, rounded up)", int,
                                       lambda v: v >= 1, "an integer >= 1"),
    })


@register
class Hybrid(Policy[PipelinePlan]):
    def __init__(self) -> None:
        super().__init__(
            name="hybrid",
            description="Pipelined with stale weights for a fraction of the training run, then "
                        "non-pipelined; figures for the whole run (fill and drain included).",
            options=_options(), training_only=True)

    def plan(self, graph, cluster, training: bool, **opts) -> PipelinePlan:
        def sequences(k: int, n: int) -> list:
            return [a + b for a, b in zip(stale_sequences(k, n),
                                          sequential_sequences(k, n, TAIL_MINIBATCHES),
                                          strict=True)]
        return plan_minibatch_pipeline("hybrid", graph, cluster, training, opts, sequences,
                                       tail_minibatches=TAIL_MINIBATCHES)

    def finish(self, result, plan: PipelinePlan) -> float:
        opts, n = plan.options, plan.minibatches
        pipe = pipelined_extras(result, plan, stashed_per_inflight=False)
        done = completions(task_times(result), plan.emitter.names, range(n + TAIL_MINIBATCHES))
        non_pipelined_s = done[-1] - done[-2]
        per_epoch = (opts["iterations_per_epoch"]
                     or math.ceil(CIFAR10_TRAIN_SAMPLES / plan.graph.batch))
        total_iters = opts["epochs"] * per_epoch
        piped = round(opts["pipelined_fraction"] * total_iters)
        rest = total_iters - piped
        period = pipe["steady_period_s"]
        # fill and drain are paid once, when the pipelined part exists
        overhead = pipe["fill_s"] + pipe["drain_s"] if piped else 0.0
        total_s = piped * period + overhead + rest * non_pipelined_s
        result.extras.update(pipe)
        result.extras.update({
            "pipelined_fraction": opts["pipelined_fraction"], "epochs": opts["epochs"],
            "iterations_per_epoch": per_epoch, "iterations_total": total_iters,
            "pipelined_iterations": piped, "non_pipelined_iterations": rest,
            "non_pipelined_iteration_s": non_pipelined_s, "total_time_s": total_s,
        })
        return total_s / total_iters
