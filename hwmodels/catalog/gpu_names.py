"""GPU names as people write them ("Tesla V100-SXM2-16GB", "GeForce RTX 3090", "A100" with a
variant "DGX A100 80GB") onto exactly one catalog part, by the data in gpu_names.toml.

A name is read as three things: its model (the words left once the brand words NVIDIA, GeForce
and Tesla, memory types and the words below are dropped, case, spaces and hyphens aside), the
memory size it states ("80GB", "32 GB") and the form factor it states (SXM of any generation,
PCIe, NVL). A row's variant ("DGX-1 V100 SXM2 32GB (Ubuntu 16.04)") adds its memory size and
form factor only: its other words name hosts and software. Then, among the parts of that model:

1. the parts with every stated memory size and form factor; one left: that part;
2. none left: an error naming the model's parts and what each is;
3. several left: the model's default part (gpu_names.toml) decides the unstated ones (V100 ->
   SXM2 16 GB; A100 80GB -> SXM; A100 PCIe -> 40 GB); a model without a default (Titan X,
   RTX 6000) is an error naming its parts.

A catalog part's own name ("a100-80gb") is always that part.
"""
from __future__ import annotations

import difflib
import importlib.resources
import re
import tomllib
from dataclasses import dataclass

from ..specs import DeviceSpec, HardwareError

NAMES_FILE = "gpu_names.toml"
# words that say nothing about which part it is: brands, memory types, filler
NOISE_WORDS = frozenset({"nvidia", "geforce", "tesla", "gpu", "tensor", "core", "graphics",
                         "card", "accelerator", "gddr5", "gddr5x", "gddr6", "gddr6x", "hbm2",
                         "hbm2e", "hbm3", "hbm3e", "generation"})
FORM_FACTORS = ("sxm", "pcie", "nvl")
_MEMORY = re.compile(r"^(\d+)(?:gb|gib)$")
_FORM = re.compile(r"^(sxm)\d?$|^(pcie)(?:\d)?$|^(nvl)$")


@dataclass(frozen=True)
class Stated:
    """What a name says about a GPU: its model key, and the memory sizes (GB) and form
    factors it states (a name may state them more than once, or disagree with itself)."""
    model: str
    memory_gb: frozenset[int]
    form_factors: frozenset[str]


def read_name(text: str) -> Stated:
    """Model key, memory sizes and form factors of a written GPU name."""
    words = re.sub(r"pci[ -]?e(?:xpress)?\b", "pcie", text.lower())
    tokens = [t for t in re.split(r"[^a-z0-9]+", words) if t]
    memory: set[int] = set()
    forms: set[str] = set()
    model: list[str] = []
    for i, token in enumerate(tokens):
        size, form = _MEMORY.match(token), _FORM.match(token)
        if size:
            memory.add(int(size.group(1)))
        elif token in ("gb", "gib") and i and tokens[i - 1].isdigit():
            memory.add(int(model.pop()))   # "80 GB": the number was read as a model word
        elif form:
            forms.add(next(g for g in form.groups() if g))
        elif token not in NOISE_WORDS:
            model.append(token)
    return Stated("".join(model), frozenset(memory), frozenset(forms))


@dataclass(frozen=True)
class GpuName:
    """One catalog part's entry in gpu_names.toml."""
    part: str
    models: tuple[str, ...]          # model keys (read_name(...).model of each written model)
    form_factor: str
    default: bool
    memory_gb: int                   # the part's memory_bytes in GiB, as datasheets write it


def _entries(data: dict, specs: dict[str, DeviceSpec]) -> dict[str, GpuName]:
    table = data.get("gpus")
    if not isinstance(table, dict) or set(data) != {"gpus"}:
        raise HardwareError(f"{NAMES_FILE}: holds one [gpus.<part>] table per GPU part")
    out = {}
    for part, entry in table.items():
        where = f"{NAMES_FILE}: [gpus.{part}]"
        if part not in specs:
            raise HardwareError(f"{where}: no such GPU in the catalog")
        if not isinstance(entry, dict) or set(entry) - {"models", "form_factor", "default"}:
            raise HardwareError(f"{where}: fields are models, form_factor and default")
        models = entry.get("models")
        if not (isinstance(models, list) and models and all(isinstance(m, str) for m in models)):
            raise HardwareError(f"{where}: models must be a list of names")
        keys = tuple(read_name(m).model for m in models)
        if not all(keys) or any(read_name(m).memory_gb or read_name(m).form_factors
                                for m in models):
            raise HardwareError(f"{where}: a model name states no memory size or form factor "
                                f"and keeps a word once brand words are dropped: {models}")
        form = entry.get("form_factor")
        if not isinstance(form, str) or not form:
            raise HardwareError(f"{where}: form_factor must be a word")
        out[part] = GpuName(part, keys, form, entry.get("default") is True,
                            round(specs[part].memory_bytes / 2**30))
    return out


