"""A target whose checked constant was fitted to it is marked "fitted, not predicted"."""
from __future__ import annotations

import pytest

from simulator.policies import ConfigError
from validation.reproduce import report
from validation.reproduce.targets import load_file

TARGET = """paper = "p"
title = "t"
source = "s"
[[target]]
id = "x"
figure = "f"
published = 2.0
tolerance = 0.1
status = "solid"
metric = "speedup"
{extra}
[target.scenario]
workload = "lenet5"
"""


def _record(fitted: str, within: bool = True) -> dict:
    return {"paper": "p", "id": "x", "figure": "f", "published": 2.0, "simulated": 2.05,
            "error": 0.025, "tolerance": 0.1, "tolerance_kind": "relative", "status": "solid",
            "within": within, "failure": None, "known_miss": "", "defaults": [],
            "fitted_to_it": fitted}


def test_target_file_carries_what_was_fitted(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(TARGET.format(extra='fitted_to_it = "k in hw.py, fitted to this figure"'))
    assert load_file(path).targets[0].fitted_to_it == "k in hw.py, fitted to this figure"
    path.write_text(TARGET.format(extra=""))
    assert load_file(path).targets[0].fitted_to_it == ""
    path.write_text(TARGET.format(extra='fitted = "k"'))
    with pytest.raises(ConfigError, match="unknown field 'fitted'"):
        load_file(path)


@pytest.mark.parametrize("within", [True, False])
def test_report_marks_fitted_targets(within):
    fitted = report._verdict(_record("k in hw.py", within))
    assert fitted.endswith("; fitted, not predicted")
    assert "fitted" not in report._verdict(_record("", within))
    doc = {"papers": {"p": {"title": "t", "source": "s"}},
           "targets": [_record("k in hw.py", within)]}
    assert "**x** fitted, not predicted: k in hw.py" in report.markdown(doc)
