"""`dnnsim ... | head`: a reader that leaves early is not an error."""
from __future__ import annotations

import subprocess
import sys


def test_a_closed_pipe_ends_the_command_quietly_with_exit_code_0():
    # A training listing of ResNet-152 is ~150 kB, more than a pipe buffers, so the write fails.
    cmd = [sys.executable, "-c", "import sys; from simulator.cli import main; sys.exit(main())",
           "describe", "resnet152", "--training"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert err == b""
