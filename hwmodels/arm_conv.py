"""How the Arm Compute Library runs an fp32 convolution on a 32-bit NEON board (NCHW, the
library's default layout), as DeCNN's code uses it: which method it picks, the arithmetic that
method's GEMM does, and the reshaping passes around it.

Read in the library's source as its 20.08 release ships it (Debian's libarm-compute-doc
package carries the Doxygen listings of every source file); DeCNN's code builds 19.08, whose
source could not be read here, so the rules below are 20.08's, taken as 19.08's.

Method (NEConvolutionLayer::get_convolution_method, with fast math off, its default):
- dilation other than 1: GEMM;
- fewer than 16 input channels: GEMM;
- otherwise Winograd where NEWinogradConvolutionLayer::validate takes the shape: unit stride
  and a kernel of 3x3 (output tile 4x4; 2x2 where the input map is at most 4 wide or high),
  1x3 / 3x1 (tile 1x6 / 6x1), 1x5 / 5x1 (1x4 / 4x1) or 1x7 / 7x1 (1x2 / 2x1); 5x5 needs fast
  math; anything else GEMM.
Left out of the rule: its table of known shapes (AlexNet's conv2, VGG's and MobileNet's first
layers: GEMM, which the rule gives them too), and kernels over 7x7 (direct or FFT; none in
these networks), taken as GEMM. NEON has no grouped convolution: the library runs each group
as a convolution of its own, so the rule sees one group's channels.

GEMM (NEGEMMConvolutionLayer): im2col, the GEMM, col2im; in NCHW both reshapes always run.
On 32-bit Arm the fp32 GEMM is arm_gemm's GemmInterleaved<sgemm_8x6> (gemm_fp32.cpp: the only
fp32 GEMM kernel under __arm__, beside a GEMV for a single row): each call of its micro-kernel
computes 6 rows (output pixels) by 8 columns (output channels) of the result
(a32_sgemm_8x6.hpp: out_height 6, out_width 8), so a partial block at the edge of either
costs a whole one.

Winograd (NEWinogradConvolutionLayer in NCHW): permute the input to NHWC, transform it (each
output tile reads a (tile + kernel - 1) square of inputs per channel), one GEMM per point of
the transformed tile (36 for F(4x4, 3x3): tiles by input channels by output channels, through
the same sgemm_8x6), transform the output back, permute it to NCHW. Its weights are
transformed once, before the first image (prepare()), and kept: not counted here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from workloads.graph import Op

WINOGRAD_MIN_INPUT_CHANNELS = 16       # get_convolution_method: fewer -> GEMM
GEMM_BLOCK_ROWS = 6                    # sgemm_8x6 out_height: output pixels per block
GEMM_BLOCK_COLUMNS = 8                 # sgemm_8x6 out_width: output channels per block

# kernel (h, w) -> output tile (h, w) of the Winograd transform the library has for it with
# fast math off (winograd_output_tile; 5x5's tiles need fast math, so 5x5 is not here)
WINOGRAD_TILES: dict[tuple[int, int], tuple[int, int]] = {
    (3, 3): (4, 4), (1, 3): (1, 6), (3, 1): (6, 1), (1, 5): (1, 4), (5, 1): (4, 1),
    (1, 7): (1, 2), (7, 1): (2, 1)}
SMALL_MAP_SIDE = 4                     # 3x3 on a map at most this wide or high: tile 2x2


@dataclass(frozen=True)
class ConvPlan:
    """What the library runs for one convolution (all groups, elements of fp32)."""
    method: str                        # "gemm" or "winograd"
    gemm_flops: float                  # arithmetic of its GEMMs, partial blocks counted whole
    pass_elements: tuple[int, ...]     # elements each reshaping pass reads and writes
    workspace_elements: int            # buffers held while it runs (one group's)


def winograd_tile(op: Op) -> tuple[int, int] | None:
    """The output tile of the Winograd transform the library picks for `op`, or None where it
    runs the GEMM convolution."""
    a = op.attrs
    groups = int(a["groups"])
    kernel = (int(a["kernel"][0]), int(a["kernel"][1]))
    if (tuple(a.get("dilation", (1, 1))) != (1, 1) or tuple(a["stride"]) != (1, 1)
            or int(a["in_channels"]) // groups < WINOGRAD_MIN_INPUT_CHANNELS):
        return None
    tile = WINOGRAD_TILES.get(kernel)
    if tile is not None and kernel == (3, 3):
        _, _, h_in, w_in = a["in_shape"]
        if min(int(h_in), int(w_in)) <= SMALL_MAP_SIDE:
            tile = (2, 2)
    return tile


def conv_plan(op: Op) -> ConvPlan:
    """The method, GEMM arithmetic, reshaping passes and workspace of conv2d `op`."""
    a = op.attrs
    groups = int(a["groups"])
    c_in, c_out = int(a["in_channels"]) // groups, int(a["out_channels"]) // groups
    kh, kw = int(a["kernel"][0]), int(a["kernel"][1])
    batch, _, h_out, w_out = (int(d) for d in op.out.shape)
    in_elements = math.prod(int(d) for d in a["in_shape"])
    out_elements = math.prod(int(d) for d in op.out.shape)
    tile = winograd_tile(op)
    if tile is None:
        pixels = batch * h_out * w_out
        taps = kh * kw * c_in
        im2col, gemm_out = taps * pixels * groups, c_out * pixels * groups
        return ConvPlan("gemm", groups * _gemm_flops(pixels, c_out, taps),
                        (in_elements + im2col, 2 * gemm_out), (im2col + gemm_out) // groups)
    th, tw = tile
    tiles = batch * math.ceil(h_out / th) * math.ceil(w_out / tw)
    points = (th + kh - 1) * (tw + kw - 1)          # one GEMM per point of the transformed tile
    transformed_in = points * tiles * c_in * groups
    transformed_out = points * tiles * c_out * groups
    return ConvPlan(
        "winograd", groups * points * _gemm_flops(tiles, c_out, c_in),
        (2 * in_elements, in_elements + transformed_in, transformed_out + out_elements,
         2 * out_elements),
        (transformed_in + transformed_out + in_elements + out_elements) // groups)


def _gemm_flops(rows: int, columns: int, depth: int) -> float:
    """FLOPs sgemm_8x6 spends on a rows x depth by depth x columns product: whole blocks."""
    return (2.0 * _round_up(rows, GEMM_BLOCK_ROWS) * _round_up(columns, GEMM_BLOCK_COLUMNS)
            * depth)


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block
