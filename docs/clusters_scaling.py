"""The figures docs/data-parallel-scaling.md quotes of data-parallel scaling:
benchmarks/dp_scaling.py's tables and what the prose says of them, the ranks' spread, each
framework's gradient synchronisation, and `python -m validation.validate.published_scaling`
against NVIDIA's rows (docs/clusters_page.py writes them into the page). Every function
returns {placeholder: text}.
"""
from __future__ import annotations

import dataclasses
import math
import re
import sys
from functools import cached_property
from pathlib import Path
from unittest import mock

from clusters_collectives import MIB, alone, ms, span

from hwmodels import host_input
from simulator import Cluster, simulate
from simulator.policies._data_parallel import kvstore_groups, rank_time_factors
from simulator.policies._sync_group import parameter_arrays_bytes
from validation.validate import published_scaling as ps
from validation.validate.scaling_report import summary
from validation.validate.scaling_rows import published_step_losses, read_table
from workloads import zoo
from workloads.training import lower_training

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import dp_scaling as dp  # noqa: E402  (benchmarks/ is not a package)


def points(fraction: float) -> str:
    return f"{fraction * 100:.1f}"


def against(differences) -> str:
    """'0.3-0.6 points above', '0.9 points below', or 'within 0.4 points of' where the
    differences (in efficiency) differ in sign."""
    size = span([abs(d) for d in differences], points)
    if all(d > 0 for d in differences):
        return f"{size} points above"
    if all(d < 0 for d in differences):
        return f"{size} points below"
    return f"within {span([max(abs(d) for d in differences)], points)} points of"


def percents(values) -> str:
    """'93.1-94.0%', or '93.1%' where they round alike."""
    return span(values, points) + "%"


def multi_node() -> dict[str, str]:
    """Section 'Multi-node scaling' and the list after it."""
    f: dict[str, str] = {}
    clusters = dp.cluster_scaling(512)
    f["scaling_table"] = dp.scaling_table(clusters)
    exp = dp.published_comparison()
    logn = dp.published_comparison(rank_tail="lognormal")
    f["published_table"] = dp.published_table(exp, sources=False)
    f["rank_spread"] = f"{ps.FITTED_RANK_SPREAD:g}"
    goyal = [r for r in exp if r["node_type"] == "big-basin-p100"]
    horovod = [r for r in exp if r["node_type"] == "pcie-4gpu-p100-25gbe"]
    by = {r["algorithm"]: r for r in goyal}
    hd = by["halving-doubling"]
    nodes = 256 // 8
    f["hd_steps"], f["ring_steps"] = str(2 * int(math.log2(nodes))), str(2 * (nodes - 1))
    # every rank alike: link-level, by class (halving-doubling built in full stands for
    # every class); with the ranks spread, beyond 64 GPUs the collectives are flow-level
    # (policies/_replicas.py) and the algorithms come out near alike
    f["hd_vs_ring"] = against([hd["simulated"] - by[a]["simulated"] for a in ("ring", "nccl")])
    f["hd_vs_hier"] = points(abs(hd["simulated"] - by["hierarchical"]["simulated"]))
    f["horovod_alike"] = percents([r["simulated"] for r in horovod])
    f["horovod_spread"] = percents([r["spread"] for r in horovod])
    f["goyal_spread"] = percents([r["spread"] for r in goyal])
    f["goyal_loss"] = span([r["simulated"] - r["spread"] for r in goyal], points)
    f["horovod_loss"] = span([r["simulated"] - r["spread"] for r in horovod], points)
    f["goyal_logn_loss"] = span([r["simulated"] - r["spread"] for r in logn
                                 if r["node_type"] == "big-basin-p100"], points)
    f["horovod_logn_loss"] = span([r["simulated"] - r["spread"] for r in logn
                                   if r["node_type"] == "pcie-4gpu-p100-25gbe"], points)
    f["goyal_logn"] = percents([r["spread"] for r in logn if r["node_type"] == "big-basin-p100"])
    f["horovod_logn"] = percents([r["spread"] for r in logn
                                  if r["node_type"] == "pcie-4gpu-p100-25gbe"])
    tcp = dp.PUBLISHED[1]
    roce = dp.published_comparison(published=(dataclasses.replace(
        tcp, node_type="pcie-4gpu-p100-roce25g"),))
    f["roce_gain"] = span([abs(a[c] - b[c]) for a, b in zip(roce, horovod, strict=True)
                           for c in ("simulated", "spread")], points)
    grads = zoo.get(tcp.workload, batch=1).params() * 4
    f["r101_grad_mb"] = f"{grads / 1e6:.0f}"
    f["r101_buffers"] = str(math.ceil(grads / (64 * MIB)))
    eff = {(r["node_type"], r["gradient_sync"], r["algorithm"], r["gpus"]): r["efficiency"]
           for r in clusters}
    cloud = "cloud-v100-25gbe"
    f["cloud_ddp_nccl"] = percents([eff[cloud, "ddp", "nccl", n] for n in (256, 512)])
    f["cloud_ddp_ring"] = " and ".join(percents([eff[cloud, "ddp", "ring", n]])
                                       for n in (256, 512))
    f["cloud_hvd_nccl"] = percents([eff[cloud, "horovod", "nccl", 512]])
    f["cloud_hvd_ring"] = percents([eff[cloud, "horovod", "ring", 512]])
    # Horovod's negotiation before its response cache: a gather and a broadcast of the ready
    # lists, about 2 log2(p) messages a cycle, each paying the TCP link's latency
    cluster = Cluster.from_node_type(tcp.node_type, tcp.gpus)
    messages = 2 * int(math.log2(tcp.gpus))
    negotiation_s = messages * cluster.inter_node_link.latency_s
    step_s = simulate(tcp.workload, cluster, "data-parallel", batch=tcp.batch, precision="fp32",
                      gradient_sync="horovod", algorithm="ring").iteration_time_s
    f["negotiation_messages"], f["negotiation_ms"] = str(messages), ms(negotiation_s)
    f["tcp_latency_us"] = f"{cluster.inter_node_link.latency_s * 1e6:.0f}"
    f["r101_step_ms"] = f"{step_s * 1e3:.0f}"
    f["negotiation_share"] = f"{math.ceil(negotiation_s / step_s * 1000) / 10:.1f}"
    return f


