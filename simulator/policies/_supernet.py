"""What the supernet policies share: reading the search space and the paths of a step, emitting
one training step of a (merged) graph, and exchanging the gradients of supernet weights.

Conventions of the supernet policies:
- the workload is a supernet from the zoo (spos_supernet, spos_cifar): its graph meta carries
  the search space; the policy draws its own paths (`paths`, `seed`) or takes `subnets`;
- the workload batch is the minibatch of ONE subnet; where several GPUs train a subnet in data
  parallel they split it (so per-subnet samples are the same for every policy);
- throughput is samples x subnets trained per second: `samples` counts both.
"""
from __future__ import annotations

from dataclasses import dataclass

from workloads.graph import Op, TensorSpec
from workloads.supernet import SearchSpace, merged_graph, param_key, sample_paths, search_space_of
from workloads.training import OPTIMIZER_STATE_PER_PARAM

from ..collectives import FIDELITIES, collective, framework_launch_s
from ..lowering import emit_ops
from . import ConfigError, Option, Plan

MAX_PATHS = 4096


def parse_subnets(value) -> list[list[int]] | None:
    """'0,1,2,3;3,2,1,0' (paths separated by ';') or a list of lists -> list of paths."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return [list(p) for p in value]
    text = str(value)
    return [[int(c) for c in part.replace(",", " ").split()] for part in text.split(";")
            if part.strip()]


def path_options(default_paths: int) -> dict[str, Option]:
    return {
        "paths": Option(default_paths, "subnets (paths) trained per run", int,
                        lambda v: 1 <= v <= MAX_PATHS, f"an integer 1..{MAX_PATHS}"),
        "seed": Option(0, "seed of the uniform path sampler", int, lambda v: v >= 0,
                       "an integer >= 0"),
        "subnets": Option(None, "explicit paths instead of sampling, e.g. '0,1,2,3;3,2,1,0' "
                                "(one choice per block, ';' between paths)", str),
        "collectives": Option("flow", "'flow' (closed form, the default: fast) or 'link'", str,
                              lambda v: v in FIDELITIES, "link or flow"),
    }


def supernet_space(graph, policy: str) -> SearchSpace:
    space = search_space_of(graph)
    if space is None:
        raise ConfigError(f"policy {policy!r} needs a supernet workload (spos_supernet, "
                          f"spos_cifar); {graph.name!r} has no search space")
    return space


def step_paths(space: SearchSpace, paths: int, seed: int, subnets) -> list[tuple[int, ...]]:
    """The paths of a run: the explicit `subnets` (checked), else `paths` drawn with `seed`."""
    explicit = parse_subnets(subnets)
    if explicit is None:
        return sample_paths(space, paths, seed)
    return [space.check_choices(p, f"option 'subnets' path {k}") for k, p in enumerate(explicit)]


def split_batch(batch: int, ways: int, policy: str, what: str) -> int:
    if batch % ways:
        raise ConfigError(f"policy {policy!r}: the subnet minibatch {batch} does not split "
                          f"evenly over {ways} GPUs ({what})")
    return batch // ways


def emit_fwd_bwd(tg, train, device, prefix: str, after, priority_base: int = 0, meta=None):
    """Forward and backward of `train` on `device`; its first ops wait for the tasks `after`."""
    ops = [op for op in train.topo() if op.phase != "update"]
    roots = {op.name: tuple(after) for op in ops if not train.predecessors(op.name)}
    return emit_ops(tg, train, device, ops=ops, prefix=prefix, extra_deps=roots,
                    priority_base=priority_base, meta=meta)


def weight_gradients(train) -> list[tuple[str, str, int]]:
    """(op name, supernet weight, bytes) of every op making a weight gradient, backward order."""
    return [(op.name, param_key(train, op) or op.name, op.param_bytes)
            for op in train.topo() if op.phase == "backward" and op.params]


def exchange(tg, cluster,
             sets: list[tuple[str, list[str], dict[str, int], dict[str, list[str]]]],
             bucket_bytes: float, fidelity: str, algorithm: str = "ring", priority: int = -1
             ) -> dict[str, list[str]]:
    """All-reduce gradient sets over every GPU, in buckets of about `bucket_bytes`.

    sets: (name, weights in backward order, bytes of each weight, tasks producing them).
    A bucket starts when the producers of its weights are done; a group that did not use a
    weight adds zeros, so one all-reduce over all GPUs (`algorithm`) sums inside and across
    groups at once. Each pays the launch every policy's collectives pay
    (collectives.framework_launch_s).
    Returns, per weight, the tasks its update must wait for."""
    devices = [d.id for d in cluster.devices]
    launch_s = framework_launch_s(cluster)
    done: dict[str, list[str]] = {}
    for set_name, keys, size_of, producers in sets:
        buckets: list[list[str]] = [[]]
        size = 0
        for key in keys:
            if buckets[-1] and size + size_of[key] > bucket_bytes:
                buckets.append([])
                size = 0
            buckets[-1].append(key)
            size += size_of[key]
        for b, bucket in enumerate(bkt for bkt in buckets if bkt):
            deps = sorted({t for key in bucket for t in producers.get(key, ())})
            nbytes = sum(size_of[k] for k in bucket)
            ends = collective("allreduce", tg, cluster, devices, nbytes, deps,
                              f"{set_name}.allreduce.b{b}", fidelity=fidelity, priority=priority,
                              launch_latency_s=launch_s, algorithm=algorithm)
            for key in bucket:
                done.setdefault(key, []).extend(ends[devices[0]])
    return done


def emit_updates(tg, train, device, prefix: str, grad_task: dict[str, str],
                 done: dict[str, list[str]], priority_base: int, extra_params: int = 0,
                 meta=None) -> list[str]:
    """The optimizer update of each weight once its exchange is done; `extra_params` are the
    weights other groups trained this step, which this GPU updates too (one task)."""
    updates = [op for op in train.topo() if op.phase == "update"]
    extra = {}
    for op in updates:
        key = param_key(train, op) or op.inputs[0]
        extra[op.name] = (grad_task[op.inputs[0]], *done.get(key, ()))
    emitted = emit_ops(tg, train, device, ops=updates, prefix=prefix, extra_deps=extra,
                       priority_base=priority_base, track_memory=False, meta=meta)
    names = list(emitted.task_of.values())
    if extra_params:
        dtype = train.input_op.out.dtype_bytes
        op = Op("remote.update", "sgd_update", (), (), TensorSpec((extra_params,), dtype),
                params=extra_params, phase="update")
        waits = sorted({t for ts in done.values() for t in ts})
        names.append(tg.new(f"{prefix}remote.update", device.compute,
                            device.model.op_time_s(op), deps=waits,
                            priority=priority_base + len(updates), category="compute",
                            device=device.id, meta={"op": op.name, "kind": op.kind,
                                                    "phase": "update", **(meta or {})}).name)
    return names


def backward_order(keys_by_group: list[list[str]]) -> list[str]:
    """Weights in the order backward passes make them: head first, then blocks from the last,
    the stem last (within a unit, in the order the groups met them)."""
    seen: dict[str, int] = {}
    for keys in keys_by_group:
        for k in keys:
            seen.setdefault(k, len(seen))

    def rank(key: str) -> int:
        unit = key.split(".", 1)[0]
        if unit == "head":
            return 10 ** 6
        if unit == "stem":
            return -1
        return int(unit[1:].split("c", 1)[0]) if unit.startswith("b") else 0
    return sorted(seen, key=lambda k: (-rank(k), seen[k]))


def supernet_param_bytes(space, dtype_bytes: int = 4) -> int:
    """Bytes of every weight of the supernet (all candidates of every block)."""
    seen: dict[str, int] = {}
    for c in range(space.num_choices):
        g = merged_graph(space, [(c,) * space.num_blocks], 1, dtype_bytes=dtype_bytes)
        for op in g:
            if op.params:
                seen[op.attrs["supernet_param"]] = op.param_bytes
    return sum(seen.values())


def resident_supernet_bytes(space, train, dtype_bytes: int = 4) -> int:
    """The whole supernet's weights and optimizer state, plus the gradients of a step's ops."""
    state = OPTIMIZER_STATE_PER_PARAM[train.meta.get("optimizer", "sgd-momentum")]
    grads = sum(op.param_bytes for op in train.phase("forward"))
    return supernet_param_bytes(space, dtype_bytes) * (1 + state) + grads


@dataclass
class SupernetPlan(Plan):
    """A supernet policy's plan: the search space, the paths the step trains, and figures
    known from planning that the result reports."""
    space: SearchSpace
    paths: tuple[tuple[int, ...], ...]
    figures: dict
