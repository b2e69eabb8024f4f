"""The SparseTrain figures are drawn (PNG files) and the what-if trends hold."""
from __future__ import annotations

import pytest

from hwmodels import catalog
from validation.reproduce.sparsetrain import figures as figs
from validation.reproduce.sparsetrain import kernels, metrics
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


def test_kernel_curves_one_unit_gains_more_than_two():
    """VGG16's conv3_2 kernels: with one FMA unit the skipped FMAs are the bottleneck's work,
    so the speedup at 90% zeros is larger than with two, where the zero detection shows. At
    half zeros every kind gains 30% or more, backward by weights the least (the most of its
    dense time is spent beside the FMA loop)."""
    grid = (0.0, 0.5, 0.9)
    rows = kernels.kernel_rows(layers=(("vgg16", "features.12"),), grid=grid)
    at = {(r["fma_units"], r["kind"], r["sparsity"]): r["speedup"] for r in rows}
    for kind in kernels.KIND_SUFFIX:
        assert at[1, kind, 0.0] < 1.05 and at[1, kind, 0.9] > at[1, kind, 0.5] > 1.3
        assert at[2, kind, 0.9] < at[1, kind, 0.9]


def test_figures_run_the_targets_cpu_with_overrides_on_top():
    """The targets name skylake-x-6c's one FMA unit per core (the catalog part, the
    i7-7800X); the figures' helpers take the targets' options, and a what-if overrides them."""
    assert catalog.device("skylake-x-6c").fma_units_per_core == 1
    assert metrics.target_hardware_options() == {"fma_units_per_core": 1}
    assert metrics.target_hardware_options({"cores": 2}) == {"fma_units_per_core": 1, "cores": 2}
    assert metrics.target_hardware_options({"fma_units_per_core": 2}) == {
        "fma_units_per_core": 2}
    assert network_speedup("resnet50") == pytest.approx(
        network_speedup("resnet50", hardware_options={"fma_units_per_core": 1}), rel=1e-12)
