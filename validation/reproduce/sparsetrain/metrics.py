"""SparseTrain figures from simulation: the target metric and the helpers the plots share.

`conv_speedup(target)` (the metric of validation/targets/sparsetrain.toml): the time of the
non-initial conv layers (forward + backward-by-input + backward-by-weights, each pass from the
start of its first work item to the end of its last, so load imbalance counts) under the
baseline scenario (dense-direct) over the same under the scenario (sparse-train).
"""
from __future__ import annotations

from functools import lru_cache

from simulator.api import simulate
from simulator.cluster import Cluster

NETWORKS = {  # network -> the sparsity profile the published figure used
    "vgg16": "authors", "resnet34": "authors", "resnet50": "authors",
    # the sheets have no Fixup rows: ResNet-50's, same ReLU structure (a default)
    "fixup_resnet50": "authors:resnet50",
}
PASSES = ("forward", "grad_input", "grad_weight")


def published_speedups() -> dict[str, float]:
    """network -> the paper's speedup, read from validation/targets/sparsetrain.toml."""
    from ..targets import load_all
    return {t.scenario["workload"]: t.published for t in load_all(["sparsetrain"])[0].targets}


@lru_cache(maxsize=1)
def _target_hardware_options() -> tuple[tuple[str, object], ...]:
    from ..targets import load_all
    found = {tuple(sorted(t.scenario.get("hardware_options", {}).items()))
             for t in load_all(["sparsetrain"])[0].targets}
    if len(found) != 1:
        raise ValueError("validation/targets/sparsetrain.toml: the targets simulate different "
                         f"hardware options {sorted(found)}; the figures need one")
    return found.pop()


def target_hardware_options(overrides: dict | None = None) -> dict:
    """The targets' hardware options (validation/targets/sparsetrain.toml: the FMA units per
    core), with `overrides` on top."""
    return {**dict(_target_hardware_options()), **(overrides or {})}


def conv_speedup(target) -> float:
    run, base = target.scenario_obj().run(), target.baseline_obj().run()
    return base.extras["conv_time_s"] / run.extras["conv_time_s"]


def _cluster(hardware: str, overrides: dict | None):
    from hwmodels import catalog
    spec = catalog.device(hardware)
    options = target_hardware_options(overrides)
    if options:
        spec = spec.with_options(**options)
    return Cluster.build(spec, 1, "pcie3")


def network_speedup(network: str, sparsity: str | None = None, epoch="mean", batch: int = 16,
                    hardware: str = "skylake-x-6c", hardware_options: dict | None = None,
                    training: bool = True, **options) -> float:
    """Non-initial conv layers: dense-direct time / sparse-train time, on the targets' hardware
    options with `hardware_options` on top."""
    cl = _cluster(hardware, hardware_options)
    sp = sparsity or NETWORKS.get(network, "authors")
    run = simulate(network, cl, "sparse-train", batch=batch, training=training,
                   sparsity=sp, epoch=epoch, **options)
    base = _dense_conv_time_s(network, batch, hardware,
                              tuple(sorted((hardware_options or {}).items())), training)
    return base / run.extras["conv_time_s"]


@lru_cache(maxsize=64)
def _dense_conv_time_s(network, batch, hardware, hardware_options, training) -> float:
    """The baseline does not depend on the sparsity: one run per network and CPU."""
    cl = _cluster(hardware, dict(hardware_options))
    return simulate(network, cl, "dense-direct", batch=batch,
                    training=training).extras["conv_time_s"]


def layer_speedups(network: str, sparsity: str | None = None, batch: int = 16,
                   hardware: str = "skylake-x-6c", hardware_options: dict | None = None
                   ) -> list[dict]:
    """Per non-initial conv pass: its streamed sparsity, kernel and simulated speedup."""
    cl = _cluster(hardware, hardware_options)
    sp = sparsity or NETWORKS.get(network, "authors")
    run = simulate(network, cl, "sparse-train", batch=batch, sparsity=sp)
    base = simulate(network, cl, "dense-direct", batch=batch)
    dense = {r["op"]: r["span_s"] for r in base.extras["conv_passes"]}
    return [{**r, "speedup": dense[r["op"]] / r["span_s"]}
            for r in run.extras["conv_passes"] if (r["layer"] or 0) > 1]
