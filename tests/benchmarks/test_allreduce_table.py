"""The all-reduce table: bad options exit 2 naming them, and rows that break a bound or
run faster than a smaller size are flagged."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "allreduce_table.py"
sys.path.insert(0, str(SCRIPT.parent))
import allreduce_table  # noqa: E402


@pytest.mark.parametrize("argv,message", [
    (["--nodes", "0"], "--nodes must be >= 1"),
    (["--sizes", "abc"], "comma-separated numbers"),
    (["--scaling", "--gpus", "12"], "multiples of 8"),
    (["--scaling", "--workloads", "vgg99"], "--workloads takes some of"),
])
def test_bad_options_exit_2_naming_them(argv, message):
    done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert message in done.stderr


def _row(nodes, nbytes, time_s, busbw, bound=100e9):
    return {"node_type": "dgx-h100", "nodes": nodes, "bytes": nbytes, "time_s": time_s,
            "busbw_Bps": busbw, "bound_Bps": bound}


def test_a_row_above_its_bound_or_faster_than_a_smaller_size_is_flagged():
    rows = [_row(2, 1e3, 20e-6, 1e8), _row(2, 1e6, 10e-6, 2e11), _row(8, 1e6, 5e-6, 1e10)]
    assert allreduce_table.flags(rows) == {1: "above the bound, faster than a smaller size"}


def test_one_node_rows_stay_within_the_nvlink_bound():
    rows = [allreduce_table.allreduce_row("dgx-h100", 1, s) for s in (1e3, 1e8)]
    assert not allreduce_table.flags(rows)
    assert rows[0]["time_s"] < rows[1]["time_s"]
    assert 0.8 * rows[1]["bound_Bps"] < rows[1]["busbw_Bps"] <= rows[1]["bound_Bps"]
