"""Every malformed input of tests/corpus gives one clear line `dnnsim: error: ...` and exit
code 2, never a traceback. The cases (generated and hand-written) are listed by
tests/corpus/generate.py; they run in-process through `simulator.cli.main` (fast), and a few
through the installed `dnnsim` script in a real subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwmodels import HardwareError, catalog
from simulator.cli import main

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "corpus"))
import generate  # noqa: E402  (the corpus generator lives beside its files)

SWEEP_READY = (ROOT / "simulator" / "sweep.py").exists()
CASES = generate.all_cases(with_sweeps=SWEEP_READY)
SUFFIX = {"scenario": ".toml", "profile": ".toml", "sweep": ".toml", "catalog": ".toml",
          "results": ".jsonl", "sweep-out": ".jsonl", "targets": ".toml"}


def _argv(case: generate.Case, tmp_path: Path) -> list[str]:
    if case.kind == "argv":
        # paths into the repository are given from its root; the run's cwd is tmp_path
        return [str(ROOT / a) if a.startswith("tests/") else a for a in case.payload]
    path = tmp_path / f"case{SUFFIX[case.kind]}"
    path.write_bytes(case.payload)
    if case.kind == "scenario":
        return ["simulate", str(path)]
    if case.kind == "profile":
        return ["simulate", "--workload", "lenet5", "--batch", "2", "--hardware", str(path)]
    if case.kind == "sweep":
        return ["sweep", str(path), "--out", str(tmp_path / "out.jsonl"), "--workers", "1",
                "--quiet"]
    if case.kind == "results":
        return ["plot", str(path), "--x", "devices", "--y", "iteration_time_s",
                "--out", str(tmp_path / "plot.png")]
    if case.kind == "sweep-out":   # the file is in the way of --out; it must stay as it is
        return ["sweep", str(ROOT / "tests" / "corpus" / "valid" / "sweep.toml"), "--out",
                str(path), "--workers", "1", "--quiet"]
    if case.kind == "targets":
        folder = tmp_path / "targets"
        folder.mkdir()
        path.rename(folder / path.name)
        return ["reproduce", "--targets", str(folder), "--out", str(tmp_path / "report"),
                "--workers", "1", "--quiet"]
    raise AssertionError(case.kind)


def _check_message(case: generate.Case, message: str, path: str | None) -> None:
    assert "Traceback" not in message
    lines = message.strip().splitlines()
    assert len(lines) == 1, f"{case.id}: expected one line, got {message!r}"
    words = case.expect or ((os.path.basename(path),) if path else ())
    assert any(w in lines[0] for w in words), \
        f"{case.id}: the error should name one of {words}: {lines[0]!r}"


@pytest.mark.parametrize("case", [c for c in CASES if c.kind != "catalog"], ids=lambda c: c.id)
def test_bad_input_gives_one_line_and_exit_code_2(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = _argv(case, tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, f"{case.id}: exit code {code}, stderr {err!r}"
    assert err.startswith("dnnsim: error: "), err
    _check_message(case, err, _file_of(case, argv))
    if case.kind == "sweep-out":
        assert Path(argv[3]).read_bytes() == case.payload, f"{case.id}: the file was changed"
        assert not Path(argv[3] + ".torn").exists()
    if case.kind == "targets":
        assert not (tmp_path / "report").exists(), f"{case.id}: wrote a report"


def _file_of(case: generate.Case, argv: list[str]) -> str | None:
    if case.kind == "argv":
        return None
    if case.kind == "sweep-out":
        return argv[3]
    return argv[-1] if case.kind == "profile" else argv[1]


@pytest.mark.parametrize("case", [c for c in CASES if c.kind == "catalog"], ids=lambda c: c.id)
def test_bad_catalog_file_gives_one_line_hardware_error(case, tmp_path):
    # No command reads a user catalog yet; the API must raise a typed one-line error naming
    # the file, which the CLI would print as its one line.
    path = tmp_path / "my-catalog.toml"
    path.write_bytes(case.payload)
    with pytest.raises(HardwareError) as info:
        catalog.load_file(path)
    message = str(info.value)
    assert str(path) in message, message
    _check_message(case, message, str(path))


def test_corpus_is_large_and_covers_every_kind():
    kinds = {c.kind for c in CASES}
    assert {"scenario", "profile", "catalog", "argv", "sweep", "results", "sweep-out",
            "targets"} <= kinds
    assert len(CASES) > 600
    assert len(generate.handwritten_cases()) >= 10


SUBPROCESS_CASES = ["scenario-missing-batch", "scenario-random-bytes-0", "profile-unknown-op-kind",
                    "argv-4", "scenario-toml-unclosed-string"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_real_process_exit_code_and_single_line(case_id, tmp_path):
    script = ROOT / ".venv" / "bin" / "dnnsim"
    if not script.exists():
        pytest.skip("no .venv/bin/dnnsim in this checkout")
    case = next(c for c in CASES if c.id == case_id)
    argv = _argv(case, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "DNNSIM_DEBUG"}
    proc = subprocess.run([str(script), *argv], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("dnnsim: error: ")
    _check_message(case, proc.stderr, _file_of(case, argv))
