"""NCCL's tuning choice (nccl_tuning.py) and its double binary tree (collective_trees.py)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Cluster, engine
from simulator import collective_trees as trees
from simulator import nccl_fabric as nf
from simulator import nccl_tuning as tuning
from simulator.collectives import collective
from simulator.tasks import SimulationError, TaskGraph


def _fabric(ranks, nodes, channels=4, channel_GBps=12.1, hw="nvlink"):
    return tuning.Fabric(ranks, nodes, channels, channel_GBps, hw)


@settings(max_examples=60, deadline=None)
@given(nodes=st.integers(1, 256), ppn=st.sampled_from([1, 2, 4, 8]),
       nbytes=st.floats(1.0, 1e9), hw=st.sampled_from(["nvlink", "pci"]))
def test_choice_is_the_least_predicted_time_of_the_allowed_pairs(nodes, ppn, nbytes, hw):
    fabric = _fabric(nodes * ppn, nodes, hw=hw)
    chosen = tuning.choose(fabric, nbytes)
    algorithms = tuning.ALGORITHMS if nodes > 1 else ("ring",)
    protocols = tuning.PROTOCOLS if hw == "nvlink" else ("LL", "Simple")
    assert chosen.algorithm in algorithms and chosen.protocol in protocols
    for a in algorithms:
        for p in protocols:
            assert chosen.time_s(nbytes) <= tuning.model(fabric, a, p).time_s(nbytes)


def test_small_buffers_run_ll_large_ones_simple_and_trees_win_small_buffers_at_scale():
    one_node = _fabric(8, 1, channels=6, channel_GBps=22.5)
    assert tuning.choose(one_node, 4096).protocol == "LL"
    assert (tuning.choose(one_node, 1e9).algorithm,
            tuning.choose(one_node, 1e9).protocol) == ("ring", "Simple")
    # 64 DGX-1 nodes: a ring's 1,022 steps of latency against a tree's 2 (7 + log2 64)
    many = _fabric(512, 64)
    assert tuning.choose(many, 64e3).algorithm == "tree"
    assert tuning.model(many, "ring", "LL").latency_s > 10 * tuning.model(
        many, "tree", "LL").latency_s


def test_a_fabric_that_does_not_add_up_is_refused():
    with pytest.raises(ValueError, match="ranks >= nodes"):
        tuning.Fabric(4, 8, 1, 10.0)
    with pytest.raises(ValueError, match="intra_hw"):
        tuning.Fabric(4, 1, 1, 10.0, "wifi")


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 300), tree=st.integers(0, 1))
def test_double_binary_tree_is_a_tree_over_every_rank(n, tree):
    parent = {r: trees.dtree(n, r, tree)[0] for r in range(n)}
    roots = [r for r, up in parent.items() if up < 0]
    assert len(roots) == 1
    for r in range(n):   # children name their parent, and every rank reaches the root
        assert all(parent[c] == r for c in trees.dtree(n, r, tree)[1])
        seen, at = set(), r
        while parent[at] >= 0:
            assert at not in seen
            seen.add(at)
            at = parent[at]
        assert at == roots[0]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 300).filter(lambda n: n % 2 == 0))
def test_no_rank_is_interior_in_both_trees_of_an_even_count(n):
    interior = [{r for r in range(n) if trees.dtree(n, r, t)[1]} for t in (0, 1)]
    assert not interior[0] & interior[1]


def _allreduce(cluster, nbytes, algorithm, ready_s=None):
    tg = TaskGraph("t")
    ids = [d.id for d in cluster.devices]
    deps = {}
    for d in ids:   # each device's data is ready at its own time
        deps[d] = [tg.new(f"ready.{d}", cluster.device(d).compute,
                          (ready_s or {}).get(d, 0.0)).name]
    done = collective("allreduce", tg, cluster, ids, nbytes, deps, "ar", algorithm=algorithm)
    log = engine.run(tg, cluster.resources)
    assert log.ok
    return log, done, tg


@pytest.mark.parametrize("node_type,gpus", [("dgx1-v100", 32), ("cloud-v100-25gbe", 24),
                                            ("pcie-4gpu-p100-roce25g", 12)])
def test_a_tree_all_reduce_ends_nowhere_before_every_device_has_given_its_data(node_type, gpus):
    cluster = Cluster.from_node_type(node_type, gpus)
    late = {f"gpu{gpus - 3}": 2e-3, "gpu1": 1e-3}
    log, done, _ = _allreduce(cluster, 3e6, "tree", late)
    end = {t.name: e for t, e in zip(log.tasks, log.end_s, strict=True)}
    for d, tasks in done.items():
        assert tasks and max(end[t] for t in tasks) > 2e-3, d


def test_trees_spare_512_gpus_a_ring_of_1022_latencies_and_stay_deterministic():
    cluster = Cluster.from_node_type("dgx1-v100", 512)
    ring, _, _ = _allreduce(cluster, 64e3, "ring")
    nccl, _, tg = _allreduce(cluster, 64e3, "nccl")
    assert {t.meta.get("collective") for t in tg
            if t.category == "comm" and "latency_of" not in t.meta
            and "first_line_of" not in t.meta} == {"tree"}
    assert nccl.makespan_s < ring.makespan_s / 10
    again, _, _ = _allreduce(cluster, 64e3, "nccl")
    assert again.makespan_s == nccl.makespan_s


@pytest.mark.parametrize("nbytes,protocol", [(200e6, "Simple"), (16e3, "LL")])
def test_nccl_on_one_node_runs_the_ring_with_the_protocol_for_the_size(nbytes, protocol):
    """A large buffer on the Simple ring exactly as `ring` runs it; a small one with LL,
    whose hops pay a seventh of Simple's latency."""
    cluster = Cluster.from_node_type("dgx1-v100", 8)
    ring, _, ring_tg = _allreduce(cluster, nbytes, "ring")
    nccl, _, nccl_tg = _allreduce(cluster, nbytes, "nccl")
    assert {t.meta.get("protocol", "Simple") for t in nccl_tg if t.category == "comm"} == \
        {protocol}
    if protocol == "Simple":
        assert [t.duration_s for t in nccl_tg] == [t.duration_s for t in ring_tg]
        assert nccl.makespan_s == ring.makespan_s
    else:
        assert nccl.makespan_s < ring.makespan_s / 2


