"""How each framework launches and sums what the libraries do not: the pointwise ops it fuses,
whether its weight gradients accumulate, how it sums a tensor's gradient contributions, the
passes its own kernels make, and whether a layer's bias is an op of its own. GPUModel
(hwmodels/gpu.py) reads these; the published rows name the framework (docs/gpu-validation.md).
"""
from __future__ import annotations

import math

from workloads.graph import Op
from workloads.kinds import kind_of
from workloads.kinds.loss_update import optimizer_step

from .gpu_constants import DEFAULT_FRAMEWORK
from .gpu_products import KernelOption

# Pointwise kinds a framework folds into the kernel before them, so they move no memory of
# their own: NVIDIA's MXNet containers run ResNets' batch norms as fused NHWC BatchNorm+ReLU and
# BatchNorm+Add+ReLU kernels (forward and backward); XLA fuses elementwise ops into their
# producers. PyTorch, Torch7 and TensorFlow without XLA launch each op as its own kernel.
FUSED_POINTWISE = {
    "mxnet": frozenset({"relu", "relu_grad", "add"}),
    "tensorflow-xla": frozenset({"relu", "relu_grad", "add"}),
}
# Frameworks whose weight-gradient kernels add into the gradient buffer (beta = 1 in cuDNN's and
# cuBLAS's calls, nn's accGradParameters in Torch7), so each also reads the old gradient;
# PyTorch's first backward after zero_grad(set_to_none=True) writes a new one.
ACCUMULATING_FRAMEWORKS = frozenset({"torch7"})
# How a framework sums the gradient contributions of a tensor that several ops read
# (grad_accumulate of k parts). PyTorch's autograd adds each contribution after the first into
# the input buffer as it arrives (torch/csrc/autograd/input_buffer.cpp): k - 1 adds, each
# reading two tensors and writing one. Torch7's containers (nn.ConcatTable, nn.Concat: a
# residual fork, an Inception module's input) copy their first module's gradInput into their
# own and add each other one in place. TensorFlow's AddN and MXNet's ElementWiseSum sum all k
# in one kernel (k reads, one write: the op's own count).
PAIRWISE_SUM_FRAMEWORKS = frozenset({"pytorch", "torch7"})
COPY_FIRST_FRAMEWORKS = frozenset({"torch7"})
# Passes over the activation a kernel makes where it reads each input more than once (PyTorch's
# CUDA kernels): batch norm in training reduces the statistics in one pass and normalises in
# another; its gradient reduces (dy, x) and then applies. The passes after the first come from
# DRAM only where the inputs do not fit in the L2 (gpu_l2.extra_passes).
READ_PASSES = {"batchnorm": 2.0, "batchnorm_grad": 2.0, "layernorm_grad": 2.0,
               "groupnorm": 2.0, "groupnorm_grad": 2.0}
