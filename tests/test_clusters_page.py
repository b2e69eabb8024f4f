"""docs/clusters.md and docs/data-parallel-scaling.md are their templates (docs/PAGE.in) with
every figure measured: each committed page is its template filled (no sentence edited in the
page alone), the filling refuses a figure nothing measures or nobody quotes, the prose's
comparisons are checked, and (slow) every figure, rerun, is the pages', byte for byte."""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def page():
    return runpy.run_path(str(DOCS / "clusters_page.py"), run_name="page")


@pytest.mark.parametrize("name", ["clusters.md", "data-parallel-scaling.md"])
def test_the_committed_page_is_its_template_filled(page, name):
    assert name in page["PAGES"]
    template = (DOCS / f"{name}.in").read_text()
    text = (DOCS / name).read_text()
    header = page["HEADER"].format(page=name)
    assert text.startswith(header)
    found = page["pages"].filled_by(template, tables=True).fullmatch(text[len(header):])
    assert found, f"docs/{name} differs from docs/{name}.in beyond its figures: edit the " \
                  "template and run python docs/clusters_page.py"
    assert all(value.strip() for value in found.groupdict().values())
    assert "{{" not in text
    assert f"({name})" in (DOCS / "README.md").read_text()


def test_filling_refuses_a_figure_missing_or_unquoted(page):
    fill = page["fill"]
    written = fill({"a.md": "a {{x}} b {{x}}\n", "b.md": "{{y}}\n"}, {"x": "1.5", "y": "2"})
    assert written == {"a.md": page["HEADER"].format(page="a.md") + "a 1.5 b 1.5\n",
                       "b.md": page["HEADER"].format(page="b.md") + "2\n"}
    with pytest.raises(ValueError, match="nothing measures"):
        fill({"a.md": "a {{x}} {{y}}\n"}, {"x": "1"})
    with pytest.raises(ValueError, match="no template names"):
        fill({"a.md": "a {{x}}\n"}, {"x": "1", "z": "2"})


FIGURES = {"small_tree_ms": "0.12", "small_ring_ms": "7.0", "big_gather_ms": "1.05",
           "big_gather_bound_ms": "1.025", "flow_above": "0%, 6% and 13%", "nic_ring_ms": "3.0",
           "flat_ring_ms": "10.9", "hd_vs_ring": "0.3-0.5 points above", "cloud_mb_slower": "27",
           "resnet_nccl_tasks": "4,101", "resnet_ring_tasks": "87,246", "dgx1_cap": "13,252",
           "img_M0063": "9,519", "img_M0050": "9,510"}


def test_the_prose_comparisons_hold_on_figures_that_bear_them_out_only(page):
    claims = page["claims"]
    assert claims(FIGURES) == []
    assert any("halving-doubling" in c
               for c in claims({**FIGURES, "hd_vs_ring": "0.2 points below"}))
    assert any("rings per NIC" in c for c in claims({**FIGURES, "nic_ring_ms": "12.0"}))
    assert any("tf.data" in c for c in claims({**FIGURES, "dgx1_cap": "9,000"}))


@pytest.mark.slow
def test_the_pages_are_what_their_runs_give_now(page, published_scaling):
    problems = page["check"](published_scaling)
    assert not problems, ("docs/clusters.md or docs/data-parallel-scaling.md is not what its "
                          "runs give now; run python docs/clusters_page.py:\n"
                          + "\n".join(problems))
