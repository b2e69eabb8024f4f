"""`dnnsim validate --published FILE.csv`: the GPU model against published training
throughputs (and, given a kernels file, library kernel times), row by row.

In-sample against the shipped constants (catalog/gpu_families.toml, fitted to the committed
rows), or, with leave_one_gpu_out, each GPU predicted from constants fitted without any of its
rows: kernels or networks. Rows that cannot be simulated are listed with their reason; the
summary counts them, so a half-read file is never scored as whole.
"""
from __future__ import annotations

import textwrap
from collections import defaultdict
from dataclasses import dataclass

from hwmodels.gpu import GpuFamily
from validation.calibrate import published_fit as pf
from validation.calibrate import published_gpu as pg
from validation.calibrate import published_kernels as pk
from validation.calibrate import published_terms

from .compare import kendall_tau


@dataclass(frozen=True)
class Scored:
    row: pg.NetworkRow
    simulated: float          # samples/s
    # simulated (forward, backward) seconds, where the row publishes each (row.phase_s)
    phase_s: tuple[float, float] | None = None

    @property
    def error(self) -> float:
        return self.simulated / self.row.throughput - 1.0

    def phase_errors(self) -> dict[str, float]:
        """Each phase's time error (simulated / published - 1); empty without phase times."""
        if self.phase_s is None or self.row.phase_s is None:
            return {}
        return {phase: simulated / published - 1.0 for phase, simulated, published
                in zip(PHASES, self.phase_s, self.row.phase_s, strict=True)}


PHASES = published_terms.PHASES


@dataclass(frozen=True)
class Group:
    name: str
    rows: int
    mape: float
    max_error: float
    tau: float


def group(name: str, scored: list[Scored]) -> Group:
    errs = [abs(s.error) for s in scored]
    tau = (kendall_tau([s.row.throughput for s in scored], [s.simulated for s in scored])
           if len(scored) > 1 else float("nan"))
    return Group(name, len(scored), sum(errs) / len(errs), max(errs), tau)


def score_networks(rows: list[pg.NetworkRow], families: dict[str, GpuFamily] | None = None,
                   frameworks: dict | None = None) -> list[Scored]:
    return [_scored(r, families, frameworks) for r in rows]


def _scored(row: pg.NetworkRow, families: dict[str, GpuFamily] | None,
            frameworks: dict | None) -> Scored:
    seconds = pg.phase_seconds(row, families, frameworks)
    phases = (tuple(seconds.get(p, 0.0) for p in PHASES)
              if row.phase_s is not None else None)
    return Scored(row, row.batch / sum(seconds.values()), phases)  # type: ignore[arg-type]


def phase_groups(scored: list[Scored]) -> list[Group]:
    """Time MAPE of the forward and the backward pass apart, over the rows that publish both,
    all together and per GPU (tau: Kendall's over the phase times)."""
    out = []
    for phase in PHASES:
        timed = [s for s in scored if s.phase_errors()]
        for name, rows in [("all", timed), *sorted(_by_gpu(timed).items())]:
            if not rows:
                continue
            errs = [abs(s.phase_errors()[phase]) for s in rows]
            i = PHASES.index(phase)
            tau = (kendall_tau([s.row.phase_s[i] for s in rows],  # type: ignore[index]
                               [s.phase_s[i] for s in rows])  # type: ignore[index]
                   if len(rows) > 1 else float("nan"))
            out.append(Group(f"{phase} {name}", len(rows), sum(errs) / len(errs), max(errs),
                             tau))
    return out


def _by_gpu(scored: list[Scored]) -> dict[str, list[Scored]]:
    groups: dict[str, list[Scored]] = defaultdict(list)
    for s in scored:
        groups[s.row.gpu].append(s)
    return groups


def leave_one_gpu_out(rows: list[pg.NetworkRow], kernels: list[pk.KernelRow],
                      fit_rows: list[pg.NetworkRow] | None = None) -> list[Scored]:
    """Each GPU's rows predicted by constants fitted to every other GPU's kernels and rows
    (fit_rows: the training rows to fit on, default `rows`)."""
    fit_rows = rows if fit_rows is None else fit_rows
    out = []
    for gpu in sorted({r.gpu for r in rows}):
        families, frameworks = pf.fit_all(kernels, fit_rows, exclude_gpu=gpu)
        out += score_networks([r for r in rows if r.gpu == gpu], families, frameworks)
    return sorted(out, key=lambda s: s.row.row_id)


def by(scored: list[Scored], key) -> list[Group]:
    groups: dict[str, list[Scored]] = defaultdict(list)
    for s in scored:
        groups[key(s)].append(s)
    return [group(name, groups[name]) for name in sorted(groups)]


OWN_CHOICE = " (own choice)"


