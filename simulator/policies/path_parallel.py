"""`path-parallel`: several subnets per step, one set per group of GPUs (HPCA 2023, "Efficient
Supernet Training Using Path Parallelism").

The N GPUs form G groups of g (G x g = N). The step's P paths are sorted (so that paths with
long common prefixes land together) and dealt to the groups in contiguous runs; a group trains
its paths on the same minibatch, split over its g GPUs (data parallel inside a group).

- merge_compute: a group's paths form a prefix tree: a common prefix of identical choices is
  computed once and fanned out, its gradient summed at the fork (off: each path on its own).
- merge_gradients: each supernet weight used this step is exchanged once, its gradients from
  every path and group already combined (off: one exchange per path, so a weight shared by k
  paths - the stem and head always are - crosses the network k times).
- groups / gpus_per_group: 0 searches every (G, g) with G <= P that splits the minibatch and
  keeps the fastest step (the search runs the engine once per candidate).

Every GPU holds the whole supernet, so every weight trained in the step is all-reduced over all
N GPUs (one ring sums inside and across groups) and every GPU applies every update. GPUs of a
group run in lockstep: one per group is simulated, the collectives span every GPU.
"""
from __future__ import annotations

from workloads.supernet import merged_graph
from workloads.training import lower_training

from ..tasks import TaskGraph
from . import ConfigError, Option, Policy, parse_bool, register
from ._data_parallel import algorithm_option, default_algorithm, record_algorithm
from ._runs import run_tasks
from ._supernet import (
    SupernetPlan,
    backward_order,
    emit_fwd_bwd,
    emit_updates,
    exchange,
    path_options,
    resident_supernet_bytes,
    split_batch,
    step_paths,
    supernet_space,
    weight_gradients,
)


def assign_paths(paths: list[tuple[int, ...]], groups: int) -> list[list[tuple[int, ...]]]:
    """Sorted paths dealt to `groups` groups in contiguous runs (sizes differ by at most one)."""
    ordered = sorted(paths)
    base, extra = divmod(len(ordered), groups)
    out, start = [], 0
    for j in range(groups):
        size = base + (1 if j < extra else 0)
        out.append(ordered[start:start + size])
        start += size
    return out


