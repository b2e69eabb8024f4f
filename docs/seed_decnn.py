"""DeCNN's figures of docs/seed-techniques.md (docs/seed_techniques_page.py writes the page):
the runs of `dnnsim reproduce --only decnn` (validation/reproduce/decnn/figures.py: one board
running the original ResNet-50 as the baseline, DeCNN and its baselines on four boards, the
Pi 3B+ and Wi-Fi), the decoupled network's own FLOPs and activation bytes, and the TCP/IP
stack time of board 0's messages as hwmodels/arm.py charges it. Two what-ifs rerun the same
runs with one rule of the model off: the TCP/IP stack's cycles (ARMModel.tcp_stack_time_s),
and Winograd (hwmodels/arm_conv.winograd_tile: every convolution as GEMM).
"""
from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

from hwmodels import arm_conv, catalog
from hwmodels.arm import ARMModel
from simulator.api import simulate
from simulator.cluster import Cluster
from validation.reproduce.decnn import figures as decnn
from workloads import zoo

BOARDS = 4
OTHER_BOARD = "rpi3bplus"
WIFI = "wifi"
PUBLISHED_MEMORY_CUT = "resnet50-4arm-memory"
PUBLISHED_SPEEDUP = "resnet50-4arm-speedup"


@contextmanager
def _no_stack():
    with mock.patch.object(ARMModel, "tcp_stack_time_s", lambda self, nbytes: 0.0):
        yield


@contextmanager
def _all_gemm():
    with mock.patch.object(arm_conv, "winograd_tile", lambda op: None):
        yield


def _latency_s(result) -> float:
    return result.extras.get("latency_s", result.makespan_s)


def _memory(result) -> float:
    """A board's peak memory (the mean over the boards)."""
    peaks = result.peak_memory_bytes
    return sum(peaks.values()) / len(peaks)


def _speedup(result, base) -> float:
    return result.throughput_samples_per_s / base.throughput_samples_per_s


def _x(v: float) -> str:
    return f"{v:.2f}x"


def _cut(v: float) -> str:
    return f"-{100 * v:.1f}%"


