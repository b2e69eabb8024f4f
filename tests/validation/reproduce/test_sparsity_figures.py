"""The SparseTrain figures are drawn (PNG files) and the what-if trends hold."""
from __future__ import annotations

import pytest

from hwmodels import catalog
from validation.reproduce.sparsetrain import figures as figs
from validation.reproduce.sparsetrain import metrics
from validation.reproduce.sparsetrain.metrics import network_speedup


def test_per_layer_figure_is_written(tmp_path):
    # make_figures draws this and two sweeps (~25 s); the per-layer one exercises the same code
    p = figs.per_layer(tmp_path)
    assert p.suffix == ".png" and p.stat().st_size > 10_000
    assert callable(figs.make_figures)


def test_what_if_trends():
    two = network_speedup("vgg16", hardware_options={"fma_units_per_core": 2})
    one = network_speedup("vgg16", hardware_options={"fma_units_per_core": 1})
    assert one > two > 1.5
    first, mean = network_speedup("vgg16", epoch="first"), network_speedup("vgg16")
    assert first < mean  # sparsity starts near 0.5 and settles higher


def test_synthetic_figure_and_its_trend(tmp_path):
    p = figs.synthetic(tmp_path)
    assert p.suffix == ".png" and p.stat().st_size > 10_000
    grid = [0.0, 0.5, 0.9]
    one = figs.synthetic_layer_speedups("vgg16", 256, 256, 3, 1, grid)
    two = figs.synthetic_layer_speedups("vgg16", 256, 256, 3, 2, grid)
    for p_ in ("forward", "grad_input", "grad_weight"):
        assert one[p_][0] < 1.05 and one[p_][2] > one[p_][1] > 1.5
        assert two[p_][2] < one[p_][2]


def test_figures_run_the_targets_cpu_with_overrides_on_top():
    """The targets run skylake-x-6c with two FMA units (the catalog part, the i7-7800X, has
    one); the figures' helpers take the targets' options, and a what-if overrides them."""
    assert catalog.device("skylake-x-6c").fma_units_per_core == 1
    assert metrics.target_hardware_options() == {"fma_units_per_core": 2}
    assert metrics.target_hardware_options({"cores": 2}) == {"fma_units_per_core": 2, "cores": 2}
    assert metrics.target_hardware_options({"fma_units_per_core": 1}) == {
        "fma_units_per_core": 1}
    assert network_speedup("resnet50") == pytest.approx(
        network_speedup("resnet50", hardware_options={"fma_units_per_core": 2}), rel=1e-12)
