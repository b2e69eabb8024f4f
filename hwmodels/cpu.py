"""CPU model (x86 with AVX-512): MKL-DNN / oneDNN-like efficiencies on the roofline.

Peak = cores * clock_hz * vector_lanes_fp32 * fma_units_per_core * 2. Defaults for large ops:
- conv 0.70: MKL-DNN's AVX-512 direct convolution (SparseTrain's dense baseline) runs at
  ~70-80% of peak on VGG/ResNet layers; grad_input 0.65, grad_weight 0.60 (reductions over
  the batch into per-thread partial weights).
- matmul 0.75 (MKL SGEMM), elementwise/pooling/normalization: bandwidth bound, 0.2-0.3.
- half efficiency at ~20 us of peak work: an OpenMP fork/join and per-thread blocking cost
  that small layers cannot amortise.
Grouped convs: saturation at 16 channels per group (one AVX-512 vector) and a mild 0.1 log2
penalty: CPUs lose less than GPUs on them.
Per-core work items for SparseTrain are added later by another module; this one exposes the
core parameters they need.
"""
from __future__ import annotations

from .cpu_identity import warn_if_other_machine
from .model import DeviceModel
from .specs import required


class CPUModel(DeviceModel):
    kind = "cpu"
    DEFAULT_EFFICIENCY = {
        "conv": 0.70, "conv_grad_input": 0.65, "conv_grad_weight": 0.60,
        "matmul": 0.75, "matmul_grad": 0.70,
        "elementwise": 0.3, "normalization": 0.2, "pooling": 0.2, "data_movement": 0.3,
        "loss": 0.1, "update": 0.3, "view": 1.0,
    }
    DEFAULT_HALF_EFFICIENCY_TIME_S = {
        "conv": 20e-6, "conv_grad_input": 20e-6, "conv_grad_weight": 20e-6,
        "matmul": 10e-6, "matmul_grad": 10e-6,
        "elementwise": 2e-6, "normalization": 4e-6, "pooling": 3e-6, "data_movement": 2e-6,
        "loss": 2e-6, "update": 2e-6, "view": 1e-6,
    }
    DEFAULT_MEM_EFFICIENCY = 0.75
    GROUPS_SATURATION_CHANNELS = 16
    GROUPS_LOG_PENALTY = 0.1

    def __init__(self, spec, profile=None) -> None:
        super().__init__(spec, profile)
        if profile is not None:
            # a calibrated profile's times predict the machine that measured them: say so
            # when this is another one (hwmodels/cpu_identity.py)
            warn_if_other_machine(profile.meta, profile.label, stacklevel=3)

    @property
    def cores(self) -> int:
        return int(required(self.spec.cores, self.spec.name, "cores"))

    @property
    def clock_hz(self) -> float:
        return float(required(self.spec.clock_hz, self.spec.name, "clock_hz"))

    @property
    def vector_lanes_fp32(self) -> int:
        return int(required(self.spec.vector_lanes_fp32, self.spec.name, "vector_lanes_fp32"))

    @property
    def fma_units_per_core(self) -> int:
        return int(required(self.spec.fma_units_per_core, self.spec.name, "fma_units_per_core"))

    @property
    def per_core_peak_flops(self) -> float:
        """clock_hz * vector_lanes_fp32 * fma_units_per_core * 2 (an FMA is 2 FLOPs)."""
        return float(required(self.spec.per_core_peak_flops, self.spec.name,
                              "per_core_peak_flops"))

    @property
    def l2_bytes(self) -> int | None:
        return self.spec.l2_bytes
