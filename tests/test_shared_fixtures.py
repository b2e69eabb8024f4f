"""tests/conftest.py's SHARED: each session fixture that shares a computation of minutes
lists, as one work unit of a parallel run, test modules that exist and ask for it, so that a
module renamed or no longer sharing it does not hold the others' worker."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _conftest():
    spec = importlib.util.spec_from_file_location("tests_conftest", ROOT / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_listed_module_exists_and_asks_for_its_fixture():
    conftest = _conftest()
    for fixture, modules in conftest.SHARED.items():
        assert len(modules) > 1, f"{fixture} is shared by one module: nothing to schedule"
        for module in modules:
            path = ROOT / module
            assert path.is_file(), f"SHARED[{fixture!r}] lists {module}, which does not exist"
            assert fixture in path.read_text(), f"{module} does not ask for {fixture}"


def test_a_module_belongs_to_one_unit_at_most():
    conftest = _conftest()
    listed = [m for modules in conftest.SHARED.values() for m in modules]
    assert len(listed) == len(set(listed)) == len(conftest.UNIT)
