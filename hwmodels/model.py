"""DeviceModel: how long one op takes on one device.

    op_time_s = max(compute_time_s, memory_time_s) + launch_overhead_s      (views cost 0)
    compute_time_s = flops / (peak_flops * eff(op))
    memory_time_s  = bytes_moved / (mem_bandwidth_Bps * mem_efficiency)
    eff(op) = eff_max(family) * groups_factor(op) * W / (W + W_half(family)),  W = op.flops

The saturating factor W / (W + W_half) says that small ops cannot fill the device: an op of
W_half FLOPs reaches half its family's best efficiency. Algebraically the compute time is
(W + W_half) / (peak * eff_max * groups_factor): a fixed cost plus a throughput term, which is
what small-kernel measurements look like.

Where the numbers come from, most specific first: a calibrated Profile (measured op times per
kind, and fitted per-family eff_max), the part's spec (catalog TOML), the device class's
defaults (gpu.py, cpu.py, arm.py). A profile that lacks a kind falls back to the curve, and the
model counts it in `fallbacks` so results can say so.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from typing import ClassVar, Sequence

from workloads.graph import Op
from workloads.kinds import SerialSchedule, kind_of

from . import catalog
from .families import CONV_FAMILIES, FAMILIES, KIND_FAMILY, point_shape
from .profile import Profile
from .specs import DeviceSpec, HardwareError, required

MODEL_CLASSES: dict[str, type["DeviceModel"]] = {}


class DeviceModel:
    kind: ClassVar[str | None] = None
    # family -> best fraction of peak FLOP/s the family's library kernels reach
    DEFAULT_EFFICIENCY: ClassVar[dict[str, float]] = {}
    # family -> seconds; W_half = peak_flops * this, so the size at which an op reaches half
    # its best efficiency scales with the device (a bigger GPU needs more work to fill it)
    DEFAULT_HALF_EFFICIENCY_TIME_S: ClassVar[dict[str, float]] = {}
    DEFAULT_MEM_EFFICIENCY: ClassVar[float] = 0.8
    # grouped convs: per-group GEMMs with few channels underfill the vector/tile units
    GROUPS_SATURATION_CHANNELS: ClassVar[int] = 64
    GROUPS_LOG_PENALTY: ClassVar[float] = 0.25

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind is not None:
            MODEL_CLASSES[cls.kind] = cls

    def __init__(self, spec: DeviceSpec, profile: Profile | None = None) -> None:
        if not isinstance(spec, DeviceSpec):
            raise HardwareError(f"a device model needs a DeviceSpec, got {spec!r}")
        if self.kind is not None and spec.kind != self.kind:
            raise HardwareError(f"device {spec.name!r} is a {spec.kind}, not a {self.kind}: "
                                f"use hwmodels.model_for")
        if profile is not None and profile.device_kind != spec.kind:
            raise HardwareError(f"{profile.label}: profile is for a {profile.device_kind}, "
                                f"device {spec.name!r} is a {spec.kind}")
        self.spec = spec
        self.profile = profile
        self.fallbacks: Counter[str] = Counter()     # op kind -> ops costed by the curve
        self.profile_hits: Counter[str] = Counter()  # op kind -> ops costed from the profile

    def __repr__(self) -> str:
        prof = "" if self.profile is None else f", profile={self.profile.label!r}"
        return f"{type(self).__name__}({self.spec.name!r}{prof})"

    # -- the part's numbers ----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def peak_flops(self) -> float:
        return float(required(self.spec.peak_flops, self.spec.name, "peak_flops"))

    @property
    def mem_bandwidth_Bps(self) -> float:
        return float(self.spec.mem_bandwidth_Bps)

    @property
    def memory_bytes(self) -> int:
        return self.spec.memory_bytes

    @property
    def launch_overhead_s(self) -> float:
        return float(self.spec.launch_overhead_s)

    @property
    def mem_efficiency(self) -> float:
        if self.spec.mem_efficiency is not None:
            return float(self.spec.mem_efficiency)
        return self.DEFAULT_MEM_EFFICIENCY

    def supported_precisions(self) -> tuple[str, ...]:
        """Training precisions (workloads/precision.py) this part runs: FP32, and BF16 where
        its catalog entry lists a BF16 peak (AVX512_BF16, AMX)."""
        if "bf16" in self.spec.peak_flops_by_precision:
            return ("fp32", "bf16", "amp-bf16")
        return ("fp32",)

    def family(self, kind: str) -> str:
        try:
            return KIND_FAMILY[kind]
        except KeyError:
            raise HardwareError(f"{self.spec.name}: op kind {kind!r} has no cost family; "
                                f"map it in hwmodels/families.py") from None

    def max_efficiency(self, family: str) -> float:
        for table in ((self.profile.efficiency if self.profile else {}), self.spec.efficiency,
                      self.DEFAULT_EFFICIENCY):
            if family in table:
                return table[family]
        raise HardwareError(f"{self.spec.name}: no efficiency for family {family!r} "
                            f"(known families: {', '.join(sorted(FAMILIES))})")

    def half_efficiency_flops(self, family: str) -> float:
        if family in self.spec.half_efficiency_flops:
            return self.spec.half_efficiency_flops[family]
        if family in self.DEFAULT_HALF_EFFICIENCY_TIME_S:
            return self.peak_flops * self.DEFAULT_HALF_EFFICIENCY_TIME_S[family]
        raise HardwareError(f"{self.spec.name}: no half-efficiency size for family {family!r}")

    def groups_factor(self, op: Op) -> float:
        """1 for dense convs; less for grouped ones, down to a few % for depthwise."""
        if self.family(op.kind) not in CONV_FAMILIES:
            return 1.0
        groups = int(op.attrs.get("groups", 1))
        if groups <= 1:
            return 1.0
        per_group = op.attrs["in_channels"] // groups
        fill = min(1.0, per_group / self.GROUPS_SATURATION_CHANNELS) ** 0.5
        return fill / (1.0 + self.GROUPS_LOG_PENALTY * math.log2(groups))

    def efficiency(self, op: Op) -> float:
        """Fraction of peak FLOP/s this op reaches (its size, kind and grouping)."""
        family = self.family(op.kind)
        w = op.flops
        if w <= 0:
            return 0.0
        return (self.max_efficiency(family) * self.groups_factor(op)
                * w / (w + self.half_efficiency_flops(family)))

    # -- the curve -------------------------------------------------------------------------
    def _compute_s(self, family: str, flops: float, groups_factor: float) -> float:
        if flops <= 0:
            return 0.0
        eff_max = self.max_efficiency(family)
        w_half = self.half_efficiency_flops(family)
        return (flops + w_half) / (self.peak_flops * eff_max * groups_factor)

    def _memory_s(self, nbytes: float) -> float:
        return nbytes / (self.mem_bandwidth_Bps * self.mem_efficiency)

    def compute_time_s(self, op: Op) -> float:
        return self._compute_s(self.family(op.kind), op.flops, self.groups_factor(op))

    def memory_time_s(self, op: Op) -> float:
        return self._memory_s(op.bytes_moved)

    def is_compute_bound(self, op: Op) -> bool:
        return self.compute_time_s(op) >= self.memory_time_s(op)

    def curve_time_s(self, op: Op) -> float:
        """The roofline-and-efficiency time, ignoring any profile."""
        if op.is_view:
            return 0.0
        role = kind_of(op.kind).gemm_role
        if role is not None and role.schedule is not None:
            return self.serial_time_s(op, role.schedule(op))
        return max(self.compute_time_s(op), self.memory_time_s(op)) + self.launch_overhead_s

    def serial_time_s(self, op: Op, schedule: SerialSchedule) -> float:
        """A recurrent layer's pass run step after step, as PyTorch runs it off cuDNN: each
        step's products, each a point of the family's curve (a small product reaches little
        of the peak) with its dispatch, then its pointwise ops (oneDNN's one fused kernel
        for an LSTM, PyTorch's own cell's ATen ops otherwise: SerialSchedule.pointwise_ops),
        each dispatched, sharing the step's pointwise traffic."""
        family, elem = self.family(op.kind), op.out.dtype_bytes
        step_s = sum(self._curve_point_s(family, 2.0 * m * n * k * b,
                                         (m * k + n * k + m * n) * b * elem, 1.0)
                     for m, n, k, b in schedule.gemms)
        if schedule.pointwise_ops:
            step_s += (max(self._compute_s("elementwise", schedule.pointwise_flops, 1.0),
                           self._memory_s(schedule.pointwise_bytes))
                       + schedule.pointwise_ops * self.launch_overhead_s)
        return schedule.steps * step_s

    def _curve_point_s(self, family: str, flops: float, nbytes: float, groups_factor: float):
        return (max(self._compute_s(family, flops, groups_factor), self._memory_s(nbytes))
                + self.launch_overhead_s)

    # -- the op time -----------------------------------------------------------------------
    def op_time_s(self, op: Op, step_bytes: float | None = None) -> float:
        """Seconds to run `op`. step_bytes: what the step it is part of moves on this device
        (the sum of its ops' bytes), if known: a calibrated profile's small ops run faster
        in a step that fits in the cache (hwmodels/residency.py)."""
        if op.is_view:
            return 0.0
        self.family(op.kind)  # an unmapped kind is an error even when a profile covers it
        if self.profile is not None:
            if self.profile.covers(op.kind):
                self.profile_hits[op.kind] += 1
                time_s = self._profiled_time_s(op)
                residency = self.profile.residency
                return time_s if residency is None else residency.time_s(time_s, step_bytes)
            self.fallbacks[op.kind] += 1
        return self.curve_time_s(op)

    def stream_times_s(self, ops: Sequence[Op], step_bytes: float | None = None,
                       queue: dict | None = None) -> list[float]:
        """Each op's seconds when `ops` run one after another in this order on one stream
        (a GPU's framework issues them ahead, `queue` carrying its state from call to call:
        hwmodels/launch_queue.py); here each op's own time."""
        return [self.op_time_s(op, step_bytes) for op in ops]

    def reset_counters(self) -> None:
        self.fallbacks.clear()
        self.profile_hits.clear()

    def _ideal_s(self, flops: float, nbytes: float) -> float:
        """Pure roofline time at peak: the 'work' axis on which profiles interpolate (it is
        defined for copies with no FLOPs and for FLOP-heavy ops alike)."""
        return max(flops / self.peak_flops, nbytes / self.mem_bandwidth_Bps)

    def _profiled_time_s(self, op: Op) -> float:
        """From the profile's points of this kind: the measured time for a measured op, else
        the kind's fit corrected by nearby residuals (hwmodels/profile_fit.py)."""
        assert self.profile is not None
        predictor = self.profile.predictor(op.kind)
        return predictor.predict_s(op.flops, op.bytes_moved, point_shape(op))


def model_for(spec_or_name: DeviceSpec | str, profile: Profile | str | os.PathLike | None = None
              ) -> DeviceModel:
    """The device model for a spec (or a built-in catalog name), by the spec's kind. A profile
    may be given as a Profile or as the path of a profile TOML."""
    spec = catalog.device(spec_or_name) if isinstance(spec_or_name, str) else spec_or_name
    if not isinstance(spec, DeviceSpec):
        raise HardwareError(f"model_for needs a DeviceSpec or a device name, got {spec!r}")
    if profile is not None and not isinstance(profile, Profile):
        profile = Profile.load(profile)
    try:
        cls = MODEL_CLASSES[spec.kind]
    except KeyError:
        raise HardwareError(f"device {spec.name!r}: no model for kind {spec.kind!r}; known: "
                            f"{', '.join(sorted(MODEL_CLASSES))}") from None
    return cls(spec, profile)
