"""Nodes as they are built: shared NICs and PCIe switches contend, networks between nodes, and
the catalog's node types."""
from __future__ import annotations

import pytest

from simulator import Cluster, engine, simulate
from simulator.node_types import NodeLayout, node_types
from simulator.tasks import SimulationError, TaskGraph

MB = 1e6


def _run_copies(cluster, copies):
    """copies: (src, dst, bytes) transfers all ready at 0; returns each one's end."""
    tg = TaskGraph("copies")
    for i, (src, dst, nbytes) in enumerate(copies):
        res, dur = cluster.transfer(src, dst, nbytes)
        tg.new(f"c{i}", res, dur)
    log = engine.run(tg, cluster.resources)
    return log.end_s


def test_every_catalog_node_type_builds_and_trains():
    assert {"dgx1-v100", "dgx2", "dgx-a100", "dgx-h100", "pcie-8gpu-v100", "cloud-v100-25gbe",
            "cloud-v100-100gbe"} <= set(node_types())
    for name, nt in node_types().items():
        assert nt.source
        cluster = Cluster.from_node_type(name, 2 * nt.gpus)
        assert cluster.nodes == 2 and cluster.describe()["node_type"] == name
        r = simulate("resnet20", cluster, "data-parallel", batch=32)
        assert r.ok and r.iteration_time_s > 0


def test_gpus_sharing_a_nic_queue_for_it():
    cluster = Cluster.from_node_type("dgx1-v100", 16)   # NICs shared by GPU pairs
    one = cluster.transfer("gpu0", "gpu8", 100 * MB)[1]
    shared = _run_copies(cluster, [("gpu0", "gpu8", 100 * MB), ("gpu1", "gpu9", 100 * MB)])
    apart = _run_copies(cluster, [("gpu0", "gpu8", 100 * MB), ("gpu2", "gpu10", 100 * MB)])
    assert max(apart) == pytest.approx(one)
    assert max(shared) == pytest.approx(2 * one)


def test_host_copies_behind_one_pcie_switch_queue_for_its_uplink():
    cluster = Cluster.from_node_type("dgx1-v100", 8)
    tg = TaskGraph("swap")
    for g in ("gpu0", "gpu1", "gpu2"):
        res, dur = cluster.host_copy(g, 200 * MB, "d2h")
        assert f"node0.pcie{int(g[-1]) // 2}.up" in res
        tg.new(f"out.{g}", res, dur)
    log = engine.run(tg, cluster.resources)
    end = dict(zip([t.name for t in log.tasks], log.end_s, strict=True))
    assert end["out.gpu1"] == pytest.approx(2 * end["out.gpu0"])   # after gpu0's, same switch
    assert end["out.gpu2"] == pytest.approx(end["out.gpu0"])       # its own switch


def test_pcie_server_peer_traffic_between_switches_shares_uplinks():
    cluster = Cluster.from_node_type("pcie-8gpu-v100", 8)
    near = cluster.route("gpu0", "gpu1")[0]
    far = cluster.route("gpu0", "gpu2")[0]
    assert not any("pcie" in r for r in near)
    assert "node0.pcie0.up" in far and "node0.pcie1.down" in far
    one = cluster.transfer("gpu0", "gpu2", 100 * MB)[1]
    both = _run_copies(cluster, [("gpu0", "gpu2", 100 * MB), ("gpu1", "gpu3", 100 * MB)])
    assert max(both) == pytest.approx(2 * one)


def test_oversubscribed_fat_tree_limits_traffic_between_leaves():
    # 4 nodes of 8, 2 nodes per leaf, one NIC each: 2 NICs under a leaf, 2:1 -> 1 uplink
    cluster = Cluster.from_node_type("pcie-8gpu-v100", 32, nodes_per_leaf=2,
                                     oversubscription=2)
    assert cluster.resources["leaf0.up"] == 1
    assert "leaf0.up" not in cluster.route("gpu0", "gpu8")[0]       # same leaf
    assert "leaf0.up" in cluster.route("gpu0", "gpu16")[0]
    one = cluster.transfer("gpu0", "gpu16", 100 * MB)[1]
    cross = _run_copies(cluster, [("gpu0", "gpu16", 100 * MB), ("gpu8", "gpu24", 100 * MB)])
    assert max(cross) == pytest.approx(2 * one)
    full = Cluster.from_node_type("pcie-8gpu-v100", 32, nodes_per_leaf=2)
    assert max(_run_copies(full, [("gpu0", "gpu16", 100 * MB),
                                  ("gpu8", "gpu24", 100 * MB)])) == pytest.approx(one)


def test_rail_optimised_network_crosses_the_spine_between_rails_only():
    cluster = Cluster.from_node_type("dgx-a100", 16, network="rail-optimised")
    assert cluster.route("gpu0", "gpu8")[0] == ("node0.nic0.tx", "node1.nic0.rx")
    assert "rail0.up" in cluster.route("gpu0", "gpu9")[0]


