"""Collectives: link-level task graphs against their closed forms."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Cluster, engine, nccl_fabric, nccl_tuning
from simulator.collective_forms import network_latency_steps as _network_latency_steps
from simulator.collectives import (
    closed_form_s,
    collective,
    ring_allreduce_s,
)
from simulator.tasks import SimulationError, TaskGraph


def _run_collective(kind, cluster, nbytes, fidelity):
    tg = TaskGraph(kind)
    ids = [d.id for d in cluster.devices]
    done = collective(kind, tg, cluster, ids, nbytes, [], kind, fidelity=fidelity)
    log = engine.run(tg, cluster.resources)
    assert log.ok
    return log, done, tg


@pytest.mark.parametrize("p", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("nbytes", [1e3, 25e6, 1e9])
@pytest.mark.parametrize("link", ["nvlink2", "eth10g", "ib100"])
def test_ring_allreduce_link_level_matches_closed_form(p, nbytes, link):
    cluster = Cluster.build("v100", p, link)
    log, _, _ = _run_collective("allreduce", cluster, nbytes, "link")
    spec = cluster.link
    # a step's latency: NCCL's own where the link is faster than that (ib100 inside a node:
    # NCCL's PCI step, 5.7 us), else the link's (eth10g's 20 us; nvlink2's 5 us)
    nccl_s = 1e-6 * nccl_tuning.HW_LATENCY_US[nccl_fabric.intra_hw(cluster)]["ring"]["Simple"]
    latency_s = max(spec.latency_s, nccl_s)
    expect = 2 * (p - 1) * (latency_s + nbytes / (p * spec.bandwidth_Bps))
    assert expect == pytest.approx(ring_allreduce_s(p, nbytes, spec.bandwidth_Bps, latency_s))
    assert log.makespan_s == pytest.approx(expect, rel=0.01)


@pytest.mark.parametrize("kind", ["allreduce", "reduce_scatter", "allgather", "all_to_all",
                                  "broadcast", "reduce"])
@pytest.mark.parametrize("p", [2, 4, 7])
def test_link_level_agrees_with_closed_form_on_a_switch(kind, p):
    cluster = Cluster.build("v100", p, "eth10g")
    log, _, _ = _run_collective(kind, cluster, 64e6, "link")
    assert log.makespan_s == pytest.approx(closed_form_s(kind, cluster, [d.id for d in
                                                                          cluster.devices],
                                                         64e6), rel=0.01)


@pytest.mark.parametrize("kind", ["allreduce", "all_to_all"])
def test_flow_level_is_one_task_with_the_closed_form(kind):
    cluster = Cluster.build("v100", 8, "nvlink2")
    log, done, tg = _run_collective(kind, cluster, 100e6, "flow")
    assert len(tg) == 1
    ids = [d.id for d in cluster.devices]
    assert log.makespan_s == pytest.approx(closed_form_s(kind, cluster, ids, 100e6), rel=1e-12)
    assert set(done) == set(ids)


def test_shared_medium_serialises_every_transfer():
    p, nbytes = 4, 8e6
    wifi = Cluster.build("rk3399", p, "wifi")
    eth = Cluster.build("rk3399", p, "eth1g")
    t_wifi = _run_collective("all_to_all", wifi, nbytes, "link")[0].makespan_s
    spec = wifi.link
    step = spec.latency_s + nbytes / (p * spec.bandwidth_Bps)
    assert t_wifi == pytest.approx(p * (p - 1) * step, rel=0.01)
    # on a switch the transfers of a round run side by side
    t_eth = _run_collective("all_to_all", eth, nbytes, "link")[0].makespan_s
    round_s = eth.link.latency_s + nbytes / (p * eth.link.bandwidth_Bps)
    assert t_eth == pytest.approx((p - 1) * round_s, rel=0.01)


def test_ring_topology_and_multinode_routes():
    ring = Cluster.build("v100", 6, "nvlink2", topology="ring")
    res, t = ring.transfer("gpu0", "gpu3", 1e6)
    assert len(res) == 3  # three hops either way round
    nodes = Cluster.build("v100", 8, "nvlink2", devices_per_node=4, inter_node_link="ib100")
    res, t = nodes.transfer("gpu1", "gpu6", 1e6)
    assert res == ("node0.tx", "node1.rx")
    assert t == pytest.approx(nodes.inter_node_link.latency_s + 1e6 /
                              nodes.inter_node_link.bandwidth_Bps)
    # a ring all-reduce across nodes is bound by the slower inter-node link
    log, _, _ = _run_collective("allreduce", nodes, 100e6, "link")
    closed = closed_form_s("allreduce", nodes, [d.id for d in nodes.devices], 100e6)
    assert log.makespan_s >= closed * 0.99


def test_contention_shows_at_link_level():
    """Two all-reduces at once over the same ports take about twice as long as one."""
    cluster = Cluster.build("v100", 4, "eth10g")
    ids = [d.id for d in cluster.devices]
    tg = TaskGraph("two")
    collective("allreduce", tg, cluster, ids, 50e6, [], "a")
    collective("allreduce", tg, cluster, ids, 50e6, [], "b")
    two = engine.run(tg, cluster.resources).makespan_s
    one = closed_form_s("allreduce", cluster, ids, 50e6)
    assert two == pytest.approx(2 * one, rel=0.02)


def test_bad_collective_arguments():
    cluster = Cluster.build("v100", 2, "nvlink2")
    with pytest.raises(SimulationError, match="unknown collective"):
        collective("gossip", TaskGraph(), cluster, ["gpu0", "gpu1"], 1, [], "x")
    with pytest.raises(SimulationError, match="fidelity"):
        collective("allreduce", TaskGraph(), cluster, ["gpu0", "gpu1"], 1, [], "x",
                   fidelity="exact")
    with pytest.raises(SimulationError, match="negative"):
        collective("allreduce", TaskGraph(), cluster, ["gpu0", "gpu1"], -1, [], "x")


@settings(max_examples=60, deadline=None)
@given(nodes=st.integers(1, 16), per_node=st.integers(1, 8), passes=st.sampled_from([1, 2]))
def test_a_ring_pays_the_network_latency_on_passes_times_nodes_less_one_steps(
        nodes, per_node, passes):
    if nodes * per_node < 2:
        return
    cluster = Cluster.build("v100", nodes * per_node, "nvlink2", devices_per_node=per_node,
                            inter_node_link="eth25g")
    order = [d.id for d in cluster.devices]
    paying = _network_latency_steps(cluster, order, passes)
    assert len(paying) == passes * (len(order) - 1)
    assert sum(paying) == min(len(paying), passes * (nodes - 1))


def test_small_allreduce_across_nodes_pays_the_network_latency_as_nccls_model_counts():
    """16 GPUs in 4 nodes over 25 Gb Ethernet (25 us): a tiny all-reduce pays the network's
    latency on 2(N-1) = 6 of its 30 steps and the node's on the other 24 (NCCL's tuning
    model), not 30 times the network's."""
    cluster = Cluster.build("v100", 16, "nvlink2", devices_per_node=4,
                            inter_node_link="eth25g")
    network, node = cluster.inter_node_link.latency_s, cluster.link.latency_s
    assert network > node
    closed = closed_form_s("allreduce", cluster, [d.id for d in cluster.devices], 16.0)
    assert closed == pytest.approx(6 * network + 24 * node, rel=1e-3)
    log, _, _ = _run_collective("allreduce", cluster, 16.0, "link")
    assert 6 * network <= log.makespan_s <= closed * (1 + 1e-9)
    assert log.makespan_s < 30 * network / 2


