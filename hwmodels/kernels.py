"""Which library kernel runs a convolution or linear op, and the GEMM it really computes.

A framework does not run every convolution with one algorithm, and an algorithm does not
compute the nominal product. Three facts of PyTorch on CPU move op times by 1.5-4x, and none
is visible in FLOPs or in the nominal GEMM shape (measured on a 2-vCPU AVX-512 EPYC, torch 2.13,
one thread):

- Dispatch. PyTorch's `use_mkldnn` rule sends an fp32 convolution to oneDNN, except a 1x1
  unstrided one of batch < 16 on one thread, and a batch-1 one of a kernel no wider than 3
  on a small input (at most 20480 values): those run PyTorch's native im2col + sgemm loop,
  per sample. The two are fitted as separate kernel classes.
- Channel blocking. oneDNN stores activations and weights in blocks of one vector of fp32
  (16 channels with AVX-512, 8 with AVX2) and computes whole blocks: a 3x3 convolution of
  20, 24 or 32 channels takes the same time, 40 or 48 channels what 48 take, and 32 to 4,
  8, 12 or 16 output channels the same. Only input channels fewer than one vector are read
  unblocked, by the forward and weight-gradient kernels (oneDNN's first-convolution path:
  3 to 32 channels takes 0.23 ms, 16 to 32 0.71 ms); the input gradient writes them
  blocked. The native path and linear layers (sgemm) handle tails with masks: no padding.
- Memory format. On channels-last maps (`attrs["memory_format"]`, a 1 after the GEMM shape)
  oneDNN runs other kernels: a depthwise convolution's forward in brdgmm_dw and its 7x7
  weight gradient in the direct kernel, 2-4x faster than NCHW's gemm-based one; dense ones
  without NCHW's reorders to blocked layouts, 10-40% faster for 2x2 and 3x3 kernels
  (docs/cpu-model.md). Channels-last depthwise convolutions are fitted apart; any other
  channels-last convolution that was not measured is costed as its NCHW twin (the grid
  measures dense ones only as ConvNeXt's 2x2 stride-2 downsampling, too narrow to fit
  other kernels from), as is every channels-last one of a profile without such points.
- Groups. A depthwise convolution (one channel per group) runs in oneDNN's depthwise kernel;
  a grouped one in its direct kernel, blocked by the group's channels (`ONEDNN_VERBOSE=1`
  shows aBcd4b, aBcd8b layouts): 4 or 8 channels fill a quarter or half of a 16-lane vector,
  so a vector computes a whole vector's work for them (3x3, batch 2, on an AVX-512 Xeon
  core: 11, 40 and 55 GFLOP/s at 4, 8 and 16 channels per group, 138 dense). Dense,
  grouped and depthwise kernels are fitted apart.

`KernelRules.for_profile` takes what a profile records of its machine (the threads, the
vector width); a profile without it (or of a GPU) gets no dispatch rule and no padding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# families.gemm_shape: (m, n, k, groups, window, stride, pixels), then 1 on channels-last maps
Shape = tuple[int, ...]
NCHW_DIMS = 7

# torch.backends.cpu.get_cpu_capability() -> fp32 values per vector, which oneDNN blocks
# channels by
VECTOR_FP32_LANES = {"AVX512": 16, "AVX2": 8}
NATIVE_SMALL_INPUT_VALUES = 20480   # PyTorch's use_mkldnn: below this a batch-1 conv is native
NATIVE_MAX_BATCH_1X1 = 15           # ... and a 1x1 conv of a batch up to this, on one thread
CONV_KINDS = ("conv2d", "conv2d_grad_input", "conv2d_grad_weight")
# a class with too few measured shapes for a fit of its own borrows this one's (a profile
# measured before grouped convolutions were on the calibration grid has depthwise ones only)
FALLBACK_CLASS = {"grouped": "depthwise"}
# the kernel classes whose channels-last convolutions get a fit of their own (kernel_class
# names the others too, so their points stay out of the NCHW fits)
CHANNELS_LAST_FITTED = frozenset({"depthwise_nhwc"})


def is_channels_last(shape: Shape) -> bool:
    """Whether a convolution's point shape says it runs on channels-last maps."""
    return len(shape) > NCHW_DIMS and shape[NCHW_DIMS] == 1


def nchw_twin(shape: Shape) -> Shape:
    """The shape of the same convolution run on NCHW maps."""
    return tuple(shape[:NCHW_DIMS])


