"""The real thing: `dnnsim reproduce --check` over validation/targets/ (one slow test).

Its targets' values come from the run's shared cache (tests/conftest.py), so the targets are
simulated once per test run; the figures, traces, report and check run as the command runs them.
"""
from __future__ import annotations

import json

import pytest

from simulator.cli import main
from validation.reproduce import run


@pytest.mark.slow
def test_reproduce_check_over_the_real_targets(tmp_path, capsys, monkeypatch, simulated_target):
    monkeypatch.setattr(run, "measure", simulated_target)
    out = tmp_path / "report"
    code = main(["reproduce", "--out", str(out), "--check", "--quiet", "--workers", "1"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    doc = json.loads((out / "results.json").read_text())
    checked = [r for r in doc["targets"] if r["status"] in run.CHECKED_STATUSES]
    assert {r["status"] for r in checked} == {"solid", "bound"}
    assert all(r["within"] != bool(r["known_miss"]) for r in checked), printed
    assert (out / "report.html").exists() and (out / "report.md").exists()


def test_a_known_miss_fails_the_check_only_when_it_comes_within():
    rec = {"paper": "p", "id": "t"}
    doc = {"targets": [{**rec, "status": "solid", "within": False, "known_miss": "why"},
                       {**rec, "status": "bound", "within": True, "known_miss": ""},
                       {**rec, "status": "qualitative", "within": False, "known_miss": ""}]}
    assert run.failing_checked(doc) == []
    doc["targets"][0]["within"] = True
    doc["targets"][1]["within"] = False
    assert len(run.failing_checked(doc)) == 2