@pytest.mark.parametrize("oversubscription", [1.0, 4.0])
def test_rings_across_rails_take_the_same_time_by_class_and_in_full(oversubscription):
    """NCCL's rings per NIC cross rails between nodes. Every node's NIC k shares rail k's
    uplinks, so with them oversubscribed one node cannot stand for the others: the run by
    symmetry class takes the full expansion's time, the oversubscribed one longer."""
    from simulator.collectives import collective
    times = []
    for symmetric in (True, False):
        cluster = Cluster.from_node_type("dgx-h100", 32, network="rail-optimised",
                                         oversubscription=oversubscription)
        tg = TaskGraph("ag")
        collective("allgather", tg, cluster, [d.id for d in cluster.devices], 100 * MB, {},
                   "ag", algorithm="nccl", symmetric=symmetric)
        times.append(engine.run(tg, cluster.resources).makespan_s)
    assert times[0] == pytest.approx(times[1], rel=1e-9)
    if oversubscription > 1:
        link = Cluster.from_node_type("dgx-h100", 32).inter_node_link
        assert link is not None
        assert times[0] > 2 * 100 * MB / (8 * link.bandwidth_Bps)


@pytest.mark.parametrize("layout, gpus, nodes, message", [
    (NodeLayout(nics=((0, 1), (2, 9))), 8, 2, "GPU 9 does not exist"),
    (NodeLayout(nics=((0, 1, 2),)), 8, 2, "missing"),
    (NodeLayout(pcie_switches=((0, 1), (1, 2))), 3, 1, "in several"),
    (NodeLayout(oversubscription=-2), 8, 2, "oversubscription must be"),
    (NodeLayout(network="torus"), 8, 2, "unknown network 'torus'"),
    (NodeLayout(nodes_per_leaf=0), 8, 2, "nodes_per_leaf must be"),
    (NodeLayout(nodes_per_leaf=1, oversubscription=4), 8, 2, "does not connect every node"),
])
def test_a_layout_that_does_not_add_up_is_a_named_error(layout, gpus, nodes, message):
    with pytest.raises(SimulationError, match=message):
        layout.check(gpus, nodes)


def test_unknown_node_type_is_named():
    with pytest.raises(SimulationError, match="unknown node type 'dgx-9'; known: .*dgx1-v100"):
        Cluster.from_node_type("dgx-9", 8)


@pytest.mark.parametrize("name", sorted(node_types()))
@pytest.mark.parametrize("gpus", [1, 3])
def test_part_of_a_node_keeps_the_nics_and_switches_of_its_gpus(name, gpus):
    """Fewer GPUs than a node holds (and the one-GPU baseline of --efficiency) simulate on
    the first GPUs of one node, with the NICs and PCIe switches those GPUs use."""
    cluster = Cluster.from_node_type(name, gpus)
    assert len(cluster.devices) == gpus
    nt = node_types()[name]
    for groups in (cluster.layout.nics, cluster.layout.pcie_switches):
        members = sorted(g for group in groups or () for g in group)
        assert members == list(range(gpus)) or groups == ()
    r = simulate("resnet20", cluster, "data-parallel" if gpus > 1 else "sequential", batch=8)
    assert r.ok and nt.gpus > gpus


def test_efficiency_over_one_gpu_of_a_node_type(capsys):
    from simulator.cli import main
    assert main(["simulate", "--workload", "resnet20", "--batch", "8", "--hardware", "v100",
                 "--devices", "16", "--node-type", "dgx1-v100", "--policy", "data-parallel",
                 "--efficiency"]) == 0
    assert "scaling efficiency" in capsys.readouterr().out


def test_another_gpu_takes_the_node_types_place_on_its_fabric():
    """--hardware names a node type's GPUs (docs/clusters.md): an H100 in a DGX-1 keeps the
    DGX-1's NVLink cube mesh and NICs, with H100s computing."""
    own = Cluster.from_node_type("dgx1-v100", 16)
    swapped = Cluster.from_node_type("dgx1-v100", 16, "h100")
    assert {d.spec.name for d in swapped.devices} == {"h100"}
    assert (swapped.topology, swapped.link, swapped.inter_node_link, swapped.layout) == \
        (own.topology, own.link, own.inter_node_link, own.layout)


@pytest.mark.parametrize("device", ["skylake-x-10c", "rpi4"])
def test_a_cpu_or_board_in_a_gpu_node_type_is_refused_naming_both(device, capsys):
    from simulator.cli import main
    with pytest.raises(SimulationError, match=f"'dgx1-v100' holds 8 GPUs .v100.; hardware "
                                              f"'{device}' is not a GPU"):
        Cluster.from_node_type("dgx1-v100", 8, device)
    assert main(["simulate", "--workload", "lenet5", "--batch", "8", "--hardware", device,
                 "--devices", "8", "--node-type", "dgx1-v100", "--policy",
                 "data-parallel"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "field 'hardware'" in err and "dgx1-v100" in err \
        and device in err
