"""How cuDNN runs a convolution on a GPU: the algorithm and the GEMMs it does.

Convolutions run as GEMMs (gpu_gemm.py) in cuDNN's own tiles (CONV_TILES): implicit GEMM
(M = N*P*Q output pixels, N = output channels, K = C*R*S), or for 3x3 and 5x5 stride-1
layers as Winograd, which does fewer multiplies:
- fused F(2x2, 3x3) (cuDNN's WINOGRAD): 16 GEMMs of (N*P*Q/4, K, C), 2.25x fewer multiplies
  than the direct count, no extra memory traffic, run in CTAs of their own blocking
  (FUSED_WINOGRAD_BLOCK), not the convolution tiles;
- non-fused F(4x4, 3x3) (cuDNN's WINOGRAD_NONFUSED): 36 GEMMs of (N*P*Q/16, K, C), 4x fewer
  multiplies, but the transformed input, filter and output go through memory; for 5x5
  filters F(4x4, 5x5), 64 GEMMs, 6.25x fewer (the 4x4 output tile gpu_memory's workspace
  rule uses too).
- FFT (cuDNN's FFT_TILING, stride 1, filters up to 16): 32x32 transforms of the input and
  filter tiles, one complex GEMM per frequency, then the inverse: for 5x5 and larger filters
  several times fewer multiplies than the direct count. The products are batched complex
  GEMMs (not the convolution's implicit-GEMM kernels), tiled as gpu_gemm's products
  are: with 28x28 output tiles a batch of 16 images gives each frequency a 16-row product,
  which the convolution tiles' 128-pixel side would pad eightfold (DeepBench's 5x5 layer of
  16 x 192 x 28 x 28 -> 32 ran FFT_TILING in 0.19 ms on the V100 and 0.44 ms on the T4, a
  quarter of the padded cost).
cuDNN's autotuner (cudnn.benchmark, which NVIDIA's and Torch's scripts enable) takes the fastest
algorithm, so the model does too. Winograd and FFT have no tensor-core path in these libraries,
so it competes only in FP32 arithmetic. Which of these kernels a cuDNN release has, and the
fill each CTA of them pays, is the release's (cudnn_releases.py).

Depthwise and other thin-group convolutions run in direct kernels that stream their tensors,
costed at FP32 CUDA-core peak or memory bandwidth, whichever binds.

The efficiencies per algorithm and GPU architecture live in catalog/gpu_families.toml with
what they were fitted to.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .gpu_gemm import SPLIT_K_MIN_K

# cuDNN's convolution kernels (implicit GEMM, Winograd's batched products, FFT's): its
# *_scudnn_128x128, 128x64 and 128x32 tiles. The 128 side runs along the output pixels (or
# transformed tiles) of the forward and data-gradient passes, which the library never lays the
# other way round; a layer with few pixels (small batch, late layers) fills part of a tile.
# The weight gradient's two GEMM sides are both channels, either way round.
CONV_TILES = ((128, 128), (128, 64), (128, 32))
THIN_GROUP_CHANNELS = 8     # input channels per group below which a direct kernel runs
FFT_TILE = 32               # cuDNN FFT_TILING's transform size
FFT_MAX_PADDED_SIDE = 256   # cuDNN's FFT: input height and width plus padding at most 256
WINOGRAD_NONFUSED_FILTERS = ((3, 3), (5, 5))
# kernels a transform algorithm (non-fused Winograd, FFT) launches: the filter's and the
# input's transforms, the batched products, the output's inverse transform
TRANSFORM_KERNELS = 4


@dataclass(frozen=True)
class FusedWinogradBlock:
    """What one CTA of a fused F(2x2, 3x3) Winograd kernel computes: a strip of `rows` x
    `cols` 2x2 output tiles of each of `images` images, for `channels` output channels, all
    16 points of the transformed tiles, reducing over every input channel. A map whose tiles
    do not fill the strip, or a batch that does not fill the images, pays for the whole
    block."""
    rows: int
    cols: int
    images: int
    channels: int


# cuDNN's fused Winograd, in every release the tables time (DeepBench's WINOGRAD rows): 32
# output channels x 32 tiles a CTA, the tiles a strip of 8 in each of 4 images, the blocking
# of the 32x32 Winograd kernels of Maxwell's assembler-written libraries (neon). cuDNN 5 and
# 6's 104 forward rows (M40, both Titan X, GTX 1080 Ti, Titan Xp: maps of 2x30 to 40x175
# tiles, 8 and 16 images, 64-512 channels), scaled by one constant per GPU, miss by 9.9% in
# this block against 20.2% with no quantisation at all; strips of 4 tiles score 16-20%, blocks
# of 128 channels 20-34%, squares of 4x4 tiles 28%. A 7x7 map (4x4 tiles) fills half of each
# strip: 512 -> 512 channels at batch 8 take 0.74 ms on the M40, and on 14x14 maps (7x7 tiles,
# 3.1 times the work) 1.18 ms. cuDNN 7.6's rows (V100, T4: 3x3 layers of 64-256 channels,
# 14x14 to 112x112 maps, 8 images) are too few to choose a block, and scale alike in this one
# (the T4's four at 0.94-1.04 of their times at the start efficiency, the V100's at 1.28-1.55);
# with it the V100's training rows (Torch7 on cuDNN 7.0 at batch 1 to 128, NGC) fit 7.0%
# against 7.8% in sample, the worst FP32 row 40% against 52%: at batch 1 and 2 a block of 4
# images is mostly padding.
FUSED_WINOGRAD_BLOCK = FusedWinogradBlock(rows=1, cols=8, images=4, channels=32)
WINOGRAD_POINTS = 16        # F(2x2, 3x3): 4x4 transformed tiles


# Atomic additions into memory per clock (at the part's sustained clock) the L2 completes for
# the data gradient's scatter (BWD_DATA_ALGO_0), whose CTAs add their products into dx once their
# main loop ends, so the adds follow the GEMM. Fitted on DeepBench's strided data gradients
# (validation/measured/published/kernels.csv): per architecture, the rate that minimises the
# MAPE of its rows with the other constants held (tests/hwmodels/test_gpu_scatter_atomics.py
# checks it still does); its DeepSpeech layers of 5x10 and 5x20 filters at stride 2 run on this
# bound. Volta's and Turing's cuDNN 7.6 gathers the stride phases, so the scatter wins on their
# tables only where the gather is slower still (1x1 stride-2 layers, whose measured times fall
# between the two): their rates are fitted on those rows and absorb those layers' own misses
# (Turing's 7 per clock is below any plausible L2 rate; docs/gpu-model.md says so). Later
# architectures take Volta's rate and Kepler Maxwell's: assumptions, not fits.
L2_ATOMICS_PER_CLOCK = {"kepler": 20.0, "maxwell": 20.0, "pascal": 30.0, "volta": 22.0,
                        "turing": 7.0}
L2_ATOMICS_NEWEST_FITTED = "volta"


def l2_atomics_per_clock(architecture: str | None) -> float:
    """The L2's atomic additions per clock on an architecture (L2_ATOMICS_PER_CLOCK)."""
    return L2_ATOMICS_PER_CLOCK.get(architecture or "",
                                    L2_ATOMICS_PER_CLOCK[L2_ATOMICS_NEWEST_FITTED])


