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
    assert all(r["within"] for r in doc["targets"] if r["status"] == "solid"), printed
    assert (out / "report.html").exists() and (out / "report.md").exists()
