"""Supernet policies: supernet-dp, path-parallel, supernet-pipeline (small CIFAR supernet)."""
import subprocess
import sys

import pytest

from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.policies import ConfigError
from workloads.graph import WorkloadError

WL, BATCH = "spos_cifar", 64


@pytest.fixture(scope="module")
def four():
    return Cluster.build("v100", 4, "nvlink2")


def run(cluster, policy, **opts):
    return simulate(WL, cluster, policy, batch=BATCH, **opts)


def test_path_parallel_beats_conventional_per_subnet(four):
    dp = run(four, "supernet-dp", paths=4)
    pp = run(four, "path-parallel", paths=4)
    assert dp.ok and pp.ok
    assert pp.throughput_samples_per_s > 1.2 * dp.throughput_samples_per_s
    # the same run twice gives the same figures
    assert run(four, "path-parallel", paths=4).iteration_time_s == pp.iteration_time_s
    # the search tried every (G, g) and kept the fastest
    shapes = {(r["groups"], r["gpus_per_group"]) for r in pp.extras["search"]}
    assert shapes == {(4, 1), (2, 2), (1, 4)}
    best = min(r["step_s"] for r in pp.extras["search"])
    assert pp.iteration_time_s == pytest.approx(best)


def test_gradient_merging_sends_fewer_bytes(four):
    on = run(four, "path-parallel", paths=4, groups=4)
    off = run(four, "path-parallel", paths=4, groups=4, merge_gradients=False)
    assert on.extras["gradient_bytes"] < off.extras["gradient_bytes"]
    assert sum(on.link_bytes.values()) < sum(off.link_bytes.values())


def test_compute_merging_removes_redundant_flops(four):
    subnets = "0,1,2,3,0,1,2,3;0,1,2,3,3,3,3,3"   # a common prefix of four blocks
    on = run(four, "path-parallel", subnets=subnets, groups=1)
    off = run(four, "path-parallel", subnets=subnets, groups=1, merge_compute=False)
    assert on.extras["flops_saved"] > 0 and off.extras["flops_saved"] == 0
    assert on.extras["step_flops"] < off.extras["step_flops"]
    assert on.iteration_time_s < off.iteration_time_s


def test_pipeline_waits_only_on_shared_layers():
    two = Cluster.build("v100", 2, "nvlink2")
    same = run(two, "supernet-pipeline", subnets="0,0,0,0,0,0,0,0;0,0,0,0,0,0,0,0")
    apart = run(two, "supernet-pipeline", subnets="0,0,0,0,0,0,0,0;1,1,1,1,1,1,1,1")
    assert same.ok and apart.ok
    assert apart.makespan_s < same.makespan_s
    copies = [t for t in same.log.tasks if t.category == "copy"]
    assert copies, "candidate weights are prefetched from host memory"


@pytest.mark.parametrize("opts,words", [
    (dict(paths=8), "8 paths need at least 8 GPUs"),
    (dict(paths=4, groups=3, gpus_per_group=2), "3 x 2 = 6, not the cluster's 4 GPUs"),
    (dict(paths=4, groups=3), "does not divide"),
    (dict(paths=2, groups=4), "leaves groups idle"),
])
def test_bad_shapes_are_clear_errors(four, opts, words):
    with pytest.raises(ConfigError, match=words):
        run(four, "path-parallel", **opts)


def test_choice_out_of_range_is_a_clear_error(four):
    with pytest.raises(WorkloadError, match=r"option 'subnets' path 0\[2\] = 7 is out of range"):
        run(four, "path-parallel", subnets="0,0,7,0,0,0,0,0")


def test_supernet_policies_need_a_supernet(four):
    for policy in ("supernet-dp", "path-parallel", "supernet-pipeline"):
        with pytest.raises(ConfigError, match="needs a supernet workload"):
            simulate("resnet20", four, policy, batch=8)


def test_pipeline_with_more_stages_than_units():
    big = Cluster.build("v100", 12, "nvlink2")
    with pytest.raises(ConfigError, match="more pipeline stages than"):
        run(big, "supernet-pipeline")


def test_cli_reports_bad_input_with_exit_2():
    proc = subprocess.run([sys.executable, "-m", "simulator.cli", "simulate", "--workload", WL,
                           "--batch", "64", "--hardware", "v100", "--devices", "2", "--link",
                           "nvlink2", "--policy", "path-parallel", "--paths", "4"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "4 paths need at least 4 GPUs" in proc.stderr
    assert proc.stderr.count("\n") == 1
