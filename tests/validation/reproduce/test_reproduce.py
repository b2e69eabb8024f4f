"""`dnnsim reproduce` on small fixture targets: the report folder, --check, --only, --resume,
an interrupted run, broken hooks."""
from __future__ import annotations

import json

import pytest

from simulator.cli import main
from simulator.scenario import Scenario
from validation.reproduce import run as rep

from .fixture_targets import paper, target


def test_report_folder_has_tables_figures_traces_and_runnable_scenarios(folder, tmp_path):
    out = tmp_path / "report"
    # one process: the fixture's hook module lives only in this interpreter's sys.modules
    doc = rep.reproduce(out, folder=folder, progress=False, workers=1)
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(doc))
    by_id = {r["id"]: r for r in saved["targets"]}
    assert set(by_id) == {"near", "far", "bound"}
    near = by_id["near"]
    assert near["within"] and not by_id["far"]["within"] and by_id["bound"]["within"]
    assert near["error"] == pytest.approx((near["simulated"] - 2.0) / 2.0)
    # the recorded scenario is the form `dnnsim simulate` takes, and re-runs to the same value
    again = Scenario.from_dict(near["scenario"]).run()
    base = Scenario.from_dict(near["baseline"]).run()
    assert near["simulated"] == pytest.approx(again.throughput_samples_per_s
                                              / base.throughput_samples_per_s)
    assert saved["papers"]["alpha"]["figures"] == ["figures/alpha/speedup.png"]
    assert "no data for the plot" in saved["papers"]["beta"]["figures_error"]
    for p in ("alpha", "beta"):
        assert json.loads((out / "traces" / f"{p}.json").read_text())["traceEvents"]
    md = (out / "report.md").read_text()
    assert "| near | fig near | 2 |" in md and "| NO |" in md
    assert "defaults (not the paper's): GPU: v100 (not named)" in md
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # alpha's figure, two timelines
    assert "src=\"figures/" not in page  # self-contained


def test_check_exits_1_only_when_a_solid_target_is_outside(folder, tmp_path, capsys):
    args = ["reproduce", "--targets", str(folder), "--out", str(tmp_path / "r"), "--quiet"]
    assert main(args) == 0
    assert main(args + ["--check"]) == 1
    assert "outside: alpha/far (solid)" in capsys.readouterr().out
    assert main(args + ["--check", "--only", "beta"]) == 0


def test_unknown_paper_and_missing_folder_are_one_line_errors(folder, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["reproduce", "--targets", str(folder), "--out", str(out), "--only", "gamma"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "dnnsim: error: unknown paper 'gamma'; known: alpha, beta"
    assert main(["reproduce", "--targets", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_folder_without_targets_is_refused_not_reported_as_0_of_0(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["reproduce", "--targets", str(tmp_path / "empty"), "--out",
                 str(tmp_path / "r"), "--check", "--quiet"]) == 2
    assert "holds no target files" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_folder_of_the_users_is_not_written_into(tmp_path, capsys):
    folder = tmp_path / "targets"
    folder.mkdir()
    (folder / "alpha.toml").write_text(paper("alpha", target("t1", 1.0)))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my own report\n")
    assert main(["reproduce", "--targets", str(folder), "--out", str(out), "--quiet",
                 "--workers", "1"]) == 2
    assert "is not a reproduce report" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]
    assert (out / "report.md").read_text() == "my own report\n"


def test_results_are_byte_for_byte_deterministic_whatever_the_workers(tmp_path):
    # no figures hooks: worker processes are fresh interpreters that only see real modules
    folder = tmp_path / "targets"
    folder.mkdir()
    (folder / "alpha.toml").write_text(paper("alpha", target("near", 2.0) + target("far", 50.0)))
    (folder / "beta.toml").write_text(paper("beta", target("bound", 1.0, "bound",
                                                         "lower = 1.0\nupper = 3.0\n")))
    rep.reproduce(tmp_path / "a", folder=folder, progress=False, workers=1)
    rep.reproduce(tmp_path / "b", folder=folder, progress=False, workers=2)
    for name in ("results.json", "report.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_interrupted_run_keeps_what_it_measured_and_resume_skips_it(folder, tmp_path,
                                                                     monkeypatch):
    out = tmp_path / "r"
    real = rep.target_record
    calls = []

    def interrupted(t):
        if t.id == "far":
            raise KeyboardInterrupt
        calls.append(t.id)
        return real(t)

    monkeypatch.setattr(rep, "target_record", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rep.reproduce(out, folder=folder, progress=False, workers=1)
    kept = json.loads((out / "results.json").read_text())
    assert [r["id"] for r in kept["targets"]] == ["near"]
    calls.clear()
    monkeypatch.setattr(rep, "target_record", lambda t: calls.append(t.id) or real(t))
    doc = rep.reproduce(out, folder=folder, resume=True, progress=False, workers=1)
    assert calls == ["far", "bound"] and [r["id"] for r in doc["targets"]] == ["near", "far",
                                                                               "bound"]
    # a target whose definition changed is measured again
    f = folder / "alpha.toml"
    f.write_text(f.read_text().replace("published = 2.0", "published = 2.5"))
    calls.clear()
    rep.reproduce(out, folder=folder, resume=True, progress=False, workers=1)
    assert calls == ["near"]


def test_a_target_that_cannot_be_measured_is_reported_not_fatal(tmp_path, hooks):
    d = tmp_path / "t"
    d.mkdir()
    (d / "x.toml").write_text(paper("x", target("bad", 1.0).replace('"lenet5"', '"lenet99"')))
    doc = rep.reproduce(tmp_path / "r", folder=d, progress=False)
    rec = doc["targets"][0]
    assert rec["simulated"] is None and not rec["within"] and "lenet99" in rec["failure"]
    assert rep.failing_checked(doc) == [rec]
    assert "FAILED" in (tmp_path / "r" / "report.md").read_text()
