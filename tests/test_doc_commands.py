"""Every command a docs page shows still takes the arguments the page gives it: a `dnnsim`
command parses as the command line parses it (each flag the command's, or an option of the
policy it names), a `python script.py` or `python -m module` command names a file or module
of the clone and flags its source declares, and a `pytest` command names test files that
exist. The pages whose outputs are shown run their commands in their own tests
(tests/test_capacity_study.py, tests/test_megatron_page.py, tests/test_clusters_page.py);
this one covers every page, without running the commands (some take minutes)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from simulator import policies
from simulator.cli import _split_extra, build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INDENTED = re.compile(r"(?:^(?: {4}|\t).*\S.*\n?)+", re.M)   # continuations deeper
COMMAND = re.compile(r"^(?:[A-Z_]+=\S+ )*(dnnsim|python) ")
# what a page writes for "any of" or "optional": [--flag X], A|B, FILE ..., # a comment
OPTIONAL = re.compile(r"\[([^\[\]]*)\]")


def commands(text: str) -> list[str]:
    """The dnnsim and python commands of a page's shell, plain and indented blocks, each on
    one line (continuations joined), optional parts unbracketed and comments dropped."""
    bodies = [body for lang, body in FENCE.findall(text) if lang in ("", "shell", "sh", "bash")]
    bodies += [m.group(0) for m in INDENTED.finditer(FENCE.sub("", text))]
    out = []
    for body in bodies:
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            line = line.split(" #", 1)[0].strip()
            if COMMAND.match(line):
                while OPTIONAL.search(line):
                    line = OPTIONAL.sub(lambda m: m.group(1).split("|")[0], line)
                out.append(re.sub(r"^(?:[A-Z_]+=\S+ )+", "", line).replace(" ...", ""))
    return out


CASES = [(page.name, cmd) for page in PAGES for cmd in commands(page.read_text())]


def test_the_pages_show_commands():
    assert len(CASES) > 50
    assert {page for page, _ in CASES} >= {"clusters.md", "importing.md", "gpu-validation.md"}


def _dnnsim(argv: list[str]) -> None:
    parser = build_parser()
    argv, extra = _split_extra(parser, argv)
    args, unknown = parser.parse_known_args(argv)
    assert not unknown, f"{argv[0]} does not take {unknown}"
    if not extra:
        return
    assert args._allow_extra, f"{argv[0]} takes no policy options, the page gives {extra}"
    if getattr(args, "scenario", None) and args.policy is None:
        return   # the policy is the scenario file's: checked where the file is
    policy = args.policy or "sequential"   # simulate's without a scenario
    options = policies.get(policy).options
    for token in extra:
        if token.startswith("--"):
            key = token[2:].split("=", 1)[0].replace("-", "_")
            assert key in options, f"policy {policy!r} has no option {token}"


def _source(argv: list[str]) -> tuple[Path, list[str]]:
    """The file a python command runs and the arguments it is given."""
    if argv[0] == "-m":
        module = ROOT / argv[1].replace(".", "/")
        path = module.with_suffix(".py") if module.with_suffix(".py").exists() \
            else module / "__main__.py"
        return path, argv[2:]
    return ROOT / argv[0], argv[1:]


def argv_of(command: str) -> list[str]:
    """The command's own words: cut where a pipe, `;`, `&&` or `||` hands over to another,
    a shell variable or arithmetic (`$batch`, `$((8 * 4))`) or a one-letter placeholder
    (`--threads N`) read as 1."""
    command = re.split(r" (?:\||;|&&|\|\|) ", command.replace(";", " ; "), maxsplit=1)[0]
    words = shlex.split(re.sub(r"\$\(\([^)]*\)\)|\$\{?\w+\}?", "1", command))
    return ["1" if re.fullmatch(r"[A-Z]", w) else w for w in words]   # --threads N


@pytest.mark.parametrize(("page", "command"), CASES, ids=[f"{p}:{c[:60]}" for p, c in CASES])
def test_a_command_of_the_page_takes_its_arguments(page, command):
    argv = argv_of(command)
    if argv[0] == "dnnsim":
        _dnnsim(argv[1:])
        return
    if argv[1:3] == ["-m", "pytest"]:
        for path in (a.split("::")[0] for a in argv[3:] if not a.startswith("-")):
            assert (ROOT / path).exists(), f"{page}: {command}: no {path}"
        return
    path, args = _source(argv[1:])
    assert path.exists(), f"{page}: {command}: no {path.relative_to(ROOT)}"
    source = path.read_text()
    if path.name == "__main__.py":   # a package's main reads its flags from its modules
        source += "".join(p.read_text() for p in path.parent.glob("*.py"))
    for flag in (a.split("=", 1)[0] for a in args if a.startswith("--")):
        assert f'"{flag}"' in source, f"{page}: {command}: {path.name} declares no {flag}"
