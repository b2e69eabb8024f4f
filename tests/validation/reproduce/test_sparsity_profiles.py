"""Sparsity profiles (authors' sheets, our measurement) and the SparseTrain targets."""
from __future__ import annotations

import pytest

from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.policies import ConfigError
from simulator.policies._sparsity import load_csv, resolve
from validation.reproduce.sparsetrain import profiles as sp
from workloads import zoo


def test_vgg_mapping_rows_are_layer_outputs():
    g = zoo.get("vgg16", batch=1)
    prof = sp.authors(g)
    assert prof.mean["features.3"] == 0.76        # conv1 -> the ReLU after the 2nd conv
    assert prof.mean["features.4"] == 0.59        # pool0 -> the first max-pool
    assert prof.mean["classifier.4"] == 0.75      # fc2 -> the ReLU after the 2nd linear
    assert prof.at("features.3", 1) == 0.53 and prof.at("features.3", 72) == 0.72


@pytest.mark.parametrize("net, rows, post_add", [("resnet34", 33, "layer1.0.relu2"),
                                                 ("resnet50", 49, "layer1.0.relu3")])
def test_resnet_rows_are_relus_in_order(net, rows, post_add):
    g = zoo.get(net, batch=1)
    prof = sp.authors(g)
    assert len(prof.tensors) == rows
    row = {"resnet34": "3", "resnet50": "4"}[net]
    want = next(float(r["mean_over_epochs"]) for r in sp.authors_rows()[net]
                if r["layer"] == row)
    assert prof.mean[post_add] == want


def test_profile_must_match_the_network():
    with pytest.raises(ConfigError, match="no rows for 'fixup_resnet50'"):
        sp.authors(zoo.get("fixup_resnet50", batch=1))
    assert len(sp.authors(zoo.get("fixup_resnet50", batch=1), "resnet50").tensors) == 49
    with pytest.raises(ConfigError, match="do not match"):
        sp.authors(zoo.get("resnet18", batch=1), "resnet34")
    cpu = Cluster.build("skylake-x-6c", 1, "pcie3")
    with pytest.raises(ConfigError, match="no rows"):
        simulate("alexnet", cpu, "sparse-train", batch=1, sparsity="authors")


def test_bad_value_in_a_sheet(tmp_path):
    p = tmp_path / "sheet.csv"
    text = sp.measured_path(sp.AUTHORS_FILE).read_text().replace("vgg16,conv1,72,0.53",
                                                                 "vgg16,conv1,72,1.53")
    p.write_text(text)
    with pytest.raises(ConfigError, match="conv1.*\\[0, 1\\]"):
        sp.authors(zoo.get("vgg16", batch=1), path=p)


def test_measured_profile_matches_its_network():
    pytest.importorskip("torch")
    from validation.reproduce.sparsetrain.sparsity import digits_cnn_graph
    prof = load_csv(sp.measured_path(sp.MEASURED_FILE))
    assert prof.network == "DigitsCNN" and prof.epochs[0] == 1 and len(prof.epochs) >= 5
    assert all(0 < v < 1 for d in prof.by_epoch.values() for v in d.values())
    g = digits_cnn_graph(batch=64)
    resolve("measured", g).check_matches(g)
    cpu = Cluster.build("skylake-x-6c", 1, "pcie3")
    r = simulate(g, cpu, "sparse-train", sparsity="measured", epoch="last")
    assert {row["sparsity"] for row in r.extras["conv_passes"] if row["layer"] > 1} != {0.0}