def test_an_unknown_algorithm_is_named():
    cluster = Cluster.from_node_type("dgx1-v100", 16)
    with pytest.raises(SimulationError, match="algorithm must be one of"):
        _allreduce(cluster, 1e6, "butterfly")


def test_tree_channels_are_nccls_doubled_ones_and_keep_every_nic_busy():
    """Two DGX-1 nodes, 20 MB on trees: NCCL's four channels (one per NIC) doubled, channel
    c on tree 0 and channel c + 4 on tree 1 leaving through the same GPU and NIC, their
    chains on the NVLinks of NCCL's rings; with two nodes each tree is one edge carrying
    its half both ways, so each NIC carries 20 MB / 4 each way. The chains of two NICs run
    on the same NVLinks in opposite directions (the node's rings 0 and 1 are one cycle each
    way), so those links are the busiest; the all-reduce takes within 1.3 x their time (the
    rest: the pipeline filling and draining, each chunk's hop between nodes a 9.6 us NCCL
    network step)."""
    cluster = Cluster.from_node_type("dgx1-v100", 16)
    log, _, tg = _allreduce(cluster, 20e6, "tree")
    leaving: dict[str, set] = {}
    for t in tg:
        if t.name.startswith("ar.t") and not t.name.endswith((".recv", ".arrive")) and \
                any(".nic" in r for r in t.resources):
            leaving.setdefault(t.name.split(".")[1], set()).add((t.meta["src"], t.resources))
    assert sorted(leaving) == [f"t{c}" for c in range(8)]
    for c in range(4):
        assert leaving[f"t{c}"] == leaving[f"t{c + 4}"]
        assert {r for _, rs in leaving[f"t{c}"] for r in rs} == {f"node0.nic{c}.tx",
                                                                   f"node1.nic{c}.tx"}
    carried: dict[str, float] = {}
    for t in tg:
        for r in t.resources:
            carried[r] = carried.get(r, 0.0) + t.meta.get("bytes", 0.0) + t.meta.get(
                "received_bytes", 0.0)
    assert [carried[f"node{n}.nic{c}.{side}"] for n in (0, 1) for c in range(4)
            for side in ("tx", "rx")] == pytest.approx([20e6 / 4] * 16)
    busiest_link_s = max(_busy_s(log, lambda r: r.startswith("link:")).values())
    assert busiest_link_s > _busiest_port_s(log)
    assert log.makespan_s < 1.3 * busiest_link_s


