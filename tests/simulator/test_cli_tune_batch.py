"""`dnnsim tune-batch` for today's setups: the precision, the memory format and the network
options of `simulate` reach every minibatch the search runs."""
from __future__ import annotations

import json

import pytest

from simulator.cli import main

TUNE = ["tune-batch", "--workload", "gpt2", "--hardware", "h100", "--policy", "none",
        "--baseline", "", "--min-batch", "4", "--max-batch", "4", "--no-refine", "--json",
        "--workload-option", "seq_len=256"]


def _point(capsys) -> dict:
    (tuning,) = json.loads(capsys.readouterr().out)
    (point,) = tuning["points"]
    return point


def test_mixed_precision_is_faster_and_smaller_than_fp32(capsys):
    assert main(TUNE) == 0
    fp32 = _point(capsys)
    assert main([*TUNE, "--precision", "amp-bf16"]) == 0
    amp = _point(capsys)
    assert fp32["ok"] and amp["ok"]
    assert amp["iteration_time_s"] < fp32["iteration_time_s"]
    assert amp["peak_memory_bytes"] < fp32["peak_memory_bytes"]


def test_the_workload_option_reaches_the_network(capsys):
    assert main(TUNE) == 0
    short = _point(capsys)
    assert main([*TUNE[:-1], "seq_len=512"]) == 0
    assert _point(capsys)["peak_memory_bytes"] > short["peak_memory_bytes"]


@pytest.mark.parametrize("flag, value, words", [
    ("--precision", "bf32", "precision must be one of"),
    ("--memory-format", "nchwc", "memory_format must be one of"),
    ("--workload-option", "seq_len", "KEY=VALUE"),
])
def test_a_bad_setting_is_one_error_line(flag, value, words, capsys):
    assert main([*TUNE, flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnnsim: error: ") and words in err and err.count("\n") == 1