def test_allreduce_over_uneven_nodes_pays_what_the_closed_form_counts():
    """3 A10s on ib100 in nodes of 2 + 1, 1 kB: 2 of the 4 steps pay the network's latency
    (2(N-1)), the others a node's. The chain of transfers that pays them waits on gpu0 ->
    gpu1 for the spare step, then crosses gpu1 -> gpu2 and gpu2 -> gpu0 on the last two
    steps. Spread evenly (steps 1 and 3) no chain could pay both and a node's latency on
    the steps between: a chain that crosses on step 1 is on gpu2 -> gpu0 on step 2, a hop
    between nodes that pays no latency on a quiet step."""
    cluster = Cluster.build("a10", 3, "ib100", devices_per_node=2, inter_node_link="ib100")
    ids = [d.id for d in cluster.devices]
    assert _network_latency_steps(cluster, ids, 2) == [False, False, True, True]
    log, _, _ = _run_collective("allreduce", cluster, 1e3, "link")
    assert log.makespan_s == pytest.approx(closed_form_s("allreduce", cluster, ids, 1e3),
                                           rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(count=st.integers(3, 10), data=st.data(),
       link=st.sampled_from(["ib100", "eth25g", "nvlink2", "pcie4"]),
       kind=st.sampled_from(["allreduce", "reduce_scatter", "allgather"]),
       nbytes=st.floats(1e3, 1e9))
def test_rings_over_uneven_nodes_take_the_closed_form(count, data, link, kind, nbytes):
    """One link kind on a switch, a short last node: a ring's longest chain of transfers
    pays the network's latency on as many steps as the closed form counts, and a node's on
    the others."""
    per_node = data.draw(st.sampled_from([k for k in range(2, count) if count % k]))
    cluster = Cluster.build("v100", count, link, devices_per_node=per_node,
                            inter_node_link=link)
    ids = [d.id for d in cluster.devices]
    log, _, _ = _run_collective(kind, cluster, nbytes, "link")
    assert log.makespan_s == pytest.approx(closed_form_s(kind, cluster, ids, nbytes),
                                           rel=1e-9)
