"""A sweep file and its points: the factorial product of scenario fields, each point a checked
scenario (simulator/sweep.py runs them).

    [base]                       # a scenario, as simulator/scenario.py
    workload = "resnet20"
    batch = 32
    hardware = "v100"
    policy = "data-parallel"
    link = "nvlink2"

    [axes]                       # field -> values; dotted names reach into the option tables
    devices = [1, 2, 4, 8]
    link = ["nvlink2", "eth10g"]
    "options.bucket_mb" = [10, 25]

    [[exclude]]                  # optional: points matching every field here are skipped
    devices = 1
    link = "eth10g"

Relative paths in the file ([base], [axes], [[exclude]]) are read from its folder
(simulator/scenario_paths.py).

Points are generated and checked as a stream: a sweep of a million points is checked once, in
constant memory but for the set of point hashes, before the first point runs.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import limits, policies
from .policies import ConfigError
from .scenario import Scenario, read_toml
from .scenario_paths import OPTION_TABLES, resolve_sweep_paths

SWEEP_FIELDS = ("base", "axes", "exclude")
SCENARIO_FIELDS = tuple(Scenario.__dataclass_fields__)


class SweepError(ConfigError):
    """A sweep file, results file or cluster address that cannot be used."""


def stable_hash(data: Any) -> str:
    """16 hex digits of SHA-256 over canonical JSON: same data, same hash, on any machine."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_axis_name(name: str, source: str) -> None:
    table, dot, key = name.partition(".")
    if dot:
        if table not in OPTION_TABLES or not key:
            raise SweepError(f"{source}: unknown field {name!r} in [axes]; dotted names must "
                             f"start with one of {', '.join(OPTION_TABLES)}")
        return
    if name not in SCENARIO_FIELDS:
        hint = difflib.get_close_matches(name, SCENARIO_FIELDS, n=1)
        also = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise SweepError(f"{source}: unknown field {name!r} in [axes]{also}")


def _set_field(scenario: dict, name: str, value: Any) -> None:
    table, dot, key = name.partition(".")
    if dot:
        scenario[table] = {**scenario.get(table, {}), key: value}
    else:
        scenario[name] = value


@dataclass
class Point:
    """One scenario of a sweep: the axis values that made it and its canonical scenario dict."""
    axes: dict
    scenario: dict
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or stable_hash(self.scenario)


@dataclass
class Sweep:
    base: dict
    axes: dict[str, list]
    exclude: list[dict] = field(default_factory=list)
    source: str = "sweep"
    n_points: int = 0     # set by check()

    @classmethod
    def load(cls, path: str | Path) -> "Sweep":
        data = read_toml(path, "sweep file", SweepError)
        try:
            data = resolve_sweep_paths(data, path)
        except ConfigError as exc:
            raise SweepError(str(exc)) from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "sweep") -> "Sweep":
        for key in data:
            if key not in SWEEP_FIELDS:
                raise SweepError(f"{source}: unknown table {key!r}; a sweep has "
                                 f"{', '.join(SWEEP_FIELDS)}")
        base = data.get("base")
        if not isinstance(base, dict):
            raise SweepError(f"{source}: missing table [base] (a scenario)")
        axes = data.get("axes", {})
        if not isinstance(axes, dict):
            raise SweepError(f"{source}: [axes] must be a table of field = [values]")
        for name, values in axes.items():
            _check_axis_name(name, source)
            if not isinstance(values, list):
                raise SweepError(f"{source}: axis {name!r} must be a list of values, "
                                 f"got {values!r}")
            if not values:
                raise SweepError(f"{source}: axis {name!r} is empty; give it at least one value")
        exclude = data.get("exclude", [])
        if not isinstance(exclude, list) or not all(isinstance(e, dict) for e in exclude):
            raise SweepError(f"{source}: [[exclude]] must be tables of field = value")
        for i, ex in enumerate(exclude):
            if not ex:   # matched by every point: the sweep would run nothing
                raise SweepError(f"{source}: exclude #{i + 1} names no field, so it would "
                                 "skip every point; give field = value pairs or remove it")
            for name in ex:
                if name not in axes:
                    raise SweepError(f"{source}: exclude #{i + 1} names {name!r}, which is not "
                                     f"an axis ({', '.join(axes) or 'none'})")
                wanted = [ex[name], *(ex[name] if isinstance(ex[name], list) else [])]
                if not any(w in axes[name] for w in wanted):  # a typo would exclude nothing
                    raise SweepError(f"{source}: exclude #{i + 1}: {name} = {ex[name]!r} "
                                     f"matches no value of axis {name!r} {axes[name]!r}")
        sweep = cls(dict(base), {k: list(v) for k, v in axes.items()}, list(exclude), source)
        limits.check_count("sweep points", math.prod(len(v) for v in sweep.axes.values()),
                           limits.MAX_SWEEP_POINTS, f"{source}: the product of the axes")
        sweep.check()  # every point checked now, before anything is run or written
        return sweep

    @property
    def key(self) -> str:
        return stable_hash({"base": self.base, "axes": self.axes, "exclude": self.exclude})

    def _excluded(self, values: dict) -> bool:
        for ex in self.exclude:
            if all(values[k] == v or (isinstance(v, list) and values[k] in v)
                   for k, v in ex.items()):
                return True
        return False

    def points(self) -> list[Point]:
        """The points in axis order (the last axis varies fastest), checked, excluded removed."""
        return list(self.iter_points(check=True))

    def check(self) -> int:
        """Check every point (streamed, nothing kept but their hashes); the number of points."""
        self.n_points = sum(1 for _ in self.iter_points(check=True))
        if not self.n_points:   # a results file of no points is not a result
            raise SweepError(f"{self.source}: the [[exclude]] tables skip every point of the "
                             "axes; nothing would run")
        return self.n_points

    def iter_points(self, check: bool = False) -> Iterator[Point]:
        """The points one by one. check=False skips the name lookups and option checks of each
        point, for a sweep already checked (Sweep.from_dict checks it)."""
        names = list(self.axes)
        option_axes = {n: n.split(".", 1)[1] for n in names if n.startswith("options.")}
        seen, applied = set(), set()
        for combo in itertools.product(*(self.axes[n] for n in names)):
            values = dict(zip(names, combo, strict=True))
            if self._excluded(values):
                continue
            data = copy.deepcopy(self.base)
            for name, value in values.items():
                if name not in option_axes:
                    _set_field(data, name, value)
            where = f"{self.source}: point {json.dumps(values, sort_keys=True, default=str)}"
            try:
                if data.get("policy") is None:
                    raise ConfigError(f"{where}: missing field 'policy' (in [base] or [axes])")
                policy = policies.get(str(data["policy"]))
                for name, value in values.items():
                    # A policy option applies to the points of the policies that have it, so
                    # one sweep holds a technique with its options and its baseline without.
                    if name in option_axes and option_axes[name] in policy.options:
                        _set_field(data, name, value)
                        applied.add(name)
                sc = (Scenario.from_dict(data, source=where) if check
                      else Scenario(**data))
            except ConfigError as exc:
                msg = str(exc)
                raise SweepError(msg if msg.startswith(where) else f"{where}: {msg}") from None
            point = Point(values, sc.to_dict())
            if point.key not in seen:  # two axis values naming the same scenario: run it once
                seen.add(point.key)
                yield point
        for name in option_axes:
            if name not in applied:
                pols = sorted({str(self.base.get("policy"))} | set(map(str, self.axes.get(
                    "policy", []))))
                raise SweepError(f"{self.source}: axis {name!r}: no policy of this sweep "
                                 f"({', '.join(pols)}) has option {option_axes[name]!r}")
