"""Figures for pipelined training with stale weights (validation/targets/pipeline_stale.toml).

make_figures(out_dir) writes:
  pipeline_speedup_depth.png   2 GPUs vs 1 against CIFAR ResNet depth: pipelined, hybrid,
                               GPipe and PipeDream on the same partitions (register at the end
                               of the first stage, layer 2k+1 of a 6k+2 network)
  pipeline_timeline.png        a few cycles of the pipelined schedule on 2 GPUs
  pipeline_memory_batch.png    peak memory of the busiest device against minibatch size
  pipeline_time_to_accuracy.png  accuracy (real runs, staleness.py beside this file) against
                               simulated time
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from validation.paths import TARGETS

from ..plotting import save
from ..targets import load_file

TARGET_FILE = TARGETS / "pipeline_stale.toml"

HARDWARE, LINK, BATCH = "titan-xp", "pcie3", 128
DEPTHS = (20, 32, 44, 56, 110)


def first_stage_register(depth: int) -> int:
    """Layer 2k+1 ends the first stage of a 6k+2 CIFAR ResNet (19 for 56, 37 for 110)."""
    return 2 * ((depth - 2) // 6) + 1


def speedups(depth: int, batch: int = BATCH, micro_batches: int = 4,
             pipelined_fraction: float = 0.5) -> dict[str, float]:
    from simulator.api import simulate
    from simulator.cluster import Cluster
    net, reg = f"resnet{depth}", first_stage_register(depth)
    one, two = Cluster.build(HARDWARE, 1, LINK), Cluster.build(HARDWARE, 2, LINK)
    base = simulate(net, one, "sequential", batch=batch).iteration_time_s
    runs: dict[str, tuple[str, dict[str, Any]]] = {
        "pipelined": ("pipeline-stale", {}),
        "hybrid": ("hybrid", {"pipelined_fraction": pipelined_fraction}),
        "gpipe": ("gpipe", {"micro_batches": micro_batches}),
        "pipedream": ("pipedream", {}),
    }
    return {name: base / simulate(net, two, pol, batch=batch, registers=reg,
                                  **opts).iteration_time_s
            for name, (pol, opts) in runs.items()}


def plot_speedup(path: Path, depths=DEPTHS) -> Path:
    from simulator.trace import subplots  # no backend switch: notebooks import this
    table = {d: speedups(d) for d in depths}
    fig, ax = subplots(figsize=(7, 4))
    for name, marker in (("pipelined", "o"), ("hybrid", "s"), ("gpipe", "^"),
                         ("pipedream", "v")):
        ax.plot(depths, [table[d][name] for d in depths], marker=marker, label=name)
    published = [(int(t.scenario["workload"].removeprefix("resnet")), t.published)
                 for t in load_file(TARGET_FILE).targets if t.metric == "speedup"]
    ax.scatter([d for d, _ in published], [v for _, v in published], marker="*", s=140,
               color="k", zorder=5, label="published (pipelined)")
    ax.axhline(1.0, ls=":", color="gray")
    ax.set_xlabel("CIFAR ResNet depth")
    ax.set_ylabel("speedup, 2 GPUs vs 1")
    ax.set_title(f"{HARDWARE} x2 over {LINK}, batch {BATCH}, register after layer 2k+1")
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_timeline(path: Path, depth: int = 56, cycles: int = 4) -> Path:
    from simulator.api import simulate
    from simulator.cluster import Cluster
    from simulator.trace import plot_timeline as gantt
    r = simulate(f"resnet{depth}", Cluster.build(HARDWARE, 2, LINK), "pipeline-stale",
                 batch=BATCH, registers=first_stage_register(depth))
    p = r.extras["steady_period_s"]
    t0 = r.extras["completion_s"][2]
    gantt(r, path, window_s=(t0, t0 + cycles * p),
          title=f"pipeline-stale, ResNet-{depth}: {cycles} cycles of {p * 1e3:.1f} ms "
                f"(staleness per partition {r.extras['staleness_minibatches']})")
    return path


def memory_by_batch(batches=(32, 64, 128, 256), depth: int = 56) -> dict[str, list[float]]:
    """Peak GiB of the busiest device per schedule (memory not enforced)."""
    from simulator.api import simulate
    from simulator.cluster import Cluster
    net, reg = f"resnet{depth}", first_stage_register(depth)
    out: dict[str, list[float]] = {}
    for b in batches:
        runs = {"non-pipelined (1 GPU)": simulate(net, Cluster.build(HARDWARE, 1, LINK),
                                                  "sequential", batch=b, enforce_memory=False)}
        two = Cluster.build(HARDWARE, 2, LINK)
        cases: tuple[tuple[str, str, dict[str, Any]], ...] = (
            ("pipeline-stale", "pipeline-stale", {}),
            ("gpipe (4 micro-batches)", "gpipe", {"micro_batches": 4}),
            ("pipedream", "pipedream", {}))
        for name, pol, opts in cases:
            runs[name] = simulate(net, two, pol, batch=b, enforce_memory=False, registers=reg,
                                  **opts)
        for name, r in runs.items():
            out.setdefault(name, []).append(max(r.peak_memory_bytes.values()) / 2 ** 30)
    return out


def plot_memory(path: Path, batches=(32, 64, 128, 256)) -> Path:
    from simulator.trace import subplots  # no backend switch: notebooks import this
    data = memory_by_batch(batches)
    fig, ax = subplots(figsize=(7, 4))
    for name, ys in data.items():
        ax.plot(batches, ys, marker="o", label=name)
    ax.set_xlabel("minibatch size")
    ax.set_ylabel("peak memory of the busiest device (GiB)")
    ax.set_title("ResNet-56, register after layer 19, 2 GPUs")
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_time_to_accuracy(path: Path, networks=("lenet", "resnet")) -> Path:
    from simulator.trace import subplots  # no backend switch: notebooks import this

    from .staleness import time_to_accuracy
    fig, axes = subplots(1, len(networks), figsize=(6 * len(networks), 4), squeeze=False)
    for ax, net in zip(axes[0], networks, strict=True):
        for mode, (secs, accs) in time_to_accuracy(net).items():
            ax.plot(secs, accs, label=mode)
        ax.set_xlabel("simulated training time (s), 2 x " + HARDWARE)
        ax.set_ylabel("test accuracy (mean of seeds, real runs)")
        ax.set_title(f"{net} on digits")
        ax.legend(fontsize=8)
    return save(fig, path)


def make_figures(out_dir: Path, depths=DEPTHS) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [plot_speedup(out / "pipeline_speedup_depth.png", depths),
            plot_timeline(out / "pipeline_timeline.png"),
            plot_memory(out / "pipeline_memory_batch.png"),
            plot_time_to_accuracy(out / "pipeline_time_to_accuracy.png")]
