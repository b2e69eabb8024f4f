"""Figures for the swap study: memory over time with copies marked, largest trainable ResNet
depth against GPU memory per policy, throughput against minibatch, copies overlapping compute."""
from __future__ import annotations

from pathlib import Path

from ..plotting import save

GIB = 2 ** 30
POLICIES = ("caffe", "none", "swap", "swap-all", "recompute")


def memory_with_copies(result, path: Path) -> Path:
    from simulator.trace import subplots  # no backend switch: notebooks import this

    fig, ax = subplots(figsize=(9, 4))
    pts = result.log.memory_timeline["gpu0"]
    ax.step([p[0] for p in pts], [p[1] / GIB for p in pts], where="post", label="gpu0 in use")
    cap = result.log.memory_capacity_bytes.get("gpu0")
    if cap:
        ax.axhline(cap / GIB, ls="--", lw=0.8, color="gray", label="capacity")
    for kind, colour, when in (("swap_out", "tab:green", "end"), ("prefetch", "tab:red", "start")):
        xs = [e if when == "end" else s for t, s, e in
              zip(result.log.tasks, result.log.start_s, result.log.end_s, strict=True)
              if t.meta.get("kind") == kind]
        ax.plot(xs, [0.02] * len(xs), "|", color=colour, ms=12,
                label=f"{kind.replace('_', '-')} "
                      f"({'frees' if when == 'end' else 'starts, its bytes taken by then'})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("GiB")
    ax.set_title(f"{result.policy}: {result.workload} batch {result.batch}, memory over time")
    ax.legend(fontsize=8)
    return save(fig, path)


def largest_depth(memories_gib=(0.25, 0.5, 1.0, 2.0), batch: int = 128,
                  depths=(20, 56, 110, 218, 434, 866)) -> dict[str, list]:
    """Per policy, the deepest CIFAR ResNet (of `depths`) that trains in each memory size."""
    from simulator.api import simulate

    from .metrics import gpu_cluster

    out: dict[str, list] = {}
    for pol in POLICIES:
        row = []
        for mem in memories_gib:
            best = 0
            for d in depths:
                r = simulate("cifar_resnet", gpu_cluster(mem), pol, batch=batch,
                             workload_options={"depth": d})
                if not r.ok:
                    break
                best = d
            row.append(best)
        out[pol] = row
    return out


def make_figures(out_dir) -> list[Path]:
    from simulator.api import simulate
    from simulator.trace import plot_timeline, subplots
    from simulator.tuner import plot, tune

    from .metrics import gpu_cluster

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    r = simulate("resnet50", gpu_cluster(3.0), "swap", batch=48)
    paths.append(memory_with_copies(r, out / "swap_memory.png"))
    plot_timeline(r, out / "swap_timeline.png", window_s=(0.0, r.iteration_time_s),
                  title="swap: copies on gpu0.d2h / gpu0.h2d overlapping compute")
    paths.append(out / "swap_timeline.png")

    mems = (0.25, 0.5, 1.0, 2.0)   # small enough that the ladder top (866) rarely caps
    depth = largest_depth(mems)
    fig, ax = subplots(figsize=(6, 4))
    for pol, row in depth.items():
        ax.plot(mems, row, "o-", label=pol)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("GPU memory (GiB)")
    ax.set_ylabel("largest trainable CIFAR ResNet depth (batch 128)")
    ax.legend(fontsize=8)
    paths.append(save(fig, out / "swap_depth.png"))

    tunings = tune("resnet50", gpu_cluster(6.0), list(POLICIES), max_batch=256)
    plot(tunings, out / "swap_throughput.png", title="ResNet-50 on a 6 GiB titan-x-pascal")
    paths.append(out / "swap_throughput.png")
    return paths
