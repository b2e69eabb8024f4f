"""ARM board model (NEON, 4 fp32 lanes): ARM Compute Library / NCNN-like efficiencies.

Same roofline as the CPU model (it is one: cores, clock, lanes, FMA units) with the numbers of
a small in-order/out-of-order mobile core, from catalog/model_efficiency.toml [arm] (its
`source` says where they come from): convolutions reach well under half of NEON peak, memory
bound ops see only a few GB/s of LPDDR4 (which is why DeCNN's partitioning pays off even at
modest compute), and small ops pay for slow thread wake-up.

A convolution holds the Arm Compute Library's scratch buffers while it runs
(`workspace_bytes`), and a board also spends CPU time on what it sends and receives over TCP
(`tcp_stack_time_s`): the kernel's TCP/IP stack runs on the same cores as the convolutions,
so every transfer between boards (simulator/policies/_mpi_tcp.py) holds the board's compute
for it.
"""
from __future__ import annotations

from workloads.graph import Op

from .arm_conv import conv_plan
from .cpu import CPUModel
from .model_efficiency import table

_ARM = table("arm")

# CPU cycles the kernel's TCP/IP stack spends per payload byte at each end of a connection
# (copies between user and socket buffers, checksums, per-segment protocol work, interrupts):
# the rule of thumb of 1 Hz of CPU per bit/s of TCP throughput, 8 cycles a byte, which Foong,
# Huff, Hum, Patwardhan and Regnier measured on x86 for both transmit and receive ("TCP
# Performance Re-Visited", ISPASS 2003). Counted in cycles it scales with the board's clock;
# no published ratio of a Cortex-A72's to a Pentium 4's instructions per cycle on this code
# exists, so none is applied. The cycles are those of the core the stack runs on
# (DeviceSpec.tcp_stack_clock_hz, arm.toml says which core), not the effective clock that
# stands for a big.LITTLE board's convolution throughput.
TCP_CYCLES_PER_BYTE = 8.0


class ARMModel(CPUModel):
    kind = "arm"
    DEFAULT_EFFICIENCY = _ARM.efficiency
    DEFAULT_HALF_EFFICIENCY_TIME_S = _ARM.half_efficiency_time_s
    DEFAULT_MEM_EFFICIENCY = _ARM.mem_efficiency
    GROUPS_SATURATION_CHANNELS = _ARM.groups_saturation_channels
    GROUPS_LOG_PENALTY = _ARM.groups_log_penalty

    def tcp_stack_time_s(self, nbytes: float) -> float:
        """Seconds of one core that the TCP/IP stack takes to send or to receive `nbytes`,
        at the clock of the core that runs it (the board's clock_hz where none is given)."""
        return nbytes * TCP_CYCLES_PER_BYTE / (self.spec.tcp_stack_clock_hz or self.clock_hz)

    def memcpy_time_s(self, nbytes: float) -> float:
        """Seconds a user-space copy of `nbytes` takes: it reads and writes each byte at the
        bandwidth the board's memory-bound ops reach."""
        return self._memory_s(2 * nbytes)

    def workspace_bytes(self, op: Op) -> int:
        """The scratch buffers the Arm Compute Library's convolution holds while it runs
        (arm_conv.py): for the GEMM method its im2col matrix and the GEMM's output before
        col2im; for Winograd the input permuted to NHWC, its transform, the GEMMs' output
        and the NHWC output; a grouped layer runs one group at a time. 0 for other ops."""
        if op.kind != "conv2d":
            return 0
        return conv_plan(op).workspace_elements * op.out.dtype_bytes

    def curve_time_s(self, op: Op) -> float:
        """The roofline time, and for a convolution what the library runs (arm_conv.py): the
        GEMMs' arithmetic with their partial blocks counted whole, and each reshaping pass
        (im2col and col2im, or Winograd's permutes and transforms) as a kernel of its own at
        the board's streaming bandwidth with its own dispatch."""
        if op.kind != "conv2d":
            return super().curve_time_s(op)
        plan = conv_plan(op)
        compute_s = self._compute_s(self.family(op.kind), plan.gemm_flops,
                                    self.groups_factor(op))
        passes_s = sum(self._memory_s(elements * op.out.dtype_bytes) + self.launch_overhead_s
                       for elements in plan.pass_elements)
        return max(compute_s, self.memory_time_s(op)) + self.launch_overhead_s + passes_s
