"""Relative paths in a scenario or sweep file are read from the file's own folder, as Make,
Cargo and Docker Compose read theirs, so a study runs the same from any directory. Flags on
the command line stay relative to the current directory (they are not passed through here).

The values that name files are known by their form:

    workload = "nets/mynet.py:make"      a network file (PATH.py:factory)
    hardware = "prof.toml"               a calibrated profile
    gpu_families = "mine.toml"           GPU constants of one's own
    [options] sparsity = "zeros.csv"     a value in [options], [workload_options] or
                                         [hardware_options] ending in .csv, .toml or .json

Each is rewritten as an absolute path, so the scenario a sweep records (and `--recheck`
reruns) reads the same file wherever it runs; a file that does not exist is an error naming
the field, the path as written and where it was looked for.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workloads.torch_file import FILE_SPEC

from .policies import ConfigError

OPTION_TABLES = ("options", "workload_options", "hardware_options")
DATA_FILE_SUFFIXES = (".csv", ".toml", ".json")


def resolve_scenario_paths(data: dict, file: str | Path, where: str) -> dict:
    """A scenario table read from `file`, each relative path it names made absolute from the
    file's folder; `where` names the table in errors ("run.toml", "study.toml: [base]")."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name in OPTION_TABLES and isinstance(value, dict):
            out[name] = {k: resolve_field(f"{name}.{k}", v, file, where)
                         for k, v in value.items()}
        else:
            out[name] = resolve_field(name, value, file, where)
    return out


def resolve_field(name: str, value: Any, file: str | Path, where: str) -> Any:
    """`value` of field `name` (dotted for an option: "options.sparsity"), with the path it
    names made absolute from the folder of `file`; any other value as it is."""
    if not isinstance(value, str):
        return value
    spec = FILE_SPEC.fullmatch(value) if name == "workload" else None
    if spec is not None:
        path, suffix = spec.group("path"), f":{spec.group('attr')}"
    elif (name in ("hardware", "gpu_families") and value.endswith(".toml")) or (
            name.partition(".")[0] in OPTION_TABLES and name.count(".") >= 1
            and value.lower().endswith(DATA_FILE_SUFFIXES)):
        path, suffix = value, ""
    else:
        return value
    if os.path.isabs(path):
        return value
    folder = os.path.dirname(os.path.abspath(file))
    resolved = os.path.normpath(os.path.join(folder, path))
    if not os.path.isfile(resolved):
        raise ConfigError(f"{where}: field {name!r}: {path!r} is read from the folder of "
                          f"{str(file)!r}, and {resolved!r} is not a file")
    return resolved + suffix


def resolve_sweep_paths(data: dict, path: str | Path) -> dict:
    """A sweep file's tables with the relative paths they name read from the file's folder
    (this module's rule): in [base], in the values of [axes] and in [[exclude]]
    (whose values must stay equal to the axes' they name). Tables of the wrong shape are
    passed on as they are, for Sweep.from_dict to name."""
    out = dict(data)
    src = str(path)
    if isinstance(data.get("base"), dict):
        out["base"] = resolve_scenario_paths(data["base"], path, f"{src}: [base]")

    def values(name: str, v: Any, where: str) -> Any:
        if isinstance(v, list):
            return [resolve_field(name, x, path, where) for x in v]
        return resolve_field(name, v, path, where)
    if isinstance(data.get("axes"), dict):
        out["axes"] = {k: values(k, v, f"{src}: [axes]") for k, v in data["axes"].items()}
    if isinstance(data.get("exclude"), list):
        out["exclude"] = [{k: values(k, v, f"{src}: [[exclude]]") for k, v in ex.items()}
                          if isinstance(ex, dict) else ex for ex in data["exclude"]]
    return out
