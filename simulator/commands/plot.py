"""`dnnsim plot RESULTS.jsonl --x devices --y speedup --by policy`: curves from a sweep's results.

y is any numeric summary key (iteration_time_s, throughput_samples_per_s,
throughput_tokens_per_s, model_flops_utilisation, makespan_s, exposed_communication_s,
peak_memory_bytes (largest device), ...), `speedup`, the throughput
of each point over that of its baseline: the point with the fields of `--baseline` changed
(e.g. `--baseline devices=1,policy=sequential`) and every other axis as equal as the file
allows, or `efficiency`, the speedup over the ratio of the two points' devices (1 is linear
scaling). The functions here (`load_rows`, `curves`, `plot_curves`) serve notebooks too.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from pathlib import Path

from ..outputs import check_plot_output, write_atomically
from ..policies import ConfigError
from ..scenario import Scenario
from ..sweep import OPTION_TABLES, read_results
from ..trace import device_order
from . import input_files, refuse_inputs_as_outputs
from .simulate import _scalar

NAME = "plot"
HELP = "Plot speedup curves or any summary figure from a sweep's results file."


def add_arguments(p) -> None:
    p.add_argument("results", help="a results file written by `dnnsim sweep`")
    p.add_argument("--x", required=True, help="a scenario field for the x axis, e.g. devices "
                                               "or options.bucket_mb")
    p.add_argument("--y", default="speedup",
                   help="a summary key (iteration_time_s, throughput_samples_per_s, "
                        "throughput_tokens_per_s, model_flops_utilisation, ...), "
                        "'speedup' (default) or 'efficiency' (speedup / device ratio)")
    p.add_argument("--by", default="", help="fields that make separate curves, comma separated")
    p.add_argument("--baseline", default="",
                   help="for speedup and efficiency: FIELD=VALUE,... naming the baseline point")
    p.add_argument("--where", default="", help="keep only points with FIELD=VALUE,...")
    p.add_argument("--out", help="PNG to write (default: next to the results file)")
    p.add_argument("--logx", action="store_true", help="logarithmic x axis")
    p.add_argument("--recheck", action="store_true",
                   help="simulate every successful point again and exit 1 if a figure differs "
                        "from the file's (a results file is otherwise only read, never run)")
    p.add_argument("--allow-code", action="store_true",
                   help="with --recheck: let a point whose workload names a Python file "
                        "(net.py:factory) import and run that file")


# -- rows ---------------------------------------------------------------------------------
def recorded_scenario(rec: dict) -> dict:
    """A result's scenario as recorded, defaults filled in. Nothing is looked up, checked or
    imported: a results file is data, and a workload it names (a zoo network or someone's
    `net.py:factory`) is never loaded to draw a plot."""
    fields = {f.name: f for f in dataclasses.fields(Scenario)}
    out = {}
    for name, f in fields.items():
        if f.default is not dataclasses.MISSING:
            out[name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[name] = f.default_factory()
    for name, value in rec["scenario"].items():
        if name not in fields:
            raise ConfigError(f"point {rec['point']}: unknown scenario field {name!r}")
        if name in OPTION_TABLES and not isinstance(value, dict):
            raise ConfigError(f"point {rec['point']}: scenario field {name!r} must be a table")
        out[name] = value
    return out


# figures a summary holds as null where they have no value (an out-of-memory point's time; a
# workload without tokens; a supernet policy's FLOPs): NaN in a row, not drawn
NULLABLE_FIGURES = {"iteration_time_s": "the point ran out of memory",
                    "throughput_samples_per_s": "the point ran out of memory",
                    "throughput_tokens_per_s": "the workload has no token input",
                    "achieved_flops_per_s": "a supernet policy's FLOPs are not counted",
                    "model_flops_utilisation": "a supernet policy's FLOPs are not counted"}


def _flat(rec: dict) -> dict:
    """One row: every scenario field (defaults filled in), options as 'options.KEY', and the
    numeric summary figures."""
    sc = recorded_scenario(rec)
    summary = rec.get("summary") or {}
    row = {k: v for k, v in sc.items() if k not in OPTION_TABLES}
    options = summary.get("options")
    resolved = {"options": options if isinstance(options, dict) else {}}
    for table in OPTION_TABLES:
        for k, v in {**resolved.get(table, {}), **sc[table]}.items():
            row[f"{table}.{k}"] = v
    for k, v in summary.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            row[k] = v
        elif v is None and k in NULLABLE_FIGURES:
            row[k] = math.nan
    peaks = summary.get("peak_memory_bytes")
    if isinstance(peaks, dict):
        row["peak_memory_bytes"] = max(peaks.values(), default=0)
    row["status"] = rec.get("status", "")
    row["_point"] = rec["point"]
    row["_axes"] = list(rec.get("axes", {}))
    return row


def load_rows(path: str | Path) -> list[dict]:
    _, records = read_results(path)
    if not records:
        raise ConfigError(f"results file {str(path)!r} holds no results")
    sweeps = {r["sweep"] for r in records}
    if len(sweeps) > 1:
        raise ConfigError(f"results file {str(path)!r} mixes {len(sweeps)} sweeps")
    return sorted((_flat(r) for r in records), key=lambda r: r["_point"])


def parse_pairs(text: str, what: str) -> dict:
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what}: {item!r} must be FIELD=VALUE")
        out[key.strip()] = _scalar(value.strip())
    return out


def _same(a, b) -> bool:
    return a == b or str(a) == str(b)


def _check_fields(rows: list[dict], names, what: str) -> None:
    known = set().union(*(r.keys() for r in rows))
    for name in names:
        if name not in known:
            shown = sorted(k for k in known if not k.startswith("_"))
            raise ConfigError(f"{what}: no field {name!r} in the results{_hint(name, shown)}; "
                              f"known: {', '.join(shown)}")


RELATIVE = ("speedup", "efficiency")


def _check_figure(rows: list[dict], y: str) -> None:
    """--y names a figure: a numeric summary key of the results, or speedup or efficiency.
    The error lists the figures apart from the scenario fields, which are rarely what a y
    axis wants."""
    known = set().union(*(r.keys() for r in rows))
    if y in RELATIVE or y in known:
        return
    scenario = {f.name for f in dataclasses.fields(Scenario)}
    figures = sorted(k for k in known if not k.startswith(("_", "options.")) and k != "status"
                     and k not in scenario) + list(RELATIVE)
    raise ConfigError(f"--y: no figure {y!r} in the results{_hint(y, figures)}; figures: "
                      f"{', '.join(figures)} (or any scenario field)")


def _hint(name: str, candidates: list[str]) -> str:
    """' (did you mean X?)' for a name that a candidate holds (throughput ->
    throughput_samples_per_s) or that is close to one (a typo), else ''."""
    holding = [c for c in candidates if name.lower() in c.lower()]
    close = holding or difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _baseline_of(row: dict, candidates: list[dict], baseline: dict) -> dict:
    pool = candidates
    for axis in row["_axes"]:
        if axis in baseline:
            continue
        narrowed = [c for c in pool if _same(c.get(axis), row.get(axis))]
        pool = narrowed or pool
    if len(pool) != 1:
        fields = ",".join(f"{k}={v}" for k, v in baseline.items())
        raise ConfigError(f"--baseline {fields} matches {len(pool)} points for point "
                          f"{row['_point']}; name more fields")
    return pool[0]


def curves(rows: list[dict], x: str, y: str, by: list[str] | None = None,
           baseline: dict | None = None, where: dict | None = None) -> dict[str, list]:
    """{curve label: [(x, y), ...] sorted by x}. Points that failed (out of memory, error)
    are left out."""
    by = by or []
    where = where or {}
    baseline = baseline or {}
    _check_fields(rows, [x], "--x")
    _check_fields(rows, by, "--by")
    _check_fields(rows, where, "--where")
    relative = y in RELATIVE
    _check_figure(rows, y)
    ok = [r for r in rows if r["status"] == "ok"]
    if relative:
        if not baseline:
            raise ConfigError(f"--y {y} needs --baseline FIELD=VALUE,... (e.g. devices=1)")
        _check_fields(rows, baseline, "--baseline")
        candidates = [r for r in ok if all(_same(r.get(k), v) for k, v in baseline.items())]
        if not candidates:
            raise ConfigError(f"--baseline: no successful point has "
                              f"{', '.join(f'{k}={v}' for k, v in baseline.items())}")
    kept = [r for r in ok if all(_same(r.get(k), v) for k, v in where.items())]
    if not relative and kept and all(not _finite(r.get(y)) for r in kept):
        why = NULLABLE_FIGURES.get(y, "it is null in every point's summary")
        raise ConfigError(f"--y {y}: no point drawn has a value ({why}; docs/metrics.md)")
    out: dict[str, dict] = {}
    for r in kept:
        label = ", ".join(f"{k}={r.get(k)}" for k in by) or y
        if relative:
            base = _baseline_of(r, candidates, baseline)
            value = r["throughput_samples_per_s"] / base["throughput_samples_per_s"]
            if y == "efficiency":
                value /= r["devices"] / base["devices"]
        else:
            value = r.get(y, math.nan)
        series = out.setdefault(label, {})
        if r[x] in series:
            varying = [a for a in r["_axes"] if a not in (x, *by, *where)]
            raise ConfigError(f"several points share {x}={r[x]} on curve {label!r}; they differ "
                              f"in {', '.join(varying) or 'a field'}: add it to --by or --where")
        series[r[x]] = value
    return {label: sorted(s.items(), key=lambda kv: _sort_key(kv[0]))
            for label, s in sorted(out.items(), key=lambda kv: device_order(kv[0]))}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def left_out(rows: list[dict], where: dict) -> list[str]:
    """The points --where keeps that are not drawn (out of memory, error), each with the axes
    that place it: a curve that stops short says why."""
    return [f"not drawn: {', '.join(f'{a}={r.get(a)}' for a in r['_axes'])} ({r['status']})"
            for r in rows if r["status"] != "ok"
            and all(_same(r.get(k), v) for k, v in where.items())]


def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def plot_curves(data: dict[str, list], path: str | Path | None, x: str, y: str,
                title: str | None = None, logx: bool = False):
    """One line per curve over a numeric x; over names (hardware, policy) one bar per curve
    and name, since a line between two GPUs would claim values in between. Returns the Figure
    (a notebook shows it) and writes `path` if given."""
    from ..trace import new_figure, save_figure

    fig = new_figure((7, 4.5))
    ax = fig.subplots()
    numeric = all(isinstance(v, (int, float)) for pts in data.values() for v, _ in pts)
    cats = sorted({str(v) for pts in data.values() for v, _ in pts})
    width = 0.8 / max(len(data), 1)
    for n, (label, pts) in enumerate(data.items()):
        if numeric:
            ax.plot([v for v, _ in pts], [w for _, w in pts], marker="o", label=label)
        else:
            offset = (n - (len(data) - 1) / 2) * width
            ax.bar([cats.index(str(v)) + offset for v, _ in pts], [w for _, w in pts], width,
                   label=label)
    if not numeric:
        ax.set_xticks(range(len(cats)), cats)
    if logx and numeric:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{y} by {x}")
    fig.tight_layout()
    save_figure(fig, path)
    return fig


RECHECKED = ("iteration_time_s", "throughput_samples_per_s")


def recheck(path: str | Path, allow_code: bool = False) -> list[str]:
    """Simulate each successful point of a results file again; the points whose figures
    differ. A workload naming a Python file is refused unless allow_code: the file someone
    sent you would run on your machine."""
    _, records = read_results(path)
    ok = [r for r in records if r["status"] == "ok"]
    if not allow_code:
        for rec in ok:
            workload = rec["scenario"].get("workload")
            if isinstance(workload, str) and ":" in workload:
                raise ConfigError(f"point {rec['point']}: workload {workload!r} names a Python "
                                  "file; --recheck runs it only with --allow-code")
    differ = []
    for rec in ok:
        result = Scenario.from_dict(rec["scenario"], source=f"point {rec['point']}").run()
        again = result.summary()
        recorded = rec.get("summary") or {}
        if any(not _same_figure(again.get(k), recorded.get(k)) for k in RECHECKED):
            differ.append(rec["point"])
    return differ


def _same_figure(a, b) -> bool:
    return (isinstance(a, (int, float)) and isinstance(b, (int, float))
            and math.isclose(a, b, rel_tol=1e-9))


def default_out(results: str, x: str, y: str) -> str:
    """The plot's path when --out is not given: beside the results file, named by its axes."""
    return str(Path(results).with_suffix("")) + f"-{y}-by-{x}.png"


