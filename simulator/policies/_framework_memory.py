"""Training memory as stock Caffe allocates it: the baseline of AccUDNN's "larger minibatch".

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

PyTorch's behaviour (free a tensor after its last reader, a caching allocator) is the
simulator's own memory model (simulator/lowering.py, hwmodels/gpu_memory.py).
"""
from __future__ import annotations

from workloads.graph import OpGraph

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