def ranks() -> dict[str, str]:
    """How far the slowest of N ranks lags, in spreads, as rank_time_factors places them."""
    s = 0.01

    def exp_lag(n):
        return ((1 + s) * rank_time_factors(n, s)[0] - 1) / s

    def logn_lag(n):
        return math.log(rank_time_factors(n, s, "lognormal")[0]) / s

    return {"exp_lags": ", ".join(f"{exp_lag(n):.1f}" for n in (8, 128, 256)),
            "logn_lags": ", ".join(f"{logn_lag(n):.1f}" for n in (8, 128, 256)),
            "exp_lags_16": ", ".join(f"{exp_lag(n):.1f}" for n in (8, 16, 128, 256)),
            "logn_lags_16": ", ".join(f"{logn_lag(n):.1f}" for n in (8, 16, 256))}


def _dgx1(gpus: int, **opts):
    return simulate("resnet50", Cluster.from_node_type("dgx1-v100", gpus), "data-parallel",
                    **opts)


def gradient_sync() -> dict[str, str]:
    """Section 'Gradient synchronisation as each framework runs it'."""
    f: dict[str, str] = {}
    graph = lower_training(zoo.get("resnet50", batch=1))
    grads = zoo.get("resnet50", batch=1).params() * 4
    f["r50_grad_mb"] = f"{grads / 1e6:.0f}"
    f["r50_buffers"] = {1: "one", 2: "two", 3: "three"}.get(math.ceil(grads / (64 * MIB)), "?")
    gpu = Cluster.from_node_type("dgx1-v100", 8).devices[0]
    gap = gpu.model.launch_overhead_s
    tensors = sum(len(parameter_arrays_bytes(op)) for op in graph.topo()
                  if op.phase == "backward" and op.params)
    f["copy_gap_us"] = f"{gap * 1e6:.1f}"
    f["copy_ms"] = f"{2 * tensors * gap * 1e3:.1f}"
    f["r50_tensors"] = str(tensors)
    f["r50_ar_ms"] = ms(alone("dgx1-v100", 8, grads)[0], 1)
    # what a step on 8 GPUs of a DGX-1 loses to one GPU's, at NVIDIA's batches (FP32 128,
    # AMP 256), channels_last: the exposed all-reduce and, under Horovod, the cycle's wait
    for label, opts in (("ddp", {}), ("horovod", {"gradient_sync": "horovod"}),
                        ("mxnet", {"gradient_sync": "horovod", "horovod_enqueue": "gpu-ready"}),
                        ("xla", {"gradient_sync": "horovod", "gradients_ready": "at-end"})):
        longer = []
        for precision, batch in (("fp32", 128), ("amp-fp16", 256)):
            one, eight = (_dgx1(n, batch=batch, precision=precision, memory_format="nhwc",
                                **opts).iteration_time_s for n in (1, 8))
            longer.append(eight / one - 1)
        f[f"longer_{label}"] = span(longer, points)
    return f


