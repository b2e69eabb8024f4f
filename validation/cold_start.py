"""How much more a small op costs right after a heavy one: the cold-start penalty.

On the 2-vCPU EPYC VM of the committed data, the first ATen op after a oneDNN convolution
pays a one-off 20-60 us (100+ us after a convolution's backward), and the first MKL GEMM after
it another 40-60 us, however long the machine waits in between; the op after that pays
nothing. A profile measured inside training steps carries this penalty in the times of
whatever op follows a convolution, so networks without convolutions (MLPs) are predicted
slower than they run. This command measures the penalty on the machine it runs on, for a few
heavy ops and small followers:

    python -m validation.cold_start [--rounds 15] [--threads 1]

Each figure is the median time of the follower run right after the heavy op, minus its
median time run after itself (warm), in microseconds."""
from __future__ import annotations

import argparse
import statistics
import time


def _ops():
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    x, w = torch.randn(32, 16, 32, 32), torch.randn(16, 16, 3, 3)
    a, W, b = torch.randn(32, 64), torch.randn(10, 64), torch.randn(10)
    big, big_w = torch.randn(32, 784), torch.randn(600, 784)
    s = torch.randn(650)
    heavy = {
        "conv2d": lambda: F.conv2d(x, w, padding=1),
        "conv2d backward": lambda: torch.ops.aten.convolution_backward(
            x, x, w, [16], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, True]),
        "linear 32x784x600": lambda: F.linear(big, big_w),
        "relu 2 MB": lambda: torch.relu(x),
    }
    small = {
        "linear 32x64x10 (MKL)": lambda: F.linear(a, W, b),
        "relu 650 (ATen)": lambda: torch.relu(s),
        "empty 650": lambda: torch.empty(650),
    }
    return heavy, small


def _median_after(before, op, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        before()
        t0 = time.perf_counter()
        op()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cold_start_table(rounds: int = 15) -> list[dict]:
    """One row per (heavy op, small op): the small op's warm median and its penalty (both us)."""
    heavy, small = _ops()
    rows = []
    for small_name, op in small.items():
        warm_us = _median_after(op, op, rounds) * 1e6
        for heavy_name, before in heavy.items():
            after_us = _median_after(before, op, rounds) * 1e6
            rows.append({"after": heavy_name, "op": small_name, "warm_us": warm_us,
                         "penalty_us": after_us - warm_us})
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'op':22s} {'right after':18s} {'warm us':>8s} {'penalty us':>11s}"]
    lines += [f"{r['op']:22s} {r['after']:18s} {r['warm_us']:8.1f} {r['penalty_us']:+11.1f}"
              for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.cold_start",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15,
                        help="timings per figure, of which the median is taken (default 15)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads, as calibration uses (default 1)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.threads < 1:
        parser.error("--rounds and --threads must be at least 1")
    import torch
    torch.set_num_threads(args.threads)
    print(format_table(cold_start_table(args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
