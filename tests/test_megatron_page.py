"""docs/megatron.md shows what its commands print: its generator builds the layouts' table from
their JSON, finds a sentence of the prose the figures no longer bear out, and (slow) every
command of the page, run as the page gives it, prints the page's output and table to within
the generator's tolerance, the prose's statements holding."""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def page():
    return runpy.run_path(str(ROOT / "docs" / "megatron_page.py"), run_name="page")


def _summary(devices: int, pp: int, step_s: float, bubble: float, peak_gib: float) -> dict:
    """A run's --json summary, reduced to what the page reads."""
    return {"status": "ok", "scenario": {"devices": devices,
                                         "options": {"tp": 8, "pp": pp, "micro_batches": 32}},
            "iteration_time_s": step_s, "throughput_tokens_per_s": 262144 / step_s,
            "model_flops_utilisation": 0.25,
            "extras": {"megatron": {"achieved_tflops_per_gpu": 300.0 - devices / 4,
                                    "bubble_fraction": [bubble * 0.9] + [bubble] * (pp - 2)
                                    + [bubble * 0.8],
                                    "memory": {"gpu0": {"peak_bytes": peak_gib * 2**30},
                                               "gpu8": {"peak_bytes": peak_gib * 2**29}}}}}


OOM = {"status": "out_of_memory",
       "scenario": {"devices": 64, "options": {"tp": 8, "pp": 2, "micro_batches": 32}}}


def test_a_row_is_its_runs_figures(page):
    row = page["table_row"](_summary(128, 4, 2.5, 0.0969, 57.43))
    assert row == "| 128 | 8 x 4 x 4 | 32 | 2.500 s | 104,858 | 268.0 | 25.0 % | 9.69 % " \
                  "| 57.43 GiB |"
    assert page["table_row"](OOM).startswith("| 64 | 8 x 2 x 4 | 32 | out of memory |")


GPT3 = """  iteration time         {step} s
  tasks simulated        1,358,364
  bubble per stage       7.02 %, 8.21 %, 8.21 %, 5.48 %
  exposed communication  data parallel 211.3 ms, embedding 6.514 ms, pipeline p2p 34.95 ms, \
tensor parallel {tp} (the most exposed stage)
"""


def test_the_claims_hold_on_figures_that_bear_them_out_and_fail_where_they_do_not(page):
    printed = [GPT3.format(step=10.5, tp="901.4 ms"), GPT3.format(step=8.2, tp="774.2 ms"),
               GPT3.format(step=6.0, tp="1.2 s"), "  OUT OF MEMORY: out of memory on gpu0\n"]
    layouts = [OOM, _summary(64, 4, 6.0, 0.056, 57), _summary(128, 4, 3.3, 0.097, 57),
               _summary(256, 4, 2.0, 0.168, 57), _summary(256, 8, 1.9, 0.198, 39)]
    assert page["claims"](printed, layouts) == []
    tp_small = [GPT3.format(step=10.5, tp="9.0 ms"), *printed[1:]]
    assert any("tensor-parallel" in p for p in page["claims"](tp_small, layouts))
    slower = [*layouts[:4], _summary(256, 8, 2.1, 0.198, 39)]
    assert any("pp 8 beats pp 4" in p for p in page["claims"](printed, slower))
    fits = [*printed[:3], "  iteration time         9.0 s\n"]
    assert any("out of memory" in p for p in page["claims"](fits, layouts))


def test_the_table_is_replaced_between_its_markers_only(page):
    text = f"intro\n{page['BEGIN']}old table\n{page['END']}\nend\n"
    assert page["with_table"](text, "new\n") == f"intro\n{page['BEGIN']}new\n{page['END']}\nend\n"


@pytest.mark.slow
def test_the_page_shows_what_its_commands_print(page):
    text = (ROOT / "docs" / "megatron.md").read_text()
    printed, layouts = page["measure"](text)
    problems = page["problems"](text, printed, layouts)
    assert not problems, ("docs/megatron.md is not what its commands print now; run "
                          "python docs/megatron_page.py:\n" + "\n".join(problems))
