"""Every policy's collectives pay the one launch cost data parallelism pays
(collectives.framework_launch_s): NCCL's base latency on GPUs, none on CPUs."""
from __future__ import annotations

import pytest

from simulator import Cluster, simulate
from simulator.collectives import NCCL_BASE_LATENCY_S, closed_form_s, framework_launch_s

CASES = [("data-parallel", "resnet20", 16, {}), ("swap", "resnet20", 16, {}),
         ("swap-all", "resnet20", 16, {}), ("supernet-dp", "spos_cifar", 64, {"paths": 2}),
         ("path-parallel", "spos_cifar", 64, {"paths": 4})]


def _allreduces(policy, workload, batch, opts, cluster):
    result = simulate(workload, cluster, policy, batch=batch, collectives="flow",
                      algorithm="ring", **opts)
    assert result.ok
    tasks = [t for t in result.log.tasks if t.meta.get("collective") == "allreduce"]
    assert tasks
    return tasks


@pytest.mark.parametrize("policy, workload, batch, opts", CASES)
def test_every_policys_allreduce_pays_ncclss_launch_on_gpus(policy, workload, batch, opts):
    cluster = Cluster.build("v100", 4, "nvlink2")
    ids = [d.id for d in cluster.devices]
    assert framework_launch_s(cluster) == NCCL_BASE_LATENCY_S > 0
    for t in _allreduces(policy, workload, batch, opts, cluster):
        nbytes = t.meta["bytes"] / (2 * (len(ids) - 1))     # a flow task's bytes moved
        alone = closed_form_s("allreduce", cluster, ids, nbytes, 0.0)
        assert t.duration_s - alone == pytest.approx(NCCL_BASE_LATENCY_S, rel=1e-9), t.name


@pytest.mark.parametrize("policy, workload, batch, opts", CASES[:3])
def test_no_launch_is_charged_where_no_gpu_runs_nccl(policy, workload, batch, opts):
    cluster = Cluster.build("skylake-x-6c", 2, "eth10g", host_link="pcie3")
    ids = [d.id for d in cluster.devices]
    assert framework_launch_s(cluster) == 0.0
    for t in _allreduces(policy, workload, batch, opts, cluster):
        nbytes = t.meta["bytes"] / (2 * (len(ids) - 1))
        assert t.duration_s == pytest.approx(closed_form_s("allreduce", cluster, ids,
                                                           nbytes, 0.0), rel=1e-9)
