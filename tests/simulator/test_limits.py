"""Every count has a ceiling, checked before anything is built: past it, one error line naming
the value and the limit, exit 2 (simulator/limits.py)."""
from __future__ import annotations

import time

import pytest

from simulator import limits
from simulator.cli import main
from simulator.policies import ConfigError
from simulator.scenario import Scenario
from simulator.sweep import Sweep, run_sweep
from workloads.zoo import resnet

BASE = {"workload": "lenet5", "batch": 2, "hardware": "v100", "policy": "sequential"}


def cli_error(capsys, argv) -> str:
    start = time.monotonic()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dnnsim: error: "), err
    assert time.monotonic() - start < 20, "refused only after a long run"
    return err


@pytest.mark.parametrize("argv, value, limit", [
    (["--policy", "pipeline-stale", "--devices", "2", "--link", "nvlink2",
      "--minibatches", "1000000000"], "1,000,000,000", "10,000"),
    (["--policy", "decnn", "--devices", "2", "--link", "nvlink2", "--inference",
      "--samples", "100000000"], "100,000,000", "10,000"),
    (["--policy", "gpipe", "--devices", "2", "--link", "nvlink2", "--batch", "4",
      "--micro-batches", "20000"], "20,000", "10,000"),
    (["--policy", "data-parallel", "--devices", "70000", "--link", "nvlink2"],
     "70,000", "65,536"),
    (["--policy", "data-parallel", "--devices", "5000", "--link", "nvlink2",
      "--topology", "fully-connected"], "5,000", "4,096"),
])
def test_counts_past_their_ceiling_are_refused_naming_value_and_limit(capsys, argv, value,
                                                                       limit):
    err = cli_error(capsys, ["simulate", "--workload", "lenet5", "--batch", "2",
                             "--hardware", "v100", *argv])
    assert value in err and limit in err and "limit" in err


def test_a_graph_past_the_op_ceiling_is_refused_before_it_is_simulated(monkeypatch):
    monkeypatch.setattr(limits, "MAX_GRAPH_OPS", 5)
    with pytest.raises(ConfigError, match=r"workload ops \d+ is past dnnsim's limit of 5"):
        Scenario.from_dict(BASE).run()


def test_a_sweep_past_the_point_ceiling_is_refused_before_any_point_is_checked(capsys,
                                                                               tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[base]\nworkload = "lenet5"\nbatch = 2\nhardware = "v100"\n'
                 'policy = "sequential"\n[axes]\n'
                 f'batch = {list(range(1, 1001))}\n'
                 f'"workload_options.x" = {list(range(1001))}\n')
    err = cli_error(capsys, ["sweep", str(f), "--out", str(tmp_path / "r.jsonl")])
    assert "1,001,000" in err and "1,000,000" in err
    assert not (tmp_path / "r.jsonl").exists()


def test_more_workers_than_cpus_are_capped_with_a_message(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "cpu_count", lambda: 1)
    sweep = Sweep.from_dict({"base": BASE, "axes": {"batch": [1, 2]}})
    stats = run_sweep(sweep, tmp_path / "r.jsonl", workers=64, progress=False)
    assert stats.ran == 2
    assert "--workers 64 is more than the 1 CPU(s)" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [0, -3])
def test_workers_below_one_are_refused(capsys, tmp_path, workers):
    f = tmp_path / "s.toml"
    f.write_text('[base]\nworkload = "lenet5"\nbatch = 2\nhardware = "v100"\n'
                 'policy = "sequential"\n[axes]\nbatch = [1]\n')
    err = cli_error(capsys, ["sweep", str(f), "--out", str(tmp_path / "r.jsonl"),
                             "--workers", str(workers)])
    assert "--workers" in err


def test_max_memory_stops_a_run_with_one_line_before_the_kernel_does(tmp_path):
    import subprocess
    import sys
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "simulate", "--workload", "resnet50", "--batch",
         "32", "--hardware", "v100", "--devices", "64", "--link", "nvlink2", "--policy",
         "data-parallel", "-o", "replicas=all", "--max-memory", "100M"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "dnnsim: error: out of memory: the run needs more than --max-memory 100M allows (the "
        "limits of dnnsim are in docs/reliability.md)"]


@pytest.mark.parametrize("text, value", [("4G", 4 * 2 ** 30), ("512M", 512 * 2 ** 20),
                                         ("1.5GiB", 3 * 2 ** 29), ("100000000", 100_000_000)])
def test_max_memory_sizes(text, value):
    assert limits.parse_bytes(text) == value


@pytest.mark.parametrize("text", ["9000000T", "9" * 400 + "T", "99999999999999999999999T"])
def test_a_max_memory_past_what_setrlimit_takes_is_named(text):
    """It was an OverflowError from setrlimit or float, reported without the flag."""
    with pytest.raises(ConfigError, match=f"--max-memory '{text[:20]}.*is past the largest"):
        limits.parse_bytes(text)


def test_the_limits_page_states_each_ceiling():
    from pathlib import Path
    page = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    ceilings = {"sweep points": limits.MAX_SWEEP_POINTS, "devices in a cluster":
                limits.MAX_DEVICES, "fully-connected": limits.MAX_FULLY_CONNECTED_DEVICES,
                "ops in a workload": limits.MAX_GRAPH_OPS,
                "depth of a CIFAR ResNet": resnet.MAX_CIFAR_DEPTH,
                "calibration rounds": limits.MAX_CALIBRATION_ROUNDS,
                **{f"`{k}`": v for k, v in limits.MAX_OPTION_COUNTS.items()}}
    rows = [line for line in page.splitlines() if line.startswith("| ")]
    for what, value in ceilings.items():
        assert any(what in row and f"| {value:,} |" in row for row in rows), what
    from workloads.errors import MAX_INPUT_BYTES
    assert any("size of an input file" in row and f"| {MAX_INPUT_BYTES // 2 ** 20} MiB |" in row
               for row in rows)
    from workloads.graph import MAX_TENSOR_ELEMENTS
    assert MAX_TENSOR_ELEMENTS == 2 ** 53
    assert any("elements of one tensor" in row and "| 2**53 |" in row for row in rows)


def test_a_cifar_resnet_past_the_depth_limit_is_refused_before_it_is_built(capsys):
    from simulator.cli import main
    assert main(["simulate", "--workload", "resnet150002",
                 "--batch", "1", "--hardware", "v100"]) == 2
    assert "past dnnsim's limit of 140,000" in capsys.readouterr().err


def test_the_deepest_cifar_resnet_allowed_fits_the_graph_limit():
    depth = resnet.MAX_CIFAR_DEPTH - (resnet.MAX_CIFAR_DEPTH - 2) % 6
    blocks = (depth - 2) // 6
    shallow = len(resnet.cifar_resnet(depth=20))                 # 3 blocks
    per_block = len(resnet.cifar_resnet(depth=26)) - shallow    # each block more
    assert shallow + per_block * (blocks - 3) <= limits.MAX_GRAPH_OPS
