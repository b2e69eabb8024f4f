"""Golden outputs: every validation target's simulated value and the JSON of a few
`dnnsim simulate --json` scenarios match tests/golden/reproduce_figures.json to a relative
1e-9. A change that moves them fails here until the file is rewritten on purpose with
tests/golden/update_golden.py --reason "...", committed with the change."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden  # noqa: E402

GOLDEN = golden.load()
TARGETS = golden.target_ids()
HOW = "if the change is meant, run tests/golden/update_golden.py --reason '...'"


def _target_params():
    for key in sorted(TARGETS):
        yield pytest.param(key, id=key, marks=[pytest.mark.slow] if golden.is_slow(key) else [])


def test_every_target_has_a_golden_figure_and_no_other():
    have, want = set(GOLDEN["targets"]), set(TARGETS)
    assert want - have == set(), f"targets without a golden figure: {sorted(want - have)}; {HOW}"
    assert have - want == set(), f"golden figures of targets that are gone: " \
                                 f"{sorted(have - want)}; {HOW}"


@pytest.mark.parametrize("key", list(_target_params()))
def test_target_figure_is_unchanged(key, simulated_target):
    if key not in GOLDEN["targets"]:
        pytest.fail(f"{key}: no golden figure; {HOW}")
    expected = GOLDEN["targets"][key]
    actual, _ = golden.measure_target(TARGETS[key], simulated_target)
    moved = golden.differences(expected, actual)
    assert not moved, f"{key} moved: {moved}; {HOW}"


@pytest.mark.parametrize("name", sorted(golden.SIMULATE_SCENARIOS))
def test_simulate_json_is_unchanged(name):
    entry = GOLDEN["simulate"].get(name)
    assert entry is not None, f"{name}: no golden output; {HOW}"
    assert entry["argv"] == golden.SIMULATE_SCENARIOS[name], f"{name}: arguments changed; {HOW}"
    moved = golden.differences(entry["json"], golden.simulate_json(entry["argv"]))
    assert not moved, f"dnnsim simulate {' '.join(entry['argv'])} --json moved: " \
                      f"{moved[:10]}; {HOW}"


def test_differences_sees_a_tiny_move_and_ignores_rounding():
    assert golden.differences({"a": 1.0}, {"a": 1.0 + 1e-12}) == []
    assert golden.differences({"a": 1.0}, {"a": 1.0 + 1e-6}) != []
    assert golden.differences({"a": [1, "x"]}, {"a": [1, "y"]}) != []
    assert golden.differences({"a": None}, {"a": None}) == []
    assert golden.differences({"a": 1}, {}) == ["/a: missing"]
