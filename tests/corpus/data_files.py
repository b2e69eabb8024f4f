"""Corpus cases for the files dnnsim reads as data or must not destroy: results files given to
`dnnsim plot`, files in the way of `dnnsim sweep --out`, target files given to `dnnsim
reproduce --targets`, and command lines past a limit.

kinds: results (payload: the results file's bytes), sweep-out (payload: bytes already at
--out, which must be left as they are), targets (payload: one target file's bytes).
"""
from __future__ import annotations

import json

HEADER = {"dnnsim_journal": "sweep results", "format": 1, "identity": "0123456789abcdef"}
RECORD = {"sweep": "0123456789abcdef", "point": "fedcba9876543210", "axes": {"devices": 1},
          "scenario": {"workload": "lenet5", "batch": 4, "hardware": "v100",
                       "policy": "sequential"},
          "status": "ok", "summary": {"iteration_time_s": 0.001,
                                      "throughput_samples_per_s": 4000.0}}
GARBAGE = {"nul-bytes": b"\x00" * 64, "high-bytes": bytes(range(128, 256)),
           "utf16": "{}".encode("utf-16"), "deep-list": b"[" * 100_000,
           "deep-object": b'{"a":' * 50_000, "huge-number": b"1" + b"0" * 5000 + b"\n"}


def _lines(*docs) -> bytes:
    return b"".join((d if isinstance(d, bytes) else json.dumps(d).encode()) + b"\n"
                    for d in docs)


def results_cases(case) -> list:
    """Malformed results files: each must be one error line from `dnnsim plot`."""
    out = []

    def add(cid: str, payload: bytes, *expect: str) -> None:
        out.append(case(f"results-{cid}", "results", payload, tuple(expect)))

    add("empty", b"", "holds no results")
    add("no-header", _lines(RECORD), "not a dnnsim sweep results file")
    add("one-line-no-newline", json.dumps(RECORD).encode(), "not a dnnsim sweep results file")
    add("header-of-calibration", _lines({**HEADER, "dnnsim_journal": "calibration"}, RECORD),
        "calibration")
    add("header-of-reproduce", _lines({**HEADER, "dnnsim_journal": "reproduce"}), "reproduce")
    add("format-2", _lines({**HEADER, "format": 2}, RECORD), "format")
    add("format-text", _lines({**HEADER, "format": "1"}, RECORD), "format")
    add("header-is-list", _lines([HEADER], RECORD), "header")
    add("header-only", _lines(HEADER), "holds no results")
    for name, data in GARBAGE.items():
        add(f"garbage-{name}", data, "results file")
        add(f"garbage-after-header-{name}", _lines(HEADER, data, RECORD), "line 2", "result 1")
    add("not-json-mid-file", _lines(HEADER, RECORD, b"{oops", RECORD), "line 3")
    for token in ("NaN", "Infinity", "-Infinity"):
        add(f"token-{token}", _lines(HEADER, json.dumps(RECORD).replace("0.001", token)
                                     .encode()), "line 2")
    add("line-is-list", _lines(HEADER, [RECORD]), "JSON object")
    add("line-is-number", _lines(HEADER, 7), "JSON object")
    add("line-is-string", _lines(HEADER, "ok"), "JSON object")
    for field in ("sweep", "point", "axes", "scenario", "status"):
        add(f"missing-{field}", _lines(HEADER, {k: v for k, v in RECORD.items() if k != field}),
            field)
        for i, wrong in enumerate((None, 3, [1], True)):
            if not isinstance(wrong, type(RECORD[field])):
                add(f"wrong-{field}-{i}", _lines(HEADER, {**RECORD, field: wrong}), field)
    for i, wrong in enumerate((3, "x", [1])):
        add(f"wrong-summary-{i}", _lines(HEADER, {**RECORD, "summary": wrong}), "summary")
    add("unknown-scenario-field", _lines(HEADER, {**RECORD, "scenario": {
        **RECORD["scenario"], "gpus": 4}}), "gpus")
    add("options-not-table", _lines(HEADER, {**RECORD, "scenario": {
        **RECORD["scenario"], "options": [1]}}), "options")
    add("two-sweeps", _lines(HEADER, RECORD, {**RECORD, "sweep": "ffffffffffffffff",
                                              "point": "0000000000000000"}), "mixes")
    return out


