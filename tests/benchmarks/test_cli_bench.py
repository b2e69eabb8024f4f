"""The command-line benchmark: it refuses what it cannot run before running anything, and two
trees of the same code agree on a case's output digest."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "cli_bench.py"


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=300)


def test_no_repeats_exits_2_naming_the_option():
    done = bench("--repeats", "0")
    assert done.returncode == 2
    assert "--repeats must be at least 1, got 0" in done.stderr


def test_a_folder_that_is_no_checkout_exits_2_naming_it(tmp_path):
    done = bench("--tree", str(tmp_path), "--only", "resnet50-1gpu")
    assert done.returncode == 2
    assert str(tmp_path) in done.stderr and "not a dnnsim checkout" in done.stderr


def test_the_same_tree_twice_gives_one_digest():
    done = bench("--only", "resnet50-1gpu", "--repeats", "1", "--tree", str(ROOT),
                 "--tree", str(ROOT), "--json")
    assert done.returncode == 0, done.stderr
    (case,) = json.loads(done.stdout)["cases"]
    assert case["case"] == "resnet50-1gpu"
    first, second = case["trees"]
    assert first["returncodes"] == second["returncodes"] == [0]
    assert len(first["digests"]) == 1 and first["digests"] == second["digests"]
    assert first["cpu_s"] > 0 and first["wall_s"] > 0


def test_the_digest_leaves_out_the_fresh_folders_name_but_not_what_it_holds(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from cli_bench import output_digest
    finally:
        sys.path.remove(str(SCRIPT.parent))
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, text in ((one, "a"), (two, "a")):
        folder.mkdir()
        (folder / "r.json").write_text(text)
    assert output_digest(f"wrote {one}/r.json\n".encode(), one, ["r.json"]) == \
        output_digest(f"wrote {two}/r.json\n".encode(), two, ["r.json"])
    (two / "r.json").write_text("b")
    assert output_digest(b"x", one, ["r.json"]) != output_digest(b"x", two, ["r.json"])
    assert output_digest(b"x", one, []) != output_digest(b"y", one, [])
