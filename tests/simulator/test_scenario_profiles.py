"""A calibrated profile is loaded (and its predictors fitted) once per process, not once per
scenario or sweep point; a profile file changed on disk is loaded again."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from simulator.scenario import resolve_hardware

PROFILE = Path(__file__).resolve().parents[2] / "validation" / "measured" / "cpu_profile.toml"


def test_one_profile_object_per_file_version(tmp_path):
    path = tmp_path / "p.toml"
    shutil.copy(PROFILE, path)
    _, first = resolve_hardware(str(path))
    _, again = resolve_hardware(str(path))
    assert again is first                      # its fitted predictors are reused
    path.write_text(path.read_text() + "\n")   # a new version of the file
    os.utime(path, ns=(1, 1))
    _, changed = resolve_hardware(str(path))
    assert changed is not first
