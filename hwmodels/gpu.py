"""GPU model: each op as the library kernel PyTorch would launch for it.

    op_time_s = max(max(compute_s, memory_s) + kernel_overhead_s, host_s)  (views: 0)

for an op issued alone; ops issued one after another on a stream (a training step) queue
instead: the host issues each as soon as it has issued the one before, the GPU runs it once
it is issued and the one before is done (stream_times_s).

- Convolutions and matrix products: cuDNN's / cuBLAS's algorithms, tiles and waves
  (gpu_gemm.py, gpu_conv.py), in the arithmetic the op's precision selects on this part
  (`arithmetic_precision`), at the architecture's efficiencies.
- Everything else streams memory: bytes at the bandwidth the framework's own streaming
  kernels reach (the part's mem_efficiency times the framework's stream_memory), or FP32
  CUDA-core arithmetic where that binds.
- kernel_overhead_s: the gap a GPU leaves between dependent kernels (launch, prologue, tail),
  per architecture; host_s: the framework's host time per op it issues (host_overhead_s, per
  framework: PyTorch unless a model says otherwise), plus a bare launch (kernel_launch_s) for
  each further kernel a library launches inside that op. Launches are asynchronous, so the host
  runs ahead of the GPU through long kernels and the GPU waits only where the host has fallen
  behind: over a stretch of ops the time tends to max(host, GPU), not their sum.
- Streaming kernels (norms, activations, pooling, copies, the optimizer) are the framework's
  own code: the share of bandwidth they reach belongs to the framework (Torch7's and NVIDIA's
  PyTorch kernels differ more than architectures do). cuDNN's convolutions move their traffic
  at the architecture's `memory` share, cuBLAS's GEMMs at its `gemm_memory` share.

A part's numbers (SMs, clock, peak per precision, bandwidth) come from its datasheet
(catalog/gpus.toml), its arithmetic at the clock it sustains under load (sustained_clock_hz:
the peaks scale with it, bandwidth does not); the architecture's efficiencies and overhead from
catalog/gpu_families.toml, which says what they were fitted to. An architecture with no fit
takes the `default` family there. A calibrated Profile still overrides all of it where it has
measured the op (model.py).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from workloads.graph import Op
from workloads.kinds import kind_of
from workloads.precision import HALF_FORMAT, PRECISIONS, precision_of

from . import gpu_attention as ga
from . import model_efficiency
from .gpu_constants import (
    DEFAULT_FRAMEWORK,
    FAMILIES_FILE,
    Framework,
    GpuFamily,
    builtin_families,
    builtin_frameworks,
    load_families,
    load_frameworks,
)
from .gpu_frameworks import (
    ACCUMULATING_FRAMEWORKS,
    FUSED_POINTWISE,
    PAIRWISE_SUM_FRAMEWORKS,
    POOL_OUTPUT_READ_FRAMEWORKS,
    READ_PASSES,
    optimizer_step_option,
    optimizer_temp_scope,
    pairwise_sum_option,
    with_bias_pass,
    with_slice_copy,
)
from .gpu_l2 import L2Reuse, extra_passes
from .gpu_memory import kernel_launch_s
from .gpu_products import KernelOption, product_options
from .gpu_recurrent import issued_in_one_call
from .launch_queue import issue_s, queued_times_s
from .model import DeviceModel
from .specs import HardwareError

__all__ = ["DEFAULT_FRAMEWORK", "FAMILIES_FILE", "Framework", "GpuFamily", "GPUModel",
           "KernelOption", "builtin_families", "builtin_frameworks", "load_families",
           "load_frameworks"]
# a part's `efficiency` table (cost families of families.py) -> the GpuFamily field it sets
SPEC_EFFICIENCY_FIELDS = {"conv": "conv_fwd", "conv_grad_input": "conv_dgrad",
                          "conv_grad_weight": "conv_wgrad", "matmul": "gemm"}
# GPUModel.chosen_option's kept choices: (id of the op, ids of the model's settings) ->
# (op, settings, choice); a few steps' worth of ops
CHOICES_KEPT = 1 << 15
# architectures without tensor cores (specs.GPU_ARCHITECTURES before Volta)
PRE_TENSOR_CORE_ARCHITECTURES = frozenset({"kepler", "maxwell", "pascal"})
_CHOSEN_OPTIONS: dict[tuple[int, ...], tuple[Op, tuple, KernelOption]] = {}

_GENERIC = model_efficiency.table("gpu")


class GPUModel(DeviceModel):
    kind = "gpu"
    # the generic curve of model.py, used only where a caller asks for it by name; the op
    # time of an uncalibrated GPU comes from the kernel model below
    DEFAULT_EFFICIENCY = _GENERIC.efficiency
    DEFAULT_HALF_EFFICIENCY_TIME_S = _GENERIC.half_efficiency_time_s
    DEFAULT_MEM_EFFICIENCY = _GENERIC.mem_efficiency
    GROUPS_SATURATION_CHANNELS = _GENERIC.groups_saturation_channels
    GROUPS_LOG_PENALTY = _GENERIC.groups_log_penalty

    families: dict[str, GpuFamily] | None = None   # override (calibration) or the catalog's
    frameworks: dict[str, Framework] | None = None
    framework: str | None = DEFAULT_FRAMEWORK    # None: kernels timed alone, no host
    # the CUDA whose cuBLAS runs FP32 GEMMs (gpu_gemm.cublas_release); None: the one the
    # architecture's published tables ran with
    cuda_version: tuple[int, int, int] | None = None
    # the cuDNN whose kernels run convolutions (cudnn_releases.cudnn_release); None: the one
    # the architecture's published tables ran with
    cudnn_version: tuple[int, int, int] | None = None

    @property
    def copy_engines(self) -> int:
        return self.spec.copy_engines

    @property
    def host_link(self) -> str | None:
        return self.spec.host_link

    # -- the part ------------------------------------------------------------------------
    @property
    def family_constants(self) -> GpuFamily:
        """The architecture's constants, with the part's own `efficiency` table (catalog or
        --hardware-option) taking precedence where it names a GEMM family."""
        families = self.families if self.families is not None else builtin_families()
        arch = self.spec.architecture
        fam = families.get(arch or "default", families["default"])
        overrides = {field: self.spec.efficiency[family]
                     for family, field in SPEC_EFFICIENCY_FIELDS.items()
                     if family in self.spec.efficiency}
        return replace(fam, **overrides) if overrides else fam

    @property
    def sm_count(self) -> int:
        # a part without an SM count is costed as one with the V100's FLOP/s per SM
        return self.spec.sm_count or max(1, round(self.peak_flops / 196e9))

    @property
    def sustained_clock_hz(self) -> float:
        """The SM clock under load; a part without a clock is taken to run the V100's 128
        FP32 FLOPs per SM per clock."""
        clock = self.spec.sustained_clock_hz or self.spec.clock_hz
        return clock or self.spec.sustained_peak_flops_for("fp32") / (self.sm_count * 128)

    @property
    def launch_overhead_s(self) -> float:
        return self.family_constants.kernel_overhead_s

    @property
    def framework_constants(self) -> Framework | None:
        """The framework's host time and streaming share; None for kernels timed alone."""
        if self.framework is None:
            return None
        table = self.frameworks if self.frameworks is not None else builtin_frameworks()
        return table.get(self.framework, table[DEFAULT_FRAMEWORK])

    @property
    def host_overhead_s(self) -> float:
        fw = self.framework_constants
        return 0.0 if fw is None else fw.host_overhead_s

    @property
    def kernel_launch_s(self) -> float:
        """The host's seconds for a bare kernel launch inside a framework op
        (catalog/gpu_runtime.toml [launch]); 0 for kernels timed alone."""
        return 0.0 if self.framework is None else kernel_launch_s()

    @property
    def stream_memory(self) -> float:
        """What the framework's own streaming kernels reach of the part's mem_efficiency
        (1 for kernels timed alone: no framework)."""
        fw = self.framework_constants
        return 1.0 if fw is None else fw.stream_memory

    def supported_precisions(self) -> tuple[str, ...]:
        """Training precisions this part runs: FP16 storage works everywhere (computed in
        FP32 where the part has no tensor cores); TF32 and BF16 need Ampere's units."""
        peaks = self.spec.peak_flops_by_precision
        return tuple(p for p in PRECISIONS
                     if p in ("fp32", "fp16", "amp-fp16")
                     or (p == "tf32" and "tf32" in peaks)
                     or (p in ("bf16", "amp-bf16") and "bf16" in peaks))

    def arithmetic_precision(self, op: Op) -> str:
        """The arithmetic an op runs in here: FP32 CUDA cores, or a tensor-core format."""
        precision = precision_of(op)
        if precision not in self.supported_precisions():
            raise HardwareError(f"device {self.name!r} cannot train in {precision}; it can "
                                f"in: {', '.join(self.supported_precisions())}")
        if not self.is_product(op):
            return "fp32"
        peaks = self.spec.peak_flops_by_precision
        cudnn = self.runs_cudnn(op)
        if precision == "tf32" or (precision == "fp32" and cudnn and "tf32" in peaks):
            return "tf32"          # PyTorch's default: cudnn.allow_tf32 = True
        if precision in HALF_FORMAT:
            half = HALF_FORMAT[precision]
            # PyTorch runs half convolutions and GEMMs with an FP32 compute type (cuDNN's
            # PSEUDO_HALF_CONFIG: ATen's cudnn ConvolutionDescriptor sets a FLOAT math type for
            # HALF data; cuBLAS's GEMMs with CUBLAS_COMPUTE_32F), as TensorFlow does by
            # default. Tensor cores run that at their listed rate; the P100's packed FP16
            # (half2) is FP16-accumulate math the FP32 compute type does not use, so there, as
            # on parts with no fast FP16, half storage computes at the FP32 rate.
            tensor_cores = self.spec.architecture not in PRE_TENSOR_CORE_ARCHITECTURES
            return half if tensor_cores and peaks.get(half, 0.0) > peaks["fp32"] else "fp32"
        return "fp32"

    # -- op time -------------------------------------------------------------------------
    @property
    def fused_kinds(self) -> frozenset[str]:
        """Kinds the framework folds into the kernel before them (FUSED_POINTWISE)."""
        return FUSED_POINTWISE.get(self.framework or "", frozenset())

    def curve_time_s(self, op: Op) -> float:
        """The op issued alone: its GPU time, or its host time where that is longer."""
        device_s, host_s = self.device_and_host_s(op)
        return max(device_s, host_s)

    def device_and_host_s(self, op: Op, l2_hit_bytes: float = 0.0) -> tuple[float, float]:
        """(GPU seconds, host seconds) of an op: its fastest algorithm's time on the GPU, and
        the framework's host time to issue that algorithm's kernels. l2_hit_bytes: of its
        reads, those the L2 serves (gpu_l2.L2Reuse)."""
        if self.passes_through(op):
            return 0.0, 0.0
        fam = self.family_constants
        best = self.chosen_option(op)
        return (self.option_time_s(best, fam, self.tensor_cores(op), l2_hit_bytes),
                self.issue_s(best))

    def passes_through(self, op: Op) -> bool:
        """Whether the op launches no kernel of its own: a view, or a kind the framework folds
        into the kernel before it."""
        return op.is_view or op.kind in self.fused_kinds

    def issue_s(self, option: KernelOption) -> float:
        """The host's seconds to issue an algorithm's kernels: the framework's host time per
        framework op, a bare launch for each further kernel (launch_queue.issue_s)."""
        return issue_s(option.kernels, option.framework_ops, self.host_overhead_s,
                       self.kernel_launch_s)

    def stream_times_s(self, ops: Sequence[Op], step_bytes: float | None = None,
                       queue: dict | None = None) -> list[float]:
        """Each op's seconds on one stream when the framework issues `ops` in this order,
        ahead of the GPU (hwmodels/launch_queue.py; queue: the stream's state between calls).
        An op a calibrated profile has measured takes its measured time (which holds its
        launch) and no host time of its own."""
        reuse = L2Reuse(self.spec.l2_bytes, queue)

        def device_and_host_s(op: Op) -> tuple[float, float]:
            # op_time_s also checks the kind and counts profile hits and fallbacks
            measured_s = self.op_time_s(op, step_bytes)
            hit_bytes = reuse.hit_bytes(op, self.passes_through(op))
            if self.profile is not None and self.profile.covers(op.kind):
                return measured_s, 0.0
            return self.device_and_host_s(op, hit_bytes)
        return queued_times_s(ops, device_and_host_s, self.framework, queue)

    def option_time_s(self, option: KernelOption, fam: GpuFamily, tensor: bool,
                      l2_hit_bytes: float = 0.0) -> float:
        """max(arithmetic, memory) of one algorithm at the architecture's efficiencies, plus
        the gap each of its kernels leaves (what cudnn.benchmark's timing sees)."""
        arithmetic_s, memory_s, serial_memory_s = self.work_terms_s(option, fam, tensor,
                                                                    l2_hit_bytes)
        return (max(arithmetic_s, memory_s) + serial_memory_s + option.serial_s
                + option.kernels * fam.kernel_overhead_s)

    def work_terms_s(self, option: KernelOption, fam: GpuFamily, tensor: bool,
                     l2_hit_bytes: float = 0.0) -> tuple[float, float, float]:
        """(arithmetic, memory, serial memory) seconds of one algorithm: its work takes the
        larger of the first two, then the third and its fixed serial_s. l2_hit_bytes of its
        reads come from the L2, not DRAM."""
        share = (self.stream_memory if option.key == "stream"
                 else (fam.gemm_memory if option.cublas else fam.memory)
                 * (fam.strided_memory if option.strided else 1.0))
        bandwidth = self.mem_bandwidth_Bps * self.mem_efficiency * share
        scale = ((fam.tensor_core if tensor else 1.0) * (fam.lone_cta if option.lone else 1.0)
                 * (fam.tn_gemm if option.slow_tn else 1.0))
        arithmetic_s = (option.unit_s if option.key == "stream"
                        else option.unit_s / (getattr(fam, option.key) * scale))
        serial_s = option.serial_bytes / (self.mem_bandwidth_Bps * self.mem_efficiency
                                          * fam.memory)
        dram_bytes = max(0.0, option.traffic_bytes - l2_hit_bytes)
        return arithmetic_s, dram_bytes / bandwidth, serial_s

    def chosen_option(self, op: Op) -> KernelOption:
        """The algorithm that runs `op`: the fastest, as cudnn.benchmark picks it."""
        # An op is costed several times per step (its time, its host time, its workspace), on
        # each device of a cluster (one model each, alike) and again by a policy that lowers a
        # step more than once: each op object's choice is kept with the settings it was made
        # under (a model's are set once, after it is made), for every model with the same.
        settings = (type(self), self.spec, self.families, self.frameworks, self.framework,
                    self.cuda_version, self.cudnn_version)
        key = (id(op), *map(id, settings))
        hit = _CHOSEN_OPTIONS.get(key)
        if hit is not None:
            return hit[2]
        fam, tensor = self.family_constants, self.tensor_cores(op)
        best = min(self.kernel_options(op), key=lambda o: self.option_time_s(o, fam, tensor))
        if len(_CHOSEN_OPTIONS) >= CHOICES_KEPT:
            _CHOSEN_OPTIONS.clear()
        # the entry holds the op and the settings, so the ids in its key name no other object
        # while it is kept
        _CHOSEN_OPTIONS[key] = (op, settings, best)
        return best

    def workspace_bytes(self, op: Op) -> int:
        """cuDNN's scratch memory for the algorithm that runs a convolution pass (0 for any
        other op): hwmodels/gpu_memory.py."""
        if op.is_view or not self.runs_convolution(op):
            return 0
        from .gpu_memory import conv_workspace_bytes
        algorithm = self.chosen_option(op).algorithm
        return conv_workspace_bytes(op, algorithm) if algorithm != "direct" else 0

    def optimizer_temp_scope(self, op: Op) -> str | None:
        """How long the step's temporaries live (gpu_frameworks.optimizer_temp_scope), for
        the memory model (simulator/lowering.py)."""
        return optimizer_temp_scope(op, self.framework)

    def efficiency(self, op: Op) -> float:
        """Share of this op's rated (datasheet) arithmetic peak it reaches (its FLOPs over
        time x peak); below the family's efficiency where the part sustains less than its
        rated clock."""
        if op.is_view or op.flops <= 0:
            return 0.0
        peak = self.spec.peak_flops_for(self.arithmetic_precision(op))
        return op.flops / (self.curve_time_s(op) * peak)

    @staticmethod
    def is_product(op: Op) -> bool:
        """Whether the op is matrix products (its kind has a GEMM role: a tensor-core format
        applies to it)."""
        return kind_of(op.kind).gemm_role is not None

    @staticmethod
    def runs_cudnn(op: Op) -> bool:
        """Whether cuDNN runs the op (a convolution pass, a recurrent layer's steps or its
        input projection, attrs["in_cudnn_rnn"]; not a cell's step, attrs["cell"]: cuBLAS), so
        that cudnn.allow_tf32 (on by default) lets FP32 run as TF32."""
        role = kind_of(op.kind).gemm_role
        return role is not None and (role.library == "conv" or bool(op.attrs.get("in_cudnn_rnn"))
                                     or role.library == "recurrent" and not op.attrs.get("cell"))

    @staticmethod
    def runs_convolution(op: Op) -> bool:
        """Whether cuDNN runs the op (a convolution pass)."""
        role = kind_of(op.kind).gemm_role
        return role is not None and role.library == "conv"

    def tensor_cores(self, op: Op) -> bool:
        return self.is_product(op) and self.arithmetic_precision(op) != "fp32"

    def attention_backend(self, op: Op) -> str:
        """The SDPA backend PyTorch runs an attention op (or its gradient) on here."""
        shape = ga.AttentionShape(op)
        return ga.sdpa_backend(self.spec.architecture, self.arithmetic_precision(op),
                               shape.head_dim)

    def kernel_options(self, op: Op) -> list[KernelOption]:
        """The algorithms that could run `op`. The time of each is linear in 1/efficiency,
        which is what lets calibration fit the efficiencies quickly."""
        traffic = float(op.bytes_moved)
        if op.kind in READ_PASSES:
            traffic += extra_passes(op, READ_PASSES[op.kind], self.spec.l2_bytes)
        role = kind_of(op.kind).gemm_role
        if precision_of(op).startswith("amp-") and role is not None:
            # autocast's cast of the FP32 weight (or buffer) to half: 4 bytes read, 2 written
            traffic += role.autocast_cast_elements(op) * 6.0
        if role is not None and role.weight_gradient and self.framework in ACCUMULATING_FRAMEWORKS:
            traffic += op.out.nbytes       # the gradient so far, read to be added to
        if op.kind == "maxpool_grad" and self.framework in POOL_OUTPUT_READ_FRAMEWORKS:
            traffic += op.in_specs[0].nbytes   # y, which has dy's shape
        # streaming arithmetic runs at the clock the part sustains under load
        fp32_peak = self.spec.sustained_peak_flops_for("fp32")
        if op.kind == "grad_accumulate" and self.framework in PAIRWISE_SUM_FRAMEWORKS:
            return [pairwise_sum_option(op, self.framework, fp32_peak)]
        if kind_of(op.kind).phase == "update":
            return [optimizer_step_option(op, self.framework, fp32_peak)]
        if role is None:
            options = [KernelOption("stream", op.flops / fp32_peak, traffic, "elementwise")]
        else:
            options = with_bias_pass(op, self.framework,
                                     product_options(self, op, role, traffic))
        return with_slice_copy(op, self.framework, issued_in_one_call(op, options))
