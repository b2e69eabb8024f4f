"""No eval, exec or unpickling anywhere in the project's Python (package code, tests,
benchmarks, notebooks): configuration is TOML or JSON, parsed and checked against its schema.

The scan reads the syntax tree, so words in comments and docstrings do not count, while any
call of eval/exec/compile (also as builtins.eval), any import of pickle-like modules and any
loader that unpickles (yaml.load, torch.load, numpy.load with allow_pickle) does."""
from __future__ import annotations

import ast
import io
import json
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".venv", ".git", "build", "dist", "__pycache__", "report", ".ipynb_checkpoints"}
FORBIDDEN_CALLS = {"eval", "exec", "compile"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                     "joblib", "jsonpickle"}
FORBIDDEN_LOADERS = {("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
                     ("torch", "load"), ("pickle", "load"), ("pickle", "loads")}


def _sources() -> list[tuple[str, str]]:
    """(label, python source) for every .py file and every notebook code cell."""
    out = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.suffix == ".py":
            out.append((str(rel), path.read_text(encoding="utf-8")))
        elif path.suffix == ".ipynb":
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
            for i, cell in enumerate(cells):
                if cell.get("cell_type") == "code":
                    src = "".join(cell.get("source", []))
                    # IPython magics are not Python
                    src = "\n".join(line for line in src.splitlines()
                                    if not line.lstrip().startswith(("%", "!")))
                    out.append((f"{rel} cell {i}", src))
    return out


def offences(source: str) -> list[str]:
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in FORBIDDEN_CALLS:
                found.append(f"line {node.lineno}: {f.id}(")
            elif isinstance(f, ast.Attribute):
                base = f.value.id if isinstance(f.value, ast.Name) else ""
                if f.attr in FORBIDDEN_CALLS and base in ("builtins", "__builtins__"):
                    found.append(f"line {node.lineno}: {base}.{f.attr}(")
                if (base, f.attr) in FORBIDDEN_LOADERS:
                    found.append(f"line {node.lineno}: {base}.{f.attr}(")
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant)
                                                     and kw.value.value is False):
                    found.append(f"line {node.lineno}: allow_pickle")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            for name in names:
                if name.split(".")[0] in FORBIDDEN_MODULES or name == "yaml.load":
                    found.append(f"line {node.lineno}: import {name}")
    # any other mention in code (getattr(x, "loads") aside): a pickle-ish identifier
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.string in FORBIDDEN_MODULES:
            found.append(f"line {tok.start[0]}: {tok.string}")
    return sorted(set(found))


SOURCES = _sources()


def test_the_scan_sees_the_project():
    labels = [label for label, _ in SOURCES]
    assert any(label.startswith("simulator/") for label in labels)
    assert any(label.startswith("hwmodels/") for label in labels)
    assert len(labels) > 50


@pytest.mark.parametrize("bad", [
    "x = eval('1')", "exec(code)", "import pickle", "from pickle import loads",
    "import marshal", "yaml.load(open(f))", "torch.load(path)", "np.load(f, allow_pickle=True)",
    "builtins.eval(s)", "data = cloudpickle.loads(b)", "compile(src, 'f', 'exec')",
])
def test_the_scan_catches(bad):
    assert offences(bad)


@pytest.mark.parametrize("fine", [
    "model.eval()", "# never eval user input", "'''no pickle here'''", "x = evaluate(1)",
    "np.load(f, allow_pickle=False)", "json.loads(s)", "tomllib.loads(t)",
])
def test_the_scan_leaves_alone(fine):
    assert not offences(fine)


def test_no_eval_exec_or_unpickling_in_the_project():
    bad = {label: found for label, src in SOURCES if (found := offences(src))}
    assert not bad, f"forbidden constructs: {bad}"
