"""A GPU architecture's fitted constants and a training framework's, as
catalog/gpu_families.toml holds them (written by `dnnsim calibrate --published`): how they are
read, checked and loaded. hwmodels/gpu.py costs ops with them."""
from __future__ import annotations

import importlib.resources
import tomllib
from dataclasses import dataclass, fields
from functools import lru_cache

from .specs import HardwareError

FAMILIES_FILE = "gpu_families.toml"
# the framework a simulation trains in unless told otherwise
DEFAULT_FRAMEWORK = "pytorch"


@dataclass(frozen=True)
class GpuFamily:
    """An architecture's efficiencies: the share of the arithmetic peak (at the part's
    sustained clock) a large, full-wave tile of each library algorithm sustains, and the
    per-kernel overhead."""
    name: str
    gemm: float              # cuBLAS GEMM (linear layers)
    conv_fwd: float          # cuDNN implicit GEMM, forward
    conv_dgrad: float        # ... data gradient
    conv_wgrad: float        # ... weight gradient
    winograd: float          # cuDNN's non-fused Winograd F(4x4, 3x3), of its reduced arithmetic
    winograd_fused: float    # cuDNN's fused Winograd F(2x2, 3x3), of its reduced arithmetic
    fft: float               # cuDNN FFT_TILING, of its complex GEMMs' arithmetic
    tensor_core: float       # multiplies the above when the GEMM runs on tensor cores
    lone_cta: float          # multiplies the above for a GEMM whose CTAs all fit in one round,
                             # each alone on its SM, with no other CTA to run while it waits
    tn_gemm: float           # multiplies the GEMM's rate for a TN product on a cuBLAS
                             # release whose TN kernels run slower (CublasRelease.slow_tn)
    strided_memory: float    # multiplies `memory` for a TN product's traffic: both operands
                             # read along K, a 32-byte piece of each row at a time
    memory: float            # multiplies the part's mem_efficiency for the traffic of
                             # cuDNN's convolution kernels (the framework's own streaming
                             # kernels reach Framework.stream_memory instead)
    gemm_memory: float       # ... and for the traffic of cuBLAS's GEMM and gemv kernels:
                             # another library's kernels, which stream at a rate of their own
    kernel_overhead_s: float     # GPU-side gap between dependent kernels
    fitted_to: str

    EFFICIENCIES = ("gemm", "conv_fwd", "conv_dgrad", "conv_wgrad", "winograd", "winograd_fused",
                    "fft",
                    "tensor_core", "lone_cta", "tn_gemm", "strided_memory",
                    "memory", "gemm_memory")

    @classmethod
    def from_table(cls, name: str, table: dict, where: str) -> "GpuFamily":
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(table) - known)
        missing = sorted(known - set(table))
        if unknown or missing:
            raise HardwareError(f"{where}: family {name!r}: unknown fields {unknown}, "
                                f"missing fields {missing}")
        for key in cls.EFFICIENCIES:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value <= 1:
                raise HardwareError(f"{where}: {name}.{key} must be in (0, 1], got {value!r}")
        _check_seconds(where, f"{name}.kernel_overhead_s", table["kernel_overhead_s"])
        efficiencies = {k: float(v) for k, v in table.items() if k != "fitted_to"}
        return cls(name=name, fitted_to=table["fitted_to"], **efficiencies)

    def as_table(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}


@dataclass(frozen=True)
class Framework:
    """A training framework's host time to issue one op (Python or Lua dispatch, autograd
    bookkeeping, the launch call): a kernel shorter than this leaves the GPU waiting; and the
    share of the part's streaming bandwidth (its mem_efficiency) that the framework's own
    elementwise, norm, pooling and optimizer kernels reach (stream_memory)."""
    name: str
    host_overhead_s: float
    stream_memory: float
    fitted_to: str

    FIELDS = ("host_overhead_s", "stream_memory", "fitted_to")


def _check_seconds(where: str, what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e-3:
        raise HardwareError(f"{where}: {what} must be in [0, 1e-3) s, got {value!r}")


def _toml(text: str, where: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HardwareError(f"{where}: not valid TOML: {exc}") from None


def load_frameworks(text: str, where: str) -> dict[str, Framework]:
    tables = _toml(text, where).get("frameworks")
    if not isinstance(tables, dict) or DEFAULT_FRAMEWORK not in tables:
        raise HardwareError(f"{where}: needs [frameworks.<name>] tables, "
                            f"[frameworks.{DEFAULT_FRAMEWORK}] among them")
    out = {}
    for name, table in sorted(tables.items()):
        if not isinstance(table, dict) or set(table) != set(Framework.FIELDS):
            raise HardwareError(f"{where}: frameworks.{name} takes "
                                f"{', '.join(Framework.FIELDS)}")
        _check_seconds(where, f"frameworks.{name}.host_overhead_s", table["host_overhead_s"])
        share = table["stream_memory"]
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise HardwareError(f"{where}: frameworks.{name}.stream_memory must be in (0, 1], "
                                f"got {share!r}")
        out[name] = Framework(name, float(table["host_overhead_s"]), float(share),
                              str(table["fitted_to"]))
    return out


def load_families(text: str, where: str) -> dict[str, GpuFamily]:
    data = _toml(text, where)
    families = data.get("families")
    if not isinstance(families, dict) or "default" not in families:
        raise HardwareError(f"{where}: needs [families.<architecture>] tables and a "
                            f"[families.default]")
    return {name: GpuFamily.from_table(name, table, where)
            for name, table in sorted(families.items())}


def _builtin_text() -> str:
    ref = importlib.resources.files("hwmodels.catalog").joinpath(FAMILIES_FILE)
    return ref.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def builtin_families() -> dict[str, GpuFamily]:
    return load_families(_builtin_text(), f"catalog/{FAMILIES_FILE}")


@lru_cache(maxsize=1)
def builtin_frameworks() -> dict[str, Framework]:
    return load_frameworks(_builtin_text(), f"catalog/{FAMILIES_FILE}")
