"""A sweep never destroys a file it did not write, one sweep at a time writes a results file,
and its lines are strict JSON."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest

from hwmodels.specs import PLAUSIBLE
from simulator.cli import main
from simulator.journal import Journal
from simulator.sweep import JOURNAL_KIND, Sweep, read_results, run_sweep

SWEEP_TOML = """
[base]
workload = "lenet5"
batch = 4
hardware = "v100"
policy = "data-parallel"
link = "nvlink2"

[axes]
devices = [1, 2, 4]
"""


def cli_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dnnsim: error: "), err
    return err


@pytest.mark.parametrize("content", [
    b'{"note": "my only copy"}',                       # one JSON line, no final newline
    b"some notes, no newline",
    b'{"sweep": "x", "point": "y", "status": "ok"}\n',  # looks like a result, no header
    b'{"dnnsim_journal": "calibration", "format": 1, "identity": null}\n',
    b"\x00\xff\xfe binary",
    b"[" * 100_000,                                    # nested past any parser's depth
])
def test_a_file_that_is_not_this_kind_of_results_file_is_refused_untouched(
        tmp_path, capsys, content):
    sweep_file, out = tmp_path / "s.toml", tmp_path / "precious.jsonl"
    sweep_file.write_text(SWEEP_TOML)
    out.write_bytes(content)
    err = cli_error(capsys, ["sweep", str(sweep_file), "--out", str(out), "--workers", "1",
                             "--quiet"])
    assert "precious.jsonl" in err and "left as it is" in err
    assert out.read_bytes() == content
    assert not (tmp_path / "precious.jsonl.torn").exists()


def test_a_directory_as_out_is_refused(tmp_path, capsys):
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text(SWEEP_TOML)
    err = cli_error(capsys, ["sweep", str(sweep_file), "--out", str(tmp_path), "--quiet"])
    assert "is a directory" in err


def test_an_empty_file_becomes_a_results_file(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_bytes(b"")
    sweep = Sweep.from_dict({"base": {"workload": "lenet5", "batch": 2, "hardware": "v100",
                                      "policy": "sequential"}, "axes": {"batch": [1, 2]}})
    assert run_sweep(sweep, out, workers=1, progress=False).ran == 2
    head, records = read_results(out)
    assert head["identity"] == sweep.key and len(records) == 2


def test_a_second_writer_is_refused_naming_the_first(tmp_path, capsys):
    sweep_file, out = tmp_path / "s.toml", tmp_path / "r.jsonl"
    sweep_file.write_text(SWEEP_TOML)
    key = Sweep.load(sweep_file).key
    with Journal(out, JOURNAL_KIND, identity=key, what="results file"):
        err = cli_error(capsys, ["sweep", str(sweep_file), "--out", str(out), "--workers", "1",
                                 "--quiet"])
    assert "being written by dnnsim pid" in err and str(os.getpid()) in err
    # the lock goes with its holder: now the sweep runs
    assert main(["sweep", str(sweep_file), "--out", str(out), "--workers", "1",
                 "--quiet"]) == 0


def test_two_sweeps_started_together_write_each_point_once(tmp_path):
    sweep_file, out = tmp_path / "s.toml", tmp_path / "r.jsonl"
    sweep_file.write_text(SWEEP_TOML.replace("devices = [1, 2, 4]",
                                             "devices = [1, 2, 4]\nbatch = [1, 2, 3, 4, 5, 6]"))
    cmd = [sys.executable, "-m", "simulator.cli", "sweep", str(sweep_file), "--out", str(out),
           "--workers", "1", "--quiet"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    first_out, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, (first_err, second.stderr)
    if second.returncode != 0:      # it ran while the first held the file
        assert second.returncode == 2
        assert "being written by dnnsim pid" in second.stderr and str(first.pid) in second.stderr
    _, records = read_results(out)
    keys = [r["point"] for r in records]
    assert len(keys) == len(set(keys)) == 18


@pytest.fixture
def any_bandwidth(monkeypatch):
    """A device's bandwidth unchecked against its span (hwmodels/specs.py PLAUSIBLE refuses
    1e-302 B/s first), so the guard behind it, against figures that overflow, is reached."""
    monkeypatch.setitem(PLAUSIBLE, "mem_bandwidth_Bps", (0.0, math.inf, "B/s"))


def test_an_infinite_figure_is_an_error_line_never_infinity(tmp_path, any_bandwidth):
    out = tmp_path / "r.jsonl"
    # each op's time is finite, their sum overflows
    sweep = Sweep.from_dict({"base": {"workload": "lenet5", "batch": 2, "hardware": "v100",
                                      "policy": "sequential"},
                             "axes": {"hardware_options.mem_bandwidth_Bps": [1e-302, 9e11]}})
    run_sweep(sweep, out, workers=1, progress=False)
    raw = out.read_text()
    assert "Infinity" not in raw and "NaN" not in raw
    statuses = sorted(json.loads(x)["status"] for x in raw.splitlines()[1:])
    assert statuses == ["error", "ok"]
    bad = next(json.loads(x) for x in raw.splitlines()[1:] if '"status":"error"' in x)
    # the launch queue's running sum overflows at a task's duration, or the step's figures do
    assert "non-finite" in bad["error"] or "must be a finite number" in bad["error"]


def test_simulate_refuses_an_infinite_figure(capsys, any_bandwidth):
    err = cli_error(capsys, ["simulate", "--workload", "lenet5", "--batch", "2", "--hardware",
                             "v100", "--hardware-option", "mem_bandwidth_Bps=1e-302", "--json"])
    assert ("non-finite figures: iteration_time_s = inf" in err
            or "duration_s must be a finite number >= 0, got inf" in err)
    assert capsys.readouterr().out == ""
