"""The README runs as written: every Python snippet on its own, from a directory that is not the
clone; every shell block, in order, from a scratch directory laid out like the clone's root
(TOML blocks headed `# NAME.toml` are written there first); the output shown after a block is
what it prints; and every `dnnsim ...` command of the techniques table runs.

Blocks that install software or take minutes (pip, make, reproduce, calibrate, validate) are
not run here: the Makefile and the validation tests run those commands.
"""
from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NOT_RUN = ("pip ", "make ", "dnnsim reproduce", "dnnsim calibrate", "dnnsim validate")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def shell_runs(text: str) -> list[tuple[str, str | None]]:
    """(shell block, the text block right after it or None) for the blocks this test runs."""
    found = blocks(text)
    out = []
    for i, (lang, body) in enumerate(found):
        if lang != "shell" or any(line.lstrip().startswith(NOT_RUN)
                                  for line in body.splitlines()):
            continue
        after = found[i + 1] if i + 1 < len(found) else None
        out.append((body, after[1] if after and after[0] == "text" else None))
    return out


def table_commands(text: str) -> list[str]:
    return re.findall(r"^\|[^|]+\|[^|]+\| `(dnnsim [^`]+)` \|$", text, re.M)


def environment() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def scratch_clone(tmp_path: Path) -> Path:
    """A directory where the README's relative paths resolve as in the clone's root."""
    (tmp_path / "validation").symlink_to(ROOT / "validation")
    for lang, body in blocks(README.read_text()):
        head = body.splitlines()[0] if body else ""
        if lang == "toml" and re.fullmatch(r"# [\w.-]+\.toml", head):
            (tmp_path / head[2:]).write_text(body)
    return tmp_path


def missing_lines(shown: str, printed: str) -> list[str]:
    """Lines of the README's example output that the command did not print."""
    return [line for line in shown.splitlines()
            if line.strip() and line.strip() != "..." and line not in printed.splitlines()]


def label(line: str) -> str:
    """A printed line's label: the text before its first digit."""
    match = re.search(r"\d", line)
    return line[:match.start()] if match else line


def refreshed(shown: str, printed: str) -> str:
    """`shown` with each line that is no longer printed replaced by the printed line with the
    same label, matched in order (so repeated labels pair up in turn)."""
    lines, at = printed.splitlines(), 0
    out = []
    shown_lines = shown.splitlines()
    for n, line in enumerate(shown_lines):
        if line.strip() in ("", "..."):
            out.append(line)
            continue
        same = [i for i in range(at, len(lines)) if lines[i] == line]
        # a moved line is looked for before the next line the README still shows unchanged
        # (the next command's header), so two commands' outputs never swap figures
        later = {s_ for s_ in shown_lines[n + 1:] if s_.strip() not in ("", "...")}
        end = next((i for i in range(at, len(lines)) if lines[i] in later), len(lines))
        alike = [i for i in range(at, end) if label(lines[i]) == label(line)] or \
            [i for i in range(at, len(lines)) if label(lines[i]) == label(line)]
        closest = max(alike, default=None,   # the line most like it (devices=8 to devices=8)
                      key=lambda i: (difflib.SequenceMatcher(None, lines[i], line).ratio(), -i))
        pick = same[0] if same else closest
        out.append(line if pick is None else lines[pick])
        at = at if pick is None else pick + 1
    return "\n".join(out) + "\n"


def test_refresh_replaces_moved_figures_in_order():
    printed = "a: 1 x\n  time 12.5 ms\nb: 1 x\n  time 30.1 ms\n"
    assert refreshed("a: 1 x\n  time 11.0 ms\n...\n  time 29.0 ms\n", printed) == \
        "a: 1 x\n  time 12.5 ms\n...\n  time 30.1 ms\n"
    rows = "  devices=1  efficiency=1\n  devices=8  efficiency=0.75\n"
    assert refreshed("...\n  devices=8  efficiency=0.7\n", rows) == \
        "...\n" + rows.splitlines()[1] + "\n"
    # a figure moved in the first command's output is not taken from the second's, even where
    # the second's looks more like the old one
    two = "a: run\n  throughput 5109 samples/s\nb: run\n  throughput 3424 samples/s\n"
    assert refreshed("a: run\n  throughput 4942 samples/s\n...\nb: run\n  throughput 3164 "
                     "samples/s\n", two) == two.replace("\nb:", "\n...\nb:")


def test_the_parsers_find_what_the_readme_holds():
    text = README.read_text()
    assert sum(lang == "python" for lang, _ in blocks(text)) >= 2
    assert len(shell_runs(text)) >= 4 and len(table_commands(text)) >= 6
    assert missing_lines("a\n...\nb", "a\nb\n") == []
    assert missing_lines("a\nc", "a\nb") == ["c"]


@pytest.mark.slow
@pytest.mark.parametrize("index", range(sum(lang == "python"
                                            for lang, _ in blocks(README.read_text()))))
def test_python_snippet_runs_on_its_own(index, tmp_path):
    code = [body for lang, body in blocks(README.read_text()) if lang == "python"][index]
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"README python snippet {index} failed:\n{done.stderr[-3000:]}"


@pytest.mark.slow
def test_shell_blocks_run_and_print_what_the_readme_shows(tmp_path):
    work = scratch_clone(tmp_path)
    for body, shown in shell_runs(README.read_text()):
        done = subprocess.run(["bash", "-e", "-c", body], cwd=work, env=environment(),
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"README block failed:\n{body}\n{done.stderr[-3000:]}"
        if shown:
            missing = missing_lines(shown, done.stdout)
            assert not missing, (f"README output is not what this prints now; rerun and paste:"
                                 f"\n{body}\nmissing: {missing}\nprinted:\n{done.stdout[-4000:]}")


@pytest.mark.slow
def test_technique_table_commands_run(tmp_path):
    for command in table_commands(README.read_text()):
        done = subprocess.run(["bash", "-e", "-c", command], cwd=tmp_path, env=environment(),
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"


if __name__ == "__main__":
    # python tests/test_readme.py: rerun the README's shell blocks and rewrite the figures of
    # the outputs shown after them to what they print now (review the diff before committing)
    import tempfile
    text = README.read_text()
    with tempfile.TemporaryDirectory() as scratch:
        work = scratch_clone(Path(scratch))
        for body, shown in shell_runs(text):
            done = subprocess.run(["bash", "-e", "-c", body], cwd=work, env=environment(),
                                  capture_output=True, text=True, timeout=900, check=True)
            if shown:
                text = text.replace(f"{body}```\n\n```text\n{shown}",
                                    f"{body}```\n\n```text\n{refreshed(shown, done.stdout)}")
    README.write_text(text)
    print("rewrote the README's example outputs; check git diff README.md")