def load_names(specs: dict[str, DeviceSpec]) -> dict[str, GpuName]:
    """gpu_names.toml, checked against a catalog's devices (hwmodels.catalog loads it once for
    the built-in catalog: catalog.gpu_names_table)."""
    text = importlib.resources.files(__package__).joinpath(NAMES_FILE).read_text("utf-8")
    return _entries(tomllib.loads(text), specs)


def _describe(entry: GpuName) -> str:
    form = entry.form_factor.upper() if entry.form_factor in FORM_FACTORS else entry.form_factor
    return f"{entry.part} ({form.replace('PCIE', 'PCIe')}, {entry.memory_gb} GB)"


def _hint(model: str, keys: dict[str, list[str]]) -> str:
    close = difflib.get_close_matches(model, sorted(keys), n=3, cutoff=0.75)
    parts = list(dict.fromkeys(p for key in close for p in keys[key]))   # closest first
    return f" (did you mean {' or '.join(map(repr, parts))}?)" if parts else ""


def resolve_gpu(name: str, variant: str, parts: set[str] | None,
                table: dict[str, GpuName]) -> str:
    """The catalog part that a written GPU name (and a variant, such as a published row's
    gpu_variant) names, by the rule in this module's docstring; HardwareError says why there
    is none. parts: the GPU names of the catalog in use (None: every part of `table`)."""
    if parts is None:
        parts = set(table)
    text = name.strip() if isinstance(name, str) else ""
    if text in parts:
        return text
    stated = read_name(text)
    if variant:
        extra = read_name(variant)
        stated = Stated(stated.model, stated.memory_gb | extra.memory_gb,
                        stated.form_factors | extra.form_factors)
    keys: dict[str, list[str]] = {}
    for entry in table.values():
        if entry.part in parts:
            for key in dict.fromkeys(entry.models):
                keys.setdefault(key, []).append(entry.part)
    written = f"{name!r}" + (f" (variant {variant!r})" if variant else "")
    if stated.model not in keys:
        raise HardwareError(f"GPU {name!r} is not in the catalog{_hint(stated.model, keys)}")
    model_parts = [table[p] for p in keys[stated.model]]
    for what, values in (("memory sizes", stated.memory_gb), ("form factors",
                                                               stated.form_factors)):
        if len(values) > 1:
            raise HardwareError(f"GPU {written} states two {what}: "
                                f"{', '.join(map(str, sorted(values)))}")
    fits = [e for e in model_parts
            if (not stated.memory_gb or e.memory_gb in stated.memory_gb)
            and (not stated.form_factors or e.form_factor in stated.form_factors)]
    if not fits:
        raise HardwareError(f"GPU {written}: the catalog has no part of that memory size and "
                            f"form factor; its parts of this model: "
                            f"{', '.join(map(_describe, model_parts))}")
    defaults = [e for e in model_parts if e.default]
    if len(fits) > 1 and len(defaults) == 1:
        # the default decides what the name leaves unstated, form factor first
        if not stated.form_factors:
            fits = [e for e in fits if e.form_factor == defaults[0].form_factor] or fits
        if not stated.memory_gb and len(fits) > 1:
            fits = [e for e in fits if e.memory_gb == defaults[0].memory_gb] or fits
    if len(fits) > 1:
        raise HardwareError(f"GPU {written} could be any of {', '.join(map(_describe, fits))}"
                            f": name the part, or state its memory size or form factor")
    return fits[0].part


def model_siblings(part: str, table: dict[str, GpuName]) -> list[str]:
    """The parts that share a model name with `part` (itself first, then catalog order)."""
    if part not in table:
        return [part]
    mine = set(table[part].models)
    return [part] + [p for p, e in table.items() if p != part and mine & set(e.models)]