def sweep_out_cases(case) -> list:
    """Files at `sweep --out` that are not this sweep's results: refused, left untouched."""
    out = []

    def add(cid: str, payload: bytes, *expect: str) -> None:
        out.append(case(f"sweep-out-{cid}", "sweep-out", payload, expect or ("left as it is",)))

    add("one-line-no-newline", b'{"notes": "my only copy"}')
    add("text-no-newline", b"shopping list: eggs")
    add("text-lines", b"line one\nline two\n")
    add("json-lines-no-header", _lines(RECORD, RECORD))
    add("result-no-header-torn", _lines(RECORD) + b'{"sweep": "01')
    add("csv", b"devices,time\n1,0.5\n2,0.3\n")
    add("toml", b'[base]\nworkload = "lenet5"\n')
    add("calibration-journal", _lines({**HEADER, "dnnsim_journal": "calibration"}))
    add("reproduce-journal", _lines({**HEADER, "dnnsim_journal": "reproduce"}))
    add("other-sweep", _lines(HEADER, RECORD), "another sweep")
    add("other-sweep-torn", _lines(HEADER, RECORD) + b'{"swe', "another sweep")
    add("format-2", _lines({**HEADER, "format": 2}), "format")
    add("header-list", _lines([HEADER]))
    for name, data in GARBAGE.items():
        add(f"garbage-{name}", data)
        add(f"garbage-{name}-no-newline", data.rstrip(b"\n"))
    add("not-json-mid-file", _lines(HEADER, b"{oops", RECORD), "line 2")
    add("blank-lines", b"\n\n\n")
    add("one-newline", b"\n")
    add("spaces-no-newline", b"   ")
    add("header-no-newline", json.dumps(HEADER).encode())
    add("utf8-bom-json", b"\xef\xbb\xbf" + _lines(RECORD))
    add("markdown", b"# My results\n\n| a | b |\n")
    for token in ("NaN", "Infinity"):
        add(f"token-{token}", _lines(json.dumps(HEADER).encode(), json.dumps(RECORD).replace(
            "0.001", token).encode()), "another sweep", "line 2")
    return out


TARGET = '''paper = "{paper}"
title = "A paper"
source = "a journal"

[[target]]
id = "t1"
figure = "fig 1"
published = 2.0
tolerance = 0.5
status = "solid"
metric = "speedup"
[target.scenario]
workload = "{workload}"
batch = 4
hardware = "v100"
devices = 2
link = "nvlink2"
policy = "data-parallel"
[target.baseline]
devices = 1
policy = "sequential"
'''


def target_cases(case) -> list:
    """Target files that `dnnsim reproduce --targets` must refuse before writing anything."""
    out = []

    def add(cid: str, text: str, *expect: str) -> None:
        out.append(case(f"targets-{cid}", "targets", text.encode(), tuple(expect)))

    good = TARGET.format(paper="ok-paper", workload="lenet5")
    for i, name in enumerate(("../../x", "../x", "/etc", "a/b", "..", ".", ".hidden", "",
                              " x", "x y", "x\\\\y", "-x", "x;rm", "é", "x\\u0000")):
        add(f"paper-name-{i}", TARGET.format(paper=name, workload="lenet5"), "plain name")
    add("paper-number", good.replace('paper = "ok-paper"', "paper = 7"), "plain name")
    add("paper-list", good.replace('paper = "ok-paper"', 'paper = ["a"]'), "plain name")
    for i, wl in enumerate(("evil.py:factory", "/tmp/x.py:f", "../net.py:build", "a:b")):
        add(f"workload-file-{i}", TARGET.format(paper="p", workload=wl), "Python file")
    add("baseline-workload-file", good.replace('devices = 1\npolicy = "sequential"',
                                               'workload = "x.py:f"\ndevices = 1'),
        "Python file")
    for field in ("paper", "title", "source"):
        add(f"missing-{field}", "\n".join(x for x in good.splitlines()
                                          if not x.startswith(f"{field} =")), field)
    add("missing-targets", good.split("[[target]]")[0], "target")
    add("target-not-list", good.split("[[target]]")[0] + 'target = "t1"\n', "target")
    add("target-items-not-tables", good.split("[[target]]")[0] + "target = [1, 2]\n",
        "target")
    for field in ("id", "figure", "published", "tolerance", "status", "metric"):
        add(f"target-missing-{field}", "\n".join(x for x in good.splitlines()
                                                 if not x.startswith(f"{field} =")), field)
    add("target-unknown-field", good.replace('status = "solid"',
                                             'status = "solid"\nstatsu = 1'), "statsu")
    add("file-unknown-field", 'papers = "x"\n' + good, "papers")
    add("status-unknown", good.replace('status = "solid"', 'status = "solidd"'), "status")
    add("toml-broken", good.replace('title = "A paper"', 'title = "A paper'), "TOML")
    wrong = {"published": ['"x"', "nan", "inf", "[2.0]", "true"],
             "tolerance": ['"0.5"', "[1]", "-0.1", "nan"],
             "id": ["3", "[1]"], "figure": ["1.5"], "metric": ["5", "{a = 1}"]}
    for field, texts in wrong.items():
        line = next(x for x in good.splitlines() if x.startswith(f"{field} ="))
        for i, text in enumerate(texts):
            add(f"wrong-{field}-{i}", good.replace(line, f"{field} = {text}"), field)
    metric = 'metric = "speedup"'
    extras = {"defaults-text": ('defaults = "x"', "defaults"),
              "defaults-numbers": ("defaults = [1, 2]", "defaults"),
              "lower-text": ('lower = "a"', "lower"), "upper-nan": ("upper = nan", "upper"),
              "kind-unknown": ('tolerance_kind = "percent"', "tolerance_kind"),
              "note-number": ("note = 3", "note"), "known-miss-bool": ("known_miss = true",
                                                                       "known_miss")}
    for cid, (line, word) in extras.items():
        add(cid, good.replace(metric, f"{metric}\n{line}"), word)
    add("published-zero-relative", good.replace("published = 2.0", "published = 0.0"),
        "published")
    add("title-number", good.replace('title = "A paper"', "title = 5"), "title")
    add("figures-number", good.replace('title = "A paper"', 'title = "A paper"\nfigures = 5'),
        "figures")
    add("duplicate-id", good + good[good.index("[[target]]"):], "t1")
    return out


