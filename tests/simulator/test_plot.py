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


def test_plot_never_runs_code_a_results_file_names(results, tmp_path, capsys):
    """A results file is data: a workload it names as `file.py:factory` is not imported."""
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('x')\ndef factory():\n    pass\n")
    crafted = tmp_path / "crafted.jsonl"
    crafted.write_text(results.read_text().replace('"workload":"lenet5"',
                                                   f'"workload":"{evil}:factory"'))
    assert f"{evil}:factory" in crafted.read_text()
    assert main(["plot", str(crafted), "--x", "devices", "--y", "iteration_time_s",
                 "--by", "link,policy", "--out", str(tmp_path / "p.png")]) == 0
    assert not marker.exists()
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_out_a_directory_is_refused_before_anything_is_written(results, tmp_path, capsys):
    assert main(["plot", str(results), "--x", "devices", "--y", "iteration_time_s",
                 "--by", "link,policy", "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not (tmp_path.parent / (tmp_path.name + ".png")).exists()


@pytest.mark.parametrize("line", [
    '{"sweep": 1, "point": "p", "axes": {}, "scenario": {}, "status": "ok"}',
    '{"sweep": "s", "point": "p", "axes": [], "scenario": {}, "status": "ok"}',
    '{"sweep": "s", "point": "p", "axes": {}, "scenario": {"wat": 1}, "status": "ok"}',
    '{"sweep": "s", "point": "p", "axes": {}, "scenario": {}, "status": "ok", "summary": 3}',
    '[1, 2]',
])
def test_malformed_result_lines_are_one_error_line(tmp_path, capsys, line):
    f = tmp_path / "r.jsonl"
    f.write_text('{"dnnsim_journal": "sweep results", "format": 1, "identity": "s"}\n'
                 + line + "\n")
    assert main(["plot", str(f), "--x", "devices", "--y", "iteration_time_s"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnnsim: error:") and len(err.strip().splitlines()) == 1


def test_recheck_simulates_again_and_needs_allow_code_for_a_file_workload(results, tmp_path,
                                                                         capsys):
    argv = ["plot", str(results), "--x", "devices", "--y", "iteration_time_s",
            "--by", "link,policy", "--out", str(tmp_path / "p.png"), "--recheck"]
    assert main(argv) == 0
    assert "recheck: 0 point(s) differ" in capsys.readouterr().out
    # a figure that the model does not give is found
    changed = tmp_path / "changed.jsonl"
    text = results.read_text()
    first = text.splitlines()[1]
    rec = __import__("json").loads(first)
    rec["summary"]["iteration_time_s"] *= 2
    changed.write_text(text.replace(first, __import__("json").dumps(rec)))
    assert main([*argv[:1], str(changed), *argv[2:]]) == 1
    assert rec["point"] in capsys.readouterr().out
    # a file workload: refused without --allow-code, nothing imported
    marker, evil = tmp_path / "ran", tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w')\n")
    crafted = tmp_path / "crafted.jsonl"
    crafted.write_text(text.replace('"workload":"lenet5"', f'"workload":"{evil}:factory"'))
    assert main([*argv[:1], str(crafted), *argv[2:]]) == 2
    assert "--allow-code" in capsys.readouterr().err and not marker.exists()
