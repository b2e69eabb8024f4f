"""`dnnsim plot`: speedup against a named baseline, curves by a field, clear errors."""
from __future__ import annotations

import pytest

from simulator.cli import main
from simulator.commands.plot import curves, load_rows
from simulator.policies import ConfigError
from simulator.sweep import Sweep, run_sweep

SWEEP = {"base": {"workload": "lenet5", "batch": 8, "hardware": "v100",
                  "policy": "data-parallel", "link": "nvlink2"},
         "axes": {"devices": [1, 2, 4], "link": ["nvlink2", "eth1g"],
                  "policy": ["sequential", "data-parallel"]},
         "exclude": [{"policy": "sequential", "devices": [2, 4]}]}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("plot") / "r.jsonl"
    run_sweep(Sweep.from_dict(SWEEP), out, workers=1, progress=False)
    return out


def test_speedup_is_throughput_over_the_baseline_points(results):
    rows = load_rows(results)
    data = curves(rows, "devices", "speedup", ["link"], {"devices": 1, "policy": "sequential"},
                  {"policy": "data-parallel"})
    assert set(data) == {"link=nvlink2", "link=eth1g"}
    for label, pts in data.items():
        assert [x for x, _ in pts] == [1, 2, 4]
        link = label.split("=")[1]
        base = next(r for r in rows if r["devices"] == 1 and r["policy"] == "sequential"
                    and r["link"] == link)
        four = next(r for r in rows if r["devices"] == 4 and r["policy"] == "data-parallel"
                    and r["link"] == link)
        assert pts[-1][1] == pytest.approx(four["throughput_samples_per_s"]
                                           / base["throughput_samples_per_s"])
    # a slow network scales worse than NVLink
    assert dict(data["link=eth1g"])[4] < dict(data["link=nvlink2"])[4]


def test_any_summary_key_can_be_plotted(results, tmp_path, capsys):
    png = tmp_path / "t.png"
    assert main(["plot", str(results), "--x", "devices", "--y", "iteration_time_s",
                 "--by", "link,policy", "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "link=eth1g, policy=data-parallel:" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["--x", "devcies"], "no field 'devcies'"),
    (["--x", "devices", "--y", "speedup", "--by", "link"], "needs --baseline"),
    (["--x", "devices", "--y", "speedup", "--by", "link,policy", "--baseline", "devices=16"],
     "no successful point has devices=16"),
    (["--x", "devices", "--y", "iteration_time_s"], "several points share devices=1"),
])
def test_bad_plot_requests_exit_2_with_one_line(results, tmp_path, capsys, argv, words):
    assert main(["plot", str(results), "--out", str(tmp_path / "x.png"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dnnsim: error:") and words in err and len(err.splitlines()) == 1


def test_empty_results_file_is_an_error(tmp_path):
    f = tmp_path / "empty.jsonl"
    f.write_text("")
    with pytest.raises(ConfigError, match="holds no results"):
        load_rows(f)
