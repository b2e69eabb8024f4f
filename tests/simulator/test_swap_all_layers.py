"""swap-all's vDNN_all mode: every saved feature map offloaded, not only conv inputs."""
from __future__ import annotations

import pytest

from hwmodels import catalog
from simulator.api import simulate
from simulator.cli import main
from simulator.cluster import Cluster
from simulator.policies import ConfigError
from simulator.policies._offload import offload_candidates, step_ops
from workloads import zoo
from workloads.training import lower_training

GIB = 2 ** 30


def _gpu(memory_gib=None):
    spec = catalog.device("titan-x-pascal")
    if memory_gib:
        spec = spec.with_options(memory_bytes=int(memory_gib * GIB))
    return Cluster.build(spec, 1, "pcie3")


def test_all_offloads_every_candidate_and_more_than_conv():
    conv = simulate("vgg16_cifar", _gpu(), "swap-all", batch=64)
    every = simulate("vgg16_cifar", _gpu(), "swap-all", batch=64, layers="all")
    g = lower_training(zoo.get("vgg16_cifar", batch=64))
    assert every.ok
    assert every.extras["offloaded_tensors"] == len(offload_candidates(g, step_ops(g)))
    assert every.extras["offloaded_tensors"] > conv.extras["offloaded_tensors"]


def test_all_gets_past_the_pool_where_conv_runs_out():
    """Pooling inputs stay on the GPU under vDNN_conv; vDNN_all moves them too, so at 256 on
    12 GiB it gets past the second pool's gradient, where vDNN_conv runs out. It runs out in
    the first block: conv0's output (3 GiB), prefetched from the start of conv5's backward,
    is allocated before conv5's input gradient is (memory is granted in issue order), beside
    conv2's prefetched output and the first pool's int64 indices (1.5 GiB)."""
    conv = simulate("vgg16", _gpu(), "swap-all", batch=256)
    every = simulate("vgg16", _gpu(), "swap-all", batch=256, layers="all")
    assert conv.log.oom.task == "features.9.grad"
    assert every.log.oom.task == "features.5.grad_input"
    assert every.log.oom.time_s > conv.log.oom.time_s


def test_unknown_layers_choice_is_named():
    with pytest.raises(ConfigError, match="layers.*conv or all"):
        simulate("vgg16_cifar", _gpu(), "swap-all", batch=8, layers="pool")


def test_cli_names_a_bad_layers_choice(capsys):
    code = main(["simulate", "--workload", "vgg16_cifar", "--hardware", "titan-x-pascal",
                 "--policy", "swap-all", "--batch", "8", "--layers", "pool"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "conv or all" in err