def kernel_groups(rows: list[pk.KernelRow],
                  families: dict[str, GpuFamily] | None = None) -> list[Group]:
    """MAPE per kind, each row costed with the algorithm it records where it names one
    (pk.simulate_kernel); for the kinds with such rows, also "<kind> (own choice)": every row
    costed with the model's fastest algorithm instead."""
    errs: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        errs[r.kind].append(abs(pk.simulate_kernel(r, families) / r.time_s - 1.0))
    for kind in sorted({r.kind for r in rows if r.algorithm is not None}):
        errs[kind + OWN_CHOICE] = [abs(pk.simulate_kernel(r, families, recorded=False)
                                       / r.time_s - 1.0) for r in rows if r.kind == kind]
    return [Group(k, len(v), sum(v) / len(v), max(v), float("nan"))
            for k, v in sorted(errs.items())]


def algorithm_agreement(rows: list[pk.KernelRow],
                        families: dict[str, GpuFamily] | None = None) -> tuple[int, int]:
    """(rows whose recorded algorithm the model's autotuner also takes, rows that record
    one)."""
    recorded = [r for r in rows if r.algorithm is not None]
    return sum(pk.model_algorithm(r, families) == r.algorithm for r in recorded), len(recorded)


def _trust_groups(scored: list[Scored]) -> list[str]:
    """Where the data marks rows anomalous (pg.UNTRUSTED: the fit leaves them out), the figures
    of their precisions over the other rows, then the anomalous rows' own: both are shown."""
    untrusted = [s for s in scored if s.row.untrusted]
    if not untrusted:
        return []
    precisions = {s.row.precision for s in untrusted}
    trusted = [s for s in scored if not s.row.untrusted and s.row.precision in precisions]
    grades = "/".join(sorted(pg.UNTRUSTED))
    return ([_fmt_group(g) for g in by(trusted, lambda s: f"{s.row.precision}, not {grades}")]
            + [_fmt_group(group(f"trust {grades} (not fitted)", untrusted))])


def _fmt_group(g: Group) -> str:
    tau = "" if g.tau != g.tau else f"  tau {g.tau:5.2f}"
    return (f"  {g.name:<22} {g.rows:4d} rows  MAPE {100 * g.mape:5.1f}%  "
            f"max {100 * g.max_error:5.1f}%{tau}")


def _assumed(scored: list[Scored]) -> list[str]:
    """What reading each row assumed where the row does not say (the framework whose host
    model it runs in, the ResNet layout, TF32, the memory format, a sequence length), one line
    per set of assumptions with the rows that share it."""
    rows_of: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for s in scored:
        rows_of[s.row.assumed].append(s.row.row_id)
    lines = []
    for assumed, rows in rows_of.items():       # in the order of the file's rows
        if not assumed:
            continue
        lines.append(f"  {'; '.join(assumed)}:")
        lines += textwrap.wrap(", ".join(rows), 96, initial_indent="    ",
                               subsequent_indent="    ")
    return ["", "how the rows run, where they do not say (rows):", *lines] if lines else []


def report(table: pg.Table, scored: list[Scored], kernels: list[Group] | None = None,
           title: str = "in-sample", agreement: tuple[int, int] | None = None) -> str:
    lines = [f"{table.path}: {len(scored)} rows simulated, {len(table.skipped)} skipped "
             f"({title})", "",
             f"  {'row':<6} {'network':<14} {'gpu':<15} {'precision':<9} {'layout':<6} "
             f"{'batch':>5} {'published':>10} {'simulated':>10} {'error':>7}"]
    for s in scored:
        r = s.row
        # a transformer over tokens has no convolutions to lay out
        layout = "-" if "seq_len" in dict(r.options) else r.memory_format
        lines.append(f"  {r.row_id:<6} {r.network:<14} {r.gpu:<15} {r.precision:<9} "
                     f"{layout:<6} {r.batch:5d} {r.throughput:10.1f} "
                     f"{s.simulated:10.1f} {100 * s.error:+6.1f}%"
                     + (f"  trust {r.trust}: not fitted" if r.untrusted else ""))
    if scored:
        lines += ["", "summary (samples/s):", _fmt_group(group("all", scored))]
        for precision_group in by(scored, lambda s: s.row.precision):
            lines.append(_fmt_group(precision_group))
        lines += _trust_groups(scored)
        lines += ["per GPU:", *map(_fmt_group, by(scored, lambda s: s.row.gpu))]
        lines += ["per network:", *map(_fmt_group, by(scored, lambda s: s.row.network))]
        lines += ["per framework:",
                  *map(_fmt_group, by(scored, lambda s: s.row.framework or "(not given)"))]
        phases = phase_groups(scored)
        if phases:
            lines += ["forward and backward apart (time, rows that publish both):",
                      *map(_fmt_group, phases)]
    if kernels:
        lines += ["kernels (time; the recorded algorithm where a row names it):",
                  *map(_fmt_group, kernels)]
    if agreement and agreement[1]:
        lines.append(f"  the model's fastest algorithm is the recorded one on {agreement[0]} "
                     f"of {agreement[1]} rows")
    lines += _assumed(scored)
    if table.skipped:
        lines += ["", "not simulated:"]
        lines += [f"  {s.row_id}: {s.reason}" for s in table.skipped]
    return "\n".join(lines)
