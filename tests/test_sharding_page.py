"""docs/sharding.md is its template (docs/sharding.md.in) with every figure measured: the
committed page is the template filled (no sentence edited in the page alone), and (slow) every
figure, rerun, is the page's, byte for byte, with the prose's comparisons still holding."""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def page():
    return runpy.run_path(str(DOCS / "sharding_page.py"), run_name="page")


def test_the_committed_page_is_its_template_filled(page):
    template = (DOCS / "sharding.md.in").read_text()
    text = (DOCS / "sharding.md").read_text()
    header = page["HEADER"].format(page="sharding.md")
    assert text.startswith(header)
    found = page["pages"].filled_by(template, tables=True).fullmatch(text[len(header):])
    assert found, "docs/sharding.md differs from docs/sharding.md.in beyond its figures: " \
                  "edit the template and run python docs/sharding_page.py"
    assert all(value.strip() for value in found.groupdict().values())
    assert "{{" not in text


@pytest.mark.slow
def test_the_page_is_what_its_runs_give_now(page):
    problems = page["check"]()
    assert not problems, ("docs/sharding.md is not what its runs give now; run python "
                          "docs/sharding_page.py:\n" + "\n".join(problems))
