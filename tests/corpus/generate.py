"""The malformed-input corpus: hand-written files in this folder plus cases generated here by
mutating the valid seeds in valid/ (a dropped field, a misspelt one, a wrong type, a zero,
negative, NaN or infinite number, an unknown name, a bad policy option, broken TOML, an empty
file, binary garbage).

A case is (id, kind, payload, expect): kind says how it is fed to dnnsim (scenario, profile,
sweep or catalog file, or an argument list), payload is the file's bytes or the arguments, and
expect holds words of which at least one must appear in the error (the field or the value at
fault), so that "clear" is checked, not assumed. Everything is deterministic: the garbage comes
from a seeded numpy Generator.
"""
from __future__ import annotations

import copy
import json
import math
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
VALID = HERE / "valid"


@dataclass(frozen=True)
class Case:
    id: str
    kind: str              # scenario | profile | sweep | catalog | argv
    payload: bytes | tuple
    expect: tuple[str, ...] = ()


# -- a small TOML writer for the mutated documents ---------------------------------------------
def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def to_toml(doc: dict) -> bytes:
    """Top-level tables and tables holding tables as [headers], the rest inline."""
    lines: list[str] = []
    _table(lines, [], doc)
    return ("\n".join(lines).lstrip("\n") + "\n").encode()


def _table(lines: list, path: list, table: dict) -> None:
    if path:
        lines += ["", "[" + ".".join(json.dumps(p) for p in path) + "]"]
    subs = []
    for k, v in table.items():
        if isinstance(v, dict) and v and (not path or any(isinstance(x, dict)
                                                          for x in v.values())):
            subs.append((k, v))
        else:
            lines.append(f"{json.dumps(k)} = {_value(v)}")
    for k, v in subs:
        _table(lines, path + [k], v)


# -- mutations ---------------------------------------------------------------------------------
def misspellings(key: str) -> list[str]:
    """Three typos of a name: two letters swapped, one dropped, one doubled."""
    out = []
    if len(key) > 2:
        out.append(key[0] + key[2] + key[1] + key[3:])
    out.append(key[:-1] if len(key) > 1 else key + "_")
    out.append(key + key[-1])
    return [m for m in dict.fromkeys(out) if m != key]


