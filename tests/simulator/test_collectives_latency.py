"""Latency between nodes delays, it does not occupy: a transfer between nodes holds its NICs
for its bytes alone, then flies for its latency on the wire, which any number share."""
from __future__ import annotations

import pytest

from simulator import Cluster, engine
from simulator.cluster import WIRE_RESOURCE
from simulator.collectives import collective
from simulator.tasks import TaskGraph


def _allreduce(cluster, nbytes, algorithm):
    tg = TaskGraph("t")
    ids = [d.id for d in cluster.devices]
    collective("allreduce", tg, cluster, ids, nbytes, [], "ar", algorithm=algorithm)
    log = engine.run(tg, cluster.resources)
    assert log.ok
    return log, tg


@pytest.mark.parametrize("algorithm", ["ring", "hierarchical", "tree"])
def test_a_nic_is_held_for_bytes_only_and_every_flight_is_the_networks_latency(algorithm):
    cluster = Cluster.from_node_type("cloud-v100-25gbe", 24)
    link = cluster.inter_node_link
    assert link is not None
    _, tg = _allreduce(cluster, 3e6, algorithm)
    nic_tasks = [t for t in tg if any(r.startswith("node") and r.endswith(".tx")
                                      for r in t.resources)]
    flights = [t for t in tg if t.resources == (WIRE_RESOURCE,) and "latency_of" in t.meta]
    assert nic_tasks and flights
    for t in nic_tasks:
        wire_s = t.meta["bytes"] / link.bandwidth_Bps
        if "protocol" in t.meta:   # a tree's protocol runs below the link's rate
            assert t.duration_s >= wire_s * (1 - 1e-12)
        else:
            assert t.duration_s == pytest.approx(wire_s, rel=1e-12)
    names = {t.name for t in tg}
    for f in flights:
        assert f.meta["latency_of"] in names and f.deps == (f.meta["latency_of"],)
        assert f.duration_s <= link.latency_s


def test_eight_rings_through_one_nic_queue_for_bytes_not_for_each_others_latency():
    """Two cloud nodes of 8 GPUs and one NIC: the hierarchical all-reduce's 8 cross-node
    rings of 2 steps share the NIC. Were latency held on the port, a small buffer would take
    at least 8 x 2 x 25 us; in flight side by side it takes about 2 latencies and the bytes."""
    cluster = Cluster.from_node_type("cloud-v100-25gbe", 16)
    link = cluster.inter_node_link
    assert link is not None
    log, _ = _allreduce(cluster, 64e3, "hierarchical")
    assert log.makespan_s < 8 * 2 * link.latency_s / 2


def test_one_ring_across_nodes_takes_as_long_as_its_latency_held_on_the_port():
    """A flat ring has one transfer per NIC at a time: splitting a hop into its bytes and its
    flight leaves the ring's time as it was (latency + bytes on the steps that pay it)."""
    cluster = Cluster.from_node_type("dgx1-v100", 16)
    log, tg = _allreduce(cluster, 8e6, "ring")
    hops = [t for t in tg if t.resources != (WIRE_RESOURCE,)]
    flights = [t for t in tg if t.resources == (WIRE_RESOURCE,) and "latency_of" in t.meta]
    # the ring pays the network's latency on 2 (N - 1) = 2 of its 30 steps, at 2 hops each
    assert len(flights) == 2 * 2
    assert len(hops) == 2 * 15 * 16


def test_the_wire_is_no_link_in_a_runs_link_listing():
    """Flights hold the wire, which carries no bytes: link_bytes and link_utilisation list
    the NICs the all-reduce crossed and not the wire."""
    from simulator import simulate
    cluster = Cluster.from_node_type("cloud-v100-25gbe", 16)
    result = simulate("resnet20", cluster, "data-parallel", batch=8, replicas="one",
                      algorithm="nccl")
    assert any(t.resources == (WIRE_RESOURCE,) for t in result.log.tasks)
    assert WIRE_RESOURCE not in result.link_bytes
    assert WIRE_RESOURCE not in result.link_utilisation
    assert any(r.startswith("node") for r in result.link_bytes)
    assert set(result.link_utilisation) == set(result.link_bytes)
