"""`swap`: performance-model-guided swapping of saved activations to host memory.

After "A GPU memory efficient speed-up scheme for training ultra-deep neural networks" (PPoPP
2019 poster; long version AccUDNN). From the op durations and tensor sizes, the planner chooses
which saved activations go to host memory after their forward use and when each comes back
before its backward use, so that the copies run on the copy engines behind compute:

1. fit the memory budget first: for a few orders of the candidates (earliest produced first,
   largest first, best hidden first) take the shortest prefix the performance model
   (_swap_model.py) says fits;
2. then minimise the exposed copy time: among those prefixes, a few longer ones, and a few
   prefetch leads, keep the plan with the shortest predicted step.
Prefetches are issued as late as lets them arrive in time (`alap_triggers`), never before the
backward pass, and those the backward cannot hide one after another as the copy engine frees,
so prefetched bytes, taken when a prefetch is issued, sit on the device briefly; they queue
on one copy stream in the order issued (`prefetches_in_issue_order`). The plan is made for
the graph's minibatch, so every minibatch size gets its own plan. With several devices each
replica runs the plan and gradients are all-reduced in data-parallel's buckets
(_offload.emit_training_step).
"""
from __future__ import annotations

from workloads.training import lower_training

from ..collectives import ALGORITHMS
from ..lowering import emit_ops, held_beyond_tensors_bytes, resident_bytes
from ..tasks import TaskGraph
from . import ConfigError, Option, Policy, register
from ._data_parallel import (
    algorithm_option,
    data_parallel_options,
    default_algorithm,
    record_algorithm,
)
from ._offload import (
    REPLICAS,
    OffloadPlan,
    add_offload_extras,
    check_host_capacity,
    emit_training_step,
    offload_candidates,
    step_ops,
)
from ._runs import run_tasks
from ._swap_model import Prediction, StepModel, alap_triggers, predict

GIB = 2 ** 30
PREFETCH_LEADS = (0.0, 0.5, 1.0, 2.0)   # in copy-times: how early a prefetch aims to arrive

# A plan that fits: its prediction, the trigger position of each offloaded tensor, the lead.
Fitting = tuple[Prediction, dict[str, int], float]


def build_step_model(g, device, cluster, ops) -> StepModel:
    """Durations and lifetimes exactly as emit_ops makes them (a scratch emission)."""
    scratch = TaskGraph("swap-model")
    em = emit_ops(scratch, g, device, ops=ops)
    tasks = [scratch[em.task_of[op.name]] for op in ops]
    link = cluster.host_link
    return StepModel([op.name for op in ops], [t.duration_s for t in tasks],
                     [t.alloc.get(device.id, 0) for t in tasks],
                     [t.free.get(device.id, 0) for t in tasks],
                     resident_bytes(g, True), link.latency_s, link.bandwidth_Bps,
                     next(i for i, op in enumerate(ops) if op.phase != "forward"))


def _orders(model: StepModel, tensors: list) -> dict[str, list]:
    starts = model.start_s

    def hide_ratio(t):   # copy time over the compute it can hide behind (out and back)
        window = starts[t.first_use] - starts[t.swap_out_after]
        return model.copy_s(t.nbytes) / max(window, 1e-12)

    return {"earliest-first": list(tensors),
            "largest-first": sorted(tensors, key=lambda t: (-t.nbytes, t.produced_at)),
            "best-hidden-first": sorted(tensors, key=lambda t: (hide_ratio(t), t.produced_at))}


