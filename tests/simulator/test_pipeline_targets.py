"""The published 2-GPU speedups of validation/targets/pipeline_stale.toml, within tolerance."""
from pathlib import Path

import pytest

from validation.reproduce import targets

FILE = Path(__file__).parents[2] / "validation" / "targets" / "pipeline_stale.toml"


def _marked(t):
    """A known miss is an expected failure (strict: a change that fixes it shows)."""
    marks = [pytest.mark.xfail(reason=t.known_miss, strict=True)] if t.known_miss else []
    return pytest.param(t, id=t.id, marks=marks)


@pytest.mark.parametrize("target", [_marked(t) for t in targets.load_file(FILE).targets])
def test_speedup_within_tolerance(target):
    value = targets.measure(target)
    assert target.within(value), (target.id, value, target.published)
