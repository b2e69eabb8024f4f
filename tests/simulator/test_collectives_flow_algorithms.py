"""Flow-level collectives run the algorithm they are asked for: the hierarchical and
halving-doubling all-reduces across nodes as flows of their own parts
(collective_flows.hierarchical), never as the ring's closed form under another name."""
from __future__ import annotations

import pytest

from simulator import Cluster, engine, simulate
from simulator.cli import main
from simulator.collectives import ALGORITHMS, NCCL_BASE_LATENCY_S, collective
from simulator.tasks import TaskGraph

NODES = [lambda: Cluster.from_node_type("dgx1-v100", 32),
         lambda: Cluster.from_node_type("cloud-v100-25gbe", 16),
         lambda: Cluster.build("v100", 16, "nvlink2", devices_per_node=4,
                               inter_node_link="ib100")]


def _allreduce_s(cluster, algorithm, fidelity, nbytes):
    tg = TaskGraph("t")
    collective("allreduce", tg, cluster, [d.id for d in cluster.devices], nbytes, [], "ar",
               fidelity=fidelity, algorithm=algorithm, launch_latency_s=NCCL_BASE_LATENCY_S)
    log = engine.run(tg, cluster.resources)
    assert log.ok
    return log.makespan_s, tg


@pytest.mark.parametrize("make", NODES)
@pytest.mark.parametrize("algorithm", ["hierarchical", "halving-doubling"])
@pytest.mark.parametrize("nbytes", [1e6, 25e6])
def test_a_hierarchical_flow_takes_about_its_link_level_time_not_the_rings(make, algorithm,
                                                                            nbytes):
    cluster = make()
    flow_s, tg = _allreduce_s(cluster, algorithm, "flow", nbytes)
    link_s, _ = _allreduce_s(cluster, algorithm, "link", nbytes)
    ring_s, _ = _allreduce_s(cluster, "ring", "flow", nbytes)
    assert flow_s == pytest.approx(link_s, rel=0.1)
    assert abs(flow_s - link_s) < abs(ring_s - link_s)
    # each node's reduce-scatter, one flow across the nodes, each node's all-gather
    assert len(tg) == 2 * cluster.nodes + 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_the_cli_takes_runs_at_either_fidelity(capsys, algorithm):
    for fidelity in ("link", "flow"):
        code = main(["simulate", "--workload", "resnet20", "--batch", "8", "--hardware", "v100",
                     "--devices", "8", "--devices-per-node", "2", "--link", "nvlink2",
                     "--inter-node-link", "ib100", "--policy", "data-parallel",
                     "-o", f"collectives={fidelity}", "-o", f"algorithm={algorithm}"])
        out = capsys.readouterr()
        assert code == 0, out.err


def test_halving_doubling_over_nodes_not_a_power_of_two_is_refused_at_either_fidelity(capsys):
    for fidelity in ("link", "flow"):
        code = main(["simulate", "--workload", "resnet20", "--batch", "8", "--hardware", "v100",
                     "--devices", "6", "--devices-per-node", "2", "--link", "nvlink2",
                     "--inter-node-link", "ib100", "--policy", "data-parallel",
                     "-o", f"collectives={fidelity}", "-o", "algorithm=halving-doubling"])
        err = capsys.readouterr().err
        assert code == 2 and "power-of-two number of nodes, got 3" in err, err


@pytest.mark.parametrize("algorithm", ["hierarchical", "halving-doubling"])
def test_within_one_node_both_are_the_nodes_rings_at_either_fidelity(algorithm):
    cluster = Cluster.build("v100", 4, "nvlink2")
    for fidelity in ("link", "flow"):
        run = simulate("resnet20", cluster, "data-parallel", batch=8, collectives=fidelity,
                       algorithm=algorithm)
        ring = simulate("resnet20", cluster, "data-parallel", batch=8, collectives=fidelity,
                        algorithm="ring")
        assert run.iteration_time_s == ring.iteration_time_s
