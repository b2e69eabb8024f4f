"""docs/capacity-study.md shows what its commands print: its generator's comparison finds a
moved figure and a run that no longer fits, and (slow) every command of the page, run as the
page gives it, prints the page's output to within the generator's tolerance."""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def page():
    return runpy.run_path(str(ROOT / "docs" / "capacity_study_page.py"), run_name="page")


def test_the_comparison_tolerates_rounding_and_finds_what_moved(page):
    shown = "  iteration time         50.56 ms\n  throughput             40,503 samples/s\n"
    assert page["differences"](shown, shown.replace("50.56", "50.71")) == []
    moved = page["differences"](shown, shown.replace("40,503", "43,000"))
    assert len(moved) == 1 and "43,000" in moved[0]
    oom = "  OUT OF MEMORY: out of memory on gpu0\n  throughput             40,503 samples/s\n"
    assert page["differences"](shown, oom)
    assert page["differences"](shown, shown + "  tasks simulated        4,696\n")


def test_every_command_has_its_output_and_every_file_it_reads_is_on_the_page(page):
    text = (ROOT / "docs" / "capacity-study.md").read_text()
    runs = page["runs"](text)
    assert len(runs) >= 8 and all(output is not None for _, output in runs)
    assert {"llama.toml", "bert.toml", "mynet.py"} <= set(page["page_files"](text))


def test_rewriting_replaces_only_the_outputs(page):
    text = "intro\n```shell\necho hi\n```\n```text\nold\n```\nend\n"
    assert page["rewritten"](text, ["hi\n"]) == \
        "intro\n```shell\necho hi\n```\n```text\nhi\n```\nend\n"


@pytest.mark.slow
def test_the_page_shows_what_its_commands_print(page, tmp_path):
    text = (ROOT / "docs" / "capacity-study.md").read_text()
    problems = page["check"](text, page["run_page"](text, tmp_path))
    assert not problems, ("docs/capacity-study.md is not what its commands print now; run "
                          "python docs/capacity_study_page.py:\n" + "\n".join(problems))
