"""The scaling benchmark refuses a GPU range it cannot run, before running anything."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale_bench.py"


@pytest.mark.parametrize("argv, messages", [
    (["--max-gpus", "4"], ["--max-gpus must be at least 8", "got 4"]),
    (["--gpus", "64,many"], ["--gpus takes whole numbers", "'64,many'"]),
])
def test_gpu_counts_it_cannot_run_exit_2_naming_the_option(tmp_path, argv, messages):
    out = tmp_path / "plot.png"
    done = subprocess.run([sys.executable, str(SCRIPT), *argv, "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert all(m in done.stderr for m in messages), done.stderr
    assert not out.exists()


def test_help_states_what_it_measures():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    assert "Simulator cost against GPU count, at each fidelity" in done.stdout
    assert "largest GPU count" in done.stdout
