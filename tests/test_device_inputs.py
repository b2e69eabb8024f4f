"""A device named where a file is read (/dev/zero, behind a link with the suffix the flag
wants) is one error line naming it, exit 2: reading it would never end (it did, until the
kernel killed the process for memory). Each case runs in a child process whose memory is
capped, so a regression fails here instead of exhausting the machine."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VALID_SWEEP = str(ROOT / "tests" / "corpus" / "valid" / "sweep.toml")
CAP_BYTES = 3 * 2 ** 30

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP_BYTES, CAP_BYTES))


@pytest.mark.parametrize("argv, device", [
    (["simulate", "zero.toml"], "zero.toml"),
    (["simulate", "--workload", "lenet5", "--batch", "2", "--hardware", "zero.toml"],
     "zero.toml"),
    (["sweep", "zero.toml", "--out", "out.jsonl", "--workers", "1", "--quiet"], "zero.toml"),
    (["sweep", VALID_SWEEP, "--out", "zero.jsonl", "--workers", "1", "--quiet"], "zero.jsonl"),
    (["plot", "zero.jsonl", "--x", "devices", "--out", "p.png"], "zero.jsonl"),
    (["validate", "--published", "zero.csv"], "zero.csv"),
    (["calibrate", "--refit", "zero.toml", "--ops-csv", "ops.csv", "--out", "p.toml"],
     "zero.toml"),
    (["calibrate", "--refit", str(ROOT / "validation" / "measured" / "cpu_profile.toml"),
      "--ops-csv", "zero.csv", "--out", "p.toml"], "zero.csv"),
])
def test_a_device_given_as_an_input_file_is_refused(argv, device, tmp_path):
    for name in ("zero.toml", "zero.jsonl", "zero.csv"):
        (tmp_path / name).symlink_to("/dev/zero")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "simulator.cli", *argv], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_capped)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("dnnsim: error: ") and proc.stderr.count("\n") == 1
    assert device in proc.stderr and "is a device, not a file" in proc.stderr
