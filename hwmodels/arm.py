"""ARM board model (NEON, 4 fp32 lanes): ARM Compute Library / NCNN-like efficiencies.

Same roofline as the CPU model (it is one: cores, clock, lanes, FMA units) with the numbers of
a small in-order/out-of-order mobile core, from catalog/model_efficiency.toml [arm] (its
`source` says where they come from): convolutions reach well under half of NEON peak, memory
bound ops see only a few GB/s of LPDDR4 (which is why DeCNN's partitioning pays off even at
modest compute), and small ops pay for slow thread wake-up.
"""
from __future__ import annotations

from .cpu import CPUModel
from .model_efficiency import table

_ARM = table("arm")


class ARMModel(CPUModel):
    kind = "arm"
    DEFAULT_EFFICIENCY = _ARM.efficiency
    DEFAULT_HALF_EFFICIENCY_TIME_S = _ARM.half_efficiency_time_s
    DEFAULT_MEM_EFFICIENCY = _ARM.mem_efficiency
    GROUPS_SATURATION_CHANNELS = _ARM.groups_saturation_channels
    GROUPS_LOG_PENALTY = _ARM.groups_log_penalty
