"""A target file is data: the type of every field is checked before a target is built, so that
a malformed file is one error line (exit 2) naming the file, the target and the field, never a
traceback later; its paper id is a plain name (it names the report's folders) and its workloads
are zoo networks (a `file.py:factory` workload would run that file's code)."""
from __future__ import annotations

import math
import re

from simulator.policies import ConfigError

PAPER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
TEXT_FIELDS = {"title": True, "source": True, "figures": False}   # name: required
NUMBER_FIELDS = ("published", "tolerance", "lower", "upper")
TARGET_TEXT = ("id", "figure", "metric", "status", "tolerance_kind", "note", "known_miss",
               "fitted_to_it")
TOLERANCE_KINDS = ("relative", "absolute")


def check_target_file(data: dict, name: str) -> None:
    where = f"target file {name!r}"
    if not isinstance(data["paper"], str) or not PAPER_ID.fullmatch(data["paper"]):
        raise ConfigError(f"{where}: paper {data['paper']!r} must be a plain name (letters, "
                          "digits, '-', '_'): it names the report's folders")
    for field, required in TEXT_FIELDS.items():
        if (required or field in data) and not isinstance(data.get(field), str):
            raise ConfigError(f"{where}: {field!r} must be text, got {data.get(field)!r}")
    targets = data["target"]
    if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
        raise ConfigError(f"{where}: 'target' must be [[target]] tables")
    seen = set()
    for i, t in enumerate(targets):
        _check_target(t, f"{where}, target {t.get('id', i)!r}")
        if t.get("id") in seen:
            raise ConfigError(f"{where}: two targets have id {t['id']!r}")
        seen.add(t.get("id"))


def _check_target(t: dict, where: str) -> None:
    for field in TARGET_TEXT:
        if field in t and not isinstance(t[field], str):
            raise ConfigError(f"{where}: {field!r} must be text, got {t[field]!r}")
    for field in NUMBER_FIELDS:
        value = t.get(field)
        if field in t and (isinstance(value, bool) or not isinstance(value, (int, float))
                           or not math.isfinite(value)):
            raise ConfigError(f"{where}: {field!r} must be a finite number, got {value!r}")
    if t.get("tolerance_kind", "relative") not in TOLERANCE_KINDS:
        raise ConfigError(f"{where}: tolerance_kind must be one of {TOLERANCE_KINDS}, got "
                          f"{t['tolerance_kind']!r}")
    if isinstance(t.get("tolerance"), (int, float)) and t["tolerance"] < 0:
        raise ConfigError(f"{where}: 'tolerance' must be >= 0, got {t['tolerance']!r}")
    if t.get("tolerance_kind", "relative") == "relative" and t.get("published") == 0:
        raise ConfigError(f"{where}: a relative tolerance needs 'published' other than 0")
    defaults = t.get("defaults", [])
    if not isinstance(defaults, list) or not all(isinstance(d, str) for d in defaults):
        raise ConfigError(f"{where}: 'defaults' must be a list of text")
    for table in ("scenario", "baseline"):
        if table in t and not isinstance(t[table], dict):
            raise ConfigError(f"{where}: [{table}] must be a table")
        workload = t.get(table, {}).get("workload") if isinstance(t.get(table), dict) else None
        if isinstance(workload, str) and ":" in workload:
            raise ConfigError(f"{where}: workload {workload!r} names a Python file; a target "
                              "file may name zoo networks only")