def candidate_shapes(n: int, paths: int, batch: int) -> list[tuple[int, int]]:
    """(G, g) pairs to search: G x g = n, G <= paths, g divides the minibatch."""
    return [(n // g, g) for g in range(1, n + 1)
            if n % g == 0 and n // g <= paths and batch % g == 0]


def group_graphs(space, paths, groups: int, batch: int, merge: bool, dtype: int):
    """Per group: its paths and the training graph of its (merged or separate) paths."""
    return [(members, lower_training(merged_graph(space, members, batch, dtype_bytes=dtype,
                                                  merge=merge)))
            for members in assign_paths(paths, groups)]


def step_stats(space, paths, groups: int, gpus_per_group: int, batch: int, merge_compute: bool,
               merge_gradients: bool, dtype: int = 4) -> dict:
    """FLOPs of the step (all GPUs) and gradient bytes exchanged, with and without merging."""
    per_gpu = batch // gpus_per_group
    out = {}
    for label, merge in (("merged", True), ("separate", False)):
        flops = 0.0
        for _, train in group_graphs(space, paths, groups, per_gpu, merge, dtype):
            flops += train.flops() * gpus_per_group
        out[f"flops_{label}"] = flops
    sizes: dict[str, int] = {}
    per_path = 0
    for path in paths:
        train = lower_training(merged_graph(space, [path], 1, dtype_bytes=dtype))
        for _, key, nbytes in weight_gradients(train):
            sizes[key] = nbytes
            per_path += nbytes
    out["gradient_bytes_merged"] = float(sum(sizes.values()))
    out["gradient_bytes_separate"] = float(per_path)
    out["step_flops"] = out["flops_merged" if merge_compute else "flops_separate"]
    out["gradient_bytes"] = out["gradient_bytes_merged" if merge_gradients
                                else "gradient_bytes_separate"]
    out["flops_saved"] = out["flops_separate"] - out["step_flops"]
    out["gradient_bytes_saved"] = out["gradient_bytes_separate"] - out["gradient_bytes"]
    return out


@register
class PathParallel(Policy[SupernetPlan]):
    def __init__(self) -> None:
        super().__init__(
            name="path-parallel",
            description="P subnets per step on G groups of g GPUs, with merged prefix "
                        "computation and merged gradient exchange; (G, g) searched.",
            options={
                **path_options(4),
                "groups": Option(0, "G, groups of GPUs (0: search)", int, lambda v: v >= 0,
                                 "an integer >= 0"),
                "gpus_per_group": Option(0, "g, GPUs per group (0: search)", int,
                                         lambda v: v >= 0, "an integer >= 0"),
                "merge_compute": Option(True, "compute a group's common path prefixes once",
                                        parse_bool, expect="true or false"),
                "merge_gradients": Option(True, "exchange each shared weight once per step",
                                          parse_bool, expect="true or false"),
                "bucket_mb": Option(25.0, "gradient bucket size in MB", float,
                                    lambda v: v > 0, "a number > 0"),
                "algorithm": algorithm_option(),
            },
            training_only=True)

    # -- configuration ----------------------------------------------------------------------
    def shapes(self, n: int, paths: int, batch: int, groups: int, gpus_per_group: int):
        if paths > n:
            raise ConfigError(f"policy {self.name!r} option 'paths': {paths} paths need at least "
                              f"{paths} GPUs (one group each); the cluster has {n}")
        if groups and gpus_per_group:
            if groups * gpus_per_group != n:
                raise ConfigError(f"policy {self.name!r}: groups x gpus_per_group = {groups} x "
                                  f"{gpus_per_group} = {groups * gpus_per_group}, not the "
                                  f"cluster's {n} GPUs")
        elif groups or gpus_per_group:
            given, name = (groups, "groups") if groups else (gpus_per_group, "gpus_per_group")
            if n % given:
                raise ConfigError(f"policy {self.name!r} option {name!r}: {given} does not "
                                  f"divide the cluster's {n} GPUs")
            groups, gpus_per_group = (given, n // given) if groups else (n // given, given)
        else:
            found = candidate_shapes(n, paths, batch)
            if not found:
                raise ConfigError(f"policy {self.name!r}: no (groups, gpus_per_group) with "
                                  f"groups <= {paths} paths splits the minibatch {batch} "
                                  f"over {n} GPUs")
            return found
        if groups > paths:
            raise ConfigError(f"policy {self.name!r} option 'groups': {groups} groups for "
                              f"{paths} paths leaves groups idle; use at most {paths}")
        split_batch(batch, gpus_per_group, self.name, f"{gpus_per_group} GPUs per group")
        return [(groups, gpus_per_group)]

    # -- planning ---------------------------------------------------------------------------
    def plan(self, graph, cluster, training: bool, **opts) -> SupernetPlan:
        space = supernet_space(graph, self.name)
        chosen = step_paths(space, opts["paths"], opts["seed"], opts["subnets"])
        n = len(cluster.devices)
        shapes = self.shapes(n, len(chosen), graph.batch, opts["groups"],
                             opts["gpus_per_group"])
        plans = [self._plan_shape(graph, space, chosen, cluster, G, g, opts["merge_compute"],
                                  opts["merge_gradients"], opts["bucket_mb"],
                                  opts["collectives"],
                                  opts["algorithm"] or default_algorithm(cluster))
                 for G, g in shapes]
        figures: dict = {}
        best = 0
        if len(plans) > 1:
            table = []
            for (G, g), tg in zip(shapes, plans, strict=True):
                log = run_tasks(tg, cluster)
                table.append({"groups": G, "gpus_per_group": g,
                              "step_s": log.makespan_s if log.ok else None})
            # The fastest shape that fits in memory (if none fits, the first: its run reports
            # the OOM).
            best = min(range(len(plans)), key=lambda i: (table[i]["step_s"] is None,
                                                         table[i]["step_s"] or 0.0, i))
            figures["search"] = table
        G, g = shapes[best]
        stats = step_stats(space, chosen, G, g, graph.batch, opts["merge_compute"],
                           opts["merge_gradients"], graph.input_op.out.dtype_bytes)
        figures = {"groups": G, "gpus_per_group": g, "subnets": len(chosen), **stats,
                   **figures}
        return SupernetPlan(plans[best], graph, cluster, training, opts, space, tuple(chosen),
                            figures)

    def _plan_shape(self, graph, space, chosen, cluster, G: int, g: int, merge_compute: bool,
                    merge_gradients: bool, bucket_mb: float, fidelity: str,
                    algorithm: str) -> TaskGraph:
        dtype = graph.input_op.out.dtype_bytes
        per_gpu = graph.batch // g
        tg = TaskGraph(f"path-parallel:{space.name}:G{G}xg{g}",
                       meta={"samples": graph.batch * len(chosen), "iterations": 1})
        leaders = [cluster.devices[j * g] for j in range(G)]
        groups = group_graphs(space, chosen, G, per_gpu, merge_compute, dtype)
        emitted, keys_by_group = [], []
        size_of: dict[str, int] = {}
        producers: dict[str, list[str]] = {}
        for j, ((_, train), dev) in enumerate(zip(groups, leaders, strict=True)):
            meta = {"group": j, "groups": G, "gpus_per_group": g}
            fb = emit_fwd_bwd(tg, train, dev, f"g{j}/", (), meta=meta)
            emitted.append(fb)
            grads = weight_gradients(train)
            keys_by_group.append([key for _, key, _ in grads])
            for name, key, nbytes in grads:
                size_of[key] = nbytes
                producers.setdefault(key, []).append(fb.task_of[name])
        order = backward_order(keys_by_group)
        if merge_gradients:
            sets = [("union", order, size_of, producers)]
        else:   # one exchange per path, of every weight the path uses
            sets = []
            for j, (members, _) in enumerate(groups):
                for k, path in enumerate(members):
                    used = [key for key in order if _path_uses(key, path)]
                    mine = {key: [t for t in producers[key] if t.startswith(f"g{j}/")]
                            for key in used}
                    sets.append((f"g{j}.path{k}", used, size_of, mine))
        done = exchange(tg, cluster, sets, bucket_mb * 1e6, fidelity, algorithm)
        resident = {}
        for j, ((_, train), dev, fb) in enumerate(zip(groups, leaders, emitted, strict=True)):
            own = set(keys_by_group[j])
            remote = sum(size_of[k] for k in order if k not in own) // dtype
            emit_updates(tg, train, dev, f"g{j}/", fb.task_of, done, len(fb.order),
                         extra_params=remote, meta={"group": j, "groups": G,
                                                    "gpus_per_group": g})
            resident[dev.id] = resident_supernet_bytes(space, train, dtype)
        tg.meta["resident_bytes"] = resident
        return tg

    def finish(self, result, plan: SupernetPlan) -> None:
        result.extras.update(plan.figures)
        result.extras["subnets_per_s"] = len(plan.paths) / result.makespan_s
        record_algorithm(result, plan.cluster, plan.options["algorithm"])


def _path_uses(key: str, path: tuple[int, ...]) -> bool:
    unit = key.split(".", 1)[0]
    if unit in ("stem", "head"):
        return True
    block, choice = unit[1:].split("c")
    return path[int(block)] == int(choice)
