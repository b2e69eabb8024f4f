"""What published_scaling reports: a row's simulated against its published speedup
(RowResult), the summaries over rows, and the printed tables."""
from __future__ import annotations

from dataclasses import dataclass

GOAL_RELATIVE_ERROR = 0.03        # the published 1-to-8 and 1-to-16 speedups, per row
SPREAD_FIT_GPUS = (2, 4)          # the rows rank_spread is fitted on


@dataclass(frozen=True)
class StepParts:
    """A row's simulated step at N GPUs against its step at one, in seconds: the 1-GPU step
    (the row's loader, its GPU at the row's speed) and what N adds, part by part."""
    one_gpu_s: float
    communication_s: float    # synthetic data, ranks alike: all-reduces, Horovod, kvstore
    spread_s: float           # the slowest of N ranks (rank_spread)
    loader_s: float           # the loader's wait at N beyond its wait at 1

    @property
    def extra_s(self) -> float:
        return self.communication_s + self.spread_s + self.loader_s


@dataclass(frozen=True)
class RowResult:
    row_id: str
    framework: str
    version: str
    machine: str
    precision: str
    n_gpus: int
    batch_per_gpu: int | None
    batch_stated: bool
    published: float
    simulated: float | None     # None: not simulated (note says why)
    note: str
    synthetic: float | None = None   # simulated on synthetic data, ranks alike, GPU as modelled
    loader: str | None = None
    rank_spread: float = 0.0
    rank_tail: str = "exponential"
    fitted: str = ""                 # what was fitted to this row ("": a prediction)
    anchored: bool = False           # the GPU at the row's 1-GPU throughput (else as modelled)
    parts: StepParts | None = None   # the simulated step part by part (compare's breakdown)

    def published_extra_s(self) -> float | None:
        """How much longer the published step at N is than the 1-GPU step (the simulated
        one, which runs at the row's published 1-GPU throughput)."""
        if self.parts is None:
            return None
        return self.parts.one_gpu_s * (self.n_gpus / self.published - 1)

    @property
    def synthetic_error(self) -> float | None:
        return None if self.synthetic is None else self.synthetic / self.published - 1

    @property
    def error(self) -> float | None:
        """simulated / published - 1."""
        return None if self.simulated is None else self.simulated / self.published - 1


def summary(results: list[RowResult], n_gpus: tuple[int, ...] | None = None,
            synthetic: bool = False, predicted_only: bool = False) -> dict:
    """Rows compared, mean absolute percentage error, the largest error and its row, and the
    rows within the goal; over the rows of `n_gpus` (all when None); of the synthetic-data
    simulation (ranks alike, GPU as modelled) where `synthetic`; leaving out the rows a
    constant was fitted to where `predicted_only`."""
    def err(r: RowResult) -> float | None:
        return r.synthetic_error if synthetic else r.error

    picked = [(r, e) for r in results if (e := err(r)) is not None
              and (n_gpus is None or r.n_gpus in n_gpus)
              and not (predicted_only and r.fitted)]
    if not picked:
        return {"rows": 0, "mape": None, "max_abs_error": None, "worst": None, "within_goal": 0}
    worst, worst_err = max(picked, key=lambda p: abs(p[1]))
    return {"rows": len(picked), "mape": sum(abs(e) for _, e in picked) / len(picked),
            "max_abs_error": abs(worst_err), "worst": worst.row_id,
            "within_goal": sum(abs(e) <= GOAL_RELATIVE_ERROR for _, e in picked)}


