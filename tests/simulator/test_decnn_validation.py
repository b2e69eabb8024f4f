"""DeCNN's published figures (validation/targets/decnn.toml) and its figure maker."""
from pathlib import Path

import pytest

from validation.reproduce.decnn import figures
from validation.reproduce.targets import load_file, measure

TARGETS = Path(__file__).resolve().parents[2] / "validation" / "targets" / "decnn.toml"


@pytest.mark.parametrize("target", load_file(TARGETS).targets, ids=lambda t: t.id)
def test_targets_within_tolerance(target):
    assert target.defaults, "unknown settings must be listed"
    value = measure(target)
    assert target.within(value), f"{target.id}: simulated {value:.3f}, " \
                                 f"published {target.published}"


def test_make_figures_writes_pngs(tmp_path):
    paths = figures.make_figures(tmp_path, devices=(1, 2), bandwidths_Bps=(117.5e6,))
    assert [p.name for p in paths] == ["decnn_speedup_vs_devices.png",
                                       "decnn_memory_per_device.png",
                                       "decnn_speedup_vs_bandwidth.png", "decnn_timeline.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_bandwidth_what_if_rejects_zero():
    from hwmodels.specs import HardwareError
    with pytest.raises(HardwareError, match="bandwidth_Bps must be > 0"):
        figures.link_what_if(0.0)
