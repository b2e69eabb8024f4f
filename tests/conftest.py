"""Fixtures shared by every test package.

`simulated_target`: a validation target's simulated value, measured once per test run. The
golden figures, the tolerance and bound checks and the end-to-end `dnnsim reproduce` test all
ask for the same targets; a target's hooks (a sweep, a search) take most of the suite's time,
so each is simulated once and the answer, or the error it raised, is shared.

Parallel runs (`make test`, `make test-all`: pytest-xdist, `-n auto --dist loadfile`) hand each
worker whole test modules, so a module's fixtures are built once. The modules that share
`simulated_target` go to one worker together (`pytest_xdist_make_scheduler` below): on two
workers the targets would be simulated twice.

Hypothesis profiles: `dev` (the default) draws fresh examples each run, so local runs keep
exploring; `ci` (HYPOTHESIS_PROFILE=ci, which .ci/run sets) derives them from each test's
name, so a CI run gives the same verdict on the same code, and a draw that fails locally
prints the seed (`@reproduce_failure`) to replay it.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import asdict

import pytest
from hypothesis import HealthCheck, settings

# No deadline and no data-generation speed check: they time a test, and a busy machine fails
# them whatever the code does (speed goals belong in benchmarks/)
UNTIMED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("dev", print_blob=True, **UNTIMED)
settings.register_profile("ci", derandomize=True, print_blob=True, **UNTIMED)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# The test modules asking for `simulated_target`: one work unit of a parallel run.
SIMULATED_TARGET_MODULES = frozenset({
    "tests/golden/test_golden.py",
    "tests/validation/reproduce/test_target_values.py",
    "tests/validation/reproduce/test_reproduce_targets.py",
})


def _module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)   # a hook of xdist: without it, single-process runs
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the SIMULATED_TARGET_MODULES scheduled as one file."""
    if config.getvalue("dist") != "loadfile":
        return None   # any other mode as xdist runs it
    from xdist.scheduler import LoadFileScheduling

    class SharedTargetsScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module_of(nodeid)
            return "simulated targets" if module in SIMULATED_TARGET_MODULES else module

    return SharedTargetsScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Warn of a test module that uses `simulated_target` without being listed in
    SIMULATED_TARGET_MODULES: a parallel run would simulate the targets once more for it."""
    unlisted = sorted({_module_of(item.nodeid) for item in items
                       if "simulated_target" in getattr(item, "fixturenames", ())}
                      - SIMULATED_TARGET_MODULES)
    if unlisted:
        warnings.warn(pytest.PytestWarning(
            f"{', '.join(unlisted)} use simulated_target: list them in SIMULATED_TARGET_MODULES "
            "(tests/conftest.py) so that a parallel run simulates the targets once"), stacklevel=1)


@pytest.fixture(scope="session")
def simulated_target():
    from simulator.sweep import stable_hash
    from validation.reproduce import targets

    outcomes: dict[tuple, tuple[float | None, Exception | None]] = {}

    def measure(target) -> float:
        """targets.measure(target), or what it raised, from the first call of the run."""
        # keyed by the whole definition: a test that edits a target measures it afresh
        key = (target.paper, target.id, stable_hash(asdict(target)))
        if key not in outcomes:
            try:
                outcomes[key] = (targets.measure(target), None)
            except Exception as exc:  # re-raised to every caller, as measure would
                outcomes[key] = (None, exc)
        value, error = outcomes[key]
        if error is not None:
            raise error
        return value

    return measure
