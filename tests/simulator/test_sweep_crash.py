"""Crash safety of `dnnsim sweep`: a sweep killed with SIGKILL at seeded random moments and
resumed each time ends with every point in the results file exactly once, every line whole."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SWEEP_MODULE = ROOT / "simulator" / "sweep.py"
SCRIPT = ROOT / ".venv" / "bin" / "dnnsim"
KILLS_WANTED = 5     # at least this many kills must land mid-run
KILLS_TRIED = 10
SEED = 20261124

pytestmark = pytest.mark.skipif(not SWEEP_MODULE.exists(),
                                reason="simulator/sweep.py (dnnsim sweep) does not exist yet")

SWEEP_TOML = """
[base]
workload = "resnet20"
batch = 4
hardware = "v100"
policy = "data-parallel"
link = "nvlink2"

[axes]
batch = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
devices = [1, 2, 4]

[[exclude]]
devices = 4
batch = 12
"""


def _records(path: Path) -> list[dict]:
    """Every complete line after the header as JSON; a torn last line is allowed only before
    a resume."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_bytes().split(b"\n")[:-1] if line.strip()]
    assert not lines or lines[0]["dnnsim_journal"] == "sweep results"
    return lines[1:]


def _lines(path: Path) -> int:
    """Complete result lines (the header not counted)."""
    return max(0, path.read_bytes().count(b"\n") - 1) if path.exists() else 0


def _expected_keys(sweep_file: Path) -> set[str]:
    from simulator.sweep import Sweep
    return {p.key for p in Sweep.load(sweep_file).points()}


def _command(sweep_file: Path, out: Path) -> list[str]:
    return [str(SCRIPT), "sweep", str(sweep_file), "--out", str(out), "--workers", "1",
            "--quiet"]


def test_sigkilled_sweep_resumes_to_every_point_exactly_once(tmp_path):
    if not SCRIPT.exists():
        pytest.skip("no .venv/bin/dnnsim in this checkout")
    sweep_file, out = tmp_path / "sweep.toml", tmp_path / "results.jsonl"
    sweep_file.write_text(SWEEP_TOML)
    expected = _expected_keys(sweep_file)
    rng = np.random.default_rng(SEED)
    env = {k: v for k, v in os.environ.items() if k != "DNNSIM_DEBUG"}
    kills, attempts = [], 0
    while len(kills) < KILLS_TRIED and attempts < 3 * KILLS_TRIED:
        attempts += 1
        done = _lines(out)
        if done >= len(expected) - 1:
            break
        # kill once the file holds a random number of further lines, after a random delay:
        # between points, in a simulation or in the middle of writing a line
        target = done + int(rng.integers(0, 4))
        delay_s = float(rng.uniform(0.0, 0.05))
        proc = subprocess.Popen(_command(sweep_file, out), cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while _lines(out) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(delay_s)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)   # our own child's session, nothing else
                proc.wait(timeout=30)
                kills.append(_lines(out))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        # after each kill the complete lines are whole records of distinct points
        keys = [r["point"] for r in _records(out)]
        assert len(keys) == len(set(keys)), f"a point was written twice after kill {len(kills)}"
    assert len(kills) >= KILLS_WANTED, f"only {len(kills)} kills landed mid-run: {kills}"

    final = subprocess.run(_command(sweep_file, out), cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    records = _records(out)
    keys = [r["point"] for r in records]
    assert len(keys) == len(set(keys)), "a point appears twice"
    assert set(keys) == expected, "points missing or foreign"
    assert all(r["status"] == "ok" for r in records)
    print(f"{len(kills)} SIGKILLs survived (lines at each kill: {kills}); "
          f"{len(records)} points, each exactly once")


def test_a_torn_last_line_is_dropped_and_its_point_rerun(tmp_path):
    if not SCRIPT.exists():
        pytest.skip("no .venv/bin/dnnsim in this checkout")
    from simulator.cli import main
    sweep_file, out = tmp_path / "sweep.toml", tmp_path / "results.jsonl"
    sweep_file.write_text(SWEEP_TOML.replace("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]", "[1, 2]")
                          .replace("[[exclude]]\ndevices = 4\nbatch = 12\n", ""))
    args = ["sweep", str(sweep_file), "--out", str(out), "--workers", "1", "--quiet"]
    assert main(args) == 0
    whole = out.read_bytes()
    lines = whole.split(b"\n")[:-1]
    out.write_bytes(b"\n".join(lines[:-1]) + b"\n" + lines[-1][: len(lines[-1]) // 2])
    assert main(args) == 0
    records = _records(out)
    assert len(records) == len(lines) - 1 == 6   # the header is not a result
    assert {r["point"] for r in records} == _expected_keys(sweep_file)