# A convolution's or linear layer's bias (a product with weights, by its kind's GEMM role) runs
# as kernels of its own in training: cudnn.torch calls cudnnAddTensor after
# cudnnConvolutionForward and cudnnConvolutionBackwardBias (a reduction of dy over N, H, W)
# beside the weight gradient; PyTorch adds it in a broadcast kernel (addmm's copy of the bias
# into the output for linear) and reduces dy.sum() for its gradient; TensorFlow's BiasAdd and
# BiasAddGrad are ops of their own. XLA fuses the forward add into the convolution's custom
# call.
BIAS_ADD_FUSED_FRAMEWORKS = frozenset({"tensorflow-xla"})
# Frameworks whose max-pool gradient also reads the pool's output y: cuDNN's
# cudnnPoolingBackward takes y, dy and x (it finds each window's maximum by comparing x with
# y), which Torch7's cudnn.SpatialMaxPooling and MXNet's cuDNN pooling operator call, and
# TensorFlow's MaxPoolGrad takes orig_input, orig_output and the gradient alike. PyTorch's
# kernel reads the argmax its forward saved instead of x or y; XLA's select-and-scatter reads
# x and dy.
POOL_OUTPUT_READ_FRAMEWORKS = frozenset({"torch7", "tensorflow", "mxnet"})
# Frameworks whose bias add and bias gradient are ops of their own (TensorFlow's BiasAdd and
# BiasAddGrad), issued with the framework's host time; elsewhere the library or the op's C++
# launches them inside the convolution or product op (cudnn.torch's module, MXNet's cuDNN
# operator, PyTorch's at::convolution and addmm), a bare launch each.
BIAS_OP_FRAMEWORKS = frozenset({"tensorflow", "tensorflow-xla"})
# Frameworks that copy a gradient slice that is not contiguous in memory (a concat input's
# share of dy: a channel slice of a batch, workloads/kinds/backward_rules.route) into a tensor
# of its own before the op that reads it, with the framework ops that copy is issued as.
# cudnn.torch's modules make a non-contiguous gradOutput contiguous from Lua before calling
# cuDNN (cudnn.ReLU's updateGradInput, SpatialConvolution's makeContiguous): a bare launch
# inside the module. TensorFlow's concat gradient slices dy with a Slice op per input, an op
# of its own. PyTorch's elementwise kernels read the strided view as it is.
SLICE_COPY_FRAMEWORKS = {"torch7": 0, "tensorflow": 1}
# How a framework steps the optimizer (each layer's update op, workloads/kinds/loss_update.py):
# - "multi-tensor": PyTorch's torch.optim on GPUs (its default foreach implementation since 2.0)
#   makes the step's calls (OptimizerStep.passes) once for every parameter, each one framework
#   op that launches a kernel per MULTI_TENSOR_MAX_TENSORS[depth] tensors (multi_tensor_apply's
#   depth_to_max_tensors) and moves its lists once: more traffic than the step's minimum, few
#   launches;
# - "for-loop": torch.optim's single-tensor implementation (foreach=False: the default before
#   PyTorch 2.0, and off CUDA), where the update op says so (attrs optimizer_loop, set by the
#   training lowering): a Python loop over the parameters makes the same calls tensor by
#   tensor, each a framework op of one kernel (1.x's Adam splits its lerp_ into mul_ and add_:
#   one call fewer per tensor than it ran);
# - "per-tensor": TensorFlow's ApplyMomentum / ApplyAdam and MXNet's sgd_mom_update run one
#   fused kernel per tensor, each an op of the framework.
# A step marked fused_optimizer (apex's FusedAdam, as Megatron-LM runs it) is one multi-tensor
# call of the step's minimum traffic, whatever the framework.
OPTIMIZER_STEP = {"tensorflow": "per-tensor", "tensorflow-xla": "per-tensor",
                  "mxnet": "per-tensor"}
DEFAULT_OPTIMIZER_STEP = "multi-tensor"
# Frameworks whose optimizer has that loop (torch.optim); elsewhere the attribute changes nothing.
FOR_LOOP_FRAMEWORKS = frozenset({"pytorch"})
MULTI_TENSOR_MAX_TENSORS = {1: 110, 2: 64, 3: 48, 4: 36, 5: 30}


def optimizer_implementation(op: Op, framework: str | None) -> str:
    """How `framework` runs the update op `op`: "fused", "multi-tensor", "for-loop" or
    "per-tensor" (OPTIMIZER_STEP)."""
    if op.attrs.get("fused_optimizer"):
        return "fused"
    if op.attrs.get("optimizer_loop") and (framework or DEFAULT_FRAMEWORK) in FOR_LOOP_FRAMEWORKS:
        return "for-loop"
    return OPTIMIZER_STEP.get(framework or "", DEFAULT_OPTIMIZER_STEP)


def optimizer_step_option(op: Op, framework: str | None, fp32_peak_flops: float) -> KernelOption:
    """A layer's update as the framework runs the optimizer's step (optimizer_implementation):
    its traffic, and its share (by tensors) of the kernels and framework ops the whole step's
    calls make."""
    step, tensors = optimizer_step(op), int(op.attrs.get("tensors", 1))
    step_tensors = max(int(op.attrs.get("step_tensors", tensors)), tensors, 1)
    share = tensors / step_tensors
    arithmetic_s = op.flops / fp32_peak_flops
    how = optimizer_implementation(op, framework)
    if how == "fused":
        calls: tuple[tuple[int, int, int], ...] = (
            (step.tensors_read, step.tensors_written, step.tensors_read),)
    elif how == "per-tensor":
        return KernelOption("stream", arithmetic_s,
                            (step.tensors_read + step.tensors_written) * op.param_bytes,
                            "elementwise", kernels=tensors, framework_ops=tensors)
    else:
        calls = step.passes
    moved = sum(read + written for read, written, _ in calls) * op.param_bytes
    if how == "for-loop":
        per_tensor = len(calls) * tensors
        return KernelOption("stream", arithmetic_s, moved, "elementwise",
                            kernels=per_tensor, framework_ops=per_tensor)
    launches = sum(math.ceil(step_tensors / MULTI_TENSOR_MAX_TENSORS[min(depth, 5)])
                   for _, _, depth in calls)
    return KernelOption("stream", arithmetic_s, moved, "elementwise",
                        kernels=launches * share, framework_ops=len(calls) * share)


