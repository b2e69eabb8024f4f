"""Which replicas a data-parallel step simulates, and how its collectives are built, when the
options leave it open: one rule for the policies with a `replicas` option that simulate by
symmetry class (data-parallel, fsdp).

`replicas = "classes"` simulates one replica per symmetry class (collectives.py, "Symmetry"):
on a cluster that maps onto itself when devices move t places along, devices i and i + t do
the same thing at the same times, so the first t stand for the rest and the report is
'all''s, figure for figure (tests/simulator/test_replicas_classes.py). That holds where
  - the cluster has a period (identical devices and nodes, no jitter, no straggler), the
    ranks compute alike (no rank_spread), and
  - every collective of the step is built by class: rings, NCCL's rings per NIC and the
    hierarchical all-reduce are, and Gloo's halving-doubling across nodes stands for every
    class (built in full, every node doing the same at the same times). NCCL's trees are
    not (a root, leaves, the child a port serves first: no class stands for the others): a
    step with one has no class but each device, and 'classes' simulates every replica.
Flow-level collectives wait for every replica at once, so there 'classes' is one replica of
each kind of device (data_parallel.py).

Defaults: 'classes' wherever the devices are alike, at every size ('all' where they are not:
jitter, stragglers, rank_spread); link-level collectives up to LINK_ALL_MAX_DEVICES devices and
at any size where the step is built by class, flow-level beyond where it is not (every replica
link by link costs the square of the device count: a ring makes 2(p-1) steps of p transfers).
"""
from __future__ import annotations

from .. import nccl_fabric, nccl_tuning, symmetry

# Beyond this many devices a step built replica by replica is not the default: its rings'
# tasks grow with the square of the count (64 GPUs: about a million tasks, 20 s and 1 GB for
# data-parallel GPT-2; benchmarks/scale_bench.py measures it)
LINK_ALL_MAX_DEVICES = 64


def alike(cluster, rank_spread: float = 0.0) -> bool:
    """Whether every device behaves as its symmetry class's representative: a cluster with a
    period (Cluster.symmetry_period) and ranks that compute alike."""
    return cluster.symmetry_period() is not None and not rank_spread


def builds_by_class(cluster, algorithm: str, allreduce_bytes) -> bool:
    """Whether all-reduces of these sizes over the whole cluster under `algorithm` are built
    by symmetry class, exactly (module notes): not on NCCL's trees (where 'tree' or 'nccl'
    puts them there)."""
    if cluster.symmetry_period() is None:
        return False
    if algorithm not in ("tree", "nccl"):
        return True
    fabric = nccl_fabric.fabric_of(cluster, [d.id for d in cluster.devices])
    allowed = ("tree",) if algorithm == "tree" else nccl_tuning.ALGORITHMS
    return all(nccl_tuning.choose(fabric, nbytes, allowed).algorithm != "tree"
               for nbytes in allreduce_bytes if nbytes > 0)


def default_fidelity(cluster, collectives: str | None, by_class: bool = False) -> str:
    """The collectives' fidelity: the one given, else link-level up to LINK_ALL_MAX_DEVICES
    devices or where the step is built by class, and flow-level beyond."""
    if collectives:
        return collectives
    return "link" if len(cluster.devices) <= LINK_ALL_MAX_DEVICES or by_class else "flow"


def choose(cluster, collectives: str | None, replicas: str | None,
           rank_spread: float = 0.0) -> tuple[str, str]:
    """(fidelity, replicas) to plan with first: the options given, else the defaults
    (module notes), taking the step to be built by class; see `without_classes`."""
    same = alike(cluster, rank_spread)
    fidelity = default_fidelity(cluster, collectives, same)
    if replicas is None:
        jitter = any(d.jitter is not None for d in cluster.devices)
        replicas = ("classes" if same else "all") if fidelity == "link" else \
            ("all" if jitter else "classes")
    return fidelity, replicas


def without_classes(cluster, collectives: str | None, replicas: str | None
                    ) -> tuple[str, str]:
    """(fidelity, replicas) for a step planned link-level by class whose collectives are not
    built by class: every replica link by link where asked for or up to LINK_ALL_MAX_DEVICES
    devices, else flow-level collectives (one replica of each kind of device, the
    devices being alike)."""
    if default_fidelity(cluster, collectives) == "link":
        return "link", "all"
    return "flow", replicas or "classes"


def resolve(cluster, collectives: str | None, replicas: str | None, by_class: bool,
            rank_spread: float = 0.0) -> tuple[str, str]:
    """(fidelity, replicas) for a step known before planning to build its collectives by
    class or not (`by_class`)."""
    fidelity, chosen = choose(cluster, collectives, replicas, rank_spread)
    if chosen == "classes" and fidelity == "link" and not (by_class and
                                                           alike(cluster, rank_spread)):
        return without_classes(cluster, collectives, replicas)
    return fidelity, chosen


def class_meta(cluster, period: int) -> dict[str, dict]:
    """What a run built by symmetry class `period` records for its figures to name every
    device and resource (results.Result): who stands for whom (represented_by), and the
    resources every class's traffic crosses, each with how many classes' share it carries
    in full (symmetry.shared_by_classes: a rail's uplinks)."""
    return {"represented_by": represented_by(cluster, period),
            "class_copies": symmetry.shared_by_classes(cluster, period)}


def represented_by(cluster, period: int) -> dict[str, str]:
    """Each device and resource not built under symmetry class `period` -> the one that
    stands for it (device i for i + m * period; Cluster.representative_resources): the
    run's per-device and per-resource figures name every one (results.Result)."""
    ids = [d.id for d in cluster.devices]
    out = {d: ids[i % period] for i, d in enumerate(ids) if i >= period}
    out.update((r, rep) for r, rep in cluster.representative_resources(period).items()
               if r != rep)
    return out
