"""What a convolution's memory format (workloads/memory_format.py) costs on a GPU.

- cuDNN's half-precision tensor-core convolution kernels read and write NHWC. Given NCHW
  tensors (PyTorch's default) cuDNN transposes each activation the pass reads to NHWC and the
  filter to KRSC before the kernel, and the pass's output back to NCHW after it (NVIDIA's
  Deep Learning Performance Guide, "Tensor layouts in memory: NCHW vs NHWC"; the
  nchwToNhwcKernel and nhwcToNchwKernel of any NCHW FP16 profile). Each transpose is a kernel
  of its own that reads and writes its tensor once, at the bandwidth the library's kernels
  reach, and runs before or after the convolution, not during it; cuDNN launches it inside
  the one cudnnConvolution* call, so the host pays a bare launch for it, not a framework op.
  With channels_last (NHWC) tensors there are none. TF32 convolutions (FP32 tensors on
  Ampere and newer) have NCHW implicit-GEMM kernels of their own in cuDNN 8 (the
  *_nchwkcrs_nchw kernels), so they are charged no transposes.
- cuDNN's Winograd and FFT algorithms take NCHW tensors only (cuDNN API reference: the formats
  each cudnnConvolution*Algo_t supports), so an NHWC convolution on CUDA cores runs as
  implicit GEMM.
Depthwise convolutions run PyTorch's own direct kernels in either format; matrix products
(linear, attention) have no spatial layout.
"""
from __future__ import annotations

from typing import Protocol, Self, TypeVar

from workloads.graph import Op
from workloads.memory_format import DEFAULT_MEMORY_FORMAT, MEMORY_FORMATS, memory_format_of
from workloads.precision import HALF_FORMAT


class _KernelOption(Protocol):
    """What this module reads and rewrites of gpu.KernelOption (not imported from there:
    gpu imports this module)."""
    @property
    def algorithm(self) -> str: ...
    @property
    def serial_bytes(self) -> float: ...
    @property
    def kernels(self) -> float: ...
    def _replace(self, *, serial_bytes: float = ..., kernels: float = ...) -> Self: ...


Option = TypeVar("Option", bound=_KernelOption)

# algorithms cuDNN runs on NCHW tensors only
NCHW_ONLY_ALGORITHMS = frozenset({"winograd_fused", "winograd_nonfused", "fft", "fft_tiling"})
# the algorithm that runs on tensor cores, in NHWC
TENSOR_CORE_ALGORITHM = "implicit_gemm"
# the arithmetic whose tensor-core kernels take NHWC only
NHWC_ARITHMETIC = frozenset(HALF_FORMAT.values())
# the device kinds whose models distinguish memory formats
LAYOUT_DEVICE_KINDS = frozenset({"gpu"})


def memory_formats_for(device_kind: str) -> tuple[str, ...]:
    """The memory formats a device kind is modelled in. The CPU and ARM models cost a
    convolution in their library's own blocked layout (oneDNN reorders whatever it is given),
    so they take the default only, rather than ignoring a format silently."""
    return MEMORY_FORMATS if device_kind in LAYOUT_DEVICE_KINDS else (DEFAULT_MEMORY_FORMAT,)


def transposed_bytes(op: Op) -> tuple[float, int]:
    """(bytes moved, kernels) of the NCHW <-> NHWC transposes around a tensor-core pass of a
    convolution in NCHW: every activation it reads, its output (an activation, or the weight
    gradient back to KCRS) and the filter it reads (forward and data gradient), each read and
    written once."""
    a = op.attrs
    elem = op.in_specs[0].dtype_bytes if op.in_specs else op.out.dtype_bytes
    kh, kw = a["kernel"]
    filter_bytes = float(a["out_channels"] * (a["in_channels"] // a.get("groups", 1))
                         * kh * kw * elem)
    moved = sum(float(s.nbytes) for s in op.in_specs)
    kernels = len(op.in_specs)
    if op.kind == "conv2d_grad_weight":
        moved += filter_bytes                  # the weight gradient, back to KCRS
        kernels += 1
    else:
        moved += float(op.out.nbytes) + filter_bytes
        kernels += 2
    return 2.0 * moved, kernels


def conv_options(op: Op, options: list[Option], arithmetic: str) -> list[Option]:
    """A convolution pass's algorithms in the op's memory format, given the arithmetic it runs
    in (GPUModel.arithmetic_precision): NCHW passes on half tensor cores pay their transposes
    (serial_bytes, and a kernel each); NHWC passes lose the NCHW-only algorithms."""
    if memory_format_of(op) == "nhwc":
        kept = [o for o in options if o.algorithm not in NCHW_ONLY_ALGORITHMS]
        return kept or options
    if arithmetic not in NHWC_ARITHMETIC:
        return options
    moved, kernels = transposed_bytes(op)
    return [o._replace(serial_bytes=o.serial_bytes + moved, kernels=o.kernels + kernels)
            if o.algorithm == TENSOR_CORE_ALGORITHM else o for o in options]
