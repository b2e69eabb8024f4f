"""Run the commands of docs/capacity-study.md and write what they print into the page, so
that its outputs are measured, never typed:

    python docs/capacity_study_page.py            # rerun every command, rewrite the outputs
    python docs/capacity_study_page.py --check    # exit 1 where the page no longer holds

Each ```shell block runs with `bash -e` in a scratch folder laid out as a clone's root
(its `hwmodels` and `validation`), holding the page's files: a ```toml or ```python block
whose first line is `# NAME` is written there as NAME. The ```text block right after a shell
block is what its commands printed on stdout. The check compares each shown line with the
printed one: the same words, and every number within `REL_TOL` (figures move a little
whenever a hardware constant is refitted; a run that turns from fitting to out of memory
changes its words). tests/test_capacity_study.py runs the check.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PAGE = DOCS / "capacity-study.md"
REL_TOL = 0.02
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?")


def page_blocks(text: str) -> list[re.Match]:
    return list(BLOCK.finditer(text))


def page_files(text: str) -> dict[str, str]:
    """The files a reader writes before running the page's commands: NAME -> text."""
    out = {}
    for m in page_blocks(text):
        head = m.group(2).split("\n", 1)[0]
        if m.group(1) in ("toml", "python") and re.fullmatch(r"# [\w.-]+\.(toml|py)", head):
            out[head[2:]] = m.group(2)
    return out


def runs(text: str) -> list[tuple[re.Match, re.Match | None]]:
    """(shell block, the text block right after it, or None)."""
    found = page_blocks(text)
    out = []
    for m, after in zip(found, [*found[1:], None], strict=True):
        follows = after is not None and after.group(1) == "text" \
            and not text[m.end():after.start()].strip()
        if m.group(1) == "shell":
            out.append((m, after if follows else None))
    return out


def environment() -> dict:
    """dnnsim of this Python's environment, importing this clone's code."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONWARNINGS="ignore")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(DOCS.parent),
                                                      env.get("PYTHONPATH")]))
    return env


def simulate_json(argv: list[str]) -> dict:
    """`dnnsim simulate ARGV --json`'s summary (an out-of-memory run exits 3 and still
    prints it)."""
    done = subprocess.run(["dnnsim", "simulate", *argv, "--json"], env=environment(),
                          capture_output=True, text=True, timeout=1800)
    if done.returncode not in (0, 3):
        raise RuntimeError(f"dnnsim simulate {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def run_page(text: str, work: Path) -> list[str]:
    """Each shell block's stdout, the blocks run in order in `work`."""
    for name, body in page_files(text).items():
        (work / name).write_text(body)
    for folder in ("hwmodels", "validation"):   # files the page's commands read, as in a clone
        (work / folder).symlink_to(DOCS.parent / folder)
    printed = []
    for shell, _ in runs(text):
        done = subprocess.run(["bash", "-e", "-c", shell.group(2)], cwd=work,
                              env=environment(), capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"a block of the page failed:\n{shell.group(2)}\n"
                               f"{done.stderr[-3000:]}")
        printed.append(done.stdout)
    return printed


def _words_and_numbers(line: str) -> tuple[str, list[float]]:
    return NUMBER.sub("#", line), [float(n.replace(",", "")) for n in NUMBER.findall(line)]


def differences(shown: str, printed: str, rel_tol: float = REL_TOL) -> list[str]:
    """Where `shown` (the page's output) no longer is what was `printed`, line by line."""
    old, new = shown.splitlines(), printed.splitlines()
    out = [f"the page shows {len(old)} lines, the commands print {len(new)}"] \
        if len(old) != len(new) else []
    for was, now in zip(old, new, strict=False):
        (w_words, w_nums), (n_words, n_nums) = _words_and_numbers(was), _words_and_numbers(now)
        if w_words != n_words or not all(math.isclose(a, b, rel_tol=rel_tol)
                                         for a, b in zip(w_nums, n_nums, strict=True)):
            out.append(f"shown:   {was}\nprinted: {now}")
    return out


def rewritten(text: str, printed: list[str]) -> str:
    """The page with each shell block's output block replaced by what it printed."""
    pieces, at = [], 0
    for (_, output), out in zip(runs(text), printed, strict=True):
        if output is None:
            continue
        pieces += [text[at:output.start()], f"```text\n{out}```\n"]
        at = output.end()
    return "".join(pieces) + text[at:]


def check(text: str, printed: list[str]) -> list[str]:
    problems = []
    for (shell, output), out in zip(runs(text), printed, strict=True):
        if output is not None:
            problems += [f"after:\n{shell.group(2)}{d}"
                         for d in differences(output.group(2), out)]
    return problems


def main(argv: list[str]) -> int:
    text = PAGE.read_text()
    with tempfile.TemporaryDirectory() as tmp:
        printed = run_page(text, Path(tmp))
    if "--check" in argv:
        problems = check(text, printed)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    new = PAGE.with_suffix(".md.new")   # the page is replaced whole or not at all
    new.write_text(rewritten(text, printed))
    os.replace(new, PAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
