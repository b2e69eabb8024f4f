"""Symmetric (one device per class) link-level collectives equal their full expansion."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Cluster, engine, policies
from simulator.collectives import collective
from simulator.node_types import NodeLayout
from simulator.tasks import SimulationError, TaskGraph
from workloads import zoo


def _bucketed_allreduce(cluster, symmetric, algorithm, buckets=(3e6, 25e6)):
    """Each device computes for a while (longer on later devices of a period: the input is
    as periodic as the cluster), then all-reduces the buckets in order."""
    tg = TaskGraph("ar")
    ids = [d.id for d in cluster.devices]
    period = cluster.symmetry_period()
    built = ids[:period] if symmetric else ids
    deps = {}
    for i, d in enumerate(built):
        tg.new(f"{d}/work", f"{d}.compute", 1e-3 * (1 + (i % period) / 10))
        deps[d] = [f"{d}/work"]
    for b, nbytes in enumerate(buckets):
        deps = collective("allreduce", tg, cluster, ids, nbytes, deps, f"ar.b{b}",
                          launch_latency_s=8.4e-6, algorithm=algorithm, symmetric=symmetric)
    log = engine.run(tg, cluster.resources)
    assert log.ok
    return tg, log, deps


def _times(tg, log):
    return {t.name: (s, e) for t, s, e in zip(log.tasks, log.start_s, log.end_s, strict=True)}


def _nodes(p, topology="dgx1-cube-mesh", link="nvlink2-link"):
    return Cluster.build("v100", p, link, topology=topology, devices_per_node=8,
                         inter_node_link="ib100")


def _leaves():
    cluster = Cluster.from_node_type("dgx1-v100", 64, nodes_per_leaf=2, oversubscription=2)
    assert cluster.symmetry_period() == 16 and cluster.resources["leaf0.up"] == 4
    return cluster


CASES = [
    (8, lambda: Cluster.build("v100", 8, "nvlink2"), "ring"),
    (64, lambda: Cluster.build("v100", 64, "eth10g"), "ring"),
    (64, lambda: _nodes(64), "ring"),
    (64, lambda: _nodes(64), "hierarchical"),
    (256, lambda: _nodes(256, "switch", "nvlink2"), "ring"),
    (256, lambda: _nodes(256), "hierarchical"),
    # leaves of 2 DGX-1s, 2:1 oversubscribed: the period is a leaf (16 GPUs)
    (64, lambda: _leaves(), "ring"),
    (64, lambda: _leaves(), "hierarchical"),
]


@pytest.mark.parametrize("p, make, algorithm", CASES,
                         ids=[f"{p}-{a}-{i}" for i, (p, _, a) in enumerate(CASES)])
def test_symmetric_collective_equals_full_expansion(p, make, algorithm):
    cluster = make()
    assert len(cluster.devices) == p and cluster.symmetry_period() is not None
    full_tg, full_log, full_done = _bucketed_allreduce(cluster, False, algorithm)
    sym_tg, sym_log, sym_done = _bucketed_allreduce(cluster, True, algorithm)
    assert len(sym_tg) < len(full_tg)
    assert sym_log.makespan_s == full_log.makespan_s
    full = _times(full_tg, full_log)
    for name, times in _times(sym_tg, sym_log).items():
        assert full[name] == times, name     # every built task at the same instants
    # every device's result is its representative's, which ends when the full one does
    for d in full_done:
        assert max(full[t][1] for t in full_done[d]) == \
            max(full[t][1] for t in sym_done[d])


def test_symmetry_builds_fewer_tasks_growing_linearly():
    counts = {}
    for p in (64, 128, 256):
        tg, _, _ = _bucketed_allreduce(_nodes(p), True, "hierarchical", buckets=(1e6,))
        counts[p] = len(tg)
    # the cross-node rings grow with the node count, the intra-node phases stay the same
    assert counts[256] - counts[128] == pytest.approx(2 * (counts[128] - counts[64]), rel=0.01)


def test_no_symmetry_across_different_devices_or_partial_collectives():
    mixed = Cluster.build("v100", 8, "nvlink2")
    mixed.devices[3].spec = Cluster.build("a100", 1).devices[0].spec
    assert mixed.symmetry_period() is None
    cluster = Cluster.build("v100", 8, "nvlink2")
    tg = TaskGraph("part")
    collective("allreduce", tg, cluster, ["gpu0", "gpu1", "gpu2"], 1e6, [], "ar",
               symmetric=True)
    assert len(tg) == 2 * 2 * 3     # built in full: 2(p-1) steps of p transfers
    assert Cluster.build("v100", 8, "nvlink2-link", topology="dgx1-cube-mesh") \
        .symmetry_period() is None


def test_hierarchical_needs_equal_full_nodes():
    cluster = Cluster.build("v100", 12, "nvlink2", devices_per_node=8, inter_node_link="ib100")
    with pytest.raises(SimulationError, match="nodes of equal size"):
        collective("allreduce", TaskGraph("h"), cluster, [d.id for d in cluster.devices], 1e6,
                   [], "ar", algorithm="hierarchical")
    with pytest.raises(SimulationError, match="algorithm must be one of"):
        collective("allreduce", TaskGraph("h"), cluster, ["gpu0", "gpu1"], 1e6, [], "ar",
                   algorithm="butterfly")


@pytest.mark.parametrize("algorithm", ["ring", "hierarchical"])
def test_data_parallel_classes_equal_all_replicas(algorithm):
    cluster = _nodes(16)
    pol = policies.get("data-parallel")
    graph = zoo.get("resnet20", batch=32)
    logs = {}
    for replicas in ("all", "classes"):
        tg = pol.plan(graph, cluster, True, **pol.resolve(
            {"collectives": "link", "replicas": replicas, "algorithm": algorithm}))
        logs[replicas] = engine.run(tg, cluster.resources, cluster.memory_capacity_bytes(),
                                    memory_baseline_bytes=tg.meta["resident_bytes"])
    assert logs["classes"].makespan_s == logs["all"].makespan_s
    assert len(logs["classes"].tasks) * 2 == len(logs["all"].tasks)   # one node of two
    assert logs["classes"].peak_memory_bytes["gpu3"] == logs["all"].peak_memory_bytes["gpu11"]


@settings(max_examples=40, deadline=None)
@given(nodes=st.integers(2, 6), per_node=st.integers(1, 4),
       algorithm=st.sampled_from(["ring", "hierarchical"]),
       link=st.sampled_from(["nvlink2", "eth10g"]),
       nics=st.booleans(), buckets=st.lists(st.floats(1e3, 5e7), min_size=1, max_size=3))
def test_symmetry_equals_full_expansion_on_any_identical_nodes(nodes, per_node, algorithm, link,
                                                               nics, buckets):
    layout = NodeLayout(nics=tuple((g,) for g in range(per_node)) if nics else None)
    cluster = Cluster.build("v100", nodes * per_node, link, devices_per_node=per_node,
                            inter_node_link="ib100", layout=layout)
    assert cluster.symmetry_period() == per_node
    full_tg, full_log, _ = _bucketed_allreduce(cluster, False, algorithm, tuple(buckets))
    sym_tg, sym_log, _ = _bucketed_allreduce(cluster, True, algorithm, tuple(buckets))
    assert sym_log.makespan_s == full_log.makespan_s
    full = _times(full_tg, full_log)
    assert all(full[name] == times for name, times in _times(sym_tg, sym_log).items())
