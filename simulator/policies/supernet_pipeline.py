"""`supernet-pipeline`: a NASPipe-style pipelined supernet trainer (ASPLOS 2022), a baseline.

The supernet's units (stem, the L choice blocks, head) are split into N contiguous stages, one
per GPU, balanced by the time each unit's training ops take on the GPU (mean over candidates),
as a partitioner that profiles the stages would balance them. Subnets enter one after
another, each with the whole minibatch, so several are in flight; stage s runs a subnet's
forward, then (later) its backward and updates. A subnet waits for an earlier one only where
they share a layer: its forward of block i's candidate c waits for the last earlier subnet that
trained that candidate to have updated it (exactly what sequential training would compute).
The stem and head, trained by every subnet, stay on their GPUs; with `strict_fixed_layers`
they count as shared too (every subnet then waits for the previous one's stem update).

Supernet weights (and optimizer state) live in host memory: a subnet's candidate weights for a
stage are copied in (h2d) before its forward there, and copied back (d2h) after its update.
Earlier subnets have priority on every GPU; at most `in_flight` subnets are in the pipeline.
"""
from __future__ import annotations

from workloads.supernet import merged_graph, unit_of
from workloads.training import OPTIMIZER_STATE_PER_PARAM, lower_training

from ..tasks import TaskGraph
from . import ConfigError, Option, Policy, parse_bool, register
from ._supernet import SupernetPlan, path_options, step_paths, supernet_space


def balanced_stages(costs: list[float], stages: int) -> list[int]:
    """Stage of each unit: contiguous runs whose cost is close to total/stages."""
    total = sum(costs)
    out: list[int] = []
    stage, acc = 0, 0.0
    for i, cost in enumerate(costs):
        left_units = len(costs) - i
        # move on when this stage has its share, or the later stages would run out of units
        if out and stage < stages - 1 and (acc + cost / 2 > total * (stage + 1) / stages
                                           or left_units <= stages - 1 - stage):
            stage += 1
        out.append(stage)
        acc += cost
    return out


def unit_costs(space, batch: int, model, dtype_bytes: int = 4) -> tuple[list[str], list[float]]:
    """Units in order (stem, b0..b(L-1), head) and the seconds their forward, backward and
    updates take on `model` at `batch`, mean over candidates: a pipeline partitioner balances
    profiled times, and FLOPs misjudge the memory-bound layers of the early, large maps."""
    units = ["stem"] + [f"b{i}" for i in range(space.num_blocks)] + ["head"]
    sums = dict.fromkeys(units, 0.0)
    for c in range(space.num_choices):
        train = lower_training(merged_graph(space, [(c,) * space.num_blocks], batch,
                                            dtype_bytes=dtype_bytes))
        for op in train:
            sums[_block(unit_of(train, op))] += model.op_time_s(op) / space.num_choices
    return units, [sums[u] for u in units]


