"""What torch.backends.cudnn.benchmark does to GPU memory: the first time each convolution
shape runs, PyTorch times every algorithm cuDNN offers in one workspace as large as what is
free, and leaves that workspace cached in its allocator (`CudnnBenchmarkSearch`, replayed on
gpu_memory.CachingAllocator; simulator/lowering.py runs it when a graph's
meta["cudnn_benchmark"] is set). `supports` says which algorithms cuDNN offers a pass.
"""
from __future__ import annotations

import math

from workloads.graph import Op

from .cudnn_releases import CudnnRelease, cudnn_release
from .gpu_conv import FFT_MAX_PADDED_SIDE
from .gpu_memory import CONV_KINDS, CachingAllocator, conv_workspace_bytes, runtime_data

# The algorithms cudnnFind*AlgorithmEx times for each pass, by the names of CONV_ALGORITHMS:
# cuDNN's forward IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM, GEMM, DIRECT, FFT, FFT_TILING, WINOGRAD,
# WINOGRAD_NONFUSED; backward-data ALGO_0, ALGO_1, FFT, FFT_TILING, WINOGRAD, WINOGRAD_NONFUSED;
# backward-filter ALGO_0, ALGO_1, FFT, ALGO_3, WINOGRAD_NONFUSED, FFT_TILING. The GEMM-based
# backward algorithms are counted as the implicit GEMMs (no workspace, or an index table).
# Which of them a release has is its own (cudnn_releases.CudnnRelease.offers): DeepBench's
# cuDNN 5.1 build on Maxwell has no weight gradient that transforms tiles, cuDNN 4 and Kepler
# no Winograd, 5.0 no non-fused one, 5.1 and 6 a non-fused one for 3x3 filters only.
FIND_ALGORITHMS = {
    "conv2d": ("implicit_gemm", "implicit_precomp_gemm", "gemm", "fft", "fft_tiling",
               "winograd_fused", "winograd_nonfused"),
    "conv2d_grad_input": ("implicit_gemm", "implicit_precomp_gemm", "fft", "fft_tiling",
                          "winograd_fused", "winograd_nonfused"),
    "conv2d_grad_weight": ("implicit_gemm", "implicit_precomp_gemm", "fft", "fft_tiling",
                           "winograd_nonfused"),
}


# a convolution pass's op kind -> gpu_conv's name for it
_PASSES = {"conv2d": "fwd", "conv2d_grad_input": "dgrad", "conv2d_grad_weight": "wgrad"}


def supports(op: Op, algorithm: str, release: CudnnRelease | None = None,
             architecture: str | None = None) -> bool:
    """Whether cuDNN runs convolution pass `op` with `algorithm` (the conditions of the
    cuDNN Developer Guide's tables for cudnnConvolutionForward, BackwardData and
    BackwardFilter): the transforms need stride 1, no dilation and one group; Winograd a 3x3
    filter (the non-fused one also 5x5); FFT a padded input of at most 256 a side and a
    filter larger than its padding; FFT_TILING a filter smaller than its 32x32 tile. Given a
    `release`, also only what that release has on `architecture` (CudnnRelease.offers)."""
    if algorithm not in FIND_ALGORITHMS.get(op.kind, ()):
        return False
    if release is not None and not release.offers(algorithm, architecture, _PASSES[op.kind],
                                                  tuple(op.attrs["kernel"])):
        return False
    if algorithm in ("implicit_gemm", "implicit_precomp_gemm", "gemm"):
        return True
    a = op.attrs
    r, s = a["kernel"]
    if (tuple(a.get("stride", (1, 1))) != (1, 1) or tuple(a.get("dilation", (1, 1))) != (1, 1)
            or a.get("groups", 1) != 1):
        return False
    if algorithm == "winograd_fused":
        return (r, s) == (3, 3)
    if algorithm == "winograd_nonfused":
        return (r, s) in ((3, 3), (5, 5))
    ph, pw = a.get("padding", (0, 0))
    _, _, h, w = a["in_shape"]
    if algorithm == "fft":
        return (h + 2 * ph <= FFT_MAX_PADDED_SIDE and w + 2 * pw <= FFT_MAX_PADDED_SIDE
                and r > ph and s > pw)
    tile = runtime_data()["cudnn_workspace"]["fft_tile"]                 # fft_tiling
    return max(r, s) < tile


class CudnnBenchmarkSearch:
    """PyTorch's cudnn.benchmark search, replayed on a CachingAllocator.

    The first time a convolution pass of a given shape runs, PyTorch times every algorithm
    cuDNN offers (aten/src/ATen/native/cudnn/Conv_v7.cpp, `algorithm_search::findAlgorithms`)
    in one workspace: `getMaxWorkspaceSize` takes the largest workspace any of them asks for
    that fits the largest block available, which `CUDACachingAllocator::cacheInfo` gives as
    the larger of cudaMemGetInfo's free memory and the largest cached free block. The search
    allocates it, then calls `emptyCache()` (releasing every wholly free segment) while the
    workspace is still held, and frees it after: the workspace's segment stays cached, and
    reserved memory, which nvidia-smi shows, reaches what was in use plus that workspace.
    Results are cached per shape, so a shape is searched once. The workspace is scratch: it
    holds no tensor, so the allocator does not count it as requested. The algorithms timed
    are those the device's cuDNN release has on its architecture (`release`, `architecture`;
    every algorithm the library's tables list where no release is given)."""

    def __init__(self, release: CudnnRelease | None = None,
                 architecture: str | None = None) -> None:
        self.searched: set[tuple] = set()
        self.release, self.architecture = release, architecture

    @classmethod
    def for_device(cls, architecture: str | None,
                   cudnn: tuple[int, int, int] | None = None) -> "CudnnBenchmarkSearch":
        """The search as a GPU of `architecture` runs it, in cuDNN `cudnn` (or the release
        its architecture's tables ran with: cudnn_releases.cudnn_release)."""
        return cls(cudnn_release(architecture, cudnn), architecture)

    @staticmethod
    def shape_key(op: Op) -> tuple:
        a = op.attrs
        return (op.kind, tuple(a["in_shape"]), tuple(a["out_shape"]), tuple(a["kernel"]),
                tuple(a.get("stride", (1, 1))), tuple(a.get("padding", (0, 0))),
                tuple(a.get("dilation", (1, 1))), a.get("groups", 1), op.out.dtype_bytes)

    def run(self, allocator: CachingAllocator, op: Op) -> int:
        """Search `op`'s algorithms if its shape has not been searched: the workspace bytes
        the search took (0 for a shape searched before, or for an op that is no convolution
        pass)."""
        if op.kind not in CONV_KINDS or op.is_view:
            return 0
        key = self.shape_key(op)
        if key in self.searched:
            return 0
        self.searched.add(key)
        free = (allocator.limit - allocator.reserved if allocator.limit is not None
                else math.inf)
        largest_block = max(free, allocator.largest_free_block())
        sizes = [conv_workspace_bytes(op, algo) for algo in FIND_ALGORITHMS[op.kind]
                 if supports(op, algo, self.release, self.architecture)]
        workspace = max((b for b in sizes if 0 < b <= largest_block), default=0)
        if workspace == 0 or not allocator.malloc(("cudnn_find", key), workspace,
                                                  counted=False):
            return 0
        allocator.release_cached()
        allocator.free(("cudnn_find", key))
        return workspace
