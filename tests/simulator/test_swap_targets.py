"""The swap target file loads and names hooks that exist; the figures hook is importable."""
from __future__ import annotations

from pathlib import Path

from validation.reproduce.targets import load_file, resolve_callable

TARGETS = Path(__file__).resolve().parents[2] / "validation" / "targets" / "swap.toml"


def test_swap_targets_load_and_hooks_resolve():
    pt = load_file(TARGETS)
    assert {t.id for t in pt.targets} >= {"resnet152-24gb-in-8gb", "resnet152-12gb-minibatch",
                                          "resnet152-8gpu", "vgg16-swap-all-titanx"}
    for t in pt.targets:
        if ":" in t.metric:
            assert callable(resolve_callable(t.metric))
        t.scenario_obj()
    assert callable(resolve_callable(pt.figures))
