"""A reduce-scatter or all-gather with algorithm 'nccl' across nodes runs as NCCL does: a ring
per NIC, each on its share, every rank of every ring done."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Cluster, engine
from simulator import nccl_fabric as nf
from simulator.collectives import collective
from simulator.tasks import TaskGraph


def _run(kind, algorithm, cluster, nbytes=256e6):
    tg = TaskGraph()
    ids = [d.id for d in cluster.devices]
    done = collective(kind, tg, cluster, ids, nbytes, {}, "c", algorithm=algorithm)
    log = engine.run(tg, cluster.resources)
    assert log.ok and set(done) == set(ids)
    return tg, log


@pytest.mark.parametrize("kind", ["reduce_scatter", "allgather"])
def test_across_nodes_a_ring_per_nic_each_on_its_share(kind):
    cluster = Cluster.from_node_type("dgx-h100", 16, device="h100")
    rings = nf.nic_ring_orders(cluster, [d.id for d in cluster.devices])
    assert rings and len(rings) == 8
    tg, per_nic = _run(kind, "nccl", cluster)
    _, one_ring = _run(kind, "ring", cluster)
    channels = {t.name.split(".")[1] for t in tg}
    assert channels == {f"c{c}" for c in range(len(rings))}
    # the same bytes per device leave over eight NICs instead of one
    sent = sum(t.meta["bytes"] for t in tg if t.meta.get("src") == "gpu0")
    assert sent == pytest.approx(256e6 * 15 / 16, rel=1e-9)
    assert per_nic.makespan_s < one_ring.makespan_s / 3


def test_within_a_node_nccl_is_the_nodes_ring():
    cluster = Cluster.from_node_type("dgx-h100", 8, device="h100")
    _, nccl = _run("reduce_scatter", "nccl", cluster)
    _, ring = _run("reduce_scatter", "ring", cluster)
    assert nccl.makespan_s == ring.makespan_s


def _time(kind, cluster, nbytes, launch_s=0.0):
    tg = TaskGraph()
    ids = [d.id for d in cluster.devices]
    collective(kind, tg, cluster, ids, nbytes, {}, "c", algorithm="nccl", symmetric=True,
               launch_latency_s=launch_s)
    log = engine.run(tg, cluster.resources)
    assert log.ok
    return log.makespan_s


@pytest.mark.parametrize("nodes", [2, 8])
def test_a_large_all_gather_runs_at_the_nics_bandwidth_on_a_rail_optimised_network(nodes):
    """Each of the 8 rings carries an eighth of the buffer through one NIC per node: the
    all-gather takes bytes / (8 NICs' bandwidth) x (n - 1) / n, as nccl-tests' busbw says,
    whatever the GPUs' ports carry for the other seven rings meanwhile."""
    cluster = Cluster.from_node_type("dgx-h100", 8 * nodes, network="rail-optimised")
    link = cluster.inter_node_link
    assert link is not None
    n, nbytes = len(cluster.devices), 1e9
    bound_s = nbytes / (8 * link.bandwidth_Bps) * (n - 1) / n
    assert bound_s <= _time("allgather", cluster, nbytes) < 1.1 * bound_s


def test_rings_that_share_a_gpus_port_queue_for_bytes_not_for_each_others_latency():
    """Across nodes every GPU's NVLink port carries 7 of the 8 rings. A small all-gather is
    latency-bound: about one NVLink latency a step, not seven (each ring's hop holding the
    port for its latency in turn), nor a launch latency per ring."""
    cluster = Cluster.from_node_type("dgx-h100", 64)
    steps = len(cluster.devices) - 1
    t = _time("allgather", cluster, 1e6, launch_s=8.4e-6)
    assert t < 1.5 * steps * cluster.link.latency_s + 8.4e-6


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["allreduce", "allgather", "reduce_scatter"]),
       nodes=st.sampled_from([1, 2, 4]),
       sizes=st.lists(st.floats(1e3, 2e9), min_size=2, max_size=2, unique=True))
def test_time_is_monotone_in_size(kind, nodes, sizes):
    """More bytes never take less time, across NCCL's switches of algorithm and protocol."""
    cluster = Cluster.from_node_type("dgx-h100", 8 * nodes)
    small, large = sorted(sizes)
    assert _time(kind, cluster, small, 8.4e-6) <= _time(kind, cluster, large, 8.4e-6)


@pytest.mark.parametrize("kind", ["allgather", "reduce_scatter", "allreduce"])
def test_the_flow_level_closed_form_runs_on_the_rings_per_nic(kind):
    """At flow fidelity (one task, the closed form) a ring collective under 'nccl' takes
    NCCL's rings per NIC as the link-level run does, not one ring through every NIC."""
    cluster = Cluster.from_node_type("dgx-h100", 64)
    ids = [d.id for d in cluster.devices]
    times = {}
    for fidelity in ("link", "flow"):
        tg = TaskGraph()
        collective(kind, tg, cluster, ids, 404e6, {}, "c", algorithm="nccl", symmetric=True,
                   fidelity=fidelity)
        times[fidelity] = engine.run(tg, cluster.resources).makespan_s
    # the closed form pays NCCL's 9.6 us network step on each of the steps that pay it, on
    # top of the step's bytes (as NCCL's tuning adds its latency to bytes over bandwidth);
    # link by link the flight overlaps the NIC's next bytes: 5-6% apart at 404 MB
    assert times["link"] <= times["flow"] <= 1.07 * times["link"]
