"""Every policy gives byte-identical JSON whatever Python's hash seed: each is run in a fresh
interpreter under two PYTHONHASHSEED values (set and dict order must never reach a figure)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

# For each policy, the first of these scenarios that it can simulate is the one compared.
CHILD = r'''
import json
from simulator import policies
from simulator.scenario import Scenario

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
out = {}
for name in policies.names():
    errors = []
    for candidate in CANDIDATES:
        try:
            result = Scenario.from_dict({**candidate, "policy": name}).run()
        except ValueError as exc:
            errors.append(str(exc))
            continue
        out[name] = {"scenario": candidate, "summary": json.loads(result.to_json())}
        break
    else:
        out[name] = {"error": errors}
print(json.dumps(out, sort_keys=True))
'''


def _run(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, check=True, timeout=600).stdout


def test_every_policy_is_byte_identical_across_hash_seeds():
    first, second = _run("0"), _run("12345")
    doc = json.loads(first)         # every registered policy, in the child's registry
    assert {"sequential", "data-parallel", "supernet-pipeline", "decnn"} <= set(doc)
    missing = {k: v["error"] for k, v in doc.items() if "error" in v}
    assert not missing, f"policies with no scenario they can run: {missing}"
    if first != second:
        other = json.loads(second)
        differ = sorted(k for k in doc if doc[k] != other.get(k))
        raise AssertionError(f"figures depend on the hash seed for: {differ}")
