"""The resumable journal of a calibration: every replay round (and every timed step) is
appended to a partial file as it is done, so an interrupted run keeps what it measured and
resumes from it; the op records, the measured steps, the step overhead and the reference replay
are all read back from it. The file is a journal of simulator/journal.py (a header line,
fsynced lines, one writer at a time, a torn last line cut and kept), so a --partial path that
names some other file is refused and left as it is."""
from __future__ import annotations

import statistics
from typing import Any

from hwmodels.families import point_shape
from simulator.journal import Journal, read_records
from workloads.graph import Op, OpGraph
from workloads.training import lower_training

from .cases import REFERENCE_CASE, op_key
from .machine import measure_overhead, overhead_network


def records_of_replay(network: str, train: OpGraph, rounds: list[dict[str, float]]) -> list[dict]:
    """One record per distinct op of a replayed graph: its time in the median replay round
    (time_s; the mean over repeats of the same op in the network) and each op's own median over
    all rounds (median_s). Why the median round: the fastest of many rounds is faster than the
    fastest of the few steps a validation or a user's loop times (a 2-vCPU Xeon VM drifted by
    up to 10% during a 12-minute calibration: its fastest of 30 rounds was 8% under the fastest
    of 4-8 rounds timed half an hour apart, while the two medians agreed within 1%); a median
    does not depend on how many samples were taken. Why a whole round and not each op's own
    median: ops of one round ran at one machine speed, so the round's ops add up to a step."""
    middle = median_round(rounds)
    by_key: dict[str, tuple[Op, list[float], list[float]]] = {}
    for op in train.topo():
        if op.is_view:
            continue
        _, typical, every = by_key.setdefault(op_key(op), (op, [], []))
        typical.append(middle[op.name])
        every.extend(r[op.name] for r in rounds)
    return [{"key": key, "kind": op.kind, "flops": op.flops, "bytes": op.bytes_moved,
             "shape": point_shape(op), "time_s": statistics.fmean(typical),
             "median_s": statistics.median(every), "sources": [network]}
            for key, (op, typical, every) in sorted(by_key.items())]


