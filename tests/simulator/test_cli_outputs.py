"""An output flag never replaces a file the same run reads (the scenario, the network's .py,
a profile, the results file) nor another output of the run: one error line, exit 2, before
the run, the file byte for byte as it was."""
from __future__ import annotations

from pathlib import Path

import pytest

from simulator.cli import main
from simulator.commands import input_files, refuse_inputs_as_outputs
from simulator.policies import ConfigError

NET = """import torch.nn as nn


def make_net():
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
"""
SCENARIO = 'workload = "lenet5"\nbatch = 2\nhardware = "v100"\npolicy = "sequential"\n'


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("net.py").write_text(NET)
    Path("run.toml").write_text(SCENARIO)
    return tmp_path


def _refused(argv, kept: dict[str, str], words: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnnsim: error: ") and err.count("\n") == 1 and words in err
    for name, text in kept.items():
        assert Path(name).read_text() == text


@pytest.mark.parametrize("flag", ["--trace", "--csv"])
def test_simulate_never_writes_over_its_scenario_file(files, flag, capsys):
    _refused(["simulate", "run.toml", flag, "run.toml"], {"run.toml": SCENARIO},
             f"{flag} 'run.toml' is a file this run reads", capsys)


def test_simulate_never_writes_over_the_network_file(files, capsys):
    _refused(["simulate", "--workload", "net.py:make_net", "--workload-option",
              "input_shape=12", "--batch", "2", "--hardware", "v100", "--csv", "./net.py"],
             {"net.py": NET}, "a file this run reads", capsys)


def test_describe_never_writes_over_the_network_file(files, capsys):
    _refused(["describe", "net.py:make_net", "--option", "input_shape=12", "--csv", "net.py"],
             {"net.py": NET}, "--csv 'net.py' is a file this run reads", capsys)


def test_two_outputs_of_one_run_are_refused(files, capsys):
    Path("out.json").write_text("mine")
    _refused(["simulate", "run.toml", "--trace", "out.json", "--csv", "./out.json"],
             {"out.json": "mine"}, "--csv './out.json' is the output of --trace too", capsys)


def test_distinct_outputs_are_written(files, capsys):
    assert main(["simulate", "run.toml", "--trace", "t.json", "--csv", "t.csv"]) == 0
    assert Path("t.json").stat().st_size > 0 and Path("t.csv").stat().st_size > 0
    assert Path("run.toml").read_text() == SCENARIO


def test_input_files_are_the_existing_paths_and_network_files(files):
    assert input_files(["net.py:make_net", "run.toml", "lenet5", None, 3, "gone.csv", ""]) == \
        ["net.py", "run.toml"]


def test_a_symbolic_link_to_an_input_is_the_input(files):
    Path("alias.toml").symlink_to(files / "run.toml")
    with pytest.raises(ConfigError, match="a file this run reads"):
        refuse_inputs_as_outputs([("--trace", "alias.toml")], ["run.toml"])


def test_a_missing_network_file_says_where_a_relative_path_is_read_from(files, capsys):
    assert main(["simulate", "--workload", "nets/net.py:make_net", "--batch", "2",
                 "--hardware", "v100"]) == 2
    err = capsys.readouterr().err
    assert "network file 'nets/net.py' does not exist (a relative path is read from the " \
        "current directory)" in err


def test_a_folder_that_takes_no_file_is_refused_before_the_run(files, capsys):
    """/sys takes no new file, even for root (a read-only folder would, for root)."""
    if not Path("/sys").is_dir():
        pytest.skip("no /sys on this system")
    assert main(["simulate", "run.toml", "--trace", "/sys/step.json"]) == 2
    err = capsys.readouterr().err
    assert "--trace '/sys/step.json': cannot write in folder '/sys'" in err
    assert err.count("\n") == 1


def test_the_write_check_leaves_nothing_behind(files, capsys):
    assert main(["simulate", "run.toml", "--trace", "t.json"]) == 0
    assert sorted(p.name for p in files.iterdir()) == ["net.py", "run.toml", "t.json"]


def test_a_pipe_or_device_is_written_through_never_replaced(files, capsys):
    """A named pipe (as /dev/null, /dev/stdout: not a regular file) gets the output written
    into it and stays what it was; a rename over it would replace it (in /dev, as root, the
    device itself)."""
    import os
    import stat
    import threading
    os.mkfifo("pipe.csv")
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(Path("pipe.csv").read_bytes()),
                              daemon=True)
    reader.start()
    assert main(["simulate", "run.toml", "--csv", "pipe.csv"]) == 0
    reader.join(timeout=60)
    assert stat.S_ISFIFO(os.lstat("pipe.csv").st_mode)
    assert got and got[0].startswith(b"task,") and got[0].count(b"\n") > 10
    assert sorted(p.name for p in files.iterdir()) == ["net.py", "pipe.csv", "run.toml"]


def test_an_output_through_a_symbolic_link_replaces_the_file_it_names(files, capsys):
    Path("traces").mkdir()
    Path("traces/step.json").write_text("old")
    Path("step.json").symlink_to("traces/step.json")
    assert main(["simulate", "run.toml", "--trace", "step.json"]) == 0
    assert Path("step.json").is_symlink()
    assert Path("traces/step.json").read_text().startswith("{")
