"""swap-all's vDNN_all mode (every saved feature map offloaded, not only conv inputs) and
vDNN's prefetch layer search over every layer (CONV, ACTV, POOL ...), stopping at a CONV."""
from __future__ import annotations

import pytest

from hwmodels import catalog
from simulator.api import simulate
from simulator.cli import main
from simulator.cluster import Cluster
from simulator.policies import ConfigError
from simulator.policies._offload import offload_candidates, step_ops
from simulator.policies.swap_all import vdnn_plan
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


def _prefetch_before(workload, batch, layers):
    """Offloaded owner -> the op whose backward start its prefetch is issued at (the op the
    trigger precedes)."""
    g = lower_training(zoo.get(workload, batch=batch))
    ops = step_ops(g)
    plan = vdnn_plan(g, ops, offload_candidates(g, ops), layers)
    pos = {op.name: i for i, op in enumerate(ops)}
    return {s: ops[pos[t] + 1].name for s, t in plan.prefetch_after.items()}


def test_all_prefetches_a_pool_s_conv_input_at_the_pool_s_backward():
    """VGG-16's first block: conv0, relu1 (in place), conv2, relu3 (in place), pool4, conv5.
    The pool is a layer of its own: conv5's backward prefetches the pool's X (conv2's output),
    the pool's backward conv2's X (conv0's output), one layer ahead each; counting only conv
    layers would bring conv0's output back at conv5's backward, a layer too early."""
    before = _prefetch_before("vgg16", 8, "all")
    assert before["features.2"] == "features.5.grad_input"
    assert before["features.0"] == "features.4.grad"


def test_conv_search_passes_the_pool_and_stops_at_the_conv():
    """vDNN_conv offloads conv inputs only: conv5's backward searches past the pool and the
    ReLU (whose X stays on the GPU) to conv2, whose X (conv0's output) it prefetches."""
    before = _prefetch_before("vgg16", 8, "conv")
    assert before["features.0"] == "features.5.grad_input"
    assert "features.2" not in before


def test_conv_search_stops_at_a_conv_not_at_a_linear_layer():
    """vDNN's search stops at CONV layers only: the loss's backward, the first layer's, searches
    past the classifier's linear, dropout and ReLU layers and the last pool to conv28, whose X
    (conv26's output) it prefetches."""
    assert _prefetch_before("vgg16", 8, "conv")["features.26"] == "loss.grad"


def test_each_layer_s_backward_prefetches_at_most_one_layer_s_x():
    """vDNN_all on a chain: the search stops at the first layer with an X to prefetch, so no
    two prefetches are issued at one layer's backward start."""
    before = _prefetch_before("vgg16_cifar", 8, "all")
    starts = list(before.values())
    assert len(starts) == len(set(starts))


def test_all_gets_past_the_second_pool_where_conv_runs_out():
    """Pooling inputs stay on the GPU under vDNN_conv; vDNN_all moves them too, so at 256 on
    12 GiB it gets past the second pool's gradient, where vDNN_conv runs out. It runs out at
    the first pool's input gradient (3 GiB): conv0's output (3 GiB) prefetched at the pool's
    backward start, beside conv2's prefetched output and the pool's int64 indices (1.5 GiB)."""
    conv = simulate("vgg16", _gpu(), "swap-all", batch=256)
    every = simulate("vgg16", _gpu(), "swap-all", batch=256, layers="all")
    assert conv.log.oom.task == "features.9.grad"
    assert every.log.oom.task == "features.4.grad"
    assert every.log.oom.time_s > conv.log.oom.time_s


def test_unknown_layers_choice_is_named():
    with pytest.raises(ConfigError, match="layers.*conv or all"):
        simulate("vgg16_cifar", _gpu(), "swap-all", batch=8, layers="pool")


def test_cli_names_a_bad_layers_choice(capsys):
    code = main(["simulate", "--workload", "vgg16_cifar", "--hardware", "titan-x-pascal",
                 "--policy", "swap-all", "--batch", "8", "--layers", "pool"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "conv or all" in err