@register
class SupernetPipeline(Policy[SupernetPlan]):
    def __init__(self) -> None:
        super().__init__(
            name="supernet-pipeline",
            description="NASPipe-style: supernet stages over GPUs, several subnets in flight, "
                        "waits only on shared layers, weights in host memory.",
            options={
                **path_options(16),
                "in_flight": Option(0, "subnets in the pipeline at once (0: the stage count)",
                                    int, lambda v: v >= 0, "an integer >= 0"),
                "strict_fixed_layers": Option(False, "the stem and head count as shared layers "
                                              "too", parse_bool, expect="true or false"),
            },
            training_only=True)

    def plan(self, graph, cluster, training: bool, **opts) -> SupernetPlan:
        strict_fixed_layers = opts["strict_fixed_layers"]
        space = supernet_space(graph, self.name)
        chosen = step_paths(space, opts["paths"], opts["seed"], opts["subnets"])
        n = len(cluster.devices)
        dtype = graph.input_op.out.dtype_bytes
        units, costs = unit_costs(space, graph.batch, cluster.devices[0].model, dtype)
        if n > len(units):
            raise ConfigError(f"policy {self.name!r}: {n} GPUs is more pipeline stages than "
                              f"the supernet's {len(units)} units (stem, blocks, head)")
        stage_of = dict(zip(units, balanced_stages(costs, n), strict=True))
        window = opts["in_flight"] or n
        state = OPTIMIZER_STATE_PER_PARAM["sgd-momentum"]
        tg = TaskGraph(f"supernet-pipeline:{space.name}",
                       meta={"samples": graph.batch * len(chosen), "iterations": 1,
                             "stage_of_unit": stage_of})
        last_user: dict[str, str] = {}        # candidate -> task: its weights back on the host
        first_task: list[str] = []
        last_bwd_stage0: list[str] = []
        for k, path in enumerate(chosen):
            train = lower_training(merged_graph(space, [path], graph.batch, dtype_bytes=dtype))
            pre = f"k{k}/"
            stage = {op.name: stage_of[_block(unit_of(train, op))] for op in train}
            unit = {op.name: unit_of(train, op) for op in train}
            shared = {u for u in unit.values()
                      if u.startswith("b") or (strict_fixed_layers and u in ("stem", "head"))}
            # Prefetch each shared unit's weights once its previous user has written them back.
            fetched: dict[str, str] = {}
            # by stage, then by name: a set's order follows the hash seed
            for u in sorted(shared, key=lambda u: (stage_of[_block(u)], u)):
                dev = cluster.devices[stage_of[_block(u)]]
                nbytes = sum(op.param_bytes for op in train.phase("forward")
                             if unit[op.name] == u) * (1 + state)
                engine_res, dur = cluster.host_copy(dev.id, nbytes, "h2d")
                deps = [last_user[u]] if u in last_user else []
                fetched[u] = tg.new(f"{pre}h2d.{u}", engine_res, dur, deps=deps, priority=k,
                                    category="copy", device=dev.id,
                                    meta={"bytes": nbytes, "unit": u, "subnet": k}).name
            # Compute: one task per op on its stage's GPU; tensors crossing stages are sent.
            sent: dict[tuple[str, int], str] = {}
            ops = train.topo()
            for i, op in enumerate(ops):
                s = stage[op.name]
                dev = cluster.devices[s]
                deps = []
                for p in train.predecessors(op.name):
                    if stage[p] == s:
                        deps.append(f"{pre}{p}")
                        continue
                    key = (p, s)
                    if key not in sent:
                        res, dur = cluster.transfer(cluster.devices[stage[p]].id, dev.id,
                                                    train.op(p).out.nbytes)
                        sent[key] = tg.new(f"{pre}send.{p}->s{s}", res, dur,
                                           deps=[f"{pre}{p}"], priority=k, category="comm",
                                           device=cluster.devices[stage[p]].id,
                                           meta={"bytes": train.op(p).out.nbytes}).name
                    deps.append(sent[key])
                if op.phase == "forward" and unit[op.name] in fetched:
                    deps.append(fetched[unit[op.name]])
                if op.kind == "input" and k >= window:
                    deps.append(last_bwd_stage0[k - window])
                t = tg.new(f"{pre}{op.name}", dev.compute, dev.model.op_time_s(op), deps=deps,
                           priority=k * 100_000 + i, category="compute", device=dev.id,
                           meta={"op": op.name, "kind": op.kind, "phase": op.phase,
                                 "subnet": k, "stage": s})
                if i == 0:
                    first_task.append(t.name)
            last_bwd_stage0.append(f"{pre}{[op for op in ops if stage[op.name] == 0][-1].name}")
            # Write updated candidate weights back to the host; the next user waits for that.
            # In the prefetches' order: the copy engine serves equal-time copies in the order
            # they were made, which a set's order would leave to the hash seed.
            for u in sorted(shared, key=lambda u: (stage_of[_block(u)], u)):
                dev = cluster.devices[stage_of[_block(u)]]
                upd = [f"{pre}{op.name}" for op in train.phase("update") if unit[op.name] == u]
                nbytes = sum(op.param_bytes for op in train.phase("forward")
                             if unit[op.name] == u) * (1 + state)
                engine_res, dur = cluster.host_copy(dev.id, nbytes, "d2h")
                last_user[u] = tg.new(f"{pre}d2h.{u}", engine_res, dur, deps=upd, priority=k,
                                      category="copy", device=dev.id,
                                      meta={"bytes": nbytes, "unit": u, "subnet": k}).name
        return SupernetPlan(tg, graph, cluster, training, opts, space, tuple(chosen),
                            {"subnets": len(chosen), "stages": n})

    def finish(self, result, plan: SupernetPlan) -> None:
        result.extras.update(plan.figures)
        result.extras["subnets_per_s"] = len(plan.paths) / result.makespan_s


def _block(unit: str) -> str:
    """b3c1 -> b3 (the pipeline places a block, whatever candidate it runs)."""
    return unit.split("c", 1)[0] if unit.startswith("b") else unit
