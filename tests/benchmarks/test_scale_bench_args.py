"""The scaling benchmark refuses a GPU range it cannot run, before running anything."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale_bench.py"


def test_too_few_gpus_exits_2_naming_the_option(tmp_path):
    out = tmp_path / "plot.png"
    done = subprocess.run([sys.executable, str(SCRIPT), "--max-gpus", "4", "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--max-gpus must be at least 8" in done.stderr and "got 4" in done.stderr
    assert not out.exists()


def test_help_states_what_it_measures():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    assert "Simulator cost against GPU count, at each fidelity" in done.stdout
    assert "largest GPU count" in done.stdout
