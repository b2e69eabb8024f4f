"""Where the package's data lives: the published targets and the committed measurements."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
TARGETS = ROOT / "targets"     # one TOML per paper (validation/reproduce/targets.py reads them)
MEASURED = ROOT / "measured"   # measured data sets, each naming the machine it was taken on
