"""Code, tests and docs say what is true now; how it came to be belongs in commit messages.
This greps every tracked text file for development narrative: numbered sessions or runs,
figures that "went from" one value to another, what "earlier runs" scored."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDINAL = (r"(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|"
           r"twelfth|\d+(st|nd|rd|th))")
NARRATIVE = re.compile("|".join([
    ORDINAL + r" (session|calibration run|iteration of the fit)\b",
    r"\bsession #?\d+\b",
    r"\brun #\d+\b",
    r"\bwent from [+-]?\d",
    r"\bwas [+-]?\d+(\.\d+)? ?%? ?(->|→|to) ?[+-]?\d",
    r"\d ?% ?(->|→) ?[+-]?\d",
    r"\badded in (the )?(\w+ )?(session|run|version)\b",
    r"\bearlier (sessions?|runs? of (the )?calibration|versions? of the (fit|model))\b",
]), re.I)
SKIP_SUFFIXES = (".png", ".jpg", ".csv", ".json", ".jsonl", ".pt")


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [ROOT / n for n in names if not n.endswith(SKIP_SUFFIXES)
            and n != "tests/test_no_history.py"]


def narrative_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if NARRATIVE.search(line)]


# Samples of narrative, each with a "~" that the test removes, so this file holds none itself.
@pytest.mark.parametrize("line", [
    "it fixed went fr~om +25% to within 7% (tenth ses~sion).",
    "MAPE w~as 9.1% -~> 7.1% after the residency fit",
    "the four added in the fourth ses~sion scored 11.5%",
    "3.8% over the 24 cases of ses~sion 10",
])
def test_the_pattern_catches_narrative(line):
    assert not narrative_lines(line)
    assert narrative_lines(line.replace("~", ""))


@pytest.mark.parametrize("line", [
    "@pytest.fixture(scope=\"session\")",
    "start_new_session=True",
    "run 10 rounds at most",
    "MAPE 7.1% over 76 grid cases (python -m validation.experiments.grid_cv)",
])
def test_the_pattern_leaves_plain_statements(line):
    assert not narrative_lines(line)


def test_no_tracked_file_tells_development_history():
    found = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        if path.suffix == ".ipynb":   # the cells' text, not their outputs
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
        found += [f"{path.relative_to(ROOT)}: {line}" for line in narrative_lines(text)]
    assert not found, "development history in the product (move it to commit messages):\n" \
                      + "\n".join(found)
