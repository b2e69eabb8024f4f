"""`tensor-parallel`: Megatron-LM's intra-layer model parallelism (Shoeybi et al. 2019,
section 3), with data parallelism over the groups.

The devices form groups of `tp` consecutive devices (one node's GPUs by default). In each
transformer block (the pairs the zoo marks: _tensor_split.py) the attention's query, key and
value projections are column-parallel, each rank holding 1/tp of the heads, which its
attention runs on; the output projection is row-parallel. The MLP's up (and gate) projections
are column-parallel, its down projection row-parallel. A rank holds 1/tp of those layers'
weights, gradients, optimizer state and activations, and does 1/tp of their FLOPs.
Communication, per block (Megatron's f and g operators): in the forward pass an all-reduce of
the row-parallel layer's output (batch x seq x hidden, in the activation dtype) after each of
the two row-parallel layers; in the backward pass an all-reduce of the input gradient of each
column-parallel group (after the sum of q, k and v's, or gate and up's, where they are
separate layers). Each blocks the ops that read its tensor: nothing overlaps it.

Replicated on every rank, whole: position embeddings, layer norms, residual adds, dropout on
the residual stream and the loss's own arithmetic. Their gradients are alike on every rank of
a group (replicated inputs), so no all-reduce is needed for them within it. A language
model's token embedding and output layer are split by vocabulary (`vocab_parallel`, the
default, as Megatron does; the vocabulary padded as Megatron pads it): the embedding's
partial lookups are all-reduced, the cross-entropy runs on each rank's logits with an
all-reduce of its maxima, target logits and sums over the shards, and the output layer's
input gradient is all-reduced. With `vocab_parallel` false they run whole on every rank.

The `devices / tp` groups train data-parallel: rank r of every group all-reduces its gradients
with rank r of the others in DDP's buckets (`bucket_mb`) as the backward pass makes them, on
one NCCL stream beside it, and the optimizer step waits for the last bucket, as in the
data-parallel policy. The batch of the workload is the batch of each group.

The collectives run on the cluster's links (NVLink/NVSwitch within a node, the node's NICs
and InfiniBand between nodes), as Megatron and PyTorch run them, on NCCL (`algorithm`
'nccl', the default: each as NCCL's tuning picks its algorithm and protocol; 'ring': one
Simple ring): Megatron keeps a group within a node, and a group that spans nodes is
simulated but warned about.

With `sequence_parallel` (Korthikanti et al. 2022) the residual stream between the split
layers (norms, residual adds, dropout: _tensor_split.sequence_region) is split along the
sequence, 1/tp of its activations and time per rank; each all-reduce becomes an all-gather
before the column-parallel layers and a reduce-scatter after the row-parallel one (the
converse in the backward pass), and the column layers' input is gathered again for their
weight gradients, as Megatron keeps only the shard. Where the split stream meets a replicated
op (the output layer; an embedding's gradient) the whole tensor is gathered.

Not modelled: the overlap of the backward collectives with the weight gradients that
Megatron's async options allow, the transient buffers of the gathered tensors, and the SMs
NCCL's kernels take from compute. The collectives (collective_bytes_per_step in the result's
extras: the bytes of the tensors they complete) are in _tensor_comm.py.
"""
from __future__ import annotations

import warnings

from hwmodels.specs import HardwareError
from workloads.training import lower_training

from ..collectives import FIDELITIES
from ..lowering import emit_ops, resident_bytes
from ..tasks import TaskGraph
from . import ConfigError, Option, Policy, parse_bool, register
from ._data_parallel import (
    algorithm_option,
    data_parallel_options,
    default_algorithm,
    record_algorithm,
)
from ._tensor_comm import TensorCollectives
from ._tensor_split import sequence_region, split_graph, split_pairs, vocab_layers


