"""SparseTrain's figures of docs/seed-techniques.md (docs/seed_techniques_page.py writes the
page): the four networks' conv speedups as `dnnsim reproduce --only sparsetrain` simulates
them (one and two FMA units per core), what they become when a stated estimate of the kernel
model moves (the pass efficiencies, the L2's sustained bandwidth, the policy's work items and
their sparsity spread), and the per-kernel table and ranges of
`python -m validation.reproduce.sparsetrain.kernels`.

A what-if of a constant runs the same policies with the model built from other constants
(the policies build it once per run, `simulator/policies/sparse_train.py`); nothing of the
model is changed for the other figures.
"""
from __future__ import annotations

import dataclasses
from functools import cache
from unittest import mock

from hwmodels import catalog
from hwmodels.cpu_conv import CPUDirectConv, DirectConvConstants
from simulator import policies
from simulator.api import simulate
from simulator.cluster import Cluster
from validation.reproduce.sparsetrain import kernels, metrics
from validation.reproduce.targets import load_all

HARDWARE = "skylake-x-6c"
BATCH = 16
WHAT_IF_L2_BYTES_PER_CYCLE = 32.0
UNLIMITED_L2_BYTES_PER_CYCLE = 1e9
WHAT_IF_ITEMS = (1, 16)
WHAT_IF_SPREAD = 0.0
BESIDE_LOOP_SCALES = (0.5, 2.0)   # the cycles spent beside the FMA loop, halved and doubled


def _scaled_efficiency(efficiency: float, scale: float) -> float:
    """The pass efficiency at which the cycles beside the FMA loop, 1 / e - 1 of it, are
    `scale` times what they are at `efficiency`."""
    return 1.0 / (1.0 + scale * (1.0 / efficiency - 1.0))


def _model(constants: DirectConvConstants | None, l2_bytes_per_cycle: float | None):
    """CPUDirectConv built from `constants`, its L2 at `l2_bytes_per_cycle` (None: as is)."""
    class Variant(CPUDirectConv):
        def __init__(self, spec, _constants=None) -> None:
            super().__init__(spec, constants)
            if l2_bytes_per_cycle is not None:
                self.table = dataclasses.replace(self.table,
                                                 l2_bytes_per_cycle=l2_bytes_per_cycle)
    return Variant


@cache
def _speedups(units: int, beside_scale: float = 1.0, l2: float | None = None,
              items: int | None = None, spread: float | None = None) -> tuple[float, ...]:
    """Each network's conv speedup (dense-direct time / sparse-train time), in the order of
    metrics.NETWORKS, with `units` FMA units per core and the what-ifs given."""
    base = DirectConvConstants()
    constants = DirectConvConstants(dense_efficiency={
        p: _scaled_efficiency(e, beside_scale) for p, e in base.dense_efficiency.items()})
    options = {k: v for k, v in (("items_per_core", items), ("spread", spread)) if v is not None}
    spec = catalog.device(HARDWARE).with_options(
        **metrics.target_hardware_options({"fma_units_per_core": units}))
    cluster = Cluster.build(spec, 1, "pcie3")
    out = []
    with mock.patch("simulator.policies.sparse_train.CPUDirectConv", _model(constants, l2)):
        for network, sparsity in metrics.NETWORKS.items():
            dense = simulate(network, cluster, "dense-direct", batch=BATCH, training=True)
            sparse = simulate(network, cluster, "sparse-train", batch=BATCH, training=True,
                              sparsity=sparsity, epoch="mean", **options)
            out.append(dense.extras["conv_time_s"] / sparse.extras["conv_time_s"])
    return tuple(out)


def _x(values) -> str:
    return " / ".join(f"{v:.2f}x" for v in values)


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _span(values, fmt=_pct) -> str:
    """'a-b' (or 'a' where all are the same) in the page's rounding."""
    lo, hi = fmt(min(values)), fmt(max(values))
    return lo if lo == hi else f"{lo.rstrip('%x')}-{hi}"


