"""simulate from a scenario file and flags together: flags give the fields a file leaves out,
and what is missing is named all at once, as the file's fields and as flags."""
from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("text, flags, words", [
    ('workload = "lenet5"\nbatch = 2\nhardware = "v100"\npolcy = "none"\n', ["--bucket-mb", "5"],
     "unknown field 'polcy' (did you mean 'policy'?)"),
    (BASE + 'hardware = "v100"\npolicy = "sequential"\noptions = 3\n', ["--foo", "1"],
     "'options'"),
    (BASE + 'hardware = "v100"\npolicy = "sequential"\nworkload_options = "x"\n',
     ["--workload-option", "width=2"], "'workload_options'"),
    (BASE + 'hardware = "v100"\npolicy = ["none"]\n', ["--foo", "1"], "'policy'"),
])
def test_a_bad_file_with_flags_over_it_is_one_error_line(tmp_path, capsys, text, flags, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["simulate", str(path), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnnsim: error: ") and err.count("\n") == 1 and words in err
    assert "Traceback" not in err
