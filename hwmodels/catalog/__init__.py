"""The parts catalog: TOML files of devices, links and hosts shipped with the package.

Every file has the same layout, so a user's own file (load_file) is read by the same code:

    [devices.v100]            # kind = "gpu" | "cpu" | "arm", then DeviceSpec fields
    [links.pcie3]             # LinkSpec fields
    [hosts.ddr4-workstation]  # HostSpec fields

The shipped files only group parts by theme (gpus.toml, cpus.toml, arm.toml, links.toml,
hosts.toml). A part name is unique within its section (devices, links, hosts) across
all files; every part has a `source`.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import os
import tomllib
from dataclasses import dataclass, field

from workloads.errors import did_you_mean

from ..specs import DEVICE_KINDS, DeviceSpec, HardwareError, HostSpec, LinkSpec, read_text
from . import gpu_names

_SECTIONS = {"devices": DeviceSpec, "links": LinkSpec, "hosts": HostSpec}
_SINGULAR = {"devices": "device", "links": "link", "hosts": "host"}
NAME_KINDS = (*DEVICE_KINDS, "link", "host")
BUILTIN_FILES = ("gpus.toml", "cpus.toml", "arm.toml", "links.toml", "hosts.toml")


@dataclass
class Catalog:
    """Parts by name. The built-in one is `builtin()`; `load_file` makes one from a user file."""

    devices: dict[str, DeviceSpec] = field(default_factory=dict)
    links: dict[str, LinkSpec] = field(default_factory=dict)
    hosts: dict[str, HostSpec] = field(default_factory=dict)

    def device(self, name: str) -> DeviceSpec:
        """The part of that name. A GPU written as people write it ("Tesla V100-SXM2-16GB")
        is not taken for a part: the error names the part it means (gpu_names.py), so a
        scenario says one name for one part."""
        if isinstance(name, str) and name not in self.devices:
            try:
                meant = resolve_gpu(name, parts=set(self.names("gpu")))
            except HardwareError:
                meant = None
            if meant is not None:
                raise HardwareError(f"unknown device {name!r} (did you mean {meant!r}?); known: "
                                    f"{', '.join(sorted(self.devices))}")
        return self._get(self.devices, "device", name)

    def link(self, name: str) -> LinkSpec:
        return self._get(self.links, "link", name)

    def host(self, name: str) -> HostSpec:
        return self._get(self.hosts, "host", name)

    def names(self, kind: str | None = None) -> list[str]:
        """Sorted part names; kind is one of 'gpu', 'cpu', 'arm', 'link', 'host' or None (all)."""
        if kind is None:
            return sorted([*self.devices, *self.links, *self.hosts])
        if kind in DEVICE_KINDS:
            return sorted(n for n, d in self.devices.items() if d.kind == kind)
        if kind == "link":
            return sorted(self.links)
        if kind == "host":
            return sorted(self.hosts)
        raise HardwareError(f"unknown part kind {kind!r}; known: {', '.join(NAME_KINDS)}")

    def merged(self, other: "Catalog") -> "Catalog":
        """Both catalogs' parts; a name defined in both is an error (no silent shadowing)."""
        out = Catalog(dict(self.devices), dict(self.links), dict(self.hosts))
        for section in _SECTIONS:
            mine, theirs = getattr(out, section), getattr(other, section)
            clash = sorted(set(mine) & set(theirs))
            if clash:
                raise HardwareError(f"{_SINGULAR[section]} name(s) defined twice: "
                                    f"{', '.join(clash)}")
            mine.update(theirs)
        return out

    @staticmethod
    def _get(table: dict, what: str, name: str):
        try:
            return table[name]
        except (KeyError, TypeError):
            raise HardwareError(f"unknown {what} {name!r}{did_you_mean(name, table)}; known: "
                                f"{', '.join(sorted(table))}") from None


# -- parsing -----------------------------------------------------------------------------------
def _part(label: str, section: str, name: str, entry: object):
    cls = _SECTIONS[section]
    where = f"{label}: {_SINGULAR[section]} {name!r}"
    if not isinstance(entry, dict):
        raise HardwareError(f"{where}: must be a table of fields, got {entry!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(entry) - set(fields))
    if unknown:
        raise HardwareError(f"{where}: unknown field(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(f for f in fields if f != 'name'))}")
    if "name" in entry:
        raise HardwareError(f"{where}: field 'name' is the table key, do not repeat it")
    required = [f.name for f in fields.values() if f.name != "name"
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [f for f in required if f not in entry]
    if missing:
        raise HardwareError(f"{where}: missing field(s) {', '.join(missing)}")
    try:
        return cls(name=name, **entry)
    except HardwareError as exc:
        # the spec names the part and the field; add the file it came from
        raise HardwareError(f"{label}: {exc}") from None


def parse(data: dict, label: str) -> Catalog:
    """Check and build the parts of one parsed TOML document (label names it in errors)."""
    cat = Catalog()
    for section in sorted(data):
        if section not in _SECTIONS:
            raise HardwareError(f"{label}: unknown section [{section}]; known: "
                                f"{', '.join(_SECTIONS)}")
        table = data[section]
        if not isinstance(table, dict):
            raise HardwareError(f"{label}: [{section}] must hold tables of parts")
        for name in table:  # file order; names() sorts
            getattr(cat, section)[name] = _part(label, section, name, table[name])
    return cat


def _parse_text(text: str, label: str) -> Catalog:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HardwareError(f"{label}: not valid TOML: {exc}") from None
    return parse(data, label)


def load_file(path: str | os.PathLike) -> Catalog:
    """A user's own catalog file, with the same checks as the built-in one."""
    return _parse_text(read_text(path, "catalog file"), os.fspath(path))


_BUILTIN: Catalog | None = None


def builtin() -> Catalog:
    """The shipped catalog (loaded once; parts are frozen, so sharing it is safe)."""
    global _BUILTIN
    if _BUILTIN is None:
        cat = Catalog()
        root = importlib.resources.files(__package__)
        for fname in BUILTIN_FILES:
            cat = cat.merged(_parse_text(root.joinpath(fname).read_text("utf-8"), fname))
        _BUILTIN = cat
    return _BUILTIN


def device(name: str) -> DeviceSpec:
    return builtin().device(name)


def link(name: str) -> LinkSpec:
    return builtin().link(name)


def host(name: str) -> HostSpec:
    return builtin().host(name)


def names(kind: str | None = None) -> list[str]:
    return builtin().names(kind)


_GPU_NAMES: dict[str, gpu_names.GpuName] | None = None


def gpu_names_table() -> dict[str, gpu_names.GpuName]:
    """The built-in catalog's GPU names (gpu_names.toml), read once."""
    global _GPU_NAMES
    if _GPU_NAMES is None:
        _GPU_NAMES = gpu_names.load_names(builtin().devices)
    return _GPU_NAMES


def resolve_gpu(name: str, variant: str = "", parts: set[str] | None = None) -> str:
    """The part a GPU name as people write it means (gpu_names.py gives the rule); parts: the
    GPU names of the catalog in use (default: the built-in one's)."""
    return gpu_names.resolve_gpu(name, variant, parts, gpu_names_table())


def gpu_model_siblings(part: str) -> list[str]:
    """The parts sold under `part`'s model name (itself first), e.g. v100 and v100-32gb."""
    return gpu_names.model_siblings(part, gpu_names_table())


__all__ = ["Catalog", "builtin", "device", "link", "host", "names", "load_file", "parse",
           "NAME_KINDS", "BUILTIN_FILES", "resolve_gpu", "gpu_model_siblings", "gpu_names_table"]
