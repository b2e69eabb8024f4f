"""Training memory as stock Caffe allocates it: the baseline of AccUDNN's "larger minibatch".

Caffe (BVLC, 1.0) sets a net up once: every layer's top blob holds its data and its gradient
(diff) for the whole net, and nothing is freed or reused between layers. Layers that the
prototxt runs in place (ReLU, batch norm with its Scale, dropout, as the ResNet prototxts of
He et al. write them) share their bottom blob; reshaping layers (Flatten) share it too. The
input blob has data only (no gradient is propagated to it). Every parameter has its data, its
diff and the SGD momentum history. Layer-internal buffers (batch norm's normalised copy, an
in-place Scale's saved input) and cuDNN workspaces (8 MiB per conv layer by default) are left
out, so the footprint is a lower bound of Caffe's.

PyTorch's behaviour (free a tensor after its last reader, a caching allocator) is the
simulator's own memory model (simulator/lowering.py, hwmodels/gpu_memory.py).
"""
from __future__ import annotations

from workloads.graph import OpGraph

# Forward ops whose output shares its input's blob in a Caffe prototxt.
CAFFE_IN_PLACE = frozenset({"relu", "batchnorm", "dropout"})


def caffe_blob_bytes(graph: OpGraph) -> int:
    """Activations: the data and diff of every top blob, the input's data (forward graph)."""
    total = 0
    for op in graph.topo():
        if op.kind == "input":
            total += op.out.nbytes
        elif op.phase == "forward" and not op.is_view and op.kind not in CAFFE_IN_PLACE:
            total += 2 * op.out.nbytes
    return total


def caffe_param_bytes(graph: OpGraph) -> int:
    """Weights, their diffs and the SGD momentum history."""
    return 3 * sum(op.param_bytes for op in graph.topo() if op.phase == "forward")


def caffe_training_bytes(graph: OpGraph) -> int:
    """Stock Caffe's footprint of one training step of `graph` (its batch), runtime excluded."""
    return caffe_blob_bytes(graph) + caffe_param_bytes(graph)
