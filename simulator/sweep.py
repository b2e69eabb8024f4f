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

The results file is append-only and crash-safe: each line is written by one `os.write` of a
complete line followed by fsync, and identifies its point by a hash of the point's scenario and
its sweep by a hash of the sweep. Running the same sweep again skips the points already in the
file; a torn last line (the process was killed mid-write) is dropped. A file written by another
sweep is refused rather than mixed.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from . import policies
from .policies import ConfigError
from .results import jsonable
from .scenario import Scenario, read_toml

SWEEP_FIELDS = ("base", "axes", "exclude")
OPTION_TABLES = ("options", "workload_options", "hardware_options")
SCENARIO_FIELDS = tuple(Scenario.__dataclass_fields__)
DASK_CONNECT_TIMEOUT_S = 5  # an unreachable scheduler fails this fast


class SweepError(ConfigError):
    """A sweep file, results file or cluster address that cannot be used."""



def process_pool(workers: int):
    """Worker processes forked from a clean server process. Not plain fork: forking a process
    that runs threads (a Dask client, a notebook kernel, a progress bar) can copy a held lock
    and hang the child. The server preloads the simulator, so workers start in milliseconds
    (spawn would import everything again in each). Where forkserver does not exist: spawn."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["simulator.sweep", "simulator.api"])
    else:
        ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)

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

    @classmethod
    def load(cls, path: str | Path) -> "Sweep":
        return cls.from_dict(read_toml(path, "sweep file", SweepError), source=str(path))

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
        sweep = cls(dict(base), {k: list(v) for k, v in axes.items()}, list(exclude), source)
        sweep.points()  # every point checked now, before anything is run or written
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
        names = list(self.axes)
        option_axes = {n: n.split(".", 1)[1] for n in names if n.startswith("options.")}
        out, seen, applied = [], set(), set()
        for combo in itertools.product(*(self.axes[n] for n in names)):
            values = dict(zip(names, combo))
            if self._excluded(values):
                continue
            data = copy.deepcopy(self.base)
            for name, value in values.items():
                if name not in option_axes:
                    _set_field(data, name, value)
            where = f"{self.source}: point {json.dumps(values, sort_keys=True)}"
            try:
                policy = policies.get(str(data.get("policy")))
                for name, value in values.items():
                    # A policy option applies to the points of the policies that have it, so
                    # one sweep holds a technique with its options and its baseline without.
                    if name in option_axes and option_axes[name] in policy.options:
                        _set_field(data, name, value)
                        applied.add(name)
                sc = Scenario.from_dict(data, source=where)
                policy.resolve(sc.options)
            except ConfigError as exc:
                msg = str(exc)
                raise SweepError(msg if msg.startswith(where) else f"{where}: {msg}") from None
            point = Point(values, sc.to_dict())
            if point.key not in seen:  # two axis values naming the same scenario: run it once
                seen.add(point.key)
                out.append(point)
        for name in option_axes:
            if name not in applied:
                pols = sorted({str(self.base.get("policy"))} | set(map(str, self.axes.get(
                    "policy", []))))
                raise SweepError(f"{self.source}: axis {name!r}: no policy of this sweep "
                                 f"({', '.join(pols)}) has option {option_axes[name]!r}")
        return out


# -- running one point ------------------------------------------------------------------------
def run_point(sweep_key: str, point: Point) -> str:
    """Simulate one point; its complete JSON line (newline included). Never raises for a
    point that cannot be simulated: the line says why, so the sweep goes on."""
    line = {"sweep": sweep_key, "point": point.key, "axes": point.axes,
            "scenario": point.scenario}
    try:
        result = Scenario.from_dict(point.scenario).run()
        summary = result.summary()
        line["status"] = summary.pop("status")
        line["summary"] = summary
    except ValueError as exc:
        line["status"] = "error"
        line["error"] = f"{type(exc).__name__}: {exc}"
    return json.dumps(jsonable(line), sort_keys=True, separators=(",", ":")) + "\n"


def run_chunk(sweep_key: str, points: list[Point]) -> list[str]:
    return [run_point(sweep_key, p) for p in points]


# -- the results file ---------------------------------------------------------------------------
def read_lines(path: str | Path) -> tuple[list[dict], bool]:
    """(complete records, whether a torn last line was found). Only the last line may be torn;
    a bad line elsewhere means the file is not a results file."""
    p = Path(path)
    if not p.exists():
        return [], False
    raw = p.read_bytes()
    lines = raw.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    records, torn = [], bool(tail)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines) - 1 and not tail:
                torn = True  # cannot happen with single writes, kept for safety
                continue
            raise SweepError(f"results file {str(p)!r}: line {i + 1} is not JSON") from None
        if not isinstance(rec, dict) or "point" not in rec or "sweep" not in rec:
            raise SweepError(f"results file {str(p)!r}: line {i + 1} is not a sweep result")
        records.append(rec)
    return records, torn


def _rewrite_without_torn_line(path: Path, records_bytes: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, records_bytes)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def prepare_results_file(path: str | Path, sweep_key: str) -> set[str]:
    """Check an existing results file belongs to this sweep; drop a torn last line; return the
    keys of the points it already holds."""
    p = Path(path)
    records, torn = read_lines(p)
    for i, rec in enumerate(records):
        if rec["sweep"] != sweep_key:
            raise SweepError(f"results file {str(p)!r} was written by another sweep (its hash "
                             f"{rec['sweep']}, this sweep {sweep_key}); give another --out or "
                             "remove the file")
    if torn:
        raw = p.read_bytes()
        _rewrite_without_torn_line(p, raw[:raw.rfind(b"\n") + 1])
    return {rec["point"] for rec in records}


class ResultsWriter:
    """Appends complete lines: one os.write each, then fsync, so a kill loses at most the line
    being written and never leaves half of one followed by another."""

    def __init__(self, path: str | Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, line: str) -> None:
        data = line.encode()
        if os.write(self.fd, data) != len(data):
            raise OSError("short write to the results file")
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class SweepRun:
    total: int
    skipped: int
    ran: int
    errors: int


def _chunks(points: list[Point], size: int) -> list[list[Point]]:
    return [points[i:i + size] for i in range(0, len(points), size)]


def _chunk_size(n_points: int, workers: int) -> int:
    # Small enough that results stream out and work stays balanced, large enough that the
    # per-task cost of the pool (pickling, queues) stays small next to simulating.
    return max(1, min(16, n_points // (workers * 8) or 1))


def run_sweep(sweep: Sweep, out: str | Path, workers: int | None = None,
              dask: Any = None, progress: bool = True) -> SweepRun:
    """Run the points not yet in `out`. workers: processes (1 = in this process; default: CPU
    count). dask: None, "local" (a LocalCluster on loopback), a scheduler address, or a
    dask.distributed Client."""
    if workers is not None and workers < 1:
        raise SweepError(f"--workers must be >= 1, got {workers}")
    key = sweep.key
    points = sweep.points()
    out = Path(out)
    done = prepare_results_file(out, key)
    todo = [p for p in points if p.key not in done]
    stats = SweepRun(total=len(points), skipped=len(points) - len(todo), ran=0, errors=0)
    from tqdm import tqdm
    bar = tqdm(total=len(points), initial=stats.skipped, disable=not progress, unit="point",
               desc="sweep")

    def take(lines: Iterable[str], writer: ResultsWriter) -> None:
        for line in lines:
            writer.write(line)
            stats.ran += 1
            stats.errors += '"status":"error"' in line
            bar.update(1)

    try:
        with ResultsWriter(out) as writer:
            if not todo:
                pass
            elif dask is not None:
                _run_on_dask(dask, key, todo, workers, lambda lines: take(lines, writer))
            elif (workers or os.cpu_count() or 1) == 1:
                for p in todo:
                    take([run_point(key, p)], writer)
            else:
                from concurrent.futures import as_completed
                n = workers or os.cpu_count() or 1
                with process_pool(n) as pool:
                    futures = [pool.submit(run_chunk, key, c)
                               for c in _chunks(todo, _chunk_size(len(todo), n))]
                    for fut in as_completed(futures):
                        take(fut.result(), writer)
    finally:
        bar.close()
    return stats


def _run_on_dask(target: Any, key: str, todo: list[Point], workers: int | None, take) -> None:
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
        chunks = _chunks(todo, _chunk_size(len(todo), n))
        futures = runner.map(run_chunk, [key] * len(chunks), chunks, pure=False)
        for fut in as_completed(futures):
            take(fut.result())
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
