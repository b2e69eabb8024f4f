"""Chrome trace (Perfetto, chrome://tracing) and matplotlib timeline and memory plots.

The plots are built on matplotlib's object-oriented API (a bare `Figure`, saved through the Agg
canvas), never through pyplot or `matplotlib.use`: a library that switched the backend would
turn off the inline plots of a notebook that imports it. Each plot function returns its
Figure, so a notebook shows it inline; `path` also writes a PNG.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

CATEGORY_COLOURS = {"compute": "tab:blue", "comm": "tab:orange", "copy": "tab:green",
                    "recompute": "tab:purple", "wait": "tab:gray"}


def _process_of(resource: str) -> str:
    """Group resources by device (gpu0.compute -> gpu0); network parts under 'network'."""
    if resource.startswith(("link:", "medium", "node")):
        return "network"
    return resource.split(".", 1)[0]


def chrome_trace_events(result) -> list[dict]:
    log = result.log
    resources = sorted(log.capacities)
    processes = sorted({_process_of(r) for r in resources})
    pid = {p: i for i, p in enumerate(processes)}
    tid = {r: i for i, r in enumerate(resources)}
    events: list[dict] = []
    for process in processes:
        events.append({"ph": "M", "name": "process_name", "pid": pid[process], "tid": 0,
                       "args": {"name": process}})
    for r in resources:
        events.append({"ph": "M", "name": "thread_name", "pid": pid[_process_of(r)],
                       "tid": tid[r], "args": {"name": r}})
    for t, s, e in zip(log.tasks, log.start_s, log.end_s, strict=True):
        if e != e:
            continue
        args = {k: v for k, v in t.meta.items() if isinstance(v, (int, float, str))}
        for r in t.resources[:1] if len(t.resources) > 8 else t.resources:
            events.append({"ph": "X", "name": t.name, "cat": t.category,
                           "pid": pid[_process_of(r)], "tid": tid[r],
                           "ts": round(s * 1e6, 3), "dur": round((e - s) * 1e6, 3),
                           "args": args})
    for dev, points in sorted(log.memory_timeline.items()):
        p = pid.get(dev)
        if p is None:
            p = len(pid)
            pid[dev] = p
            events.append({"ph": "M", "name": "process_name", "pid": p, "tid": 0,
                           "args": {"name": dev}})
        for ts, b in points:
            events.append({"ph": "C", "name": f"memory {dev}", "pid": p,
                           "ts": round(ts * 1e6, 3), "args": {"GiB": round(b / 2 ** 30, 6)}})
    return events


def write_chrome_trace(result, path: str | Path) -> None:
    doc = {"traceEvents": chrome_trace_events(result), "displayTimeUnit": "ms",
           "otherData": {"policy": result.policy, "workload": result.workload}}
    Path(path).write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))


def new_figure(figsize: tuple[float, float]):
    """A matplotlib Figure that belongs to no backend and no pyplot state."""
    from matplotlib.figure import Figure
    return Figure(figsize=figsize)


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kw):
    """`pyplot.subplots` without pyplot: (Figure, axes) on a bare Figure."""
    fig = new_figure(figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def save_figure(fig, path: str | Path | None, dpi: int = 110) -> None:
    """Write `fig` as a PNG through the Agg canvas (no display needed); None writes nothing."""
    if path is None:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi)


def plot_timeline(result, path: str | Path | None = None, max_resources: int = 24,
                  title: str | None = None, window_s: tuple[float, float] | None = None):
    """Gantt chart of tasks per resource, coloured by category; returns the Figure."""
    log = result.log
    every = sorted({r for t in log.tasks for r in t.resources[:1]}, key=device_order)
    used = every[:max_resources]
    row = {r: i for i, r in enumerate(used)}
    bars: dict[str, dict[int, list]] = {}
    for t, s, e in zip(log.tasks, log.start_s, log.end_s, strict=True):
        r = t.resources[0]
        if e != e or r not in row:
            continue
        if window_s and (e < window_s[0] or s > window_s[1]):
            continue
        bars.setdefault(t.category, {}).setdefault(row[r], []).append((s, max(e - s, 1e-12)))
    fig = new_figure((11, 0.35 * len(used) + 1.5))
    ax = fig.subplots()
    for cat, rows in sorted(bars.items()):
        colour = CATEGORY_COLOURS.get(cat, "tab:red")
        for i, spans in rows.items():
            ax.broken_barh(spans, (i - 0.4, 0.8), facecolors=colour, label=cat)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), loc="upper right", fontsize=8)
    ax.set_yticks(range(len(used)), used, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    if window_s:
        ax.set_xlim(*window_s)
    ax.set_title(title or f"{result.policy}: {result.workload} (batch {result.batch})"
                 + _shown(len(used), len(every), "resources"))
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def device_order(name: str) -> list:
    """Sort key that orders numbered names as numbers: gpu2 before gpu10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _shown(shown: int, total: int, what: str) -> str:
    """The title's note that a plot leaves rows out, so a reader never misses them."""
    return f"\n(the first {shown} of {total} {what})" if shown < total else ""


def plot_memory(result, path: str | Path | None = None, title: str | None = None):
    """Memory in use over time per device, with its capacity; returns the Figure."""
    fig = new_figure((9, 4))
    ax = fig.subplots()
    timelines = sorted(result.log.memory_timeline.items(), key=lambda kv: device_order(kv[0]))
    for dev, points in timelines[:8]:
        xs = [p[0] for p in points]
        ys = [p[1] / 2 ** 30 for p in points]
        ax.step(xs, ys, where="post", label=dev)
        cap = result.log.memory_capacity_bytes.get(dev)
        if cap:
            ax.axhline(cap / 2 ** 30, ls="--", lw=0.8, color="gray")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("memory in use (GiB)")
    ax.legend(fontsize=8)
    ax.set_title(title or f"memory: {result.policy}, {result.workload}"
                 + _shown(min(len(timelines), 8), len(timelines), "devices"))
    fig.tight_layout()
    save_figure(fig, path)
    return fig
