"""Stock Caffe's multi-GPU training (data-parallel gradient_sync 'caffe-p2p' and 'caffe-nccl'):
P2PSync's tree of GPU pairs, its full-size copies and adds, nothing sent during a GPU's own
compute, and the uses it refuses by name."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Cluster, simulate
from simulator.cli import main
from simulator.policies import ConfigError
from simulator.policies._caffe_p2p import (
    children_of,
    p2p_pairs,
    pairing_rounds,
    receive_buffer_bytes,
)
from simulator.policies._data_parallel import caffe_nccl_groups
from workloads import zoo
from workloads.training import lower_training


def _ids(p: int) -> list[str]:
    return [f"gpu{i}" for i in range(p)]


def test_eight_gpus_pair_as_caffes_device_pair_compute():
    assert p2p_pairs(_ids(8)) == [("gpu0", "gpu1"), ("gpu2", "gpu3"), ("gpu4", "gpu5"),
                                  ("gpu6", "gpu7"), ("gpu0", "gpu2"), ("gpu4", "gpu6"),
                                  ("gpu0", "gpu4")]
    assert children_of(_ids(8))["gpu0"] == ["gpu1", "gpu2", "gpu4"]


@given(st.integers(1, 64))
def test_the_tree_spans_every_gpu_in_ceil_log2_rounds(p):
    ids = _ids(p)
    pairs = p2p_pairs(ids)
    rounds = math.ceil(math.log2(p)) if p > 1 else 0
    assert pairing_rounds(p) == rounds
    assert len(pairs) == p - 1
    assert sorted(child for _, child in pairs) == sorted(ids[1:])
    assert all(ids.index(parent) < ids.index(child) for parent, child in pairs)
    assert len(children_of(ids)["gpu0"]) == rounds   # the root pairs in every round
    parent = {child: par for par, child in pairs}
    for d in ids:   # no path to the root is longer than the rounds
        hops = 0
        while d in parent:
            d, hops = parent[d], hops + 1
        assert d == "gpu0" and hops <= rounds


def _p2p_run(p=8, workload="resnet20", batch=8, **kw):
    cluster = Cluster.build("titan-x-pascal", p, "pcie3")
    return simulate(workload, cluster, "data-parallel", batch=batch, gradient_sync="caffe-p2p",
                    **kw)


def test_every_copy_moves_the_whole_gradient_over_the_pair_link_each_way():
    r = _p2p_run()
    weights = sum(op.param_bytes for op in zoo.get("resnet20", batch=8) if op.params)
    comm = [t for t in r.log.tasks if t.category == "comm"]
    down = sorted((t.meta["src"], t.meta["dst"]) for t in comm
                  if t.meta["collective"] == "broadcast")
    up = sorted((t.meta["dst"], t.meta["src"]) for t in comm if t.meta["collective"] == "reduce")
    assert down == up == sorted(p2p_pairs(_ids(8)))
    assert {t.meta["bytes"] for t in comm} == {weights}
    adds = [t for t in r.log.tasks if t.name.split("/")[-1].startswith("p2p.add.")]
    assert sorted(t.device for t in adds) == sorted(par for par, _ in p2p_pairs(_ids(8)))
    assert all(t.meta["kind"] == "add" and t.duration_s > 0 for t in adds)
    updates = {t.device for t in r.log.tasks if t.meta.get("phase") == "update"
               and t.meta.get("kind") == "sgd_update"}
    assert updates == {"gpu0"}   # the root alone updates


def test_no_gpu_sends_while_it_computes_and_the_root_waits_for_every_level():
    r = _p2p_run()
    spans = list(zip(r.log.tasks, r.log.start_s, r.log.end_s, strict=True))
    compute: dict[str, list[tuple[float, float]]] = {}
    for t, s, e in spans:
        if t.category == "compute" and e > s:
            compute.setdefault(t.device, []).append((s, e))
    for t, s, e in spans:
        if t.category == "comm":   # the device issuing a copy (t.device) waits for it
            assert all(e2 <= s or s2 >= e for s2, e2 in compute[t.device]), t.name
    end = {t.name: e for t, _, e in spans}
    start = {t.name: s for t, s, _ in spans}
    # the root's forward starts after its ceil(log2 8) = 3 sends, one after another
    sends = sorted(end[t.name] for t in r.log.tasks if t.name.startswith("p2p.bcast.gpu0-"))
    assert len(sends) == 3
    first_compute = min(s for s, e in compute["gpu0"])
    assert first_compute >= sends[-1]
    # the leaf deepest down (gpu7) reaches the root through 6 and 4: three copies up
    chain = ["p2p.reduce.gpu7-gpu6", "p2p.reduce.gpu6-gpu4", "p2p.reduce.gpu4-gpu0"]
    assert all(end[a] <= start[b] for a, b in zip(chain, chain[1:], strict=False))


def test_a_parent_holds_a_gradient_buffer_per_child_and_workers_no_momentum():
    r = _p2p_run(framework_memory="caffe")
    weights = sum(op.param_bytes for op in zoo.get("resnet20", batch=8) if op.params)
    assert receive_buffer_bytes(_ids(8), weights)["gpu0"] == 3 * weights
    peak = r.peak_memory_bytes
    # root: 3 buffers and the momentum history more than the leaf gpu7; gpu4: 2 buffers
    assert peak["gpu0"] - peak["gpu7"] == 4 * weights
    assert peak["gpu4"] - peak["gpu7"] == 2 * weights


def test_p2psync_scales_worse_than_caffe_10s_layer_wise_nccl():
    cluster = Cluster.build("titan-x-pascal", 8, "pcie3")
    one = simulate("resnet50", Cluster.build("titan-x-pascal", 1, "pcie3"), "data-parallel",
                   batch=16)
    p2p, nccl = (simulate("resnet50", cluster, "data-parallel", batch=16, gradient_sync=s)
                 for s in ("caffe-p2p", "caffe-nccl"))
    assert p2p.iteration_time_s > nccl.iteration_time_s > one.iteration_time_s * 0.99


def test_caffe_nccl_all_reduces_each_layer_once():
    g = lower_training(zoo.get("resnet20", batch=4))
    groups = caffe_nccl_groups(g)
    producers = [op for op in g.topo() if op.phase == "backward" and op.params]
    assert [grp.ops for grp in groups] == [(op.name,) for op in producers]
    assert sum(grp.nbytes for grp in groups) == sum(op.param_bytes for op in g if op.params
                                                    and op.phase == "forward")


@pytest.mark.parametrize("cluster, kw, message", [
    (lambda: Cluster.build("titan-x-pascal", 8, "pcie3", devices_per_node=4,
                                inter_node_link="eth10g"), {},
     "runs within one machine: the cluster has 2 nodes"),
    (lambda: Cluster.build("skylake-x-6c", 2, "eth10g"), {},
     "copies between GPUs (CUDA peer copies): the cluster has cpu devices"),
    (lambda: Cluster.build("titan-x-pascal", 4, "pcie3"), {"replicas": "one"},
     "every replica is simulated (replicas 'one' refused)"),
    (lambda: Cluster.build("titan-x-pascal", 4, "pcie3"), {"collectives": "flow"},
     "collectives 'flow' refused"),
    (lambda: Cluster.build("titan-x-pascal", 4, "pcie3"), {"algorithm": "hierarchical"},
     "the all-reduce algorithm 'hierarchical' does not apply"),
    (lambda: Cluster.build("titan-x-pascal", 4, "pcie3"), {"fusion_mb": 8},
     "give them with gradient_sync='horovod' (got 'caffe-p2p')"),
])
def test_uses_p2psync_cannot_run_are_refused_by_name(cluster, kw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        simulate("resnet20", cluster(), "data-parallel", batch=4, gradient_sync="caffe-p2p",
                 **kw)


def test_cli_exits_2_naming_the_refused_option(capsys):
    code = main(["simulate", "--workload", "resnet20", "--batch", "8", "--hardware",
                 "titan-x-pascal", "--devices", "4", "--link", "pcie3", "--policy",
                 "data-parallel", "--gradient-sync", "caffe-p2p", "--replicas", "classes"])
    err = capsys.readouterr().err
    assert code == 2 and "replicas 'classes' refused" in err, err


@settings(max_examples=5, deadline=None)
@given(st.integers(2, 6))
def test_one_step_ends_with_the_roots_update(p):
    r = _p2p_run(p=p, batch=4)
    last = max(range(len(r.log.tasks)), key=lambda i: (r.log.end_s[i], i))
    assert r.log.tasks[last].device == "gpu0"
    assert r.iteration_time_s == pytest.approx(max(r.log.end_s))