def _busy_s(log, counted):
    busy: dict[str, float] = {}
    for t, s, e in zip(log.tasks, log.start_s, log.end_s, strict=True):
        for r in t.resources:
            if counted(r):
                busy[r] = busy.get(r, 0.0) + e - s
    return busy


def _busiest_port_s(log):
    return max(_busy_s(log, lambda r: r.startswith("node")).values())


def test_trees_on_one_nic_nodes_keep_the_busiest_nic_near_its_rate():
    """Four cloud nodes of one NIC, 20 MB on trees: a node interior in one tree receives two
    children's chunks while it sends up and down; its NIC's send and receive sides each
    serve their flows in turn, so the all-reduce takes little more than that NIC's time."""
    cluster = Cluster.from_node_type("cloud-v100-25gbe", 32)
    log, _, _ = _allreduce(cluster, 20e6, "tree")
    assert log.makespan_s < 1.1 * _busiest_port_s(log)


@settings(max_examples=12, deadline=None)
@given(nodes=st.integers(2, 9), nbytes=st.sampled_from([3e5, 4e6]))
def test_a_hop_between_nodes_is_served_by_both_ends_and_arrives_after_both(nodes, nbytes):
    """Each tree hop between nodes is a send on the sender's ports and a receive on the
    receiver's, ready together; what waits for the chunk waits for both, so every NIC's
    send side carries the bytes the receive sides take, and nothing ends before the
    busiest port has done its work."""
    cluster = Cluster.from_node_type("pcie-4gpu-p100-roce25g", 4 * nodes)
    log, _, tg = _allreduce(cluster, nbytes, "tree")
    by_name = {t.name: t for t in tg}
    sent = received = 0.0
    for t in tg:
        if t.name.endswith(".recv"):
            send = by_name[t.name.removesuffix(".recv")]
            assert t.deps == send.deps and t.meta["received_bytes"] == send.meta["bytes"]
            assert all(r.endswith(".rx") for r in t.resources)
            assert all(r.endswith(".tx") for r in send.resources)
            users = [u for u in tg if t.name in u.deps]
            assert users and all(f"{send.name}.arrive" in u.deps for u in users)
            sent += send.meta["bytes"]
            received += t.meta["received_bytes"]
    assert sent == received > 0
    assert log.makespan_s >= _busiest_port_s(log)


