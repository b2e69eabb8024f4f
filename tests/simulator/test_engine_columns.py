"""How the engine reads a graph and orders many heads: each task's successors in insertion
order (one sort of the dependency pairs), heads of more than two changed resources served by
(priority, insertion index) whatever the resources' names, every end at its start plus its
duration, memory effects on one device read into columns, and the memory timeline listed from
each device's map of instants."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import engine, engine_reading
from simulator.tasks import TaskGraph


@st.composite
def _dependencies(draw) -> list[list[int]]:
    """Each task's dependencies, earlier tasks only, possibly repeated."""
    n = draw(st.integers(1, 30))
    return [draw(st.lists(st.integers(0, i - 1), max_size=4)) if i else [] for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(_dependencies())
def test_successors_are_each_tasks_dependents_in_insertion_order(deps):
    parents = [j for d in deps for j in d]
    expected: list[list[int]] = [[] for _ in deps]
    for i, d in enumerate(deps):
        for j in d:
            expected[j].append(i)
    got = engine_reading.successors(parents, [len(d) for d in deps])
    assert [list(s) for s in got] == expected


def _memory_race(priorities: list[int]) -> TaskGraph:
    """Three tasks ready at 0 s on resources named in the reverse of their insertion order,
    each taking 6 of device d's 10 bytes: one fits at a time."""
    tg = TaskGraph("race")
    for k, p in enumerate(priorities):
        tg.new(f"t{k}", f"r{len(priorities) - k}", 1.0, priority=p, alloc={"d": 6},
               free={"d": 6})
    return tg


def test_three_changed_resources_serve_their_heads_by_priority_then_insertion():
    for priorities, order in (([0, 0, 0], ["t0", "t1", "t2"]), ([2, 1, 0], ["t2", "t1", "t0"]),
                              ([1, 0, 1], ["t1", "t0", "t2"])):
        log = engine.run(_memory_race(priorities), {"r1": 1, "r2": 1, "r3": 1}, {"d": 10})
        assert log.ok
        starts = {t.name: s for t, s in zip(log.tasks, log.start_s, strict=True)}
        assert sorted(starts, key=starts.__getitem__) == order, priorities
        assert sorted(starts.values()) == [0.0, 1.0, 2.0]


@settings(max_examples=100, deadline=None)
@given(_dependencies(), st.lists(st.floats(0, 10, allow_subnormal=False), min_size=30,
                                 max_size=30))
def test_every_task_ends_at_its_start_plus_its_duration(deps, durations):
    tg = TaskGraph("ends")
    for i, d in enumerate(deps):
        tg.new(f"t{i}", f"r{i % 3}", durations[i], deps=[f"t{j}" for j in d])
    log = engine.run(tg, {"r0": 1, "r1": 2, "r2": 1})
    assert log.ok and log.completed == len(deps)
    assert log.end_s == [s + d for s, d in zip(log.start_s, durations[:len(deps)], strict=True)]


def test_tasks_never_started_have_no_end():
    tg = TaskGraph("stuck")
    tg.new("big", "r", 1.0, alloc={"d": 20})
    tg.new("after", "r", 1.0, deps=["big"])
    log = engine.run(tg, {"r": 1}, {"d": 10})
    assert log.oom is not None and log.completed == 0
    assert all(e != e for e in log.end_s)   # NaN


def test_memory_effects_on_one_device_are_read_into_columns_and_others_left_to_the_maps():
    tg = TaskGraph("effects")
    tg.new("one", "r", 1.0, alloc={"d": 5}, free={"d": 2})
    tg.new("two", "r", 1.0, alloc={"d": 1, "e": 2}, free={"d": 1, "e": 2})
    tg.new("pair", ("r", "s"), 1.0, alloc={"e": 3})   # two queues: r and s are held apart
    tg.new("none", "s", 1.0)
    capacities = {"r": 1, "s": 1}
    cols = engine_reading.Columns(tg, capacities)
    assert cols.take_on == ["d", "", "", ""] and cols.take_bytes == [5, 0, 0, 0]
    assert cols.give_on == ["d", None, "", ""] and cols.give_bytes == [2, 0, 0, 0]
    assert cols.plain == [False, False, False, True] and cols.devices == {"d", "e"}
    general = engine_reading.Columns(tg, capacities, every_resource=True)
    assert general.take_on == [""] * 4 and general.give_on == [None, None, "", ""]
    assert general.devices == {"d", "e"}


def test_the_memory_timeline_lists_each_devices_instants_in_time_order():
    tg = TaskGraph("timeline")
    tg.new("a", "r", 1.0, alloc={"d": 4}, free={"d": 4})
    tg.new("b", "r", 2.0, deps=["a"], alloc={"d": 6}, free={"d": 6})
    log = engine.run(tg, {"r": 1}, {"d": 10}, memory_baseline_bytes={"d": 1})
    # at 1 s a frees 4 and b takes 6: the later write at that instant stands
    assert log.memory_timeline == {"d": [(0.0, 5), (1.0, 7), (3.0, 1)]}
    assert log.memory_by_instant == {"d": {0.0: 5, 1.0: 7, 3.0: 1}}
    assert log.memory_timeline is log.memory_timeline   # listed once
