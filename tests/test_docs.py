"""The docs cannot drift from the code: the generated pages are what docs/generate.py writes
now, the scenario page documents every Scenario field, the metrics page every summary key, and
every docs/ page the README links to exists."""
from __future__ import annotations

import dataclasses
import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def generate():
    return runpy.run_path(str(DOCS / "generate.py"), run_name="docs_generate")


@pytest.mark.parametrize("page", ["policies.md", "hardware.md", "op-kinds.md"])
def test_generated_page_matches_the_code(generate, page):
    assert (DOCS / page).read_text() == generate["PAGES"][page](), \
        f"docs/{page} is out of date: run python docs/generate.py"


def test_op_kinds_page_describes_every_kind():
    from workloads.kinds import all_kinds
    text = (DOCS / "op-kinds.md").read_text()
    for kind in all_kinds():
        assert f"`{kind.name}`" in text, f"docs/op-kinds.md does not list {kind.name!r}"
        if kind.phase != "backward":
            assert kind.doc, f"op kind {kind.name!r} has no doc for docs/op-kinds.md"


def test_scenario_page_documents_every_field():
    from simulator.scenario import Scenario
    text = (DOCS / "scenarios.md").read_text()
    for f in dataclasses.fields(Scenario):
        rows = (f"| `{f.name}` |", f"| `[{f.name}]` |")   # a table field shows as [name]
        assert any(r in text for r in rows), f"docs/scenarios.md: no row for field {f.name!r}"


def test_metrics_page_defines_every_summary_key():
    from simulator import Cluster, simulate
    summary = simulate("lenet5", Cluster.build("v100", 2, "nvlink2"), "data-parallel",
                       batch=4).summary()
    text = (DOCS / "metrics.md").read_text()
    skip = {"policy", "workload", "batch", "training", "cluster", "options"}   # the inputs
    for key in set(summary) - skip:
        assert f"`{key}`" in text, f"docs/metrics.md does not define {key!r}"


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to missing {target}"