def figures() -> tuple[dict[str, str], dict[str, bool]]:
    published = decnn.published()
    base = decnn.run("sequential", 1)
    split = decnn.run("decnn", BOARDS)
    options = decnn.decoupled_options(BOARDS)
    alone = simulate("decnn_resnet50", Cluster.build(decnn.BOARD, 1, decnn.LINK),
                           "sequential", training=False, workload_options=options)
    original, decoupled = zoo.get("resnet50", batch=1), zoo.get("decnn_resnet50", batch=1,
                                                                 **options)
    speedup = _speedup(split, base)
    cut = 1 - _memory(split) / _memory(base)
    # board 0's bytes an image, both ways, and what its stack costs it
    board0 = [d for d in split.link_bytes if d.startswith(f"{split_device(split)}.")]
    moved = sum(split.link_bytes[d] for d in board0) / split.extras["samples"]
    stack_s = ARMModel(catalog.device(decnn.BOARD)).tcp_stack_time_s(moved)
    # the runtime memory a board would need for the published cut, on every board and on one
    kept = 1 - published[PUBLISHED_MEMORY_CUT]
    runtime = (kept * _memory(base) - _memory(split)) / (1 - kept)
    others = {p: decnn.run(p, BOARDS) for p in ("modnn", "coates", "layerwise-mp")}
    other_base = decnn.run("sequential", 1, board=OTHER_BOARD)
    wifi = {(board, p): _speedup(decnn.run(p, BOARDS, link=catalog.link(WIFI), board=board),
                                 base if board == decnn.BOARD else other_base)
            for board in (decnn.BOARD, OTHER_BOARD) for p in ("decnn", "modnn", "coates")}
    with _no_stack():
        bare = {p: _speedup(decnn.run(p, BOARDS), base)
                for p in ("decnn", "modnn", "coates", "layerwise-mp")}
    with _all_gemm():
        gemm_base, gemm_split = decnn.run("sequential", 1), decnn.run("decnn", BOARDS)
    wino_one = 1 - _latency_s(base) / _latency_s(gemm_base)
    wino_four = 1 - gemm_split.throughput_samples_per_s / split.throughput_samples_per_s
    values = {
        "decnn_speedup": _x(speedup),
        "decnn_speedup_error": f"{100 * (speedup / published[PUBLISHED_SPEEDUP] - 1):.1f}%",
        "decnn_memory_cut": _cut(cut),
        "decnn_image_one_ms": f"{1e3 * _latency_s(base):.0f} ms",
        "decnn_image_four_ms": f"{1e3 / split.throughput_samples_per_s:.0f} ms",
        "decnn_alone": _x(_speedup(alone, base)),
        "decnn_flops_share": f"{100 * decoupled.flops() / original.flops():.0f}%",
        "decnn_activation_ratio": _x(decoupled.activation_bytes() / original.activation_bytes()),
        "decnn_over_alone": _x(_speedup(split, alone)),
        "decnn_over_alone_latency": _x(_latency_s(alone) / split.extras["latency_s"]),
        "decnn_board0_mb": f"{moved / 1e6:.1f} MB",
        "decnn_stack_ms": f"{1e3 * stack_s:.0f} ms",
        "decnn_peak_mb": f"{_memory(split) / 1e6:.1f} MB",
        "decnn_original_peak_mb": f"{_memory(base) / 1e6:.1f} MB",
        "decnn_runtime_mb": f"{runtime / 1e6:.0f} MB",
        "decnn_published_cut": _cut(published[PUBLISHED_MEMORY_CUT]),
        "decnn_modnn": _x(_speedup(others["modnn"], base)),
        "decnn_coates": _x(_speedup(others["coates"], base)),
        "decnn_layerwise": _x(_speedup(others["layerwise-mp"], base)),
        "decnn_halo_cut": _cut(1 - _memory(others["modnn"]) / _memory(base)),
        "decnn_layerwise_cut": _cut(1 - _memory(others["layerwise-mp"]) / _memory(base)),
        "decnn_no_stack": _x(bare["decnn"]),
        "decnn_baselines_no_stack": ", ".join(_x(bare[p]) for p in
                                              ("modnn", "coates", "layerwise-mp")),
        "decnn_all_gemm": _x(_speedup(gemm_split, gemm_base)),
        "decnn_wino_one": f"{100 * wino_one:.0f}%",
        "decnn_wino_four": f"{100 * wino_four:.0f}%",
        "decnn_pi3": _x(_speedup(decnn.run("decnn", BOARDS, board=OTHER_BOARD), other_base)),
        "decnn_wifi_pi4": ", ".join(_x(wifi[(decnn.BOARD, p)]) for p in
                                    ("decnn", "modnn", "coates")),
        "decnn_wifi_pi3": ", ".join(_x(wifi[(OTHER_BOARD, p)]) for p in
                                    ("decnn", "modnn", "coates")),
    }
    checks = {
        "DeCNN's speedup is above the published figure, outside the tolerance":
            speedup / published[PUBLISHED_SPEEDUP] - 1 > 0.10,
        "the memory cut is larger than the published one": cut > published[PUBLISHED_MEMORY_CUT],
        "MoDNN and Coates hold the same memory a board (all the weights)":
            abs(_memory(others["modnn"]) - _memory(others["coates"])) < 0.001 * _memory(base),
        "some runtime memory a board would give the published cut": runtime > 0,
        "the stack's time lowers every split's speedup": all(
            bare[p] > _speedup(r, base) for p, r in [("decnn", split), *others.items()]),
        "Winograd cuts the original's time on one board more than a board's quarter's":
            wino_one > wino_four > 0,
    }
    return values, checks


def split_device(result) -> str:
    """The first board's name in a result's link counters (the one that gathers the image)."""
    return sorted({d.split(".")[0] for d in result.link_bytes})[0]
