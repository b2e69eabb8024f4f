"""DeCNN's figure maker (its targets are checked with every other target's, in
tests/validation/reproduce/test_target_values.py)."""
import pytest

from validation.reproduce.decnn import figures


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