# Rounds of CTAs over which the weight gradient's split of its reduction is sought
# (wgrad_splits): enough that a product of a few more output tiles than SMs finds a split
# that fills its last round. From 8 rounds up the choice barely depends on it (DeepBench's
# weight gradients score alike with 8 to 64); 4, cuBLAS's search, finds too few splits.
WGRAD_SPLIT_ROUNDS = 32


# A 1x1 filter's weight gradient is a plain product of dy (K x N*P*Q) and the input (C x
# N*P*Q), with no window to gather: cuDNN runs it in GEMM tiles whose 128 side lies along the
# filters (K), so a layer of 64 filters fills half of each. DeepBench's 1x1 layers of 256 -> 64
# channels on 56x56 maps (a 64 x 256 product) take 1.31-1.70 times as long as their 64 -> 256
# twins (256 x 64, the same multiplies and bytes) on every Pascal, Volta and Turing table, cuDNN
# 5.1 to 7.6. Maxwell's kernels lay them either way round: on the M40 and Titan X (Maxwell) the
# pair takes 1.02-1.15 times as long. Kepler, with no table, is taken as Maxwell.
WGRAD_1X1_EITHER_WAY = frozenset({"kepler", "maxwell"})


def wgrad_tiles_either_way(kernel: tuple[int, int], architecture: str | None) -> bool:
    """Whether the weight gradient's tiles (CONV_TILES) may lay their 128 side along C*R*S
    as well as along K (WGRAD_1X1_EITHER_WAY): for a 1x1 filter only on the architectures
    whose kernels do; for a larger filter everywhere."""
    return kernel != (1, 1) or (architecture or "") in WGRAD_1X1_EITHER_WAY


