"""The data-parallel scaling benchmark: multi-node efficiencies that stay physical, published
setups on node types of the catalog, and GPU counts it cannot run refused before running."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPT = BENCHMARKS / "dp_scaling.py"
sys.path.insert(0, str(BENCHMARKS))
import dp_scaling  # noqa: E402

from simulator.node_types import node_types  # noqa: E402


def test_one_node_of_each_cluster_scales_near_linearly_and_never_past_it():
    rows = dp_scaling.cluster_scaling(8)
    assert {r["node_type"] for r in rows} == {"dgx1-v100", "cloud-v100-25gbe"}
    assert {(r["gradient_sync"], r["algorithm"]) for r in rows} == {
        (s, a) for s in ("ddp", "horovod") for a in dp_scaling.ALGORITHMS}
    assert all(0.99 <= r["efficiency"] <= 1.0 + 1e-9 for r in rows), rows


def test_published_setups_name_node_types_of_the_catalog_and_cite_their_figure():
    known = node_types()
    for p in dp_scaling.PUBLISHED:
        assert p.node_type in known
        assert 0 < p.efficiency < 1 and f"{round(100 * p.efficiency)}%" in p.source
        assert p.gpus % p.base_gpus == 0 and p.gpus > p.base_gpus


@pytest.mark.parametrize("argv, message", [
    (["--clusters", "--max-devices", "4"], "--max-devices must be at least 8 with --clusters, "
                                           "got 4"),
    (["--max-devices", "0"], "--max-devices must be at least 1, got 0"),
])
def test_gpu_counts_it_cannot_run_exit_2_naming_the_option(tmp_path, argv, message):
    out = tmp_path / "plot.png"
    done = subprocess.run([sys.executable, str(SCRIPT), *argv, "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not out.exists()
