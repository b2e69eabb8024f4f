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

import math

from workloads.graph import Op

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
        """The scratch buffers of the Arm Compute Library's GEMM convolution
        (NEGEMMConvolutionLayer) in its default NCHW layout, held while the convolution runs:
        the im2col matrix (kernel taps x input channels of one group, by output pixels; NCHW
        reshapes even a 1x1 input) and the GEMM's output before col2im writes it as NCHW
        (output channels of one group, by output pixels). The library has no grouped
        convolution: a grouped layer runs as one convolution per group, one at a time. Taken
        as GEMM for every convolution: the Winograd or direct method the library may pick for
        some shapes holds other buffers. 0 for other ops."""
        if op.kind != "conv2d":
            return 0
        im2col, gemm_out = _gemm_elements(op)
        groups = int(op.attrs["groups"])
        return (im2col + gemm_out) // groups * op.out.dtype_bytes

    def curve_time_s(self, op: Op) -> float:
        """The roofline time, and for a convolution the two reshaping passes that the GEMM
        convolution runs as kernels of their own around the GEMM: im2col (reads the input,
        writes the matrix) and col2im (reads the GEMM's output, writes the NCHW output), each
        at the board's streaming bandwidth with its own dispatch."""
        time_s = super().curve_time_s(op)
        if op.kind != "conv2d":
            return time_s
        im2col, gemm_out = _gemm_elements(op)
        in_elements = math.prod(int(d) for d in op.attrs["in_shape"])
        reshaped = (in_elements + im2col + 2 * gemm_out) * op.out.dtype_bytes
        return time_s + self._memory_s(reshaped) + 2 * self.launch_overhead_s


def _gemm_elements(op: Op) -> tuple[int, int]:
    """Elements of a convolution's im2col matrix and GEMM output, over all its groups."""
    a = op.attrs
    n, _, h_out, w_out = op.out.shape
    pixels = n * h_out * w_out
    taps = int(a["kernel"][0]) * int(a["kernel"][1])
    return taps * int(a["in_channels"]) * pixels, int(a["out_channels"]) * pixels
