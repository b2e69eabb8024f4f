"""`dnnsim reproduce` treats its journal, results and target files as data: resume reuses only
files of its own folder, a paper id is never a path, a target never names code, and one run at
a time writes a folder."""
from __future__ import annotations

import json

import pytest

from simulator.cli import main
from simulator.journal import Journal
from validation.reproduce import run as rep

from .fixture_targets import paper, target


def _entries(out):
    lines = (out / rep.JOURNAL).read_text().splitlines()
    assert json.loads(lines[0])["dnnsim_journal"] == rep.JOURNAL_KIND
    return [json.loads(x) for x in lines[1:]]


def test_the_journal_holds_every_step_and_resume_reads_it_back(folder, tmp_path):
    out = tmp_path / "r"
    doc = rep.reproduce(out, folder=folder, progress=False, workers=1)
    entries = _entries(out)
    assert sorted(e["entry"] for e in entries) == ["paper", "paper", "target", "target",
                                                    "target"]
    again = rep.reproduce(out, folder=folder, resume=True, progress=False, workers=1)
    assert again["targets"] == doc["targets"]
    # no target measured again; only the paper whose figures hook failed is tried again
    assert [e for e in _entries(out) if e["entry"] == "target"] == [
        e for e in entries if e["entry"] == "target"]
    assert [e["paper"] for e in _entries(out)[len(entries):]] == ["beta"]


def test_resume_never_embeds_a_file_outside_its_folder(folder, tmp_path):
    out = tmp_path / "r"
    rep.reproduce(out, folder=folder, progress=False, workers=1)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + b"TOP-SECRET" * 10)
    crafted = [e for e in _entries(out)]
    for e in crafted:
        if e["entry"] == "paper" and e["paper"] == "alpha":
            e["artifacts"]["figures"] = ["../secret.png", str(secret), "figures/../../secret.png"]
    header = (out / rep.JOURNAL).read_text().splitlines()[0]
    (out / rep.JOURNAL).write_text("\n".join([header, *map(json.dumps, crafted)]) + "\n")
    (out / "results.json").write_text(json.dumps({"papers": {"alpha": {
        "figures": [str(secret)]}}, "targets": []}))
    rep.reproduce(out, folder=folder, resume=True, progress=False, workers=1)
    page = (out / "report.html").read_text()
    import base64
    assert base64.b64encode(b"TOP-SECRET" * 3).decode()[:20] not in page
    assert "TOP-SECRET" not in page


def test_a_link_out_of_the_folder_is_not_embedded(tmp_path):
    from validation.reproduce import report
    out = tmp_path / "r"
    (out / "figures" / "p").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\nSECRET")
    (out / "figures" / "p" / "x.png").symlink_to(secret)
    assert not report.own_file(out, "figures/p/x.png", "figures/p", ".png")
    assert "not embedded" in report._img(out, "figures/p/x.png")


@pytest.mark.parametrize("given, words", [("t.toml", "is not a folder"),
                                          ("gone", "does not exist")])
def test_targets_that_are_not_a_folder_are_named_as_such(tmp_path, capsys, given, words):
    (tmp_path / "t.toml").write_text(paper("p", target("a", 1.0)))
    out = tmp_path / "out"
    assert main(["reproduce", "--targets", str(tmp_path / given), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"targets folder {str(tmp_path / given)!r} {words}" in err and not out.exists()


@pytest.mark.parametrize("name", ["../../x", "/etc", "a/b", "..", ".hidden", "", "x y", 7])
def test_a_paper_id_that_is_not_a_plain_name_is_refused(tmp_path, capsys, name):
    d = tmp_path / "t"
    d.mkdir()
    (d / "x.toml").write_text(paper("PLACEHOLDER", target("a", 1.0)).replace(
        '"PLACEHOLDER"', json.dumps(name)))
    out = tmp_path / "out"
    assert main(["reproduce", "--targets", str(d), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnnsim: error:") and "plain name" in err
    assert not out.exists() and not (tmp_path / "x").exists()


def test_a_target_naming_a_python_file_is_refused_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w')\ndef f():\n    pass\n")
    d = tmp_path / "t"
    d.mkdir()
    (d / "x.toml").write_text(paper("x", target("a", 1.0)).replace('"lenet5"',
                                                                   json.dumps(f"{evil}:f")))
    assert main(["reproduce", "--targets", str(d), "--out", str(tmp_path / "o"),
                 "--quiet"]) == 2
    assert "names a Python file" in capsys.readouterr().err
    assert not marker.exists()


def test_a_second_run_on_one_folder_is_refused(folder, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    with Journal(out / rep.JOURNAL, rep.JOURNAL_KIND, what="reproduce journal"):
        assert main(["reproduce", "--targets", str(folder), "--out", str(out),
                     "--quiet"]) == 2
    assert "being written by dnnsim pid" in capsys.readouterr().err


def test_a_foreign_journal_file_is_left_as_it_is(folder, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / rep.JOURNAL).write_text("my notes\n")
    assert main(["reproduce", "--targets", str(folder), "--out", str(out), "--quiet"]) == 2
    assert "left as it is" in capsys.readouterr().err
    assert (out / rep.JOURNAL).read_text() == "my notes\n"


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGKILL"])
def test_a_signalled_reproduce_leaves_no_process_and_closes_stdout(tmp_path, signum):
    """Workers die with the run: none is left, and stdout reaches its end within seconds."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    import psutil
    d = tmp_path / "t"
    d.mkdir()
    many = "".join(target(f"t{i}", 2.0).replace('"lenet5"', '"resnet56"').replace(
        "batch = 8", f"batch = {i + 1}") for i in range(40))
    (d / "big.toml").write_text(paper("big", many))
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "simulator.cli", "reproduce", "--targets",
                             str(d), "--out", str(out), "--workers", "2", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    family = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / rep.JOURNAL).exists() and (out / rep.JOURNAL).read_bytes().count(
                    b"\n") >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "reproduce ended before it could be signalled"
        family = psutil.Process(proc.pid).children(recursive=True)
        assert len(family) >= 2
        os.kill(proc.pid, getattr(signal, signum))
        reader = threading.Thread(target=proc.stdout.read, daemon=True)
        reader.start()
        reader.join(timeout=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family):
            time.sleep(0.05)
        left = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left and not reader.is_alive(), f"left behind: {left}"
        _entries(out)                                   # the journal reads back whole
    finally:   # only what this test started
        for p in family:
            if p.is_running():
                p.kill()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
