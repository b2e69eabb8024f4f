"""Fixtures shared by every test package.

Session fixtures that share a computation of minutes among test modules:
- `simulated_target`: a validation target's simulated value, measured once per test run. The
  golden figures, the tolerance and bound checks and the end-to-end `dnnsim reproduce` test
  all ask for the same targets; a target's hooks (a sweep, a search) take most of the suite's
  time, so each is simulated once and the answer, or the error it raised, is shared.
- `gpu_validation_runs`: the published GPU validations (in sample, leave-one-GPU-out, the
  kernel rows), each run once when first asked for: docs/gpu-validation.md's test and the
  tests of those validations read the same runs.
- `published_scaling`: the published scaling validation's comparisons of NVIDIA's
  multi-GPU rows, each run once when first asked for: docs/clusters.md's test and the
  validation's tests read the same ones.

Parallel runs (`make test`, `make test-all`: pytest-xdist, `-n auto --dist loadfile`) hand each
worker whole test modules, so a module's fixtures are built once. The modules that share one
of these fixtures go to one worker together (SHARED and `pytest_xdist_make_scheduler` below):
on two workers the computation would run twice.

Hypothesis profiles: `dev` (the default) draws fresh examples each run, so local runs keep
exploring; `ci` (HYPOTHESIS_PROFILE=ci, which .ci/run sets) derives them from each test's
name, so a CI run gives the same verdict on the same code, and a draw that fails locally
prints the seed (`@reproduce_failure`) to replay it.
"""
from __future__ import annotations

import importlib
import os
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# No deadline and no data-generation speed check: they time a test, and a busy machine fails
# them whatever the code does (speed goals belong in benchmarks/)
UNTIMED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("dev", print_blob=True, **UNTIMED)
settings.register_profile("ci", derandomize=True, print_blob=True, **UNTIMED)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Each session fixture of minutes and the test modules asking for it: one work unit of a
# parallel run per fixture
SHARED = {
    "simulated_target": frozenset({
        "tests/golden/test_golden.py",
        "tests/validation/reproduce/test_target_values.py",
        "tests/validation/reproduce/test_reproduce_targets.py",
    }),
    "gpu_validation_runs": frozenset({
        "tests/test_gpu_validation_page.py",
        "tests/validation/validate/test_published_gpu.py",
        "tests/validation/calibrate/test_kernel_floor.py",
    }),
    "published_scaling": frozenset({
        "tests/test_clusters_page.py",
        "tests/validation/validate/test_published_scaling.py",
    }),
}
UNIT = {module: fixture for fixture, modules in SHARED.items() for module in modules}


def _module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)   # a hook of xdist: without it, single-process runs
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the modules of each SHARED fixture scheduled as one file."""
    if config.getvalue("dist") != "loadfile":
        return None   # any other mode as xdist runs it
    from xdist.scheduler import LoadFileScheduling

    class SharedFixturesScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module_of(nodeid)
            return UNIT.get(module, module)

    return SharedFixturesScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Warn of a test module that uses a SHARED fixture without being listed with it: a
    parallel run would compute it once more for that module."""
    for fixture, modules in SHARED.items():
        unlisted = sorted({_module_of(item.nodeid) for item in items
                           if fixture in getattr(item, "fixturenames", ())} - modules)
        if unlisted:
            warnings.warn(pytest.PytestWarning(
                f"{', '.join(unlisted)} use {fixture}: list them in SHARED[{fixture!r}] "
                f"(tests/conftest.py) so that a parallel run computes it once"), stacklevel=1)


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


def _docs_module(name: str):
    """A module of docs/ (not a package), imported as its page generators import it."""
    docs = str(Path(__file__).resolve().parents[1] / "docs")
    if docs not in sys.path:
        sys.path.insert(0, docs)
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def gpu_validation_runs():
    """docs/gpu_validation_figures.py's Runs: each validation of the committed published rows,
    run on first use and kept for the session."""
    return _docs_module("gpu_validation_figures").run()


@pytest.fixture(scope="session")
def published_scaling():
    """docs/clusters_scaling.py's Comparisons: the published scaling validation's comparisons
    of NVIDIA's rows, each run on first use and kept for the session."""
    return _docs_module("clusters_scaling").Comparisons()
