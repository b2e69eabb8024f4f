"""An input that is not a regular file (/dev/zero, a named pipe, behind a link with the suffix
the flag wants) or is over the 64 MiB cap is one error line naming it, exit 2, before reading:
a device is read until the kernel kills the process for memory, and a named pipe's open waits
for a writer that never comes. Each case runs in a child process whose memory and time are
capped, so a regression fails here instead of exhausting the machine or hanging."""
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


CASES = [
    (["simulate", "zero.toml"], "zero.toml"),
    (["simulate", "--workload", "lenet5", "--batch", "2", "--hardware", "zero.toml"],
     "zero.toml"),
    (["simulate", "--workload", "zero.py:make", "--batch", "2", "--hardware", "v100"],
     "zero.py"),
    (["simulate", "--workload", "lenet5", "--batch", "2", "--hardware", "v100",
      "--gpu-families", "zero.toml"], "zero.toml"),
    (["simulate", "--workload", "resnet20", "--batch", "2", "--hardware", "skylake-x-10c",
      "--policy", "sparse-train", "-o", "sparsity=zero.csv"], "zero.csv"),
    (["sweep", "zero.toml", "--out", "out.jsonl", "--workers", "1", "--quiet"], "zero.toml"),
    (["validate", "--published", "zero.csv"], "zero.csv"),
    (["validate", "--profile", str(ROOT / "validation" / "measured" / "cpu_profile.toml"),
      "--measured", "zero.csv"], "zero.csv"),
    (["calibrate", "--published", "zero.csv", "--out", "f.toml"], "zero.csv"),
    (["calibrate", "--refit", "zero.toml", "--ops-csv", "ops.csv", "--out", "p.toml"],
     "zero.toml"),
    (["calibrate", "--refit", str(ROOT / "validation" / "measured" / "cpu_profile.toml"),
      "--ops-csv", "zero.csv", "--out", "p.toml"], "zero.csv"),
    (["reproduce", "--targets", ".", "--out", "report"], "zero.toml"),
]
# journals (a sweep's results, which plot reads) are dnnsim's own and have no size cap
JOURNAL_CASES = [
    (["sweep", VALID_SWEEP, "--out", "zero.jsonl", "--workers", "1", "--quiet"], "zero.jsonl"),
    (["plot", "zero.jsonl", "--x", "devices", "--out", "p.png"], "zero.jsonl"),
]
NAMES = ("zero.toml", "zero.jsonl", "zero.csv", "zero.py")


def _make(kind: str, path: Path) -> None:
    if kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "named pipe":
        os.mkfifo(path)
    else:   # sparse: no disk is used
        with open(path, "wb") as fh:
            fh.truncate(65 * 2 ** 20)


def _run(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "simulator.cli", *argv], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=_capped)


@pytest.mark.parametrize("kind, message", [
    ("device", "is a device, not a file"), ("named pipe", "is a named pipe, not a file"),
    ("huge", "is 65.0 MiB, past dnnsim's limit of 64 MiB for an input file")])
@pytest.mark.parametrize("argv, name", CASES + JOURNAL_CASES)
def test_an_input_file_that_cannot_be_read_whole_is_refused(argv, name, kind, message,
                                                            tmp_path):
    if kind == "huge" and (argv, name) in JOURNAL_CASES:
        pytest.skip("journals have no size cap")
    for n in NAMES:
        _make(kind, tmp_path / n)
    proc = _run(argv, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("dnnsim: error: ") and proc.stderr.count("\n") == 1
    assert name in proc.stderr and message in proc.stderr, proc.stderr