@dataclass(frozen=True)
class KernelRules:
    """How the profile's framework runs GEMM ops. `channel_block` 1 pads nothing; `threads`
    0 (unknown) or `torch_cpu` False applies no dispatch rule."""
    torch_cpu: bool = False
    threads: int = 0
    channel_block: int = 1

    @classmethod
    def for_profile(cls, profile) -> "KernelRules":
        meta = profile.meta if profile is not None else {}
        if meta.get("device_kind") != "cpu" or "torch_version" not in meta:
            return cls()
        return cls(torch_cpu=True, threads=int(meta.get("threads", 0)),
                   channel_block=int(meta.get("vector_fp32_lanes", 1)))

    def kernel_class(self, kind: str, shape: Shape) -> str:
        """native (PyTorch's own loop), depthwise, grouped or dense (oneDNN, or the library
        of a profile without rules): different kernels, fitted apart. oneDNN runs a
        depthwise convolution (one channel per group) in a kernel of its own and a grouped
        one in its direct kernel blocked by the group's channels. A stride is no class of
        its own: oneDNN runs strided convolutions in the same kernels, and the stride is a
        dimension of the residual (the calibration grid scores the same with a strided
        class). On channels-last maps, the class named with `_nhwc`."""
        suffix = "_nhwc" if is_channels_last(shape) else ""
        if self.is_native(kind, shape):
            return "native" + suffix
        if shape[3] == 1:
            return "dense" + suffix
        return ("depthwise" if conv_dims(kind, shape)[0] == 1 else "grouped") + suffix

    def is_native(self, kind: str, shape: Shape) -> bool:
        if not self.torch_cpu or kind not in CONV_KINDS:
            return False
        c_in, _, batch = conv_dims(kind, shape)
        groups, window, stride, pixels = shape[3:7]
        if groups > 1:
            return False
        if window == 1 and stride == 1 and batch <= NATIVE_MAX_BATCH_1X1 and self.threads == 1:
            return True
        # a batch-1 conv with a kernel no wider than 3 (square: window <= 9) on a small input;
        # the input's pixels are the output's times the stride (padding aside)
        in_pixels = pixels if kind == "conv2d_grad_input" else pixels * stride
        return batch == 1 and window <= 9 and c_in * in_pixels <= NATIVE_SMALL_INPUT_VALUES

    def computed(self, kind: str, flops: float, shape: Shape) -> tuple[float, Shape]:
        """(FLOPs, shape) of the product the kernel computes: channel counts padded to whole
        blocks where oneDNN blocks them; unchanged elsewhere. The shape without the memory
        format (kernel_class tells it)."""
        if self.channel_block <= 1 or kind not in CONV_KINDS or self.is_native(kind, shape):
            return flops, nchw_twin(shape)
        # channels-last kernels keep channels innermost and compute a tail in a whole vector
        m, n, k, groups, window, stride, pixels = shape[:NCHW_DIMS]
        if groups > 1 and conv_dims(kind, shape)[0] == 1:
            # depthwise: one input channel per group, blocked across groups
            padded = self.blocked(groups)
            return flops * padded / groups, (m, n, k, padded, window, stride, pixels)
        if groups > 1:
            # grouped: blocked by the group's channels, which fill part of a vector (4 or 8
            # of 16 lanes): each vector computes a whole vector's work for its output channels
            new = ((self.blocked(m), n, k) if kind == "conv2d_grad_weight"
                   else (m, self.blocked(n), k))
            scale = math.prod(new) / (m * n * k)
            return flops * scale, (*new, groups, window, stride, pixels)
        if kind == "conv2d":                # (rows, c_out, c_in * window)
            new = (m, self.blocked(n), self.blocked_input(k // window) * window)
        elif kind == "conv2d_grad_input":   # (rows, c_in, c_out * window)
            new = (m, self.blocked(n), self.blocked(k // window) * window)
        else:                               # grad_weight: (c_out, c_in * window, rows)
            new = (self.blocked(m), self.blocked_input(n // window) * window, k)
        scale = math.prod(new) / (m * n * k)
        return flops * scale, (*new, groups, window, stride, pixels)

    def blocked(self, channels: int) -> int:
        """Channels a blocked layout holds: whole vectors."""
        return -(-channels // self.channel_block) * self.channel_block

    def blocked_input(self, channels: int) -> int:
        """Input channels a forward or weight-gradient kernel reads: fewer than one vector
        are read unblocked (oneDNN's first-convolution kernels), more in whole vectors."""
        return channels if channels < self.channel_block else self.blocked(channels)


def conv_dims(kind: str, shape: Shape) -> tuple[int, int, int]:
    """(input channels per group, output channels per group, batch) of a conv op's shape."""
    m, n, k, _, window, _, pixels = shape[:NCHW_DIMS]
    if kind == "conv2d":
        return k // window, n, m // pixels
    if kind == "conv2d_grad_input":
        return n, k // window, m // pixels
    return n // window, m, k // pixels   # grad_weight


# oneDNN's fp32 kernels by ISA: avx512_core needs these four flags, avx2 these two
ONEDNN_ISA_LANES = ((("avx512f", "avx512bw", "avx512vl", "avx512dq"), 16), (("avx2", "fma"), 8))


def vector_fp32_lanes(isa: tuple[str, ...] | None = None) -> int | None:
    """fp32 values per vector of the kernels oneDNN picks on this CPU: from the CPU's ISA
    flags (hwmodels/cpu_identity.py; `isa` overrides), which oneDNN dispatches on; where the
    system reports none, from PyTorch's CPU capability (None if unknown)."""
    if isa is None:
        from .cpu_identity import this_host
        isa = this_host().isa
    if isa is not None:
        return next((lanes for flags, lanes in ONEDNN_ISA_LANES
                     if all(f in isa for f in flags)), None)
    import torch
    return VECTOR_FP32_LANES.get(torch.backends.cpu.get_cpu_capability())
