"""GPUModel keeps each op's chosen algorithm (an op is costed several times per step): the kept
choice is the one a fresh model makes, and it follows the model's settings when they change."""
from __future__ import annotations

import dataclasses

from hwmodels import catalog
from hwmodels.gpu import GPUModel, builtin_families
from workloads import zoo
from workloads.training import lower_training


def conv_ops():
    graph = lower_training(zoo.get("resnet50", batch=16))
    return [op for op in graph if op.kind.startswith("conv2d") and not op.is_view]


def test_a_kept_choice_is_a_fresh_models_choice():
    model = GPUModel(catalog.device("v100"))
    ops = conv_ops()
    first = [model.chosen_option(op) for op in ops]
    again = [model.chosen_option(op) for op in ops]
    fresh = [GPUModel(catalog.device("v100")).chosen_option(op) for op in ops]
    assert first == again == fresh


def test_the_choice_follows_new_families():
    """Winograd made nearly free, then nearly useless: 3x3 convolutions change algorithm, on
    the model that kept the first choice as on a fresh one."""
    volta = builtin_families()["volta"]
    fast = {**builtin_families(), "volta": dataclasses.replace(volta, winograd=1.0,
                                                               winograd_fused=1.0,
                                                               conv_fwd=0.05)}
    slow = {**builtin_families(), "volta": dataclasses.replace(volta, winograd=0.05,
                                                               winograd_fused=0.05,
                                                               conv_fwd=1.0)}
    ops = conv_ops()
    model = GPUModel(catalog.device("v100"))
    chosen = {}
    for name, families in (("fast", fast), ("slow", slow)):
        model.families = families
        fresh = GPUModel(catalog.device("v100"))
        fresh.families = families
        chosen[name] = [model.chosen_option(op).algorithm for op in ops]
        assert chosen[name] == [fresh.chosen_option(op).algorithm for op in ops]
    assert chosen["fast"] != chosen["slow"]
    assert any(a.startswith("winograd") for a in chosen["fast"])