def wgrad_splits(m: int, n: int, k: int, batch: int, sm_count: int) -> list[int]:
    """Splits of the weight gradient's reduction (k = N*P*Q, long; m x n = its output, a
    filter's K x C*R*S) that give the CTAs of one of cuDNN's tile shapes (CONV_TILES, either
    way round) the most slices that r rounds of the SMs hold, for r up to
    WGRAD_SPLIT_ROUNDS. cuDNN's split-K weight-gradient kernels slice the reduction to keep
    every SM busy where the output tiles alone leave the last round part-empty: 50 tiles of
    128 x 128 on 24 SMs fill 69% of three rounds, and 12 slices of each fill 25. Each slice
    keeps at least SPLIT_K_MIN_K of the reduction."""
    max_split = max(1, k // SPLIT_K_MIN_K)
    splits = set()
    for tile_m, tile_n in {*CONV_TILES, *((tn, tm) for tm, tn in CONV_TILES)}:
        tiles = math.ceil(m / tile_m) * math.ceil(n / tile_n) * max(batch, 1)
        for rounds in range(1, WGRAD_SPLIT_ROUNDS + 1):
            split = (rounds * sm_count) // tiles
            if 1 < split <= max_split:
                splits.add(split)
    return sorted(splits)


def split_partial_bytes(m: int, n: int, batch: int, split: int) -> float:
    """FP32 partial products a split reduction writes and reads back: one m x n slice each."""
    return 2.0 * 4 * m * n * max(batch, 1) * split


@dataclass(frozen=True)
class ConvProblem:
    """One convolution pass as a GEMM problem, from the op's attributes."""
    batch: int
    in_channels: int
    out_channels: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @classmethod
    def from_attrs(cls, attrs: dict) -> "ConvProblem":
        n, c, h, w = attrs["in_shape"]
        _, k, p, q = attrs["out_shape"]
        return cls(n, c, k, (h, w), (p, q), tuple(attrs["kernel"]), tuple(attrs["stride"]),
                   tuple(attrs.get("dilation", (1, 1))), int(attrs.get("groups", 1)))

    @property
    def is_thin_grouped(self) -> bool:
        return self.groups > 1 and self.in_channels // self.groups < THIN_GROUP_CHANNELS

    def winograd_ok(self, fused: bool,
                    nonfused_filters: tuple[tuple[int, int], ...] = WINOGRAD_NONFUSED_FILTERS
                    ) -> bool:
        """cuDNN's fused Winograd takes 3x3 filters; its non-fused one 3x3 and 5x5 (cuDNN
        Developer Guide; `nonfused_filters`, a release's own, cudnn_releases.CudnnRelease);
        both stride 1, no dilation, one group."""
        filters = ((3, 3),) if fused else nonfused_filters
        return (self.kernel in filters and self.stride == (1, 1) and self.dilation == (1, 1)
                and self.groups == 1)

    def implicit_gemm(self, pass_: str,
                      stride_phases: bool = True) -> tuple[int, int, int, int]:
        """(m, n, k, batch) of the implicit GEMM of pass 'fwd', 'dgrad' or 'wgrad';
        stride_phases: whether the data gradient's gather runs only each stride phase's taps
        (cudnn_releases.CudnnRelease.dgrad_stride_phases)."""
        g = self.groups
        c, kk = self.in_channels // g, self.out_channels // g
        rs = self.kernel[0] * self.kernel[1]
        npq = self.batch * self.out_hw[0] * self.out_hw[1]
        if pass_ == "fwd":
            return npq, kk, c * rs, g
        if pass_ == "dgrad":
            pixels, taps = self._dgrad_gather(stride_phases)
            return pixels, c, math.ceil(kk * taps), g
        return kk, c * rs, npq, g                                          # wgrad

    @property
    def wgrad_filter_elements(self) -> int:
        """Elements of the weight gradient, K x C/groups x R x S: the FP32 values its
        implicit GEMM accumulates, one per element of its product."""
        m, n, _, g = self.implicit_gemm("wgrad")
        return m * n * g

    @property
    def wgrad_sharing(self) -> int:
        """Filter taps that read each input pixel in the weight gradient (its GEMM's n side,
        C*R*S): ceil(R / s_h) x ceil(S / s_w); 1 for a 1x1 filter."""
        (r, s_), (sh, sw) = self.kernel, self.stride
        return math.ceil(r / sh) * math.ceil(s_ / sw)

    def _dgrad_gather(self, stride_phases: bool = True) -> tuple[int, float]:
        """(input pixels that receive a gradient, filter taps each gathers) of the data
        gradient as a gather (cuDNN's BWD_DATA_ALGO_1): with stride s the input splits into
        s_h x s_w phases, phase (a, b) gathering ceil((R - a) / s_h) x ceil((S - b) / s_w)
        taps. A CTA's 128 pixels mix the phases, so each runs the loop of the phase with the
        most taps, over every input pixel: a 1x1 filter at stride 2 computes all of them, one
        tap each, three in four of them zeros (DeepBench: cuDNN's data gradient of ResNet's
        1x1 stride-2 layers takes up to 3.7x its forward time). Without stride phases every
        pixel runs all R x S taps."""
        (r, s_), (sh, sw) = self.kernel, self.stride
        h, w = self.in_hw
        if not stride_phases:
            return max(1, self.batch * h * w), r * s_
        phase_taps = [math.ceil((r - a) / sh) * math.ceil((s_ - b) / sw)
                      for a in range(min(sh, r)) for b in range(min(sw, s_))]
        return max(1, self.batch * h * w), max(phase_taps)

    def dgrad_scatter(self) -> tuple[int, int, int, int]:
        """(m, n, k, batch) of the data gradient as a scatter (cuDNN's BWD_DATA_ALGO_0): each
        output pixel's gradient times the filter gives its R x S x C input contributions,
        added into the input gradient. Its GEMM is wide where the gather's is narrow (a first
        layer's C = 1 or 3 input channels)."""
        g = self.groups
        rs = self.kernel[0] * self.kernel[1]
        npq = self.batch * self.out_hw[0] * self.out_hw[1]
        return npq, self.in_channels // g * rs, self.out_channels // g, g

    @property
    def dgrad_scatter_atomics(self) -> int:
        """Atomic additions the scatter makes into the input gradient: one per element of its
        GEMM's product, N*P*Q x C*R*S."""
        m, n, _, g = self.dgrad_scatter()
        return m * n * g

    def winograd(self, pass_: str, fused: bool) -> tuple[int, int, int, int, float]:
        """(m, n, k, batch GEMMs, transformed elements through memory) of a Winograd pass:
        one GEMM per point of the alpha x alpha transformed tile, alpha = output tile + R - 1
        (F(2x2, 3x3) fused; F(4x4, 3x3) and F(4x4, 5x5) non-fused)."""
        out_tile = 2 if fused else 4
        alpha = out_tile + self.kernel[0] - 1    # input tile side
        hw = self.in_hw if pass_ == "dgrad" else self.out_hw
        tiles = self.batch * math.ceil(hw[0] / out_tile) * math.ceil(hw[1] / out_tile)
        c, k = self.in_channels, self.out_channels
        transformed = 0.0
        if not fused:   # transformed input, output and filter written and read once each
            transformed = 2.0 * alpha * alpha * (tiles * (c + k) + c * k)
        if pass_ == "fwd":
            return tiles, k, c, alpha * alpha, transformed
        if pass_ == "dgrad":
            return tiles, c, k, alpha * alpha, transformed
        return k, c, tiles, alpha * alpha, transformed                     # wgrad


    def winograd_fused_blocks(self, pass_: str,
                              block: FusedWinogradBlock) -> tuple[int, int]:
        """(CTAs, multiply-adds each) of a fused F(2x2, 3x3) Winograd pass run in `block`s:
        the 2x2 tiles of the output (the input for the data gradient), images and output
        channels (input channels for the data gradient) each rounded up to the block's, 16
        points a tile, over every channel reduced."""
        hw = self.in_hw if pass_ == "dgrad" else self.out_hw
        rows, cols = math.ceil(hw[0] / 2), math.ceil(hw[1] / 2)
        out, reduced = ((self.in_channels, self.out_channels) if pass_ == "dgrad"
                        else (self.out_channels, self.in_channels))
        ctas = (math.ceil(rows / block.rows) * math.ceil(cols / block.cols)
                * math.ceil(self.batch / block.images) * math.ceil(out / block.channels))
        tiles = block.rows * block.cols * block.images
        return ctas, tiles * block.channels * WINOGRAD_POINTS * reduced

    @property
    def fft_ok(self) -> bool:
        return (self.stride == (1, 1) and self.dilation == (1, 1) and self.groups == 1
                and max(self.kernel) > 1 and max(self.kernel) <= FFT_TILE // 2)

    @property
    def padded_hw(self) -> tuple[int, int]:
        """The padded input's height and width of a stride-1 convolution: its output's plus
        the filter's less one."""
        return self.out_hw[0] + self.kernel[0] - 1, self.out_hw[1] + self.kernel[1] - 1

    @property
    def fft_whole_ok(self) -> bool:
        """cuDNN's FFT (whole-image transforms) takes stride 1, no dilation, one group, a
        padded input of at most FFT_MAX_PADDED_SIDE a side and a filter larger than its
        padding (cuDNN Developer Guide; cudnn_benchmark.supports)."""
        if self.stride != (1, 1) or self.dilation != (1, 1) or self.groups != 1:
            return False
        padded = self.padded_hw
        pads = [(pad - size) // 2 for pad, size in zip(padded, self.in_hw, strict=True)]
        return (max(padded) <= FFT_MAX_PADDED_SIDE
                and all(r > pad for r, pad in zip(self.kernel, pads, strict=True)))

    def fft(self, pass_: str, whole_image: bool = False) -> tuple[int, int, int, int, float]:
        """(m, n, k, batch, transformed elements through memory) of cuDNN's FFT_TILING: the
        output cut into tiles of FFT_TILE - R + 1, each transformed (a real 2-D FFT of
        FFT_TILE x FFT_TILE has FFT_TILE x (FFT_TILE/2 + 1) frequencies), then one complex
        GEMM per frequency; or, `whole_image`, of its FFT: one transform per padded image
        (gpu_memory's workspace rule), so each frequency's GEMM has a row per image and the
        filter's spectrum, K x C planes, is as large as the padded image. The GEMM sizes are
        in complex multiply-adds; the caller counts 4 real ones each."""
        if whole_image:
            size_h, size_w = self.padded_hw
            tiles = self.batch
        else:
            size_h = size_w = FFT_TILE
            tile_h = FFT_TILE - self.kernel[0] + 1
            tile_w = FFT_TILE - self.kernel[1] + 1
            hw = self.in_hw if pass_ == "dgrad" else self.out_hw
            tiles = self.batch * math.ceil(hw[0] / tile_h) * math.ceil(hw[1] / tile_w)
        freqs = size_h * (size_w // 2 + 1)
        c, k = self.in_channels, self.out_channels
        # complex values (2 elements) of transformed input, output and filter, out and back
        transformed = 2.0 * 2 * freqs * (tiles * (c + k) + c * k)
        if pass_ == "fwd":
            return tiles, k, c, freqs, transformed
        if pass_ == "dgrad":
            return tiles, c, k, freqs, transformed
        return k, c, tiles, freqs, transformed                              # wgrad
