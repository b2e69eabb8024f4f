"""How much more a small op costs after a heavy one: the cold-start penalty.

A heavy op streams enough data through the caches to evict what a small op needs (its
code, the dispatcher's and the allocator's state, its operands). On the 2-vCPU EPYC VM of the
committed data (L2 1 MiB, L3 32 MiB), a 32x10 cross-entropy that takes 11 us warm takes 50-60
us more right after a 32 MiB sum, 70-100 us more after a convolution, and still 30-60 us more
with two other small ops between; glibc's allocator setting changes none of it.
Calibration shows the same at the scale of a step
(`validation.experiments.residency`): small ops run 0.6-0.7x as long in steps that move less
than the L3 holds, and profiles model it (hwmodels/residency.py).

    python -m validation.experiments.cold_start [--rounds 15] [--threads 1]
                                                [--allocator steady|system]

Each figure is the median time of the small op run right after the heavy op (then with two
other small ops between), minus its median time run after itself (warm), in microseconds.
`steady` is the allocator calibration measures with (`torch_exec.steady_allocator`: freed
memory is kept), `system` glibc's default."""
from __future__ import annotations

import argparse
import statistics
import time
from functools import partial


def _ops():
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    x, w = torch.randn(32, 16, 32, 32), torch.randn(16, 16, 3, 3)
    a, W, b = torch.randn(32, 64), torch.randn(10, 64), torch.randn(10)
    logits, labels = torch.randn(32, 10), torch.zeros(32, dtype=torch.long)
    big, big_w, stream = torch.randn(32, 784), torch.randn(600, 784), torch.randn(8 << 20)
    s = torch.randn(650)
    kept: list = []                 # a training step keeps a convolution's output

    def conv():
        kept.append(F.conv2d(x, w, padding=1))
        del kept[:-4]
    heavy = {
        "conv2d": conv,
        "conv2d backward": lambda: torch.ops.aten.convolution_backward(
            x, x, w, [16], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, True]),
        "sum over 32 MiB": lambda: stream.sum(),
        "linear 32x784x600": lambda: F.linear(big, big_w),
    }
    small = {
        "linear 32x64x10 (MKL)": lambda: F.linear(a, W, b),
        "cross-entropy 32x10": lambda: F.cross_entropy(logits, labels),
        "relu 650": lambda: torch.relu(s),
        "empty 650": lambda: torch.empty(650),
    }
    return heavy, small


def _median_s(before, op, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        before()
        t0 = time.perf_counter()
        op()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _then_two_small_ops(first, tensor) -> None:
    """`first`, then two small ops on `tensor` (a negation and an addition)."""
    import torch
    first()
    torch.neg(tensor)
    torch.add(tensor, 1.0)


def cold_start_table(rounds: int = 15) -> list[dict]:
    """One row per (heavy op, small op), in us: the small op's warm median, its penalty right
    after the heavy op, and its penalty with two other small ops run in between."""
    import torch
    heavy, small = _ops()
    between = torch.ones(64)
    rows = []
    for small_name, op in small.items():
        warm_us = _median_s(op, op, rounds) * 1e6
        for heavy_name, run in heavy.items():
            run_then_two_others = partial(_then_two_small_ops, run, between)
            rows.append({
                "after": heavy_name, "op": small_name, "warm_us": warm_us,
                "penalty_us": _median_s(run, op, rounds) * 1e6 - warm_us,
                "penalty_two_between_us": _median_s(run_then_two_others, op, rounds) * 1e6
                - warm_us})
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'op':22s} {'after':18s} {'warm us':>8s} {'penalty us':>11s} "
             f"{'(2 ops between)':>16s}"]
    lines += [f"{r['op']:22s} {r['after']:18s} {r['warm_us']:8.1f} {r['penalty_us']:+11.1f} "
              f"{r['penalty_two_between_us']:+16.1f}" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.experiments.cold_start",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15,
                        help="timings per figure, of which the median is taken (default 15)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads, as calibration uses (default 1)")
    parser.add_argument("--allocator", choices=("steady", "system"), default="steady",
                        help="keep freed memory, as calibration does (steady, the default), "
                             "or glibc's default (system)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.threads < 1:
        parser.error("--rounds and --threads must be at least 1")
    import torch

    from validation.calibrate.torch_exec import steady_allocator
    if args.allocator == "steady" and not steady_allocator():
        parser.error("--allocator steady needs glibc's malloc; use --allocator system")
    torch.set_num_threads(args.threads)
    print(format_table(cold_start_table(args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
