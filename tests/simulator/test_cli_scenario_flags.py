"""simulate from a scenario file and flags together: flags give the fields a file leaves out,
and what is missing is named all at once, as the file's fields and as flags."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "corpus"))
from generate import to_toml  # noqa: E402  (the corpus's TOML writer)

FILE_FIELDS = {"workload": st.sampled_from(["lenet5", "x", 3]),
               "batch": st.sampled_from([2, 0, "2"]),
               "hardware": st.sampled_from(["v100", "H100", ""]),
               "policy": st.sampled_from(["sequential", "data-parallel", ["none"], 1]),
               "polcy": st.just("none"),
               "options": st.sampled_from([{"bucket_mb": 5}, 3, "x"]),
               "workload_options": st.sampled_from([{"width": 2}, "x"])}
FLAGS = st.lists(st.sampled_from([["--hardware", "v100"], ["--batch", "2"],
                                  ["--policy", "sequential"], ["--bucket-mb", "5"],
                                  ["--precison", "fp32"], ["--foo", "1"], ["-o", "k=1"],
                                  ["--workload-option", "width=2"], ["--devices", "2"],
                                  ["--link", "nvlink2"]]), max_size=3)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.fixed_dictionaries({}, optional=FILE_FIELDS), flags=FLAGS)
def test_any_file_with_any_flags_runs_or_is_one_error_line(tmp_path, capsys, doc, flags):
    path = tmp_path / "s.toml"
    path.write_bytes(to_toml(doc))
    code = main(["simulate", str(path), *[part for flag in flags for part in flag]])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("dnnsim: error: ")
    else:
        assert code == 0 and "iteration time" in out, (code, err)