def format_report(results: list[RowResult]) -> str:
    lines = [f"{'row':6} {'framework':22} {'version':26} {'machine':16} {'prec':4} {'N':>2} "
             f"{'batch':>6} {'loader':8} {'published':>9} {'synthetic':>9} {'simulated':>9} "
             f"{'error':>7}  note"]
    for r in results:
        unstated_mark = "" if r.batch_stated else "*"
        batch = "-" if r.batch_per_gpu is None else f"{r.batch_per_gpu}{unstated_mark}"
        syn = "-" if r.synthetic is None else f"{r.synthetic:.2f}"
        sim = "-" if r.simulated is None else f"{r.simulated:.2f}"
        err = "-" if r.error is None else f"{100 * r.error:+.1f}%"
        lines.append(f"{r.row_id:6} {r.framework[:22]:22} {r.version[:26]:26} {r.machine:16} "
                     f"{r.precision:4} {r.n_gpus:>2} {batch:>6} {r.loader or '-':8} "
                     f"{r.published:>9.2f} {syn:>9} {sim:>9} {err:>7}  "
                     f"{'; '.join(filter(None, (r.fitted and 'fitted: ' + r.fitted, r.note)))}")
    lines.append("* no batch stated: NVIDIA's default for the precision (DEFAULT_BATCH)")
    gpu = ("the GPU at the row's 1-GPU throughput" if any(r.anchored for r in results) else
           "the GPU as modelled")
    lines.append("synthetic: synthetic data, ranks alike, GPU as modelled; simulated: the "
                 f"row's loader on the node's CPUs, {gpu}, "
                 f"rank_spread {results[0].rank_spread if results else 0.0:.4f} "
                 f"({results[0].rank_tail if results else 'exponential'} tail, fitted on "
                 f"the {' and '.join(map(str, SPREAD_FIT_GPUS))}-GPU rows)")
    for label, ns in (("all rows", None), ("1-to-8 and 1-to-16", (8, 16))):
        for kind, synthetic, predicted in (("synthetic", True, False),
                                           ("simulated", False, False),
                                           ("simulated, predictions only", False, True)):
            s = summary(results, ns, synthetic, predicted)
            if s["rows"]:
                lines.append(f"{label}, {kind}: {s['rows']} rows, MAPE "
                             f"{100 * s['mape']:.2f}%, max {100 * s['max_abs_error']:.2f}% "
                             f"({s['worst']}), within {100 * GOAL_RELATIVE_ERROR:g}%: "
                             f"{s['within_goal']}")
    return "\n".join(lines)


def format_step_losses(losses: list[tuple[dict, float, dict[int, float]]]) -> str:
    lines = [f"{'1-GPU row':9} {'framework':22} {'version':26} {'machine':16} {'prec':4} "
             f"{'note':16} {'step':>7}  extra ms a step at N GPUs"]
    for one, step_s, by_n in losses:
        extra = "  ".join(f"{n}: {1e3 * s:+.1f}" for n, s in sorted(by_n.items()))
        lines.append(f"{one['row_id']:9} {one['framework'][:22]:22} "
                     f"{one['framework_version'][:26]:26} {one['gpu_variant']:16} "
                     f"{one['precision']:4} {one['precision_note'][:16]:16} "
                     f"{1e3 * step_s:5.1f}ms  {extra}")
    return "\n".join(lines)


def format_breakdown(results: list[RowResult]) -> str:
    """Per row with its step's parts: how much longer its step at N GPUs is than at one,
    published and simulated, the simulated part by part, and what the simulation lacks
    (published less simulated: positive where the published run lost more)."""
    lines = [f"{'row':6} {'framework':22} {'version':26} {'machine':16} {'prec':4} {'N':>2} "
             f"{'1-GPU':>7} {'published':>9} {'simulated':>9} {'comm':>6} {'spread':>6} "
             f"{'loader':>6} {'lacks':>6} {'error':>7}"]
    for r in results:
        extra = r.published_extra_s()
        if r.parts is None or extra is None or r.error is None:
            continue
        p = r.parts
        lines.append(f"{r.row_id:6} {r.framework[:22]:22} {r.version[:26]:26} {r.machine:16} "
                     f"{r.precision:4} {r.n_gpus:>2} {1e3 * p.one_gpu_s:5.1f}ms "
                     f"{1e3 * extra:+9.1f} {1e3 * p.extra_s:+9.1f} "
                     f"{1e3 * p.communication_s:+6.1f} {1e3 * p.spread_s:+6.1f} "
                     f"{1e3 * p.loader_s:+6.1f} {1e3 * (extra - p.extra_s):+6.1f} "
                     f"{100 * r.error:+6.1f}%{' *' if r.fitted else ''}")
    lines.append("ms a step more at N GPUs than at one; comm: synthetic data, ranks alike "
                 "(all-reduces, Horovod's cycles and copies, the kvstore's chain); spread: the "
                 "slowest of N ranks; loader: its wait at N beyond its wait at 1; lacks: "
                 "published less simulated; * a constant was fitted to the row")
    return "\n".join(lines)