def kvstore() -> dict[str, str]:
    """MXNet's kvstore chain against NVIDIA's 18.12 rows."""
    keys = len(kvstore_groups(lower_training(zoo.get("resnet50", batch=1))))
    losses = {}
    for precision, batch in (("fp16", 208), ("fp32", 96)):
        one = _dgx1(1, batch=batch, precision=precision, gradient_sync="kvstore")
        for n in (4, 8):
            at = _dgx1(n, batch=batch, precision=precision, gradient_sync="kvstore")
            losses[precision, n] = at.iteration_time_s - one.iteration_time_s
    f = {f"kv_loss_{n}": span([losses[p, n] for p in ("fp16", "fp32")],
                              lambda v: f"{v * 1e3:.0f}") for n in (4, 8)}
    f["kv_keys"] = str(keys)
    for n in (4, 8):
        f[f"kv_key_us_{n}"] = span([losses[p, n] / keys for p in ("fp16", "fp32")],
                                   lambda v: f"{v * 1e6:.0f}")
    return f


# DDR4 per node, as the DGX-1 and DGX-2 datasheets and Intel's ARK pages give them: (MT/s,
# channels per socket); cores per socket from the catalog's cpu tables
MEMORY = {"dgx1-v100": (2133, 4), "dgx2": (2666, 6)}


def _clock_ghz(node_type: str) -> float:
    model = host_input.host_cpus(node_type).cpu   # type: ignore[union-attr]
    return float(re.search(r"([\d.]+) GHz", model).group(1))   # type: ignore[union-attr]


def _memory_per_core(node_type: str) -> float:
    rate, channels = MEMORY[node_type]
    return rate * channels / (host_input.host_cpus(node_type).cores / 2)  # type: ignore[union-attr]


def loader_scaled(name: str, factor: float):
    """The catalog's loader `name` at `factor` times its per-image CPU cost."""
    real = host_input.loader

    def scaled(which):
        spec = real(which)
        return dataclasses.replace(spec, cpu_core_s_per_image=spec.cpu_core_s_per_image
                                   * factor) if which == name else spec
    return mock.patch.object(host_input, "loader", scaled)


class Comparisons:
    """`python -m validation.validate.published_scaling`'s comparisons of NVIDIA's rows, each
    run when first asked for and kept: each takes minutes, and the validation's tests
    (tests/conftest.py's `published_scaling`) read the same ones as this page's test."""

    @cached_property
    def exponential(self) -> list[ps.RowResult]:
        """ps.compare(): every row, the ranks' spread fitted, its default tail."""
        return ps.compare()

    @cached_property
    def lognormal(self) -> list[ps.RowResult]:
        return ps.compare(rank_tail="lognormal")