def _set(doc: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(doc)
    node = out
    for p in path[:-1]:
        node = node.setdefault(p, {})
    node[path[-1]] = value
    return out


def _drop(doc: dict, path: tuple) -> dict:
    out = copy.deepcopy(doc)
    node = out
    for p in path[:-1]:
        node = node[p]
    del node[path[-1]]
    return out


def _rename(doc: dict, path: tuple, new: str) -> dict:
    out = copy.deepcopy(doc)
    node = out
    for p in path[:-1]:
        node = node[p]
    node[new] = node.pop(path[-1])
    return out


BROKEN_TOML = {
    "unclosed-string": b'workload = "lenet5\nbatch = 4\n',
    "missing-value": b"workload =\nbatch = 4\n",
    "duplicate-key": b'batch = 4\nbatch = 8\n',
    "bad-table-header": b"[options\nbucket_mb = 1\n",
    "two-values": b"batch = 4 4\n",
    "unterminated-array": b"devices = [1, 2\n",
    "key-without-equals": b"workload lenet5\n",
    "bad-escape": b'workload = "len\\qet5"\n',
    "duplicate-table": b"[options]\na = 1\n[options]\nb = 2\n",
    "lone-bracket": b"[\n",
    "python-syntax": b"workload = 'lenet5'; batch = 4\n",
    "json-instead": b'{"workload": "lenet5", "batch": 4}\n',
}


def garbage(seed: int, n: int = 5) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {f"random-bytes-{i}": rng.integers(0, 256, size=int(rng.integers(1, 400)),
                                             dtype=np.uint8).tobytes() for i in range(n)}
    out["nul-bytes"] = b"\x00" * 64
    out["latin1-text"] = 'workload = "r\xe9seau"\n'.encode("latin-1")
    out["utf16-text"] = 'workload = "lenet5"\n'.encode("utf-16")
    return out


def text_cases(kind: str, seed: int, empty_is_bad: bool = True) -> list[Case]:
    cases = [Case(f"{kind}-toml-{name}", kind, data) for name, data in BROKEN_TOML.items()]
    cases += [Case(f"{kind}-{name}", kind, data) for name, data in garbage(seed).items()]
    if empty_is_bad:
        cases += [Case(f"{kind}-empty", kind, b""), Case(f"{kind}-blank", kind, b"  \n\n\t\n"),
                  Case(f"{kind}-comment-only", kind, b"# nothing here\n")]
    return cases


# -- scenario files ----------------------------------------------------------------------------
SCENARIO_WRONG_TYPES = {
    "workload": [42, ["lenet5"]], "hardware": [100, True], "policy": [1.5, {"name": "x"}],
    "link": [3], "topology": [0], "host_link": [False], "host": [7],
    "batch": ["four", 4.5, True, [4]], "devices": ["2", 2.0, False],
    "inference": ["no", 0], "workload_options": ["x", 3], "hardware_options": [[1]],
    "options": ["bucket_mb=1", 5],
}
SCENARIO_BAD_NUMBERS = {
    ("batch",): [0, -1, -32], ("devices",): [0, -2], ("devices_per_node",): [0, -1],
    ("hardware_options", "memory_bytes"): [0, -1, 1.5],
    ("hardware_options", "mem_bandwidth_Bps"): [0, -1e9, math.nan, math.inf, -math.inf],
    ("hardware_options", "peak_flops"): [0.0, math.nan, math.inf],
    ("hardware_options", "launch_overhead_s"): [-1e-6, math.nan],
    ("options", "bucket_mb"): [0, -1.0, math.nan, math.inf, -math.inf, True, [25]],
    ("workload_options", "num_classes"): [0, -10],
    ("workload_options", "width"): [0, -0.5, math.nan, math.inf],
}
SCENARIO_UNKNOWN_NAMES = {
    "workload": ["lenet6", "no-such-net"], "hardware": ["v1000", "tpu-v9"],
    "link": ["nvlink9", "carrier-pigeon"], "host_link": ["pcie9"], "host": ["ddr9"],
    "policy": ["data-paralel", "magic"], "topology": ["star", "torus"],
}
SCENARIO_BAD_OPTIONS = {
    ("options", "collectives"): ["bogus", 3], ("options", "replicas"): ["many", ""],
    ("options", "no_such_option"): [1], ("options", "bucket_mb"): ["big", "1e"],
}


def scenario_cases() -> list[Case]:
    seed = tomllib.loads((VALID / "scenario.toml").read_text())
    cases: list[Case] = []

    def add(cid: str, doc: dict, *expect: str) -> None:
        cases.append(Case(f"scenario-{cid}", "scenario", to_toml(doc), tuple(expect)))

    for key in ("workload", "batch", "hardware", "policy"):
        add(f"missing-{key}", _drop(seed, (key,)), key)
    for key in list(seed):
        for typo in misspellings(key):
            add(f"misspelt-{key}-{typo}", _rename(seed, (key,), typo), typo)
    for table in ("options", "workload_options", "hardware_options"):
        for key in seed[table]:
            for typo in misspellings(key):
                add(f"misspelt-{table}-{key}-{typo}", _rename(seed, (table, key), typo), typo)
    for key, values in SCENARIO_WRONG_TYPES.items():
        for i, v in enumerate(values):
            add(f"wrong-type-{key}-{i}", _set(seed, (key,), v), key)
    for path, values in SCENARIO_BAD_NUMBERS.items():
        for i, v in enumerate(values):
            add(f"bad-number-{'.'.join(path)}-{i}", _set(seed, path, v), path[-1])
    for key, values in SCENARIO_UNKNOWN_NAMES.items():
        for v in values:
            add(f"unknown-{key}-{v}", _set(seed, (key,), v), v)
    for path, values in SCENARIO_BAD_OPTIONS.items():
        for i, v in enumerate(values):
            add(f"bad-option-{path[-1]}-{i}", _set(seed, path, v), path[-1])
    add("several-devices-no-link", _drop(seed, ("link",)), "link")
    add("nodes-without-inter-node-link", _set(seed, ("devices_per_node",), 1),
        "inter_node_link")
    add("unknown-inter-node-link", _set(_set(seed, ("devices_per_node",), 1),
                                         ("inter_node_link",), "ib900"), "ib900")
    add("profile-does-not-exist", _set(seed, ("hardware",), "no/such/profile.toml"),
        "no/such/profile.toml")
    add("cifar-depth-not-6k+2", _set(seed, ("workload",), "resnet21"), "resnet21", "depth")
    return cases + text_cases("scenario", seed=1)


# -- calibrated profiles (--hardware PROFILE.toml) ---------------------------------------------
def profile_cases() -> list[Case]:
    seed = tomllib.loads((VALID / "profile.toml").read_text())
    cases: list[Case] = []

    def add(cid: str, doc: dict, *expect: str) -> None:
        cases.append(Case(f"profile-{cid}", "profile", to_toml(doc), tuple(expect)))

    add("missing-meta", _drop(seed, ("meta",)), "meta")
    add("missing-device-kind", _drop(seed, ("meta", "device_kind")), "device_kind")
    add("missing-device-name", _drop(seed, ("meta", "device_name")), "device_name")
    for v in ("tpu", 3):
        add(f"bad-device-kind-{v}", _set(seed, ("meta", "device_kind"), v), "device_kind")
    add("device-kind-mismatch", _set(seed, ("meta", "device_kind"), "gpu"), "device_kind",
        "is a cpu")
    add("unknown-device-name", _set(seed, ("meta", "device_name"), "xeon-9000"), "xeon-9000")
    add("device-name-not-text", _set(seed, ("meta", "device_name"), 5), "device_name")
    for typo in misspellings("machine"):
        add(f"misspelt-meta-{typo}", _rename(seed, ("meta", "machine"), typo), typo)
    for i, v in enumerate(("two", True, 2.5)):
        add(f"bad-threads-{i}", _set(seed, ("meta", "threads"), v), "threads")
    for i, v in enumerate((0, -1, 1.5, math.nan, math.inf, "high")):
        add(f"bad-efficiency-{i}", _set(seed, ("efficiency", "conv"), v), "conv")
    add("unknown-family", _set(seed, ("efficiency", "convolution"), 0.5), "convolution")
    add("efficiency-not-table", _set(seed, ("efficiency",), 3), "efficiency")
    bad_points = [[], [[1, 2]], [[1, 2, "x"]], [[1e9, 1e6, 0]], [[-1, 2, 1]], [[0, 0, 1]],
                  [[math.nan, 1, 1]], [[math.inf, 1, 1]], [[1, 1, -0.5]], "points", [1, 2, 3],
                  [[True, 1, 1]]]
    for i, pts in enumerate(bad_points):
        add(f"bad-points-{i}", _set(seed, ("kinds", "conv2d", "points"), pts), "conv2d")
    add("kind-extra-field", _set(seed, ("kinds", "conv2d", "time_s"), 1.0), "conv2d")
    add("kind-missing-points", _drop(seed, ("kinds", "conv2d", "points")), "conv2d", "points")
    add("unknown-op-kind", _set(seed, ("kinds", "conv9d"), {"points": [[1, 1, 1]]}), "conv9d")
    add("kinds-not-table", _set(seed, ("kinds",), 3), "kinds")
    add("kind-not-table", _set(seed, ("kinds", "relu"), 3), "relu")
    add("unknown-section", _set(seed, ("metadata",), {"a": 1}), "metadata")
    return cases + text_cases("profile", seed=2)


# -- user catalog files (hwmodels.catalog.load_file) -------------------------------------------
def catalog_cases() -> list[Case]:
    seed = tomllib.loads((VALID / "catalog.toml").read_text())
    cases: list[Case] = []

    def add(cid: str, doc: dict, *expect: str) -> None:
        cases.append(Case(f"catalog-{cid}", "catalog", to_toml(doc), tuple(expect)))

    dev, link, host = ("devices", "corpus-gpu"), ("links", "corpus-link"), ("hosts", "corpus-host")
    required = {dev: ("kind", "mem_bandwidth_Bps", "memory_bytes", "launch_overhead_s",
                      "source", "peak_flops"),
                link: ("bandwidth_Bps", "latency_s", "source"),
                host: ("memory_bytes", "mem_bandwidth_Bps", "source")}
    for part, fields in required.items():
        for f in fields:
            add(f"missing-{part[0]}-{f}", _drop(seed, (*part, f)), f)
            for typo in misspellings(f)[:1]:
                add(f"misspelt-{part[0]}-{f}", _rename(seed, (*part, f), typo), typo)
    numbers = {(*dev, "peak_flops"): [0, -1e12, math.nan, math.inf, "fast", True],
               (*dev, "mem_bandwidth_Bps"): [0, -5.0, math.nan],
               (*dev, "memory_bytes"): [0, -1, 8e9, "8GB"],
               (*dev, "launch_overhead_s"): [-1e-6, math.inf],
               (*dev, "copy_engines"): [-1, 1.5],
               (*link, "bandwidth_Bps"): [0, -1e9, math.nan, math.inf, "10G", False],
               (*link, "latency_s"): [-1e-6, math.nan, math.inf],
               (*link, "shared_medium"): ["yes", 1],
               (*host, "memory_bytes"): [0, -64, 1e9],
               (*host, "mem_bandwidth_Bps"): [0, math.nan]}
    for path, values in numbers.items():
        for i, v in enumerate(values):
            add(f"bad-{path[0]}-{path[-1]}-{i}", _set(seed, path, v), path[-1])
    add("device-kind-unknown", _set(seed, (*dev, "kind"), "tpu"), "kind")
    add("device-efficiency-over-1", _set(seed, (*dev, "efficiency", "conv"), 1.5), "conv")
    add("device-efficiency-unknown-family", _set(seed, (*dev, "efficiency", "convv"), 0.5),
        "convv")
    add("device-repeats-name", _set(seed, (*dev, "name"), "corpus-gpu"), "name")
    add("unknown-section", _set(seed, ("gpus",), {"x": {"kind": "gpu"}}), "gpus")
    add("section-not-table", _set(seed, ("links",), 3), "links")
    add("part-not-table", _set(seed, ("links", "corpus-link"), "fast"), "corpus-link")
    add("empty-source", _set(seed, (*link, "source"), " "), "source")
    return cases + text_cases("catalog", seed=3, empty_is_bad=False)


# -- sweep files (dnnsim sweep) ----------------------------------------------------------------
def sweep_cases() -> list[Case]:
    seed = tomllib.loads((VALID / "sweep.toml").read_text())
    cases: list[Case] = []

    def add(cid: str, doc: dict, *expect: str) -> None:
        cases.append(Case(f"sweep-{cid}", "sweep", to_toml(doc), tuple(expect)))

    add("missing-base", _drop(seed, ("base",)), "base")
    add("base-not-table", _set(seed, ("base",), "lenet5"), "base")
    add("unknown-table", _set(seed, ("axis",), {"devices": [1]}), "axis")
    add("axes-not-table", _set(seed, ("axes",), [1, 2]), "axes")
    add("axis-not-list", _set(seed, ("axes", "devices"), 2), "devices")
    add("axis-empty", _set(seed, ("axes", "devices"), []), "devices")
    add("axis-unknown-field", _set(seed, ("axes", "devcies"), [1]), "devcies")
    add("axis-bad-dotted", _set(seed, ("axes", "policy_options.bucket_mb"), [1]),
        "policy_options.bucket_mb")
    add("exclude-not-axis", _set(seed, ("exclude",), [{"batch": 4}]), "batch")
    add("exclude-not-tables", _set(seed, ("exclude",), [1, 2]), "exclude")
    add("axis-bad-device-count", _set(seed, ("axes", "devices"), [1, 0]), "devices")
    add("axis-unknown-link", _set(seed, ("axes", "link"), ["nvlink2", "nope-link"]),
        "nope-link")
    add("axis-bad-option", _set(seed, ("axes", "options.bucket_mb"), [-1]), "bucket_mb")
    add("axis-unknown-option", _set(seed, ("axes", "options.bucket"), [1]), "bucket")
    add("axis-wrong-type", _set(seed, ("axes", "batch"), ["four"]), "batch")
    for key in ("workload", "batch", "hardware", "policy"):
        add(f"base-missing-{key}", _drop(seed, ("base", key)), key)
    add("base-misspelt", _rename(seed, ("base", "hardware"), "hardwre"), "hardwre")
    add("base-unknown-device", _set(seed, ("base", "hardware"), "v1000"), "v1000")
    add("base-nan-bucket", _set(seed, ("base", "options", "bucket_mb"), math.nan), "bucket_mb")
    add("exclude-matches-no-device", _set(seed, ("exclude",), [{"devices": 3}]), "devices")
    add("exclude-matches-no-link", _set(seed, ("exclude",), [{"link": "nvlink3"}]), "link")
    add("exclude-list-matches-nothing", _set(seed, ("exclude",), [{"devices": [7, 9]}]),
        "devices")
    many = _set(_set(seed, ("axes", "batch"), list(range(1, 1002))),
                ("axes", "workload_options.width"), [1.0 + i / 1000 for i in range(1000)])
    add("past-point-limit", many, "4,004,000", "sweep points")
    add("axis-past-device-limit", _set(seed, ("axes", "devices"), [1, 70_000]), "devices")
    add("fully-connected-past-limit", _set(_set(seed, ("axes", "devices"), [1, 5000]),
                                           ("base", "topology"), "fully-connected"),
        "fully connected")
    return cases + text_cases("sweep", seed=4)


# -- command lines -----------------------------------------------------------------------------
def argv_cases() -> list[Case]:
    """tests/corpus/cli_args.txt: one argument list a line, '##' then expected words."""
    cases = []
    for n, line in enumerate((HERE / "cli_args.txt").read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        args, _, expect = line.partition("##")
        words = tuple(w.strip() for w in expect.split("|") if w.strip())
        cases.append(Case(f"argv-{n}", "argv", tuple(shlex.split(args)), words))
    return cases


def handwritten_cases() -> list[Case]:
    """Files under scenarios/, profiles/, catalogs/, sweeps/; a first line '# expect: a | b'."""
    cases = []
    for folder, kind in (("scenarios", "scenario"), ("profiles", "profile"),
                         ("catalogs", "catalog"), ("sweeps", "sweep")):
        for path in sorted((HERE / folder).glob("*.toml")):
            data = path.read_bytes()
            first = data.split(b"\n", 1)[0].decode("utf-8", "replace")
            words = ()
            if first.startswith("# expect:"):
                words = tuple(w.strip() for w in first[9:].split("|") if w.strip())
            cases.append(Case(f"{folder}/{path.name}", kind, data, words))
    return cases


def limit_cases() -> list[Case]:
    """Command lines past a limit, or with a value that cannot be computed (data_files.py)."""
    from data_files import LIMIT_ARGS
    return [Case(f"limit-{n}", "argv", tuple(shlex.split(args)),
                 tuple(w.strip() for w in words.split("|")))
            for n, (args, words) in enumerate(LIMIT_ARGS, 1)]


def data_file_cases() -> list[Case]:
    """Results files for plot, files in the way of sweep --out, target files (data_files.py)."""
    import data_files
    return (data_files.results_cases(Case) + data_files.sweep_out_cases(Case)
            + data_files.target_cases(Case))


def all_cases(with_sweeps: bool = True) -> list[Case]:
    cases = (scenario_cases() + profile_cases() + catalog_cases() + argv_cases()
             + handwritten_cases() + limit_cases())
    if with_sweeps:
        cases += sweep_cases() + data_file_cases()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "corpus case ids must be unique"
    return cases
