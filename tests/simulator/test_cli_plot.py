"""`dnnsim plot` as a user meets it: the default output never replaces a file the user did not
name, and a y axis named loosely (throughput, memory) is answered with the figure meant."""
from __future__ import annotations

import pytest

from simulator.cli import main
from simulator.sweep import Sweep, run_sweep

SWEEP = {"base": {"workload": "lenet5", "batch": 8, "hardware": "v100",
                  "policy": "data-parallel", "link": "nvlink2"},
         "axes": {"devices": [1, 2]}}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_plot") / "study.jsonl"
    run_sweep(Sweep.from_dict(SWEEP), out, workers=1, progress=False)
    return out


@pytest.fixture
def study(results, tmp_path):
    """The results file, copied to a folder of this test's own (default plots land beside it)."""
    copy = tmp_path / "study.jsonl"
    copy.write_bytes(results.read_bytes())
    return copy


def test_the_default_output_lands_beside_the_results(study, capsys):
    assert main(["plot", str(study), "--x", "devices", "--baseline", "devices=1"]) == 0
    png = study.parent / "study-speedup-by-devices.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {png}" in capsys.readouterr().out


def test_an_existing_file_at_the_default_output_is_refused_and_kept(study, capsys):
    mine = study.parent / "study-speedup-by-devices.png"
    mine.write_text("a figure of mine")
    assert main(["plot", str(study), "--x", "devices", "--baseline", "devices=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnnsim: error: ") and err.count("\n") == 1
    assert "exists" in err and "--out" in err and str(mine) in err
    assert mine.read_text() == "a figure of mine"
    # naming it is the request: then it is replaced
    assert main(["plot", str(study), "--x", "devices", "--baseline", "devices=1",
                 "--out", str(mine)]) == 0
    assert mine.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("y, meant", [("throughput", "throughput_samples_per_s"),
                                      ("memory", "peak_memory_bytes"),
                                      ("iteration_time", "iteration_time_s"),
                                      ("makspan_s", "makespan_s")])
def test_a_loose_figure_name_is_answered_with_the_figure_meant(study, y, meant, capsys):
    assert main(["plot", str(study), "--x", "devices", "--y", y,
                 "--out", str(study.parent / "y.png")]) == 2
    err = capsys.readouterr().err
    assert f"no figure {y!r}" in err and f"did you mean {meant!r}?" in err
    figures = err.split("figures: ")[1]
    assert "speedup, efficiency" in figures and "throughput_samples_per_s" in figures
    assert "hardware" not in figures   # scenario fields are not listed as figures
    assert not (study.parent / "y.png").exists()


def test_a_mistyped_axis_names_its_flag_and_the_field_meant(study, capsys):
    assert main(["plot", str(study), "--x", "devcies", "--baseline", "devices=1",
                 "--out", str(study.parent / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "--x: no field 'devcies'" in err and "did you mean 'devices'?" in err


def test_curves_run_in_number_order(study):
    from simulator.commands.plot import curves, load_rows
    rows = load_rows(study)
    for r in rows:   # two curves whose labels sort apart as text: batch=16 before batch=8
        r["batch"] = 8 if r["devices"] == 1 else 16
    assert list(curves(rows, "devices", "iteration_time_s", ["batch"])) == ["batch=8",
                                                                           "batch=16"]


def test_a_relative_plot_names_its_baseline_in_the_title(study, monkeypatch, capsys):
    import simulator.commands.plot as plot
    titles = []
    real = plot.plot_curves
    monkeypatch.setattr(plot, "plot_curves",
                        lambda *a, **kw: titles.append(kw["title"]) or real(*a, **kw))
    assert main(["plot", str(study), "--x", "devices", "--y", "efficiency",
                 "--baseline", "devices=1", "--out", str(study.parent / "e.png")]) == 0
    assert main(["plot", str(study), "--x", "devices", "--y", "iteration_time_s",
                 "--out", str(study.parent / "t.png")]) == 0
    assert titles == ["efficiency by devices (baseline devices=1)",
                      "iteration_time_s by devices"]


def test_a_point_out_of_memory_is_counted_by_sweep_and_named_by_plot(tmp_path, capsys):
    path = tmp_path / "oom.toml"
    path.write_text('[base]\nworkload = "lenet5"\nhardware = "v100"\npolicy = "sequential"\n'
                    '[base.hardware_options]\nmemory_bytes = 600000000\n'
                    '[axes]\nbatch = [2, 20000]\n')
    out = tmp_path / "oom.jsonl"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert "2 simulated, 1 out of memory" in capsys.readouterr().out
    assert main(["plot", str(out), "--x", "batch", "--y", "iteration_time_s",
                 "--out", str(tmp_path / "t.png")]) == 0
    printed = capsys.readouterr().out
    assert "batch=2 " in printed and "not drawn: batch=20000 (out_of_memory)" in printed


def test_names_on_the_x_axis_are_bars_and_numbers_are_lines():
    from matplotlib.patches import Rectangle

    from simulator.commands.plot import plot_curves
    named = {"precision=fp32": [("a100", 2.0), ("v100", 1.0)],
             "precision=amp-fp16": [("a100", 5.0), ("v100", 3.0)]}
    (ax,) = plot_curves(named, None, "hardware", "throughput_samples_per_s").axes
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert sorted(b.get_height() for b in bars) == [1.0, 2.0, 3.0, 5.0] and not ax.lines
    # each GPU's bars sit around its tick, one per curve, side by side
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a100", "v100"]
    assert sorted(round(b.get_x() + b.get_width() / 2, 3) for b in bars) == \
        [-0.2, 0.2, 0.8, 1.2]
    (ax,) = plot_curves({"y": [(1, 1.0), (2, 1.9)]}, None, "devices", "speedup").axes
    assert len(ax.lines) == 1 and not ax.patches
