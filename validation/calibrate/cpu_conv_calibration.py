"""Measure PyTorch's own CPU convolutions (oneDNN direct/JIT kernels) to calibrate the dense
direct-convolution constants of hwmodels/cpu_conv.py.

    .venv/bin/python -m validation.calibrate.cpu_conv_calibration [--out CSV] [--reps 7]
                                                                  [--device NAME]

A handful of VGG/ResNet-like conv shapes, each pass (forward, backward-by-input,
backward-by-weights), with torch.set_num_threads(1) and 2, median (and best) of `reps` timed
runs after warm-up. Each row records the fraction of the FMA peak it reached, taking the peak
of the catalog device that describes this machine (`--device`, default xeon-avx512-2c) times
the threads used. The committed output (validation/measured/sparsetrain_cpu_conv_<machine>.csv)
names the machine.
Small on purpose: the general `dnnsim calibrate` is another command.
"""
from __future__ import annotations

import argparse
import csv
import platform
import statistics
import time

from hwmodels.cpu_identity import this_host
from validation.paths import MEASURED

# (name, batch, in_channels, height=width, out_channels, kernel, stride)
SHAPES = [
    ("vgg-3x3-64", 2, 64, 56, 64, 3, 1),
    ("vgg-3x3-128", 2, 128, 28, 128, 3, 1),
    ("resnet-3x3-256", 4, 256, 14, 256, 3, 1),
    ("resnet-1x1-256to64", 4, 256, 28, 64, 1, 1),
    ("resnet-1x1-64to256", 4, 64, 28, 256, 1, 1),
    ("resnet-3x3-512", 4, 512, 7, 512, 3, 1),
]
PASSES = ("forward", "grad_input", "grad_weight")
FIELDS = ["machine", "device_model", "threads", "shape", "pass", "batch", "in_channels",
          "size", "out_channels", "kernel", "stride", "macs", "median_s", "min_s",
          "fraction_of_peak", "fraction_of_peak_best"]


def machine_name() -> str:
    return this_host().processor or platform.machine()


def _runner(torch, pass_name: str, x, w, stride: int, pad: int):
    conv = torch.nn.functional.conv2d
    if pass_name == "forward":
        return lambda: conv(x, w, stride=stride, padding=pad)
    y = conv(x, w, stride=stride, padding=pad)
    gy = torch.randn_like(y)
    mask = [pass_name == "grad_input", pass_name == "grad_weight", False]
    return lambda: torch.ops.aten.convolution_backward(
        gy, x, w, None, [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1, mask)


def measure(reps: int, threads_list=(1, 2), device: str = "xeon-avx512-2c") -> list[dict]:
    import torch

    from hwmodels import catalog
    spec = catalog.device(device)
    if spec.per_core_peak_flops is None:
        raise ValueError(f"{device}: the catalog gives no per-core peak to measure against")
    per_core_peak_flops = float(spec.per_core_peak_flops)
    torch.manual_seed(0)
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        for name, n, c, hw, k, r, stride in SHAPES:
            x = torch.randn(n, c, hw, hw)
            w = torch.randn(k, c, r, r)
            out_hw = (hw + 2 * (r // 2) - r) // stride + 1
            macs = n * k * c * r * r * out_hw * out_hw
            for pass_name in PASSES:
                fn = _runner(torch, pass_name, x, w, stride, r // 2)
                with torch.no_grad():
                    for _ in range(2):
                        fn()
                    times = []
                    for _ in range(reps):
                        t0 = time.perf_counter()
                        fn()
                        times.append(time.perf_counter() - t0)
                med = statistics.median(times)
                rows.append({
                    "machine": machine_name(), "device_model": device, "threads": threads,
                    "shape": name, "pass": pass_name, "batch": n, "in_channels": c, "size": hw,
                    "out_channels": k, "kernel": r, "stride": stride, "macs": macs,
                    "median_s": f"{med:.6g}", "min_s": f"{min(times):.6g}",
                    "fraction_of_peak": f"{2 * macs / med / (per_core_peak_flops * threads):.4f}",
                    # the best run: the least disturbed by other processes on a shared machine
                    "fraction_of_peak_best":
                        f"{2 * macs / min(times) / (per_core_peak_flops * threads):.4f}",
                })
                print(f"threads={threads} {name:20s} {pass_name:12s} {med * 1e3:8.3f} ms "
                      f"{rows[-1]['fraction_of_peak']}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(MEASURED / "sparsetrain_cpu_conv_epyc-zen4-2vcpu.csv"))
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--device", default="xeon-avx512-2c",
                    help="catalog device describing this machine (its per-core peak)")
    args = ap.parse_args(argv)
    rows = measure(args.reps, device=args.device)
    with open(args.out, "w", newline="") as fh:
        fh.write(f"# PyTorch {__import__('torch').__version__} CPU convolutions on "
                 f"'{machine_name()}'; written by validation/calibrate/cpu_conv_calibration.py\n")
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
