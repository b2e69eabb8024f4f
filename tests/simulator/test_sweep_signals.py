"""A sweep stopped by SIGTERM, SIGHUP, SIGINT or SIGKILL takes its worker processes with it
(forkserver, workers, resource tracker): none is left, and a reader of its stdout sees the end
of the stream within seconds (`dnnsim sweep ... | cat` ends).

The signal must find the sweep at work, however slowly the test runs: a sweep that has written
every point ends with 0 on its own, and one signalled as it exits may end either way. So the
sweep cannot finish: its first half runs on the V100, its second half on a "profile" that is a
named pipe nobody writes, whose open() blocks a worker until the sweep's end takes it down.

And each signal must meet the sweep's handling, not an ignore it inherited: a process started
with SIGINT ignored (as a background job of a non-interactive shell starts, and so a test run
from one) or SIGHUP ignored (nohup) keeps it ignored, Python and the sweep too, and would sweep
on. The sweep starts with the defaults, as from a terminal."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

SWEEP_TOML = """
[base]
workload = "resnet20"
batch = 8
hardware = "v100"
policy = "data-parallel"
link = "nvlink2"
devices = 2

[axes]
hardware = ["v100", {gate}]
batch = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
"""
GONE_WITHIN_S = 5.0


def _start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    sweep_file, out, gate = (tmp_path / "sweep.toml", tmp_path / "results.jsonl",
                             tmp_path / "never-written.toml")
    os.mkfifo(gate)   # the points on it never end (module notes)
    sweep_file.write_text(SWEEP_TOML.format(gate=json.dumps(str(gate))))   # a TOML string
    env = {k: v for k, v in os.environ.items() if k != "DNNSIM_DEBUG"}
    with _default_dispositions():
        proc = subprocess.Popen([sys.executable, "-m", "simulator.cli", "sweep",
                                 str(sweep_file), "--out", str(out), "--workers", "2",
                                 "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    return proc, out


@contextmanager
def _default_dispositions() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP not ignored here while a child starts, so that the child
    starts with each at its default (exec resets a handled signal; an ignored one stays
    ignored). SIGINT raises KeyboardInterrupt here meanwhile, as it does in pytest anyway."""
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:   # None: a handler set outside Python, not restorable
                signal.signal(sig, handler)


def _wait_for_workers(proc: subprocess.Popen, out: Path) -> list[psutil.Process]:
    """The run's descendants once it has written a point (its pool is up and working)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep ended before it could be signalled"
    family = psutil.Process(proc.pid).children(recursive=True)
    assert len(family) >= 2, f"expected a forkserver and workers, found {family}"
    return family


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT,
                                    signal.SIGKILL])
def test_a_signalled_sweep_leaves_no_process_and_closes_stdout(tmp_path, signum):
    proc, out = _start(tmp_path)
    family: list[psutil.Process] = []
    try:
        family = _wait_for_workers(proc, out)
        start = time.monotonic()
        os.kill(proc.pid, signum)
        # `| cat`: the reader's end of stdout sees EOF once every holder of it has exited
        reader = threading.Thread(target=proc.stdout.read, daemon=True)
        reader.start()
        reader.join(timeout=GONE_WITHIN_S)
        waited_s = time.monotonic() - start
        deadline = time.monotonic() + GONE_WITHIN_S
        while _alive(family) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(family), f"left behind after {signum!r}: {_alive(family)}"
        assert not reader.is_alive(), f"stdout still open {waited_s:.1f} s after {signum!r}"
        if signum != signal.SIGKILL:
            assert proc.wait(timeout=GONE_WITHIN_S) == 128 + signum
        # what was written is whole: a header and complete, distinct points
        lines = out.read_bytes().split(b"\n")
        records = [json.loads(x) for x in lines[1:-1]]
        assert len({r["point"] for r in records}) == len(records)
        assert all(r["axes"]["hardware"] == "v100" for r in records)
    finally:   # only the processes this test started
        for p in _alive(family):
            p.kill()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
