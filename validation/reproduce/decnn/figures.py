"""DeCNN figures: speedup and memory against devices, speedup against link bandwidth, and a
timeline of exchanges overlapping compute. The sweeps are plain functions that the notebook
and the tests use too.

Baseline of every speedup: one board running the original ResNet-50 (`sequential`). DeCNN runs
the authors' decoupled ResNet-50 (groups 4, or one per device beyond 4; channel shuffles after
stages 1-3; width x1.5 unless a width is given); layer-wise MP, MoDNN, Coates et al. and data
parallelism run the original network. The published figures are read from
validation/targets/decnn.toml and the authors' top-1 accuracies from
validation/measured/decnn_top1.csv.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from hwmodels import catalog
from hwmodels.specs import LinkSpec
from simulator.api import simulate
from simulator.cluster import Cluster
from validation.paths import MEASURED

from ..plotting import save
from ..targets import load_all

BOARD = "rpi4"
LINK = "eth1g"
POLICIES = ("decnn", "layerwise-mp", "data-parallel")
# on 4 boards: DeCNN, and the baselines its code ships (MoDNN's slabs, Coates' 2x2 tiles)
SPLIT_POLICIES = ("decnn", "modnn", "coates", "layerwise-mp")
WIDTH = 1.5
DEVICES = (1, 2, 4, 8)


def published() -> dict[str, float]:
    """target id -> the paper's figure (validation/targets/decnn.toml)."""
    return {t.id: t.published for t in load_all(["decnn"])[0].targets}


