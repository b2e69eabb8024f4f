"""The help a new user reads: every flag of the simulator's commands says what it takes, the
commands' summaries read alike, and the first run the top-level help shows does run."""
from __future__ import annotations

import shlex

import pytest

from simulator.cli import SIMULATOR_COMMANDS, START, build_parser, main

PARSER = build_parser()
OWN = [m.rsplit(".", 1)[1].replace("_", "-") for m in SIMULATOR_COMMANDS]


@pytest.mark.parametrize("command", OWN)
def test_every_flag_says_what_it_takes(command):
    for action in PARSER.commands[command]._actions:
        if action.dest != "help":
            name = "/".join(action.option_strings) or action.dest
            assert action.help, f"dnnsim {command} {name} has no help text"


@pytest.mark.parametrize("command", OWN)
def test_every_summary_is_a_sentence(command):
    summary = PARSER.commands[command].description
    assert summary[0].isupper() and summary.endswith("."), summary


def test_the_top_level_help_shows_a_first_run(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "a first run:" in out and "dnnsim COMMAND --help" in out


def test_the_first_run_shown_runs(capsys):
    line = " ".join(START.split("\\\n")).splitlines()
    simulate = next(s for s in line if s.strip().startswith("dnnsim simulate"))
    argv = shlex.split(simulate)[1:]
    assert main(argv) == 0
    assert "iteration time" in capsys.readouterr().out


def test_simulate_help_states_its_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 the step ran; 2 bad input" in out and "3 the step ran out of" in out


def test_out_of_memory_exits_3_naming_the_task(capsys):
    assert main(["simulate", "--workload", "vgg16", "--batch", "64", "--hardware", "v100",
                 "--hardware-option", "memory_bytes=2e9"]) == 3
    assert "OUT OF MEMORY" in capsys.readouterr().out


def test_the_policy_listing_fits_99_columns_and_shows_every_option(capsys):
    from simulator import policies
    assert main(["policies"]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 99 or " " not in line.strip() for line in out.splitlines())
    for name in policies.names():
        assert f"{name}: " in out
        for key in policies.get(name).options:
            assert f"    --{key.replace('_', '-')} " in out


def test_version_prints_the_installed_release(capsys):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"dnnsim {version('dnnsim')}"
