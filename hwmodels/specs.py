"""Hardware parts as frozen dataclasses whose invariants are checked when they are made.

A part is data (see catalog/*.toml); a device *model* (model.py) turns a DeviceSpec into op
times. Every check raises HardwareError naming the part and the field, so a bad catalog entry
or a bad override is reported where it is, not as a wrong number later.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

from workloads.errors import DnnsimError, check_input_file

from .families import FAMILIES


class HardwareError(DnnsimError):
    """A hardware part, catalog file or profile that is missing, malformed or inconsistent."""


DEVICE_KINDS = ("gpu", "cpu", "arm")
# Arithmetic precisions a part may list in peak_flops_by_precision (dense FLOP/s, no sparsity).
# fp32 is always there (peak_flops); tf32/fp16/bf16 are the tensor-core (or packed-half) rates.
ARITHMETIC_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
GPU_ARCHITECTURES = ("kepler", "maxwell", "pascal", "volta", "turing", "ampere", "ada", "hopper")
# Fields that define a CPU/ARM peak; changing any of them recomputes peak_flops.
_PEAK_INPUTS = ("cores", "clock_hz", "vector_lanes_fp32", "fma_units_per_core")
# what names a part rather than describes it: with_options refuses to change them
_IDENTITY_FIELDS = frozenset({"name", "kind"})


# The span of each physical quantity a part may state, about three orders of magnitude past
# today's parts either way: a value outside it is a slip (1e-300 for 1e300, a missing e9), and
# one that would make durations overflow (a FLOP/s of 1e-300 makes every op take inf s) or
# underflow to nothing. (least, most, unit); a field not named here is only checked >= 0 or > 0.
_RATE_FLOPS = (1e6, 1e18, "FLOP/s")     # a microcontroller .. a thousand H100s as one device
_RATE_BPS = (1e3, 1e18, "B/s")          # a 10 kbit/s radio .. an ideal what-if link
_CLOCK_HZ = (1e6, 1e11, "Hz")           # 1 MHz .. 100 GHz
_CACHE_BYTES = (1, 2 ** 40, "bytes")
PLAUSIBLE: dict[str, tuple[float, float, str]] = {
    "peak_flops": _RATE_FLOPS, "peak_flops_by_precision": _RATE_FLOPS,
    "mem_bandwidth_Bps": _RATE_BPS, "bandwidth_Bps": _RATE_BPS,
    "memory_bytes": (1, 2 ** 50, "bytes"),   # up to 1 PiB
    "l2_bytes": _CACHE_BYTES, "l3_bytes": _CACHE_BYTES,
    "launch_overhead_s": (0, 1, "s"),      # per op launch
    "latency_s": (0, 10, "s"),             # per message
    "clock_hz": _CLOCK_HZ, "sustained_clock_hz": _CLOCK_HZ, "tcp_stack_clock_hz": _CLOCK_HZ,
    "tensor_clock_hz": _CLOCK_HZ,
    "cores": (1, 2 ** 20, "cores"), "sm_count": (1, 2 ** 16, "SMs"),
    "fp32_lanes_per_sm": (1, 2 ** 12, "lanes"), "vector_lanes_fp32": (1, 2 ** 10, "lanes"),
    "fma_units_per_core": (1, 64, "units"), "copy_engines": (0, 64, "engines"),
    # shares of a peak a kernel reaches; below a thousandth is a slip, not a kernel
    "mem_efficiency": (1e-3, 1, "of the bandwidth"), "efficiency": (1e-3, 1, "of the peak"),
    "half_efficiency_flops": (1, 1e18, "FLOPs"),
}


def _check_plausible(where: str, fname: str, value: float) -> None:
    """`value` within PLAUSIBLE's span for its field (a table's entry, `peak_flops_by_precision.
    fp16`, by its table's)."""
    span = PLAUSIBLE.get(fname.split(".", 1)[0])
    if span is None:
        return
    least, most, unit = span
    if not least <= value <= most:
        raise HardwareError(f"{where}: {fname} {value:g} {unit} is outside what a part could "
                            f"have ({least:.3g} to {most:.3g} {unit})")


