"""Sweep throughput: 1,000 small points with 1 and with 2 worker processes.

    .venv/bin/python benchmarks/sweep_bench.py [--points 1000] [--workers 1,2]

Prints points per second for each worker count and the ratio to 1 worker (goal: 2 workers at
least 1.7x of 1 on a 2-core machine). Each run writes a fresh results file in a temp folder.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from simulator.sweep import Sweep, run_sweep


def bench_sweep(points: int) -> Sweep:
    # LeNet-5 and ResNet-20, one and two data-parallel V100s, every batch size up to n:
    # a few milliseconds of simulation per point, the size where per-point overheads show.
    batches = list(range(1, points // 4 + 1))
    return Sweep.from_dict({
        "base": {"workload": "lenet5", "batch": 1, "hardware": "v100",
                 "policy": "data-parallel", "link": "nvlink2"},
        "axes": {"workload": ["lenet5", "resnet20"], "devices": [1, 2], "batch": batches},
    }, source="sweep_bench")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    sweep = bench_sweep(args.points)
    n = len(sweep.points())
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for w in (int(s) for s in args.workers.split(",")):
            out = Path(tmp) / f"w{w}.jsonl"
            t0 = time.perf_counter()
            stats = run_sweep(sweep, out, workers=w, progress=False)
            elapsed = time.perf_counter() - t0
            assert stats.ran == n and stats.errors == 0, stats
            rates[w] = n / elapsed
            print(f"workers={w}: {n} points in {elapsed:.2f} s = {rates[w]:.1f} points/s"
                  + (f" ({rates[w] / rates[1]:.2f}x of 1 worker)" if 1 in rates and w != 1
                     else ""))


if __name__ == "__main__":
    main()
