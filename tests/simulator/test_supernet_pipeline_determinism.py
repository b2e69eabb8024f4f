"""supernet-pipeline gives the same figures whatever Python's hash seed (its shared units are
a set: the order they are fetched in must not follow the seed)."""
import os
import subprocess
import sys


def test_same_json_whatever_the_hash_seed():
    outputs = set()
    for seed in ("0", "1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-m", "simulator.cli", "simulate", "--workload", "spos_supernet",
             "--batch", "16", "--hardware", "v100", "--devices", "4", "--link", "nvlink2",
             "--policy", "supernet-pipeline", "--json"],
            env=env, capture_output=True, text=True, check=True).stdout
        outputs.add(out)
    assert len(outputs) == 1