def test_nccls_ring_across_nodes_runs_a_ring_per_nic_at_its_tuned_time():
    """Eight DGX-1 nodes (four NICs each), 64 MiB, where NCCL's tuning picks the ring: one
    ring per NIC, each entering and leaving every node through the two GPUs of its NIC and
    on its own NVLink ring inside, so the rings share no NIC; the all-reduce takes within
    15% of the time the tuning predicts for it, where one ring through every GPU takes
    three times as long."""
    cluster = Cluster.from_node_type("dgx1-v100", 64)
    ids = [d.id for d in cluster.devices]
    nbytes = 64 * 2**20
    choice = tuning.choose(nf.fabric_of(cluster, ids), nbytes)
    assert choice.algorithm == "ring"
    orders = nf.nic_ring_orders(cluster, ids)
    assert orders is not None and len(orders) == cluster.layout.nic_count() == 4
    exits = set()
    for order, lanes in orders:
        assert sorted(order) == sorted(ids) and len(lanes) == len(order)
        for n in range(8):   # every node entered and left through one NIC, the ring's own
            first, last = order[8 * n], order[8 * n + 7]
            nic = cluster.layout.nic_of(int(first[3:]) % 8)
            assert cluster.layout.nic_of(int(last[3:]) % 8) == nic
            assert lanes[8 * n + 7] is None
        exits.add(nic)
    assert exits == {0, 1, 2, 3}
    nccl, _, _ = _allreduce(cluster, nbytes, "nccl")
    one_ring, _, _ = _allreduce(cluster, nbytes, "ring")
    predicted = choice.time_s(nbytes)      # the tuning's latency holds its launch
    assert nccl.makespan_s == pytest.approx(predicted, rel=0.15)
    assert one_ring.makespan_s > 2.5 * nccl.makespan_s
    # one node, or nodes of one NIC, keep the ring(s) they had
    assert nf.nic_ring_orders(cluster, ids[:8]) is None
    cloud = Cluster.from_node_type("cloud-v100-25gbe", 16)
    assert nf.nic_ring_orders(cloud, [d.id for d in cloud.devices]) is None


def _bandwidth_bound_s(cluster, nbytes):
    """No all-reduce over N nodes beats each node sending 2 S (N - 1) / N bytes over all
    its NICs at their full rate."""
    nodes = cluster.nodes
    link = cluster.inter_node_link
    assert link is not None
    return 2 * nbytes * (nodes - 1) / nodes / (cluster.layout.nic_count() * link.bandwidth_Bps)


@pytest.mark.parametrize("nodes", [2, 4, 8, 16])
@pytest.mark.parametrize("mib", [16, 64])
def test_a_large_tree_all_reduce_takes_what_nccls_tuning_predicts(nodes, mib):
    """DGX-1 nodes, a large buffer on trees (LL128): from 4 to 16 nodes within -10% / +20%
    of NCCL's tuning prediction (its pipeline here fills in at most 16 chunks a channel,
    NCCL's own are finer: the larger buffers and deeper trees sit above it). On 2 nodes
    each tree is one edge that carries its half each way, half what the tuning's bus
    bandwidth assumes a NIC carries: below the prediction, never below the NICs' bound."""
    cluster = Cluster.from_node_type("dgx1-v100", 8 * nodes)
    ids = [d.id for d in cluster.devices]
    nbytes = mib * 2**20
    choice = tuning.choose(nf.fabric_of(cluster, ids), nbytes, ("tree",))
    assert choice.protocol == "LL128"
    log, _, _ = _allreduce(cluster, nbytes, "tree")
    ratio = log.makespan_s / choice.time_s(nbytes)
    if nodes == 2:
        assert _bandwidth_bound_s(cluster, nbytes) < log.makespan_s and ratio < 0.9
    else:
        assert 0.9 < ratio < 1.2


def test_nccls_trees_on_eight_dgx1_take_their_tuned_time():
    """25 and 38 MiB over 8 DGX-1 nodes, where NCCL's tuning picks trees: at most 12%
    above its prediction (a channel's share goes in at most 16 chunks, coarser than NCCL's,
    and each chunk's hop between nodes pays NCCL's network step)."""
    cluster = Cluster.from_node_type("dgx1-v100", 64)
    ids = [d.id for d in cluster.devices]
    for mib in (25, 38):
        nbytes = mib * 2**20
        choice = tuning.choose(nf.fabric_of(cluster, ids), nbytes)
        assert choice.algorithm == "tree"
        log, _, _ = _allreduce(cluster, nbytes, "nccl")
        assert choice.time_s(nbytes) < log.makespan_s < 1.12 * choice.time_s(nbytes)


