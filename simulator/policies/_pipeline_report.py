"""Reading a pipelined run back: steady-state period, fill and drain, staleness, memory."""
from __future__ import annotations

from statistics import median

from ._pipeline import ScheduleNames


def task_times(result) -> dict[str, tuple[float, float]]:
    log = result.log
    return {t.name: (s, e) for t, s, e in zip(log.tasks, log.start_s, log.end_s, strict=True)}


def completions(times, names: ScheduleNames, mbs: range) -> list[float]:
    """When each minibatch is done: the last partition to finish its backward and update."""
    return [max(times[names.done(p, "B", i)][1] for p in range(names.k)) for i in mbs]


def steady_period_s(done: list[float], k: int) -> float:
    """Median gap between consecutive completions once the pipe is full and before it drains
    (the paper's schedule drains faster: partitions without forward work left speed up)."""
    n = len(done)
    lo, hi = min(k, n - 2), max(min(k, n - 2) + 1, n - 2 * k)
    gaps = [done[i + 1] - done[i] for i in range(lo, hi)]
    return median(gaps) if gaps else done[-1] / n


def staleness(times, names: ScheduleNames, mbs: list[int],
              n: int) -> tuple[list[int], list[int]]:
    """Per partition, the most common (forward staleness, weight drift) over `mbs`.

    forward staleness: earlier minibatches whose update of this partition is not yet done when
    the forward of minibatch i starts (0 = the weights non-pipelined training would use).
    drift: updates of this partition applied between the forward and the backward of i (the
    backward then runs with newer weights than the forward, unless weights are stashed)."""
    fwd, drift = [], []
    for p in range(names.k):
        upd_end = {j: times[names.done(p, "B", j)][1] for j in range(n)}
        stale_p, drift_p = [], []
        for i in mbs:
            f0 = times[names.start(p, "F", i)][0]
            b0 = times[names.start(p, "B", i)][0]
            stale_p.append(sum(1 for j, e in upd_end.items() if j < i and e > f0))
            drift_p.append(sum(1 for j, e in upd_end.items() if j < i and f0 < e <= b0))
        fwd.append(max(set(stale_p), key=lambda v: (stale_p.count(v), v)))
        drift.append(max(set(drift_p), key=lambda v: (drift_p.count(v), v)))
    return fwd, drift


def in_flight(times, names: ScheduleNames, mbs: list[int]) -> list[int]:
    """Per partition, the most minibatches between forward start and backward end at once."""
    out = []
    for p in range(names.k):
        spans = [(times[names.start(p, "F", i)][0], times[names.done(p, "B", i)][1])
                 for i in mbs]
        best = 0
        for s, _ in spans:
            best = max(best, sum(1 for a, b in spans if a <= s < b))
        out.append(best)
    return out


def stage_compute_s(result, names: ScheduleNames, mb: int) -> list[float]:
    """Compute seconds of partition p on minibatch mb (forward + backward + update)."""
    tot = [0.0] * names.k
    for t, s, e in zip(result.log.tasks, result.log.start_s, result.log.end_s, strict=True):
        m = t.meta
        if t.category == "compute" and m.get("mb") == mb and "partition" in m:
            tot[m["partition"]] += e - s
    return tot


def memory_report(result, emitter, inflight: list[int], stashed: list[int]) -> dict:
    """Per device: what the peak holds, for the memory figures."""
    out = {}
    resident = emitter.resident()
    for p, dev in enumerate(emitter.devs):
        act = emitter.activation_bytes(p)
        out[dev.id] = {
            "partition": p,
            "peak_bytes": int(result.peak_memory_bytes.get(dev.id, 0)),
            "resident_bytes": int(resident[dev.id]),
            "activation_bytes_per_minibatch": int(act),
            "in_flight_minibatches": int(inflight[p]),
            "stashed_weight_versions": int(stashed[p]),
            "stash_bytes": int(stashed[p] * emitter.weight_bytes[p]),
            "estimate_bytes": int(resident[dev.id] + inflight[p] * act
                                  + stashed[p] * emitter.weight_bytes[p]),
        }
    return out
