"""The arithmetic each cuDNN algorithm does for a convolution (hwmodels/gpu_conv.py), held
against the direct count for any shape: implicit GEMM does exactly the direct multiplies,
Winograd and FFT tiling their reduced counts, the strided data gradient's gather covers
every filter tap once over its stride phases; and the whole-image FFT of the releases that have
it, with the spectra its workspace holds."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import gpu_conv, model_for
from hwmodels.cudnn_benchmark import supports
from hwmodels.gpu_memory import conv_workspace_bytes
from workloads.builder import GraphBuilder


@st.composite
def convolutions(draw, max_kernel: int = 7, max_stride: int = 3, groups: bool = True,
                 square_kernels: tuple[int, ...] = ()):
    """A convolution whose output size follows from its input, filter, stride and padding
    (a square filter of one of `square_kernels` where given)."""
    if square_kernels:
        r = s = draw(st.sampled_from(square_kernels))
    else:
        r, s = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    sh, sw = draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))
    g = draw(st.sampled_from((1, 2, 4))) if groups else 1
    c, k = g * draw(st.integers(1, 48)), g * draw(st.integers(1, 48))
    h, w = draw(st.integers(r, 40)), draw(st.integers(s, 40))
    ph, pw = draw(st.integers(0, r // 2)), draw(st.integers(0, s // 2))
    p, q = (h + 2 * ph - r) // sh + 1, (w + 2 * pw - s) // sw + 1
    return gpu_conv.ConvProblem(draw(st.integers(1, 16)), c, k, (h, w), (p, q), (r, s),
                                (sh, sw), (1, 1), g)


def direct_macs(conv: gpu_conv.ConvProblem) -> int:
    """Multiply-adds of the direct convolution: N*P*Q x K x C/g x R*S."""
    (p, q), (r, s) = conv.out_hw, conv.kernel
    return (conv.batch * p * q * conv.out_channels * conv.in_channels // conv.groups * r * s)


def gemm_macs(m: int, n: int, k: int, batch: int) -> int:
    return m * n * k * batch


@settings(max_examples=200, deadline=None)
@given(convolutions())
def test_the_forward_and_weight_gradient_gemms_do_the_direct_count(conv):
    assert gemm_macs(*conv.implicit_gemm("fwd")) == direct_macs(conv)
    assert gemm_macs(*conv.implicit_gemm("wgrad")) == direct_macs(conv)


@settings(max_examples=200, deadline=None)
@given(convolutions(groups=False))
def test_the_scatter_does_the_direct_count_and_one_atomic_per_contribution(conv):
    """BWD_DATA_ALGO_0: each output pixel's gradient times the filter, N*P*Q x C*R*S
    contributions of K products each."""
    assert gemm_macs(*conv.dgrad_scatter()) == direct_macs(conv)
    (p, q), (r, s) = conv.out_hw, conv.kernel
    assert conv.dgrad_scatter_atomics == conv.batch * p * q * conv.in_channels * r * s


@settings(max_examples=200, deadline=None)
@given(convolutions(groups=False))
def test_the_stride_phases_share_out_every_filter_tap_once(conv):
    """The gather's busiest phase runs at least an even share of the R*S taps and at most all
    of them; without stride phases every input pixel runs all R*S taps."""
    (r, s), (sh, sw) = conv.kernel, conv.stride
    pixels, taps = conv._dgrad_gather(stride_phases=True)
    assert pixels == conv.batch * conv.in_hw[0] * conv.in_hw[1]
    phases = min(sh, r) * min(sw, s)
    assert math.ceil(r * s / phases) <= taps <= r * s
    assert taps == math.ceil(r / sh) * math.ceil(s / sw)
    assert conv._dgrad_gather(stride_phases=False) == (pixels, r * s)
    assert conv.implicit_gemm("dgrad", stride_phases=False)[2] >= conv.implicit_gemm("dgrad")[2]


@settings(max_examples=200, deadline=None)
@given(convolutions(max_stride=1, groups=False, square_kernels=(3, 5)), st.booleans())
def test_winograd_does_fewer_multiplies_by_its_tiles_ratio(conv, fused):
    """F(m x m, r x r) does alpha^2 products per m^2 outputs of r^2 taps (alpha = m + r - 1):
    the direct count times alpha^2 / (m^2 r^2), plus the outputs that pad the last tiles,
    for every pass. The fused kernel takes 3x3 filters only."""
    assert conv.winograd_ok(fused) == (not fused or conv.kernel == (3, 3))
    if not conv.winograd_ok(fused):
        return
    out_tile, r = (2 if fused else 4), conv.kernel[0]
    alpha = out_tile + r - 1
    for pass_ in ("fwd", "dgrad", "wgrad"):
        m, n, k, points, transformed = conv.winograd(pass_, fused)
        assert points == alpha * alpha
        hw = conv.in_hw if pass_ == "dgrad" else conv.out_hw
        covered = conv.batch * (math.ceil(hw[0] / out_tile) * out_tile
                                * math.ceil(hw[1] / out_tile) * out_tile)
        assert gemm_macs(m, n, k, points) * out_tile ** 2 == (
            covered * conv.in_channels * conv.out_channels * alpha * alpha)
        assert (transformed == 0) == fused   # only the non-fused one goes through memory


@settings(max_examples=200, deadline=None)
@given(convolutions(max_kernel=7, max_stride=2))
def test_fft_tiling_runs_stride_1_single_group_filters_smaller_than_its_tile(conv):
    ok = conv.fft_ok
    assert ok == (conv.stride == (1, 1) and conv.groups == 1 and max(conv.kernel) > 1)
    if not ok:
        return
    m, n, k, freqs, transformed = conv.fft("fwd")
    assert freqs == gpu_conv.FFT_TILE * (gpu_conv.FFT_TILE // 2 + 1)
    assert (n, k) == (conv.out_channels, conv.in_channels) and transformed > 0
    tile_h, tile_w = (gpu_conv.FFT_TILE - r + 1 for r in conv.kernel)
    (p, q) = conv.out_hw
    assert m == conv.batch * math.ceil(p / tile_h) * math.ceil(q / tile_w)


def conv_op(batch, channels, filters, size, kernel, pad=None, stride=1):
    b = GraphBuilder("c", input_shape=(channels, size, size), batch=batch)
    b.flatten(b.conv2d(b.input(), filters, kernel, stride=stride,
                       padding=kernel // 2 if pad is None else pad, name="conv"))
    return b.build().op("conv")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 32), st.integers(1, 32), st.integers(3, 40),
       st.sampled_from((1, 3, 5)), st.integers(0, 3), st.sampled_from((1, 2)))
def test_whole_image_fft_takes_what_cudnn_and_its_workspace_take(batch, channels, filters,
                                                                   size, kernel, pad, stride):
    """cuDNN's FFT runs where cudnn_benchmark.supports offers it, and its spectra (input,
    filter and output at the padded size, each written and read once) are gpu_memory's FFT
    workspace twice over."""
    pad = min(pad, kernel)
    if size + 2 * pad < kernel:
        return
    op = conv_op(batch, channels, filters, size, kernel, pad, stride)
    conv = gpu_conv.ConvProblem.from_attrs(op.attrs)
    assert conv.fft_whole_ok == supports(op, "fft")
    if conv.fft_whole_ok:
        transformed = conv.fft("fwd", whole_image=True)[4]
        assert transformed * op.out.dtype_bytes == 2 * conv_workspace_bytes(op, "fft")


@pytest.mark.parametrize("cudnn,offered", [((5, 1, 10), True), ((6, 0, 21), False),
                                           ((7, 6, 2), False)])
def test_cudnn_5_runs_fft_on_whole_images(cudnn, offered):
    """DeepBench's M40 ran 8 x 128 x 56 x 56 -> 256 (3x3) as FFT on cuDNN 5 in 7.37 ms, two
    to four times what Winograd or FFT tiling take: the time of moving the 0.5 GB spectrum of
    the K x C filters, written by a transform kernel before the products start. cuDNN 6's FFT
    ran the layer in 0.8 ms on the Titan Xp, a quarter of what those spectra need, so the
    model offers whole-image FFT in cuDNN 5 only."""
    op = conv_op(8, 128, 256, 56, 3)
    m40 = model_for("m40")
    m40.framework, m40.cudnn_version = None, cudnn
    options = {o.algorithm: o for o in m40.kernel_options(op)}
    assert ("fft" in options) == offered
    if not offered:
        return
    fft = options["fft"]
    filter_spectrum_bytes = 256 * 128 * 58 * (58 // 2 + 1) * 2 * 4
    assert fft.serial_bytes >= filter_spectrum_bytes
    seconds = {a: m40.option_time_s(o, m40.family_constants, False) for a, o in options.items()}
    assert 7.37e-3 / 2 < seconds["fft"] < 7.37e-3 * 2
    assert max(seconds["fft_tiling"], seconds["winograd_fused"]) < 7.37e-3 / 2


@settings(max_examples=200, deadline=None)
@given(convolutions(max_stride=1, groups=False, square_kernels=(3,)),
       st.sampled_from(["fwd", "dgrad"]))
def test_fused_winograd_blocks_cover_every_tile_and_channel(conv, pass_):
    """cuDNN 5 and 6's fused F(2x2, 3x3) CTAs (gpu_conv.FusedWinogradBlock) do at least the
    16 products per tile and channel pair of the layer, exactly that where the tiles,
    images and channels fill whole blocks."""
    block = gpu_conv.FUSED_WINOGRAD_BLOCK
    ctas, macs = conv.winograd_fused_blocks(pass_, block)
    (h, w) = conv.in_hw if pass_ == "dgrad" else conv.out_hw
    out = conv.in_channels if pass_ == "dgrad" else conv.out_channels
    reduced = conv.out_channels if pass_ == "dgrad" else conv.in_channels
    needed = 16 * conv.batch * math.ceil(h / 2) * math.ceil(w / 2) * out * reduced
    assert ctas * macs >= needed
    whole = (math.ceil(h / 2) % block.rows == 0 and math.ceil(w / 2) % block.cols == 0
             and conv.batch % block.images == 0 and out % block.channels == 0)
    assert (ctas * macs == needed) == whole
