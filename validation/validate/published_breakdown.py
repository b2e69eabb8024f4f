"""Where a published row's simulated time goes: `dnnsim validate --published FILE.csv
--breakdown ROW_ID`.

Each op of the row's step is costed as hwmodels/gpu.py costs it (its fastest algorithm: the
larger of its arithmetic and its memory time, then its serial work and its kernels' overhead,
after what the GPU waits for the framework's host to issue it: GPUModel.stream_times_s), and
its time is put under what binds it:
- arithmetic or memory: the larger of the two terms of its algorithm;
- serial: kernels run before or after the main one (a bias pass, a zeroed output) and a
  scatter's atomics;
- kernel overhead: the gap the GPU leaves between dependent kernels;
- host: the GPU waiting for the framework's host to issue the op (the host has fallen
  behind the GPU: small kernels, launched faster than the host issues them).
Per phase the classes sum to the phase's simulated time (pg.phase_seconds), which is set
beside the published forward and backward times where the row gives them.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from hwmodels.gpu import Framework, GpuFamily
from hwmodels.gpu_l2 import L2Reuse
from validation.calibrate import published_gpu as pg
from validation.calibrate import published_kernels as pk

BOUNDS = ("arithmetic", "memory", "serial", "kernel overhead", "host")
# op classes shown per phase, largest first; the rest are summed in one line
TOP_CLASSES = 12


@dataclass
class PhaseBreakdown:
    seconds_by_bound: dict[str, float] = field(default_factory=lambda: dict.fromkeys(BOUNDS,
                                                                                     0.0))
    # (op kind, algorithm) -> [seconds, ops]
    classes: dict[tuple[str, str], list] = field(default_factory=lambda: defaultdict(
        lambda: [0.0, 0]))

    @property
    def seconds(self) -> float:
        return sum(self.seconds_by_bound.values())


def breakdown(row: pg.NetworkRow, families: dict[str, GpuFamily] | None = None,
              frameworks: dict[str, Framework] | None = None) -> dict[str, PhaseBreakdown]:
    """Each phase of the row's simulated step (forward, backward, update), by what binds
    each op's time and by op class."""
    model = pg.gpu_model(row.gpu, families, frameworks, pg.framework_key(row.framework),
                         cuda=row.cuda, cudnn=row.cudnn)
    fam = model.family_constants
    phases: dict[str, PhaseBreakdown] = {}
    ops = pg.row_ops(row)
    reuse = L2Reuse(model.spec.l2_bytes)     # as stream_times_s follows the L2
    for op, seconds in zip(ops, model.stream_times_s(ops), strict=True):
        hit_bytes = reuse.hit_bytes(op, model.passes_through(op))
        if model.passes_through(op):
            continue
        phase = phases.setdefault(op.phase, PhaseBreakdown())
        option = model.chosen_option(op)
        arithmetic_s, memory_s, serial_memory_s = model.work_terms_s(
            option, fam, model.tensor_cores(op), hit_bytes)
        device_s = model.option_time_s(option, fam, model.tensor_cores(op), hit_bytes)
        phase.seconds_by_bound["host"] += max(0.0, seconds - device_s)
        work = "arithmetic" if arithmetic_s >= memory_s else "memory"
        serial_s = serial_memory_s + option.serial_s
        overhead_s = option.kernels * fam.kernel_overhead_s
        phase.seconds_by_bound[work] += min(seconds, device_s) - serial_s - overhead_s
        phase.seconds_by_bound["serial"] += serial_s
        phase.seconds_by_bound["kernel overhead"] += overhead_s
        entry = phase.classes[(op.kind, option.algorithm)]
        entry[0] += seconds
        entry[1] += 1
    return phases


def report(row: pg.NetworkRow, phases: dict[str, PhaseBreakdown]) -> str:
    """The breakdown as text: per phase, simulated against published, by bound, by class."""
    published = dict(zip(("forward", "backward"), row.phase_s, strict=True)) \
        if row.phase_s else {}
    total_s = sum(p.seconds for p in phases.values())
    lines = [f"{row.row_id}: {row.network} on {row.gpu}, {row.precision}, batch {row.batch}, "
             f"{row.framework or '(framework not given)'}",
             f"  step: simulated {1e3 * total_s:.2f} ms, published "
             f"{1e3 * row.batch / row.throughput:.2f} ms"]
    for name, phase in phases.items():
        seconds = phase.seconds
        versus = (f", published {1e3 * published[name]:.2f} ms "
                  f"({100 * (seconds / published[name] - 1):+.1f}%)" if name in published else "")
        lines += ["", f"  {name}: simulated {1e3 * seconds:.2f} ms{versus}",
                  "    bound by: " + ", ".join(
                      f"{bound} {1e3 * s:.2f} ms ({100 * s / seconds:.0f}%)"
                      for bound, s in phase.seconds_by_bound.items() if s > 0)]
        ranked = sorted(phase.classes.items(), key=lambda kv: (-kv[1][0], kv[0]))
        for (kind, algorithm), (s, ops) in ranked[:TOP_CLASSES]:
            lines.append(f"    {kind:<22} {algorithm:<18} {ops:4d} ops {1e3 * s:9.3f} ms "
                         f"{100 * s / seconds:5.1f}%")
        rest = ranked[TOP_CLASSES:]
        if rest:
            s = sum(v[0] for _, v in rest)
            lines.append(f"    {f'({len(rest)} more op classes)':<41} "
                         f"{sum(v[1] for _, v in rest):4d} ops {1e3 * s:9.3f} ms "
                         f"{100 * s / seconds:5.1f}%")
    return "\n".join(lines)


def run(table: pg.Table, row_ids: list[str], kernels: pg.Table | None = None,
        leave_one_gpu_out: bool = False) -> str:
    """The breakdown of each named row of `table`, under the catalog's constants, or with
    leave_one_gpu_out under constants fitted without the row's GPU (to `kernels`, else the
    committed kernel table, and the table's other rows). An id the table does not score is
    an error naming it, and why where the table skipped it."""
    from workloads.graph import WorkloadError

    from ..calibrate import published_fit as pf
    rows = {r.row_id: r for r in table.rows}
    skipped = {s.row_id: s.reason for s in table.skipped}
    for rid in row_ids:
        if rid not in rows:
            why = (f"it is not simulated: {skipped[rid]}" if rid in skipped
                   else "no row has that row_id")
            raise WorkloadError(f"--breakdown {rid}: {table.path}: {why}")
    if leave_one_gpu_out and kernels is None:
        import os
        kernels = pk.read_kernel_rows(os.path.join(pg.PUBLISHED_DIR, "kernels.csv"))
    out = []
    for rid in row_ids:
        row = rows[rid]
        if leave_one_gpu_out and kernels is not None:
            out.append(report(row, breakdown(
                row, *pf.fit_all(kernels.rows, table.rows, exclude_gpu=row.gpu))))
        else:
            out.append(report(row, breakdown(row)))
    return "\n\n".join(out)
