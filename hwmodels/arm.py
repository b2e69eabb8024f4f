"""ARM board model (NEON, 4 fp32 lanes): ARM Compute Library / NCNN-like efficiencies.

Same roofline as the CPU model (it is one: cores, clock, lanes, FMA units) with the numbers of
a small in-order/out-of-order mobile core:
- conv 0.40 (grad_input 0.35, grad_weight 0.30): ACL/NCNN Winograd/GEMM convs on Cortex-A72
  reach ~30-50% of NEON peak; A53 clusters and big.LITTLE synchronisation pull it down.
- memory bound ops see only ~4-6 GB/s of LPDDR4 (mem_efficiency ~0.4, set per board in
  arm.toml), which is why DeCNN's partitioning pays off even at modest compute.
- half efficiency at ~50 us of peak work: thread wake-up on mobile cores is slow.
Grouped convs: saturation at 4 channels per group (one NEON vector), 0.1 log2 penalty.
"""
from __future__ import annotations

from .cpu import CPUModel


class ARMModel(CPUModel):
    kind = "arm"
    DEFAULT_EFFICIENCY = {
        "conv": 0.40, "conv_grad_input": 0.35, "conv_grad_weight": 0.30,
        "matmul": 0.45, "matmul_grad": 0.40,
        "elementwise": 0.3, "normalization": 0.2, "pooling": 0.2, "data_movement": 0.3,
        "loss": 0.1, "update": 0.3, "view": 1.0,
    }
    DEFAULT_HALF_EFFICIENCY_TIME_S = {
        "conv": 50e-6, "conv_grad_input": 50e-6, "conv_grad_weight": 50e-6,
        "matmul": 30e-6, "matmul_grad": 30e-6,
        "elementwise": 5e-6, "normalization": 10e-6, "pooling": 5e-6, "data_movement": 5e-6,
        "loss": 5e-6, "update": 5e-6, "view": 1e-6,
    }
    DEFAULT_MEM_EFFICIENCY = 0.4
    GROUPS_SATURATION_CHANNELS = 4
    GROUPS_LOG_PENALTY = 0.1
