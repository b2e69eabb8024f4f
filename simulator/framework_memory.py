"""What a framework keeps allocated during a training step: a scenario setting that every policy
runs under, independent of the technique (`framework_memory`, docs/gpu-memory.md).

- `pytorch` (the default): autograd frees each tensor after its last reader and the CUDA
  caching allocator holds the freed blocks (simulator/lowering.py, hwmodels/gpu_memory.py).
- `cudnn`: a framework that calls cuDNN directly and frees each layer's buffers after their
  last reader, as vDNN's memory manager does (Rhu et al., MICRO 2016); PyTorch's rules except
  where cuDNN's API says otherwise (below).
- `caffe` and `torch7`: the framework allocates the net's buffers once and keeps them for the
  whole step. `emit_ops` (simulator/lowering.py) then adds one zero-time set-up task per device
  that allocates the footprint below (as Caffe's Net::Init and Torch7's first forward do), so
  the engine runs out of memory there when it does not fit; the ops allocate nothing of their
  own; the weights, their gradients and the optimizer's state are allocated there too.
  `torch7:share-grad-input` is fb.resnet.torch's -shareGradInput.

## cuDNN called directly

What differs from PyTorch is what cuDNN's calls read and allow:
- max pooling keeps no indices: `cudnnPoolingBackward` takes y, dy and x and finds each
  window's maximum again, so the pool's gradient reads (and keeps alive, or has offloaded) its
  input and its output (workloads.training.CUDNN_SAVES), and the forward keeps nothing else;
- every ReLU runs in place where nothing else reads its input: `cudnnActivationForward`
  allows y to be x, and `cudnnActivationBackward` then takes that one buffer as both;
- convolution workspaces as under PyTorch: each convolution holds, while it runs, the
  workspace of the algorithm chosen for it (`cudnnGetConvolution*Algorithm`'s choice is
  modelled as the GPU model's), none where that does not fit (the algorithms that need none).
Everything else is PyTorch's: each tensor freed after its last reader, dropout's mask (cuDNN
4 has no dropout; the framework's own kernel keeps a byte per element), and the pool the
buffers come from counted as the CUDA caching allocator's blocks and segments (a framework's
own pool, vDNN's included, is not described closely enough to model otherwise).

A policy runs under caffe or torch7 only if it runs the whole graph on each device once per
step and frees nothing early (`Policy.any_framework_memory`); a policy that offloads, recomputes
or splits the graph needs a framework that frees tensors, and is refused by name.

## Caffe

Caffe (BVLC, 1.0) sets a net up once: every layer's top blob holds its data and its gradient
(diff) for the whole net, and nothing is freed or reused between layers. Layers that the
prototxt runs in place (ReLU, batch norm with its Scale, dropout, as the ResNet prototxts of
He et al. write them) share their bottom blob; reshaping layers (Flatten) share it too. The
input blob has data only (no gradient is propagated to it). Every parameter has its data, its
diff and the SGD momentum history. Layers also hold buffers of their own, allocated at set-up
like the blobs (Caffe's layer sources):
- BatchNorm: `x_norm_` (the normalised output, kept for backward) and `temp_`, each the size of
  its input; the Scale layer after it, run in place, keeps a copy of its input in `temp_`:
  three activation-sized buffers per batch norm (dnnsim's batchnorm is Caffe's BatchNorm and
  Scale together);
- max pooling: `max_idx_`, an int32 per output element;
- dropout: `rand_vec_`, a uint32 mask per element.
Gradients of those buffers are never touched, so Caffe's lazy allocation never allocates
them. cuDNN workspaces (at most 8 MiB per conv layer by default), the data layer's prefetch
batches and the loss layer's blobs are left out: the footprint is a lower bound of Caffe's.

## Torch7

Torch7's nn (2016-17) keeps in every module an `output` and a `gradInput` for the whole step:
nothing is freed between iterations. Modules built in place share their input's storage
(`ReLU(true)`, and `nn.CAddTable(true)` which fb.resnet.torch closes each residual block
with): their output is their input and their gradInput is their gradOutput. `nn.View`
(flatten) is a view of both. A tensor that several modules read is forked by an
`nn.ConcatTable`, whose gradInput (the sum of its branches') is one more tensor of its size.
fb.resnet.torch sets the first layer's gradInput to nil (no gradient for the image). Batch
norm (`nn.SpatialBatchNormalization`) keeps its own output and gradInput (its saved mean and
standard deviation, one float per channel, are left out); max pooling
(`nn.SpatialMaxPooling`) also keeps the index of each output's maximum, an int64 (THCUNN's
index tensor); `nn.Dropout` (not in place by default) keeps its output, its gradInput and its
`noise` mask, a float per element, whichever graph (forward or lowered) is measured. Weights,
their gradients and the optimizer's state are resident.
fb.resnet.torch's `-shareGradInput` (models/init.lua, `M.shareGradInput`) points the gradInput
of every module of one type at one storage, grown to the largest gradInput of that type, and
the ConcatTables' at two storages used alternately: outputs stay, gradInputs shrink to a few
tensors. cudnn.torch's shared convolution workspace and the criterion's buffers are left out:
the footprint is a lower bound of Torch7's.
"""
from __future__ import annotations

