"""Sweeps: the factorial product of scenario fields, each point simulated and appended to a
JSON-lines file as soon as it finishes.

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

The results file is a journal (simulator/journal.py): a header line naming the sweep by its
hash, then one complete line per point, identified by a hash of its scenario, each written by one
`os.write` and fsynced. Running the same sweep again skips the points already in the file; a torn
last line (the process was killed mid-write) is cut and kept in RESULTS.torn. A file that is not
this sweep's results file is refused and left untouched, and so is a file another sweep is
writing (a lock beside it).

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
from .journal import Journal, JournalError, dumps_line, parse
from .policies import ConfigError
from .results import jsonable
from .scenario import Scenario, read_toml
from .scenario_paths import OPTION_TABLES, resolve_sweep_paths
from .workers import process_pool, stop_on_signals, stop_pool

SWEEP_FIELDS = ("base", "axes", "exclude")
SCENARIO_FIELDS = tuple(Scenario.__dataclass_fields__)
DASK_CONNECT_TIMEOUT_S = 5  # an unreachable scheduler fails this fast
JOURNAL_KIND = "sweep results"


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


def _get_field(scenario: dict, name: str) -> Any:
    table, dot, key = name.partition(".")
    if dot:
        return scenario.get(table, {}).get(key)
    return scenario.get(name)


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


# -- running one point ------------------------------------------------------------------------
def run_point(sweep_key: str, point: Point) -> bytes:
    """Simulate one point; its complete JSON line (newline included). Never raises for a
    point that cannot be simulated: the line says why, so the sweep goes on."""
    line = {"sweep": sweep_key, "point": point.key, "axes": point.axes,
            "scenario": point.scenario}
    try:
        result = Scenario.from_dict(point.scenario).run()
        summary = result.summary()
        line["status"] = summary.pop("status")
        if "error" in summary:
            line["error"] = summary.pop("error")
        line["summary"] = summary
    except (ValueError, ArithmeticError, MemoryError, RecursionError) as exc:
        line["status"] = "error"
        line["error"] = f"{type(exc).__name__}: {exc}"
    return dumps_line(jsonable(line))


def run_chunk(sweep_key: str, points: list[Point]) -> list[bytes]:
    return [run_point(sweep_key, p) for p in points]


# -- the results file ---------------------------------------------------------------------------
RECORD_TYPES = {"sweep": str, "point": str, "axes": dict, "scenario": dict, "status": str}


def read_results(path: str | Path) -> tuple[dict, list[dict]]:
    """(header, records) of a results file, read without changing it; a torn last line is left
    out. Every record is checked to be a sweep result, so a reader can trust its fields."""
    try:
        contents = parse(path, JOURNAL_KIND, "results file")
    except JournalError as exc:
        raise SweepError(str(exc)) from None
    if contents.header is None:
        raise SweepError(f"results file {str(path)!r} holds no results (it is empty or missing)")
    for i, rec in enumerate(contents.records):
        for key, want in RECORD_TYPES.items():
            if not isinstance(rec.get(key), want):
                raise SweepError(f"results file {str(path)!r}: result {i + 1} has no valid "
                                 f"{key!r} (a {want.__name__})")
        if not isinstance(rec.get("summary", {}), dict):
            raise SweepError(f"results file {str(path)!r}: result {i + 1}: 'summary' must be "
                             "a table")
    return contents.header, contents.records


def open_results(path: str | Path, sweep_key: str) -> Journal:
    """The results file opened for appending (locked, checked to be this sweep's, a torn last
    line cut and kept); its .records are the points already done."""
    journal = Journal(path, JOURNAL_KIND, identity=sweep_key, what="results file",
                      owner="sweep")
    try:
        journal.open()
    except JournalError as exc:
        raise SweepError(str(exc)) from None
    return journal


@dataclass
class SweepRun:
    total: int
    skipped: int
    ran: int
    errors: int
    out_of_memory: int = 0


def _batched(items: Iterator[Point], size: int) -> Iterator[list[Point]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def _chunk_size(n_points: int, workers: int) -> int:
    # Small enough that results stream out and work stays balanced, large enough that the
    # per-task cost of the pool (pickling, queues) stays small next to simulating.
    return max(1, min(16, n_points // (workers * 8) or 1))


def run_sweep(sweep: Sweep, out: str | Path, workers: int | None = None,
              dask: Any = None, progress: bool = True) -> SweepRun:
    """Run the points not yet in `out`. workers: processes (1 = in this process; default: the
    CPUs this process may use, and never more). dask: None, "local" (a LocalCluster on
    loopback), a scheduler address, or a dask.distributed Client."""
    if workers is not None:
        limits.check_workers(workers)
    key = sweep.key
    with open_results(out, key) as journal:
        done = {rec.get("point") for rec in journal.records}
        total = sweep.n_points or sweep.check()
        # every line of this sweep's file is one of its points, each once
        skipped = min(len(done), total)
        todo = (p for p in sweep.iter_points() if p.key not in done)
        todo_count = total - skipped
        stats = SweepRun(total=total, skipped=skipped, ran=0, errors=0)
        from tqdm import tqdm
        bar = tqdm(total=total, initial=stats.skipped, disable=not progress, unit="point",
                   desc="sweep")

        def take(lines) -> None:
            for line in lines:
                journal.append_line(line)
                stats.ran += 1
                stats.errors += b'"status":"error"' in line
                stats.out_of_memory += b'"status":"out_of_memory"' in line
                bar.update(1)

        try:
            with stop_on_signals():
                n = 1 if dask is not None else limits.workers_for(workers)
                if not todo_count:
                    pass
                elif dask is not None:
                    _run_on_dask(dask, key, todo, todo_count, workers, take)
                elif n == 1:
                    for p in todo:
                        take([run_point(key, p)])
                else:
                    _run_on_pool(key, todo, todo_count, n, take)
        finally:
            bar.close()
    return stats


def _run_on_pool(key: str, todo: Iterator[Point], count: int, workers: int, take) -> None:
    """Chunks on worker processes, a bounded number in flight (memory stays constant however
    many points); lines come back here to be written. Interrupted, the workers exit at once."""
    from concurrent.futures import FIRST_COMPLETED, wait
    pool, pipe = process_pool(workers)
    chunks = _batched(todo, _chunk_size(count, workers))
    in_flight: set = set()
    try:
        while True:
            while len(in_flight) < 4 * workers and (chunk := next(chunks, None)) is not None:
                in_flight.add(pool.submit(run_chunk, key, chunk))
            if not in_flight:
                break
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in finished:
                take(fut.result())
    except BaseException:
        stop_pool(pool, pipe)
        raise
    pool.shutdown()
    pipe.close()


def _run_on_dask(target: Any, key: str, todo: Iterator[Point], count: int,
                 workers: int | None, take) -> None:
    """Run the chunks on a Dask distributed cluster; lines come back here to be written, so the
    results file lives on this machine whatever the workers are."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise SweepError("--dask needs dask.distributed (pip install 'dnnsim[dask]')") from None
    cluster = client = None
    try:
        if isinstance(target, str) and target == "local":
            cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1,
                                   host="127.0.0.1", dashboard_address=None)
            client = Client(cluster)
        elif isinstance(target, str):
            try:
                client = Client(target, timeout=f"{DASK_CONNECT_TIMEOUT_S}s")
            except Exception as exc:  # OSError, TimeoutError, ValueError for a bad address
                raise SweepError(f"--dask: cannot reach a Dask scheduler at {target!r} "
                                 f"({type(exc).__name__}: {exc})") from None
        n = max(1, sum((client or target).nthreads().values()))
        runner = client or target
        chunks = list(_batched(todo, _chunk_size(count, n)))
        futures = runner.map(run_chunk, [key] * len(chunks), chunks, pure=False)
        for fut in as_completed(futures):
            take(fut.result())
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
