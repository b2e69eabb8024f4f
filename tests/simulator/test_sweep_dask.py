"""Sweeps on a Dask distributed cluster (a small one on loopback) give the same lines."""
from __future__ import annotations

import time

import pytest

import simulator.sweep as sweep_module
from simulator.sweep import Sweep, SweepError, run_sweep

distributed = pytest.importorskip("dask.distributed")

BASE = {"workload": "lenet5", "batch": 4, "hardware": "v100", "policy": "data-parallel",
        "link": "nvlink2"}
SWEEP = Sweep.from_dict({"base": BASE, "axes": {"batch": [1, 2, 3], "devices": [1, 2]}})


@pytest.fixture(scope="module")
def scheduler_address():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_dask_lines_equal_local_lines(tmp_path, scheduler_address):
    run_sweep(SWEEP, tmp_path / "local.jsonl", workers=1, progress=False)
    stats = run_sweep(SWEEP, tmp_path / "dask.jsonl", dask=scheduler_address, progress=False)
    assert stats.ran == 6
    local = sorted((tmp_path / "local.jsonl").read_text().splitlines())
    assert sorted((tmp_path / "dask.jsonl").read_text().splitlines()) == local
    again = run_sweep(SWEEP, tmp_path / "dask.jsonl", dask=scheduler_address, progress=False)
    assert (again.ran, again.skipped) == (0, 6)


def test_unreachable_scheduler_is_a_clear_error_and_keeps_results(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_module, "DASK_CONNECT_TIMEOUT_S", 1)
    out = tmp_path / "r.jsonl"
    run_sweep(SWEEP, out, workers=1, progress=False)
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:2]))  # a partial run
    before = out.read_bytes()
    t0 = time.monotonic()
    with pytest.raises(SweepError, match="cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'"):
        run_sweep(SWEEP, out, dask="tcp://127.0.0.1:9", progress=False)
    assert time.monotonic() - t0 < 30
    assert out.read_bytes() == before
