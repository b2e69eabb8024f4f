"""Gloo's recursive halving and doubling across nodes (collectives_hd.py, algorithm
'halving-doubling')."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator import Cluster, engine
from simulator.collectives import collective
from simulator.collectives_hd import halving_doubling_steps
from simulator.tasks import SimulationError, TaskGraph


@given(st.integers(0, 12))
def test_the_steps_send_what_a_ring_sends_in_2_log2_n_steps(log2_nodes):
    nodes = 2 ** log2_nodes
    steps = halving_doubling_steps(nodes)
    assert len(steps) == 2 * log2_nodes
    assert math.isclose(sum(f for _, f in steps), 2 * (nodes - 1) / nodes)
    # every partner is another node, and the all-gather retraces the reduce-scatter
    assert all(0 < mask < nodes for mask, _ in steps)
    assert steps == steps[:log2_nodes] + steps[:log2_nodes][::-1]


@pytest.mark.parametrize("nodes", [0, 3, 12])
def test_a_node_count_not_a_power_of_two_is_refused_by_name(nodes):
    with pytest.raises(SimulationError, match=f"power-of-two number of nodes, got {nodes}"):
        halving_doubling_steps(nodes)


def _allreduce_end_s(cluster, nbytes, algorithm, ready_s=None):
    tg = TaskGraph("t")
    ids = [d.id for d in cluster.devices]
    deps = {d: [tg.new(f"ready.{d}", cluster.device(d).compute,
                       (ready_s or {}).get(d, 0.0)).name] for d in ids}
    done = collective("allreduce", tg, cluster, ids, nbytes, deps, "ar", algorithm=algorithm)
    log = engine.run(tg, cluster.resources)
    assert log.ok
    end = {t.name: e for t, e in zip(log.tasks, log.end_s, strict=True)}
    return {d: max(end[t] for t in tasks) for d, tasks in done.items()}


def test_between_two_nodes_it_is_the_hierarchical_ring_exactly():
    # two nodes: one exchange each way per pass, as the ring's two steps
    cluster = Cluster.from_node_type("big-basin-p100", 16)
    hd = _allreduce_end_s(cluster, 25e6, "halving-doubling")
    ring = _allreduce_end_s(cluster, 25e6, "hierarchical")
    assert hd == pytest.approx(ring, rel=1e-12)


def test_across_32_nodes_it_saves_the_ring_its_extra_latencies_and_waits_for_every_device():
    cluster = Cluster.from_node_type("big-basin-p100", 256)
    latency_s = cluster.inter_node_link.latency_s
    small = 64e3     # latency-bound: the ring pays 2 x 31 network latencies, this 2 x 5
    hd = max(_allreduce_end_s(cluster, small, "halving-doubling").values())
    ring = max(_allreduce_end_s(cluster, small, "hierarchical").values())
    assert ring - hd == pytest.approx((2 * 31 - 2 * 5) * latency_s, rel=0.2)
    late = _allreduce_end_s(cluster, small, "halving-doubling", {"gpu200": 1e-3})
    assert min(late.values()) > 1e-3
