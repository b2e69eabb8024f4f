"""Sweeps: the factorial product of scenario fields (a sweep file, simulator/sweep_points.py),
each point simulated and appended to a JSON-lines file as soon as it finishes.

The results file is a journal (simulator/journal.py): a header line naming the sweep by its
hash, then one complete line per point, identified by a hash of its scenario, each written by one
`os.write` and fsynced. Running the same sweep again skips the points already in the file; a torn
last line (the process was killed mid-write) is cut and kept in RESULTS.torn. A file that is not
this sweep's results file is refused and left untouched, and so is a file another sweep is
writing (a lock beside it).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import limits
from .journal import Journal, JournalError, dumps_line, parse
from .results import jsonable
from .scenario import Scenario
from .scenario_paths import OPTION_TABLES
from .sweep_points import Point, Sweep, SweepError, stable_hash
from .workers import process_pool, stop_on_signals, stop_pool

# what `from simulator.sweep import ...` gives: the sweep file's names with the runner's
__all__ = ["JOURNAL_KIND", "OPTION_TABLES", "Point", "Sweep", "SweepError", "open_results",
           "read_results", "run_point", "run_sweep", "stable_hash"]

DASK_CONNECT_TIMEOUT_S = 5  # an unreachable scheduler fails this fast
JOURNAL_KIND = "sweep results"


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