def authors_top1() -> list[dict]:
    """The authors' ImageNet top-1 per network and width (published, with its source)."""
    path = MEASURED / "decnn_top1.csv"
    with path.open(newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def decoupled_options(devices: int, width: float = WIDTH) -> dict:
    return {"groups": max(4, devices), "width": width, "shuffles": "stages"}


def run(policy: str, devices: int, link: str | LinkSpec = LINK, board: str = BOARD,
        in_flight: int | None = None, width: float = WIDTH):
    """One inference simulation of the DeCNN study (batch 1)."""
    cluster = Cluster.build(board, devices, link)
    if policy == "sequential":
        return simulate("resnet50", cluster, "sequential", training=False)
    if policy == "data-parallel":
        return simulate("resnet50", cluster, "data-parallel", training=False)
    opts: dict[str, Any] = {} if in_flight is None else {"in_flight": in_flight}
    if policy == "decnn":
        return simulate("decnn_resnet50", cluster, "decnn", training=False,
                        workload_options=decoupled_options(devices, width), **opts)
    return simulate("resnet50", cluster, policy, training=False, **opts)


def _latency_s(result) -> float:
    return result.extras.get("latency_s", result.makespan_s)


def _memory_bytes(result) -> float:
    peaks = result.peak_memory_bytes
    return sum(peaks.values()) / len(peaks)


def scaling(devices=DEVICES, link: str | LinkSpec = LINK, board: str = BOARD,
            policies=POLICIES) -> list[dict]:
    """Rows: policy, devices, latency and throughput speedup over one board, memory."""
    base = run("sequential", 1, link, board)
    rows = []
    for policy in policies:
        for n in devices:
            r = run(policy, n, link, board)
            rows.append({"policy": policy, "devices": n,
                         "latency_speedup": _latency_s(base) / _latency_s(r),
                         "throughput_speedup": (r.throughput_samples_per_s
                                                / base.throughput_samples_per_s),
                         "memory_per_device_bytes": _memory_bytes(r),
                         "baseline_memory_bytes": _memory_bytes(base)})
    return rows


def link_what_if(bandwidth_Bps: float, latency_s: float = 50e-6,
                 shared_medium: bool = False) -> LinkSpec:
    """A link of the given bandwidth (a HardwareError names a bandwidth that is not > 0)."""
    return LinkSpec(name=f"what-if-{bandwidth_Bps:.3g}Bps", bandwidth_Bps=bandwidth_Bps,
                    latency_s=latency_s, source="what-if", shared_medium=shared_medium)


def bandwidth_sweep(bandwidths_Bps=(25e6, 60e6, 117.5e6, 300e6, 1.175e9), devices: int = 4,
                    board: str = BOARD, policies=SPLIT_POLICIES) -> list[dict]:
    """Throughput speedup over one board, switched links of each bandwidth, plus Wi-Fi."""
    base = run("sequential", 1, LINK, board).throughput_samples_per_s
    rows = []
    links = [("wifi", catalog.link("wifi"))] + [
        (f"{bw * 8 / 1e9:.2g} Gb/s switched", link_what_if(bw)) for bw in bandwidths_Bps]
    for policy in policies:
        for label, link in links:
            r = run(policy, devices, link, board)
            rows.append({"policy": policy, "link": label, "bandwidth_Bps": link.bandwidth_Bps,
                         "shared_medium": link.shared_medium,
                         "throughput_speedup": r.throughput_samples_per_s / base})
    return rows


BANDWIDTHS_BPS = (25e6, 60e6, 117.5e6, 300e6, 1.175e9)


def make_figures(out_dir: Path, devices=DEVICES,
                 bandwidths_Bps=BANDWIDTHS_BPS) -> list[Path]:
    from simulator.trace import (
        plot_timeline,
        subplots,  # no backend switch: notebooks import this
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    rows = scaling(devices)
    fig, axes = subplots(1, 2, figsize=(11, 4))
    for ax, key, what in ((axes[0], "latency_speedup", "latency (one sample)"),
                          (axes[1], "throughput_speedup", "throughput (samples in flight)")):
        for policy in POLICIES:
            pts = [(r["devices"], r[key]) for r in rows if r["policy"] == policy]
            ax.plot(*zip(*pts, strict=True), marker="o", label=policy)
        ax.plot(list(devices), list(devices), ls=":", color="gray", label="linear")
        ax.axhline(1.0, color="black", lw=0.6)
        ax.set_xlabel(f"{BOARD} devices ({LINK}, switched)")
        ax.set_ylabel(f"{what} speedup over 1 device")
        ax.legend(fontsize=8)
    paper = published()
    axes[1].plot([4], [paper["resnet50-4arm-speedup"]], "k*", ms=12,
                 label="published (DeCNN, 4 devices)")
    axes[1].legend(fontsize=8)
    fig.suptitle("ResNet-50 inference: DeCNN vs layer-wise MP vs data parallelism")
    fig.tight_layout()
    paths.append(save(fig, out_dir / "decnn_speedup_vs_devices.png"))

    fig, ax = subplots(figsize=(7, 4))
    base_mb = rows[0]["baseline_memory_bytes"] / 1e6
    for policy in POLICIES:
        pts = [(r["devices"], r["memory_per_device_bytes"] / 1e6) for r in rows
               if r["policy"] == policy]
        ax.plot(*zip(*pts, strict=True), marker="o", label=policy)
    ax.axhline(base_mb, color="black", lw=0.6, label="1 device, original ResNet-50")
    cut = paper["resnet50-4arm-memory"]
    ax.plot([4], [base_mb * (1 - cut)], "k*", ms=12, label=f"published DeCNN (-{cut:.1%})")
    ax.set_xlabel("devices")
    ax.set_ylabel("memory per device (MB): weights + peak activations")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(save(fig, out_dir / "decnn_memory_per_device.png"))

    sweep = bandwidth_sweep(bandwidths_Bps)
    fig, ax = subplots(figsize=(7, 4))
    for policy in SPLIT_POLICIES:
        pts = [(r["bandwidth_Bps"] * 8 / 1e6, r["throughput_speedup"]) for r in sweep
               if r["policy"] == policy and not r["shared_medium"]]
        line, = ax.plot(*zip(*pts, strict=True), marker="o", label=f"{policy}, switched")
        wifi = [r for r in sweep if r["policy"] == policy and r["shared_medium"]][0]
        ax.plot([wifi["bandwidth_Bps"] * 8 / 1e6], [wifi["throughput_speedup"]], marker="s",
                color=line.get_color(), ls="", label=f"{policy}, Wi-Fi (shared medium)")
    ax.set_xscale("log")
    ax.axhline(1.0, color="black", lw=0.6)
    ax.set_xlabel("link bandwidth (Mb/s)")
    ax.set_ylabel("throughput speedup over 1 device")
    ax.set_title("4 devices: from Wi-Fi to 10 Gb Ethernet")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(save(fig, out_dir / "decnn_speedup_vs_bandwidth.png"))

    paths.append(accuracy_vs_speedup(out_dir, subplots))

    r = run("decnn", 4)
    span = r.makespan_s
    paths.append(out_dir / "decnn_timeline.png")
    plot_timeline(r, paths[-1], window_s=(0.25 * span, 0.6 * span),
                  title=f"DeCNN, 4 x {BOARD}, 1 Gb Ethernet, 2 samples in flight: "
                        "all-to-all exchanges (orange) overlap compute (blue)")
    return paths


def accuracy_vs_speedup(out_dir: Path, subplots) -> Path:
    """Each decoupled width's simulated 4-board speedup beside the authors' top-1."""
    base = run("sequential", 1).throughput_samples_per_s
    fig, ax = subplots(figsize=(6.5, 4))
    for row in authors_top1():
        width = float(row["width"])
        if row["network"] == "resnet50":
            speedup, label = 1.0, "ResNet-50, 1 board"
        else:
            speedup = run("decnn", 4, width=width).throughput_samples_per_s / base
            label = f"decoupled x{width:g}, 4 boards"
        ax.scatter([speedup], [float(row["top1_percent"])], s=30)
        ax.annotate(label, (speedup, float(row["top1_percent"])), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"simulated throughput speedup over one {BOARD} (original ResNet-50)")
    ax.set_ylabel("ImageNet top-1 (%), published by the authors")
    ax.set_title("DeCNN: speed-up (simulated) beside accuracy (authors' training README)",
                 fontsize=9)
    fig.tight_layout()
    return save(fig, out_dir / "decnn_accuracy_vs_speedup.png")