@register
class TensorParallel(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="tensor-parallel",
            description="Megatron-LM tensor parallelism: each transformer block's linear "
                        "layers split over tp GPUs, all-reduces of the activations "
                        "(sequence_parallel: all-gathers and reduce-scatters); "
                        "data-parallel over the groups.",
            options={
                "tp": Option(None, "GPUs per tensor-parallel group (default: one node's "
                                   "GPUs); it divides the devices and every attention's "
                                   "key/value heads", int, lambda v: v >= 1, "an integer >= 1"),
                "sequence_parallel": Option(False, "split the norms, residual adds and "
                                                   "dropout along the sequence, all-gathers "
                                                   "and reduce-scatters in place of the "
                                                   "all-reduces (Korthikanti et al. 2022)",
                                            parse_bool),
                "vocab_parallel": Option(True, "split a language model's token embedding "
                                               "and output layer by vocabulary, the loss "
                                               "over the shards (Megatron's default); false "
                                               "replicates them", parse_bool),
                **data_parallel_options("bucket_mb"),
                "collectives": Option(None, "'link' (every transfer a task: the default up "
                                            "to 64 devices) or 'flow' (closed form)", str,
                                      lambda v: v in FIDELITIES, "link or flow"),
                "algorithm": algorithm_option(),
            })

    def plan(self, graph, cluster, training: bool, *, tp, sequence_parallel, vocab_parallel,
             bucket_mb, collectives, algorithm) -> TaskGraph:
        ids = [d.id for d in cluster.devices]
        n = len(ids)
        tp = tp or len(cluster.node_members()[0])
        if n % tp:
            raise ConfigError(f"policy 'tensor-parallel' option 'tp': {tp} does not divide "
                              f"the {n} devices")
        if any(d.spec.kind != "gpu" for d in cluster.devices):
            raise HardwareError("policy 'tensor-parallel' runs on GPUs (NCCL's all-reduces); "
                                "this cluster has other devices")
        groups = [ids[k:k + tp] for k in range(0, n, tp)]
        node_of = {d.id: d.node for d in cluster.devices}
        spanning = [grp for grp in groups if len({node_of[d] for d in grp}) > 1]
        if spanning:
            warnings.warn(f"tensor-parallel group {spanning[0]} spans nodes: its all-reduces "
                          f"cross the network; Megatron keeps tp within a node", stacklevel=2)
        pairs = split_pairs(graph)
        share = split_graph(graph, tp, sequence_parallel, vocab_parallel)
        g = lower_training(share) if training else share
        fidelity = collectives or ("link" if n <= 64 else "flow")
        tg = TaskGraph(f"tensor-parallel:{graph.name}", meta={
            "samples": graph.batch * (n // tp), "fidelity": fidelity, "replicas": "all",
            "resident_bytes": {d: resident_bytes(g, training) for d in ids},
            "tensor_parallel": {"tp": tp, "dp": n // tp, "groups": groups,
                                "sequence_parallel": bool(sequence_parallel),
                                "vocab_parallel": bool(tp > 1 and vocab_parallel
                                                       and vocab_layers(graph)),
                                "collective_bytes": []}})
        comm = TensorCollectives(tg, cluster, groups, g, fidelity,
                                 algorithm or default_algorithm(cluster))
        region = sequence_region(graph, pairs) if sequence_parallel and tp > 1 else set()
        if region:
            comm.sequence_parallel(pairs, region, training)
        else:
            comm.all_reduces(pairs, training)
        vocab = vocab_layers(graph)
        if vocab_parallel and vocab is not None and tp > 1:
            comm.vocab(*vocab, region, training)
        fwd_bwd = [op for op in g.topo() if op.phase != "update"]
        for d in cluster.devices:
            emit_ops(tg, g, d, ops=fwd_bwd, prefix=f"{d.id}/", extra_deps=comm.extra[d.id])
        if not training:
            return tg
        synced = comm.gradients(bucket_mb)
        updates = [op for op in g.topo() if op.phase == "update"]
        for d in cluster.devices:
            emit_ops(tg, g, d, ops=updates, prefix=f"{d.id}/", priority_base=len(fwd_bwd),
                     extra_deps={op.name: (f"{d.id}/{op.inputs[0]}", *synced[d.id])
                                 for op in updates},
                     track_memory=False)
        return tg

    def finalize(self, result, graph, cluster, training: bool, **opts) -> None:
        info = result.log.meta.get("tensor_parallel", {})
        result.extras["tensor_parallel"] = {k: info.get(k) for k in
                                            ("tp", "dp", "sequence_parallel",
                                             "vocab_parallel")}
        result.extras["tensor_parallel"]["collective_bytes_per_step"] = sum(
            info.get("collective_bytes", ()))
        record_algorithm(result, cluster, opts["algorithm"])
