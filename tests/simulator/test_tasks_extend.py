"""TaskGraph.extend adds a batch whole or not at all: with a duplicate, the error names the
first name of the batch that repeats one before it (in the graph or in the batch), and the
graph's names and positions are as they were, in the same order."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.tasks import SimulationError, Task, TaskGraph

NAMES = st.sampled_from([f"t{i}" for i in range(12)])


@settings(max_examples=200, deadline=None)
@given(st.lists(NAMES, unique=True, max_size=8), st.lists(NAMES, max_size=8))
def test_extend_is_all_or_nothing(present, batch):
    g = TaskGraph("g")
    for name in present:
        g.new(name, "r", 1.0)
    before_names, before_positions = g.names, list(g.positions.items())
    seen: set[str] = set(present)
    first_repeat = None
    for name in batch:
        if name in seen:
            first_repeat = name
            break
        seen.add(name)
    if first_repeat is None:
        g.extend([Task(n, ("r",), 1.0) for n in batch])
        assert g.names == present + batch
        assert list(g.positions.items()) == [(n, i) for i, n in enumerate(present + batch)]
    else:
        with pytest.raises(SimulationError, match=f"duplicate task '{first_repeat}'"):
            g.extend([Task(n, ("r",), 1.0) for n in batch])
        assert g.names == before_names
        assert list(g.positions.items()) == before_positions
        assert [t.name for t in g] == present
