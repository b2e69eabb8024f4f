"""Tokens per second and model FLOPs utilisation: tokens are samples times the sequence the
graph's token input holds; MFU is the op graph's forward and backward FLOPs over the step time
and the devices' datasheet peak in the run's arithmetic (docs/metrics.md)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog
from simulator.api import simulate
from simulator.cli import main
from simulator.cluster import Cluster
from simulator.model_flops import tokens_per_sample
from simulator.sweep import Sweep, run_sweep
from workloads import zoo
from workloads.training import lower_training

SEQ = 64   # not gpt2's default 1024: the sequence is read from the graph, not the name


@pytest.fixture(scope="module")
def gpt2_runs():
    v100 = catalog.device("v100")
    return {n: simulate("gpt2", Cluster.build(v100, n, "nvlink2"),
                        "sequential" if n == 1 else "data-parallel", batch=2,
                        precision="amp-fp16", workload_options={"seq_len": SEQ})
            for n in (1, 2)}


@pytest.mark.parametrize("devices", [1, 2])
def test_gpt2_tokens_are_samples_times_its_sequence(gpt2_runs, devices):
    r = gpt2_runs[devices]
    assert r.throughput_tokens_per_s == pytest.approx(r.throughput_samples_per_s * SEQ,
                                                      rel=1e-12)
    assert r.summary()["throughput_tokens_per_s"] == r.throughput_tokens_per_s


@pytest.mark.parametrize("devices", [1, 2])
def test_mfu_is_graph_flops_over_time_and_peak(gpt2_runs, devices):
    r = gpt2_runs[devices]
    train = lower_training(zoo.get("gpt2", batch=2, seq_len=SEQ))
    flops_per_replica = train.flops(["forward", "backward"])
    peak = devices * catalog.device("v100").peak_flops_for("fp16")   # AMP: tensor cores
    s = r.summary()
    assert s["achieved_flops_per_s"] == pytest.approx(
        flops_per_replica / 2 * r.throughput_samples_per_s, rel=1e-9)
    assert s["peak_flops_per_s"] == pytest.approx(peak)
    expected = devices * flops_per_replica / r.iteration_time_s / peak
    assert s["model_flops_utilisation"] == pytest.approx(expected, rel=1e-9)
    assert 0 < s["model_flops_utilisation"] <= 1


def test_a_cnn_has_null_tokens_and_an_mfu(capsys):
    assert main(["simulate", "--workload", "lenet5", "--batch", "8", "--hardware", "v100",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "throughput_tokens_per_s" in doc and doc["throughput_tokens_per_s"] is None
    assert 0 < doc["model_flops_utilisation"] <= 1
    assert doc["peak_flops_per_s"] == catalog.device("v100").peak_flops_for("fp32")
    assert main(["simulate", "--workload", "lenet5", "--batch", "8", "--hardware", "v100"]) == 0
    text = capsys.readouterr().out
    assert "tokens/s" not in text and "% of peak" in text


def test_fp32_convolutions_on_ampere_count_against_the_tf32_peak():
    r = simulate("resnet18", Cluster.build(catalog.device("a100"), 1, "nvlink3"), batch=8)
    assert r.peak_flops_per_s == catalog.device("a100").peak_flops_for("tf32")
    assert r.model_flops_utilisation is not None and 0 < r.model_flops_utilisation <= 1


def test_the_text_report_prints_tokens_and_mfu(capsys):
    assert main(["simulate", "--workload", "gpt2", "--batch", "2", "--hardware", "v100",
                 "--workload-option", f"seq_len={SEQ}"]) == 0
    text = capsys.readouterr().out
    assert "tokens/s" in text and "(MFU)" in text


def test_a_supernet_policy_leaves_its_flops_unknown():
    r = simulate("spos_cifar", Cluster.build(catalog.device("v100"), 2, "nvlink2"),
                 "path-parallel", batch=8, paths=2)
    s = r.summary()
    assert s["model_flops_utilisation"] is None and s["achieved_flops_per_s"] is None
    assert json.loads(r.to_json())["achieved_flops_per_s"] is None


@settings(max_examples=25, deadline=None)
@given(seq_len=st.integers(1, 1024), batch=st.integers(1, 4))
def test_tokens_per_sample_is_the_token_inputs_length(seq_len, batch):
    assert tokens_per_sample(zoo.get("gpt2", batch=batch, seq_len=seq_len)) == seq_len
    assert tokens_per_sample(zoo.get("bert_base", batch=batch,
                                     seq_len=min(seq_len, 512))) == min(seq_len, 512)


def test_image_models_have_no_tokens():
    assert tokens_per_sample(zoo.get("resnet18")) is None
    assert tokens_per_sample(zoo.get("vit_ti_16")) is None   # patches are not token ids


def _sweep(tmp_path, base: dict) -> str:
    out = tmp_path / "study.jsonl"
    run_sweep(Sweep.from_dict({"base": base, "axes": {"devices": [1, 2]}}), out, workers=1,
              progress=False)
    return str(out)


def test_plot_draws_tokens_per_second(tmp_path, capsys):
    out = _sweep(tmp_path, {"workload": "gpt2", "batch": 2, "hardware": "v100",
                            "policy": "data-parallel", "link": "nvlink2",
                            "workload_options": {"seq_len": 32}})
    png = tmp_path / "tokens.png"
    assert main(["plot", out, "--x", "devices", "--y", "throughput_tokens_per_s",
                 "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    records = [json.loads(line) for line in Path(out).read_text().splitlines()][1:]
    printed = capsys.readouterr().out
    for rec in records:
        s = rec["summary"]
        assert s["throughput_tokens_per_s"] == pytest.approx(s["throughput_samples_per_s"] * 32)
        assert f"throughput_tokens_per_s={s['throughput_tokens_per_s']:.6g}" in printed


def test_plot_of_tokens_for_a_cnn_says_why_there_is_nothing(tmp_path, capsys):
    out = _sweep(tmp_path, {"workload": "lenet5", "batch": 8, "hardware": "v100",
                            "policy": "data-parallel", "link": "nvlink2"})
    assert main(["plot", out, "--x", "devices", "--y", "throughput_tokens_per_s",
                 "--out", str(tmp_path / "t.png")]) == 2
    assert "no token input" in capsys.readouterr().err
    assert not (tmp_path / "t.png").exists()
