"""Device-model classes' default efficiencies, read from catalog/model_efficiency.toml.

A class (arm, gpu, ...) gets its table by kind: per cost family the best fraction of peak its
libraries' kernels reach and the work at which an op reaches half of it, the memory
efficiency of streaming ops, and the grouped-convolution penalty. Every table says where its
numbers come from (`source`, `fitted_to`); a table without either, or with a value out of
range, is an error naming the file, the class and the field.
"""
from __future__ import annotations

import importlib.resources
import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache

from .specs import HardwareError

FILE = "model_efficiency.toml"
FIELDS = {"source", "fitted_to", "mem_efficiency", "groups_saturation_channels",
          "groups_log_penalty", "efficiency", "half_efficiency_time_s"}


@dataclass(frozen=True)
class EfficiencyTable:
    kind: str
    efficiency: dict[str, float]
    half_efficiency_time_s: dict[str, float]
    mem_efficiency: float
    groups_saturation_channels: int
    groups_log_penalty: float
    source: str
    fitted_to: str


def _number(where: str, value: object, low: float, high: float, low_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HardwareError(f"{where}: must be a number, got {value!r}")
    if value > high or value < low or (low_open and value == low):
        bound = "(" if low_open else "["
        raise HardwareError(f"{where}: {value!r} is out of range {bound}{low}, {high}]")
    return float(value)


def _table(kind: str, entry: object, label: str) -> EfficiencyTable:
    where = f"{label} [{kind}]"
    if not isinstance(entry, dict):
        raise HardwareError(f"{where}: must be a table")
    unknown = sorted(set(entry) - FIELDS)
    missing = sorted(FIELDS - {"source", "fitted_to"} - set(entry))
    if unknown or missing:
        raise HardwareError(f"{where}: unknown fields {unknown}, missing fields {missing}")
    source, fitted_to = entry.get("source", ""), entry.get("fitted_to", "")
    if not (isinstance(source, str) and isinstance(fitted_to, str)
            and (source.strip() or fitted_to.strip())):
        raise HardwareError(f"{where}: give `source` or `fitted_to`: where the numbers come "
                            f"from")
    tables = {}
    for name, high in (("efficiency", 1.0), ("half_efficiency_time_s", math.inf)):
        values = entry[name]
        if not isinstance(values, dict) or not values:
            raise HardwareError(f"{where}.{name}: must be a table of cost family -> number")
        tables[name] = {family: _number(f"{where}.{name}.{family}", v, 0.0, high, True)
                        for family, v in values.items()}
    saturation = entry["groups_saturation_channels"]
    if isinstance(saturation, bool) or not isinstance(saturation, int) or saturation < 1:
        raise HardwareError(f"{where}.groups_saturation_channels: must be an integer >= 1, "
                            f"got {saturation!r}")
    return EfficiencyTable(
        kind, tables["efficiency"], tables["half_efficiency_time_s"],
        _number(f"{where}.mem_efficiency", entry["mem_efficiency"], 0.0, 1.0, True),
        saturation,
        _number(f"{where}.groups_log_penalty", entry["groups_log_penalty"], 0.0, math.inf,
                False),
        source, fitted_to)


def parse(text: str, label: str) -> dict[str, EfficiencyTable]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HardwareError(f"{label}: not valid TOML: {exc}") from None
    return {kind: _table(kind, entry, label) for kind, entry in data.items()}


@lru_cache(maxsize=1)
def builtin() -> dict[str, EfficiencyTable]:
    text = importlib.resources.files("hwmodels.catalog").joinpath(FILE).read_text("utf-8")
    return parse(text, f"catalog/{FILE}")


def table(kind: str) -> EfficiencyTable:
    try:
        return builtin()[kind]
    except KeyError:
        raise HardwareError(f"catalog/{FILE} has no table for device class {kind!r}; it has "
                            f"{', '.join(sorted(builtin()))}") from None
