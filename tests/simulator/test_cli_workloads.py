"""`dnnsim workloads` and `dnnsim describe`: tables, CSV, and one-line errors with exit code 2."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import main


def test_workloads_lists_the_zoo(capsys):
    assert main(["workloads"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["network", "input"]
    by_name = {line.split()[0]: line.split() for line in out[1:]}
    assert by_name["resnet50"][1:3] == ["3x224x224", "25,557,032"]
    assert by_name["lenet5"][1:3] == ["1x28x28", "61,706"]
    assert by_name["vgg16"][2] == "138,357,544"
    # aligned: every row starts its parameter column at the same offset
    ends = {line.index(by_name[line.split()[0]][2]) + len(by_name[line.split()[0]][2])
            for line in out[1:]}
    assert len(ends) == 1


def test_describe_prints_ops_and_totals(capsys):
    assert main(["describe", "lenet5", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "fc3" in out and "4x6x28x28" in out
    assert "total: 61,706 parameters" in out
    assert "training memory" not in out


def test_describe_training_memory_has_units(capsys):
    assert main(["describe", "resnet20", "--batch", "8", "--training"]) == 0
    out = capsys.readouterr().out
    assert "conv1.grad_weight" in out and "layer1.0.conv1.update" in out
    memory = out.split("training memory:")[1]
    for part in ("weights", "gradients", "optimizer state", "saved activations", "total"):
        assert part in memory
    assert "MiB" in memory


def test_describe_writes_csv_with_units_in_column_names(tmp_path, capsys):
    path = tmp_path / "ops.csv"
    assert main(["describe", "resnet20", "--batch", "2", "--training", "--csv", str(path)]) == 0
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"op", "kind", "output_shape", "params", "flops", "activation_bytes"} <= set(rows[0])
    forward = [r for r in rows if r["phase"] == "forward"]
    assert sum(int(r["params"]) for r in forward) == 269_722
    assert any(r["kind"] == "sgd_update" for r in rows)


def test_describe_takes_simulates_name_for_a_network_option(capsys):
    assert main(["describe", "resnet20", "--option", "width=0.5"]) == 0
    short = capsys.readouterr().out
    assert main(["describe", "resnet20", "--workload-option", "width=0.5"]) == 0
    assert capsys.readouterr().out == short
    assert main(["describe", "resnet20"]) == 0
    assert capsys.readouterr().out != short   # the option reached the network


@pytest.mark.parametrize("argv,message", [
    (["describe", "nonexistent"], "unknown network"),
    (["describe", "resnet20", "--batch", "0"], "batch"),
    (["describe", "resnet57"], "6k+2"),
    (["describe", "alexnet", "--input-size", "8"], "does not fit"),
    (["describe", "resnet20", "--option", "shortcut=C"], "shortcut"),
    (["describe", "resnet20", "--option", "width"], "KEY=VALUE"),
])
def test_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnnsim: error: ") and message in err
    assert err.count("\n") == 1


def test_console_script_exits_2_without_traceback():
    script = Path(sys.executable).with_name("dnnsim")
    if not script.exists():
        pytest.skip("the dnnsim console script is not installed next to this Python")
    env = {k: v for k, v in os.environ.items() if k != "DNNSIM_DEBUG"}
    proc = subprocess.run([str(script), "describe", "nonexistent"], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("dnnsim: error: unknown network")


def test_describe_refuses_an_optimizer_without_training(capsys):
    assert main(["describe", "lenet5", "--optimizer", "adam"]) == 2
    assert "--optimizer sets the update of --training" in capsys.readouterr().err


@pytest.mark.parametrize("argv, header", [([], "training with sgd-momentum"),
                                          (["--optimizer", "adam"], "training with adam")])
def test_describe_training_names_its_optimizer(argv, header, capsys):
    assert main(["describe", "lenet5", "--training", *argv]) == 0
    assert header in capsys.readouterr().out.splitlines()[0]
