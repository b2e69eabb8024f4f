"""The engine's dispatch rules on small graphs whose schedule is known by hand."""
from __future__ import annotations

from simulator import engine
from simulator.tasks import TaskGraph


def _starts(tg: TaskGraph, capacities: dict[str, int]) -> dict[str, float]:
    log = engine.run(tg, capacities)
    assert log.ok
    return {t.name: s for t, s in zip(log.tasks, log.start_s, strict=True)}


def _graph() -> TaskGraph:
    """h holds A until 1; i needs A and X (5 s); j needs X alone, behind i in X's queue."""
    tg = TaskGraph("rules")
    tg.new("h", "A", 1.0)
    tg.new("i", ("A", "X"), 5.0)
    tg.new("j", "X", 1.0)
    return tg


def test_a_queue_is_served_in_order_even_with_room():
    # X has room for both, but i heads X's queue and waits for A: j waits behind it
    assert _starts(_graph(), {"A": 1, "X": 2}) == {"h": 0.0, "i": 1.0, "j": 1.0}


def test_the_next_head_of_a_resource_starts_in_the_instant_its_head_does():
    # when i starts (from A's turn), j heads X, which still has a free slot: it starts at 1,
    # not when something next happens on X (i's end at 6)
    starts = _starts(_graph(), {"A": 1, "X": 2})
    assert starts["j"] == starts["i"] == 1.0


def test_with_one_slot_the_next_head_waits_for_it():
    assert _starts(_graph(), {"A": 1, "X": 1}) == {"h": 0.0, "i": 1.0, "j": 6.0}
