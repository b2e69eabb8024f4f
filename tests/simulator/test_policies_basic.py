"""Sequential and data-parallel policies, Result outputs, the simulate command."""
from __future__ import annotations

import json

import pytest

from simulator import Cluster, simulate
from simulator.cli import main
from simulator.policies import ConfigError
from workloads import zoo
from workloads.training import lower_training


def test_sequential_step_is_exactly_the_sum_of_op_times():
    cluster = Cluster.build("v100", 1, "nvlink2")
    g = zoo.get("resnet20", batch=64)
    result = simulate(g, cluster, "sequential")
    model = cluster.devices[0].model
    expect = 0.0
    # each op's time on the stream the host issues them to (hwmodels/gpu.py stream_times_s),
    # in the same order, with the same float additions
    for op_s in model.stream_times_s(lower_training(g).topo()):
        expect += op_s
    assert result.iteration_time_s == expect
    inference = simulate(g, cluster, "sequential", training=False)
    assert inference.iteration_time_s == sum(model.stream_times_s(g.topo()))


def test_training_memory_peak_is_resident_plus_activations():
    cluster = Cluster.build("v100", 1, "nvlink2")
    r = simulate("resnet50", cluster, "sequential", batch=16)
    peak = r.peak_memory_bytes["gpu0"]
    weights = 25_557_032 * 4
    assert peak > 3 * weights        # weights, gradients, momentum and activations
    assert peak < 16 * 2 ** 30


def test_out_of_memory_is_a_result_naming_device_task_and_bytes():
    cluster = Cluster.build("k40", 1, "pcie3")
    r = simulate("vgg16", cluster, "sequential", batch=256)
    assert not r.ok
    assert r.oom.device == "gpu0"
    assert r.oom.capacity_bytes == cluster.devices[0].memory_bytes
    assert r.oom.in_use_bytes + r.oom.requested_bytes > r.oom.capacity_bytes
    assert r.oom.task
    assert r.summary()["status"] == "out_of_memory"
    # without enforcement the same run reports how much it would need
    free = simulate("vgg16", cluster, "sequential", batch=256, enforce_memory=False)
    assert free.ok and free.peak_memory_bytes["gpu0"] > cluster.devices[0].memory_bytes


def _dp(n, link, **kw):
    return simulate("resnet50", Cluster.build("v100", n, link), "data-parallel", batch=32, **kw)


def test_data_parallel_scales_near_linearly_on_nvlink_and_not_on_slow_links():
    one = _dp(1, "nvlink2").throughput_samples_per_s
    nv = _dp(16, "nvlink2").throughput_samples_per_s / one
    eth = _dp(16, "eth10g").throughput_samples_per_s / one
    assert 14.0 <= nv <= 16.0 + 1e-9        # near-linear
    assert eth < 0.75 * nv                  # communication bound
    assert _dp(16, "eth10g").summary()["exposed_communication_s"] > 0.01


def test_one_replica_mode_matches_all_replicas():
    a = _dp(8, "nvlink2", collectives="flow", replicas="all")
    b = _dp(8, "nvlink2", collectives="flow", replicas="one")
    assert a.iteration_time_s == pytest.approx(b.iteration_time_s, rel=1e-12)
    c = _dp(8, "nvlink2", collectives="link")
    assert c.iteration_time_s == pytest.approx(a.iteration_time_s, rel=0.02)


def test_bucket_size_changes_overlap():
    small = _dp(8, "eth10g", bucket_mb=1.0).iteration_time_s
    huge = _dp(8, "eth10g", bucket_mb=1000.0).iteration_time_s  # one bucket: no overlap
    assert huge > small


def test_policy_options_are_checked():
    cluster = Cluster.build("v100", 2, "nvlink2")
    with pytest.raises(ConfigError, match="bucket_mb"):
        simulate("resnet20", cluster, "data-parallel", batch=8, bucket_mb=-1)
    with pytest.raises(ConfigError, match="no option 'bucket'"):
        simulate("resnet20", cluster, "data-parallel", batch=8, bucket=3)
    with pytest.raises(ConfigError, match="unknown policy"):
        simulate("resnet20", cluster, "magic", batch=8)


def test_outputs_trace_records_plots(tmp_path):
    r = _dp(2, "nvlink2")
    path = tmp_path / "t.json"
    r.to_chrome_trace(path)
    doc = json.loads(path.read_text())
    assert any(e["ph"] == "X" for e in doc["traceEvents"])
    assert any(e["ph"] == "C" for e in doc["traceEvents"])
    rows = r.records()
    assert len(rows) == len(r.log.tasks)
    assert {"task", "resource", "start_s", "end_s", "duration_s"} <= set(rows[0])
    from simulator.trace import plot_memory, plot_timeline
    plot_timeline(r, tmp_path / "tl.png")
    plot_memory(r, tmp_path / "mem.png")
    assert (tmp_path / "tl.png").stat().st_size > 1000
    s = r.summary()
    assert all(k.endswith(("_s", "_bytes", "_per_s", "utilisation")) or k in (
        "policy", "workload", "batch", "training", "cluster", "options", "status", "tasks",
        "iterations_simulated", "extras") for k in s)
    assert s["extras"]["allreduce_algorithm"] == "nccl"   # the policy's figures: what ran


def test_simulate_command_json_and_scenario_file(tmp_path, capsys):
    args = ["simulate", "--workload", "resnet20", "--batch", "32", "--hardware", "v100",
            "--devices", "2", "--link", "nvlink2", "--policy", "data-parallel", "--bucket-mb",
            "5", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["iteration_time_s"] > 0 and doc["options"]["bucket_mb"] == 5
    scenario = tmp_path / "s.toml"
    scenario.write_text('workload = "resnet20"\nbatch = 32\nhardware = "v100"\ndevices = 2\n'
                        'link = "nvlink2"\npolicy = "data-parallel"\n[options]\nbucket_mb = 5\n')
    assert main(["simulate", str(scenario), "--json"]) == 0
    doc2 = json.loads(capsys.readouterr().out)
    assert doc2["iteration_time_s"] == doc["iteration_time_s"]


@pytest.mark.parametrize("content, words", [
    ('workload = "resnet20"\nbatch = 8\nhardware = "v100"\n', "missing field(s) 'policy'"),
    ('workload = "resnet20"\nbatch = 8\nhardware = "v100"\npolicy = "sequential"\nlinks = "x"\n',
     "unknown field 'links' (did you mean 'link'?)"),
    ('workload = "resnet20"\nbatch = 8\nhardware = "v999"\npolicy = "sequential"\n', "v999"),
    ('workload = "resnet20"\nbatch = 8\nhardware = "v100"\npolicy = "sequential"\ndevices = 0\n',
     "devices must be >= 1"),
    ('workload = "resnet20"\nbatch = 8\nhardware = "v100"\npolicy = "sequential"\ndevices = 2\n',
     "'link' is required"),
])
def test_bad_scenario_files_name_field_and_file(tmp_path, capsys, content, words):
    scenario = tmp_path / "bad.toml"
    scenario.write_text(content)
    assert main(["simulate", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    if "v999" not in words:
        assert "bad.toml" in err