def published_rows(comparisons: Comparisons | None = None) -> dict[str, str]:
    """Section 'Data parallelism as real machines run it' (comparisons: the validation's,
    run here if not given)."""
    f: dict[str, str] = {}
    table = {r["row_id"]: r for r in read_table(ps.SCALING_CSV)}
    comparisons = comparisons or Comparisons()
    exp, logn = comparisons.exponential, comparisons.lognormal
    for name, results in (("exp", exp), ("logn", logn)):
        s = summary(results, (8, 16), predicted_only=True)
        f[f"{name}_within"] = str(s["within_goal"])
        if name == "exp":
            f["exp_rows"] = str(s["rows"])
        f[f"{name}_mape"] = f"{s['mape'] * 100:.2f}"
        f[f"{name}_max"] = f"{s['max_abs_error'] * 100:.1f}"
    err = {r.row_id: r.error for r in exp}
    lerr = {r.row_id: r.error for r in logn}
    for row in ("M0126", "M0054", "M0012", "M0063", "M0057", "M0034", "M0071", "M0134",
                "M0137"):
        f[f"err_{row}"] = f"{err[row] * 100:+.1f}%"
    for row in ("M0034", "M0071"):
        f[f"lerr_{row}"] = f"{lerr[row] * 100:+.1f}%"
    moved = [err[r.row_id] - lerr[r.row_id] for r in exp
             if r.n_gpus >= 8 and r.error is not None and not r.fitted]
    f["tail_moves"] = span([abs(m) for m in moved], points)
    img = {k: float(r["throughput_img_s"]) for k, r in table.items() if r["throughput_img_s"]}
    for row in ("M0126", "M0100", "M0054", "M0075", "M0063", "M0050", "M0061", "M0049"):
        f[f"img_{row}"] = f"{img[row]:,.0f}"
    f["m0012_slower"] = f"{(1 - img['M0012'] / img['M0008']) * 100:.0f}"
    f["xla_one_differ"] = f"{(img['M0061'] / img['M0049'] - 1) * 100:.0f}"
    dgx1, dgx2 = (host_input.host_cpus(n).cores for n in ("dgx1-v100", "dgx2"))
    f["dgx1_cores"], f["dgx2_cores"] = str(dgx1), str(dgx2)
    f["per_core_dgx1"] = f"{img['M0063'] / dgx1:.0f}"
    f["per_core_1907"], f["per_core_2006"] = (f"{img[r] / dgx2:.0f}" for r in ("M0075", "M0054"))
    tf_cost = host_input.loader("tf-data").cpu_core_s_per_image
    f["dgx1_cap"] = f"{dgx1 / tf_cost:,.0f}"
    slower = img["M0075"] / dgx2 / (img["M0063"] / dgx1)
    f["per_core_ratio"] = f"{slower:.2f}"
    rows = [table[r] for r in ("M0063", "M0050")]
    with loader_scaled("tf-data", slower):
        scaled = {r.row_id: r.error for r in ps.compare(rows, rank_spread=ps.FITTED_RANK_SPREAD)}
    f["scaled_M0063"], f["scaled_M0050"] = (f"{scaled[r] * 100:+.1f}%" for r in ("M0063", "M0050"))
    f["clock_ratio"] = f"{_clock_ghz('dgx2') / _clock_ghz('dgx1-v100'):.2f}"
    f["memory_ratio"] = f"{_memory_per_core('dgx2') / _memory_per_core('dgx1-v100'):.2f}"
    by_n: dict[int, list[float]] = {}
    for r in exp:
        by_n.setdefault(r.n_gpus, []).append(1 - r.published / r.n_gpus)
    f["pub_loss_8"] = span(by_n[8], lambda v: f"{v * 100:.0f}")
    f["pub_loss_max"] = f"{max(max(v) for v in by_n.values()) * 100:.0f}"
    f["amp_over_fp32"] = f"{img['M0007'] / img['M0005']:.1f}"
    steps = {one["row_id"]: (step, extra) for one, step, extra in published_step_losses()}

    def loss(rows, n):
        return span([steps[r][1][n] for r in rows], lambda v: f"{v * 1e3:.0f}")
    f["tf1907_loss4"] = loss(("M0055", "M0058", "M0061"), 4)
    f["tf1907_loss8"] = loss(("M0055", "M0058", "M0061"), 8)
    f["mx_loss8"] = loss(("M0088", "M0092", "M0114", "M0118"), 8)
    f["pt_loss8"] = loss(("M0017", "M0019", "M0021", "M0023", "M0025", "M0027", "M0029",
                          "M0031", "M0005", "M0009"), 8)
    f["tf1902_amp8"], f["tf1902_fp32_8"] = (f"{steps[r][1][8] * 1e3:.1f}"
                                            for r in ("M0076", "M0079"))
    for key, (row, n) in {"fp16_4": ("M0132", 4), "fp16_8": ("M0132", 8),
                          "fp32_4": ("M0135", 4), "fp32_8": ("M0135", 8)}.items():
        f[f"kv_pub_{key}"] = f"{steps[row][1][n] * 1e3:.1f}"
    f["mx_amp_steps"] = span([steps[r][0] for r in ("M0088", "M0096", "M0114", "M0122")],
                             lambda v: f"{v * 1e3:.0f}")
    xla8 = [r for r in exp if r.n_gpus == 8 and "XLA" in r.note]
    f["xla_losses"] = span([1 - r.published / 8 for r in xla8], lambda v: f"{v * 100:.0f}")
    f["kv_within"] = f"{max(abs(err[r]) for r in ('M0134', 'M0137')) * 100:.1f}"
    return f
