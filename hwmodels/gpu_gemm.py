"""How cuBLAS runs a GEMM on a GPU, and what that costs.

A GEMM (M x N output, K reduction) is cut into output tiles; each tile runs on one SM as a
thread block (CTA). The library picks, per problem, the tile size that finishes first:
- tiles are spread over the SMs; the SM that gets the most sets the time, so a partial last
  wave costs a whole one;
- a smaller tile fills more SMs but reuses each loaded element less: a tile of tm x tn loads
  (tm + tn) elements per k step for tm x tn multiply-adds, so its arithmetic intensity, and the
  share of the SM's peak it sustains, falls with tm*tn / (tm + tn);
- when the tiles cannot fill the GPU and K is long (weight gradients: M, N are channels, K is
  batch x pixels), the reduction is split across CTAs (split-K) and summed afterwards;
- each CTA pays a pipeline fill and an epilogue, about one k-slab of 32 (K_FILL);
- a GEMM whose CTAs all fit in one round runs each alone on its SM, with no other CTA to
  issue while it waits: GemmCost.rounds says so, and the caller (gpu.py) costs it at the
  architecture's lone_cta share of the rate.
Which FP32 kernels cuBLAS has depends on its release (CUBLAS_RELEASES), and so does whether
it may tile an NN product as its transpose (blas_call: the operands' transposes of a call).
Tensor-core GEMMs pad N and K to multiples of 8. Convolutions run as such GEMMs in cuDNN's
kernels (gpu_conv.py).

The efficiencies (share of peak a full, large tile sustains) are per GPU architecture; they
live in catalog/gpu_families.toml with what they were fitted to.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Protocol, TypeVar

# (tile_m, tile_n): the CUTLASS / cuBLAS GEMM tile shapes, down to the skinny ones that
# narrow problems (a few output columns) take
TILES = ((256, 128), (128, 128), (128, 64), (64, 64), (128, 32), (64, 32), (64, 16), (128, 8))
# cuBLAS's SGEMM before its skinny kernels: maxwell_sgemm_128x128 and _128x64 only, so a
# product with 16 or 32 columns costs a whole 128-wide tile (CUBLAS_RELEASES below)
WIDE_TILES = ((128, 128), (128, 64))
REFERENCE_TILE = (128, 128)
K_FILL = 32                 # per-CTA pipeline fill and epilogue, in k steps
SPLIT_K_MIN_K = 256         # split-K keeps at least this much of K per CTA
TENSOR_CORE_ALIGN = 8       # tensor-core GEMM dimensions are padded to this
# the widest product (output columns or rows) a release's sliced kernels take
# (CublasRelease.k_slices)
SLICED_MAX_WIDTH = 32


def tile_efficiency(tile_m: int, tile_n: int, n_sharing: int = 1, k_slices: int = 1) -> float:
    """Share of the reference tile's rate a tile sustains: the square root of its relative
    reuse tm*tn/(tm+tn), capped at 1 (bigger tiles are limited by registers, not reuse).
    Where each element loaded for the n side serves `n_sharing` of its columns (a weight
    gradient's C*R*S side: one input pixel feeds every filter tap that overlaps it), the tile
    loads tm + tn/n_sharing elements per k step, and its rate rises by the square root of
    that further reuse. A skinny tile (a side of at most SLICED_MAX_WIDTH) whose k loop is
    sliced over `k_slices` groups of its warps (CublasRelease.k_slices) reuses what it loads
    as a tile k_slices times as wide on its narrow side does."""
    ref_m, ref_n = REFERENCE_TILE
    if k_slices > 1 and min(tile_m, tile_n) <= SLICED_MAX_WIDTH:
        tile_m, tile_n = max(tile_m, tile_n), min(tile_m, tile_n) * k_slices
    reuse = (tile_m * tile_n / (tile_m + tile_n)) / (ref_m * ref_n / (ref_m + ref_n))
    shared = (tile_m + tile_n) / (tile_m + tile_n / n_sharing)
    return min(1.0, math.sqrt(reuse)) * math.sqrt(shared)


@dataclass(frozen=True)
class GemmCost:
    compute_s: float
    extra_bytes: float      # split-K partial sums written and read back
    tile: tuple[int, int]
    split_k: int
    rounds: int = 1         # CTAs per SM of the busiest SM: 1 where each runs alone on its SM


@dataclass(frozen=True)
class CublasRelease:
    """The FP32 GEMM kernels a cuBLAS release has, as the published tables that ran it show:
    the tiles it chooses among; when it splits a reduction over CTAs (`split_k`: "any",
    "long" only where the reduction is longer than the output has elements, k >= m*n,
    "untransposed_a" wherever op(A) is A as stored (NN, NT) and never where A is read
    transposed (TN, TT), or "none"); and the widest product (output columns or rows) its
    gemv-like kernels take, which stream the wide operand once at memory bandwidth instead
    of padding it into a tile (DeepBench's M = 512-1024, N = 8, K = 500,000 runs at DRAM
    speed on the M40, Titan X and V100)."""
    version: tuple[int, int, int]     # the first CUDA release with these kernels
    tiles: tuple[tuple[int, int], ...]
    split_k: str
    gemv_max_width: int
    tt_kernels: bool = True           # whether it has kernels for two transposed operands
    # whether its TN kernels, which read both operands along K (across their leading
    # dimension) and turn them round in shared memory, run slower than its NN and NT ones
    # of the same shape: at the architecture's fitted tn_gemm share of the rate (GpuFamily)
    slow_tn: bool = False
    # the widest product (output columns or rows) it runs in passes of NARROW_PASS_COLUMNS
    # columns, each streaming the wide operand again (0: none, one pass)
    narrow_passes_max_width: int = 0
    # the operands' transposes (op(A), op(B)) its gemv-like kernels take; a product of
    # another layout runs in the release's tiles however narrow
    gemv_layouts: tuple[str, ...] = ("NN", "NT", "TN", "TT")
    # the groups of warps its kernels for a product of at most SLICED_MAX_WIDTH columns (or
    # rows) slice each k slab over (cuBLAS's "sliced1x4" SGEMM kernels): each group
    # multiplies its share of the slab into the whole tile, and the groups' sums are added
    # in shared memory at the end, so a 128x32 tile keeps each thread the register tile of a
    # 128x128 one (tile_efficiency); 1: no sliced kernels
    k_slices: int = 1

    def slices(self, m: int, n: int) -> int:
        """The k slices of the kernels that run an (m x n) product (k_slices, or 1)."""
        return self.k_slices if min(m, n) <= SLICED_MAX_WIDTH else 1

    def has_gemv(self, m: int, n: int, transposes: str) -> bool:
        """Whether an (m x n) product whose operands are `transposes` may run in the
        release's gemv-like kernel."""
        return min(m, n) <= self.gemv_max_width and transposes in self.gemv_layouts

    def wide_operand_reads(self, m: int, n: int) -> int:
        """How many times a product of (m x n) output streams its wide operand: once, or once
        per pass of its narrow kernels."""
        narrow = min(m, n)
        if NARROW_PASS_COLUMNS < narrow <= self.narrow_passes_max_width:
            return math.ceil(narrow / NARROW_PASS_COLUMNS)
        return 1

    def splits_k(self, m: int, n: int, k: int, transposes: str = "NN") -> bool:
        """Whether the release may split the reduction of an (m x n x k) product whose
        operands are `transposes` (op(A), op(B))."""
        return (self.split_k == "any" or (self.split_k == "long" and k >= m * n)
                or (self.split_k == "untransposed_a" and transposes[0] == "N"))

    def tiles_either_way(self, transposes: str) -> bool:
        """Whether a product whose operands are `transposes` ("NN", "TN", ...: op(A), op(B)
        as cuBLAS takes them) may be tiled as its transpose, C^T = op(B)^T op(A)^T: that
        swaps the operands and flips both flags, so TN and NT products stay TN and NT, while
        NN becomes TT and needs the release's TT kernels."""
        return transposes not in ("NN", "TT") or self.tt_kernels


# the output columns each pass of CUDA 8.0.88's 16-column kernels covers
# (CublasRelease.narrow_passes_max_width)
NARROW_PASS_COLUMNS = 8
# Each release's kernels hold until the next one's version; a version older than the first
# takes the first. The evidence is DeepBench's FP32 GEMM tables, each of which names its CUDA:
CUBLAS_RELEASES = (
    # CUDA 7.5 (M40, Titan X Maxwell): no skinny tiles (512 or 1024 x 16 or 32 x 512 take
    # one 128x128 tile's time, 4096 x 16 x 4096 two waves of them); a reduction split only
    # where longer than the output (1760 x 64 x 1760 and 2560 x 64 x 2560 as one round of
    # full-K 128x128 tiles, 0.26 and 0.39 ms on the M40, where a split takes two thirds of
    # that; 512 x 16 x 500,000 spread over the SMs)
    # An NN product is tiled as written: 35 x 8457 x K (M x N x K) takes 1.3-1.4 ms on the
    # M40 NN, as 128x128 tiles along M pad 35 rows to 128, and 1.0 ms TN, as 128-row tiles
    # along N do (no TT kernels; the same on CUDA 8.0's Titan X Pascal, 1.4 against 0.7 ms)
    # A TN product, both operands read along K, takes longer than its NN pair of the same
    # shape where the NN one is large: 1.08 (M <= 4096) to 1.3-1.7 times (M >= 4608) on the
    # M40 and Titan X Maxwell; 1.05 to 2.8 times on CUDA 8.0's Titan X Pascal; 1.02 to 1.15
    # times on CUDA 8.0.88's GTX 1080 Ti and Titan Xp; not on CUDA 10.1 (V100 0.95, T4 1.0)
    # Its gemv-like kernel reads A as stored only: TN 512 and 1024 x 8 x 500,000 take 17.9
    # and 33.6 ms on the M40 (16.7, 31.5 on the Titan X Maxwell), as long as their TN
    # 16-column pairs (19.0, 35.8; 17.8, 33.5), which run in tiles, where NN 8 columns take
    # 5.2 and 8.0 (4.8, 7.3) and CUDA 8.0's Titan X (Pascal) takes 5.1 and 6.7 TN
    CublasRelease((7, 5, 0), WIDE_TILES, "long", 8, tt_kernels=False, slow_tn=True,
                  gemv_layouts=("NN", "NT")),
    # CUDA 8.0 as first released (2016, Titan X Pascal): the same 128-wide tiles (512 and
    # 1024 x 32 x 512 in 0.05 ms, one 128x128 tile's time; 1760 to 3072 x 32 x K one round
    # of them), and a gemv-like kernel for 16 columns (512 and 1024 x 16 x 512 in 0.011 ms)
    # that reads B as stored only: NT 512 and 1024 x 16 x 512 take 0.046 ms, as NT and NN
    # 32 columns (0.046-0.050) do in one 128x128 tile
    CublasRelease((8, 0, 0), WIDE_TILES, "long", 16, tt_kernels=False, slow_tn=True,
                  gemv_layouts=("NN", "TN")),
    # CUDA 8.0.88 (GTX 1080 Ti, Titan Xp): the skinny tiles. It splits the reduction of an
    # NN product, never of a TN one: NN 2048, 2560 and 4096 x 128 x K take 0.14-0.15,
    # 0.20-0.21 and 0.46-0.49 ms on the two cards, less than full-K 128x128 tiles take on
    # 28-30 SMs at the peak (0.17, 0.21 and, in two rounds, 0.66 ms), where their TN pairs
    # take 0.19-0.22, 0.41-0.50 and 0.76-0.89 ms. No row shows NT, whose A is read as NN's
    # is: it follows NN
    # Its 16-column products run as two passes of 8 columns, each streaming the wide
    # operand: NN and TN M x 16 x K with M = 2048-4608 take 0.22-0.41 of the peak bandwidth
    # on reading each operand once (GTX 1080 Ti and Titan Xp, 20 rows), where their NN
    # 32-column pairs take 0.49-0.82. CUDA 8.0's Titan X (Pascal) moves its TN 16-column
    # products at 0.27-0.34 too; costed in two passes there, the Torch7 rows that ran CUDA
    # 8.0 at batch 16 (linear layers of this shape) on Maxwell and Kepler cards, which no
    # kernel table of 8.0 times, come out slower than published (Titan X Maxwell AlexNet
    # -14% against -7%; leave-one-GPU-out FP32 8.1% against 7.9%): 8.0 reads it once
    CublasRelease((8, 0, 88), TILES, "untransposed_a", 8, slow_tn=True,
                  narrow_passes_max_width=16),
    # CUDA 10.1 (V100, T4): the skinny tiles and split-K, and sliced kernels for products of
    # up to 32 columns: NN 4608, 6144, 7680 and 8448 x 32 x K (K = M / 3) take 0.049, 0.085,
    # 0.122 and 0.135 ms on the V100, 0.59-0.72 of its FP32 peak, where an unsliced 128x32
    # tile sustains at most its 0.63 of the reference tile's rate (0.57 of the peak), with
    # every SM busy; the T4's take 0.45-0.48 of its peak (against its 128-column products'
    # 0.57-0.68)
    CublasRelease((10, 1, 0), TILES, "any", 8, k_slices=4),
)
# The flags of the cuBLAS call each pass of a linear layer makes (PyTorch's and Torch7's
# addmm): the forward W^T x^T (TN), the input gradient W dy^T (NN), the weight gradient x^T dy
# (NT), by the pass a kind's GEMM role names
LINEAR_CALL_TRANSPOSES = {"forward": "TN", "grad_input": "NN", "grad_weight": "NT"}


def blas_call(gemm_pass: str, m: int, n: int, k: int,
              transposes: str | None = None) -> tuple[int, int, int, str]:
    """(m, n, k, transposes) of the cuBLAS call that computes a framework's row-major
    (m x n, reduced over k) product: cuBLAS reads row-major tensors as column-major, their
    transposes, so the call computes C^T (n x m). A benchmark's direct call, which names its
    own `transposes`, is taken as it is."""
    if transposes is not None:
        return m, n, k, transposes
    return n, m, k, LINEAR_CALL_TRANSPOSES.get(gemm_pass, "NN")


# the release each architecture's published tables ran with, for a GPU whose CUDA is not
# named; the others take the newest
ARCHITECTURE_CUDA = {"maxwell": (7, 5, 0), "pascal": (8, 0, 88)}
_CUDA_VERSION = re.compile(r"\bCUDA\s+(\d+(?:\.\d+){0,2})\b", re.IGNORECASE)


def cuda_version(text: str) -> tuple[int, int, int] | None:
    """The CUDA version a library description names ("CUDA 8.0.88, cuDNN 6.0.21" ->
    (8, 0, 88); "CUDA 8" -> (8, 0, 0)), or None where it names none."""
    return parse_version(_CUDA_VERSION, text)


def parse_version(pattern: re.Pattern[str], text: str) -> tuple[int, int, int] | None:
    """The (major, minor, patch) version `pattern`'s first group finds in `text`, missing
    parts 0, or None where it finds none."""
    found = pattern.search(text or "")
    if found is None:
        return None
    parts = [int(p) for p in found.group(1).split(".")] + [0, 0]
    return parts[0], parts[1], parts[2]


class _Release(Protocol):
    @property
    def version(self) -> tuple[int, int, int]: ...


ReleaseT = TypeVar("ReleaseT", bound=_Release)


def release_at_or_below(releases: tuple[ReleaseT, ...],
                        version: tuple[int, int, int]) -> ReleaseT:
    """The last of `releases` (in version order) at or below `version`, else the first."""
    chosen = releases[0]
    for release in releases:
        if release.version <= version:
            chosen = release
    return chosen


def library_release(releases: tuple[ReleaseT, ...],
                    by_architecture: dict[str, tuple[int, int, int]],
                    architecture: str | None,
                    version: tuple[int, int, int] | None) -> ReleaseT:
    """The release of a library a kernel runs in: the one of `version` where given, else the
    one the architecture's published tables ran with (`by_architecture`), else the newest."""
    version = version or by_architecture.get(architecture or "", releases[-1].version)
    return release_at_or_below(releases, version)


def cublas_release(architecture: str | None,
                   cuda: tuple[int, int, int] | None = None) -> CublasRelease:
    """The cuBLAS release an FP32 GEMM runs in: the one of `cuda` where given, else the one
    the architecture's published tables ran with, else the newest."""
    return library_release(CUBLAS_RELEASES, ARCHITECTURE_CUDA, architecture, cuda)


# A pure function of its arguments, asked again for every replica of a data-parallel run and
# every pass of a fit: remembering recent answers makes lowering 64 GPUs several times faster.
@functools.lru_cache(maxsize=1 << 16)
def gemm_cost(m: int, n: int, k: int, batch: int, peak_flops: float, sm_count: int,
              efficiency: float, split_k: bool = True,
              tiles: tuple[tuple[int, int], ...] = TILES, transposable: bool = True,
              n_sharing: int = 1, k_fill: float = K_FILL, k_slices: int = 1) -> GemmCost:
    """The fastest tiling of `batch` independent (m x n x k) GEMMs at `efficiency` of a full
    reference tile's share of `peak_flops`. The busiest SM sets the time: it runs
    ceil(CTAs / SMs) tiles one after another at its full rate. Where `transposable`, each tile
    shape may be laid either way round (cuBLAS computes C or its transpose), and the reduction
    may be split in as many parts as fill the SMs best. n_sharing: columns each loaded
    element of the n side serves (tile_efficiency); k_fill: the k steps of pipeline fill and
    epilogue each CTA pays per GEMM; k_slices: the groups of warps a CTA slices its k loop
    over (tile_efficiency)."""
    m, n, k, batch = max(m, 1), max(n, 1), max(k, 1), max(batch, 1)
    per_sm_flops = peak_flops / sm_count * efficiency
    best: GemmCost | None = None
    shapes = sorted({*tiles, *((tn, tm) for tm, tn in tiles if transposable)})
    for tile_m, tile_n in shapes:
        output_tiles = math.ceil(m / tile_m) * math.ceil(n / tile_n) * batch
        max_split = max(1, k // SPLIT_K_MIN_K) if split_k else 1
        for split in _split_candidates(output_tiles, sm_count, max_split):
            k_per_cta = math.ceil(k / split)
            rounds = math.ceil(output_tiles * split / sm_count)
            # slicing saves shared-memory loads, which bound an SM busy with several CTAs; a
            # CTA alone on its SM waits on its k loop, which slicing leaves as long
            tile_rate = per_sm_flops * tile_efficiency(tile_m, tile_n, n_sharing,
                                                       k_slices if rounds > 1 else 1)
            compute_s = rounds * 2.0 * tile_m * tile_n * (k_per_cta + k_fill) / tile_rate
            if best is None or compute_s < best.compute_s:
                extra = 0.0 if split == 1 else 2.0 * 4 * m * n * batch * split  # partials
                best = GemmCost(compute_s, extra, (tile_m, tile_n), split, rounds)
    assert best is not None
    return best


def _split_candidates(tiles: int, sm_count: int, max_split: int) -> list[int]:
    """Splits that end a round exactly at a multiple of the SMs, as many as the reduction
    allows where it is too short for that, or no split: a long reduction over few output
    tiles never runs on a handful of SMs while the rest idle."""
    out = {1}
    for rounds in range(1, 5):
        split = min((rounds * sm_count) // tiles, max_split)
        if split > 1:
            out.add(split)
    return sorted(out)


def align(x: int, to: int) -> int:
    return int(math.ceil(x / to) * to)
