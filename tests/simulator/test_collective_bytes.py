"""Bytes a collective puts on the network, as its tasks report them: a task's `bytes` are what
it sends, a tree hop's receive reports `received_bytes`, so summing `bytes` over the
communication tasks (Result.records(), the CSV, the trace) gives the algorithm's wire bytes,
and link_bytes counts each port once, sending side and receiving side alike."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Cluster, engine
from simulator.collectives import collective
from simulator.results import Result
from simulator.tasks import TaskGraph


def _allreduce(cluster: Cluster, nbytes: float, algorithm: str, fidelity: str) -> Result:
    tg = TaskGraph("t")
    ids = [d.id for d in cluster.devices]
    deps = {d: [tg.new(f"ready.{d}", cluster.device(d).compute, 0.0).name] for d in ids}
    collective("allreduce", tg, cluster, ids, nbytes, deps, "ar", fidelity=fidelity,
               algorithm=algorithm)
    log = engine.run(tg, cluster.resources)
    assert log.ok
    return Result(policy="allreduce", workload="buffer", batch=1, training=False,
                  cluster=cluster.describe(), options={}, log=log, samples_per_iteration=1)


def _comm_bytes(result: Result) -> float:
    return sum(row["bytes"] for row in result.records() if row["category"] == "comm")


@settings(max_examples=12, deadline=None)
@given(nodes=st.integers(2, 5), nbytes=st.sampled_from([3e5, 4e6, 2.5e7]))
def test_a_tree_all_reduce_between_nodes_sends_its_wire_bytes_once(nodes, nbytes):
    """NCCL's trees carry every device's buffer up its tree and back down: 2 (p - 1) S bytes
    on the network in all, each hop between nodes a send and a receive of the same chunk."""
    cluster = Cluster.from_node_type("pcie-4gpu-p100-roce25g", 4 * nodes)
    result = _allreduce(cluster, nbytes, "tree", "link")
    p = len(cluster.devices)
    assert any("received_bytes" in t.meta for t in result.log.tasks)   # split hops are here
    assert _comm_bytes(result) == pytest.approx(2 * (p - 1) * nbytes, rel=1e-9)
    # a NIC's send sides carry what the receive sides take
    links = result.link_bytes
    sent = sum(b for r, b in links.items() if r.endswith(".tx"))
    taken = sum(b for r, b in links.items() if r.endswith(".rx"))
    assert sent == pytest.approx(taken, rel=1e-12) and sent > 0


@pytest.mark.parametrize("algorithm,fidelity", [("ring", "link"), ("ring", "flow"),
                                                ("hierarchical", "link")])
def test_other_all_reduces_report_the_same_wire_bytes(algorithm, fidelity):
    cluster = Cluster.from_node_type("pcie-4gpu-p100-roce25g", 8)
    result = _allreduce(cluster, 4e6, algorithm, fidelity)
    assert _comm_bytes(result) == pytest.approx(2 * 7 * 4e6, rel=1e-9)