from dataclasses import dataclass

from workloads.graph import Op, OpGraph
from workloads.training import CUDNN, FRAMEWORK_MEMORY_META, OPTIMIZER_STATE_PER_PARAM

from . import policies
from .policies import ConfigError, Policy

FRAMEWORK_MEMORIES = ("pytorch", CUDNN, "caffe", "torch7")
DEFAULT_FRAMEWORK_MEMORY = "pytorch"
# frameworks that allocate as they go and free each tensor after its last reader
FREEING = frozenset({"pytorch", CUDNN})
SHARE_GRAD_INPUT = "share-grad-input"
# graph.meta key holding the framework memory a graph trains under (its text form)
META_KEY = FRAMEWORK_MEMORY_META
CHOICES = "pytorch, cudnn, caffe, torch7, torch7:share-grad-input"


@dataclass(frozen=True)
class FrameworkMemory:
    """A framework's memory behaviour; `text` is its scenario form ("torch7:share-grad-input")."""
    name: str = DEFAULT_FRAMEWORK_MEMORY
    share_grad_input: bool = False

    @classmethod
    def parse(cls, text: object) -> "FrameworkMemory":
        if not isinstance(text, str):
            raise ConfigError(f"framework_memory must be text ({CHOICES}), got {text!r}")
        name, _, option = text.strip().lower().partition(":")
        if name not in FRAMEWORK_MEMORIES:
            raise ConfigError(f"unknown framework_memory {text!r}; known: {CHOICES}")
        if option and (name, option) != ("torch7", SHARE_GRAD_INPUT):
            raise ConfigError(f"framework_memory {text!r}: {name} has no option {option!r} "
                              f"(known: {CHOICES})")
        return cls(name, bool(option))

    @property
    def text(self) -> str:
        return f"{self.name}:{SHARE_GRAD_INPUT}" if self.share_grad_input else self.name

    @property
    def static(self) -> bool:
        """Whether the framework allocates the net's buffers once for the whole step."""
        return self.name not in FREEING


def framework_memory_of(graph: OpGraph) -> FrameworkMemory:
    return FrameworkMemory.parse(graph.meta.get(META_KEY, DEFAULT_FRAMEWORK_MEMORY))


def with_framework_memory(graph: OpGraph, framework: FrameworkMemory) -> OpGraph:
    """The graph stamped with `framework` (a copy; the caller's graph keeps its own)."""
    if framework_memory_of(graph) == framework:
        return graph
    out = graph.copy()
    out.meta[META_KEY] = framework.text
    return out


def check_policy(policy: Policy, framework: FrameworkMemory, training: bool) -> None:
    """A clear error where `policy` cannot run under `framework`."""
    if not framework.static:
        return
    if not training:
        raise ConfigError(f"framework_memory {framework.text!r} models a training step; "
                          "inference runs under pytorch")
    if not policy.any_framework_memory:
        able = [n for n in policies.names() if policies.get(n).any_framework_memory]
        raise ConfigError(
            f"policy {policy.name!r} cannot run under framework_memory {framework.text!r}: "
            f"{framework.name} allocates every buffer of the net once, while {policy.name!r} "
            f"frees, moves or splits tensors during the step; policies that can: "
            f"{', '.join(able)}")


def static_footprint_bytes(graph: OpGraph, framework: FrameworkMemory) -> int:
    """What a framework that allocates once holds for a step of `graph` (forward or lowered),
    weights, gradients and optimizer state excluded (the plan's resident bytes, which emit_ops
    allocates with it)."""
    if framework.name == "caffe":
        return caffe_blob_bytes(graph) + caffe_layer_buffer_bytes(graph)
    if framework.name == "torch7":
        return torch7_output_bytes(graph) + torch7_grad_input_bytes(
            graph, framework.share_grad_input)
    raise ConfigError(f"framework_memory {framework.text!r} allocates as it goes, not once")


def _forward_ops(graph: OpGraph) -> list[Op]:
    """The net's forward layers; the loss (which training adds) is left out."""
    return [op for op in graph.topo() if op.phase == "forward" and op.kind != "softmax_xent"]