def median_round(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The round whose total is the median (the lower of the middle two for an even count: a
    round that was measured, not an average of two)."""
    return sorted(rounds, key=lambda r: sum(r.values()))[(len(rounds) - 1) // 2]


JOURNAL_KIND = "calibration"


def read_partial(path) -> dict[str, dict]:
    """Measurements already taken (key -> record; the last of a key wins); a torn last line is
    left out. A missing file holds none; a file that is not a calibration journal is refused."""
    return {rec["key"]: rec for rec in read_records(path, JOURNAL_KIND, "calibration partial file")
            if isinstance(rec.get("key"), str)}


def open_partial(path) -> Journal:
    """The partial file opened for appending (locked, checked, a torn tail cut and kept)."""
    return Journal(path, JOURNAL_KIND, what="calibration partial file").open()


# A case's median is settled when the rounds on either side of it agree within this: on a
# shared VM a slow spell can last several rounds (steps and replays 10-40% slower), and a
# case whose middle rounds disagree is measured again, up to --max-rounds
SETTLE_TOLERANCE = 0.03


def measure_cases(cases: list[tuple[str, int]], partial_path, device: str = "cpu",
                  rounds: int = 5, progress: bool = True, steps_of=(),
                  module_steps=None, max_rounds: int | None = None,
                  settle: float = SETTLE_TOLERANCE) -> list[dict]:
    """Replay every (network, batch) `rounds` times, round-robin: one replay of each case per
    round, so that a slow spell of a shared machine (seconds to a minute long) hits one round
    of a case, not all of them. Then, up to `max_rounds`, more rounds of the cases whose
    median is not yet settled (is_settled). Each replay is appended to the partial file
    as it is done (resumable). Returns the records of all cases (records_of_replay), in case
    order.

    steps_of: cases whose real training steps are also timed, next to their replay in every
    round (read them back with measured_steps); the profile never uses them. Why here: steps
    timed by a later `dnnsim validate` may meet another spell of the machine than the ops.
    module_steps: {(name, batch): (forward OpGraph, callable returning step times)} of
    modules that are only timed, once per round (the held-out modules)."""
    from tqdm import tqdm

    from .calibration_nets import get
    from .replay import replay_times
    from .torch_exec import graph_step, measure, resolve_device
    trains = {c: lower_training(get(*c)) for c in cases}
    module_steps = dict(module_steps or {})
    everything: list[tuple[str, int]] = [*cases, *module_steps]
    prints: dict[tuple[str, int] | None, str] = {
        c: graph_fingerprint(t) for c, t in trains.items()}
    prints |= {c: graph_fingerprint(lower_training(g)) for c, (g, _) in module_steps.items()}
    journal = open_partial(partial_path)
    # a line of another version of a case's graph (an older dnnsim, a changed grid) is stale
    done = {rec["key"]: rec for rec in journal.records
            if isinstance(rec.get("key"), str) and rec.get("graph") == prints.get(
                _case_of(rec["key"]))}
    loops: dict = {}

    def measure_round(fh: Journal, r: int, case: tuple[str, int]) -> None:
        line: dict[str, Any] = {"key": round_id(*case, r), "graph": prints[case]}
        if case in module_steps:
            line["step_s"] = list(module_steps[case][1]())
        else:
            line["times"] = replay_times(trains[case], device, rounds=1)[0]
        if case in steps_of:   # one persistent training loop per case, a few steps a round
            if case not in loops:
                loops[case] = graph_step(get(*case), True, device)
            line["step_s"] = list(measure(loops[case], resolve_device(device), 1, 2).samples_s)
        fh.append(line)
        done[line["key"]] = line

    todo = [(r, c) for r in range(rounds) for c in everything if round_id(*c, r) not in done]
    with journal as fh:
        for r, case in tqdm(todo, desc="calibrate (replayed steps)", unit="step",
                            disable=not progress):
            measure_round(fh, r, case)
        for r in range(rounds, max_rounds or 0):
            unsettled = [c for c in everything
                         if not is_settled(case_rounds(done, c), settle)]
            if not unsettled:
                break
            for case in tqdm(unsettled, desc=f"calibrate (round {r + 1}, unsettled cases)",
                             unit="step", disable=not progress):
                if round_id(case[0], case[1], r) not in done:
                    measure_round(fh, r, case)
    return [rec for c in cases for rec in records_of_replay(
        c[0], trains[c], [rnd["times"] for rnd in case_rounds(done, c)])]


def is_settled(rounds: list[dict], settle: float = SETTLE_TOLERANCE) -> bool:
    """Whether a case's median replay (and median step, where steps are timed) is confirmed:
    another round came within `settle` of its median round."""
    series = [[sum(r["times"].values()) for r in rounds if "times" in r],
              [statistics.median(r["step_s"]) for r in rounds if r.get("step_s")]]
    return all(_median_confirmed(sorted(s), settle) for s in series if s or not rounds)


def _median_confirmed(ordered: list[float], settle: float) -> bool:
    if len(ordered) < 2:
        return False
    m = (len(ordered) - 1) // 2
    above = ordered[m + 1] <= ordered[m] * (1 + settle)
    below = m >= 1 and ordered[m - 1] * (1 + settle) >= ordered[m]
    return above or below


def case_rounds(done: dict[str, dict], case: tuple[str, int]) -> list[dict]:
    """A case's measured rounds, in round order."""
    prefix = f"{case[0]}@{case[1]}#"
    found = sorted((int(k[len(prefix):]), rec) for k, rec in done.items()
                   if k.startswith(prefix) and k[len(prefix):].isdigit())
    return [rec for _, rec in found]


def measured_steps(partial_path, cases) -> list[dict]:
    """The real training steps timed alongside the replays (the median sample, as
    records_of_replay counts ops), in the layout of the measured-steps CSV (steps_csv.py)."""
    done = read_partial(partial_path)
    out = []
    for name, batch in cases:
        samples = [s for rnd in case_rounds(done, (name, batch)) for s in rnd.get("step_s", [])]
        if samples:
            out.append({"network": name, "batch": batch, "mode": "train",
                        "measured_s": statistics.median(samples)})
    return out


def round_id(network: str, batch: int, round_index: int) -> str:
    return f"{network}@{batch}#{round_index}"


def _case_of(key: str) -> tuple[str, int] | None:
    try:
        name, rest = key.split("@", 1)
        return name, int(rest.split("#", 1)[0])
    except ValueError:
        return None


def graph_fingerprint(train: OpGraph) -> str:
    """A short hash of a training graph's timed ops (kind, shapes, attributes, in order)."""
    import hashlib
    keys = [f"{op.name}={op_key(op)}" for op in train.topo() if not op.is_view]
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


OVERHEAD_KEY = "step_overhead"   # the partial file's record of the measured step overhead


def overhead_from_partial(partial_path, device: str = "cpu", rounds: int = 15) -> float:
    """The step overhead recorded in the partial file, else measured now and recorded: a
    resumed run keeps the overhead of the run it resumes (measured again, minutes or days
    later, it moves every point of the profile; 2.0 against 4.1 us per op, once)."""
    fingerprint = graph_fingerprint(lower_training(overhead_network()))
    rec = read_partial(partial_path).get(OVERHEAD_KEY)
    if rec is not None and rec.get("graph") == fingerprint:
        return float(rec["overhead_s"])
    with open_partial(partial_path) as journal:   # locked before minutes of measuring
        overhead_s = measure_overhead(device, rounds)
        journal.append({"key": OVERHEAD_KEY, "graph": fingerprint, "overhead_s": overhead_s})
    return overhead_s


def reference_from_rounds(partial_path) -> float | None:
    """REFERENCE_CASE's median replay among calibration's rounds (None if not measured)."""
    sums = [sum(rnd["times"].values())
            for rnd in case_rounds(read_partial(partial_path), REFERENCE_CASE) if "times" in rnd]
    return statistics.median(sums) if sums else None
