"""Relative paths in a scenario or sweep file are read from the file's folder, whatever the
current directory; flags stay relative to the current directory; a missing file is an error
naming the path as written and where it was looked for."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.policies import ConfigError
from simulator.scenario import Scenario
from simulator.scenario_paths import resolve_field
from simulator.sweep import Sweep, SweepError

NET = """import torch.nn as nn


def make_net():
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
"""
PROFILE = Path(__file__).resolve().parents[2] / "validation" / "measured" / "cpu_profile.toml"
SCENARIO = """workload = "nets/net.py:make_net"
batch = 2
hardware = "v100"
policy = "sequential"
[workload_options]
input_shape = "12"
"""


@pytest.fixture
def study(tmp_path, monkeypatch):
    """study/run.toml naming study/nets/net.py; the current directory is elsewhere."""
    (tmp_path / "study" / "nets").mkdir(parents=True)
    (tmp_path / "study" / "nets" / "net.py").write_text(NET)
    (tmp_path / "study" / "run.toml").write_text(SCENARIO)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return tmp_path / "study"


def test_simulate_reads_the_network_beside_the_scenario(study, capsys):
    assert main(["simulate", "../study/run.toml", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "ok"
    assert doc["scenario"]["workload"] == f"{study / 'nets' / 'net.py'}:make_net"


@pytest.mark.filterwarnings("ignore:.*measured on another machine")
def test_scenario_load_reads_a_profile_beside_the_file(study):
    shutil.copy(PROFILE, study / "prof.toml")
    (study / "cpu.toml").write_text('workload = "lenet5"\nbatch = 2\nhardware = "prof.toml"\n'
                                    'policy = "sequential"\n')
    sc = Scenario.load(study / "cpu.toml")
    assert sc.hardware == str(study / "prof.toml")
    assert sc.run().ok


def test_flags_stay_relative_to_the_current_directory(study, capsys):
    """The file's own workload is replaced by a flag's, read from where dnnsim runs."""
    Path("here.py").write_text(NET)
    assert main(["simulate", "../study/run.toml", "--workload", "here.py:make_net",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scenario"]["workload"] == "here.py:make_net"


def test_a_missing_file_names_the_resolved_path(study, capsys):
    (study / "run.toml").write_text(SCENARIO.replace("nets/net.py", "nets/gone.py"))
    assert main(["simulate", "../study/run.toml"]) == 2
    err = capsys.readouterr().err
    assert f"'nets/gone.py' is read from the folder of '../study/run.toml', and " \
        f"'{study / 'nets' / 'gone.py'}' is not a file" in err
    assert err.count("\n") == 1


def test_a_sweep_reads_its_paths_from_its_folder(study):
    shutil.copy(PROFILE, study / "prof.toml")
    (study / "sweep.toml").write_text(
        '[base]\nworkload = "lenet5"\nbatch = 2\npolicy = "sequential"\n'
        '[axes]\nhardware = ["prof.toml", "v100"]\n')
    sweep = Sweep.load(study / "sweep.toml")
    assert [p.scenario["hardware"] for p in sweep.points()] == [str(study / "prof.toml"),
                                                                 "v100"]


def test_a_sweeps_exclusion_names_the_same_file(study):
    shutil.copy(PROFILE, study / "prof.toml")
    (study / "sweep.toml").write_text(
        '[base]\nworkload = "lenet5"\nbatch = 2\npolicy = "sequential"\n'
        '[axes]\nhardware = ["prof.toml", "v100"]\n[[exclude]]\nhardware = "prof.toml"\n')
    assert [p.scenario["hardware"] for p in Sweep.load(study / "sweep.toml").points()] == \
        ["v100"]


def test_a_sweeps_missing_file_is_named(study):
    (study / "sweep.toml").write_text(
        '[base]\nworkload = "lenet5"\nbatch = 2\npolicy = "sequential"\n'
        '[axes]\nhardware = ["nothere.toml"]\n')
    with pytest.raises(SweepError, match="nothere.toml' is read from the folder of"):
        Sweep.load(study / "sweep.toml")


@pytest.mark.parametrize(("name", "value", "is_path"), [
    ("workload", "nets/net.py:make_net", True), ("workload", "resnet50", False),
    ("hardware", "prof.toml", True), ("hardware", "v100", False),
    ("options.sparsity", "zeros.csv", True), ("options.sparsity", "constant:0.5", False),
    ("link", "x.toml", False), ("batch", 3, False)])
def test_only_values_that_name_files_are_read_from_the_folder(tmp_path, name, value, is_path):
    file = tmp_path / "s.toml"
    if is_path:
        with pytest.raises(ConfigError, match="is read from the folder of"):
            resolve_field(name, value, file, "s.toml")
    else:
        assert resolve_field(name, value, file, "s.toml") == value


def test_absolute_paths_are_kept(tmp_path):
    net = tmp_path / "net.py"
    net.write_text(NET)
    assert resolve_field("workload", f"{net}:make_net", tmp_path / "x" / "s.toml", "s") == \
        f"{net}:make_net"
