"""Which replicas an offloading step (swap, swap-all) simulates by default: every one up to 8
devices, and beyond where replica 0 does not stand exactly for the others; replica 0 alone
beyond 8 where it does (policies/_offload.in_lockstep)."""
from __future__ import annotations

import pytest

from hwmodels import catalog
from simulator import Cluster, simulate
from simulator.node_types import NodeLayout
from simulator.policies._offload import LOCKSTEP_MIN_DEVICES, in_lockstep

SPEC = catalog.device("titan-x-pascal").with_options(memory_bytes=int(0.6 * 2 ** 30))


def _cluster(n, **kw):
    return Cluster.build(SPEC, n, "pcie3", **kw)


def _run(cluster, policy, replicas=None):
    result = simulate("resnet20", cluster, policy, batch=256,
                      **({"replicas": replicas} if replicas else {}))
    assert result.ok
    return result


@pytest.mark.parametrize("policy", ["swap", "swap-all"])
def test_replica_zero_alone_beyond_eight_devices_gives_every_replicas_step(policy):
    cluster = _cluster(LOCKSTEP_MIN_DEVICES)
    assert in_lockstep(cluster)
    default = _run(cluster, policy)
    assert default.log.meta["replicas"] == "one"
    full = _run(cluster, policy, "all")
    assert default.iteration_time_s == pytest.approx(full.iteration_time_s, rel=1e-12)
    assert default.extras["offloaded_gib"] == full.extras["offloaded_gib"] > 0
    assert _run(_cluster(LOCKSTEP_MIN_DEVICES - 1), policy).log.meta["replicas"] == "all"


def test_replicas_that_share_a_switch_or_host_memory_or_differ_are_each_simulated():
    n = LOCKSTEP_MIN_DEVICES + 1
    shared = _cluster(n, layout=NodeLayout(pcie_switches=tuple((i, i + 1)
                                                                for i in range(0, n, 2))))
    hosted = _cluster(n, host=catalog.host("ddr4-workstation"))
    slower = _cluster(n, speeds={"gpu3": 0.9})
    for cluster in (shared, hosted, slower):
        assert not in_lockstep(cluster)
        assert _run(cluster, "swap-all").log.meta["replicas"] == "all"
