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

from workloads.training import lower_training

from ..tasks import TaskGraph
from . import Option, Policy, register
from ._pipeline import (PipelineEmitter, emit_sequences, resolve_partitions,
                        sequential_sequences, stale_sequences)
from ._pipeline_report import completions, task_times
from .pipeline_stale import default_minibatches, pipeline_options, pipelined_extras

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
class Hybrid(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="hybrid",
            description="Pipelined with stale weights for a fraction of the training run, then "
                        "non-pipelined; figures for the whole run (fill and drain included).",
            options=_options(), training_only=True)

    def plan(self, graph, cluster, training: bool, registers="auto", partitions=None,
             minibatches=None, pipelined_fraction=0.5, epochs=164,
             iterations_per_epoch=None, overlap_communication=False) -> TaskGraph:
        regs, _ = resolve_partitions(graph, cluster, registers, partitions)
        k = len(regs) + 1
        n = default_minibatches(k, minibatches)
        tg = TaskGraph(f"hybrid:{graph.name}", meta={"samples": graph.batch})
        em = PipelineEmitter(tg, lower_training(graph), cluster, regs, update_each=True,
                             overlap_communication=overlap_communication)
        tg.meta["resident_bytes"] = em.resident()
        seqs = [a + b for a, b in zip(stale_sequences(k, n),
                                      sequential_sequences(k, n, TAIL_MINIBATCHES))]
        emit_sequences(em, seqs)
        return tg

    def finalize(self, result, graph, cluster, training: bool, registers="auto",
                 partitions=None, minibatches=None, pipelined_fraction=0.5, epochs=164,
                 iterations_per_epoch=None, overlap_communication=False) -> None:
        regs, how = resolve_partitions(graph, cluster, registers, partitions)
        em = PipelineEmitter(TaskGraph(), lower_training(graph), cluster, regs)
        n = default_minibatches(em.k, minibatches)
        pipe = pipelined_extras(result, em, n, regs, how, stashed_per_inflight=False)
        done = completions(task_times(result), em.plan, range(n + TAIL_MINIBATCHES))
        non_pipelined_s = done[-1] - done[-2]
        per_epoch = iterations_per_epoch or math.ceil(CIFAR10_TRAIN_SAMPLES / graph.batch)
        total_iters = epochs * per_epoch
        piped = round(pipelined_fraction * total_iters)
        rest = total_iters - piped
        period = pipe["steady_period_s"]
        # fill and drain are paid once, when the pipelined part exists
        overhead = pipe["fill_s"] + pipe["drain_s"] if piped else 0.0
        total_s = piped * period + overhead + rest * non_pipelined_s
        result.iterations = total_iters
        result.iteration_time_override_s = total_s / total_iters
        result.extras.update(pipe)
        result.extras.update({
            "pipelined_fraction": pipelined_fraction, "epochs": epochs,
            "iterations_per_epoch": per_epoch, "iterations_total": total_iters,
            "pipelined_iterations": piped, "non_pipelined_iterations": rest,
            "non_pipelined_iteration_s": non_pipelined_s, "total_time_s": total_s,
        })
