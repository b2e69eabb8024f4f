"""GPU model: cuDNN / cuBLAS-like efficiencies on the roofline of model.py.

Defaults, as fractions of FP32 peak, for large ops (the saturating curve lowers small ones):
- conv 0.70: cuDNN implicit-GEMM / Winograd FP32 kernels on Pascal/Volta reach ~60-75% of peak
  on large ResNet/VGG layers.
- conv_grad_input 0.65: the data gradient is a transposed conv, nearly as efficient.
- conv_grad_weight 0.55: the weight gradient reduces over batch and space into a small output;
  cuDNN's wgrad algorithms need split-K reductions (and often atomics), so they are usually the
  slowest of the three (per-layer timings in DeepBench / cudnn benchmarks).
- matmul 0.75 / matmul_grad 0.70: cuBLAS SGEMM reaches 80-90% on large squares; FC layers are
  skinny (batch rows), so less.
- elementwise, pooling, normalization, loss, data movement: memory bound in practice; their
  compute efficiency only matters for tiny tensors.
Grouped convs: cuDNN of this era runs groups as separate small GEMMs, depthwise convs at a few %
of peak: the groups factor (model.py) with saturation at 64 channels per group and a 0.25 log2
penalty per doubling of groups.
"""
from __future__ import annotations

from .model import DeviceModel


class GPUModel(DeviceModel):
    kind = "gpu"
    DEFAULT_EFFICIENCY = {
        "conv": 0.70, "conv_grad_input": 0.65, "conv_grad_weight": 0.55,
        "matmul": 0.75, "matmul_grad": 0.70,
        "elementwise": 0.5, "normalization": 0.3, "pooling": 0.3, "data_movement": 0.5,
        "loss": 0.2, "update": 0.5, "view": 1.0,
    }
    # ~20 us of fill time for a conv: a V100 conv of ~0.3 GFLOP runs at half its best rate
    DEFAULT_HALF_EFFICIENCY_TIME_S = {
        "conv": 20e-6, "conv_grad_input": 25e-6, "conv_grad_weight": 25e-6,
        "matmul": 15e-6, "matmul_grad": 15e-6,
        "elementwise": 1e-6, "normalization": 3e-6, "pooling": 2e-6, "data_movement": 1e-6,
        "loss": 2e-6, "update": 1e-6, "view": 1e-6,
    }
    DEFAULT_MEM_EFFICIENCY = 0.85
    GROUPS_SATURATION_CHANNELS = 64
    GROUPS_LOG_PENALTY = 0.25

    @property
    def copy_engines(self) -> int:
        return self.spec.copy_engines

    @property
    def host_link(self) -> str | None:
        return self.spec.host_link