# -- Caffe -----------------------------------------------------------------------------------
# Forward ops whose output shares its input's blob in a Caffe prototxt.
CAFFE_IN_PLACE = frozenset({"relu", "batchnorm", "dropout"})
# Layer-internal buffers, in units of the op's output size (see the module docstring).
CAFFE_LAYER_BUFFERS = {"batchnorm": 3, "maxpool": 1, "dropout": 1}


def caffe_blob_bytes(graph: OpGraph) -> int:
    """Activations: the data and diff of every top blob, the input's data."""
    total = 0
    for op in _forward_ops(graph):
        if op.kind == "input":
            total += op.out.nbytes
        elif not op.is_view and op.kind not in CAFFE_IN_PLACE:
            total += 2 * op.out.nbytes
    return total


def caffe_layer_buffer_bytes(graph: OpGraph) -> int:
    """BatchNorm's and in-place Scale's copies, max pooling's indices, dropout's masks
    (Caffe's float and int32: 4 bytes an element)."""
    return sum(CAFFE_LAYER_BUFFERS[op.kind] * op.out.numel * 4 for op in _forward_ops(graph)
               if op.kind in CAFFE_LAYER_BUFFERS)


def caffe_param_bytes(graph: OpGraph) -> int:
    """Weights, their diffs and the SGD momentum history."""
    return 3 * sum(op.param_bytes for op in _forward_ops(graph))


def caffe_training_bytes(graph: OpGraph) -> int:
    """Stock Caffe's footprint of one training step of `graph` (its batch), runtime excluded."""
    return caffe_blob_bytes(graph) + caffe_layer_buffer_bytes(graph) + caffe_param_bytes(graph)


# -- Torch7 ----------------------------------------------------------------------------------
# Forward ops whose module Torch7's model zoos build in place: ReLU(true), CAddTable(true).
TORCH7_IN_PLACE = frozenset({"relu", "add"})
# Bytes per output element a Torch7 module keeps besides its output: max pooling's indices,
# dropout's noise.
TORCH7_LAYER_BUFFERS = {"maxpool": 8, "dropout": 4}


def _gradient_bytes(graph: OpGraph, tensor: str) -> int:
    """Bytes of the gradient of `tensor`; 0 for the image (no gradient is propagated to it)."""
    op = graph.op(tensor)
    return 0 if op.kind == "input" else op.out.nbytes


def _own_buffers(op: Op) -> bool:
    """Whether a Torch7 module for `op` has an output and a gradInput of its own (a dropout
    does in training, where a forward graph holds it as an identity view)."""
    return op.kind != "input" and (op.kind == "dropout" or not op.is_view) \
        and op.kind not in TORCH7_IN_PLACE


def torch7_output_bytes(graph: OpGraph) -> int:
    """Every module's output that is not its input's storage, max pooling's indices,
    dropout's noise, and the image."""
    return sum(op.out.nbytes + TORCH7_LAYER_BUFFERS.get(op.kind, 0) * op.out.numel
               for op in _forward_ops(graph) if op.kind == "input" or _own_buffers(op))


def _fork_gradients(graph: OpGraph) -> list[int]:
    """Bytes of each ConcatTable's gradInput: one per tensor that several modules read."""
    readers: dict[str, int] = {}
    for op in _forward_ops(graph):
        for t in op.inputs:
            readers[t] = readers.get(t, 0) + 1
    return [_gradient_bytes(graph, t) for t in sorted(readers) if readers[t] > 1]


def torch7_grad_input_bytes(graph: OpGraph, share_grad_input: bool = False) -> int:
    """Every module's gradInput (of its inputs' sizes), the ConcatTables' included; with
    `share_grad_input`, one storage per module type (the largest) and two for the
    ConcatTables."""
    per_module = [(op.kind, sum(_gradient_bytes(graph, t) for t in op.inputs))
                  for op in _forward_ops(graph) if _own_buffers(op)]
    forks = _fork_gradients(graph)
    if not share_grad_input:
        return sum(b for _, b in per_module) + sum(forks)
    largest: dict[str, int] = {}
    for kind, nbytes in per_module:
        largest[kind] = max(largest.get(kind, 0), nbytes)
    return sum(largest.values()) + min(len(forks), 2) * max(forks, default=0)


def torch7_training_bytes(graph: OpGraph, share_grad_input: bool = False) -> int:
    """Torch7's footprint of one training step of `graph` (its batch), runtime excluded:
    outputs, gradInputs, and weights with their gradients and SGD momentum."""
    weights = sum(op.param_bytes for op in _forward_ops(graph))
    state = OPTIMIZER_STATE_PER_PARAM["sgd-momentum"]
    return (torch7_output_bytes(graph) + torch7_grad_input_bytes(graph, share_grad_input)
            + weights * (2 + state))
