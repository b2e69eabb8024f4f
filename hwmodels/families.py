"""Op-kind families: the unit at which a device model's efficiency is set.

Every kind of the IR (workloads.graph.ALL_KINDS) is mapped here explicitly, so a new kind added
to the IR without a decision about its cost fails loudly (see DeviceModel.family) instead of
silently taking some default.
"""
from __future__ import annotations

# Why these groups: kernels in one family share a library implementation and therefore a
# fraction of peak they reach (cuDNN implicit GEMM for conv, cuBLAS SGEMM for linear, one
# memory-streaming kernel for elementwise ops, ...). Gradients of conv are separate families
# because cuDNN/MKL-DNN use different algorithms for them (see the device models).
KIND_FAMILY: dict[str, str] = {
    # views: no arithmetic, no traffic; costed 0 before any family lookup matters
    "input": "view", "flatten": "view", "dropout": "view", "slice": "view",
    # convolution (forward, and the two gradients)
    "conv2d": "conv",
    "conv2d_grad_input": "conv_grad_input",
    "conv2d_grad_weight": "conv_grad_weight",
    # matrix products (fully connected layers)
    "linear": "matmul",
    "linear_grad_input": "matmul_grad",
    "linear_grad_weight": "matmul_grad",
    # streaming elementwise arithmetic
    "relu": "elementwise", "relu_grad": "elementwise", "add": "elementwise",
    "grad_accumulate": "elementwise",
    # normalisation: a reduction over N,H,W then an elementwise pass
    "batchnorm": "normalization", "batchnorm_grad": "normalization",
    # pooling (window reductions) and their scatter-like gradients
    "maxpool": "pooling", "avgpool": "pooling", "adaptive_avgpool": "pooling",
    "maxpool_grad": "pooling", "avgpool_grad": "pooling", "adaptive_avgpool_grad": "pooling",
    # pure data movement with strided access (copies, no arithmetic)
    "concat": "data_movement", "channel_shuffle": "data_movement",
    "channel_shuffle_grad": "data_movement",
    "pad_channels": "data_movement",  # ResNet option-A shortcut: strided subsample + zero pad
    # loss: softmax + cross entropy, a small reduction per sample
    "softmax_xent": "loss", "softmax_xent_grad": "loss",
    # optimizer step over the parameters
    "sgd_update": "update",
}

FAMILIES: frozenset[str] = frozenset(KIND_FAMILY.values())

# Families whose efficiency is scaled down for grouped convolutions (attrs["groups"] > 1).
CONV_FAMILIES: frozenset[str] = frozenset({"conv", "conv_grad_input", "conv_grad_weight"})
