"""A reduce-scatter or all-gather with algorithm 'nccl' across nodes runs as NCCL does: a ring
per NIC, each on its share, every rank of every ring done."""
from __future__ import annotations

import pytest

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
