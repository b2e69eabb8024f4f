"""validation.experiments.residency: op times against their shape's median, grouped by step
size."""
import math

import pytest

from validation.experiments import residency


def rec(key, time_s, *sources):
    return {"key": key, "time_s": time_s, "sources": list(sources)}


def test_ratios_are_against_the_shape_median_and_grouped_by_step_size():
    mib = 2**20
    step_bytes = {("k", "tiny"): 10 * mib, ("k", "big1"): 300 * mib, ("k", "big2"): 300 * mib,
                  ("solo", "big1"): 300 * mib, ("long", "tiny"): 10 * mib,
                  ("long", "big1"): 300 * mib}
    records = [rec("k", 10e-6, "tiny"), rec("k", 20e-6, "big1"), rec("k", 20e-6, "big2"),
               rec("solo", 5e-6, "big1"),                       # one network: no ratio
               rec("long", 1e-3, "tiny"), rec("long", 1e-3, "big1")]
    rows = {(r["ops"], r["step_below_mib"]): r for r in residency.residency_table(records,
                                                                                 step_bytes)}
    assert rows[("small", 16)]["median_ratio"] == pytest.approx(0.5)
    assert rows[("small", math.inf)] == {"ops": "small", "step_below_mib": math.inf,
                                         "instances": 2, "median_ratio": 1.0}
    assert rows[("large", 16)]["median_ratio"] == 1.0
    assert sum(r["instances"] for r in rows.values()) == 5
    assert "0-16 MiB" in residency.format_table(list(rows.values()))


def test_the_committed_calibration_reads_and_every_op_time_class_is_reported(capsys):
    assert residency.main([]) == 0
    out = capsys.readouterr().out
    assert "under 200 us" in out and "longer" in out and ">= 256 MiB" in out


def test_a_missing_ops_file_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        residency.main(["--ops-csv", str(tmp_path / "none.csv")])
    assert exit_.value.code == 2 and "none.csv" in capsys.readouterr().err
