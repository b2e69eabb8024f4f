"""TaskGraph: insertion order, positions by name, and adding many tasks at once."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.tasks import SimulationError, Task, TaskGraph

NAMES = st.lists(st.text("abcxyz.0123", min_size=1, max_size=6), unique=True, max_size=30)


@given(NAMES, st.integers(0, 30))
def test_one_by_one_and_at_once_give_the_same_graph(names, split):
    one = TaskGraph("one")
    for n in names:
        one.new(n, "r", 1.0)
    many = TaskGraph("many")
    for n in names[:split]:
        many.new(n, "r", 1.0)
    many.extend([Task(n, ("r",), 1.0) for n in names[split:]])
    for g in (one, many):
        assert g.names == names == [t.name for t in g.tasks] == [t.name for t in g]
        assert dict(g.positions) == {n: i for i, n in enumerate(names)}
        assert all(g[n].name == n and n in g for n in names)
        assert len(g) == len(names)


@pytest.mark.parametrize("batch", [["c", "a"], ["c", "d", "c"]])
def test_extend_refuses_a_duplicate_by_name_and_adds_none(batch):
    g = TaskGraph("g")
    g.new("a", "r", 1.0)
    g.new("b", "r", 1.0)
    with pytest.raises(SimulationError, match=r"duplicate task '(a|c)'"):
        g.extend([Task(n, ("r",), 1.0) for n in batch])
    assert g.names == ["a", "b"] and dict(g.positions) == {"a": 0, "b": 1}


def test_tasks_named_with_one_resource_share_its_tuple():
    g = TaskGraph("g")
    a, b = g.new("a", "gpu0.compute", 1.0), g.new("b", "gpu0.compute", 2.0)
    assert a.resources == ("gpu0.compute",) and a.resources is b.resources
