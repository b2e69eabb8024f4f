"""Every solid and bound target of validation/targets/ against its tolerance or bounds.

Each target is simulated once per test run (tests/conftest.py's `simulated_target`, shared with
the golden figures and the end-to-end reproduce test). A known miss (`known_miss` in its file)
is a strict expected failure carrying its reason: a change that brings it within its tolerance
fails here until the file says so. Qualitative targets are reported, not checked.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from validation.reproduce.targets import load_all

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "golden"))
import golden  # noqa: E402

CHECKED = ("solid", "bound")


def _params():
    for paper in load_all():
        for t in paper.targets:
            if t.status not in CHECKED:
                continue
            key = f"{t.paper}/{t.id}"
            marks = [pytest.mark.slow] if golden.is_slow(key) else []
            if t.known_miss:
                marks.append(pytest.mark.xfail(reason=t.known_miss, strict=True))
            yield pytest.param(t, id=key, marks=marks)


@pytest.mark.parametrize("target", list(_params()))
def test_target_within_its_tolerance_or_bounds(target, simulated_target):
    value = simulated_target(target)
    if target.status == "bound":
        where = f"bounds [{target.lower}, {target.upper}]"
    else:
        where = f"{target.published} within {target.tolerance} ({target.tolerance_kind})"
    assert target.within(value), f"{target.paper}/{target.id}: simulated {value:.4g}, {where}"


def test_every_target_lists_its_unknown_settings():
    missing = [f"{t.paper}/{t.id}" for p in load_all() for t in p.targets if not t.defaults]
    assert missing == [], "targets must list the settings the paper does not give"


def test_both_kinds_of_checked_target_are_present():
    statuses = {t.status for p in load_all() for t in p.targets}
    assert set(CHECKED) <= statuses
