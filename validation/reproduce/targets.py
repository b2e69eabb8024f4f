"""Published figures as targets, and how to measure the simulated value of each.

A target file (`validation/targets/<paper>.toml`):

    paper = "pipeline-stale"                  # short id, used by --only
    title = "Pipelined Training with Stale Weights in Deep CNNs"
    source = "ACISC 2021; arXiv 1912.12675"
    # optional: the plots for the report, a function of this package
    figures = "validation.reproduce.pipeline_stale.figures:make_figures"

    [[target]]
    id = "resnet56-2gpu"
    figure = "2 GPUs vs 1, ResNet-56, register after layer 19: speedup"
    published = 1.65
    tolerance = 0.10                          # relative (0.10 = within 10%)
    tolerance_kind = "relative"               # or "absolute" (e.g. 5 points of memory)
    status = "solid"                          # solid | bound (both checked) | qualitative
    known_miss = "why the model misses it"    # optional: an expected miss; --check and the
                                              # tests fail if it comes within tolerance
    fitted_to_it = "constant X in file Y"     # optional: a constant the figure checks was
                                              # fitted to it; the report says "fitted, not
                                              # predicted"
    metric = "speedup"                        # see METRICS, or "package.module:function"
    defaults = ["GPU: titan-x-pascal (the paper does not name it)"]
    [target.scenario]                         # the form `dnnsim simulate` accepts
    workload = "resnet56"
    ...
    [target.baseline]                         # for ratio metrics: fields that differ
    devices = 1
    policy = "sequential"

Metrics (simulated value):
  speedup           baseline iteration time / scenario iteration time, per sample
  memory_reduction  1 - scenario peak memory per device / baseline peak memory per device
  iteration_time_s  the scenario's iteration time
  throughput        the scenario's samples per second
  "mod:func"        func(target: Target) -> float, for figures that need a search or a sweep
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from simulator.policies import ConfigError
from simulator.scenario import Scenario, read_toml
from validation.paths import TARGETS

from .target_schema import check_target_file

STATUSES = ("solid", "bound", "qualitative")
TARGET_FIELDS = {"id", "figure", "published", "tolerance", "tolerance_kind", "status", "metric",
                 "defaults", "scenario", "baseline", "note", "lower", "upper", "known_miss",
                 "fitted_to_it"}
FILE_FIELDS = {"paper", "title", "source", "figures", "target"}


@dataclass
class Target:
    paper: str
    id: str
    figure: str
    published: float
    tolerance: float
    status: str
    metric: str
    scenario: dict
    baseline: dict = field(default_factory=dict)
    tolerance_kind: str = "relative"
    defaults: list = field(default_factory=list)
    note: str = ""
    lower: float | None = None     # for bounds: the simulated value should fall in [lower, upper]
    upper: float | None = None
    known_miss: str = ""           # why the model is known to miss it (empty: it should not)
    fitted_to_it: str = ""         # the constants fitted to this very figure (empty: none)

    def scenario_obj(self) -> Scenario:
        return Scenario.from_dict(dict(self.scenario), source=f"target {self.paper}/{self.id}")

    def baseline_obj(self) -> Scenario:
        merged = {**self.scenario, **self.baseline}
        if "options" in self.baseline:
            merged["options"] = dict(self.baseline["options"])
        return Scenario.from_dict(merged, source=f"target {self.paper}/{self.id} baseline")

    def error(self, simulated: float) -> float:
        if self.tolerance_kind == "absolute":
            return simulated - self.published
        return (simulated - self.published) / self.published

    def within(self, simulated: float) -> bool:
        if simulated != simulated:
            return False
        if self.status == "bound":
            lo = self.lower if self.lower is not None else float("-inf")
            hi = self.upper if self.upper is not None else float("inf")
            return lo <= simulated <= hi
        return abs(self.error(simulated)) <= self.tolerance + 1e-12


@dataclass
class PaperTargets:
    paper: str
    title: str
    source: str
    targets: list[Target]
    figures: str | None = None
    path: str = ""


def _check_fields(data: dict, allowed: set, where: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown field {key!r}")


def load_file(path: str | Path) -> PaperTargets:
    p = Path(path)
    data = read_toml(p, "target file")
    _check_fields(data, FILE_FIELDS, f"target file {p.name!r}")
    for key in ("paper", "title", "source", "target"):
        if key not in data:
            raise ConfigError(f"target file {p.name!r}: missing field {key!r}")
    check_target_file(data, p.name)
    targets = []
    for i, t in enumerate(data["target"]):
        where = f"target file {p.name!r}, target {t.get('id', i)!r}"
        _check_fields(t, TARGET_FIELDS, where)
        for key in ("id", "figure", "published", "tolerance", "status", "metric", "scenario"):
            if key not in t:
                raise ConfigError(f"{where}: missing field {key!r}")
        if t["status"] not in STATUSES:
            raise ConfigError(f"{where}: status must be one of {STATUSES}, got {t['status']!r}")
        targets.append(Target(paper=data["paper"], **t))
    return PaperTargets(data["paper"], data["title"], data["source"], targets,
                        data.get("figures"), str(p))


def target_files(folder: str | Path | None = None) -> list[Path]:
    """The target files of `folder` (default: validation/targets/ of this package)."""
    root = Path(folder) if folder is not None else TARGETS
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ConfigError(f"targets folder {str(root)!r} {what}")
    files = sorted(f for f in root.iterdir() if f.name.endswith(".toml"))
    if not files:   # nothing to reproduce is not a report of 0 of 0 targets met
        raise ConfigError(f"targets folder {str(root)!r} holds no target files (*.toml)")
    return files


def load_all(only: list[str] | None = None,
             folder: str | Path | None = None) -> list[PaperTargets]:
    papers = [load_file(f) for f in target_files(folder)]
    if only:
        known = {p.paper for p in papers}
        for name in only:
            if name not in known:
                raise ConfigError(f"unknown paper {name!r}; known: {', '.join(sorted(known))}")
        papers = [p for p in papers if p.paper in only]
    return papers


def resolve_callable(spec: str) -> Callable:
    """'package.module:function' from our own packages (never user input to eval)."""
    mod, sep, func = spec.partition(":")
    if not sep or not mod.startswith(("validation.", "simulator.")):
        raise ConfigError(f"{spec!r} must name a function as 'validation.module:function'")
    try:
        module = importlib.import_module(mod)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (mod == exc.name or mod.startswith(exc.name + ".")):
            raise   # the module exists; something it imports does not
        raise ConfigError(f"{spec!r}: no module {mod!r}") from None
    if not callable(getattr(module, func, None)):
        raise ConfigError(f"{spec!r}: module {mod!r} has no function {func!r}")
    return getattr(module, func)


def _ratio_results(t: Target):
    return t.scenario_obj().run(), t.baseline_obj().run()


def _per_sample_time(result) -> float:
    return 1.0 / result.throughput_samples_per_s


def _speedup(t: Target) -> float:
    run, base = _ratio_results(t)
    return _per_sample_time(base) / _per_sample_time(run)


def _memory_reduction(t: Target) -> float:
    run, base = t.scenario_obj().run(enforce_memory=False), t.baseline_obj().run(
        enforce_memory=False)
    def mean(r):
        return sum(r.peak_memory_bytes.values()) / len(r.peak_memory_bytes)
    return 1.0 - mean(run) / mean(base)


METRICS: dict[str, Callable[[Target], float]] = {
    "speedup": _speedup,
    "memory_reduction": _memory_reduction,
    "iteration_time_s": lambda t: t.scenario_obj().run().iteration_time_s,
    "throughput": lambda t: t.scenario_obj().run().throughput_samples_per_s,
}


def measure(t: Target) -> float:
    fn = METRICS.get(t.metric) or resolve_callable(t.metric)
    return float(fn(t))
