"""simulate from a scenario file and flags together: flags give the fields a file leaves out,
and what is missing is named all at once, as the file's fields and as flags."""
from __future__ import annotations

from simulator.cli import main

BASE = 'workload = "lenet5"\nbatch = 2\n'


def test_flags_complete_a_partial_scenario_file(tmp_path, capsys):
    path = tmp_path / "base.toml"
    path.write_text(BASE)
    assert main(["simulate", str(path), "--hardware", "v100", "--policy", "sequential"]) == 0
    assert "sequential: lenet5, batch 2, training" in capsys.readouterr().out
    assert path.read_text() == BASE


def test_what_a_file_and_the_flags_leave_out_is_named_at_once(tmp_path, capsys):
    path = tmp_path / "base.toml"
    path.write_text(BASE)
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "missing field(s) 'hardware', 'policy': give them in the file or as --hardware, " \
        "--policy" in err


def test_no_scenario_names_every_missing_flag_with_an_example(capsys):
    assert main(["simulate", "--batch", "4"]) == 2
    err = capsys.readouterr().err
    assert "give --workload, --hardware (or a scenario file); e.g. --workload resnet50" in err
    assert err.count("\n") == 1
