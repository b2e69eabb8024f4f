"""modnn / coates: spatial model parallelism with halo exchanges (DeCNN's baselines)."""
from __future__ import annotations

import pytest

from simulator.api import simulate
from simulator.cli import main
from simulator.cluster import Cluster
from simulator.policies import ConfigError
from simulator.policies._spatial_split import halo_bytes, spatial_plan
from workloads import zoo


@pytest.fixture(scope="module")
def resnet50():
    return zoo.get("resnet50")


@pytest.mark.parametrize("layout", ["rows", "grid"])
def test_resnet50_swaps_halos_17_times_per_image(resnet50, layout):
    plan = spatial_plan(resnet50, 4, layout, "t")
    halos = [ex for ex in plan.exchanges if ex.kind.startswith("halo")]
    assert len(halos) == 17                              # the max-pool and 16 block 3x3 convs
    assert [ex.kind for ex in plan.exchanges][-1] == "reduce"
    assert plan.final == "fc" and "fc" not in plan.local[1]


def test_a_grid_tile_sends_half_the_width_of_a_slab(resnet50):
    rows = halo_bytes(resnet50, "layer1.0.conv2", "rows")
    assert rows == 64 * 56 * 1 * 4                       # one row of 64 channels, 56 wide
    assert halo_bytes(resnet50, "layer1.0.conv2", "grid") == rows // 2


def test_spatial_split_speeds_up_but_keeps_every_weight():
    base = simulate("resnet50", Cluster.build("rpi4", 1, "eth1g"), "sequential",
                    training=False)
    for policy in ("modnn", "coates"):
        r = simulate("resnet50", Cluster.build("rpi4", 4, "eth1g"), policy, training=False)
        assert r.throughput_samples_per_s > 2 * base.throughput_samples_per_s
        weights = r.extras["weights_per_device_bytes"]
        assert weights >= 0.9 * sum(op.param_bytes for op in zoo.get("resnet50").topo())


def test_grid_needs_four_devices(resnet50):
    with pytest.raises(ConfigError, match="2x2 grid: it needs 4 devices, got 2"):
        spatial_plan(resnet50, 2, "grid", "coates")


@pytest.mark.parametrize("argv, message", [
    (["--workload", "resnet50", "--policy", "coates", "--devices", "2"],
     "2x2 grid: it needs 4 devices, got 2"),
    (["--workload", "decnn_resnet50", "--policy", "decnn", "--devices", "4",
      "--workload-option", "shuffles=layer"], "shuffles must be one of block, stages"),
])
def test_cli_errors(argv, message, capsys):
    code = main(["simulate", "--hardware", "rpi4", "--link", "eth1g", "--inference",
                 "--batch", "1", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("dnnsim: error:") and message in err
