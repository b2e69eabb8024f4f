"""`gpipe`: GPipe (Huang et al., NeurIPS 2019) on the partitions of `pipeline-stale`.

The minibatch (the workload's batch) is split into `micro_batches` equal micro-batches. Every
partition runs the forward of all micro-batches, then their backwards in reverse order, then
one weight update (a synchronous flush): no staleness, but the pipe fills and drains every
iteration (the bubble, (K-1)/(M+K-1) of the time with balanced stages). Every micro-batch's
activations are alive at once on each device. The iteration time is one iteration's makespan.
"""
from __future__ import annotations

from workloads.training import lower_training

from ..tasks import TaskGraph
from . import ConfigError, Option, Policy, register
from ._pipeline import PipelineEmitter, rebatch, resolve_partitions
from ._pipeline_policy import OVERLAP_OPTION, REGISTERS_HELP, PipelinePlan
from ._pipeline_report import in_flight, memory_report, task_times


@register
class GPipe(Policy[PipelinePlan]):
    def __init__(self) -> None:
        super().__init__(
            name="gpipe",
            description="GPipe: micro-batches through K partitions, synchronous flush.",
            options={
                "registers": Option("auto", REGISTERS_HELP),
                "partitions": Option(None, "number of partitions for registers='auto'", int,
                                     lambda v: v >= 1, "an integer >= 1"),
                "micro_batches": Option(4, "micro-batches per minibatch (must divide the "
                                           "batch)", int, lambda v: v >= 1, "an integer >= 1"),
                "overlap_communication": OVERLAP_OPTION,
            }, training_only=True)

    def plan(self, graph, cluster, training: bool, **opts) -> PipelinePlan:
        m = opts["micro_batches"]
        if graph.batch % m:
            raise ConfigError(f"option 'micro_batches': {m} does not divide the batch of "
                              f"{graph.batch}")
        regs, how = resolve_partitions(graph, cluster, opts["registers"], opts["partitions"])
        micro = lower_training(rebatch(graph, graph.batch // m))
        tg = TaskGraph(f"gpipe:{graph.name}", meta={"samples": graph.batch})
        em = PipelineEmitter(tg, micro, cluster, regs, update_each=False,
                             overlap_communication=opts["overlap_communication"])
        tg.meta["resident_bytes"] = em.resident()
        for p in range(em.k):
            # device order: F0..F(m-1), then B(m-1)..B0; the flush follows
            prev_f = [em.names.done(p, "F", i - 1) if i else None for i in range(m)]
            prev_b = [em.names.done(p, "B", i + 1) if i < m - 1
                      else em.names.done(p, "F", m - 1) for i in range(m)]
            for i in range(m):
                em.emit_minibatch(p, i, prev_f[i], prev_b[i])
            em.emit_updates(p, [em.names.done(p, "B", 0)], "flush")
        return PipelinePlan(tg, graph, cluster, training, opts, em, regs, how, m)

    def finish(self, result, plan: PipelinePlan) -> None:
        em, m = plan.emitter, plan.minibatches
        times = task_times(result)
        inflight = in_flight(times, em.names, list(range(m)))
        busy = [sum(times[t.name][1] - times[t.name][0] for t in result.log.tasks
                    if t.category == "compute" and t.device == d) for d in em.names.devices]
        span = result.makespan_s
        result.extras.update({
            "registers": plan.registers, "placement": plan.placement, "partitions": em.k,
            "devices_used": em.names.devices, "micro_batches": m,
            "bubble_fraction": [1.0 - b / span for b in busy] if span > 0 else [],
            "staleness_minibatches": [0] * em.k, "weight_drift_minibatches": [0] * em.k,
            "in_flight_micro_batches": inflight,
            "memory": memory_report(result, em, inflight, [0] * em.k),
        })
