"""Engine invariants on random task graphs (Hypothesis)."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import engine
from simulator.tasks import Task, TaskGraph

EPS = 1e-9


@st.composite
def random_graphs(draw):
    n_res = draw(st.integers(1, 4))
    capacities = {f"r{i}": draw(st.integers(1, 3)) for i in range(n_res)}
    n = draw(st.integers(1, 30))
    tg = TaskGraph("random")
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        k = draw(st.integers(1, min(2, n_res)))
        res = tuple(sorted(draw(st.lists(st.sampled_from(sorted(capacities)), min_size=k,
                                         max_size=k, unique=True))))
        alloc = draw(st.integers(0, 50))
        tg.add(Task(f"t{i}", res, draw(st.floats(0, 5, allow_nan=False)),
                    tuple(f"t{d}" for d in deps), priority=draw(st.integers(-2, 2)),
                    alloc={"m": alloc}, free={"m": alloc} if draw(st.booleans()) else {}))
    return tg, capacities


def _intervals(log):
    return [(t, s, e) for t, s, e in zip(log.tasks, log.start_s, log.end_s)]


@settings(max_examples=150, deadline=None)
@given(random_graphs())
def test_dependencies_respected_and_everything_runs(case):
    tg, caps = case
    log = engine.run(tg, caps)
    assert log.ok
    end = {t.name: e for t, s, e in _intervals(log)}
    for t, s, e in _intervals(log):
        assert abs((e - s) - t.duration_s) < EPS
        for d in t.deps:
            assert s >= end[d] - EPS


@settings(max_examples=150, deadline=None)
@given(random_graphs())
def test_no_resource_exceeds_capacity(case):
    tg, caps = case
    log = engine.run(tg, caps)
    for r, cap in caps.items():
        events = []
        for t, s, e in _intervals(log):
            if r in t.resources and e > s:
                events += [(s, 1), (e, -1)]
        level = 0
        for _, delta in sorted(events, key=lambda x: (x[0], x[1])):  # ends before starts
            level += delta
            assert level <= cap


@settings(max_examples=100, deadline=None)
@given(random_graphs())
def test_busy_time_is_sum_of_durations(case):
    from simulator.results import Result
    tg, caps = case
    log = engine.run(tg, caps)
    res = Result("p", "w", 1, True, {}, {}, log, 1)
    busy = res.busy_s()
    for r in caps:
        expect = sum(t.duration_s for t in tg if r in t.resources)
        assert abs(busy[r] - expect) < 1e-6


@settings(max_examples=100, deadline=None)
@given(random_graphs())
def test_memory_accounting(case):
    tg, caps = case
    log = engine.run(tg, caps)
    points = log.memory_timeline["m"]
    assert all(b >= 0 for _, b in points)
    final = sum(t.alloc.get("m", 0) - t.free.get("m", 0) for t in tg)
    assert points[-1][1] == final
    assert log.peak_memory_bytes["m"] == max(b for _, b in points) or \
        log.peak_memory_bytes["m"] >= max(b for _, b in points)


@settings(max_examples=100, deadline=None)
@given(random_graphs())
def test_makespan_bounds(case):
    tg, caps = case
    log = engine.run(tg, caps)
    span = log.makespan_s
    assert span >= tg.critical_path_s() - EPS
    for r, cap in caps.items():
        load = sum(t.duration_s for t in tg if r in t.resources)
        assert span >= load / cap - EPS


@settings(max_examples=50, deadline=None)
@given(random_graphs())
def test_same_input_same_trace(case):
    tg, caps = case
    a = engine.run(tg, caps)
    b = engine.run(tg, caps)
    dump = lambda log: json.dumps([log.start_s, log.end_s, log.memory_timeline])  # noqa: E731
    assert dump(a) == dump(b)


@settings(max_examples=80, deadline=None)
@given(random_graphs(), st.integers(1, 60))
def test_memory_capacity_is_never_exceeded(case, capacity):
    tg, caps = case
    log = engine.run(tg, caps, {"m": capacity})
    assert all(b <= capacity for _, b in log.memory_timeline["m"])
    if not log.ok:
        assert log.oom is not None and log.oom.device == "m"
        assert log.oom.in_use_bytes + log.oom.requested_bytes > capacity
