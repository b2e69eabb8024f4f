"""What the docs pages written from a template share (docs/clusters_page.py,
docs/gpu_validation_page.py): each `{{name}}` of a page's template (docs/PAGE.in) is a figure
some run measures, the page is the template filled, and `--check` fails where a committed page
differs from what its generator writes or where a comparison its prose makes no longer holds.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
NUMBER = re.compile(r"[-+]?\d[\d,]*\.?\d*")


def numbers(text: str) -> list[float]:
    """The numbers of a figure, in order ('+2 to +14' -> [2, 14], '1,024' -> [1024])."""
    return [float(n.replace(",", "")) for n in NUMBER.findall(text)]


def low(text: str) -> float:
    """The first number of a figure ('0.3-0.4' -> 0.3)."""
    return numbers(text)[0]


def high(text: str) -> float:
    """The last number of a figure ('0.3-0.4' -> 0.4)."""
    return numbers(text)[-1]


def merged(parts: Iterable[tuple[str, dict[str, str]]]) -> dict[str, str]:
    """The figures of every (section name, figures) part; a name two sections give
    differently is an error."""
    out: dict[str, str] = {}
    for section, figures in parts:
        for name, text in figures.items():
            if name in out and out[name] != text:
                raise ValueError(f"{section} gives {name} as {text!r}, another section as "
                                 f"{out[name]!r}")
            out[name] = text
    return out


def fill(pages: dict[str, str], values: dict[str, str], header: str) -> dict[str, str]:
    """Each page: `header` (formatted with the page's name) and its template with each
    placeholder replaced by its figure; a placeholder with no figure, or a figure no
    template names, is an error."""
    named = {n for template in pages.values() for n in PLACEHOLDER.findall(template)}
    missing, unused = sorted(named - set(values)), sorted(set(values) - named)
    if missing or unused:
        raise ValueError(f"the templates name figures nothing measures: {missing}; figures "
                         f"no template names: {unused}")
    return {page: header.format(page=page) + PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
            for page, text in pages.items()}


def differences(written: dict[str, str], generator: str) -> list[str]:
    """Where a committed page is not what `generator` writes, as a diff."""
    out: list[str] = []
    for page, text in written.items():
        path = DOCS / page
        shown = path.read_text() if path.exists() else ""
        out += difflib.unified_diff(shown.splitlines(), text.splitlines(), f"docs/{page}",
                                    f"what {generator} writes", lineterm="", n=0)
    return out


def write(written: dict[str, str]) -> None:
    """Each page replaced whole or not at all."""
    for page, text in written.items():
        new = DOCS / f"{page}.new"
        new.write_text(text)
        os.replace(new, DOCS / page)


def filled_by(template: str, tables: bool = False) -> re.Pattern:
    """A pattern a page matches where it is `template` with each placeholder filled (the
    same figure wherever one placeholder recurs), so that a sentence edited in the page
    alone shows. A figure is one line of text, or any text where the page fills whole
    `tables` in."""
    figure = r"(?P<%s>.+?)" if tables else r"(?P<%s>[^\n]+?)"
    pieces = PLACEHOLDER.split(template)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else figure % p
                              if p not in pieces[1:i:2] else r"(?P=%s)" % p
                              for i, p in enumerate(pieces)), re.S)


Written = Callable[[], tuple[dict[str, str], list[str]]]
CLAIMS = "_claims"


def peak_bytes(summary: dict) -> float:
    """A `dnnsim simulate --json` summary's peak memory, the largest device's."""
    peak = summary["peak_memory_bytes"]
    return max(peak.values()) if isinstance(peak, dict) else peak


def failing(checks: dict[str, bool]) -> str:
    """The claims of `checks` that do not hold, as the figure `CLAIMS` carries them."""
    return json.dumps([claim for claim, holds in checks.items() if not holds])


def written_by(figures: Callable[[], dict[str, str]], names: Iterable[str],
               header: str) -> Written:
    """A generator's `written`: the pages `names` (each filled from docs/NAME.in) as
    `figures` fills them now, and the claims (its figure `CLAIMS`) those runs no longer bear
    out."""
    def written() -> tuple[dict[str, str], list[str]]:
        values = figures()
        failed = json.loads(values.pop(CLAIMS))
        texts = {page: (DOCS / f"{page}.in").read_text() for page in names}
        return fill(texts, values, header), [
            f"the prose says {claim}, which no longer holds" for claim in failed]
    return written


def check(written: Written, generator: str) -> list[str]:
    """What --check reports: the claims the figures no longer bear out, and where a
    committed page differs from what `generator` writes. written: the pages as the generator
    fills them, and those claims."""
    pages, found = written()
    return found + differences(pages, generator)


def main(argv: list[str], written: Written, generator: str) -> int:
    """Write the pages, or with --check compare them (check); print what no longer holds
    (exit 1)."""
    if "--check" in argv:
        found = check(written, generator)
    else:
        pages, found = written()
        write(pages)
    print("\n".join(found), file=sys.stderr, end="\n" if found else "")
    return 1 if found else 0


def header(generator: str, source: str = "the runs it names",
           template: str = "docs/{page}.in") -> str:
    """The line a generated page opens with: what writes it, from what, and how to change it
    ({page} is left for fill to name the page)."""
    return (f"<!-- generated by {generator} from {template} and {source}; edit the template "
            "or the code, then run it -->\n\n")


def generator(figures: Callable[[], dict[str, str]], names: Iterable[str], header: str,
              name: str) -> tuple[Written, Callable[[], list[str]], Callable[[list[str]], int]]:
    """A page generator's `written` (written_by), `check` (what --check reports) and `main`
    (write the pages or, with --check, compare them); name: the generator's path."""
    made = written_by(figures, names, header)
    return made, lambda: check(made, name), lambda argv: main(argv, made, name)
