"""Golden figures: what `dnnsim reproduce` measures for every validation target, and the JSON
of a fixed list of `dnnsim simulate --json` scenarios, computed the same way by the test
(test_golden.py) and by the script that rewrites them on purpose (update_golden.py).

A figure that moves fails the test until reproduce_figures.json is rewritten with
`update_golden.py --reason "..."`, in the same commit, with the reason in its message.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import time
from pathlib import Path

GOLDEN_FILE = Path(__file__).with_name("reproduce_figures.json")
RELATIVE_TOLERANCE = 1e-9
# Papers whose targets take several seconds each to simulate (path parallelism's supernets,
# the swap planners' verified searches): their golden tests run only in `make test-all`. A
# paper's targets share caches, so slowness is per paper. Declared, not timed, so that the
# golden file is the same bytes on every machine.
SLOW_PAPERS = frozenset({"path-parallel", "swap"})

# name -> the arguments of `dnnsim simulate --json`
SIMULATE_SCENARIOS: dict[str, list[str]] = {
    "sequential-resnet50-v100": ["--workload", "resnet50", "--batch", "32", "--hardware",
                                 "v100", "--policy", "sequential"],
    "data-parallel-8x-v100-nvlink2": ["--workload", "resnet50", "--batch", "32", "--hardware",
                                      "v100", "--policy", "data-parallel", "--devices", "8",
                                      "--link", "nvlink2"],
    "data-parallel-8x-v100-eth10g": ["--workload", "resnet50", "--batch", "32", "--hardware",
                                     "v100", "--policy", "data-parallel", "--devices", "8",
                                     "--link", "eth10g"],
    "fsdp-8x-h100-dgx": ["--workload", "resnet50", "--batch", "32", "--hardware", "h100",
                         "--node-type", "dgx-h100", "--devices", "8", "--policy", "fsdp"],
    "megatron-gpt2-16x-h100-dgx": ["--workload", "gpt2", "--batch", "2", "--hardware", "h100",
                                   "--node-type", "dgx-h100", "--devices", "16",
                                   "--precision", "bf16", "--policy", "megatron", "--tp", "4",
                                   "--pp", "2", "--micro-batches", "4", "--recompute", "full"],
}


def target_ids() -> dict[str, object]:
    """'paper/id' -> Target, for every validation/targets/*.toml that exists now."""
    from validation.reproduce import targets
    return {f"{p.paper}/{t.id}": t for p in targets.load_all() for t in p.targets}


def measure_target(target, measure=None) -> tuple[dict, float]:
    """({"value": float or None for NaN} or {"error": message}, seconds it took). measure:
    what simulates the target (default: validation.reproduce.targets.measure)."""
    if measure is None:
        from validation.reproduce.targets import measure
    start = time.perf_counter()
    try:
        value = measure(target)
        entry = {"value": None if math.isnan(value) else value}
    except ValueError as exc:  # a target that cannot be measured is a figure too
        entry = {"error": f"{type(exc).__name__}: {exc}"}
    return entry, time.perf_counter() - start


def is_slow(key: str) -> bool:
    """Whether target 'paper/id' belongs to a paper of SLOW_PAPERS."""
    return key.split("/")[0] in SLOW_PAPERS


def simulate_json(argv: list[str]) -> dict:
    from simulator.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["simulate", *argv, "--json"])
    if code != 0:
        raise RuntimeError(f"dnnsim simulate {' '.join(argv)} --json exited {code}: "
                           f"{err.getvalue().strip()}")
    return json.loads(out.getvalue())


def differences(expected, actual, path: str = "") -> list[str]:
    """Where two JSON documents differ: numbers to RELATIVE_TOLERANCE, the rest exactly."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual or key not in expected:
                out.append(f"{path}/{key}: {'missing' if key not in actual else 'new'}")
            else:
                out += differences(expected[key], actual[key], f"{path}/{key}")
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for d in differences(e, a, f"{path}[{i}]")]
    numbers = (int, float)
    if (isinstance(expected, numbers) and isinstance(actual, numbers)
            and not isinstance(expected, bool) and not isinstance(actual, bool)):
        if math.isclose(expected, actual, rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0):
            return []
        return [f"{path}: {expected!r} -> {actual!r}"]
    return [] if expected == actual else [f"{path}: {expected!r} -> {actual!r}"]


def load() -> dict:
    if not GOLDEN_FILE.exists():
        return {"targets": {}, "simulate": {}}
    return json.loads(GOLDEN_FILE.read_text())


def save(doc: dict) -> None:
    GOLDEN_FILE.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
