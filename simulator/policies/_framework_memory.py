"""Training memory as frameworks that allocate a net's buffers once hold it: stock Caffe (the
baseline of AccUDNN's "larger minibatch") and Torch7's nn. Both keep what they allocate for the
whole step; `plan_static_footprint` is the plan both policies share.

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
them. cuDNN workspaces (at most 8 MiB per conv layer by default) and the data layer's prefetch
batches are left out: the footprint is a lower bound of Caffe's.

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
index tensor). Weights, their gradients and the optimizer's state are resident.
fb.resnet.torch's `-shareGradInput` (models/init.lua, `M.shareGradInput`) points the gradInput
of every module of one type at one storage, grown to the largest gradInput of that type, and
the ConcatTables' at two storages used alternately: outputs stay, gradInputs shrink to a few
tensors. cudnn.torch's shared convolution workspace is left out: the footprint is a lower
bound of Torch7's.

PyTorch's behaviour (free a tensor after its last reader, a caching allocator) is the
simulator's own memory model (simulator/lowering.py, hwmodels/gpu_memory.py).
"""
from __future__ import annotations

from workloads.graph import Op, OpGraph
from workloads.training import lower_training

from ..cluster import Cluster
from ..lowering import emit_ops, resident_bytes
from ..tasks import TaskGraph

# Forward ops whose output shares its input's blob in a Caffe prototxt.
CAFFE_IN_PLACE = frozenset({"relu", "batchnorm", "dropout"})
# Layer-internal buffers, in units of the op's output size (see the module docstring).
CAFFE_LAYER_BUFFERS = {"batchnorm": 3, "maxpool": 1, "dropout": 1}


def caffe_blob_bytes(graph: OpGraph) -> int:
    """Activations: the data and diff of every top blob, the input's data (forward graph)."""
    total = 0
    for op in graph.topo():
        if op.kind == "input":
            total += op.out.nbytes
        elif op.phase == "forward" and not op.is_view and op.kind not in CAFFE_IN_PLACE:
            total += 2 * op.out.nbytes
    return total


def caffe_layer_buffer_bytes(graph: OpGraph) -> int:
    """BatchNorm's and in-place Scale's copies, max pooling's indices, dropout's masks
    (Caffe's float and int32: 4 bytes an element)."""
    return sum(CAFFE_LAYER_BUFFERS[op.kind] * op.out.numel * 4 for op in graph.topo()
               if op.phase == "forward" and op.kind in CAFFE_LAYER_BUFFERS)


def caffe_param_bytes(graph: OpGraph) -> int:
    """Weights, their diffs and the SGD momentum history."""
    return 3 * sum(op.param_bytes for op in graph.topo() if op.phase == "forward")


def caffe_training_bytes(graph: OpGraph) -> int:
    """Stock Caffe's footprint of one training step of `graph` (its batch), runtime excluded."""
    return caffe_blob_bytes(graph) + caffe_layer_buffer_bytes(graph) + caffe_param_bytes(graph)


# -- Torch7 ----------------------------------------------------------------------------------
# Forward ops whose module Torch7's model zoos build in place: ReLU(true), CAddTable(true).
TORCH7_IN_PLACE = frozenset({"relu", "add"})


def _forward_ops(graph: OpGraph) -> list[Op]:
    return [op for op in graph.topo() if op.phase == "forward"]


def _gradient_bytes(graph: OpGraph, tensor: str) -> int:
    """Bytes of the gradient of `tensor`; 0 for the image (no gradient is propagated to it)."""
    op = graph.op(tensor)
    return 0 if op.kind == "input" else op.out.nbytes


def _own_buffers(op: Op) -> bool:
    """Whether a Torch7 module for `op` has an output and a gradInput of its own."""
    return op.kind != "input" and not op.is_view and op.kind not in TORCH7_IN_PLACE


# Bytes per output element a Torch7 module keeps besides its output: max pooling's indices.
TORCH7_LAYER_BUFFERS = {"maxpool": 8}


def torch7_output_bytes(graph: OpGraph) -> int:
    """Every module's output that is not its input's storage, max pooling's indices, and the
    image."""
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
    """Torch7's footprint of one training step of `graph` (its batch), runtime excluded."""
    return (torch7_output_bytes(graph) + torch7_grad_input_bytes(graph, share_grad_input)
            + resident_bytes(graph, training=True))


# -- the plan both policies share -----------------------------------------------------------
def plan_static_footprint(name: str, graph: OpGraph, cluster: Cluster,
                          footprint_bytes: int) -> TaskGraph:
    """Plain training on the cluster's first device whose memory is `footprint_bytes`,
    allocated by a zero-time set-up task before the first op (as Caffe's Net::Init and
    Torch7's first forward do), so that the engine runs out of memory there when it does not
    fit; the ops then run one after another and allocate nothing of their own."""
    g = lower_training(graph)
    dev = cluster.devices[0]
    tg = TaskGraph(f"{name}:{graph.name}", meta={"samples": graph.batch})
    setup = tg.new(f"{name}.net_init", dev.compute, 0.0, alloc={dev.id: footprint_bytes},
                   category="compute", device=dev.id)
    emit_ops(tg, g, dev, track_memory=False,
             extra_deps={op.name: [setup.name] for op in g.topo()})
    return tg
