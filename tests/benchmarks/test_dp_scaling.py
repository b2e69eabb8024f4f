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
    # DDP loses its last bucket's all-reduce; Horovod also copies each of ResNet-50's 161
    # gradient tensors into its fusion buffer and out (two launches each, about 1.6 ms)
    floor = {"ddp": 0.99, "horovod": 0.985}
    assert all(floor[r["gradient_sync"]] <= r["efficiency"] <= 1.0 + 1e-9 for r in rows), rows


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


def test_ranks_that_vary_lose_more_at_more_gpus_and_the_alike_figure_stays(monkeypatch):
    # Goyal et al.'s setup on 8 -> 16 and 8 -> 32 Big Basin GPUs: compute-bound, so a slower
    # slowest rank lengthens the step (where the all-reduces bound it, it would not)
    small = [dp_scaling.Published(f"test: {n} GPUs, 50%", "big-basin-p100", "resnet50", 32, 8,
                                  n, "ddp", 0.5, "test") for n in (16, 32)]
    monkeypatch.setattr(dp_scaling, "PUBLISHED", tuple(small))
    monkeypatch.setattr(dp_scaling, "ALGORITHMS", ("hierarchical",))
    rows = dp_scaling.published_comparison(0.05)
    assert [r["rank_spread"] for r in rows] == [0.05, 0.05]
    assert all(r["spread"] < r["simulated"] <= 1.0 + 1e-9 for r in rows), rows
    # the slowest of 32 lags further behind than the slowest of 16
    losses = [r["simulated"] - r["spread"] for r in rows]
    assert losses[1] > losses[0] > 0, rows
    alike = dp_scaling.published_comparison(0.0)
    assert [r["spread"] for r in alike] == [r["simulated"] for r in alike]
    assert [r["simulated"] for r in alike] == [r["simulated"] for r in rows]
    # the exponential tail (default) lags further than a lognormal of the same spread
    lognormal = dp_scaling.published_comparison(0.05, "lognormal")
    assert [r["rank_tail"] for r in rows + lognormal] == ["exponential"] * 2 + ["lognormal"] * 2
    assert all(e["spread"] < g["spread"] < g["simulated"]
               for e, g in zip(rows, lognormal, strict=True)), (rows, lognormal)


def test_an_unknown_rank_tail_exits_2_naming_the_choices(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--clusters", "--rank-tail", "gamma"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "--rank-tail: invalid choice: 'gamma'" in done.stderr, \
        done.stderr


@pytest.mark.parametrize("value", ["1", "-0.1", "nan"])
def test_a_rank_spread_out_of_range_exits_2_naming_the_option(tmp_path, value):
    done = subprocess.run([sys.executable, str(SCRIPT), "--clusters", "--rank-spread", value],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "--rank-spread must be in [0, 1), got" in done.stderr, \
        done.stderr
