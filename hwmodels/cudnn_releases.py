"""Which convolution kernels each cuDNN release has, as the published tables that ran it
show (CUDNN_RELEASES), and which release a library description or a GPU's architecture
picks (`cudnn_version`, `cudnn_release`). gpu_conv.py says what each algorithm computes;
gpu_products.py costs the ones a release offers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .gpu_conv import WINOGRAD_NONFUSED_FILTERS
from .gpu_gemm import K_FILL, library_release, parse_version
from .specs import GPU_ARCHITECTURES

# cuDNN 5.1 and 6 have a non-fused Winograd for 3x3 filters only: DeepBench's 5x5 stride-1
# layers (192 x 28 x 28, 512 x 14 x 14, 832 x 7 x 7) ran implicit GEMM forward on all five
# Maxwell and Pascal cards, where 7.6 ran WINOGRAD_NONFUSED or FFT_TILING
WINOGRAD_NONFUSED_3X3_ONLY = ((3, 3),)


@dataclass(frozen=True)
class CudnnRelease:
    """The convolution kernels a cuDNN release has, as the published tables that ran it show:
    the pipeline fill and epilogue each CTA of its GEMM-shaped kernels pays (`k_fill`, in k
    steps); whether its fused Winograd runs all alpha x alpha points of a tile in one CTA, and
    so pays one fill for them (`fused_winograd_one_fill`) rather than one per point; the
    architectures it has no Winograd kernels for; and whether its strided data gradient as a
    gather (BWD_DATA_ALGO_1) runs only the taps of each pixel's stride phase
    (`dgrad_stride_phases`) or every tap of the filter, most of them on zeros; the filters
    its non-fused Winograd takes (none: it has none); whether its FFT algorithm transforms
    whole padded images (`fft_whole_image`, gpu_conv.ConvProblem.fft); and the architectures
    whose weight gradient it runs only as implicit GEMMs (BWD_FILTER_ALGO_0, 1 and 3) or
    whole-image FFT, with none of the algorithms that transform tiles, non-fused Winograd and
    FFT_TILING (`gemm_wgrad_architectures`); and whether its weight gradient's implicit GEMM
    (BWD_FILTER_ALGO_0 and 3, which the cuDNN API reference says sum with atomics) zeroes the
    FP32 filter gradient in a kernel of its own and then adds each CTA's product into it as L2
    atomics, after the CTA's main loop (`wgrad_atomics`): a cost in the filter's size that the
    batch does not change."""
    version: tuple[int, int, int]     # the first cuDNN release with these kernels
    k_fill: int
    fused_winograd_one_fill: bool
    no_winograd_architectures: frozenset[str]
    dgrad_stride_phases: bool
    winograd_nonfused_filters: tuple[tuple[int, int], ...]
    fft_whole_image: bool = False
    gemm_wgrad_architectures: frozenset[str] = frozenset()
    wgrad_atomics: bool = False

    def runs_winograd(self, architecture: str | None) -> bool:
        return (architecture or "") not in self.no_winograd_architectures

    def tiles_wgrad_transforms(self, architecture: str | None) -> bool:
        """Whether the weight gradient may run non-fused Winograd or FFT_TILING."""
        return (architecture or "") not in self.gemm_wgrad_architectures

    def offers(self, algorithm: str, architecture: str | None, pass_: str,
               kernel: tuple[int, int]) -> bool:
        """Whether the release has a kernel of `algorithm` (gpu_memory.CONV_ALGORITHMS) for
        pass 'fwd', 'dgrad' or 'wgrad' of a `kernel` filter on `architecture`: its Winograd
        where it runs Winograd there (the non-fused one for its own filters, the fused one
        never for the weight gradient), and the weight gradient's transforms of tiles
        (non-fused Winograd, FFT_TILING) where it runs them there. The shape's other
        conditions (stride, dilation, groups, sizes) are the caller's (ConvProblem,
        cudnn_benchmark.supports). The implicit and explicit GEMMs and FFT every release in
        CUDNN_RELEASES has (FFT since cuDNN 3); which FFT 6 and later run no table shows, so
        the cost model offers none there (fft_whole_image), but the library lists it."""
        if algorithm in ("winograd_fused", "winograd_nonfused"):
            if not self.runs_winograd(architecture):
                return False
            if algorithm == "winograd_fused":
                return pass_ != "wgrad" and kernel == (3, 3)
            if kernel not in self.winograd_nonfused_filters:
                return False
        if algorithm in ("winograd_nonfused", "fft_tiling") and pass_ == "wgrad":
            return self.tiles_wgrad_transforms(architecture)
        return True

    def fill(self, fused_points: int = 1) -> float:
        """k steps of fill a CTA pays per GEMM of a kernel that runs `fused_points` GEMMs
        (a fused Winograd's points) in each CTA."""
        return self.k_fill / fused_points if self.fused_winograd_one_fill else self.k_fill


# cuDNN's Winograd kernels need Maxwell or newer: Kepler runs implicit GEMM or FFT in every
# release. (The K80's Torch7 VGG rows, cuDNN 5.1, run faster than implicit GEMM allows: with
# Kepler's own constants 5.1's whole-image FFT fits them in-sample, at 0 and -6%; predicted
# from Maxwell's they are 35-39% slow. Winograd on Kepler, in the model without whole-image
# FFT, fits the K80's rows in-sample at 6.4% against 8.3% but predicts its steps without them
# at 19.7% against 16.6%, every ResNet then 16-25% fast.)
NO_WINOGRAD = frozenset({"kepler"})
# DeepBench's Maxwell and Titan X (Pascal) tables name their cuDNN "5" alone, but their rows
# record WINOGRAD_NONFUSED (three forward rows on each Maxwell card, six on the Titan X
# (Pascal)), an algorithm the cuDNN 5.1 release notes list as new: they ran a 5.1 build, its
# patch level unnamed, taken as 5.1.0 (CUDNN_NAMED_BY_MAJOR).
# That build runs the weight gradient on Maxwell as implicit GEMM, where Torch7's 5.1.05 and
# later transform tiles: DeepBench's 3x3 stride-1 layers of 128-512 channels (20 rows on each
# of the M40 and the Titan X (Maxwell)) run at 0.48-0.72 of the sustained peak on the direct
# count (quartiles), the implicit GEMM's share (their 5x5 stride-2 layers 0.72-0.74), where
# cuDNN 6 on the Titan Xp and the GTX 1080 Ti runs the same layers at 0.70-1.52, 25 of 40
# above 0.95 (non-fused Winograd does 4x fewer multiplies); costed with Winograd the Maxwell
# rows come out 43-46% fast on average. Only the layer of 512 channels on 10x42 maps runs that
# fast on Maxwell (1.65-1.78). Torch7 on cuDNN 5.1.05 runs VGG-16's and VGG-19's backward on
# the Titan X (Maxwell) in less time than implicit GEMM at those rates allows (costed so,
# 28-31% slow). Which change between the two builds (patch level, or CUDA 7.5 against 8.0)
# brought the transforms to Maxwell no table shows. On Pascal DeepBench's build is between:
# the Titan X (Pascal) runs 6 of its 20 such layers above 0.95, so Pascal keeps them.
GEMM_WGRAD_CUDNN_5 = frozenset({"maxwell"})
# cuDNN 5 and 6's weight gradient adds into a zeroed filter gradient with atomics
# (CudnnRelease.wgrad_atomics): on DeepBench's Maxwell and Pascal tables twice the batch-8 time
# less the batch-16 time grows with the filter (K x C x R x S), not the batch. 7.6's rows (V100,
# T4) show no such cost, and are costed without it.
# Each release's kernels hold until the next one's version; a version older than the first
# takes the first. The evidence is DeepBench's convolution tables and the Torch7 network
# tables, each of which names its cuDNN:
CUDNN_RELEASES = (
    # cuDNN 4 (convnet-benchmarks' "cuDNN R4" Torch rows): 5.0's kernels without Winograd,
    # which cuDNN 5 introduced (its release notes list Winograd for 3x3 convolutions as new);
    # FFT (since cuDNN 3) and FFT_TILING it has, and 5's weight gradient on Maxwell
    CudnnRelease((4, 0, 0), K_FILL, True, frozenset(GPU_ARCHITECTURES),
                 dgrad_stride_phases=False, winograd_nonfused_filters=(),
                 fft_whole_image=True, gemm_wgrad_architectures=GEMM_WGRAD_CUDNN_5,
                 wgrad_atomics=True),
    # cuDNN 5.0 (Torch7's 5.0.05 row, GoogLeNet on the GTX 1080): 5.1's kernels without the
    # non-fused Winograd, which 5.1's release notes list as new
    CudnnRelease((5, 0, 0), K_FILL, True, NO_WINOGRAD, dgrad_stride_phases=False,
                 winograd_nonfused_filters=(), fft_whole_image=True,
                 gemm_wgrad_architectures=GEMM_WGRAD_CUDNN_5, wgrad_atomics=True),
    # cuDNN 5.1 and 6 (DeepBench's M40, Titan X Maxwell and Titan X Pascal tables, "cuDNN
    # 5", a 5.1 build; GTX 1080 Ti and Titan Xp, 6.0.21; Torch7 on 5.1 on the Maxwell and
    # Pascal cards and the K80): the GEMM side's fill, and a fused F(2x2, 3x3) Winograd that
    # transforms a tile and runs its 16 points in one CTA, one fill for all (against a fill per
    # point: DeepBench's data gradient 23.1 -> 21.9% MAPE, forward 18.8 -> 18.6%)
    # A strided gather runs every tap: DeepBench's DeepSpeech layer of 32 x 79 x 341 -> 32,
    # 5x10 stride 2, takes 2.3-2.5x the phase gather's time on all five Maxwell and Pascal
    # cards, on the scatter's atomic bound (gpu_conv.L2_ATOMICS_PER_CLOCK); the V100 and T4
    # on 7.6 run it near the phase gather's time.
    # Its FFT transforms whole padded images (ConvProblem.fft): the six DeepBench rows of the
    # M40 and both Titan X that ran FFT (3x3, 128 -> 256 channels, 56x56, 8 and 16 images)
    # take 0.8-1.2x that cost, where every other algorithm is 1.7-4x faster than they were.
    # DeepBench's build runs no transform of tiles in the weight gradient on Maxwell
    # (GEMM_WGRAD_CUDNN_5).
    CudnnRelease((5, 1, 0), K_FILL, True, NO_WINOGRAD, dgrad_stride_phases=False,
                 winograd_nonfused_filters=WINOGRAD_NONFUSED_3X3_ONLY, fft_whole_image=True,
                 gemm_wgrad_architectures=GEMM_WGRAD_CUDNN_5, wgrad_atomics=True),
    # cuDNN 5.1.05 (Torch7's 5.1.05 and 5.1.10 rows): those kernels, with the weight
    # gradient's transforms of tiles on Maxwell too
    CudnnRelease((5, 1, 5), K_FILL, True, NO_WINOGRAD, dgrad_stride_phases=False,
                 winograd_nonfused_filters=WINOGRAD_NONFUSED_3X3_ONLY, fft_whole_image=True,
                 wgrad_atomics=True),
    # cuDNN 6 (6.0.21, DeepBench's GTX 1080 Ti and Titan Xp): 5.1's kernels, but the same
    # layers' FFT runs in 0.8-1.8 ms, less than writing and reading their whole-image spectra
    # (1.0-1.1 GB) takes at those cards' peak bandwidth: not that algorithm, and which it is
    # no table shows, so 6 and later offer none (an assumption for 7.x, which no row times)
    CudnnRelease((6, 0, 0), K_FILL, True, NO_WINOGRAD, dgrad_stride_phases=False,
                 winograd_nonfused_filters=WINOGRAD_NONFUSED_3X3_ONLY, wgrad_atomics=True),
    # cuDNN 7.0 (7.0.04, Volta's first: Torch7 on the V100 at batch 1 to 128): a fill per
    # fused Winograd point (with one fill a CTA, as 5's, in the same blocks and constants, the
    # V100's FP32 rows score 7.2% against 7.0%, ResNet-34 at batch 4 +10% against +5%); its
    # strided gather and 5x5 Winograd taken to be 7.6's (no table times them on it)
    CudnnRelease((7, 0, 0), K_FILL, False, NO_WINOGRAD, dgrad_stride_phases=True,
                 winograd_nonfused_filters=WINOGRAD_NONFUSED_FILTERS),
    # cuDNN 7.6 (7.6.2, DeepBench's V100 and T4 tables): half the fill, one per fused
    # Winograd CTA (against 5's fill: forward 18.6 -> 17.7%, data gradient 21.9 -> 21.5%)
    CudnnRelease((7, 6, 0), K_FILL // 2, True, NO_WINOGRAD, dgrad_stride_phases=True,
                 winograd_nonfused_filters=WINOGRAD_NONFUSED_FILTERS),
)
# the release each architecture's published tables ran with, for a GPU whose cuDNN is not
# named; the others (Volta's NGC containers, Turing and later) take the newest
ARCHITECTURE_CUDNN = {"kepler": (5, 1, 10), "maxwell": (5, 1, 0), "pascal": (6, 0, 21)}
# a cuDNN named by its major version alone -> the release the tables that name it so ran:
# DeepBench's "cuDNN 5" is a 5.1 build (GEMM_WGRAD_CUDNN_5 says why); any other major alone is
# taken as its x.0
CUDNN_NAMED_BY_MAJOR = {5: (5, 1, 0)}
_CUDNN_VERSION = re.compile(r"\bcuDNN\s+[vR]?(\d+(?:\.\d+){0,2})", re.IGNORECASE)


def cudnn_version(text: str) -> tuple[int, int, int] | None:
    """The cuDNN version a library description names ("CUDA 8.0.88, cuDNN 6.0.21" ->
    (6, 0, 21); "cuDNN R4" -> (4, 0, 0); "cuDNN 5", a major alone, -> CUDNN_NAMED_BY_MAJOR's
    (5, 1, 0)), or None where it names none."""
    version = parse_version(_CUDNN_VERSION, text)
    named = _CUDNN_VERSION.search(text or "")
    if version is not None and named is not None and "." not in named.group(1):
        return CUDNN_NAMED_BY_MAJOR.get(version[0], version)
    return version


def cudnn_release(architecture: str | None,
                  cudnn: tuple[int, int, int] | None = None) -> CudnnRelease:
    """The cuDNN release a convolution runs in: the one of `cudnn` where given, else the one
    the architecture's published tables ran with, else the newest."""
    return library_release(CUDNN_RELEASES, ARCHITECTURE_CUDNN, architecture, cudnn)
