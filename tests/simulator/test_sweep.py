"""Sweeps: the points of a factorial product, a crash-safe resumable results file, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.sweep import Sweep, SweepError, read_results, run_sweep, stable_hash

BASE = {"workload": "lenet5", "batch": 4, "hardware": "v100", "policy": "data-parallel",
        "link": "nvlink2"}
SWEEP_TOML = """
[base]
workload = "lenet5"
batch = 4
hardware = "v100"
policy = "data-parallel"
link = "nvlink2"

[axes]
devices = [1, 2, 4]
link = ["nvlink2", "eth10g"]
"options.bucket_mb" = [1, 25]

[[exclude]]
devices = 1
link = "eth10g"
"""


def small_sweep(**axes) -> Sweep:
    return Sweep.from_dict({"base": dict(BASE), "axes": axes or {"batch": [1, 2, 3],
                                                                 "devices": [1, 2]}})


def lines_of(path: Path) -> list[str]:
    """The result lines of a results file, after its header line."""
    head, *lines = path.read_text().splitlines()
    assert json.loads(head)["dnnsim_journal"] == "sweep results"
    return lines


def test_points_are_the_factorial_product_less_the_excluded(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(SWEEP_TOML)
    points = Sweep.load(f).points()
    assert len(points) == 3 * 2 * 2 - 2
    assert not any(p.axes["devices"] == 1 and p.axes["link"] == "eth10g" for p in points)
    assert {p.scenario["options"]["bucket_mb"] for p in points} == {1, 25}
    assert len({p.key for p in points}) == len(points)
    # the point hash is the hash of its scenario, not of the order it was produced in
    assert points[0].key == stable_hash(points[0].scenario)


def test_each_point_is_one_complete_json_line(tmp_path):
    out = tmp_path / "r.jsonl"
    sweep = small_sweep()
    stats = run_sweep(sweep, out, workers=1, progress=False)
    assert (stats.total, stats.ran, stats.skipped) == (6, 6, 0)
    recs = [json.loads(line) for line in lines_of(out)]
    assert all(r["sweep"] == sweep.key and r["status"] == "ok" for r in recs)
    one = next(r for r in recs if r["axes"] == {"batch": 2, "devices": 2})
    assert one["scenario"]["devices"] == 2 and one["summary"]["iteration_time_s"] > 0


def test_rerun_skips_finished_points_and_duplicates_nothing(tmp_path):
    out = tmp_path / "r.jsonl"
    sweep = small_sweep()
    run_sweep(sweep, out, workers=1, progress=False)
    before = out.read_bytes()
    stats = run_sweep(sweep, out, workers=1, progress=False)
    assert (stats.ran, stats.skipped) == (0, 6)
    assert out.read_bytes() == before


def test_torn_last_line_is_dropped_and_the_point_rerun(tmp_path):
    out = tmp_path / "r.jsonl"
    sweep = small_sweep()
    run_sweep(sweep, out, workers=1, progress=False)
    full = lines_of(out)
    head = out.read_text().splitlines()[0]
    out.write_text("\n".join([head, *full[:3]]) + "\n" + full[3][:40])  # killed mid-line 4
    _, records = read_results(out)
    assert len(records) == 3
    stats = run_sweep(sweep, out, workers=1, progress=False)
    assert stats.ran == 3
    assert sorted(lines_of(out)) == sorted(full)
    # what was cut is kept beside the file
    assert (tmp_path / "r.jsonl.torn").read_text() == full[3][:40] + "\n"


def test_lines_are_the_same_whatever_the_worker_count(tmp_path):
    sweep = small_sweep()
    run_sweep(sweep, tmp_path / "one.jsonl", workers=1, progress=False)
    run_sweep(sweep, tmp_path / "two.jsonl", workers=2, progress=False)
    assert sorted(lines_of(tmp_path / "one.jsonl")) == sorted(lines_of(tmp_path / "two.jsonl"))


def test_a_killed_run_loses_nothing_and_resumes(tmp_path):
    sweep_file, out = tmp_path / "s.toml", tmp_path / "r.jsonl"
    sweep_file.write_text(SWEEP_TOML.replace("[1, 25]", "[1, 2, 5, 10, 25, 50]"))
    cmd = [sys.executable, "-m", "simulator.cli", "sweep", str(sweep_file), "--out", str(out),
           "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 4):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = out.read_bytes()
    assert 4 <= kept.count(b"\n") < 31   # the header and at least 3 points
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    lines = lines_of(out)
    assert len(lines) == 30 and len({json.loads(x)["point"] for x in lines}) == 30
    assert out.read_bytes().startswith(kept[:kept.rfind(b"\n") + 1])


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("data, words", [
    ({"base": BASE, "axes": {"devcies": [1, 2]}}, ["'devcies'", "did you mean 'devices'"]),
    ({"base": BASE, "axes": {"batch": []}}, ["axis 'batch' is empty"]),
    ({"base": BASE, "axes": {"batch": 4}}, ["axis 'batch' must be a list"]),
    ({"base": BASE, "axes": {"policy_opts.x": [1]}}, ["'policy_opts.x'"]),
    ({"base": BASE, "axes": {"options.bucket": [1]}},
     ["no policy of this sweep (data-parallel) has option 'bucket'"]),
    ({"base": {**BASE, "options": {"bucket": 1}}, "axes": {"batch": [1]}}, ["no option 'bucket'"]),
    ({"base": BASE, "axes": {"batch": [1, -2]}}, ["batch must be >= 1"]),
    ({"base": BASE, "axes": {"batch": [1]}, "exclude": [{"devices": 1}]}, ["not an axis"]),
    ({"base": BASE, "axis": {"batch": [1]}}, ["unknown table 'axis'"]),
    ({"axes": {"batch": [1]}}, ["missing table [base]"]),
])
def test_bad_sweeps_are_refused_with_a_clear_error(data, words):
    with pytest.raises(SweepError) as err:
        Sweep.from_dict(data)
    for w in words:
        assert w in str(err.value)


def test_cli_bad_sweep_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(SWEEP_TOML.replace("devices = [1, 2, 4]", "devices = []"))
    out = tmp_path / "r.jsonl"
    assert main(["sweep", str(f), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dnnsim: error:") and "'devices' is empty" in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_results_file_of_another_sweep_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    run_sweep(small_sweep(), out, workers=1, progress=False)
    before = out.read_bytes()
    with pytest.raises(SweepError, match="written by another sweep"):
        run_sweep(small_sweep(batch=[7, 8]), out, workers=1, progress=False)
    f = tmp_path / "s.toml"
    f.write_text(SWEEP_TOML)
    assert main(["sweep", str(f), "--out", str(out), "--quiet"]) == 2
    assert "another sweep" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_a_file_that_is_not_a_results_file_is_refused(tmp_path):
    out = tmp_path / "notes.jsonl"
    out.write_text("hello\nworld\n")
    with pytest.raises(SweepError, match="line 1 is not JSON.*left as it is"):
        run_sweep(small_sweep(), out, workers=1, progress=False)
    assert out.read_text() == "hello\nworld\n"


def test_a_point_that_cannot_run_is_recorded_not_fatal(tmp_path):
    """A width of 1e300 passes the points' check (the network is built when the point runs)
    and fails there: recorded as an error, and the other points run."""
    out = tmp_path / "r.jsonl"
    sweep = Sweep.from_dict({"base": BASE, "axes": {
        "hardware_options.memory_bytes": [1000, 16_000_000_000],
        "workload_options.width": [1.0, 1e300]}})
    stats = run_sweep(sweep, out, workers=1, progress=False)
    statuses = sorted(json.loads(x)["status"] for x in lines_of(out))
    assert stats.ran == 4 and stats.errors == 2
    assert statuses == ["error", "error", "ok", "out_of_memory"]


def test_a_point_with_a_bad_hardware_option_refuses_the_sweep(tmp_path):
    """Overrides are checked with the points, before any runs: bytes must be whole."""
    out = tmp_path / "r.jsonl"
    with pytest.raises(ValueError, match=r"\[hardware_options\] device 'v100': memory_bytes "
                                         "must be an integer"):
        sweep = Sweep.from_dict({"base": BASE, "axes": {"hardware_options.memory_bytes":
                                                              [16_000_000_000, 8e9 + 0.5]}})
        run_sweep(sweep, out, workers=1, progress=False)
    assert not out.exists()


def test_an_option_axis_applies_only_to_the_policies_that_have_it():
    sweep = Sweep.from_dict({"base": BASE, "axes": {
        "policy": ["sequential", "data-parallel"], "options.bucket_mb": [5, 25]}})
    points = sweep.points()
    assert len(points) == 3  # sequential once: bucket_mb means nothing to it
    assert [p.scenario.get("options", {}) for p in points] == [
        {}, {"bucket_mb": 5}, {"bucket_mb": 25}]
