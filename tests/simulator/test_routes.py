"""Routes through a cluster (simulator/routes.py): every path is made of the cluster's own
resources, a transfer takes latency plus bytes over bandwidth, and ring channels visit every
device once."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cluster import Cluster
from simulator.node_types import node_types

NODE_TYPES = sorted(node_types())


@st.composite
def node_type_clusters(draw):
    name = draw(st.sampled_from(NODE_TYPES))
    gpus = node_types()[name].gpus
    count = draw(st.sampled_from([1, 2, gpus, 2 * gpus, 3 * gpus]))
    return Cluster.from_node_type(name, count)


@settings(max_examples=40, deadline=None)
@given(node_type_clusters(), st.data())
def test_every_route_holds_the_clusters_own_resources(cluster, data):
    ids = [d.id for d in cluster.devices]
    src, dst = data.draw(st.sampled_from(ids)), data.draw(st.sampled_from(ids))
    resources, bandwidth_Bps, latency_s = cluster.route(src, dst)
    assert resources and all(r in cluster.resources for r in resources)
    assert len(set(resources)) == len(resources)
    held, seconds = cluster.transfer(src, dst, 1e6)
    assert held == resources
    if src == dst:
        assert resources == (f"{src}.compute",) and seconds == 0.0
    else:
        assert bandwidth_Bps > 0 and latency_s >= 0
        assert math.isclose(seconds, latency_s + 1e6 / bandwidth_Bps)


@settings(max_examples=40, deadline=None)
@given(node_type_clusters())
def test_ring_channels_visit_every_device_once_on_known_lanes(cluster):
    ids = [d.id for d in cluster.devices]
    channels = cluster.ring_channels(ids)
    assert channels
    for order, lanes in channels:
        assert sorted(order) == sorted(ids) and len(lanes) == len(order)
        for i, lane in enumerate(lanes):
            hop = cluster.route(order[i], order[(i + 1) % len(order)], lane)[0]
            assert all(r in cluster.resources for r in hop)


def test_host_copies_of_gpus_behind_one_pcie_switch_share_its_uplink():
    cluster = Cluster.from_node_type("dgx1-v100", 8)
    first, _ = cluster.host_copy("gpu0", 1e6, "d2h")
    second, _ = cluster.host_copy("gpu1", 1e6, "d2h")
    other, _ = cluster.host_copy("gpu2", 1e6, "d2h")
    assert set(first) & set(second) == {"node0.pcie0.up"}
    assert not set(first) & set(other)
