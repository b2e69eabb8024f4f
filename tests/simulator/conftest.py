"""Fixtures of the simulator's tests."""
from __future__ import annotations

import pytest

from simulator.cli import main


@pytest.fixture
def cli_error(capsys):
    """Run `dnnsim ARGV`, check it is bad input (exit 2, one line `dnnsim: error: ...`, no
    traceback) and return that line."""
    def run(argv: list[str]) -> str:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dnnsim: error: "), err
        return lines[0]
    return run
