"""The docs pages written from one template each by a generator of the sharding_page pattern
(docs/PAGE.md.in, docs/GENERATOR.py): the committed page is its template filled (no sentence
edited in the page alone), and (slow) every figure, rerun once per generator, is its pages',
byte for byte, with the prose's comparisons still holding."""
from __future__ import annotations

import functools
import runpy
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GENERATORS = {"benchmark-networks.md": "published_pages.py", "nccl.md": "nccl_page.py",
              "precision.md": "published_pages.py",
              "seed-techniques.md": "seed_techniques_page.py", "sharding.md": "sharding_page.py",
              "tensor-parallel.md": "tensor_parallel_page.py",
              "tune-batch.md": "tune_batch_page.py"}


@functools.cache
def load(script: str) -> dict:
    """A generator's namespace, loaded once per run however many pages it writes."""
    return runpy.run_path(str(DOCS / script), run_name="page")


@pytest.fixture(scope="module", params=sorted(GENERATORS))
def page(request):
    return request.param, load(GENERATORS[request.param])


def test_the_committed_page_is_its_template_filled(page):
    name, generator = page
    template = (DOCS / f"{name}.in").read_text()
    text = (DOCS / name).read_text()
    header = generator["HEADER"].format(page=name)
    assert text.startswith(header)
    found = generator["pages"].filled_by(template, tables=True).fullmatch(text[len(header):])
    assert found, (f"docs/{name} differs from docs/{name}.in beyond its figures: edit the "
                   f"template and run python docs/{GENERATORS[name]}")
    assert all(value.strip() for value in found.groupdict().values())
    assert "{{" not in text


@pytest.mark.slow   # once per generator: its check reruns the figures of all its pages
@pytest.mark.parametrize("script", sorted(set(GENERATORS.values())))
def test_the_pages_are_what_their_runs_give_now(script):
    problems = load(script)["check"]()
    names = ", ".join(f"docs/{name}" for name, by in sorted(GENERATORS.items()) if by == script)
    assert not problems, (f"{names}: not what the runs give now; run python "
                          f"docs/{script}:\n" + "\n".join(problems))