def network_figures() -> tuple[dict[str, str], dict[str, bool]]:
    """The table of the four networks' speedups and the what-ifs of the prose under it."""
    targets = load_all(["sparsetrain"])[0].targets
    published = [next(t.published for t in targets if t.scenario["workload"] == n)
                 for n in metrics.NETWORKS]
    tolerance = {t.tolerance for t in targets}.pop()
    one, two = _speedups(1), _speedups(2)
    err_one = [s / p - 1 for s, p in zip(one, published, strict=True)]
    err_two = [s / p - 1 for s, p in zip(two, published, strict=True)]
    row = " | ".join
    half, double = (_speedups(1, beside_scale=s) for s in BESIDE_LOOP_SCALES)
    eff = DirectConvConstants().dense_efficiency
    varied = [_speedups(1, items=n) for n in WHAT_IF_ITEMS] + [
        _speedups(1, spread=WHAT_IF_SPREAD)]
    values = {
        "st_table": "\n".join([
            "| FMA units | VGG16 | ResNet-34 | ResNet-50 | Fixup ResNet-50 |",
            "| --- | --- | --- | --- | --- |",
            f"| published | {row(f'{p:.2f}x' for p in published)} |",
            f"| one (the targets) | {row(f'{s:.2f}x' for s in one)} |",
            f"| two | {row(f'{s:.2f}x' for s in two)} |"]),
        "st_tolerance": _pct(tolerance),
        "st_vgg_one_below": _pct(-err_one[0]),
        "st_others_one_within": _pct(max(abs(e) for e in err_one[1:])),
        "st_two_below": _span([-e for e in err_two]),
        "st_half_efficiencies": " / ".join(f"{_scaled_efficiency(eff[p], 0.5):.2f}"
                                           for p in ("forward", "grad_input", "grad_weight")),
        "st_half": _x(half),
        "st_half_above": ", ".join(_pct(s / p - 1) for s, p in zip(half, published, strict=True)),
        "st_double": _x(double),
        "st_l2": f"{WHAT_IF_L2_BYTES_PER_CYCLE:.0f}",
        "st_l2_now": f"{kernels.model(1).table.l2_bytes_per_cycle:g}",
        "st_l2_figures": _x(_speedups(1, l2=WHAT_IF_L2_BYTES_PER_CYCLE)),
        "st_items": str(policy_default("items_per_core")),
        "st_items_low": str(WHAT_IF_ITEMS[0]), "st_items_low_figures": _x(varied[0]),
        "st_items_high": str(WHAT_IF_ITEMS[1]), "st_items_high_figures": _x(varied[1]),
        "st_spread": f"{policy_default('spread'):g}", "st_spread_zero": f"{WHAT_IF_SPREAD:g}",
        "st_spread_figures": _x(varied[2]),
        "st_defaults_move": _pct(max(abs(v / s - 1) for vs in varied
                                     for v, s in zip(vs, one, strict=True))),
    }
    checks = {
        "one unit puts all four networks within the tolerance":
            all(abs(e) <= tolerance for e in err_one),
        "one unit puts VGG16 below its published figure": err_one[0] < 0,
        "two units put all four below": all(e < 0 for e in err_two),
        "half the cycles beside the loop put all four above": all(
            s > p for s, p in zip(half, published, strict=True)),
        "the weights' stream from L2 stays below the FMA port on one unit (an L2 with no "
        "limit gives the same figures)": all(abs(u / s - 1) < 1e-6 for u, s in zip(
            _speedups(1, l2=UNLIMITED_L2_BYTES_PER_CYCLE), one, strict=True)),
    }
    return values, checks


def policy_default(option: str):
    """The sparse-train policy's default for `option`."""
    return policies.get("sparse-train").options[option].default


def kernel_figures() -> tuple[dict[str, str], dict[str, bool]]:
    """The per-kernel table (kernels.markdown_table) and the ranges the prose draws from it."""
    rows = kernels.kernel_rows()
    summaries = kernels.summarise(rows)
    at = {(r["fma_units"], r["network"], r["layer"], r["kind"], round(r["sparsity"], 6)): r
          for r in rows}
    one = [s for s in summaries if s.fma_units == 1]
    key = {id(s): (s.network, s.layer, s.kind) for s in summaries}
    two = {key[id(s)]: s for s in summaries if s.fma_units == 2}
    fmas = {key[id(s)]: at[(1, s.network, s.layer, s.kind, 0.0)]["fmas_per_nonzero"]
            for s in one}
    i90 = kernels.SUMMARY_SPARSITIES.index(0.9)
    is3x3 = [s for s in one if s.shape.startswith("3x3")]
    four = [s for s in one if fmas[key[id(s)]] == 4]
    strided_gi = [s for s in one if "/" in s.shape and s.kind == "grad_input"]
    rest = [s for s in one if s not in four and s not in strided_gi]
    loss0 = {key[id(s)]: 1 - at[(1, s.network, s.layer, s.kind, 0.0)]["speedup"] for s in one}
    eff = DirectConvConstants().dense_efficiency
    values = {
        "st_kernel_table": kernels.markdown_table(summaries).rstrip("\n"),
        "st_3x3_breakeven": _span([s.breakeven for s in is3x3]),
        "st_3x3_90": _span([s.speedups[i90] for s in is3x3 if s.kind != "grad_weight"],
                           lambda v: f"{v:.1f}x"),
        "st_3x3_90_weights": _span([s.speedups[i90] for s in is3x3 if s.kind == "grad_weight"],
                                   lambda v: f"{v:.1f}x"),
        "st_4fma_breakeven": _span([s.breakeven for s in four]),
        "st_4fma_90": _span([s.speedups[i90] for s in four], lambda v: f"{v:.1f}x"),
        "st_bound_forward": f"{1 / (1 - eff['forward']):.2g}x",
        "st_bound_weights": f"{1 / (1 - eff['grad_weight']):.2g}x",
        "st_two_breakeven": _span([two[key[id(s)]].breakeven for s in rest]),
        "st_two_strided": _span([two[key[id(s)]].breakeven for s in strided_gi]),
        "st_two_4fma": _span([two[key[id(s)]].breakeven for s in four]),
        "st_two_cut_90": _span([1 - two[key[id(s)]].speedups[i90] / s.speedups[i90]
                                for s in one]),
        "st_loss_at_0": _span(list(loss0.values())),
    }
    checks = {
        "the 4-FMA kernels are 256->64 forward and backward by weights, 64->256 backward by "
        "input": {(s.shape.split()[1], s.kind) for s in four} == {
            ("256->64", "forward"), ("256->64", "grad_weight"), ("64->256", "grad_input")},
        "two units move every break-even up": all(
            two[key[id(s)]].breakeven > s.breakeven for s in one),
        "one unit loses most at no zeros where a non-zero feeds 4 FMAs":
            max(loss0[key[id(s)]] for s in four) == max(loss0.values()),
        "two units' 4-FMA kernels dip further for the first 5% of zeros": all(
            at[(2, s.network, s.layer, s.kind, 0.05)]["speedup"]
            < at[(2, s.network, s.layer, s.kind, 0.0)]["speedup"] for s in four),
        "one unit loses to the dense kernel at no zeros": min(loss0.values()) > 0,
    }
    return values, checks