# -- field checks (shared by the three part types) ---------------------------------------------
def _where(what: str, name: object) -> str:
    return f"{what} {name!r}"


def _check_str(where: str, fname: str, value: object, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise HardwareError(f"{where}: {fname} must be a string, got {type(value).__name__} "
                            f"{value!r}")
    if not allow_empty and not value.strip():
        raise HardwareError(f"{where}: {fname} must not be empty")


def _check_number(where: str, fname: str, value: object, positive: bool = True,
                  optional: bool = False) -> None:
    if value is None and optional:
        return
    # bool is an int subclass: reject it, `true` in a TOML bandwidth is a typo, not 1 B/s
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HardwareError(f"{where}: {fname} must be a number, got {type(value).__name__} "
                            f"{value!r}")
    if value != value or value in (float("inf"), float("-inf")):
        raise HardwareError(f"{where}: {fname} must be finite, got {value!r}")
    if positive and value <= 0:
        raise HardwareError(f"{where}: {fname} must be > 0, got {value!r}")
    if not positive and value < 0:
        raise HardwareError(f"{where}: {fname} must be >= 0, got {value!r}")
    _check_plausible(where, fname, value)


T = TypeVar("T")


def required(value: T | None, part: str, fname: str) -> T:
    """A field the part's kind requires (DeviceSpec.__post_init__ checks it), never None."""
    if value is None:
        raise HardwareError(f"device {part!r}: {fname} is required here")
    return value


def _check_int(where: str, fname: str, value: object, minimum: int = 1,
               optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise HardwareError(f"{where}: {fname} must be an integer, got {type(value).__name__} "
                            f"{value!r}")
    if value < minimum:
        raise HardwareError(f"{where}: {fname} must be >= {minimum}, got {value!r}")
    _check_plausible(where, fname, value)


def _check_bool(where: str, fname: str, value: object) -> None:
    if not isinstance(value, bool):
        raise HardwareError(f"{where}: {fname} must be true or false, got {value!r}")


def check_family_table(where: str, fname: str, table: object, unit_interval: bool) -> dict:
    """A {family: number} table: known families, numbers > 0 (and <= 1 for efficiencies)."""
    if not isinstance(table, Mapping):
        raise HardwareError(f"{where}: {fname} must be a table of family = number, got "
                            f"{type(table).__name__} {table!r}")
    out = {}
    for family in sorted(table):
        if family not in FAMILIES:
            raise HardwareError(f"{where}: {fname} has unknown family {family!r}; known: "
                                f"{', '.join(sorted(FAMILIES))}")
        value = table[family]
        _check_number(where, f"{fname}.{family}", value)
        if unit_interval and value > 1:
            raise HardwareError(f"{where}: {fname}.{family} must be in (0, 1], got {value!r}")
        out[family] = float(value)
    return out



def read_text(path, what: str) -> str:
    """A hardware data file's text, or one HardwareError naming the file."""
    label = os.fspath(path)
    check_input_file(path, what, HardwareError)
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the text
        with open(path, encoding="utf-8-sig") as fh:
            return fh.read()
    except OSError as exc:
        raise HardwareError(f"{label}: cannot read {what}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise HardwareError(f"{label}: not valid TOML (not UTF-8 text): {exc}") from None

# -- parts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceSpec:
    """A compute device. FP32 throughout (the papers train in FP32)."""

    name: str
    kind: str                                  # 'gpu' | 'cpu' | 'arm'
    mem_bandwidth_Bps: float                   # datasheet peak of the device's memory
    memory_bytes: int                          # capacity usable for training/inference
    launch_overhead_s: float                   # per non-view op: kernel launch / dispatch
    source: str                                # datasheet or paper the numbers come from
    peak_flops: float | None = None            # FP32 FLOP/s; derived for cpu/arm if None
    mem_efficiency: float | None = None        # achievable share of mem_bandwidth_Bps
    efficiency: dict = field(default_factory=dict)             # family -> max efficiency
    half_efficiency_flops: dict = field(default_factory=dict)  # family -> W_half (FLOPs)
    copy_engines: int = 0                      # GPU DMA engines (2: one H2D + one D2H)
    host_link: str | None = None               # catalog link name to the host, e.g. 'pcie3'
    cores: int | None = None
    clock_hz: float | None = None
    vector_lanes_fp32: int | None = None       # AVX-512: 16, AVX2: 8, NEON: 4
    fma_units_per_core: int | None = None      # vector FMA instructions issued per cycle
    l2_bytes: int | None = None
    l3_bytes: int | None = None                # last-level cache the device's cores share
    architecture: str | None = None            # GPU generation (GPU_ARCHITECTURES)
    sm_count: int | None = None                # GPU streaming multiprocessors
    fp32_lanes_per_sm: int | None = None       # GPU FP32 FMA lanes (CUDA cores) per SM
    # precision -> dense peak FLOP/s (tensor cores where the part has them); a precision the
    # part cannot run is absent. fp32 is filled in from peak_flops.
    peak_flops_by_precision: dict = field(default_factory=dict)
    # GPU: the SM clock the part holds under dense training load (power and thermal limits),
    # which the arithmetic peaks scale to; clock_hz (and the peaks) stay the datasheet's rated
    # figures. None: the rated clock. Its source says where the figure comes from.
    sustained_clock_hz: float | None = None
    sustained_clock_source: str | None = None
    # GPU: the SM clock the datasheet's tensor-core peaks (every precision but fp32) are quoted
    # at, where it is below clock_hz: NVIDIA quotes Hopper's FP32 at its max boost and its
    # tensor rates at a lower clock. None: clock_hz.
    tensor_clock_hz: float | None = None
    # ARM boards: the clock of the core the OS runs the kernel's TCP/IP stack on (a
    # big.LITTLE part's clock_hz is an effective convolution clock, no core's). None: clock_hz.
    tcp_stack_clock_hz: float | None = None

    def __post_init__(self) -> None:
        _check_str("device", "name", self.name)
        where = _where("device", self.name)
        if self.kind not in DEVICE_KINDS:
            raise HardwareError(f"{where}: kind must be one of {', '.join(DEVICE_KINDS)}, "
                                f"got {self.kind!r}")
        _check_number(where, "mem_bandwidth_Bps", self.mem_bandwidth_Bps)
        _check_int(where, "memory_bytes", self.memory_bytes)
        _check_number(where, "launch_overhead_s", self.launch_overhead_s, positive=False)
        _check_str(where, "source", self.source)
        _check_number(where, "mem_efficiency", self.mem_efficiency, optional=True)
        if self.mem_efficiency is not None and self.mem_efficiency > 1:
            raise HardwareError(f"{where}: mem_efficiency must be in (0, 1], "
                                f"got {self.mem_efficiency!r}")
        object.__setattr__(self, "efficiency",
                           check_family_table(where, "efficiency", self.efficiency, True))
        object.__setattr__(self, "half_efficiency_flops",
                           check_family_table(where, "half_efficiency_flops",
                                              self.half_efficiency_flops, False))
        _check_int(where, "copy_engines", self.copy_engines, minimum=0)
        if self.host_link is not None:
            _check_str(where, "host_link", self.host_link)
        _check_int(where, "cores", self.cores, optional=True)
        _check_number(where, "clock_hz", self.clock_hz, optional=True)
        _check_number(where, "tcp_stack_clock_hz", self.tcp_stack_clock_hz, optional=True)
        _check_int(where, "vector_lanes_fp32", self.vector_lanes_fp32, optional=True)
        _check_int(where, "fma_units_per_core", self.fma_units_per_core, optional=True)
        _check_int(where, "l2_bytes", self.l2_bytes, optional=True)
        _check_int(where, "l3_bytes", self.l3_bytes, optional=True)
        _check_int(where, "sm_count", self.sm_count, optional=True)
        _check_int(where, "fp32_lanes_per_sm", self.fp32_lanes_per_sm, optional=True)
        _check_number(where, "sustained_clock_hz", self.sustained_clock_hz, optional=True)
        if self.sustained_clock_hz is not None:
            if self.clock_hz is None:
                raise HardwareError(f"{where}: sustained_clock_hz needs clock_hz, the rated "
                                    f"clock its peaks are quoted at")
            if self.sustained_clock_source is None:
                raise HardwareError(f"{where}: sustained_clock_hz needs a "
                                    f"sustained_clock_source saying where it comes from")
        if self.sustained_clock_source is not None:
            _check_str(where, "sustained_clock_source", self.sustained_clock_source)
        _check_number(where, "tensor_clock_hz", self.tensor_clock_hz, optional=True)
        if self.tensor_clock_hz is not None and (self.clock_hz is None
                                                 or self.tensor_clock_hz > self.clock_hz):
            raise HardwareError(f"{where}: tensor_clock_hz must be at most clock_hz, the rated "
                                f"clock, got {self.tensor_clock_hz!r}")
        if self.architecture is not None and self.architecture not in GPU_ARCHITECTURES:
            raise HardwareError(f"{where}: architecture must be one of "
                                f"{', '.join(GPU_ARCHITECTURES)}, got {self.architecture!r}")
        if not isinstance(self.peak_flops_by_precision, Mapping):
            raise HardwareError(f"{where}: peak_flops_by_precision must be a table of "
                                f"precision = FLOP/s")
        for precision, value in self.peak_flops_by_precision.items():
            if precision not in ARITHMETIC_PRECISIONS:
                raise HardwareError(f"{where}: peak_flops_by_precision has unknown precision "
                                    f"{precision!r}; known: {', '.join(ARITHMETIC_PRECISIONS)}")
            _check_number(where, f"peak_flops_by_precision.{precision}", value)
        if self.kind == "gpu":
            if self.peak_flops is None:
                raise HardwareError(f"{where}: peak_flops is required for a gpu")
        else:
            for fname in _PEAK_INPUTS:
                if getattr(self, fname) is None:
                    raise HardwareError(f"{where}: {fname} is required for a {self.kind}")
            if self.peak_flops is None:
                object.__setattr__(self, "peak_flops", self.derived_peak_flops)
        _check_number(where, "peak_flops", self.peak_flops)
        peaks = {k: float(v) for k, v in sorted(self.peak_flops_by_precision.items())}
        peaks.setdefault("fp32", float(required(self.peak_flops, self.name, "peak_flops")))
        object.__setattr__(self, "peak_flops_by_precision", peaks)

    def peak_flops_for(self, precision: str) -> float:
        """Dense peak FLOP/s in an arithmetic precision (ARITHMETIC_PRECISIONS)."""
        try:
            return self.peak_flops_by_precision[precision]
        except KeyError:
            raise HardwareError(f"device {self.name!r} cannot compute in {precision}; it "
                                f"can in: {', '.join(self.peak_flops_by_precision)}") from None

    @property
    def sustained_clock_share(self) -> float:
        """sustained_clock_hz over the rated clock_hz (1 where no sustained clock is given)."""
        if self.sustained_clock_hz is None or self.clock_hz is None:
            return 1.0
        return float(self.sustained_clock_hz) / float(self.clock_hz)

    def sustained_peak_flops_for(self, precision: str) -> float:
        """Dense peak FLOP/s in a precision at the sustained clock: every arithmetic unit runs
        on the SM clock, so the rated peak scales with it. A tensor peak quoted at a clock
        below the rated one (tensor_clock_hz) scales from that clock, and no further than its
        quoted figure: the part is not taken past the vendor's own rate."""
        if precision == "fp32" or self.tensor_clock_hz is None:
            return self.peak_flops_for(precision) * self.sustained_clock_share
        sustained = self.sustained_clock_hz or self.clock_hz or self.tensor_clock_hz
        return self.peak_flops_for(precision) * min(1.0, sustained / self.tensor_clock_hz)

    def __hash__(self) -> int:  # the dict fields are not hashable; the name identifies a part
        return hash((self.name, self.kind, self.peak_flops, self.mem_bandwidth_Bps))

    @property
    def per_core_peak_flops(self) -> float | None:
        """clock * lanes * FMA units * 2 (an FMA is 2 FLOPs); None for a GPU."""
        clock, lanes, fmas = self.clock_hz, self.vector_lanes_fp32, self.fma_units_per_core
        if self.kind == "gpu" or clock is None or lanes is None or fmas is None:
            return None   # a cpu or arm part has all three (__post_init__ checks)
        return float(clock) * lanes * fmas * 2.0

    @property
    def derived_peak_flops(self) -> float | None:
        per_core = self.per_core_peak_flops
        return None if per_core is None or self.cores is None else per_core * self.cores

    def with_options(self, **overrides: Any) -> "DeviceSpec":
        """A modified copy. Changing cores, clock_hz, vector_lanes_fp32 or fma_units_per_core
        recomputes peak_flops from them unless peak_flops is overridden too."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise HardwareError(f"device {self.name!r}: unknown option(s) {', '.join(unknown)}; "
                                f"known: {', '.join(sorted(known))}")
        identity = sorted(set(overrides) & _IDENTITY_FIELDS)
        if identity:    # another kind or name is another part: the catalog's, not a tweak
            raise HardwareError(f"device {self.name!r}: {', '.join(identity)} cannot be set as "
                                "an option; choose another catalog device or profile instead")
        int_fields = {f.name for f in dataclasses.fields(self) if "int" in str(f.type)
                      and "float" not in str(f.type)}
        for k, v in overrides.items():   # 8e9 (TOML float, CLI number) for a byte count
            if k in int_fields and isinstance(v, float) and v.is_integer():
                overrides[k] = int(v)
        if (self.kind != "gpu" and "peak_flops" not in overrides
                and any(k in overrides for k in _PEAK_INPUTS)):
            overrides["peak_flops"] = None
        if "sustained_clock_hz" in overrides and "sustained_clock_source" not in overrides:
            # the catalog's source no longer describes an overridden clock
            overrides["sustained_clock_source"] = "set by an override"
        if "peak_flops" in overrides and "peak_flops_by_precision" not in overrides:
            # the fp32 entry mirrors peak_flops: let it follow the new value
            overrides["peak_flops_by_precision"] = {
                k: v for k, v in self.peak_flops_by_precision.items() if k != "fp32"}
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class LinkSpec:
    """A link: one direction's bandwidth; a duplex link carries as much the other way at once."""

    name: str
    bandwidth_Bps: float          # effective, one direction
    latency_s: float              # per transfer (software + wire), paid once per message
    source: str
    shared_medium: bool = False   # Wi-Fi: every device on it shares one channel
    duplex: bool = True

    def __post_init__(self) -> None:
        _check_str("link", "name", self.name)
        where = _where("link", self.name)
        _check_number(where, "bandwidth_Bps", self.bandwidth_Bps)
        _check_number(where, "latency_s", self.latency_s, positive=False)
        _check_str(where, "source", self.source)
        _check_bool(where, "shared_medium", self.shared_medium)
        _check_bool(where, "duplex", self.duplex)


@dataclass(frozen=True)
class HostSpec:
    """Host DRAM: where swapped activations and (for a CPU run) everything else lives."""

    name: str
    memory_bytes: int
    mem_bandwidth_Bps: float
    source: str

    def __post_init__(self) -> None:
        _check_str("host", "name", self.name)
        where = _where("host", self.name)
        _check_int(where, "memory_bytes", self.memory_bytes)
        _check_number(where, "mem_bandwidth_Bps", self.mem_bandwidth_Bps)
        _check_str(where, "source", self.source)
