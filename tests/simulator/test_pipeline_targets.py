"""The published 2-GPU speedups of validation/targets/pipeline_stale.toml, within tolerance."""
from pathlib import Path

import pytest

from validation.reproduce import targets

FILE = Path(__file__).parents[2] / "validation" / "targets" / "pipeline_stale.toml"


@pytest.mark.parametrize("target", targets.load_file(FILE).targets, ids=lambda t: t.id)
def test_speedup_within_tolerance(target):
    value = targets.measure(target)
    assert target.within(value), (target.id, value, target.published)