def _regime(cluster, nbytes):
    """What shapes a tree all-reduce's pipeline: the protocol NCCL's tuning picks and the
    pieces' count and size class (NCCL's chunk)."""
    ids = [d.id for d in cluster.devices]
    fabric = nf.fabric_of(cluster, ids)
    protocol = tuning.choose(fabric, nbytes, ("tree",)).protocol
    channels = 2 * fabric.channels
    chunk = tuning.tree_chunk_bytes(nbytes, channels, len(ids), fabric.nodes, protocol)
    return protocol, chunk, len(trees.chunk_sizes(nbytes / channels, chunk))


@settings(max_examples=25, deadline=None)
@given(node_type=st.sampled_from(["dgx1-v100", "pcie-4gpu-p100-roce25g"]),
       nodes=st.integers(2, 6), small=st.floats(1e3, 3e7), more=st.floats(1.0, 1.5))
def test_a_tree_all_reduce_grows_with_its_bytes_and_never_beats_the_nics(node_type, nodes,
                                                                       small, more):
    """Over any node count and size, on streamed (LL, LL128) and whole-chunk (Simple)
    hops: no size beats the NICs' bound, and where the protocol and the chunking stay the
    same, more bytes take no less time, but for the anomalies of ports serving ready
    transfers by priority (a longer last chunk can reorder a shared port: up to 10% here).
    Across NCCL's thresholds time can drop with more bytes, as NCCL's own does: fewer,
    larger chunks when a size passes its chunk rule's bound, another protocol."""
    cluster = Cluster.from_node_type(node_type, nodes * (8 if node_type == "dgx1-v100" else 4))
    larger = small * more
    times = []
    for nbytes in (small, larger):
        log, _, _ = _allreduce(cluster, nbytes, "tree")
        assert log.makespan_s >= _bandwidth_bound_s(cluster, nbytes)
        times.append(log.makespan_s)
    if _regime(cluster, small) == _regime(cluster, larger):
        assert times[1] >= 0.9 * times[0]


@pytest.mark.parametrize("protocol", ["Simple", "LL128", "LL"])
def test_tree_chunks_are_nccls_until_the_cap(protocol):
    """NCCL's chunk halves until a channel's share fills the tree's pipeline, never once it is
    32 KiB or less; the pieces are NCCL's chunks (the last partial) up to the cap, then
    equal."""
    small = tuning.tree_chunk_bytes(2**20, 8, 64, 8, protocol)
    large = tuning.tree_chunk_bytes(2**30, 8, 64, 8, protocol)
    assert 16 * 1024 < small <= large <= tuning.STEP_DATA_BYTES[protocol]
    pieces = trees.chunk_sizes(3.5 * large, large)
    assert pieces == [large] * 3 + [large / 2]
    assert trees.chunk_sizes(100 * large, large) == [100 * large / trees.TREE_MAX_CHUNKS] \
        * trees.TREE_MAX_CHUNKS


def test_a_tree_all_reduce_pays_its_launch_once_not_once_a_level():
    """Every device launches NCCL's kernel once its data is ready, all at once: a launch
    of 1 ms delays the all-reduce by about 1 ms, not by 1 ms at each level of the tree."""
    cluster = Cluster.from_node_type("dgx1-v100", 64)
    ids = [d.id for d in cluster.devices]
    makespans = []
    for launch_s in (0.0, 1e-3):
        tg = TaskGraph("t")
        collective("allreduce", tg, cluster, ids, 25 * 2**20, [], "ar",
                   launch_latency_s=launch_s, algorithm="tree")
        makespans.append(engine.run(tg, cluster.resources).makespan_s)
    assert makespans[1] - makespans[0] == pytest.approx(1e-3, abs=20e-6)