def optimizer_temp_scope(op: Op, framework: str | None) -> str | None:
    """How long the parameter-sized temporaries of the step (OptimizerStep.temp_tensors) live:
    "step" where one multi-tensor call makes them for every parameter at once (foreach Adam's
    exp_avg_sq_sqrt, kept until the last call), "op" where the for-loop makes one tensor's at a
    time, None where the step makes none (fused kernels, or an optimizer without any)."""
    if not optimizer_step(op).temp_tensors:
        return None
    return {"multi-tensor": "step", "for-loop": "op"}.get(
        optimizer_implementation(op, framework))


def pairwise_sum_option(op: Op, framework: str | None, fp32_peak_flops: float) -> KernelOption:
    """A gradient's k contributions summed as PAIRWISE_SUM_FRAMEWORKS do: k - 1 adds (two
    reads and a write each), after a copy of the first where the framework makes one
    (COPY_FIRST_FRAMEWORKS)."""
    size, adds = float(op.out.nbytes), len(op.in_specs) - 1
    copies = int(framework in COPY_FIRST_FRAMEWORKS)
    return KernelOption("stream", op.flops / fp32_peak_flops, (3.0 * adds + 2.0 * copies) * size,
                        "elementwise", kernels=adds + copies, framework_ops=adds + copies)


def with_slice_copy(op: Op, framework: str | None,
                    options: list[KernelOption]) -> list[KernelOption]:
    """Where the op reads a strided slice of its gradient (attrs dy_strided) and the
    framework copies one first (SLICE_COPY_FRAMEWORKS): a copy kernel that reads and writes
    the slice, at the framework's streaming share before a streaming op, as serial traffic
    before a library kernel."""
    own_ops = SLICE_COPY_FRAMEWORKS.get(framework or "")
    if own_ops is None or not op.attrs.get("dy_strided") or not op.in_specs:
        return options
    moved = 2.0 * float(op.in_specs[0].nbytes)
    return [o._replace(traffic_bytes=o.traffic_bytes + moved, kernels=o.kernels + 1,
                       framework_ops=o.framework_ops + own_ops) if o.key == "stream" else
            o._replace(serial_bytes=o.serial_bytes + moved, kernels=o.kernels + 1,
                       framework_ops=o.framework_ops + own_ops)
            for o in options]


def bias_pass(op: Op, framework: str | None) -> tuple[float, int]:
    """(bytes moved, kernels) of the separate kernel that adds a layer's bias (reads and
    writes the output) or reduces its gradient (reads dy once); (0, 0) without a bias, or
    where the framework fuses the add (BIAS_ADD_FUSED_FRAMEWORKS)."""
    role = kind_of(op.kind).gemm_role
    if (role is None or not role.weights or role.gemm_pass == "grad_input"
            or not op.attrs.get("bias")):
        return 0.0, 0
    a = op.attrs
    if role.gemm_pass == "forward":
        if framework in BIAS_ADD_FUSED_FRAMEWORKS:
            return 0.0, 0
        return 2.0 * float(op.out.nbytes), 1
    elem = op.in_specs[0].dtype_bytes if op.in_specs else op.out.dtype_bytes
    if role.library == "conv":
        n, cout, ho, wo = a["out_shape"]
        dy_elements = n * cout * ho * wo
    else:
        dy_elements = a["batch_rows"] * a["out_features"]
    return float(dy_elements * elem), 1


def with_bias_pass(op: Op, framework: str | None,
                   options: list[KernelOption]) -> list[KernelOption]:
    """A product's algorithms with its bias kernel (bias_pass) added to each, as serial
    traffic; an op of the framework's own where it issues one (BIAS_OP_FRAMEWORKS)."""
    moved, kernels = bias_pass(op, framework)
    if not kernels:
        return options
    own_ops = kernels if framework in BIAS_OP_FRAMEWORKS else 0
    return [o._replace(serial_bytes=o.serial_bytes + moved, kernels=o.kernels + kernels,
                       framework_ops=o.framework_ops + own_ops) for o in options]
