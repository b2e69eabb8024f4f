"""The optimizer step's temporaries in peak memory (simulator/lowering.py): torch.optim's
multi-tensor Adam computes sqrt(v) for every parameter in one call and keeps it until its last
call; the single-tensor loop (PyTorch 1.x) one tensor's at a time; fused per-tensor kernels
(TensorFlow's ApplyAdam) and SGD with momentum make none."""
from __future__ import annotations

import pytest

from hwmodels import catalog
from hwmodels.gpu_memory import block_bytes
from simulator import Cluster, simulate
from workloads.builder import GraphBuilder


def mlp(widths):
    """Layers whose weights outweigh their batch-1 activations, so that memory peaks in the
    step."""
    b = GraphBuilder("mlp", (widths[0],), batch=1)
    x = b.input()
    for i, w in enumerate(widths[1:]):
        x = b.relu(b.linear(x, w, name=f"fc{i}"), name=f"relu{i}")
    return b.build()


def peak(graph, optimizer, framework=None, loop=False):
    cluster = Cluster.build(catalog.device("v100"), 1, "nvlink2")
    if framework is not None:
        cluster.devices[0].model.framework = framework
    if loop:
        graph = graph.copy()
        graph.meta["optimizer_loop"] = True
    return simulate(graph, cluster, "sequential", optimizer=optimizer).peak_memory_bytes["gpu0"]


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_s_sqrt_of_v_is_held_over_the_whole_multi_tensor_step(optimizer):
    g = mlp([4096, 4096, 2048, 4096])
    sizes = [block_bytes(op.param_bytes) for op in g if op.params]
    # weights, gradients and Adam's two states stay resident; at batch 1 the activations
    # are a few KiB, freed before the step
    resident = 4 * sum(sizes)
    # TensorFlow's fused ApplyAdam makes no temporary: memory peaks in the backward pass
    assert 0 < peak(g, optimizer, "tensorflow") - resident < min(sizes) // 100
    # PyTorch today: one parameter-sized list for every layer at once
    assert peak(g, optimizer) == resident + sum(sizes)
    # torch.optim's loop (foreach=False, PyTorch 1.x's default): one layer's at a time, the largest
    assert peak(g, optimizer, loop=True) == resident + max(sizes)


def test_sgd_with_momentum_steps_in_place():
    g = mlp([4096, 4096, 2048, 4096])
    assert peak(g, "sgd-momentum") == peak(g, "sgd-momentum", "tensorflow") == \
        peak(g, "sgd-momentum", loop=True)


def test_the_loop_is_a_setting_of_the_api_the_scenario_and_the_command_line(tmp_path, capsys):
    import json

    from simulator.cli import main
    g = mlp([1024, 1024, 1024])
    cluster = Cluster.build(catalog.device("v100"), 1, "nvlink2")
    foreach = simulate(g, cluster, "sequential", optimizer="adam")
    loop = simulate(g, cluster, "sequential", optimizer="adam", optimizer_loop=True)
    assert loop.peak_memory_bytes["gpu0"] < foreach.peak_memory_bytes["gpu0"]
    assert loop.iteration_time_s > foreach.iteration_time_s      # 4 tensors, 7 calls each
    assert not g.meta.get("optimizer_loop")                       # the caller's graph kept
    base = ["simulate", "--workload", "lenet5", "--batch", "4", "--hardware", "v100",
            "--optimizer", "adam", "--json"]
    times = []
    for extra in ([], ["--optimizer-loop"]):
        assert main(base + extra) == 0
        times.append(json.loads(capsys.readouterr().out)["iteration_time_s"])
    assert times[1] > times[0]
    path = tmp_path / "s.toml"
    path.write_text('workload = "lenet5"\nbatch = 4\nhardware = "v100"\npolicy = "sequential"\n'
                    'optimizer_loop = "yes"\n')
    assert main(["simulate", str(path)]) == 2
    assert "optimizer_loop" in capsys.readouterr().err
