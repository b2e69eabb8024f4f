"""Hypothesis across the command-line boundary: generated scenario files, sweep files, results
lines and option values give exit 0 with finite figures in strict JSON, exit 3 for a run out of
memory, or exit 2 with one error line; never a traceback or another code."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from simulator.cli import main

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "corpus"))
from generate import to_toml  # noqa: E402  (the corpus's TOML writer)

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

numbers = st.one_of(st.integers(-5, 40), st.sampled_from([0, -1, 2 ** 63, 1e-302, 1e308]),
                    st.floats(allow_nan=True, allow_infinity=True))
names = st.sampled_from(["lenet5", "resnet20", "v100", "k40", "nvlink2", "eth10g", "pcie3",
                         "sequential", "data-parallel", "gpipe", "swap", "", "x", "../x",
                         "lenet5:f", "nope.py:f"])
values = st.one_of(numbers, names, st.booleans(), st.lists(st.integers(0, 4), max_size=3),
                   st.dictionaries(st.sampled_from(["bucket_mb", "memory_bytes", "depth"]),
                                   numbers, max_size=2))
FIELDS = ["workload", "batch", "hardware", "policy", "devices", "link", "inference",
          "topology", "precision", "optimizer", "optimizer_loop", "memory_format", "options",
          "hardware_options", "workload_options", "bogus"]
GOOD = {"workload": "lenet5", "batch": 2, "hardware": "v100", "policy": "sequential"}
VALID = {"workload": ["resnet20", "alexnet"], "batch": [1, 8], "hardware": ["k40", "a100"],
         "policy": ["swap", "recompute"], "devices": [1], "inference": [True],
         "precision": ["amp-fp16"], "topology": ["ring"], "optimizer": ["adam"],
         "optimizer_loop": [True], "memory_format": ["nhwc"], "hardware_options": [
             {"memory_bytes": 1e6}]}


@st.composite
def scenarios(draw) -> dict:
    doc = dict(GOOD)
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)):
        doc[name] = draw(st.one_of(values, st.sampled_from(VALID.get(name, [None]))))
    if draw(st.integers(0, 9)) == 0:
        doc.pop(draw(st.sampled_from(list(GOOD))))
    return doc


def _finite(x) -> bool:
    if isinstance(x, float):
        return math.isfinite(x)
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return True


def _check(code: int, out: str, err: str) -> None:
    assert "Traceback" not in err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dnnsim: error: "), err
    else:
        assert code in (0, 3), (code, err)


def _toml(doc: dict) -> bytes | None:
    try:
        return to_toml(doc)
    except TypeError:   # a value TOML cannot hold (an integer past 64 bits)
        return None


@settings(SETTINGS, max_examples=60)
@given(doc=scenarios())
def test_generated_scenarios(tmp_path, capsys, doc):
    text = _toml(doc)
    if text is None:
        return
    path = tmp_path / "s.toml"
    path.write_bytes(text)
    code = main(["simulate", str(path), "--json"])
    event(f"exit {code}")
    out, err = capsys.readouterr()
    _check(code, out, err)
    if code in (0, 3):
        result = json.loads(out, parse_constant=lambda t: (_ for _ in ()).throw(ValueError(t)))
        assert _finite(result)
        assert result["status"] == ("ok" if code == 0 else "out_of_memory")


@SETTINGS
@given(axis=st.sampled_from(["batch", "devices", "link", "policy", "options.bucket_mb",
                             "hardware_options.memory_bytes", "precision", "nope"]),
       axis_values=st.lists(values, max_size=3), exclude=st.booleans())
def test_generated_sweeps(tmp_path, capsys, axis, axis_values, exclude):
    doc = {"base": {**GOOD, "policy": "data-parallel", "link": "nvlink2"},
           "axes": {axis: axis_values}}
    if exclude and axis_values:
        doc["exclude"] = [{axis: axis_values[0]}]
    text = _toml(doc)
    if text is None:
        return
    path, out_file = tmp_path / "s.toml", tmp_path / "r.jsonl"
    path.write_bytes(text)
    out_file.unlink(missing_ok=True)
    code = main(["sweep", str(path), "--out", str(out_file), "--workers", "1", "--quiet"])
    event(f"exit {code}")
    out, err = capsys.readouterr()
    _check(code, out, err)
    assert code != 3
    if code == 0:
        raw = out_file.read_text()
        assert "NaN" not in raw and "Infinity" not in raw
        for line in raw.splitlines()[1:]:
            rec = json.loads(line)
            assert rec["status"] in ("ok", "out_of_memory", "error")
            assert _finite(rec.get("summary", {}))
    elif out_file.exists():
        assert out_file.read_bytes().count(b"\n") <= 1   # a refused sweep runs no point


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5)
                           | st.floats(allow_nan=False, allow_infinity=False),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=8)
RECORD = {"sweep": "s", "point": "p", "axes": {"devices": 1}, "status": "ok",
          "scenario": {**GOOD}, "summary": {"iteration_time_s": 0.001}}


@SETTINGS
@given(field=st.sampled_from(["sweep", "point", "axes", "status", "scenario", "summary",
                              "extra"]), value=json_values)
def test_generated_results_lines(tmp_path, capsys, field, value):
    path = tmp_path / "r.jsonl"
    header = {"dnnsim_journal": "sweep results", "format": 1, "identity": "s"}
    path.write_text(json.dumps(header) + "\n" + json.dumps({**RECORD, field: value}) + "\n")
    code = main(["plot", str(path), "--x", "devices", "--y", "iteration_time_s",
                 "--out", str(tmp_path / "p.png")])
    out, err = capsys.readouterr()
    _check(code, out, err)
    assert code in (0, 2)


@SETTINGS
@given(flag=st.sampled_from(["--bucket-mb", "--batch", "--devices", "--precision",
                             "--hardware-option", "--workload-option", "--option"]),
       text=st.one_of(st.text(max_size=12), numbers.map(str)))
def test_generated_option_values(tmp_path, capsys, flag, text):
    if text.startswith("-") or "\x00" in text:
        text = "x" + text.replace("\x00", "")
    argv = ["simulate", "--workload", "lenet5", "--batch", "2", "--hardware", "v100",
            "--devices", "2", "--link", "nvlink2", "--policy", "data-parallel", flag, text]
    code = main(argv)
    out, err = capsys.readouterr()
    _check(code, out, err)


PUBLISHED = (ROOT / "validation" / "measured" / "published" / "single_gpu.csv").read_bytes()
PUBLISHED_LINES = PUBLISHED.splitlines(keepends=True)[:3]     # the header and two rows
CSV_MUTATIONS = ["bom", "duplicate column", "drop column", "header only", "cut row",
                 "bad bytes", "cell", "blank lines", "crlf"]


@SETTINGS
@given(mutations=st.lists(st.sampled_from(CSV_MUTATIONS), max_size=3, unique=True),
       column=st.integers(0, 20), cell=st.one_of(st.text(max_size=6), numbers.map(str)))
def test_generated_published_tables(tmp_path, capsys, mutations, column, cell):
    """A published table a spreadsheet could write (a byte-order mark, CRLF, blank lines) or
    a person could break (a column twice or missing, a cut row, bytes that are not UTF-8, any
    cell) is scored or refused in one line."""
    import csv
    import io
    rows = list(csv.reader(io.StringIO(b"".join(PUBLISHED_LINES).decode())))
    column %= len(rows[0])
    if "duplicate column" in mutations:
        rows = [r + [r[column]] for r in rows]
    if "drop column" in mutations:
        rows = [r[:column] + r[column + 1:] for r in rows]
    if "cell" in mutations:
        rows[1][column % len(rows[1])] = cell
    if "cut row" in mutations:
        rows[2] = rows[2][:column % len(rows[2])]
    if "header only" in mutations:
        rows = rows[:1]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n" if "crlf" in mutations else "\n").writerows(rows)
    text = buf.getvalue().encode("utf-8", "surrogatepass")
    if "blank lines" in mutations:
        text = text.replace(b"\n", b"\n\n", 1)
    if "bad bytes" in mutations:
        text = text.replace(b",", b",\xff\xfe", 1)
    if "bom" in mutations:
        text = b"\xef\xbb\xbf" + text
    path = tmp_path / "t.csv"
    path.write_bytes(text)
    code = main(["validate", "--published", str(path)])
    event(f"exit {code}")
    out, err = capsys.readouterr()
    _check(code, out, err)
    assert code in (0, 2)
