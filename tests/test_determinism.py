"""Same input, same output, byte for byte, whatever Python's hash seed.

Each hash seed gets a fresh interpreter in a fresh folder. It runs every policy on one small
scenario it can simulate, then the main commands (simulate --json/--trace/--csv, sweep, plot,
describe, tune-batch, validate on the committed published rows, reproduce of one target). Their
stdout, stderr, exit codes and every file they wrote (lock files, which hold a pid, aside) are
compared across the seeds: set and dict order must never reach an output.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEEDS = ("0", "1", "2", "123")

CHILD = r'''
import contextlib, io, json, sys
from simulator import policies
from simulator.cli import main
from simulator.scenario import Scenario

# For each policy, the first of these scenarios that it can simulate is the one compared.
GPU = {"workload": "lenet5", "batch": 4, "hardware": "v100", "devices": 2, "link": "nvlink2"}
CANDIDATES = [
    GPU, {**GPU, "inference": True},
    {"workload": "spos_supernet", "batch": 8, "hardware": "v100", "devices": 4,
     "link": "nvlink2"},
    {"workload": "lenet5", "batch": 4, "hardware": "skylake-x-6c"},
    {**GPU, "devices": 4, "inference": True},
    {"workload": "resnet34", "batch": 2, "hardware": "skylake-x-6c"},
    {"workload": "decnn_resnet50", "batch": 1, "hardware": "rpi4", "devices": 2,
     "link": "eth1g", "inference": True},
    {"workload": "gpt2", "batch": 1, "hardware": "h100", "devices": 2, "link": "nvlink4",
     "workload_options": {"depth": 2, "seq_len": 64}},
]
out = {"policies": {}, "commands": {}}
for name in policies.names():
    errors = []
    for candidate in CANDIDATES:
        try:
            result = Scenario.from_dict({**candidate, "policy": name}).run()
        except ValueError as exc:
            errors.append(str(exc))
            continue
        out["policies"][name] = {"scenario": candidate, "json": result.to_json()}
        break
    else:
        out["policies"][name] = {"error": errors}

REPO = sys.argv[1]
PUBLISHED = f"{REPO}/validation/measured/published"
COMMANDS = {
    "simulate": ["simulate", "--workload", "resnet18", "--batch", "8", "--hardware", "v100",
                 "--devices", "4", "--link", "nvlink2", "--policy", "data-parallel", "--json"],
    "simulate-trace": ["simulate", "--workload", "resnet18", "--batch", "8", "--hardware",
                       "v100", "--devices", "2", "--link", "nvlink2", "--policy", "gpipe",
                       "--trace", "trace.json", "--csv", "simulate.csv"],
    "describe": ["describe", "resnet18", "--training", "--batch", "4", "--csv", "describe.csv"],
    "tune-batch": ["tune-batch", "--workload", "resnet18", "--hardware", "v100", "--policy",
                   "swap,recompute", "--max-batch", "64", "--json"],
    "sweep": ["sweep", "sweep.toml", "--out", "results.jsonl", "--workers", "1", "--quiet"],
    "plot": ["plot", "results.jsonl", "--x", "devices", "--by", "policy", "--baseline",
             "devices=1", "--out", "speedup.png"],
    "validate": ["validate", "--published", f"{PUBLISHED}/single_gpu.csv",
                 "--kernels", f"{PUBLISHED}/kernels.csv"],
    "reproduce": ["reproduce", "--targets", "targets", "--out", "report", "--workers", "1",
                  "--quiet", "--check"],
}
for name, argv in COMMANDS.items():
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    out["commands"][name] = {"exit": code, "stdout": stdout.getvalue(),
                             "stderr": stderr.getvalue()}
print(json.dumps(out, sort_keys=True))
'''

SWEEP = """[base]
workload = "lenet5"
hardware = "v100"
link = "nvlink2"
batch = 8
[axes]
devices = [1, 2, 4]
policy = ["data-parallel", "fsdp", "sequential"]
[[exclude]]
policy = "sequential"
devices = [2, 4]
"""


def _one_target() -> str:
    """The first target of pipeline_stale.toml (a 2-GPU speedup, seconds to simulate) with the
    paper's header, less its figures hook (a sweep of its own)."""
    text = (REPO / "validation" / "targets" / "pipeline_stale.toml").read_text()
    head, first = text.split("[[target]]")[:2]
    head = "\n".join(line for line in head.splitlines() if not line.startswith("figures"))
    return f"{head}\n[[target]]{first}"


def _run(seed: str, folder: Path) -> dict:
    folder.mkdir()
    (folder / "sweep.toml").write_text(SWEEP)
    (folder / "targets").mkdir()
    (folder / "targets" / "one.toml").write_text(_one_target())
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO),
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(REPO)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    doc["files"] = {str(p.relative_to(folder)): p.read_bytes()
                    for p in sorted(folder.rglob("*"))
                    if p.is_file() and p.suffix != ".lock"}
    return doc


@pytest.mark.slow
def test_every_policy_and_command_is_byte_identical_across_hash_seeds(tmp_path):
    runs = {seed: _run(seed, tmp_path / f"seed{seed}") for seed in SEEDS}
    first = runs[SEEDS[0]]
    # the check has teeth only if every policy ran and every command did its work
    assert {"sequential", "data-parallel", "supernet-pipeline", "fsdp"} <= set(first["policies"])
    missing = {k: v["error"] for k, v in first["policies"].items() if "error" in v}
    assert not missing, f"policies with no scenario they can run: {missing}"
    failed = {k: v["stderr"] for k, v in first["commands"].items() if v["exit"] != 0}
    assert not failed, f"commands that failed: {failed}"
    for written in ("trace.json", "simulate.csv", "describe.csv", "results.jsonl",
                    "speedup.png", "report/results.json", "report/report.md"):
        assert first["files"].get(written), f"{written} was not written"
    for seed in SEEDS[1:]:
        other = runs[seed]
        differ = [f"policy {k}" for k in first["policies"]
                  if first["policies"][k] != other["policies"].get(k)]
        differ += [f"command {k}" for k in first["commands"]
                   if first["commands"][k] != other["commands"].get(k)]
        differ += [f"file {k}" for k in sorted(set(first["files"]) | set(other["files"]))
                   if first["files"].get(k) != other["files"].get(k)]
        assert not differ, f"hash seed {SEEDS[0]} and {seed} differ in: {differ}"
