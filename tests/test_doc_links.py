"""A reader never follows a dead link: every relative link of the README and the docs resolves
(to a heading too, where it names one), every file path a page names in backquotes exists,
and every page of docs/ is listed in the docs index, docs/README.md."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                *(ROOT / "validation").rglob("README.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# a path into the repository in backquotes: `simulator/tuner.py`, `validation/targets/`
PATH = re.compile(r"`((?:docs|simulator|workloads|hwmodels|validation|tests|benchmarks|"
                  r"notebooks)/[\w./-]*)`")


def slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading: lower case, punctuation dropped,
    spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", page.read_text(), re.M)}


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue   # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path) if path else page
        assert resolved.exists(), f"{_name(page)} links to missing {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), \
                f"{_name(page)} links to {target}: {path or _name(page)} has no such heading"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_path_a_page_names_exists(page):
    for text in PATH.findall(page.read_text()):
        path = text.rstrip(".")
        module = re.sub(r"\.[A-Za-z_]\w*$", ".py", path)   # module.Attribute names module.py
        assert (ROOT / path).exists() or (ROOT / module).exists(), \
            f"{_name(page)} names {text}, which does not exist"


def test_the_docs_index_lists_every_page():
    index = (ROOT / "docs" / "README.md").read_text()
    linked = set(LINK.findall(index))
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "README.md":
            assert page.name in linked, f"docs/README.md does not list {page.name}"


def test_the_readme_points_to_the_docs_index():
    assert "(docs/README.md)" in (ROOT / "README.md").read_text()


def test_slug_follows_the_renderers_rule():
    assert slug("Precision") == "precision"
    assert slug("SparseTrain (PACT 2020): kernels from their instructions") == \
        "sparsetrain-pact-2020-kernels-from-their-instructions"
