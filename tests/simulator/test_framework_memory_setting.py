"""framework_memory as a scenario setting (simulator/framework_memory.py): the API keyword, the
scenario field and the CLI flag run a policy under Caffe's or Torch7's memory; the `caffe` and
`torch7` policies are plain training under it; a name or a policy that cannot be honoured is a
clear error (exit 2 from the CLI)."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog
from hwmodels.gpu_memory import runtime_reservation
from simulator import Cluster, simulate
from simulator.cli import main
from simulator.framework_memory import (
    FrameworkMemory,
    caffe_training_bytes,
    torch7_training_bytes,
)
from simulator.policies import ConfigError
from workloads.builder import GraphBuilder


def _net(batch: int):
    """conv-bn-relu, a residual block, max pooling and a classifier: every rule of both models."""
    b = GraphBuilder("fwnet", (3, 16, 16), batch=batch)
    x = b.relu(b.batchnorm(b.conv2d(b.input(), 8, 3, padding=1, name="c1"), name="b1"),
               name="r1")
    y = b.batchnorm(b.conv2d(x, 8, 3, padding=1, name="c2"), name="b2")
    z = b.maxpool(b.relu(b.add(y, x, name="sum"), name="r2"), 2, name="pool")
    b.linear(b.flatten(z), 10, name="fc")
    return b.build()


def _gpus(count: int, memory_bytes: int | None = None) -> Cluster:
    spec = catalog.device("titan-x-pascal")
    if memory_bytes is not None:
        spec = spec.with_options(memory_bytes=memory_bytes)
    return Cluster.build(spec, count, "pcie3")


def test_data_parallel_on_8_gpus_under_caffe_holds_caffes_footprint_on_every_gpu():
    g = _net(16)
    pytorch = simulate(g, _gpus(8), "data-parallel")
    caffe = simulate(g, _gpus(8), "data-parallel", framework_memory="caffe")
    assert caffe.ok and "framework_memory" not in g.meta   # the caller's graph keeps its own
    assert caffe.peak_memory_bytes == {f"gpu{i}": caffe_training_bytes(g) for i in range(8)}
    # the memory model moves no op: the step and its all-reduces take as long
    assert caffe.iteration_time_s == pytorch.iteration_time_s
    assert all(caffe.peak_memory_bytes[d] > pytorch.peak_memory_bytes[d]
               for d in caffe.peak_memory_bytes)


def test_data_parallel_under_caffe_runs_out_where_pytorch_fits():
    g = _net(64)
    spec = catalog.device("titan-x-pascal")
    # one byte short of Caffe's footprint beside the CUDA context
    short = runtime_reservation(spec).total_bytes + caffe_training_bytes(g) - 1
    assert simulate(g, _gpus(8, short), "data-parallel").ok
    caffe = simulate(g, _gpus(8, short), "data-parallel", framework_memory="caffe")
    assert not caffe.ok and "caffe.net_init" in caffe.oom.message()
    assert simulate(g, _gpus(8, short + 1), "data-parallel", framework_memory="caffe").ok


def test_the_framework_policies_are_sequential_under_their_memory():
    g = _net(8)
    for policy, framework, opts in (("caffe", "caffe", {}), ("torch7", "torch7", {}),
                                    ("torch7", "torch7:share-grad-input",
                                     {"share_grad_input": True})):
        alias = simulate(g, _gpus(1), policy, **opts)
        setting = simulate(g, _gpus(1), "sequential", framework_memory=framework)
        assert alias.peak_memory_bytes == setting.peak_memory_bytes
        assert alias.iteration_time_s == setting.iteration_time_s
    assert simulate(g, _gpus(1), "torch7").peak_memory_bytes["gpu0"] == torch7_training_bytes(g)


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 24), st.sampled_from(["none", "data-parallel"]))
def test_footprint_is_the_models_whatever_the_batch(batch, policy):
    g = _net(batch)
    for text, expected in (("caffe", caffe_training_bytes(g)),
                           ("torch7", torch7_training_bytes(g)),
                           ("torch7:share-grad-input", torch7_training_bytes(g, True))):
        r = simulate(g, _gpus(2), policy, framework_memory=text)
        assert r.ok and r.peak_memory_bytes["gpu0"] == expected


@pytest.mark.parametrize("text, message", [
    ("tensorflow", "unknown framework_memory 'tensorflow'; known: pytorch, cudnn, caffe, "
                   "torch7"),
    ("caffe:share-grad-input", "caffe has no option 'share-grad-input'"),
    ("torch7:shared", "torch7 has no option 'shared'"),
])
def test_unknown_framework_memory_is_named(text, message):
    with pytest.raises(ConfigError, match=message):
        simulate(_net(2), _gpus(1), framework_memory=text)
    with pytest.raises(ConfigError, match="must be text"):
        FrameworkMemory.parse(3)


@pytest.mark.parametrize("policy", ["swap", "recompute", "gpipe"])
def test_a_policy_that_frees_or_splits_tensors_is_refused(policy):
    with pytest.raises(ConfigError, match=f"policy '{policy}' cannot run under "
                                          "framework_memory 'caffe'.*policies that can: "
                                          "caffe, data-parallel, none, sequential, torch7"):
        simulate(_net(2), _gpus(2), policy, framework_memory="caffe")


def test_inference_and_a_conflicting_alias_are_refused():
    with pytest.raises(ConfigError, match="models a training step"):
        simulate(_net(2), _gpus(1), training=False, framework_memory="torch7")
    with pytest.raises(ConfigError, match="policy 'caffe' trains under framework_memory "
                                          "'caffe', not 'torch7'"):
        simulate(_net(2), _gpus(1), "caffe", framework_memory="torch7")


ARGV = ["simulate", "--workload", "resnet18", "--batch", "8", "--hardware", "titan-x-pascal"]


def test_the_cli_flag_and_the_scenario_field(tmp_path, capsys):
    dp = [*ARGV, "--policy", "data-parallel", "--devices", "8", "--link", "pcie3", "--json"]
    assert main([*dp, "--framework-memory", "caffe"]) == 0
    caffe = json.loads(capsys.readouterr().out)
    assert main(dp) == 0
    pytorch = json.loads(capsys.readouterr().out)
    assert caffe["scenario"]["framework_memory"] == "caffe"
    assert "framework_memory" not in pytorch["scenario"]
    assert caffe["peak_memory_bytes"]["gpu7"] > pytorch["peak_memory_bytes"]["gpu7"]
    path = tmp_path / "s.toml"
    text = ('workload = "resnet18"\nbatch = 8\nhardware = "titan-x-pascal"\n'
            'policy = "swap"\nframework_memory = "torch7"\n')
    path.write_text(text)
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "s.toml" in err and "'framework_memory'" in err and "'swap' cannot run" in err
    assert path.read_text() == text   # the user's file untouched


@pytest.mark.parametrize("value, words", [("mxnet", "unknown framework_memory 'mxnet'"),
                                          ("torch7:nope", "no option 'nope'")])
def test_the_cli_names_a_bad_value_and_exits_2(capsys, value, words):
    assert main([*ARGV, "--framework-memory", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnnsim: error: ") and words in err and "Traceback" not in err
