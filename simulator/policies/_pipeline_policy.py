"""What the pipeline policies (`pipeline-stale`, `pipedream`, `hybrid`, `gpipe`) share as
policies: their options, their plan object, and the figures of a pipelined run."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from workloads.training import lower_training

from ..tasks import TaskGraph
from . import Option, Plan, parse_bool
from ._pipeline import PipelineEmitter, emit_sequences, resolve_partitions
from ._pipeline_report import (
    completions,
    in_flight,
    memory_report,
    stage_compute_s,
    staleness,
    steady_period_s,
    task_times,
)

REGISTERS_HELP = ("layer indices after which a pipeline register cuts the network, e.g. 19 or "
                  "19,37 (conv/linear layers from the input, 1-based), or 'auto' to balance "
                  "stage times over `partitions` devices")

OVERLAP_OPTION = Option(False, "run transfers beside compute (true) or as blocking copies that "
                               "hold both devices (false: a plain PyTorch model-parallel "
                               "implementation, the default)", parse_bool, None, "true or false")


def pipeline_options(extra: dict | None = None) -> dict[str, Option]:
    """The options of a pipeline that runs a stream of minibatches (pipeline-stale, pipedream,
    hybrid), then `extra`."""
    opts = {
        "registers": Option("auto", REGISTERS_HELP),
        "partitions": Option(None, "number of partitions for registers='auto' (default: one "
                                   "per device)", int, lambda v: v >= 1, "an integer >= 1"),
        "minibatches": Option(None, "minibatches simulated (default 4K+4 for K partitions)",
                              int, lambda v: v >= 1, "an integer >= 1"),
        "overlap_communication": OVERLAP_OPTION,
    }
    opts.update(extra or {})
    return opts


def default_minibatches(k: int, given: int | None) -> int:
    return given if given is not None else 4 * k + 4


@dataclass
class PipelinePlan(Plan):
    """A pipeline policy's plan: the emitter that cut the graph into partitions and named the
    units, the registers and how they were placed, and the minibatches simulated."""
    emitter: PipelineEmitter
    registers: list[int]
    placement: str
    minibatches: int


def plan_minibatch_pipeline(name: str, graph, cluster, training: bool, opts: dict,
                            sequences: Callable[[int, int], list], stash_weights: bool = False,
                            tail_minibatches: int = 0) -> PipelinePlan:
    """The plan of a pipeline of whole minibatches, each partition updating its weights after
    each backward (pipeline-stale, pipedream, hybrid): the partitions at the options'
    registers, `minibatches` of them (n) run in the orders sequences(K, n) gives each stage,
    and `tail_minibatches` more that those orders add after them."""
    regs, how = resolve_partitions(graph, cluster, opts["registers"], opts["partitions"])
    k = len(regs) + 1
    n = default_minibatches(k, opts["minibatches"])
    tg = TaskGraph(f"{name}:{graph.name}",
                   meta={"samples": graph.batch, "iterations": n + tail_minibatches})
    em = PipelineEmitter(tg, lower_training(graph), cluster, regs, update_each=True,
                         stash_weights=stash_weights,
                         overlap_communication=opts["overlap_communication"])
    tg.meta["resident_bytes"] = em.resident()
    emit_sequences(em, sequences(k, n))
    return PipelinePlan(tg, graph, cluster, training, opts, em, regs, how, n)


def pipelined_extras(result, plan: PipelinePlan, stashed_per_inflight: bool) -> dict:
    """Period, fill/drain, staleness, in-flight and memory of a pipelined run."""
    em, n = plan.emitter, plan.minibatches
    times = task_times(result)
    names = em.names
    done = completions(times, names, range(n))
    period = steady_period_s(done, names.k)
    window = list(range(min(names.k, n - 1), max(min(names.k, n - 1) + 1, n - 2 * names.k)))
    stale, drift = staleness(times, names, window, n)
    inflight = in_flight(times, names, list(range(n)))
    stashed = inflight if stashed_per_inflight else [0] * names.k
    # fill: the first minibatch's latency beyond one period; drain: what the last completions
    # take beyond whole periods (negative when the draining pipe, with no forwards left, speeds up)
    fill = done[0] - period
    return {
        "registers": plan.registers, "placement": plan.placement, "partitions": names.k,
        "devices_used": names.devices, "minibatches_simulated": n,
        "steady_period_s": period, "first_completion_s": done[0],
        "fill_s": fill, "drain_s": done[-1] - fill - n * period,
        "completion_s": done,
        "stage_compute_s": stage_compute_s(result, names, window[len(window) // 2]),
        "staleness_minibatches": stale, "weight_drift_minibatches": drift,
        "in_flight_minibatches": inflight,
        "memory": memory_report(result, em, inflight, stashed),
    }
