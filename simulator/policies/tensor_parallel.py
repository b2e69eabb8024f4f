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

Replicated on every rank, whole: embeddings, layer norms, residual adds, dropout on the
residual stream, the output layer (its vocabulary is not split: Megatron's vocabulary-parallel
embedding, output layer and cross-entropy are not modelled, so the output layer costs each
rank the whole of it) and the loss. Their gradients are alike on every rank of a group
(replicated inputs), so no all-reduce is needed for them within it.

The `devices / tp` groups train data-parallel: rank r of every group all-reduces its gradients
with rank r of the others in DDP's buckets (`bucket_mb`) as the backward pass makes them, on
one NCCL stream beside it, and the optimizer step waits for the last bucket, as in the
data-parallel policy. The batch of the workload is the batch of each group.

The collectives run on the cluster's links (NVLink/NVSwitch within a node, the node's NICs
and InfiniBand between nodes): Megatron keeps a group within a node, and a group that spans
nodes is simulated but warned about.

Not modelled: sequence parallelism (Korthikanti et al. 2022), the overlap of the backward
all-reduce with the weight gradient computation that Megatron's async options allow, and the
SMs NCCL's kernels take from compute.
"""
from __future__ import annotations

import warnings

from hwmodels.specs import HardwareError
from workloads.training import lower_training

from ..collectives import FIDELITIES, NCCL_BASE_LATENCY_S, collective
from ..lowering import emit_ops, resident_bytes
from ..tasks import TaskGraph
from . import ConfigError, Option, Policy, register
from ._data_parallel import data_parallel_options, ddp_groups
from ._sync_group import MIB
from ._tensor_split import split_graph, split_pairs

Deps = dict[str, tuple[str, ...]]


@register
class TensorParallel(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="tensor-parallel",
            description="Megatron-LM tensor parallelism: each transformer block's linear "
                        "layers split over tp GPUs, all-reduces of the activations; "
                        "data-parallel over the groups.",
            options={
                "tp": Option(None, "GPUs per tensor-parallel group (default: one node's "
                                   "GPUs); it divides the devices and every attention's "
                                   "key/value heads", int, lambda v: v >= 1, "an integer >= 1"),
                **data_parallel_options("bucket_mb"),
                "collectives": Option(None, "'link' (every transfer a task: the default up "
                                            "to 64 devices) or 'flow' (closed form)", str,
                                      lambda v: v in FIDELITIES, "link or flow"),
            })

    def plan(self, graph, cluster, training: bool, *, tp, bucket_mb, collectives) -> TaskGraph:
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
        share = split_graph(graph, tp)
        g = lower_training(share) if training else share
        fidelity = collectives or ("link" if n <= 64 else "flow")
        tg = TaskGraph(f"tensor-parallel:{graph.name}", meta={
            "samples": graph.batch * (n // tp), "fidelity": fidelity, "replicas": "all",
            "resident_bytes": {d: resident_bytes(g, training) for d in ids},
            "tensor_parallel": {"tp": tp, "dp": n // tp, "groups": groups,
                                "allreduce_bytes": []}})
        extra: dict[str, dict[str, list[str]]] = {d: {} for d in ids}
        comm = _Collectives(tg, cluster, fidelity)
        for p in pairs:
            # forward: the row-parallel layer's partial sums, all-reduced (Megatron's g)
            comm.block(groups, g, [p.row], f"tp.fwd.{p.row}", extra)
        if training:
            for p in pairs:
                # backward: the column-parallel layers' input gradient (Megatron's f), once
                # summed where q, k and v (gate and up) are separate layers
                grads = [op.name for op in g if op.phase == "backward"
                         and op.kind == "linear_grad_input" and op.forward in p.columns]
                # in the width the layers compute in (autocast's grad of its fp32 input is
                # cast up only after the all-reduce Megatron makes in bf16)
                width = g.op(p.columns[0]).out.dtype_bytes
                comm.block(groups, g, grads, f"tp.bwd.{p.row}", extra,
                           nbytes=g.op(grads[0]).out.numel * width)
        fwd_bwd = [op for op in g.topo() if op.phase != "update"]
        for d in cluster.devices:
            emit_ops(tg, g, d, ops=fwd_bwd, prefix=f"{d.id}/", extra_deps=extra[d.id])
        if not training:
            return tg
        synced = comm.gradients(groups, g, bucket_mb)
        updates = [op for op in g.topo() if op.phase == "update"]
        for d in cluster.devices:
            emit_ops(tg, g, d, ops=updates, prefix=f"{d.id}/", priority_base=len(fwd_bwd),
                     extra_deps={op.name: (f"{d.id}/{op.inputs[0]}", *synced[d.id])
                                 for op in updates},
                     track_memory=False)
        return tg

    def finalize(self, result, graph, cluster, training: bool, **opts) -> None:
        info = result.log.meta.get("tensor_parallel", {})
        result.extras["tensor_parallel"] = {"tp": info.get("tp"), "dp": info.get("dp")}
        result.extras["tp_allreduce_bytes_per_step"] = sum(info.get("allreduce_bytes", ()))


class _Collectives:
    """The all-reduces of one plan: NCCL's, one stream per device, in the order made."""

    def __init__(self, tg: TaskGraph, cluster, fidelity: str) -> None:
        self.tg, self.cluster, self.fidelity = tg, cluster, fidelity

    def _allreduce(self, members: list[str], nbytes: float, deps, name: str) -> Deps:
        return collective("allreduce", self.tg, self.cluster, members, nbytes, deps, name,
                          fidelity=self.fidelity, priority=-1,
                          launch_latency_s=NCCL_BASE_LATENCY_S)

    def block(self, groups: list[list[str]], g, ops: list[str], name: str,
              extra: dict[str, dict[str, list[str]]], nbytes: int | None = None) -> None:
        """An all-reduce within each tensor-parallel group of the tensor `ops` make (one
        tensor, or partial sums of it that their readers add up; `nbytes`, default its
        bytes), which every op reading one of them waits for."""
        nbytes = g.op(ops[0]).out.nbytes if nbytes is None else nbytes
        if len(groups[0]) > 1:
            self.tg.meta["tensor_parallel"]["allreduce_bytes"].append(nbytes)
        readers = sorted({r for op in ops for r in g.successors(op)} - set(ops))
        for k, members in enumerate(groups):
            done = self._allreduce(members, nbytes,
                                   {d: [f"{d}/{op}" for op in ops] for d in members},
                                   f"{name}.g{k}")
            for d in members:
                for r in readers:
                    extra[d].setdefault(r, []).extend(done[d])

    def gradients(self, groups: list[list[str]], g, bucket_mb: float) -> Deps:
        """Data parallelism across the groups: rank r of each all-reduces its gradients with
        rank r of the others, in DDP's buckets, in order; per device, what the optimizer
        step waits for (the last bucket)."""
        ids = [d for grp in groups for d in grp]
        synced: Deps = {d: () for d in ids}
        if len(groups) == 1:
            return synced
        for r in range(len(groups[0])):
            members = [grp[r] for grp in groups]
            previous: Deps = {d: () for d in members}
            for b, bucket in enumerate(ddp_groups(g, bucket_mb * MIB)):
                deps = {d: [f"{d}/{op}" for op in bucket.ops] + list(previous[d])
                        for d in members}
                previous = self._allreduce(members, bucket.nbytes, deps,
                                           f"allreduce.r{r}.b{b}")
            synced.update(previous)
        return synced
