"""`dnnsim reproduce`: every published figure in validation/targets/, simulated and compared.

For each target file (one paper): each target measured (`targets.measure`), the paper's
`figures` hook called for its plots, and a Chrome trace plus a timeline of one step of its first
target's scenario. Everything lands in one folder:

    results.json       per target: paper, figure, published, simulated, error, tolerance,
                       within, and the scenario it ran in the form `dnnsim simulate` accepts
    report.md          tables per paper, figures linked
    report.html        the same, self-contained (figures embedded)
    figures/<paper>/   the PNGs of the paper's hook
    traces/<paper>.json, traces/<paper>-timeline.png

Every finished step is appended to journal.jsonl (simulator/journal.py: fsynced lines, one
writer per folder) and results.json is rewritten from it (atomically), so an interrupted run
keeps what it measured. `resume=True` reads the journal back and skips targets already measured
with the same definition; a figure or trace it lists is reused only if it is a file of this
folder's figures/ or traces/ of the kind reproduce writes, so a journal or results file cannot
make the report embed anything else.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simulator import limits
from simulator.journal import Journal
from simulator.outputs import write_atomically
from simulator.policies import ConfigError
from simulator.results import jsonable
from simulator.sweep import stable_hash
from simulator.workers import process_pool, stop_on_signals, stop_pool

from . import report
from .targets import PaperTargets, Target, load_all, measure, resolve_callable

RESULTS = "results.json"
JOURNAL = "journal.jsonl"
JOURNAL_KIND = "reproduce"


def _finite(x: float | None) -> float | None:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def _scenario_dicts(t: Target) -> tuple[dict, dict | None]:
    """The scenario (and baseline) as `dnnsim simulate` accepts them; the raw table if the
    target's scenario is itself invalid (the measurement then reports why)."""
    try:
        scenario = t.scenario_obj().to_dict()
    except ValueError:
        scenario = dict(t.scenario)
    if not t.baseline:
        return scenario, None
    try:
        return scenario, t.baseline_obj().to_dict()
    except ValueError:
        return scenario, {**t.scenario, **t.baseline}


def target_record(t: Target) -> dict:
    """Measure one target; never raises: a failure is recorded and counts as outside."""
    scenario, baseline = _scenario_dicts(t)
    rec: dict[str, Any] = {
        "paper": t.paper, "id": t.id, "figure": t.figure, "metric": t.metric,
        "published": t.published, "tolerance": t.tolerance, "tolerance_kind": t.tolerance_kind,
        "status": t.status, "lower": t.lower, "upper": t.upper, "defaults": list(t.defaults),
        "note": t.note, "known_miss": t.known_miss, "fitted_to_it": t.fitted_to_it,
        "scenario": scenario, "baseline": baseline,
        "target_hash": stable_hash(asdict(t)),
        "simulated": None, "error": None, "within": False, "failure": None,
    }
    try:
        value = measure(t)
    except Exception as exc:  # a broken target or hook must not stop the report
        rec["failure"] = f"{type(exc).__name__}: {exc}"
        return rec
    rec["simulated"] = _finite(value)
    rec["error"] = _finite(t.error(value)) if rec["simulated"] is not None else None
    rec["within"] = bool(t.within(value))
    if rec["simulated"] is None:
        rec["failure"] = "the simulation gave no value (out of memory?)"
    return rec


def paper_figures(paper: PaperTargets, out: Path) -> tuple[list[str], str | None]:
    """The paper's figures hook: PNG paths relative to `out`, or the reason it failed."""
    if not paper.figures:
        return [], None
    folder = out / "figures" / paper.paper
    folder.mkdir(parents=True, exist_ok=True)
    try:
        paths = resolve_callable(paper.figures)(folder)
        return sorted(str(Path(p).resolve().relative_to(out.resolve())) for p in paths), None
    except Exception as exc:  # a missing or broken hook is reported, not fatal
        return [], f"{paper.figures}: {type(exc).__name__}: {exc}"


def paper_trace(paper: PaperTargets, out: Path) -> tuple[dict, str | None]:
    """One step of the paper's first target: a Chrome trace and a timeline PNG."""
    folder = out / "traces"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        result = paper.targets[0].scenario_obj().run()
        trace = folder / f"{paper.paper}.json"
        write_atomically(trace, result.to_chrome_trace)   # a kill leaves no half trace
        from simulator.trace import plot_timeline
        timeline = folder / f"{paper.paper}-timeline.png"
        write_atomically(timeline, lambda tmp: plot_timeline(
            result, tmp, title=f"{paper.paper}: {paper.targets[0].id}, one step"))
        return {"trace": str(trace.relative_to(out)), "timeline": str(timeline.relative_to(out)),
                "target": paper.targets[0].id}, None
    except Exception as exc:
        return {}, f"{type(exc).__name__}: {exc}"


def write_json_atomic(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(doc), indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)


def open_journal(out: Path, resume: bool) -> tuple[Journal, dict, dict]:
    """The folder's journal, locked (emptied unless resuming), and what it holds:
    {(paper, id, target_hash): record} and {paper: its figures and trace}."""
    journal = Journal(out / JOURNAL, JOURNAL_KIND, what="reproduce journal",
                      owner="reproduce run")
    journal.open(fresh=not resume)
    targets, papers = {}, {}
    for entry in journal.records:
        rec, artifacts = entry.get("record"), entry.get("artifacts")
        if entry.get("entry") == "target" and isinstance(rec, dict):
            targets[(rec.get("paper"), rec.get("id"), rec.get("target_hash"))] = rec
        elif (entry.get("entry") == "paper" and isinstance(entry.get("paper"), str)
              and isinstance(artifacts, dict)):
            papers[entry["paper"]] = artifacts
    return journal, targets, papers


