"""Which CPU a profile was measured on, which CPU this is, and what differs between them.

A calibrated profile holds op times of one processor at one PyTorch thread count. They predict
that machine; on another processor (another microarchitecture, vector width, cache) or at
another thread count they are a different machine's numbers. Calibration records the machine
(`record`), and every path that turns a profile into a prediction for this machine checks it
(`differences`, `warn_if_other_machine`): the CPU model when it is built with a profile,
`compare_module` and `dnnsim validate` when they measure here.

Read from the operating system (Linux: /proc/cpuinfo, /sys/devices/system/cpu), without torch:
simulating needs no PyTorch. What the system does not report is left out, never guessed.
"""
from __future__ import annotations

import functools
import os
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

# The flags that decide which library kernels run: the vector width oneDNN and MKL use (AVX2:
# 8 fp32 lanes, AVX-512: 16) and the matrix and reduced-precision units they dispatch to
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")

# Profile [meta] fields that describe the machine (hwmodels/profile.py declares their types).
# A calibrated profile that does not know one lists it in `unrecorded`; `isa` listed there
# means the flags it names are known present and the others are not known.
MACHINE_FIELDS = ("processor", "vendor", "isa", "physical_cores", "logical_cpus",
                  "l2_bytes", "l3_bytes")
# The fields whose difference makes a profile another machine's (caches follow the processor)
CHECKED_FIELDS = ("processor", "vendor", "isa", "physical_cores", "logical_cpus")


class ProfileMachineWarning(UserWarning):
    """A profile's times are used to predict a machine they were not measured on."""


@dataclass(frozen=True)
class HostCpu:
    processor: str | None = None
    vendor: str | None = None
    isa: tuple[str, ...] | None = None       # the ISA_FLAGS present, in ISA_FLAGS order
    physical_cores: int | None = None
    logical_cpus: int | None = None
    l2_bytes: int | None = None              # one core's L2
    l3_bytes: int | None = None              # the L3 the first core shares with others

    def meta(self) -> dict:
        """Profile [meta] fields: those known, and `unrecorded` naming the others."""
        out: dict = {}
        for name in MACHINE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = " ".join(value) if name == "isa" else value
        missing = [name for name in MACHINE_FIELDS if getattr(self, name) is None]
        if missing:
            out["unrecorded"] = " ".join(missing)
        return out


def parse_cpuinfo(text: str) -> dict:
    """processor, vendor, isa, physical_cores, logical_cpus from /proc/cpuinfo's text (x86
    Linux; other layouts give what they have)."""
    blocks = [b for b in text.split("\n\n") if b.strip()]
    fields = [{k.strip(): v.strip() for k, _, v in (line.partition(":")
                                                     for line in b.splitlines())}
              for b in blocks]
    out: dict = {}
    first = fields[0] if fields else {}
    if first.get("model name"):
        out["processor"] = first["model name"]
    if first.get("vendor_id"):
        out["vendor"] = first["vendor_id"]
    if "flags" in first:
        present = set(first["flags"].split())
        out["isa"] = tuple(f for f in ISA_FLAGS if f in present)
    logical = [f for f in fields if "processor" in f]
    if logical:
        out["logical_cpus"] = len(logical)
    cores = {(f["physical id"], f["core id"]) for f in logical
             if "physical id" in f and "core id" in f}
    if cores:
        out["physical_cores"] = len(cores)
    return out


def cache_bytes(cache_dir: Path) -> dict:
    """l2_bytes and l3_bytes of one CPU's unified caches, from its sysfs cache directory."""
    out: dict = {}
    for index in sorted(cache_dir.glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = _size_bytes((index / "size").read_text().strip())
        except (OSError, ValueError):
            continue
        if kind == "Unified" and level in (2, 3):
            out[f"l{level}_bytes"] = size
    return out


def _size_bytes(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


@functools.cache
def this_host() -> HostCpu:
    """This machine's CPU, as the operating system reports it."""
    facts: dict = {}
    try:
        facts |= parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8"))
    except OSError:
        facts["processor"] = platform.processor() or None
    facts.setdefault("logical_cpus", os.cpu_count())
    facts |= cache_bytes(Path("/sys/devices/system/cpu/cpu0/cache"))
    return HostCpu(**facts)


def differences(meta: dict, host: HostCpu, threads: int | None = None,
                torch_version: str | None = None) -> list[str]:
    """What differs between the machine a profile's [meta] records and `host` (and, where
    given, the PyTorch threads and version that will run): one phrase per field. Fields the
    profile or the host does not know are named as unchecked."""
    unrecorded = set(str(meta.get("unrecorded", "")).split())
    out, unknown = [], []
    for name in CHECKED_FIELDS:
        mine, here = meta.get(name), getattr(host, name)
        if name == "isa" and mine is not None and here is not None:
            recorded, present = set(str(mine).split()), set(here)
            # a partial record (isa in unrecorded) can only miss flags it names
            extra = set() if name in unrecorded else present - recorded
            lacking = recorded - present
            if extra or lacking:
                out.append("isa: " + ", ".join(
                    [f"this machine has {f}" for f in ISA_FLAGS if f in extra]
                    + [f"this machine lacks {f}" for f in ISA_FLAGS if f in lacking]))
        elif mine is None or here is None:
            unknown.append(name)
        elif mine != here:
            out.append(f"{name}: profile {mine!r}, this machine {here!r}")
    for name, mine, here in (("threads", meta.get("threads"), threads),
                             ("torch_version", meta.get("torch_version"), torch_version)):
        if here is not None and mine is not None and mine != here:
            out.append(f"{name}: profile {mine!r}, this run {here!r}")
    if out and unknown:
        out.append(f"unchecked (not recorded): {', '.join(unknown)}")
    return out


def is_calibrated(meta: dict) -> bool:
    """Whether a profile's times were measured on a machine (calibrate records the PyTorch
    version that measured them); a profile written by hand describes no machine to check."""
    return meta.get("device_kind") == "cpu" and "torch_version" in meta


def other_machine_message(meta: dict, label: str, threads: int | None = None,
                          torch_version: str | None = None) -> str | None:
    """What is wrong with predicting this machine (at `threads`, with `torch_version`) from a
    calibrated CPU profile; None when nothing differs or the profile records no machine."""
    if not is_calibrated(meta):
        return None
    diffs = differences(meta, this_host(), threads, torch_version)
    if not diffs:
        return None
    return (f"{label} was measured on another machine or setting ({'; '.join(diffs)}): its "
            f"times predict that machine, not this run; to model this one, calibrate here "
            f"(dnnsim calibrate --threads N)")


def warn_if_other_machine(meta: dict, label: str, threads: int | None = None,
                          torch_version: str | None = None, stacklevel: int = 2) -> str | None:
    """Warn (ProfileMachineWarning) where other_machine_message has something to say; the
    message, or None."""
    message = other_machine_message(meta, label, threads, torch_version)
    if message:
        warnings.warn(message, ProfileMachineWarning, stacklevel=stacklevel + 1)
    return message
