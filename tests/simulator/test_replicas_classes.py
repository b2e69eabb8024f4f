"""Data parallelism by symmetry class (replicas 'classes', the default on alike devices) gives
every replica's report ('all'), on any cluster shape and all-reduce algorithm."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Cluster
from simulator.api import simulate
from simulator.node_types import NodeLayout
from simulator.policies import ConfigError, _replicas
from simulator.report import summary_lines

ALGORITHMS = ("ring", "hierarchical", "nccl", "tree", "halving-doubling")


def _report(result) -> list[str]:
    """The report as printed, less the count of tasks simulated (what classes saves)."""
    return [line for line in summary_lines(result) if "tasks simulated" not in line]


def _run(make, replicas, policy="data-parallel", **options):
    return simulate("resnet20", make(), policy, batch=16, collectives="link",
                    **({"replicas": replicas} if replicas else {}), **options)


def _figures(result) -> dict:
    """--json's figures, less the tasks simulated and the options given."""
    return {k: v for k, v in result.summary().items() if k not in ("tasks", "options")}


def _same(make, policy="data-parallel", **options):
    full = _run(make, "all", policy, **options)
    for replicas in ("classes", None):   # asked for, and the default
        by_class = _run(make, replicas, policy, **options)
        assert _report(by_class) == _report(full), (replicas, options)
        assert _figures(by_class) == _figures(full)
        assert by_class.iteration_time_s == full.iteration_time_s
        assert by_class.summary()["exposed_communication_s"] == \
            full.summary()["exposed_communication_s"]
        assert max(by_class.peak_memory_bytes.values()) == max(full.peak_memory_bytes.values())
    return full, by_class


@settings(max_examples=25, deadline=None)
@given(nodes=st.integers(1, 4), per_node=st.integers(1, 4),
       link=st.sampled_from(["nvlink2", "eth10g", "wifi"]), nics=st.booleans(),
       topology=st.sampled_from(["switch", "fully-connected"]),
       algorithm=st.sampled_from(ALGORITHMS), bucket_mb=st.sampled_from([0.5, 4.0, 25.0]))
def test_classes_report_equals_every_replicas(nodes, per_node, link, nics, topology,
                                              algorithm, bucket_mb):
    if nodes * per_node < 2 or (algorithm == "halving-doubling" and nodes == 3):
        return
    layout = NodeLayout(nics=tuple((g,) for g in range(per_node)) if nics else None)

    def make():
        return Cluster.build("v100", nodes * per_node, link, topology=topology,
                             devices_per_node=per_node,
                             inter_node_link="ib100" if nodes > 1 else None, layout=layout)
    _same(make, algorithm=algorithm, bucket_mb=bucket_mb)


@pytest.mark.parametrize("node_type, gpus", [("dgx1-v100", 16), ("cloud-v100-25gbe", 16),
                                             ("pcie-4gpu-p100-25gbe", 8), ("dgx-a100", 16)])
@pytest.mark.parametrize("algorithm", ["nccl", "ring"])
def test_classes_on_catalog_nodes_equal_every_replica(node_type, gpus, algorithm):
    _same(lambda: Cluster.from_node_type(node_type, gpus), algorithm=algorithm)


@settings(max_examples=6, deadline=None)
@given(nodes=st.integers(1, 3), per_node=st.integers(2, 4), stage=st.sampled_from([1, 2, 3]),
       algorithm=st.sampled_from(["nccl", "ring"]), hybrid=st.booleans())
def test_fsdp_by_class_equals_every_replica(nodes, per_node, stage, algorithm, hybrid):
    def make():
        return Cluster.build("v100", nodes * per_node, "nvlink2", devices_per_node=per_node,
                             inter_node_link="ib100" if nodes > 1 else None)
    _same(make, "fsdp", stage=stage, algorithm=algorithm,
          shard_group=per_node if hybrid else None)


def test_a_step_on_rings_is_built_by_class_and_one_on_trees_replica_by_replica():
    def make():
        return Cluster.from_node_type("cloud-v100-25gbe", 16)
    ring = _run(make, None, algorithm="ring")
    assert ring.log.meta["replicas"] == "classes" and len(ring.log.meta["resident_bytes"]) == 8
    # NCCL's tuning puts the small buckets on trees, which no class stands for
    tree = _run(make, "classes", algorithm="tree")
    assert tree.log.meta["replicas"] == "all" and len(tree.log.meta["resident_bytes"]) == 16
    assert not _replicas.builds_by_class(make(), "tree", [1e6])
    assert _replicas.builds_by_class(make(), "nccl", [100e6])


@pytest.mark.parametrize("algorithm", ["ring", "nccl"])
def test_rail_uplinks_carry_every_nodes_traffic_when_one_class_is_simulated(algorithm):
    # a ring from NIC 1 of a node to NIC 0 of the next crosses rail 1's uplink and rail 0's
    # downlink; every node's such hop goes through the same two, not only the simulated node's
    def make():
        layout = NodeLayout(nics=((0,), (1,)), network="rail-optimised")
        return Cluster.build("v100", 8, "nvlink2", devices_per_node=2,
                             inter_node_link="ib100", layout=layout)
    full, by_class = _same(make, algorithm=algorithm)
    assert by_class.log.meta["replicas"] == "classes"
    rails = {r for r in full.link_bytes if r.startswith("rail")}
    assert algorithm == "nccl" or rails      # NCCL's rings per NIC stay on their rails
    for r in rails:
        assert by_class.link_bytes[r] == pytest.approx(full.link_bytes[r])
        assert by_class.utilisation[r] == pytest.approx(full.utilisation[r])
    assert by_class.link_bytes.keys() == full.link_bytes.keys()


def test_devices_that_differ_are_simulated_every_one():
    cluster = Cluster.from_node_type("dgx1-v100", 16, speeds={"gpu3": 0.9})
    assert _replicas.choose(cluster, None, None) == ("link", "all")
    alike = Cluster.from_node_type("dgx1-v100", 16)
    assert _replicas.choose(alike, None, None) == ("link", "classes")
    assert _replicas.choose(alike, None, None, rank_spread=0.05) == ("link", "all")
    big = Cluster.from_node_type("dgx1-v100", 128)
    assert _replicas.choose(big, None, None) == ("link", "classes")
    # beyond 64 devices a step whose all-reduces have no class runs flow-level collectives
    assert _replicas.without_classes(big, None, None) == ("flow", "classes")
    assert _replicas.without_classes(big, "link", "classes") == ("link", "all")


@pytest.mark.parametrize("policy", ["swap", "swap-all"])
def test_offloading_refuses_classes_by_name(policy):
    # a node's devices swap into one host memory, which one class of devices would not fill
    with pytest.raises(ConfigError, match="replicas.*all or one"):
        simulate("resnet20", Cluster.build("v100", 4, "nvlink2"), policy, batch=16,
                 replicas="classes")
