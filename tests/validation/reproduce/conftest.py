"""Fixtures of the `dnnsim reproduce` tests: a folder of two small papers whose figures hooks
are importable (one draws a plot, one fails)."""
from __future__ import annotations

import sys
import types

import pytest

from .fixture_targets import broken_figures, fake_figures, paper, target


@pytest.fixture
def hooks(monkeypatch):
    mod = types.ModuleType("validation.fixture_figures")
    mod.make_figures, mod.broken = fake_figures, broken_figures
    monkeypatch.setitem(sys.modules, "validation.fixture_figures", mod)


@pytest.fixture
def folder(tmp_path, hooks):
    d = tmp_path / "targets"
    d.mkdir()
    (d / "alpha.toml").write_text(paper("alpha", target("near", 2.0) + target("far", 50.0),
                                        "validation.fixture_figures:make_figures"))
    (d / "beta.toml").write_text(paper("beta", target("bound", 1.0, "bound",
                                                      "lower = 1.0\nupper = 3.0\n"),
                                       "validation.fixture_figures:broken"))
    return d