# Command lines past a limit or with a value that cannot be computed: '##' then words.
LIMIT_ARGS = [
    ("simulate --workload lenet5 --batch 2 --hardware v100 --devices 2 --link nvlink2 "
     "--policy pipeline-stale --minibatches 1000000000", "minibatches"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --devices 2 --link nvlink2 "
     "--policy decnn --inference --samples 100000000", "samples"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --devices 2 --link nvlink2 "
     "--policy decnn --inference --in-flight 99999", "in_flight"),
    ("simulate --workload lenet5 --batch 4 --hardware v100 --devices 2 --link nvlink2 "
     "--policy gpipe --micro-batches 40000", "micro_batches"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --devices 100000 --link nvlink2 "
     "--policy data-parallel", "devices"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --devices 1000000000 --link nvlink2 "
     "--policy data-parallel", "devices"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --devices 8192 --link nvlink2 "
     "--topology fully-connected --policy data-parallel", "fully connected"),
    ("tune-batch --workload lenet5 --hardware v100 --reference-batch 0", "--reference-batch"),
    ("tune-batch --workload lenet5 --hardware v100 --reference-batch -5", "--reference-batch"),
    ("tune-batch --workload lenet5 --hardware v100 --reference-lr 0", "--reference-lr"),
    ("tune-batch --workload lenet5 --hardware v100 --reference-lr -1", "--reference-lr"),
    ("tune-batch --workload lenet5 --hardware v100 --reference-lr nan", "--reference-lr"),
    ("tune-batch --workload lenet5 --hardware v100 --reference-lr inf", "--reference-lr"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 "
     "--hardware-option mem_bandwidth_Bps=1e-302", "mem_bandwidth_Bps 1e-302"),
    ("sweep tests/corpus/valid/sweep.toml --out results.jsonl --workers 0", "--workers"),
    ("sweep tests/corpus/valid/sweep.toml --out results.jsonl --workers -2", "--workers"),
    ("sweep tests/corpus/valid/sweep.toml --out .", "directory"),
    ("sweep tests/corpus/valid/sweep.toml --out no-such-folder/r.jsonl", "does not exist"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --trace .", "directory"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --plot .", "directory"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --memory-plot .", "directory"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --csv .", "directory"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --trace no-such-folder/t.json",
     "does not exist"),
    ("plot tests/corpus/valid/sweep.toml --x devices", "not a dnnsim sweep results file"),
    ("plot no-such-results.jsonl --x devices", "holds no results"),
    ("plot . --x devices", "directory"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --max-memory 10", "--max-memory"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --max-memory lots", "--max-memory"),
    ("simulate --workload lenet5 --batch 2 --hardware v100 --max-memory -4G", "--max-memory"),
    ("sweep tests/corpus/valid/sweep.toml --out r.jsonl --max-memory 1K", "--max-memory"),
]
