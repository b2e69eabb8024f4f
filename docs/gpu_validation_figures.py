"""The figures of docs/gpu-validation.md, from one run of each validation the page shows:
`dnnsim validate --published single_gpu.csv --kernels kernels.csv` (in sample),
`dnnsim validate --published single_gpu.csv --leave-one-gpu-out` (each GPU held out) and
`python -m validation.calibrate.kernel_floor` (the kernel rows one by one), each called once
(the code those commands call) and reused for every figure; docs/gpu_validation_page.py
fills the page's template with them.

Signs: a training row's error is its simulated throughput over the published one (+: the
model is fast); a pass's or a kernel's is its simulated time over the published one (+: the
model is slow). A figure is a percentage or a span of them, rounded as the page prints it.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path

from hwmodels.gpu_families_file import load_gpu_families
from validation.calibrate import kernel_floor as kf
from validation.calibrate import published_gpu as pg
from validation.calibrate import published_kernels as pk
from validation.calibrate.published_terms import START_HOST_S
from validation.validate import published as pv

ROOT = Path(__file__).resolve().parents[1]
SINGLE_GPU = f"{pg.PUBLISHED_DIR}/single_gpu.csv"
KERNELS = f"{pg.PUBLISHED_DIR}/kernels.csv"
CATALOG = ROOT / "hwmodels" / "catalog" / "gpu_families.toml"
PASCAL_CARDS = ("gtx1080ti", "titan-xp", "titan-x-pascal")   # the kernel tables' Pascal parts


class Runs:
    """Each validation the page shows, run when a figure first asks for it and kept: the
    in-sample and leave-one-GPU-out runs take minutes, and the tests of those validations
    (tests/conftest.py's `gpu_validation_runs`) read the same Runs as the page's test."""

    def __init__(self) -> None:
        self.table = pg.read_network_rows(SINGLE_GPU)
        self.kernel_table = pk.read_kernel_rows(KERNELS)
        self.kernel_rows = {r.row_id: r for r in self.kernel_table.rows}   # by row id
        self.families, self.frameworks = load_gpu_families(CATALOG)   # the shipped constants

    @cached_property
    def inside(self) -> list[pv.Scored]:
        """The training rows, shipped constants."""
        return pv.score_networks(self.table.rows)

    @cached_property
    def held_out(self) -> list[pv.Scored]:
        """The training rows, each GPU's from constants fitted without it."""
        return pv.leave_one_gpu_out(self.table.rows, self.kernel_table.rows)

    @cached_property
    def kernels(self) -> list[pv.Group]:
        """MAPE per kernel kind (the in-sample report's)."""
        return pv.kernel_groups(self.kernel_table.rows)

    @cached_property
    def agreement(self) -> tuple[int, int]:
        """Recorded algorithm = the model's, of the rows recording one."""
        return pv.algorithm_agreement(self.kernel_table.rows)

    @cached_property
    def errors(self) -> list[kf.RowError]:
        """Each kernel row, as kernel_floor scores it."""
        return kf.row_errors(self.kernel_table.rows)


def run() -> Runs:
    """The validations, each run once, when first needed."""
    return Runs()


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def span(xs: Iterable[float]) -> str:
    """The span of magnitudes, in whole percent: '19-30%' (or '21%')."""
    v = sorted(round(100 * abs(x)) for x in xs)
    return f"{v[0]}%" if v[0] == v[-1] else f"{v[0]}-{v[-1]}%"


def signed(xs: Iterable[float]) -> str:
    """The signed span, in whole percent: '-7 to +20%'."""
    v = sorted(round(100 * x) for x in xs)
    return f"{v[0]:+d}%" if v[0] == v[-1] else f"{v[0]:+d} to {v[-1]:+d}%"


def ratio_span(xs: Iterable[float], digits: int = 1) -> str:
    v = sorted(round(x, digits) for x in xs)
    return f"{v[0]:.{digits}f}" if v[0] == v[-1] else f"{v[0]:.{digits}f} to {v[-1]:.{digits}f}"


def rows(scored: list[pv.Scored], gpu: str | None = None, nets: tuple[str, ...] = (),
         framework: str = "", batches: Callable[[int], bool] = lambda b: True,
         precision: str | None = None) -> list[pv.Scored]:
    """The scored rows of a GPU, networks (zoo-name prefixes), framework (prefix), batch
    and precision; none is an error, so a figure never comes from no rows."""
    out = [s for s in scored if (gpu is None or s.row.gpu == gpu)
           and (not nets or s.row.network.startswith(nets))
           and s.row.framework.startswith(framework) and batches(s.row.batch)
           and (precision is None or s.row.precision == precision)]
    if not out:
        raise ValueError(f"no row of {gpu} {nets} {framework!r} {precision}")
    return out


def errors(scored: list[pv.Scored]) -> list[float]:
    return [s.error for s in scored]


def phase(scored: list[pv.Scored], name: str) -> list[float]:
    return [s.phase_errors()[name] for s in scored if s.phase_errors()]


def mape_cell(scored: list[pv.Scored]) -> str:
    """'6.8% (51.4%; trusted rows 6.4%, 29.7%)': MAPE, worst row, and both without the rows
    the data does not trust (where it has any)."""
    g = pv.group("", scored)
    trusted = [s for s in scored if not s.row.untrusted]
    tail = "" if len(trusted) == len(scored) else \
        f"; trusted rows {pct(pv.group('', trusted).mape)}, {pct(pv.group('', trusted).max_error)}"
    return f"{pct(g.mape)} ({pct(g.max_error)}{tail})"


def per_gpu(scored: list[pv.Scored]) -> str:
    return ", ".join(f"{g.name} {pct(g.mape)}" for g in pv.by(scored, lambda s: s.row.gpu))


def kernel_sel(runs: Runs, kind: str, keep: Callable[[kf.RowError], bool]) -> list[kf.RowError]:
    out = [e for e in runs.errors if e.kind == kind and keep(e)]
    if not out:
        raise ValueError(f"no {kind} kernel row matches")
    return out


def mean(xs: Iterable[float]) -> float:
    return statistics.fmean(list(xs))


def kmape(sel: list[kf.RowError]) -> float:
    return mean(abs(e.error) for e in sel)


def status(runs: Runs) -> dict[str, str]:
    """The table of where the model stands."""
    out = {}
    for key, scored in (("ins", runs.inside), ("loo", runs.held_out)):
        out[f"{key}_fp32"] = mape_cell(rows(scored, precision="fp32"))
        out[f"{key}_amp"] = pct(pv.group("", rows(scored, precision="amp-fp16")).mape)
        out[f"{key}_gpus"] = per_gpu(scored)
        out[f"{key}_fp32_mape"] = pct(pv.group("", rows(scored, precision="fp32")).mape)
    g = {k.name: pct(k.mape) for k in runs.kernels}
    out.update(kern_gemm=g["gemm"], kern_fwd=g["conv2d"], kern_own=g["conv2d" + pv.OWN_CHOICE],
               kern_dgrad=g["conv2d_grad_input"], kern_wgrad=g["conv2d_grad_weight"],
               agreement=f"{runs.agreement[0]} of {runs.agreement[1]}")
    return out


def passes(runs: Runs) -> dict[str, str]:
    """The forward and backward passes apart, in sample."""
    timed = [s for s in runs.inside if s.phase_errors()]
    k80 = [s for s in timed if s.row.gpu == "k80"]
    v100 = rows(timed, "v100", framework="Torch7", batches=lambda b: b == 16)
    google = rows(timed, nets=("googlenet",))
    return {
        "phase_rows": str(len(timed)),
        "fwd_all": pct(mean(abs(e) for e in phase(timed, "forward"))),
        "bwd_all": pct(mean(abs(e) for e in phase(timed, "backward"))),
        "fwd_k80": pct(mean(abs(e) for e in phase(k80, "forward"))),
        "bwd_k80": pct(mean(abs(e) for e in phase(k80, "backward"))),
        "bwd_ratio_published": ratio_span(s.row.phase_s[1] / s.row.phase_s[0]  # type: ignore[index]
                                          for s in timed),
        "bwd_ratio_model": ratio_span(s.phase_s[1] / s.phase_s[0]  # type: ignore[index]
                                      for s in timed),
        "v100_b16_published": ratio_span(s.row.phase_s[1] / s.row.phase_s[0]  # type: ignore[index]
                                         for s in v100),
        "v100_b16_model": ratio_span(s.phase_s[1] / s.phase_s[0]  # type: ignore[index]
                                     for s in v100),
        "v100_b16_fwd": signed(phase(v100, "forward")),
        "v100_b16_bwd": signed(phase(v100, "backward")),
        "googlenet_bwd": signed(phase(google, "backward")),
        "k80_dgrad": f"{runs.families['kepler'].conv_dgrad:.2f}",
        "k80_wgrad": f"{runs.families['kepler'].conv_wgrad:.2f}",
    }


def named(runs: Runs, row_id: str) -> pv.Scored:
    return next(s for s in runs.inside if s.row.row_id == row_id)


def training_misses(runs: Runs) -> dict[str, str]:
    """The V100's Torch7 rows, the Titan X (Maxwell)'s, the K80 held out, NGC and XLA."""
    ins, loo = runs.inside, runs.held_out
    small = lambda b: b <= 8  # noqa: E731
    v100_vgg = rows(ins, "v100", ("vgg19",), "Torch7", small)
    r34_b8 = [s for s in rows(ins, "v100", ("resnet34",), "Torch7", lambda b: b == 8)
              if not s.row.untrusted]
    grow = {}
    for net in ("vgg19", "resnet34"):
        at = {s.row.batch: s for s in rows(ins, "v100", (net,), "Torch7",
                                           lambda b: b in (8, 16))}
        grow[net] = at
    s258 = named(runs, "S258")
    out = {
        "v100_vgg19_small": signed(errors(v100_vgg)),
        "v100_r34_b8": signed(errors(r34_b8)),
        "published_growth": ratio_span((at[16].row.phase_s[i]  # type: ignore[index]
                                       / at[8].row.phase_s[i]  # type: ignore[index]
                                       for at in grow.values() for i in (0, 1)), digits=2),
        "model_growth": ratio_span((at[16].phase_s[i] / at[8].phase_s[i]  # type: ignore[index]
                                    for at in grow.values() for i in (0, 1)), digits=2),
        "s258_fwd": signed(phase([s258], "forward")),
        "s258_bwd": signed(phase([s258], "backward")),
        "s258_step": signed([s258.error]),
        "torch7_host": f"{1e6 * runs.frameworks['torch7'].host_overhead_s:.0f} us",
        "host_start": f"{1e6 * START_HOST_S:.0f} us",
    }
    for net, at in grow.items():
        for i, name in enumerate(("fwd", "bwd")):
            out[f"{net}_{name}_8_16"] = (f"{1e3 * at[8].row.phase_s[i]:.1f} -> "  # type: ignore[index]
                                         f"{1e3 * at[16].row.phase_s[i]:.1f} ms")  # type: ignore[index]
    tmx = "titan-x-maxwell"
    out["tmx_loo_torch7"] = signed(errors(rows(loo, tmx, framework="Torch7")))
    for key, nets in (("alexnet", ("alexnet",)), ("vgg", ("vgg16", "vgg19")),
                      ("resnet", ("resnet101", "resnet152"))):
        out[f"tmx_in_{key}"] = signed(errors(rows(ins, tmx, nets, "Torch7")))
    out["r4_fast"] = signed(errors(rows(ins, tmx, ("vgg11", "googlenet"), "cuDNN R4")))
    out["r4_alexnet"] = signed(errors(rows(ins, tmx, ("alexnet",), "cuDNN R4")))
    out["r4_overfeat"] = signed(errors(rows(ins, tmx, ("overfeat",), "cuDNN R4")))
    for key, nets in (("fast", ("googlenet", "resnet50", "resnet101", "resnet152",
                                "resnet200")),
                      ("resnet", ("resnet18", "resnet34")), ("vgg", ("vgg16", "vgg19"))):
        out[f"k80_loo_{key}"] = signed(errors(rows(loo, "k80", nets)))
    out["k80_in_vgg"] = signed(errors(rows(ins, "k80", ("vgg16", "vgg19"))))
    out["xla_amp"] = signed(errors(rows(ins, framework="TensorFlow 1.x + XLA",
                                      precision="amp-fp16")))
    return out


def _pair_ratios(runs: Runs, sel: list[kf.RowError], a: int, b: int
                 ) -> list[tuple[float, float]]:
    """(published, model) time at batch b over batch a, for each layer of `sel` timed at
    both on one GPU."""
    at = {(e.gpu, e.layer, e.variant): e for e in sel}
    out = []
    for (gpu, layer, batch), first in sorted(at.items(), key=lambda kv: repr(kv[0])):
        second = at.get((gpu, layer, b)) if batch == a else None
        if second is not None:
            published = (runs.kernel_rows[second.row_id].time_s
                         / runs.kernel_rows[first.row_id].time_s)
            out.append((published, published * second.ratio / first.ratio))
    return out


def _scatter_ratio(runs: Runs, sel: list[kf.RowError]) -> str:
    """Measured time over the cost of the data gradient's scatter (the option whose L2
    atomics follow its GEMM), geometric mean of the rows."""
    logs = []
    for e in sel:
        row = runs.kernel_rows[e.row_id]
        model = pg.gpu_model(row.gpu, runs.families, framework=None, cuda=row.cuda,
                             cudnn=row.cudnn)
        fam, tensor = model.family_constants, model.tensor_cores(row.op)
        scatter = next(o for o in model.kernel_options(row.op) if o.serial_s > 0)
        logs.append(math.log(row.time_s / model.option_time_s(scatter, fam, tensor)))
    return f"{math.exp(mean(logs)):.2f}x"


def kernel_misses(runs: Runs) -> dict[str, str]:
    """The GEMM and convolution tables: where the kernel rows miss."""
    gemm = [e for e in runs.errors if e.kind == "gemm"]
    cols = lambda e: e.layer[1]  # noqa: E731  (a GEMM's n: the product's columns)
    pascal = runs.families["pascal"]
    large_tn = [e.ratio for e in gemm if e.variant == "TN" and e.gpu == "titan-x-pascal"
                and e.layer[0] >= 4608]   # M of 4608 or more
    out = {
        "gemm_wide": pct(kmape([e for e in gemm if cols(e) >= 128])),
        "gemm_mid": pct(kmape([e for e in gemm if 16 <= cols(e) <= 64])),
        "gemm_narrow": pct(kmape([e for e in gemm if cols(e) <= 8])),
        "gemm_gpus": ", ".join(f"{gpu} {pct(kmape([e for e in gemm if e.gpu == gpu]))}"
                               for gpu in sorted({e.gpu for e in gemm})),
        "pascal_tn16": signed(mean(e.error for e in gemm if e.gpu == gpu and e.variant == "TN"
                                 and cols(e) == 16) for gpu in PASCAL_CARDS),
        "pascal_tn_stream": f"{100 * pascal.gemm_memory * pascal.strided_memory:.0f}%",
        "gemm_layouts": ", ".join(f"{t} {pct(kmape([e for e in gemm if e.variant == t]))}"
                                  for t in sorted({str(e.variant) for e in gemm})),
        "txp_tn_large": f"{statistics.median(large_tn):.2f}",
    }
    fwd = lambda keep: kernel_sel(runs, "conv2d", keep)  # noqa: E731
    out["fused_v100_t4"] = signed(e.error for e in fwd(
        lambda e: e.algorithm == "winograd_fused" and e.gpu in ("v100", "t4")))
    out["fft_tiling"] = signed(e.error for e in fwd(lambda e: e.algorithm == "fft_tiling"))
    # implicit GEMM of 32 or fewer filters (layer[4]: K) larger than 1x1: cuDNN's 128x32 tiles
    narrow = fwd(lambda e: e.algorithm == "implicit_gemm" and e.layer[4] <= 32
                 and not e.shape_class.startswith("1x1"))
    out["fwd_narrow_rows"] = str(len(narrow))
    out["fwd_narrow"] = signed(mean(e.error for e in narrow if e.gpu == gpu)
                               for gpu in sorted({e.gpu for e in narrow}))
    fused56 = fwd(lambda e: e.algorithm == "winograd_fused"
                  and (runs.kernel_rows[e.row_id].cudnn or (0,))[0] in (5, 6))
    out["fused_cudnn56_rows"], out["fused_cudnn56"] = str(len(fused56)), pct(kmape(fused56))
    cudnn5 = fwd(lambda e: e.algorithm == "fft"
                 and (runs.kernel_rows[e.row_id].cudnn or (0,))[0] == 5)
    out["fft_cudnn5_rows"], out["fft_cudnn5"] = str(len(cudnn5)), signed(e.error for e in cudnn5)
    dgrad = lambda keep: kernel_sel(runs, "conv2d_grad_input", keep)  # noqa: E731
    s2 = dgrad(lambda e: e.shape_class.startswith("1x1 stride 2"))
    out.update(dgrad_1x1s2_rows=str(len(s2)), dgrad_1x1s2=pct(kmape(s2)),
               dgrad_1x1s2_bias=signed([mean(e.error for e in s2)]))
    # measured over the scatter's cost by cuDNN release; cuDNN 5 and 6's larger strided
    # filters too, whose scatter is bound by its atomics (7.6 gathers those by stride phase)
    major = lambda e: (runs.kernel_rows[e.row_id].cudnn or (0,))[0]  # noqa: E731
    wider = dgrad(lambda e: "stride 2" in e.shape_class and not e.shape_class.startswith("1x1"))
    out.update(dgrad_1x1s2_scatter_56=_scatter_ratio(runs, [e for e in s2 if major(e) in (5, 6)]),
               dgrad_1x1s2_scatter_76=_scatter_ratio(runs, [e for e in s2 if major(e) == 7]),
               dgrad_s2_scatter_56=_scatter_ratio(runs, [e for e in wider if major(e) in (5, 6)]))
    s1 = dgrad(lambda e: e.shape_class.startswith("5x5 stride 1"))
    out.update(dgrad_5x5_rows=str(len(s1)), dgrad_5x5_bias=signed([mean(e.error for e in s1)]))
    for kind, key in (("conv2d", "fwd"), ("conv2d_grad_input", "dgrad"),
                      ("conv2d_grad_weight", "wgrad")):
        out[f"v100_nonfused_{key}"] = signed([mean(e.error for e in kernel_sel(
            runs, kind, lambda e: e.gpu == "v100" and e.algorithm == "winograd_nonfused"))])
    out["volta_winograd"] = f"{runs.families['volta'].winograd:.2f}"
    txp = kernel_sel(runs, "conv2d_grad_weight", lambda e: e.gpu == "titan-x-pascal"
                     and e.shape_class.startswith("3x3") and 128 <= e.layer[1] <= 512)
    wino = [e for e in txp if e.algorithm.startswith("winograd")]
    out.update(txp_wgrad_rows=str(len(txp)), txp_wgrad_winograd=str(len(wino)),
               txp_wgrad_bias=signed([mean(e.error for e in wino)]))
    bias = {(kind, gpu): mean(e.error for e in runs.errors if e.kind == kind and e.gpu == gpu)
            for kind in pk.KERNEL_KINDS for gpu in ("gtx1080ti", "titan-xp")}
    out["ti_above_xp"] = span(bias[(k, "gtx1080ti")] - bias[(k, "titan-xp")]
                              for k in pk.KERNEL_KINDS).replace("%", " points")
    out["ti_fwd"] = signed([bias[("conv2d", "gtx1080ti")]])
    out["xp_fwd"] = signed([bias[("conv2d", "titan-xp")]])
    wgrad = lambda keep: kernel_sel(runs, "conv2d_grad_weight", keep)  # noqa: E731
    gpus = ("m40", "gtx1080ti", "v100", "t4")
    s2_5 = wgrad(lambda e: e.gpu in gpus and e.shape_class.startswith("5x5 stride 2")
                 and 64 <= e.layer[1] <= 256)
    first = wgrad(lambda e: e.gpu in gpus and e.layer[1] == 1)
    out["wgrad_5x5s2"] = signed(statistics.median(e.error for e in s2_5 if e.gpu == g)
                              for g in gpus)
    out["wgrad_first"] = signed(statistics.median(e.error for e in first if e.gpu == g)
                              for g in gpus)
    return out


def floors(runs: Runs) -> dict[str, str]:
    """What constants per class could reach (kernel_floor), and the pairs' spread."""
    out, counts = {}, {}
    finest = kf.GRANULARITIES[-1][1]
    for kind, key in (("gemm", "gemm"), ("conv2d", "fwd"), ("conv2d_grad_input", "dgrad"),
                      ("conv2d_grad_weight", "wgrad")):
        sel = [e for e in runs.errors if e.kind == kind]
        out[f"floor_{key}"] = f"{kf.oracle_mape(sel, finest):.1f}%"
        pairs, spread = kf.pair_spread(sel)
        out[f"spread_{key}"], counts[key] = f"{100 * spread:.0f}%", pairs
    out["pairs_gemm"] = str(counts["gemm"])
    conv_pairs = sorted(counts[k] for k in ("fwd", "dgrad", "wgrad"))
    out["pairs_conv"] = f"{conv_pairs[0]}-{conv_pairs[-1]}"
    one = _pair_ratios(runs, kernel_sel(runs, "conv2d_grad_weight", lambda e: e.shape_class
                                        .startswith("1x1") and e.layer[1] > 64), 8, 16)
    out.update(wgrad_1x1_pairs=str(len(one)),
               wgrad_1x1_published=f"{statistics.median(p for p, _ in one):.2f}x",
               wgrad_1x1_model=f"{statistics.median(m for _, m in one):.2f}x")
    seven = _pair_ratios(runs, kernel_sel(runs, "conv2d_grad_weight", lambda e: e.shape_class
                                          .startswith("1x1") and e.layer[1] > 64
                                          and e.layer[2] == 7), 8, 16)
    out["wgrad_7x7_published"] = f"{statistics.median(p for p, _ in seven):.2f}x"
    return out
