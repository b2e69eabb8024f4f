"""sparse-train / dense-direct: work items on cores, which zeros each pass skips, bad input."""
from __future__ import annotations

import pytest

from simulator import cli
from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.policies import ConfigError
from simulator.policies._sparsity import SparsityProfile, resolve
from simulator.policies.sparse_train import conv_pass_sparsity
from workloads import zoo
from workloads.training import lower_training


@pytest.fixture(scope="module")
def cpu():
    return Cluster.build("skylake-x-6c", 1, "pcie3")


def _conv_time(r):
    return r.extras["conv_time_s"]


def test_convs_run_as_work_items_on_the_cores(cpu):
    r = simulate("resnet18", cpu, "sparse-train", batch=2, sparsity="constant:0.7")
    items = [t for t in r.log.tasks if t.meta.get("op") == "layer1.0.conv1"
             and t.meta.get("work_item")]
    assert len(items) == 4 * 6 and all(t.resources == ("cpu0.cores",) for t in items)
    assert r.utilisation["cpu0.cores"] > 0.8


def test_speedup_grows_with_sparsity_and_falls_back_to_dense(cpu):
    dense = simulate("vgg16", cpu, "dense-direct", batch=2)
    t = {s: _conv_time(simulate("vgg16", cpu, "sparse-train", batch=2,
                                sparsity=f"constant:{s}")) for s in (0.0, 0.5, 0.9)}
    assert t[0.0] == pytest.approx(_conv_time(dense), rel=1e-9)   # the dense kernel chosen
    assert _conv_time(dense) > t[0.5] > t[0.9]
    forced = simulate("vgg16", cpu, "sparse-train", batch=2, sparsity="constant:0.0",
                      fallback_dense=False)
    assert _conv_time(forced) > _conv_time(dense)                  # detection costs


def test_batchnorm_makes_backward_by_input_dense():
    prof = SparsityProfile("c", constant=0.6)
    for net, expect_sparse in (("resnet50", False), ("fixup_resnet50", True), ("vgg16", True)):
        g = zoo.get(net, batch=1)
        t = lower_training(g)
        gi = [conv_pass_sparsity(g, op, prof, "mean") for op in t.topo()
              if op.kind == "conv2d_grad_input"]
        assert (max(gi) > 0) == expect_sparse, net
        fw = [conv_pass_sparsity(g, op, prof, "mean") for op in t.topo()
              if op.kind == "conv2d" and op.layer > 1]
        assert min(fw) == 0.6  # every non-initial conv reads a ReLU output (or its pool)


def test_first_conv_reads_a_dense_image(cpu):
    r = simulate("vgg16", cpu, "sparse-train", batch=2, sparsity="constant:0.9")
    first = [row for row in r.extras["conv_passes"] if row["layer"] == 1]
    assert first and all(row["kernel"] == "dense" for row in first
                         if row["pass"] != "grad_input")


def test_deterministic(cpu):
    a = simulate("resnet18", cpu, "sparse-train", batch=2, sparsity="constant:0.6", spread=0.1)
    b = simulate("resnet18", cpu, "sparse-train", batch=2, sparsity="constant:0.6", spread=0.1)
    assert a.records() == b.records()


def test_profile_csv_and_epochs(tmp_path, cpu):
    p = tmp_path / "p.csv"
    p.write_text("tensor,epoch,sparsity\nfeatures.1,1,0.5\nfeatures.1,11,0.9\n")
    g = zoo.get("vgg16", batch=1)
    prof = resolve(str(p), g)
    assert prof.at("features.1", 6) == pytest.approx(0.7)
    assert prof.at("features.1", "mean") == pytest.approx(0.7)
    with pytest.raises(ConfigError, match="outside"):
        prof.at("features.1", 20)


@pytest.mark.parametrize("text, match", [
    ("tensor,epoch,sparsity\nfeatures.1,1,1.5\n", "in \\[0, 1\\]"),
    ("tensor,epoch,sparsity\nfeatures.1,1,-0.1\n", "in \\[0, 1\\]"),
    ("tensor,epoch,sparsity\nlayer9.relu,1,0.5\n", "do not match"),
    ("network,tensor,epoch,sparsity\nresnet50,features.1,1,0.5\n", "not 'vgg16'"),
    ("layer,value\nx,1\n", "needs columns"),
])
def test_bad_profile_files(tmp_path, cpu, text, match):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        simulate("vgg16", cpu, "sparse-train", batch=1, sparsity=str(p))


@pytest.mark.parametrize("opts, match", [
    ({"sparsity": "constant:1.2"}, "in \\[0, 1\\]"),
    ({"sparsity": "constant:-0.5"}, "in \\[0, 1\\]"),
    ({"sparsity": "nosuchprofile"}, "unknown profile"),
    ({"sparsity": "missing.csv"}, "does not exist"),
    ({"epoch": "0"}, "epoch"),
    ({"spread": "0.9"}, "spread"),
])
def test_bad_options(cpu, opts, match):
    with pytest.raises(ConfigError, match=match):
        simulate("vgg16", cpu, "sparse-train", batch=1, **opts)


def test_needs_a_cpu():
    gpu = Cluster.build("v100", 1, "pcie3")
    with pytest.raises(ConfigError, match="runs on a CPU"):
        simulate("vgg16", gpu, "sparse-train", batch=1, sparsity="constant:0.5")


def test_cli_bad_sparsity_exits_2(capsys):
    rc = cli.main(["simulate", "--workload", "lenet5", "--batch", "2",
                   "--hardware", "skylake-x-6c",
                   "--policy", "sparse-train", "--sparsity", "constant:1.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("dnnsim: error:")
    assert "sparsity" in err[0]


def test_inference_runs_forward_only(cpu):
    r = simulate("vgg16", cpu, "sparse-train", batch=2, training=False,
                 sparsity="constant:0.8")
    d = simulate("vgg16", cpu, "dense-direct", batch=2, training=False)
    assert {row["pass"] for row in r.extras["conv_passes"]} == {"forward"}
    assert d.iteration_time_s > r.iteration_time_s
