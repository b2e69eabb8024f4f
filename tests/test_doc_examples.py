"""The example files under docs/examples/ are what the docs say they are: each loads as the
sweep or scenario the page runs, and every point of a sweep is a valid scenario."""
from __future__ import annotations

from pathlib import Path

import pytest

from simulator.sweep import Sweep

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "docs" / "examples").glob("*.toml"))


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_sweep_loads_and_each_point_is_a_scenario(path):
    sweep = Sweep.load(path)
    points = sweep.points()
    assert points
    for point in points:
        assert point.scenario["workload"] and point.scenario["hardware"]
