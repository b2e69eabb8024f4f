"""DeCNN's figure maker (its targets are checked with every other target's, in
tests/validation/reproduce/test_target_values.py)."""
import pytest

from validation.reproduce.decnn import figures


def test_make_figures_writes_pngs(tmp_path):
    paths = figures.make_figures(tmp_path, devices=(1, 2), bandwidths_Bps=(117.5e6,))
    assert [p.name for p in paths] == ["decnn_speedup_vs_devices.png",
                                       "decnn_memory_per_device.png",
                                       "decnn_speedup_vs_bandwidth.png",
                                       "decnn_accuracy_vs_speedup.png", "decnn_timeline.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_bandwidth_what_if_rejects_zero():
    from hwmodels.specs import HardwareError
    with pytest.raises(HardwareError, match="bandwidth_Bps must be > 0"):
        figures.link_what_if(0.0)


def test_published_figures_come_from_the_targets_file():
    paper = figures.published()
    assert set(paper) == {"resnet50-4arm-speedup", "resnet50-4arm-memory"}
    top1 = figures.authors_top1()
    assert {(r["network"], r["width"]) for r in top1} >= {("decnn_resnet50", "1.5")}
