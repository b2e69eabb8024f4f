"""A calibrated profile: measured op times that override a device model's efficiency curve.

TOML layout (written by `dnnsim calibrate`, read back here):

    [meta]                      # device_kind is required; the rest describes the machine
    device_kind = "cpu"
    device_name = "xeon-avx512-2c"
    machine = "x86_64"  processor = "..."  vendor = "..."  isa = "avx avx2 ..."
    physical_cores = 2  logical_cpus = 2  l2_bytes = ...  l3_bytes = ...
    threads = 2  torch_version = "..."  date = "..."

    [efficiency]                # optional: fitted per-family max efficiencies (replace the spec's)
    conv = 0.62

    [kinds.relu]                # measured points of one op kind: [flops, bytes_moved, time_s]
    points = [[1.2e6, 9.6e6, 0.0004], ...]
                                # ... optionally with the input's layout (families.layout):
                                # [flops, bytes_moved, time_s, planes, pixels]

    [kinds.conv2d]              # GEMM kinds may add the product's shape (families.gemm_shape):
    points = [[1.2e9, 3.4e6, 0.0021, 8192, 64, 576, 1, 9, 1, 1024], ...]
                                # ... m, n, k, groups, window, stride, pixels; a convolution
                                # run on channels-last maps adds a 1 (channels_last)

Points are kept sorted, so saving is deterministic and a load/save round trip is byte-identical.
The interpolation itself needs the device's roofline and lives in the device model (model.py).
"""
from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field

from workloads.graph import ALL_KINDS, MATMUL_KINDS

from .cpu_identity import MACHINE_FIELDS
from .kernels import CONV_KINDS
from .specs import DEVICE_KINDS, HardwareError, check_family_table, read_text

# (flops, bytes_moved, time_s), or with a GEMM shape (..., m, n, k, groups, window, stride,
# pixels)
Point = tuple
GEMM_POINT = "[flops, bytes, time_s, m, n, k, groups, window, stride, pixels]"
# a convolution's point may end in channels_last = 1 (hwmodels/kernels.py); 10 numbers: NCHW
CONV_POINT_LENGTHS = (10, 11)
LAYOUT_POINT = "[flops, bytes, time_s, planes, pixels]"

META_FIELDS: dict[str, type] = {
    "device_kind": str, "device_name": str, "machine": str,
    # the machine measured (hwmodels/cpu_identity.py): a profile used on another one, or at
    # another PyTorch thread count or version, warns
    "processor": str, "vendor": str,
    "isa": str,                  # the cpu_identity.ISA_FLAGS present, space-separated
    "physical_cores": int, "logical_cpus": int,
    "l2_bytes": int,             # one core's L2, as the system reports it
    "l3_bytes": int,             # the L3 the cores share (residency's threshold)
    "unrecorded": str,           # machine fields calibration could not read, space-separated
    "threads": int, "torch_version": str, "date": str,
    # fp32 values per vector, by which oneDNN blocks channels (16 with AVX-512; kernels.py)
    "vector_fp32_lanes": int,
    # informational: the per-op framework overhead of a whole step (autograd, dispatch) that
    # calibration measured and already folded into every point's time_s
    "step_overhead_s": float,
    # informational: how ops were timed: 'replay' (inside replayed training steps), or alone
    # with operands 'warm' (left in cache) or 'cold' (evicted); older profiles say 'cache'
    "timing": str,
    # informational: 'steady' (malloc keeps freed memory: no page faults) or 'system'
    "allocator": str,
    # informational: how many times slower a product on subnormal floats ran than on normal
    # ones (validation/calibrate/subnormals.py); the model costs normal floats, and a
    # validated step whose ops read subnormals is named in a warning
    "subnormal_slowdown": float,
    # the median calibration round of a fixed case's replay (validate's speed check)
    "reference_replay_s": float,
    # informational: replay rounds of every case, and the most a case got while its median
    # was not yet confirmed (calibrate --rounds, --max-rounds)
    "rounds": int, "max_rounds": int,
    # informational: which replay round of each case made the points, 'median' or 'fastest'
    # (validation/calibrate/journal.py); measured steps in a calibration's CSVs count alike
    "round_statistic": str,
    "cache": str,
    # small ops in a step that moves at most resident_below_bytes (l3_bytes) take
    # t - min(resident_cap_s, (1 - resident_ratio) * t); points are times in larger steps
    # (hwmodels/residency.py). Fitted by calibration; all three or none.
    "resident_below_bytes": float, "resident_ratio": float, "resident_cap_s": float,
}
RESIDENCY_FIELDS = ("resident_below_bytes", "resident_ratio", "resident_cap_s")


