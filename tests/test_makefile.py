"""The Makefile a new user meets: plain `make` lists every target with what it does, and
`make demo` and `make test` run what the README says they run (checked with make -n, which
runs nothing)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str) -> str:
    done = subprocess.run(["make", "-s", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout


def test_plain_make_lists_every_target():
    shown = make()
    phony = re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert phony is not None
    for target in phony.group(1).split():
        if target not in ("help", "venv"):
            assert f"make {target} " in shown, f"plain make does not list {target}"


def test_demo_reproduces_the_papers_into_report():
    assert "dnnsim reproduce --out report" in make("-n", "demo")


def test_test_lints_first_then_runs_the_fast_suite():
    lines = make("-n", "test").splitlines()
    ruff = next(i for i, line in enumerate(lines) if "ruff check" in line)
    pytest_line = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert ruff < pytest_line and '-m "not slow"' in lines[pytest_line]
