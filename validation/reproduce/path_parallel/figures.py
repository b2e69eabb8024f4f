"""Figures for path parallelism: speedup against paths and GPUs, what merging saves, a step."""
from __future__ import annotations

from pathlib import Path

from simulator.api import simulate
from simulator.trace import plot_timeline, subplots

from ..plotting import save
from . import metrics as m


def make_figures(out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []

    # 1. Speedup against the number of concurrent paths (8 GPUs).
    fig, ax = subplots(figsize=(6, 4))
    for network, (n, paths) in m.PATH_SWEEP.items():
        _speedups(ax, network, "paths", [m.point(network, n, p) for p in paths if p <= n])
    _speedup_axes(ax, "concurrent paths P (8 GPUs)", "speedup (subnets x samples / s)",
                  "path-parallel: speedup vs paths")
    made.append(save(fig, out_dir / "path_parallel_speedup_vs_paths.png"))

    # 2. Speedup against GPU count (P = N).
    fig, ax = subplots(figsize=(6, 4))
    for network, gpus in m.GPU_SWEEP.items():
        _speedups(ax, network, "gpus", [m.point(network, n, n) for n in gpus])
    _speedup_axes(ax, "GPUs (paths = GPUs; >8: two nodes over 10 GbE)", "speedup",
                  "path-parallel: speedup vs GPU count")
    made.append(save(fig, out_dir / "path_parallel_speedup_vs_gpus.png"))

    # 3. What merging saves: FLOPs (prefix tree, one group of 8 GPUs) and gradient bytes.
    fig, (a1, a2) = subplots(1, 2, figsize=(9, 3.8))
    paths = (1, 2, 4, 8)
    rows = [m.point("spos_cifar", 8, p, groups=1) for p in paths]
    a1.bar([str(p) for p in paths], [100 * r["flops_saved"] / r["flops_separate"]
                                    for r in rows])
    a1.set_xlabel("paths merged in one group (8 GPUs)")
    a1.set_ylabel("step FLOPs removed (%)")
    a1.set_title("computation merging (spos_cifar)")
    a2.bar([str(p) for p in paths], [100 * r["gradient_bytes_saved"] /
                                    r["gradient_bytes_separate"] for r in rows])
    a2.set_xlabel("concurrent paths")
    a2.set_ylabel("gradient bytes saved (%)")
    a2.set_title("gradient-exchange merging")
    made.append(save(fig, out_dir / "path_parallel_merging_savings.png"))

    # 4. A timeline of one step.
    result = simulate("spos_cifar", m.cluster(4), "path-parallel", batch=256, paths=4,
                      groups=2)
    path = out_dir / "path_parallel_timeline.png"
    plot_timeline(result, path, title="path-parallel step: spos_cifar, 4 paths on 2 groups "
                                      "x 2 GPUs (one GPU per group shown)")
    made.append(path)
    return made


def _speedups(ax, network: str, x: str, rows: list[dict]) -> None:
    """A network's speedup over supernet-dp, and over supernet-pipeline where it was run,
    against the rows' field `x`."""
    ax.plot([r[x] for r in rows], [r["speedup_dp"] for r in rows], "o-",
            label=f"{network}: vs supernet-dp")
    piped = [r for r in rows if "speedup_pipeline" in r]
    ax.plot([r[x] for r in piped], [r["speedup_pipeline"] for r in piped], "s--",
            label=f"{network}: vs supernet-pipeline")


def _speedup_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.axhline(1.0, color="gray", lw=0.8)   # no speedup
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