@dataclass
class Profile:
    meta: dict
    kinds: dict[str, list[Point]]
    efficiency: dict[str, float] = field(default_factory=dict)
    label: str = field(default="profile", compare=False)  # for error messages; not saved
    # each kind's predictor, built on first use: a GEMM kind's fit takes about a second, and
    # every device model of a cluster, every simulation of a sweep, shares the profile
    _predictors: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = self.label
        if not isinstance(self.meta, dict):
            raise HardwareError(f"{where}: [meta] must be a table")
        for key in self.meta:
            if key not in META_FIELDS:
                raise HardwareError(f"{where}: [meta] unknown field {key!r}; known: "
                                    f"{', '.join(META_FIELDS)}")
            want = META_FIELDS[key]
            value = self.meta[key]
            accepted = (int, float) if want is float else want
            if isinstance(value, bool) or not isinstance(value, accepted):
                wanted = {int: "an integer", float: "a number"}.get(want, "a string")
                raise HardwareError(f"{where}: [meta] {key} must be {wanted}, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):   # TOML reads nan, inf
                raise HardwareError(f"{where}: [meta] {key} must be a finite number, got "
                                    f"{value!r}")
        kind = self.meta.get("device_kind")
        if kind not in DEVICE_KINDS:
            raise HardwareError(f"{where}: [meta] device_kind must be one of "
                                f"{', '.join(DEVICE_KINDS)}, got {kind!r}")
        self.meta = {k: self.meta[k] for k in META_FIELDS if k in self.meta}
        present = [k for k in RESIDENCY_FIELDS if k in self.meta]
        if present and len(present) != len(RESIDENCY_FIELDS):
            raise HardwareError(f"{where}: [meta] has {', '.join(present)} but not all of "
                                f"{', '.join(RESIDENCY_FIELDS)}")
        if present and not (self.meta["resident_below_bytes"] > 0
                            and 0 < self.meta["resident_ratio"] <= 1
                            and self.meta["resident_cap_s"] >= 0):
            raise HardwareError(f"{where}: [meta] needs resident_below_bytes > 0, 0 < "
                                f"resident_ratio <= 1 and resident_cap_s >= 0")
        for key in ("physical_cores", "logical_cpus", "l2_bytes", "l3_bytes", "threads"):
            if key in self.meta and self.meta[key] < 1:
                raise HardwareError(f"{where}: [meta] {key} must be >= 1, got "
                                    f"{self.meta[key]!r}")
        unrecorded = set(str(self.meta.get("unrecorded", "")).split()) - set(MACHINE_FIELDS)
        if unrecorded:
            raise HardwareError(f"{where}: [meta] unrecorded names "
                                f"{', '.join(sorted(unrecorded))}; machine fields: "
                                f"{', '.join(MACHINE_FIELDS)}")
        self.efficiency = check_family_table(where, "[efficiency]", self.efficiency, True)
        if not isinstance(self.kinds, dict):
            raise HardwareError(f"{where}: [kinds] must be a table of op kinds")
        self.kinds = {k: self._checked_points(k, self.kinds[k]) for k in sorted(self.kinds)}

    def _checked_points(self, kind: str, points: object) -> list[Point]:
        where = f"{self.label}: [kinds.{kind}]"
        if kind not in ALL_KINDS:
            raise HardwareError(f"{where}: unknown op kind {kind!r}; known: "
                                f"{', '.join(sorted(ALL_KINDS))}")
        shaped, lengths, names = (
            (GEMM_POINT, (3, *CONV_POINT_LENGTHS) if kind in CONV_KINDS else (3, 10),
             "m, n, k, groups, window, stride and pixels")
            if kind in MATMUL_KINDS else (LAYOUT_POINT, (3, 5), "planes and pixels"))
        if not isinstance(points, list) or not points:
            raise HardwareError(f"{where}: points must be a non-empty list of "
                                f"[flops, bytes, time_s] or {shaped}")
        out = []
        for i, p in enumerate(points):
            ok = (isinstance(p, (list, tuple)) and len(p) in lengths and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in p))
            if not ok:
                raise HardwareError(f"{where}: point {i} must be [flops, bytes, time_s] or "
                                    f"{shaped} numbers, got {p!r}")
            if len(p) != len(points[0]) and not (kind in CONV_KINDS and
                                                 {len(p), len(points[0])} == {10, 11}):
                raise HardwareError(f"{where}: point {i} has {len(p)} numbers, point 0 has "
                                    f"{len(points[0])}: a kind's points share one layout")
            if len(p) == 11 and p[10] != 1:
                raise HardwareError(f"{where}: point {i}: the 11th number, channels_last, "
                                    f"must be 1 where present (an NCHW point has 10 numbers), "
                                    f"got {p[10]!r}")
            flops, nbytes, time_s = (float(v) for v in p[:3])
            if flops < 0 or nbytes < 0 or time_s <= 0 or (flops == 0 and nbytes == 0):
                raise HardwareError(f"{where}: point {i} needs flops >= 0, bytes >= 0 (not both "
                                    f"0) and time_s > 0, got {p!r}")
            shape = p[3:]
            if any(not isinstance(v, int) or v < 1 for v in shape):
                raise HardwareError(f"{where}: point {i}: {names} must be integers >= 1, got "
                                    f"{list(shape)!r}")
            out.append((flops, nbytes, time_s, *shape))
        return sorted(out)

    # -- queries -----------------------------------------------------------------------------
    @property
    def device_kind(self) -> str:
        return self.meta["device_kind"]

    @property
    def device_name(self) -> str:
        """The catalog device this profile calibrates (what `--hardware PROFILE.toml` builds)."""
        name = self.meta.get("device_name")
        if not name:
            raise HardwareError(f"{self.label}: [meta] device_name is missing; it names the "
                                f"catalog device the profile calibrates")
        return name

    def covers(self, kind: str) -> bool:
        return kind in self.kinds

    def points(self, kind: str) -> list[Point]:
        if kind not in self.kinds:
            raise HardwareError(f"{self.label}: no measured points for op kind {kind!r}")
        return list(self.kinds[kind])

    @property
    def residency(self):
        """How much faster small ops run in a step that fits in the cache (None: no fit)."""
        from .residency import Residency
        if "resident_ratio" not in self.meta:
            return None
        return Residency(*(float(self.meta[k]) for k in RESIDENCY_FIELDS))

    def predictor(self, kind: str):
        """The predictor of an op kind's time from its points (hwmodels/profile_fit.py),
        built once per profile."""
        if kind not in self._predictors:
            from .kernels import KernelRules
            from .profile_fit import predictor_for
            self._predictors[kind] = predictor_for(self.points(kind), kind,
                                                   KernelRules.for_profile(self))
        return self._predictors[kind]

    # -- files -------------------------------------------------------------------------------
    @classmethod
    def loads(cls, text: str, label: str = "profile") -> "Profile":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise HardwareError(f"{label}: not valid TOML: {exc}") from None
        unknown = sorted(set(data) - {"meta", "kinds", "efficiency"})
        if unknown:
            raise HardwareError(f"{label}: unknown section(s) {', '.join(unknown)}; known: "
                                f"meta, kinds, efficiency")
        if "meta" not in data:
            raise HardwareError(f"{label}: missing [meta] section")
        kinds = data.get("kinds", {})
        if not isinstance(kinds, dict):
            raise HardwareError(f"{label}: [kinds] must be a table of op kinds")
        raw = {}
        for kind, table in kinds.items():
            if not isinstance(table, dict) or set(table) != {"points"}:
                raise HardwareError(f"{label}: [kinds.{kind}] must hold exactly one field, "
                                    f"points")
            raw[kind] = table["points"]
        return cls(meta=data["meta"], kinds=raw, efficiency=data.get("efficiency", {}),
                   label=label)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Profile":
        return cls.loads(read_text(path, "profile"), os.fspath(path))

    def dumps(self) -> str:
        lines = ["[meta]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in self.meta.items()]
        if self.efficiency:
            lines += ["", "[efficiency]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in sorted(self.efficiency.items())]
        for kind, points in self.kinds.items():  # sorted at construction
            lines += ["", f"[kinds.{kind}]", "points = ["]
            lines += [f"    [{', '.join(_toml_value(v) for v in p)}]," for p in points]
            lines.append("]")
        return "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(self.dumps())


# -- a small deterministic TOML writer (tomllib only reads) ------------------------------------
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def _toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:   # control characters must be escaped
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        # repr is the shortest string that reads back to the same float: exact round trip
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    raise HardwareError(f"cannot write {type(v).__name__} {v!r} to a profile")