def paper_artifacts(paper: PaperTargets, out: Path) -> dict:
    figures, figures_error = paper_figures(paper, out)
    trace, trace_error = paper_trace(paper, out)
    return {"figures": figures, "figures_error": figures_error, "trace": trace,
            "trace_error": trace_error}


def _artifacts_done(old: dict, out: Path, paper: str) -> bool:
    """Whether a journal's figures and trace of `paper` can be reused: all there, and each
    a file reproduce writes in this folder (report.own_file)."""
    trace, figures = old.get("trace"), old.get("figures")
    return (old.get("figures_error") is None and isinstance(trace, dict)
            and report.own_file(out, trace.get("trace"), "traces", ".json")
            and report.own_file(out, trace.get("timeline"), "traces", ".png")
            and isinstance(figures, list)
            and all(report.own_file(out, f, f"figures/{paper}", ".png") for f in figures))


def _run_jobs(jobs: list, workers: int, on_done) -> None:
    """jobs: (key, function, args). Results are handed to on_done(key, value) in this
    process, as each finishes, so that only this process writes the journal. Interrupted
    (SIGINT, SIGTERM, SIGHUP), the workers exit at once."""
    if workers <= 1 or len(jobs) <= 1:
        for key, fn, args in jobs:
            on_done(key, fn(*args))
        return
    from concurrent.futures import as_completed

    pool, pipe = process_pool(workers)
    try:
        futures = {pool.submit(fn, *args): key for key, fn, args in jobs}
        for fut in as_completed(futures):
            on_done(futures[fut], fut.result())
    except BaseException:
        stop_pool(pool, pipe)
        raise
    pool.shutdown()
    pipe.close()


def reproduce(out: str | Path = "report", only: list[str] | None = None,
              folder: str | Path | None = None, resume: bool = False,
              progress: bool = True, workers: int | None = None) -> dict:
    """Run the targets (those of `only`, default all) and write the report folder. Returns
    the results document (what results.json holds). workers: processes (default: one per
    CPU); papers' figures and targets run side by side, results are written here."""
    papers = load_all(only, folder=folder)
    workers = limits.workers_for(workers)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / JOURNAL).exists():
        # a folder of the user's: report.md, results.json, figures/ would replace theirs
        raise ConfigError(f"--out {str(out)!r} holds files and is not a reproduce report (no "
                          f"{JOURNAL}); nothing written: name an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    journal, done, previous_papers = open_journal(out, resume)
    with journal, stop_on_signals():
        return _reproduce(papers, out, journal, done, previous_papers, progress, workers)


def _reproduce(papers: list[PaperTargets], out: Path, journal: Journal, done: dict,
               previous_papers: dict, progress: bool, workers: int) -> dict:
    records: dict[tuple, dict] = {}
    infos: dict[str, dict] = {}
    artifact_jobs, target_jobs = [], []
    for paper in papers:
        infos[paper.paper] = {"title": paper.title, "source": paper.source,
                              "file": Path(paper.path).name, "figures": [],
                              "figures_error": None, "trace": {}, "trace_error": None}
        old = previous_papers.get(paper.paper, {})
        if old and _artifacts_done(old, out, paper.paper):
            infos[paper.paper].update({k: old[k] for k in ("figures", "figures_error",
                                                           "trace", "trace_error") if k in old})
        else:
            artifact_jobs.append((("paper", paper.paper), paper_artifacts, (paper, out)))
        for t in paper.targets:
            kept = done.get((t.paper, t.id, stable_hash(asdict(t))))
            if kept is not None:
                records[(t.paper, t.id)] = kept
            else:
                target_jobs.append((("target", t.paper, t.id), target_record, (t,)))

    def document() -> dict:
        # Always in the order of the target files, whatever order the jobs finish in.
        return {"papers": infos,
                "targets": [records[(t.paper, t.id)] for p in papers for t in p.targets
                            if (t.paper, t.id) in records]}

    from tqdm import tqdm
    total = sum(len(p.targets) + 1 for p in papers)
    with tqdm(total=total, initial=total - len(artifact_jobs) - len(target_jobs),
              disable=not progress, unit="step", desc="reproduce") as bar:
        def on_done(key: tuple, value: dict) -> None:
            value = jsonable(value)   # strict JSON: no NaN or infinity in journal or results
            if key[0] == "paper":
                infos[key[1]].update(value)
                journal.append({"entry": "paper", "paper": key[1], "artifacts": value})
            else:
                records[key[1:]] = value
                journal.append({"entry": "target", "record": value})
            write_json_atomic(out / RESULTS, document())
            bar.set_postfix_str("/".join(key[1:]))
            bar.update(1)

        write_json_atomic(out / RESULTS, document())
        # Figures first: they take longest, so the pool stays busy to the end.
        _run_jobs(artifact_jobs + target_jobs, workers, on_done)
    doc = document()
    report.write_reports(out, doc)
    return doc


CHECKED_STATUSES = ("solid", "bound")


def failing_checked(doc: dict) -> list[dict]:
    """Solid and bound targets outside their tolerance or bounds (or that could not be
    measured) and not known misses, and known misses that came within (a fix to record)."""
    return [r for r in doc["targets"] if r["status"] in CHECKED_STATUSES
            and (not r["within"]) != bool(r.get("known_miss"))]
