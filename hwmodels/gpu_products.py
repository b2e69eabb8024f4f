"""The algorithms that could run a matrix-product op on a GPU, by its kind's GEMM role
(workloads/kinds: `GemmRole`): cuBLAS's GEMM (and its gemv-like kernel for a thin one) for a
"blas" kind, its strided-batched GEMM for a "batched" one, cuDNN's RNN steps for a
"recurrent" one (gpu_recurrent.py), SDPA's kernels for attention
(gpu_attention.py), cuDNN's algorithms for a convolution pass (gpu_conv.py, gpu_layout.py).
Each option's time is linear in 1/efficiency, which is what lets calibration fit the
efficiencies quickly; the model (gpu.py) picks the fastest, as cudnn.benchmark does.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Protocol

from workloads.graph import Op
from workloads.kinds import GemmRole

from . import cudnn_releases, gpu_conv, gpu_gemm, gpu_l2, gpu_layout
from . import gpu_attention as ga
from .gpu_recurrent import recurrent_option
from .specs import DeviceSpec


class GPUModel(Protocol):
    """What this module reads of gpu.GPUModel (not imported from there: gpu imports this
    module)."""
    spec: DeviceSpec
    cuda_version: tuple[int, int, int] | None
    cudnn_version: tuple[int, int, int] | None

    @property
    def sm_count(self) -> int: ...
    @property
    def sustained_clock_hz(self) -> float: ...
    def arithmetic_precision(self, op: Op) -> str: ...
    def attention_backend(self, op: Op) -> str: ...

# a convolution's GEMM pass -> gpu_conv's name for it
CONV_PASS = {"forward": "fwd", "grad_input": "dgrad", "grad_weight": "wgrad"}


class KernelOption(NamedTuple):
    """One algorithm that could run an op."""
    key: str               # the GpuFamily efficiency it runs at, or "stream" (fixed rate)
    unit_s: float          # its arithmetic seconds at efficiency 1
    traffic_bytes: float   # what it moves through DRAM
    algorithm: str         # cuDNN's name for it, lower case (gpu_memory.CONV_ALGORITHMS)
    kernels: float = 1     # kernels launched: each pays the GPU's gap between kernels
    # framework ops they are issued as: each pays the framework's host time, each further
    # kernel a bare launch (launch_queue.issue_s); both are fractions for an op that is a
    # share of one call over many (a layer's update in a multi-tensor optimizer step)
    framework_ops: float = 1
    serial_bytes: float = 0.0  # moved by kernels run before or after it (gpu_layout.py)
    serial_s: float = 0.0      # fixed seconds after its arithmetic (a scatter's L2 atomics)
    # its products' CTAs all fit in one round, each alone on its SM: they run at the
    # architecture's lone_cta share of the rate a CTA keeps among others (GpuFamily)
    lone: bool = False
    # a TN product's: both operands read along K, a 32-byte piece of each row of a tile at a
    # time, so its traffic moves at the architecture's strided_memory share (GpuFamily) ...
    strided: bool = False
    # ... and on a cuBLAS release whose TN kernels are slower (CublasRelease.slow_tn), its
    # arithmetic at the tn_gemm share
    slow_tn: bool = False
    # a cuBLAS kernel (GEMM or gemv), whose traffic moves at the architecture's gemm_memory
    # share, not cuDNN's `memory`
    cublas: bool = False


class _Units:
    """The part's arithmetic for one op: its precision's sustained peak over its SMs, with
    tensor-core padding where it runs on them."""

    def __init__(self, model: GPUModel, op: Op) -> None:
        arith = model.arithmetic_precision(op)
        self.arith, self.tensor = arith, arith != "fp32"
        self.peak = model.spec.sustained_peak_flops_for(arith)
        self.sms = model.sm_count
        self.cudnn = cudnn_releases.cudnn_release(model.spec.architecture, model.cudnn_version)

    def gemm(self, m: int, n: int, k: int, batch: int, split_k: bool = True,
             tiles: tuple[tuple[int, int], ...] = gpu_gemm.TILES, transposable: bool = True,
             n_sharing: int = 1, k_fill: float = gpu_gemm.K_FILL,
             k_slices: int = 1) -> gpu_gemm.GemmCost:
        if self.tensor:
            align = gpu_gemm.TENSOR_CORE_ALIGN
            n, k = gpu_gemm.align(n, align), gpu_gemm.align(k, align)
        return gpu_gemm.gemm_cost(m, n, k, batch, self.peak, self.sms, 1.0, split_k, tiles,
                                  transposable, n_sharing, k_fill, k_slices)

    def conv_gemm(self, m: int, n: int, k: int, batch: int, wgrad: bool,
                  n_sharing: int = 1, either_way: bool = True) -> gpu_gemm.GemmCost:
        """cuDNN's tiles (gpu_conv.CONV_TILES) at its release's fill; it splits the reduction
        only in the weight gradient (K = N*P*Q, long), whose GEMM sides (channels) go
        either way round where `either_way` (gpu_conv.wgrad_tiles_either_way), into as many
        slices as fill the SMs' rounds (gpu_conv.wgrad_splits): a split's slices run as
        independent GEMMs over a share of the reduction each, and their partial products go
        through memory."""
        transposable = wgrad and either_way
        cost = self.gemm(m, n, k, batch, split_k=wgrad, tiles=gpu_conv.CONV_TILES,
                         transposable=transposable, n_sharing=n_sharing,
                         k_fill=self.cudnn.fill())
        if not wgrad:
            return cost
        for split in gpu_conv.wgrad_splits(m, n, k, batch, self.sms):
            sliced = self.gemm(m, n, math.ceil(k / split), batch * split, split_k=False,
                               tiles=gpu_conv.CONV_TILES, transposable=transposable,
                               n_sharing=n_sharing, k_fill=self.cudnn.fill())
            if sliced.compute_s < cost.compute_s:
                cost = gpu_gemm.GemmCost(sliced.compute_s,
                                         gpu_conv.split_partial_bytes(m, n, batch, split),
                                         sliced.tile, split, sliced.rounds)
        return cost

    def fused_winograd(self, conv: gpu_conv.ConvProblem, pass_: str) -> tuple[float, int]:
        """(arithmetic seconds at efficiency 1, rounds) of cuDNN's fused Winograd, whose CTAs
        each compute one gpu_conv.FUSED_WINOGRAD_BLOCK, all its points, with its release's
        fill (CudnnRelease.fill): the busiest SM runs ceil(CTAs / SMs) of them."""
        block, points = gpu_conv.FUSED_WINOGRAD_BLOCK, gpu_conv.WINOGRAD_POINTS
        ctas, macs = conv.winograd_fused_blocks(pass_, block)
        tiles = block.rows * block.cols * block.images
        fill = tiles * block.channels * points * self.cudnn.fill(points)
        rounds = math.ceil(ctas / self.sms)
        return rounds * 2.0 * (macs + fill) / (self.peak / self.sms), rounds


def product_options(model: GPUModel, op: Op, role: GemmRole,
                    traffic: float) -> list[KernelOption]:
    """The algorithms that could run `op`, a kind of GEMM role `role`, moving at least
    `traffic` bytes (its own count, with the framework's extra passes)."""
    units = _Units(model, op)
    # the arithmetic runs at the clock the part sustains under load, not its rated boost
    fp32_peak = model.spec.sustained_peak_flops_for("fp32")
    if role.library == "batched":
        assert role.dims is not None
        cost = units.gemm(*role.dims(op))
        return [KernelOption("gemm", cost.compute_s, traffic + cost.extra_bytes, "gemm",
                             lone=cost.rounds == 1, cublas=True)]
    if role.library == "sdpa":
        backend = model.attention_backend(op)
        unit_s, extra, kernels = ga.attention_cost(op, backend, units.gemm, fp32_peak)
        return [KernelOption("gemm", unit_s, traffic + extra, backend, kernels)]
    if role.library == "blas":
        return _blas_options(model, op, role, traffic, units, fp32_peak)
    if role.library == "recurrent":
        assert role.schedule is not None
        # the framework's extra traffic (autocast's cast of the weights) on top of the steps'
        return [recurrent_option(op, role.schedule(op), model.spec.l2_bytes, units.gemm,
                                 KernelOption, traffic - float(op.bytes_moved))]
    return _conv_options(model, op, role, traffic, units, fp32_peak)


def _blas_options(model: GPUModel, op: Op, role: GemmRole, traffic: float, units: _Units,
                  fp32_peak: float) -> list[KernelOption]:
    assert role.dims is not None
    rows, cols, depth = role.dims(op)[:3]
    m, n, k, transposes = gpu_gemm.blas_call(role.gemm_pass, rows, cols, depth,
                                             op.attrs.get("cublas_transposes"))
    cublas = gpu_gemm.cublas_release(model.spec.architecture, model.cuda_version)
    tiles = gpu_gemm.TILES if units.tensor else cublas.tiles
    # a GEMM reads both operands and writes the product at least once, whatever the op's own
    # count leaves out (an input gradient's weight)
    elem = op.out.dtype_bytes
    traffic = max(traffic, float((m * k + n * k + m * n) * elem))
    wide_bytes = max(m, n) * k * elem
    if not units.tensor and not gpu_l2.fits(wide_bytes, model.spec.l2_bytes):
        # a narrow product's further passes over its wide operand, which the first pass
        # leaves in the L2 where it fits
        traffic += (cublas.wide_operand_reads(m, n) - 1) * wide_bytes
    cost = units.gemm(m, n, k, 1, tiles=tiles,
                      split_k=units.tensor or cublas.splits_k(m, n, k, transposes),
                      transposable=units.tensor or cublas.tiles_either_way(transposes),
                      k_slices=1 if units.tensor else cublas.slices(m, n))
    strided = transposes == "TN" and not units.tensor
    slow_tn = strided and cublas.slow_tn
    options = [KernelOption("gemm", cost.compute_s, traffic + cost.extra_bytes, "gemm",
                            lone=cost.rounds == 1, strided=strided, slow_tn=slow_tn,
                            cublas=True)]
    if cublas.has_gemv(m, n, transposes):
        # cuBLAS's gemv-like kernel: a library kernel that streams the wide operand once on
        # the CUDA cores, with no tile's padding
        options.append(KernelOption("gemm", op.flops / fp32_peak, traffic, "gemv",
                                    strided=strided, slow_tn=slow_tn, cublas=True))
    return options


def _conv_options(model: GPUModel, op: Op, role: GemmRole, traffic: float, units: _Units,
                  fp32_peak: float) -> list[KernelOption]:
    conv = gpu_conv.ConvProblem.from_attrs(op.attrs)
    pass_ = CONV_PASS[role.gemm_pass]
    if conv.is_thin_grouped:    # depthwise: a direct kernel on the CUDA cores
        return [KernelOption("stream", op.flops / fp32_peak, traffic, "direct")]
    wgrad, cudnn, tensor = pass_ == "wgrad", units.cudnn, units.tensor
    architecture = model.spec.architecture

    def offered(algorithm: str) -> bool:
        return cudnn.offers(algorithm, architecture, pass_, conv.kernel)

    cost = units.conv_gemm(*conv.implicit_gemm(pass_, cudnn.dgrad_stride_phases), wgrad=wgrad,
                           n_sharing=conv.wgrad_sharing if wgrad else 1,
                           either_way=gpu_conv.wgrad_tiles_either_way(conv.kernel,
                                                                      architecture))
    options = [KernelOption(f"conv_{pass_}", cost.compute_s, traffic + cost.extra_bytes,
                            "implicit_gemm", lone=cost.rounds == 1)]
    if wgrad and cudnn.wgrad_atomics:   # dW zeroed first, then added into with L2 atomics
        filter_elements = conv.wgrad_filter_elements
        atomics_s = filter_elements / (gpu_conv.l2_atomics_per_clock(architecture)
                                       * model.sustained_clock_hz)
        options[0] = options[0]._replace(kernels=2, serial_bytes=4.0 * filter_elements,
                                         serial_s=atomics_s)
    if pass_ == "dgrad":
        # the scatter (BWD_DATA_ALGO_0): dx zeroed by a kernel of its own, then each CTA adds
        # its product into dx as L2 atomics once its main loop ends, so dx's bytes (zeroed,
        # then written by the adds) follow the GEMM; only dy and the filter are read under its
        # arithmetic
        cost = units.conv_gemm(*conv.dgrad_scatter(), wgrad=False)
        atomics_s = conv.dgrad_scatter_atomics / (
            gpu_conv.l2_atomics_per_clock(architecture) * model.sustained_clock_hz)
        dx_bytes = float(op.out.nbytes)
        options.append(KernelOption("conv_dgrad", cost.compute_s, max(0.0, traffic - dx_bytes),
                                    "implicit_gemm", kernels=2, serial_bytes=2.0 * dx_bytes,
                                    serial_s=atomics_s, lone=cost.rounds == 1))
    if not tensor:
        elem = op.out.dtype_bytes
        for fused in [f for f in (True, False) if conv.winograd_ok(f)
                      and offered("winograd_fused" if f else "winograd_nonfused")]:
            if fused:   # in its own blocks (gpu_conv.FusedWinogradBlock), no extra traffic
                compute_s, rounds = units.fused_winograd(conv, pass_)
                options.append(KernelOption("winograd_fused", compute_s, traffic,
                                            "winograd_fused", lone=rounds == 1))
                continue
            wm, wn, wk, wb, transformed = conv.winograd(pass_, fused)
            cost = units.conv_gemm(wm, wn, wk, wb, wgrad=wgrad)
            options.append(KernelOption(
                "winograd", cost.compute_s, traffic + cost.extra_bytes + transformed * elem,
                "winograd_nonfused", kernels=gpu_conv.TRANSFORM_KERNELS,
                lone=cost.rounds == 1))
    whole = cudnn.fft_whole_image and conv.fft_whole_ok
    tiled = conv.fft_ok and offered("fft_tiling")
    for whole_image in [w for w, ok in ((False, tiled), (True, whole)) if ok and not tensor]:
        fm, fn, fk, fb, transformed = conv.fft(pass_, whole_image)
        # the per-frequency products run as batched complex GEMMs in cuBLAS-style tiles,
        # either way round: not the 128-pixel side of cuDNN's convolution tiles, which a
        # few image tiles per frequency would fill a fraction of (gpu_conv.fft)
        cost = units.gemm(fm, fn, fk, fb, split_k=wgrad, k_fill=cudnn.fill())
        if whole_image:
            # the transforms are kernels of their own: each spectrum is written by one before
            # or after the products (serial) and read by the products, under their arithmetic
            options.append(KernelOption("fft", 4.0 * cost.compute_s,  # a complex MAC: 4 real
                                        cost.extra_bytes + transformed / 2 * 4, "fft",
                                        kernels=gpu_conv.TRANSFORM_KERNELS,
                                        serial_bytes=traffic + transformed / 2 * 4,
                                        lone=cost.rounds == 1))
            continue
        options.append(KernelOption("fft", 4.0 * cost.compute_s,  # a complex MAC: 4 real
                                    traffic + cost.extra_bytes + transformed * 4,
                                    "fft_tiling", kernels=gpu_conv.TRANSFORM_KERNELS,
                                    lone=cost.rounds == 1))
    return gpu_layout.conv_options(op, options, units.arith)
