"""The real thing: `dnnsim reproduce --check` over validation/targets/ (one slow test)."""
from __future__ import annotations

import json

import pytest

from simulator.cli import main


@pytest.mark.slow
def test_reproduce_check_over_the_real_targets(tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["reproduce", "--out", str(out), "--check", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    doc = json.loads((out / "results.json").read_text())
    solid = [r for r in doc["targets"] if r["status"] == "solid"]
    assert all(r["within"] != bool(r["known_miss"]) for r in solid), printed
    assert (out / "report.html").exists() and (out / "report.md").exists()


def test_a_known_miss_fails_the_check_only_when_it_comes_within():
    from validation.reproduce.run import failing_solid
    rec = {"status": "solid", "paper": "p", "id": "t"}
    doc = {"targets": [{**rec, "within": False, "known_miss": "why"},
                       {**rec, "within": True, "known_miss": ""}]}
    assert failing_solid(doc) == []
    doc["targets"][0]["within"] = True
    doc["targets"][1]["within"] = False
    assert len(failing_solid(doc)) == 2