def plan_swaps(model: StepModel, candidates: dict, budget_bytes: int) -> list[tuple]:
    """Plans the model says fit, best predicted first: (offloaded tensors, trigger position
    per tensor, planner figures)."""
    tensors = list(candidates.values())
    base = predict(model, [], {}, budget_bytes)
    if base.fits:
        return [([], {}, {"predicted_time_s": base.time_s, "predicted_peak_bytes": base.peak_bytes,
                          "order": "none needed"})]
    cache: dict[tuple[str, ...], Fitting | None] = {}

    def best_lead(chosen: list) -> Fitting | None:
        key = tuple(t.name for t in chosen)
        if key not in cache:
            best: Fitting | None = None
            for lead in PREFETCH_LEADS:
                trig = alap_triggers(model, chosen, lead)
                p = predict(model, chosen, trig, budget_bytes)
                if p.fits and (best is None or p.time_s < best[0].time_s):
                    best = (p, trig, lead)
            cache[key] = best
        return cache[key]

    # (predicted time, rank of discovery, *fitting, the tensors chosen, the order's name)
    ranked: list[tuple[float, int, Prediction, dict[str, int], float, list, str]] = []
    for name, order in _orders(model, tensors).items():
        if best_lead(order) is None:
            continue
        lo, hi = 1, len(order)
        while lo < hi:   # the shortest prefix that fits
            mid = (lo + hi) // 2
            if best_lead(order[:mid]) is None:
                lo = mid + 1
            else:
                hi = mid
        step = max(1, len(order) // 16)
        for k in sorted({lo, min(lo + step, len(order)), min(lo + 2 * step, len(order)),
                         min(lo + 4 * step, len(order))}):
            fitting = best_lead(order[:k])
            if fitting is None:   # a longer prefix the model says does not fit
                continue
            p, trig, lead = fitting
            ranked.append((p.time_s, len(ranked), p, trig, lead, order[:k], name))
    ranked.sort(key=lambda r: (r[0], r[1]))
    out = [(chosen, trig, {"predicted_time_s": p.time_s, "predicted_peak_bytes": p.peak_bytes,
                           "predicted_stall_s": p.stall_s, "order": name, "prefetch_lead": lead})
           for _, _, p, trig, lead, chosen, name in ranked]
    if not out:   # nothing fits: offload everything and let the engine report the OOM
        trig = alap_triggers(model, tensors, 0.0)
        p = predict(model, tensors, trig, budget_bytes)
        out.append((tensors, trig, {"predicted_time_s": p.time_s,
                                    "predicted_peak_bytes": p.peak_bytes,
                                    "order": "everything (no plan fits)"}))
    return out


MAX_VERIFIED = 8   # engine runs spent checking the model's best plans


def prefetches_in_issue_order(tg: TaskGraph) -> TaskGraph:
    """Each device's prefetches run one after another in the order they are issued (first
    use), as copies queued on one CUDA stream do, and as the planner's model serves them: a
    prefetch whose swap-out is still under way holds back those issued after it, instead of
    letting a later-needed tensor take the memory an earlier backward op is about to need."""
    last: dict[str | None, str] = {}
    for t in tg:
        if t.meta.get("kind") == "prefetch":
            if t.device in last:
                t.deps = (*t.deps, last[t.device])
            last[t.device] = t.name
    return tg


def pick_verified(plans: list, g, cluster, candidates, ops, budget: int, name: str):
    """The best-predicted plan that also runs in the engine on one device under the budget
    (the model serves copies in a simpler order than the engine, so it can be optimistic)."""
    from ..cluster import Cluster

    one = Cluster([cluster.devices[0]], cluster.link, host=cluster.host,
                  host_link=cluster.host_link)
    offload_plans = [
        OffloadPlan(tuple(t.name for t in sorted(chosen, key=lambda t: t.produced_at)),
                    {t.name: ops[trig[t.name]].name for t in chosen}, figures)
        for chosen, trig, figures in plans[:MAX_VERIFIED]]
    for plan in offload_plans:
        tg = prefetches_in_issue_order(emit_training_step(f"{name}:check", g, one, plan,
                                                          candidates))
        log = run_tasks(tg, one, memory_budget_bytes={one.devices[0].id: budget})
        if log.ok:
            return plan, {**plan.predicted, "verified_time_s": log.makespan_s}
    return offload_plans[0], {**offload_plans[0].predicted, "verified": False}


def budget_for(policy: str, g, device, budget_gib) -> int:
    """The budget in bytes, checked against the device and the resident state."""
    dev_bytes = device.memory_bytes
    budget = dev_bytes if budget_gib is None else int(budget_gib * GIB)
    if budget > dev_bytes:
        raise ConfigError(f"policy {policy!r} option 'budget_gib': {budget / GIB:.2f} GiB "
                          f"exceeds the memory of {device.spec.name} ({dev_bytes / GIB:.2f} GiB)")
    resident = resident_bytes(g, True)
    if resident > budget:
        raise ConfigError(f"policy {policy!r}: a memory budget of {budget / GIB:.2f} GiB cannot "
                          f"hold the weights, gradients and optimizer state "
                          f"({resident / GIB:.2f} GiB): no plan fits; "
                          f"{(resident - budget) / GIB:.2f} GiB short")
    return budget


@register
class Swap(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="swap", training_only=True,
            description="Performance-model-guided swapping of saved activations to host memory "
                        "over PCIe, hidden behind compute (AccUDNN); data parallel on several "
                        "devices.",
            options={
                "budget_gib": Option(None, "device memory budget in GiB (default: the device's "
                                           "memory)", float, lambda v: v > 0, "a number > 0"),
                **data_parallel_options("bucket_mb", "collectives"), "replicas": REPLICAS,
                "algorithm": algorithm_option(ALGORITHMS),
            })

    def plan(self, graph, cluster, training: bool, *, budget_gib: float | None,
             bucket_mb: float, collectives: str | None, replicas: str | None,
             algorithm: str | None) -> TaskGraph:
        g = lower_training(graph)
        dev = cluster.devices[0]
        if cluster.host_link is None:
            raise ConfigError(f"policy {self.name!r} needs a host link (PCIe) on "
                              f"{dev.spec.name}; give host_link")
        budget = budget_for(self.name, g, dev, budget_gib)
        ops = step_ops(g)
        candidates = offload_candidates(g, ops)
        model = build_step_model(g, dev, cluster, ops)
        tensors_budget = budget - held_beyond_tensors_bytes(g, dev, ops)   # context, cache
        plan, figures = pick_verified(plan_swaps(model, candidates, tensors_budget), g,
                                      cluster, candidates, ops, budget, self.name)
        check_host_capacity(cluster, plan, candidates, self.name)
        meta = {"budget_bytes": budget, "offloaded": len(plan.offload),
                "offloaded_bytes": sum(candidates[s].nbytes for s in plan.offload),
                "candidates": len(candidates), **figures}
        return prefetches_in_issue_order(emit_training_step(
            f"swap:{graph.name}", g, cluster, plan, candidates, bucket_mb=bucket_mb,
            collectives=collectives, replicas=replicas, meta={"swap": meta},
            algorithm=algorithm or default_algorithm(cluster)))

    def finalize(self, result, graph, cluster, training: bool, *, budget_gib: float | None,
                 **opts) -> None:
        add_offload_extras(result)
        record_algorithm(result, cluster, opts["algorithm"])
        dev = cluster.devices[0]
        result.extras["swap_budget_gib"] = (budget_gib if budget_gib is not None
                                            else dev.memory_bytes / GIB)
