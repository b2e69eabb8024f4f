"""framework_memory cudnn (simulator/framework_memory.py): a framework calling cuDNN directly
keeps no max-pooling indices (cudnnPoolingBackward reads x, y and dy), runs every ReLU and its
gradient in place, and otherwise frees tensors as PyTorch does; the swap-all policy offloads
the pool's output that its gradient now reads."""
from __future__ import annotations

import pytest

from hwmodels import catalog
from simulator import Cluster, simulate
from simulator.cli import main
from simulator.framework_memory import FrameworkMemory, with_framework_memory
from simulator.lowering import inplace_relus
from workloads.builder import GraphBuilder
from workloads.training import lower_training

BATCH, CHANNELS, SIDE = 8, 8, 16
FP32 = 4


def _pool_net(relu_after_pool: bool = False):
    """conv (4 -> 8 channels, 16x16) -> ReLU -> 2x2 max pool -> [ReLU] -> linear (16 out)."""
    b = GraphBuilder("poolnet", (4, SIDE, SIDE), batch=BATCH)
    x = b.maxpool(b.relu(b.conv2d(b.input(), CHANNELS, 3, padding=1, name="conv"),
                         name="relu"), 2, name="pool")
    if relu_after_pool:
        x = b.relu(x, name="relu2")
    b.linear(b.flatten(x), 16, name="fc")
    return b.build()


def _gpu() -> Cluster:
    return Cluster.build(catalog.device("titan-x-maxwell"), 1, "pcie3")


def _lowered(graph, framework: str):
    return lower_training(with_framework_memory(graph, FrameworkMemory.parse(framework)))


def test_pool_net_peak_by_hand():
    """Every size is a whole number of 512-byte blocks, so the peaks are sums of tensors; the
    image is a view of the loader's batch and allocates nothing."""
    g = _pool_net()
    conv = BATCH * CHANNELS * SIDE * SIDE * FP32          # 65536: conv's output, ReLU'd in place
    pooled = conv // 4                                     # the pool's output, and its dy
    params = 4 * CHANNELS * 9 + (CHANNELS * (SIDE // 2) ** 2 * 16 + 16)   # conv: no bias
    resident = 3 * params * FP32                           # weights, gradients, momentum
    # PyTorch: at the ReLU's gradient, conv's output (which it reads), the pool's input gradient
    # (its dy) and its own output; the pool's int64 indices are gone with its gradient
    pytorch = simulate(g, _gpu(), "sequential")
    assert pytorch.peak_memory_bytes["gpu0"] == resident + 3 * conv
    # cuDNN: the ReLU's gradient writes over its dy, so the peak is the pool's gradient: x
    # (conv's output), y, dy and dx; no indices
    cudnn = simulate(g, _gpu(), "sequential", framework_memory="cudnn")
    assert cudnn.peak_memory_bytes["gpu0"] == resident + conv + pooled + pooled + conv
    # the memory model moves no op but the pool's gradient, which reads y too
    assert cudnn.ok and cudnn.iteration_time_s >= pytorch.iteration_time_s


def test_the_pool_gradient_reads_x_and_y_under_cudnn_only():
    g = _pool_net()
    assert _lowered(g, "pytorch").op("pool.grad").saved == ("relu",)
    under = _lowered(g, "cudnn").op("pool.grad")
    assert under.saved == ("relu", "pool") and "pool" in under.inputs
    assert inplace_relus(_lowered(g, "pytorch")) == {"relu"}
    assert inplace_relus(_lowered(g, "cudnn")) == {"relu", "relu.grad"}


def test_a_relu_on_a_pools_output_keeps_a_buffer_of_its_own_under_cudnn():
    """The pool's gradient reads y, so a ReLU after the pool cannot overwrite it; PyTorch's
    pool keeps indices instead, and the ReLU written in place runs in place there."""
    g = _pool_net(relu_after_pool=True)
    g.meta["inplace_ops"] = ["relu", "relu2"]
    assert "relu2" in inplace_relus(_lowered(g, "pytorch"))
    assert "relu2" not in inplace_relus(_lowered(g, "cudnn"))


def test_swap_all_offloads_and_prefetches_the_pools_output_for_its_gradient():
    g = _pool_net(relu_after_pool=True)
    g.meta["inplace_ops"] = ["relu"]   # the ReLU after the pool writes a tensor of its own
    r = simulate(g, _gpu(), "swap-all", framework_memory="cudnn", layers="all")
    tasks = {t.name: t for t in r.log.tasks}
    assert r.ok and "swapout.pool" in tasks
    assert "prefetch.pool" in tasks["pool.grad"].deps
    # under PyTorch the pool's gradient reads its indices, and nothing in the backward pass
    # reads its output here
    pytorch = simulate(g, _gpu(), "swap-all", layers="all")
    assert "swapout.pool" not in {t.name for t in pytorch.log.tasks}


def test_cli_takes_cudnn_and_names_a_bad_option(capsys):
    argv = ["simulate", "--workload", "resnet18", "--batch", "8", "--hardware",
            "titan-x-maxwell"]
    assert main([*argv, "--framework-memory", "cudnn"]) == 0
    assert main([*argv, "--framework-memory", "cudnn:v4"]) == 2
    assert "cudnn has no option 'v4'" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["cudnn", "CUDNN", " cudnn "])
def test_cudnn_parses_and_frees_as_it_goes(text):
    framework = FrameworkMemory.parse(text)
    assert framework.text == "cudnn" and not framework.static
