"""cyclic_gc_paused: the collector is off inside the block and as it was after it, whatever
happens inside."""
from __future__ import annotations

import gc

import pytest

from simulator import engine
from simulator.tasks import TaskGraph, cyclic_gc_paused


@pytest.fixture
def gc_state():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("enabled_before", [True, False])
def test_paused_inside_and_restored_after(gc_state, enabled_before):
    (gc.enable if enabled_before else gc.disable)()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled() is enabled_before


def test_restored_after_an_error_inside(gc_state):
    gc.enable()
    with pytest.raises(ZeroDivisionError), cyclic_gc_paused():
        _ = 1 / 0
    assert gc.isenabled()


def test_an_engine_run_leaves_the_collector_as_it_found_it(gc_state):
    tg = TaskGraph("one")
    tg.new("a", "r", 1.0)
    for enabled_before in (True, False):
        (gc.enable if enabled_before else gc.disable)()
        assert engine.run(tg, {"r": 1}).ok
        assert gc.isenabled() is enabled_before
