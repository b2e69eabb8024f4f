"""NCCL's per-step latencies on simulated hops (nccl_fabric.hop_latency_s), the sources of
NCCL's constants, and flow-level all-reduces that NCCL's tuning puts on its trees."""
from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog
from simulator import Cluster, engine
from simulator import nccl_fabric as nf
from simulator import nccl_tuning as tuning
from simulator.collectives import NCCL_BASE_LATENCY_S, closed_form_s, collective
from simulator.tasks import TaskGraph

LINKS_TOML = Path(__file__).parents[2] / "hwmodels" / "catalog" / "links.toml"


def test_every_constant_of_nccls_model_names_its_release_and_file():
    named = {k for k, v in vars(tuning).items()
             if k.isupper() and isinstance(v, (int, float, dict)) and not isinstance(v, bool)}
    named -= {"SOURCES"}
    assert named == set(tuning.SOURCES)
    for name, source in tuning.SOURCES.items():
        assert f"NCCL {tuning.NCCL_RELEASE} " in source, name
        assert ".cc" in source or ".h" in source, name


def test_every_links_source_says_where_its_latency_comes_from():
    links = tomllib.loads(LINKS_TOML.read_text())["links"]
    for name, link in links.items():
        assert "latency" in link["source"].lower(), name


def _two_nodes(link_latency_s: float) -> Cluster:
    ib = dataclasses.replace(catalog.link("ib100"), latency_s=link_latency_s)
    return Cluster.build("v100", 4, "nvlink2", devices_per_node=2, inter_node_link=ib)


def test_a_hop_between_gpus_pays_nccls_step_where_the_link_is_faster():
    cluster = _two_nodes(2e-6)
    ids = [d.id for d in cluster.devices]
    for protocol in tuning.PROTOCOLS:
        net = 1e-6 * tuning.HW_LATENCY_US["net"]["ring"][protocol]
        assert nf.hop_latency_s(cluster, ids[1], ids[2], 2e-6, protocol) == pytest.approx(net)
    # a link slower than NCCL's step (TCP's 25 us) keeps its own latency
    assert nf.hop_latency_s(cluster, ids[1], ids[2], 25e-6) == pytest.approx(25e-6)


def test_between_other_devices_a_hop_keeps_the_links_latency():
    cpus = Cluster.build("skylake-x-6c", 2, "ib100")
    ids = [d.id for d in cpus.devices]
    assert nf.hop_latency_s(cpus, ids[0], ids[1], 2e-6) == pytest.approx(2e-6)


@settings(max_examples=40, deadline=None)
@given(low=st.floats(0.0, 1e-4), high=st.floats(0.0, 1e-4),
       protocol=st.sampled_from(tuning.PROTOCOLS), algorithm=st.sampled_from(["ring", "tree"]))
def test_a_hops_latency_is_monotone_in_the_links(low, high, protocol, algorithm):
    low, high = sorted((low, high))
    cluster = _two_nodes(2e-6)
    ids = [d.id for d in cluster.devices]
    for a, b in ((ids[0], ids[1]), (ids[1], ids[2])):
        assert (nf.hop_latency_s(cluster, a, b, low, protocol, algorithm)
                <= nf.hop_latency_s(cluster, a, b, high, protocol, algorithm))


def allreduce_alone_s(cluster, nbytes, algorithm="nccl", fidelity="link", devices=None):
    """One all-reduce alone, after NCCL's launch, over `devices` (default: every device)."""
    ids = devices or [d.id for d in cluster.devices]
    tg = TaskGraph()
    collective("allreduce", tg, cluster, ids, nbytes, {}, "c", algorithm=algorithm,
               fidelity=fidelity, launch_latency_s=NCCL_BASE_LATENCY_S)
    log = engine.run(tg, cluster.resources)
    assert log.ok
    return log.makespan_s


@settings(max_examples=15, deadline=None)
@given(low=st.floats(0.0, 50e-6), high=st.floats(0.0, 50e-6),
       nbytes=st.sampled_from([1e3, 64e3, 4e6]), algorithm=st.sampled_from(["ring", "nccl"]))
def test_an_all_reduce_across_nodes_is_monotone_in_the_networks_latency(low, high, nbytes,
                                                                       algorithm):
    low, high = sorted((low, high))
    assert (allreduce_alone_s(_two_nodes(low), nbytes, algorithm)
            <= allreduce_alone_s(_two_nodes(high), nbytes, algorithm) * (1 + 1e-12))


@pytest.mark.parametrize("node_type,nodes", [("dgx-a100", 4), ("dgx-h100", 16),
                                             ("dgx1-v100", 8)])
@pytest.mark.parametrize("nbytes", [1e3, 64e3])
def test_a_small_tree_all_reduce_waits_at_least_its_depth_in_network_steps(node_type, nodes,
                                                                           nbytes):
    """NCCL's trees over N nodes are floor(log2 N) deep: a chunk goes up that many hops
    between nodes and back down, each at least NCCL's step over the network under the
    protocol run, after the launch."""
    cluster = Cluster.from_node_type(node_type, 8 * nodes)
    fabric = nf.fabric_of(cluster, [d.id for d in cluster.devices])
    choice = tuning.choose(fabric, nbytes)
    assert choice.algorithm == "tree"
    depth = int(math.log2(nodes))
    net_s = 1e-6 * tuning.HW_LATENCY_US["net"]["tree"][choice.protocol]
    bound = tuning.launch_s("tree", choice.protocol) + 2 * depth * net_s
    assert allreduce_alone_s(cluster, nbytes) >= bound


@pytest.mark.parametrize("nbytes", [1e3, 1e6])
def test_a_flow_level_all_reduce_on_nccls_trees_takes_the_tunings_time(nbytes):
    """At flow fidelity a small all-reduce over 64 H100s, which NCCL runs on its trees, takes
    the time NCCL's tuning predicts for them, far below the ring's 126 steps."""
    cluster = Cluster.from_node_type("dgx-h100", 64)
    ids = [d.id for d in cluster.devices]
    choice = tuning.choose(nf.fabric_of(cluster, ids), nbytes)
    assert choice.algorithm == "tree"
    flow = allreduce_alone_s(cluster, nbytes, fidelity="flow")
    launch = tuning.launch_s(choice.algorithm, choice.protocol)
    base = 1e-6 * tuning.BASE_LATENCY_US[choice.algorithm][choice.protocol]
    assert flow == pytest.approx(launch + choice.time_s(nbytes) - base, rel=1e-9)
    ring = closed_form_s("allreduce", cluster, ids, nbytes, NCCL_BASE_LATENCY_S)
    assert flow < ring / 5


@settings(max_examples=60, deadline=None)
@given(nodes=st.integers(1, 256), ppn=st.sampled_from([1, 2, 4, 8]),
       sizes=st.lists(st.floats(1.0, 1e10), min_size=2, max_size=2),
       hw=st.sampled_from(["nvlink", "pci"]))
def test_the_tuned_time_is_monotone_in_size(nodes, ppn, sizes, hw):
    """NCCL's pick is the least of increasing lines: more bytes never take less time."""
    small, large = sorted(sizes)
    fabric = tuning.Fabric(nodes * ppn, nodes, 4, 12.1, hw)
    assert (tuning.choose(fabric, small).time_s(small)
            <= tuning.choose(fabric, large).time_s(large))
