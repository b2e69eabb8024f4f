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
devices, as in a plain PyTorch implementation; `overlap_communication` runs it beside compute), measured on `minibatches` simulated minibatches; fill and drain
are reported apart in result.extras. So is the staleness: for partition p, the forward of
minibatch i misses the updates of `staleness_minibatches[p]` = 2(K-1-p) earlier minibatches, and
its backward runs with weights `weight_drift_minibatches[p]` updates newer than its forward
(validation/reproduce/pipeline_stale/staleness.py trains with exactly these delays).
"""
from __future__ import annotations

from workloads.training import lower_training

from ..tasks import TaskGraph
from . import Option, Policy, parse_bool, register
from ._pipeline import PipelineEmitter, emit_sequences, resolve_partitions, stale_sequences
from ._pipeline_report import (completions, in_flight, memory_report, staleness,
                               stage_compute_s, steady_period_s, task_times)

REGISTERS_HELP = ("layer indices after which a pipeline register cuts the network, e.g. 19 or "
                  "19,37 (conv/linear layers from the input, 1-based), or 'auto' to balance "
                  "stage times over `partitions` devices")


OVERLAP_OPTION = Option(False, "run transfers beside compute (true) or as blocking copies that "
                               "hold both devices (false: a plain PyTorch model-parallel "
                               "implementation, the default)", parse_bool, None, "true or false")


def pipeline_options(extra: dict | None = None) -> dict[str, Option]:
    opts = {
        "registers": Option("auto", REGISTERS_HELP),
        "partitions": Option(None, "number of partitions for registers='auto' (default: one "
                                   "per device)", int, lambda v: v >= 1, "an integer >= 1"),
        "minibatches": Option(None, "minibatches simulated (default 4K+4 for K partitions)",
                              int, lambda v: v >= 1, "an integer >= 1"),
    }
    opts["overlap_communication"] = OVERLAP_OPTION
    opts.update(extra or {})
    return opts


def default_minibatches(k: int, given: int | None) -> int:
    return given if given is not None else 4 * k + 4


def pipelined_extras(result, em: PipelineEmitter, n: int, registers: list[int], how: str,
                     stashed_per_inflight: bool) -> dict:
    """Period, fill/drain, staleness, in-flight and memory of a pipelined run."""
    times = task_times(result)
    plan = em.plan
    done = completions(times, plan, range(n))
    period = steady_period_s(done, plan.k)
    window = list(range(min(plan.k, n - 1), max(min(plan.k, n - 1) + 1, n - 2 * plan.k)))
    stale, drift = staleness(times, plan, window, n)
    inflight = in_flight(times, plan, list(range(n)))
    stashed = inflight if stashed_per_inflight else [0] * plan.k
    # fill: the first minibatch's latency beyond one period; drain: what the last completions
    # take beyond whole periods (negative when the draining pipe, with no forwards left, speeds up)
    fill = done[0] - period
    return {
        "registers": registers, "placement": how, "partitions": plan.k,
        "devices_used": plan.devices, "minibatches_simulated": n,
        "steady_period_s": period, "first_completion_s": done[0],
        "fill_s": fill, "drain_s": done[-1] - fill - n * period,
        "completion_s": done,
        "stage_compute_s": stage_compute_s(result, plan, window[len(window) // 2]),
        "staleness_minibatches": stale, "weight_drift_minibatches": drift,
        "in_flight_minibatches": inflight,
        "memory": memory_report(result, em, inflight, stashed),
    }


@register
class PipelineStale(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="pipeline-stale",
            description="Pipelined training with stale weights: K partitions at pipeline "
                        "registers, 2K stages, a new minibatch every cycle, no micro-batches, "
                        "no weight stashing.",
            options=pipeline_options(), training_only=True)

    def plan(self, graph, cluster, training: bool, registers="auto", partitions=None,
             minibatches=None, overlap_communication=False) -> TaskGraph:
        regs, how = resolve_partitions(graph, cluster, registers, partitions)
        train = lower_training(graph)
        k = len(regs) + 1
        n = default_minibatches(k, minibatches)
        tg = TaskGraph(f"pipeline-stale:{graph.name}",
                       meta={"samples": graph.batch, "iterations": n})
        em = PipelineEmitter(tg, train, cluster, regs, update_each=True,
                             overlap_communication=overlap_communication)
        tg.meta["resident_bytes"] = em.resident()
        emit_sequences(em, stale_sequences(k, n))
        return tg

    def finalize(self, result, graph, cluster, training: bool, registers="auto",
                 partitions=None, minibatches=None, overlap_communication=False) -> None:
        # the plan is deterministic: rebuild its names rather than keep state between calls
        regs, how = resolve_partitions(graph, cluster, registers, partitions)
        em = PipelineEmitter(TaskGraph(), lower_training(graph), cluster, regs)
        n = default_minibatches(em.k, minibatches)
        extras = pipelined_extras(result, em, n, regs, how, stashed_per_inflight=False)
        result.extras.update(extras)
        result.iteration_time_override_s = extras["steady_period_s"]
