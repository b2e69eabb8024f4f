"""NVLink node topologies (DGX-1 hybrid cube-mesh, DGX-2 NVSwitch) and NCCL's rings over them."""
from __future__ import annotations

from collections import Counter

import pytest

from simulator import Cluster, engine
from simulator.collectives import NCCL_BASE_LATENCY_S, closed_form_s, collective
from simulator.node_topologies import DGX1_V100_NVLINKS, dgx1_links, dgx1_rings
from simulator.tasks import SimulationError, TaskGraph

LINK_Bps = 22.5e9     # nvlink2-link: one NVLink 2 direction, as achieved
HOP_S = 3.4e-6        # nvlink2-link latency: NCCL's ring step over NVLink


def test_dgx1_has_24_links_6_per_gpu_and_two_quads():
    assert sum(DGX1_V100_NVLINKS.values()) == 24
    for gpu in range(8):
        assert sum(dgx1_links(gpu, other) for other in range(8)) == 6
    for quad in ((0, 1, 2, 3), (4, 5, 6, 7)):
        assert all(dgx1_links(a, b) for a in quad for b in quad if a != b)
    assert [dgx1_links(g, g + 4) for g in range(4)] == [2, 2, 1, 1]
    assert dgx1_links(0, 5) == dgx1_links(3, 4) == 0


def _directed_use(rings):
    use = Counter()
    for ring in rings:
        for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
            use[(a, b)] += 1
    return use


@pytest.mark.parametrize("gpus, rings", [(8, 6), (4, 4), (3, 2), (2, 1)])
def test_rings_use_every_link_direction_at_most_once(gpus, rings):
    found = dgx1_rings(tuple(range(gpus)))
    assert len(found) == rings
    assert all(sorted(r) == list(range(gpus)) for r in found)
    for (a, b), n in _directed_use(found).items():
        assert n <= dgx1_links(a, b)
    if gpus == 8:   # all 48 link directions carry a ring: the whole 6 x 25 GB/s per GPU
        assert sum(_directed_use(found).values()) == 48


def test_five_gpus_have_no_ring_and_fall_back_to_bridged_hops():
    assert dgx1_rings(tuple(range(5))) == ()     # GPU 4 links only to GPU 0 among 0-4
    cluster = Cluster.build("v100", 5, "nvlink2-link", topology="dgx1-cube-mesh")
    ids = [d.id for d in cluster.devices]
    assert cluster.ring_channels(ids) == [(tuple(ids), (None,) * 5)]
    tg = TaskGraph()
    collective("allreduce", tg, cluster, ids, 64e6, [], "a")
    log = engine.run(tg, cluster.resources)
    assert log.makespan_s >= closed_form_s("allreduce", cluster, ids, 64e6) * 0.99


def test_cube_mesh_routes():
    c = Cluster.build("v100", 8, "nvlink2-link", topology="dgx1-cube-mesh")
    assert sum(r.startswith("link:") for r in c.resources) == 48
    res, bw, lat = c.route("gpu0", "gpu3")               # two links
    assert res == ("link:gpu0->gpu3#0", "link:gpu0->gpu3#1")
    assert bw == pytest.approx(2 * LINK_Bps) and lat == pytest.approx(HOP_S)
    res, bw, _ = c.route("gpu0", "gpu3", lane=1)         # one channel: one link
    assert res == ("link:gpu0->gpu3#1",) and bw == pytest.approx(LINK_Bps)
    res, bw, lat = c.route("gpu0", "gpu5")     # no link: through GPU 1 (or 4: as narrow)
    assert res == ("link:gpu0->gpu1#0", "link:gpu1->gpu5#0", "link:gpu1->gpu5#1")
    assert bw == pytest.approx(LINK_Bps) and lat == pytest.approx(2 * HOP_S)


