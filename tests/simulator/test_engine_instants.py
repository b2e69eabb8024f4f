"""Tasks that end at one instant: what starts then is decided after all of them end, whatever
their order in the graph; a zero-duration task started at an instant ends at that instant;
an exact change of the time unit moves every start and end by exactly that factor."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import engine
from simulator.tasks import Task, TaskGraph


def _starts(tg: TaskGraph, capacities: dict[str, int]) -> dict[str, float]:
    log = engine.run(tg, capacities)
    assert log.ok
    return {t.name: s for t, s in zip(log.tasks, log.start_s, strict=True)}


def _two_waiting_for_one_resource(x_first: bool) -> TaskGraph:
    """x and y end together at 2 s; a (after x, priority 1) and b (after y, priority 0) then
    want R, which holds one task."""
    tg = TaskGraph("same instant")
    for name in ("x", "y") if x_first else ("y", "x"):
        tg.new(name, f"{name}.stream", 2.0)
    tg.new("a", "R", 1.0, deps=["x"], priority=1)
    tg.new("b", "R", 1.0, deps=["y"], priority=0)
    return tg


def test_priority_decides_between_tasks_readied_at_one_instant_in_either_order():
    for x_first in (True, False):
        starts = _starts(_two_waiting_for_one_resource(x_first),
                         {"x.stream": 1, "y.stream": 1, "R": 1})
        assert starts["b"] == 2.0 and starts["a"] == 3.0, x_first


def test_lockstep_tasks_all_end_at_their_common_instant():
    tg = TaskGraph("lockstep")
    for k in range(64):
        tg.new(f"w{k}", f"s{k}", 0.25)
        tg.new(f"after{k}", f"s{k}", 0.5, deps=[f"w{k}"])
    log = engine.run(tg, {f"s{k}": 1 for k in range(64)})
    ends = dict(zip((t.name for t in log.tasks), log.end_s, strict=True))
    assert {ends[f"w{k}"] for k in range(64)} == {0.25}
    assert {ends[f"after{k}"] for k in range(64)} == {0.75}


def test_a_chain_of_zero_duration_tasks_runs_within_the_instant_it_is_readied():
    tg = TaskGraph("zero")
    tg.new("a", "A", 1.5)
    tg.new("z0", "Z", 0.0, deps=["a"])
    tg.new("z1", "Z", 0.0, deps=["z0"])
    tg.new("b", "A", 1.0, deps=["z1"])
    log = engine.run(tg, {"A": 1, "Z": 1})
    assert log.start_s == [0.0, 1.5, 1.5, 1.5]
    assert log.end_s == [1.5, 1.5, 1.5, 2.5]


@st.composite
def graphs(draw):
    n_res = draw(st.integers(1, 4))
    capacities = {f"r{i}": draw(st.integers(1, 2)) for i in range(n_res)}
    tasks = []
    for i in range(draw(st.integers(1, 30))):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        res = tuple(draw(st.lists(st.sampled_from(sorted(capacities)), min_size=1,
                                  max_size=min(2, n_res), unique=True)))
        # few distinct durations, zero among them: many tasks end at one instant
        tasks.append((f"t{i}", res, draw(st.sampled_from([0.0, 0.1, 0.25, 0.3, 1.0])),
                      tuple(f"t{d}" for d in deps), draw(st.integers(-1, 1))))
    return tasks, capacities


def _build(tasks, scale: float) -> TaskGraph:
    tg = TaskGraph("scaled")
    for name, res, duration_s, deps, priority in tasks:
        tg.add(Task(name, res, duration_s * scale, deps, priority=priority))
    return tg


@settings(max_examples=120, deadline=None)
@given(graphs(), st.sampled_from([0.5, 2.0, 1024.0]))
def test_times_scale_exactly_with_a_power_of_two_unit(case, scale):
    # multiplying by a power of two is exact in floating point, so the instants that were
    # equal stay equal and the order of every event is kept: each time scales exactly
    tasks, capacities = case
    base = engine.run(_build(tasks, 1.0), capacities)
    scaled = engine.run(_build(tasks, scale), capacities)
    assert scaled.start_s == [s * scale for s in base.start_s]
    assert scaled.end_s == [e * scale for e in base.end_s]