def run(args) -> int:
    if args.out:
        check_plot_output(args.out, "--out")
        refuse_inputs_as_outputs([("--out", args.out)], input_files([args.results]))
    if args.allow_code and not args.recheck:
        raise ConfigError("--allow-code is for --recheck (plotting never runs code)")
    rows = load_rows(args.results)
    out = args.out or default_out(args.results, args.x, args.y)
    if not args.out:
        if Path(out).exists():
            # a file the user did not name is never replaced (docs/reliability.md)
            raise ConfigError(f"{out!r} exists and --out was not given; name it with --out "
                              "to replace it, or give another path")
        check_plot_output(out, "--out")
    if args.recheck:
        differ = recheck(args.results, args.allow_code)
        print(f"recheck: {len(differ)} point(s) differ from the file"
              + (f": {', '.join(differ)}" if differ else ""))
        if differ:
            return 1
    by = [b.strip() for b in args.by.split(",") if b.strip()]
    data = curves(rows, args.x, args.y, by, parse_pairs(args.baseline, "--baseline"),
                  parse_pairs(args.where, "--where"))
    title = f"{args.y} by {args.x}" + (f" (baseline {args.baseline})"
                                       if args.y in RELATIVE else "")
    write_atomically(out, lambda tmp: plot_curves(data, tmp, args.x, args.y, title=title,
                                                  logx=args.logx))
    for label, pts in data.items():
        print(f"{label}:")
        for xv, yv in pts:
            print(f"  {args.x}={xv!s:<12} {args.y}={yv:.6g}")
    for line in left_out(rows, parse_pairs(args.where, "--where")):
        print(line)
    print(f"wrote {out}")
    return 0