def test_nvswitch_port_is_six_links():
    c = Cluster.build("v100-32gb", 16, "nvlink2-link", topology="nvswitch")
    res, bw, lat = c.route("gpu0", "gpu15")
    assert len(res) == 12 and bw == pytest.approx(6 * LINK_Bps) and lat == pytest.approx(HOP_S)
    assert c.route("gpu0", "gpu15", lane=2)[0] == ("gpu0.tx#2", "gpu15.rx#2")
    assert len(c.ring_channels([d.id for d in c.devices])) == 6


def _allreduce_s(cluster, nbytes, launch_s=0.0):
    ids = [d.id for d in cluster.devices]
    tg = TaskGraph()
    done = collective("allreduce", tg, cluster, ids, nbytes, [], "ar", launch_latency_s=launch_s)
    log = engine.run(tg, cluster.resources)
    assert log.ok and set(done) == set(ids)
    return log.makespan_s, closed_form_s("allreduce", cluster, ids, nbytes, launch_s)


@pytest.mark.parametrize("topology, gpus, bus_Bps", [
    ("dgx1-cube-mesh", 8, 6 * LINK_Bps),      # 135 GB/s: nccl-tests on DGX-1V see 130-140
    ("dgx1-cube-mesh", 4, 4 * LINK_Bps),
    ("dgx1-cube-mesh", 2, 1 * LINK_Bps),
    ("nvswitch", 16, 6 * LINK_Bps),
    ("nvswitch", 8, 6 * LINK_Bps),
])
def test_allreduce_runs_at_ncclss_bus_bandwidth(topology, gpus, bus_Bps):
    cluster = Cluster.build("v100-32gb", gpus, "nvlink2-link", topology=topology)
    nbytes = 1e9
    t, closed = _allreduce_s(cluster, nbytes, NCCL_BASE_LATENCY_S)
    p = gpus
    expect = NCCL_BASE_LATENCY_S + 2 * (p - 1) * (HOP_S + nbytes / (p * bus_Bps))
    assert closed == pytest.approx(expect, rel=1e-9)
    assert t == pytest.approx(expect, rel=1e-6)     # the rings never share a link
    # nccl-tests' bus bandwidth: 2 (p - 1) / p x bytes / time
    assert 2 * (p - 1) / p * nbytes / t == pytest.approx(bus_Bps, rel=0.01)


def test_small_all_reduces_are_latency_bound():
    cluster = Cluster.build("v100", 8, "nvlink2-link", topology="dgx1-cube-mesh")
    t, _ = _allreduce_s(cluster, 8.0, NCCL_BASE_LATENCY_S)
    assert t == pytest.approx(NCCL_BASE_LATENCY_S + 14 * HOP_S, rel=1e-3)


def test_flow_level_holds_every_link_of_every_ring():
    cluster = Cluster.build("v100", 8, "nvlink2-link", topology="dgx1-cube-mesh")
    ids = [d.id for d in cluster.devices]
    tg = TaskGraph()
    collective("allreduce", tg, cluster, ids, 1e8, [], "ar", fidelity="flow")
    (task,) = tg.tasks
    assert len(task.resources) == 48
    assert task.duration_s == closed_form_s("allreduce", cluster, ids, 1e8)


def test_too_many_gpus_for_a_node_and_bad_launch_latency():
    with pytest.raises(SimulationError, match="at most 8 GPUs per node"):
        Cluster.build("v100", 9, "nvlink2-link", topology="dgx1-cube-mesh")
    with pytest.raises(SimulationError, match="at most 16 GPUs per node"):
        Cluster.build("v100", 17, "nvlink2-link", topology="nvswitch")
    two = Cluster.build("v100", 16, "nvlink2-link", topology="dgx1-cube-mesh",
                        devices_per_node=8, inter_node_link="ib100")
    assert two.nodes == 2
    with pytest.raises(SimulationError, match="launch latency"):
        collective("allreduce", TaskGraph(), two, ["gpu0", "gpu1"], 1, [], "x",
                   launch_latency_s=-1)
