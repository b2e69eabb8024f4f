"""The collectives of the `tensor-parallel` policy: within each tensor-parallel group,
Megatron's all-reduces of the activations (or, with sequence parallelism, its all-gathers
and reduce-scatters), and across groups the gradients' all-reduces in DDP's buckets.

Each collective is built per group on the cluster's links and made a dependency of the ops
that read what it completes (`extra`: device -> op name -> tasks), so it blocks them; the
tasks it waits for are named before emit_ops makes them (`{device}/{op}`)."""
from __future__ import annotations

from workloads.graph import OpGraph

from ..collectives import collective, framework_launch_s
from ..tasks import TaskGraph
from ._data_parallel import ddp_groups
from ._sync_group import MIB
from ._tensor_split import SplitPair

Deps = dict[str, tuple[str, ...]]


class TensorCollectives:
    """The collectives of one plan, NCCL's, on one stream per device in the order made."""

    def __init__(self, tg: TaskGraph, cluster, groups: list[list[str]], g: OpGraph,
                 fidelity: str, algorithm: str, *, prefix: str | None = None,
                 simulated: set[str] | None = None, tag: str = "") -> None:
        """algorithm: every collective's (collectives.ALGORITHMS; 'nccl': NCCL's choice, as
        Megatron and PyTorch run them); prefix: what names a rank's tasks (default
        '{device}/'); simulated: the ranks whose ops are emitted (default all; the others,
        in lockstep, add no dependency, so their collectives must be flow-level); tag: put
        before every collective's name."""
        self.tg, self.cluster, self.groups, self.g = tg, cluster, groups, g
        self.fidelity, self.algorithm, self.prefix, self.tag = fidelity, algorithm, prefix, tag
        self.simulated = simulated
        self.extra: dict[str, dict[str, list[str]]] = {d: {} for grp in groups for d in grp
                                                       if self._emitted(d)}

    def _emitted(self, d: str) -> bool:
        return self.simulated is None or d in self.simulated

    def _task(self, d: str, op: str) -> str:
        return f"{d}/{op}" if self.prefix is None else f"{self.prefix}{op}"

    def _run(self, kind: str, members: list[str], nbytes: float, deps, name: str) -> Deps:
        return collective(kind, self.tg, self.cluster, members, nbytes, deps, name,
                          fidelity=self.fidelity, priority=-1,
                          launch_latency_s=framework_launch_s(self.cluster, members),
                          algorithm=self.algorithm)

    def block(self, kind: str, ops: list[str], readers: list[str], name: str,
              nbytes: int) -> None:
        """`kind` of an nbytes tensor within each group, after `ops` (the tensor, or partial
        sums of it) on each rank; `readers` wait for it there."""
        if len(self.groups[0]) > 1:
            self.tg.meta["tensor_parallel"]["collective_bytes"].append(nbytes)
        for k, members in enumerate(self.groups):
            done = self._run(kind, members, nbytes,
                             {d: [self._task(d, op) for op in ops] for d in members
                              if self._emitted(d)},
                             f"{self.tag}{name}.g{k}")
            for d in members:
                if not self._emitted(d):
                    continue
                for r in readers:
                    self.extra[d].setdefault(r, []).extend(done[d])

    # -- within a group ------------------------------------------------------------------
    def _readers(self, ops: list[str]) -> list[str]:
        return sorted({r for op in ops for r in self.g.successors(op)} - set(ops))

    def _backward(self, forward: set[str], kind: str | None = None) -> list[str]:
        return [op.name for op in self.g if op.phase == "backward" and op.forward in forward
                and (kind is None or op.kind == kind)]

    def _grad_bytes(self, pair: SplitPair, grads: list[str]) -> int:
        """A column group's input gradient in the width the layers compute in (autocast's
        gradient of an fp32 input is cast up after the collective, which Megatron runs in
        bf16)."""
        return self.g.op(grads[0]).out.numel * self.g.op(pair.columns[0]).out.dtype_bytes

    def _input_bytes(self, pair: SplitPair) -> int:
        """The column layers' whole input, in the width they compute in (as _grad_bytes)."""
        column = self.g.op(pair.columns[0])
        return column.in_specs[0].numel * column.out.dtype_bytes

    def all_reduces(self, pairs: list[SplitPair], training: bool) -> None:
        """Megatron's g and f: the row layer's partial sums all-reduced in the forward pass,
        the column layers' input gradient (once summed, where q, k and v or gate and up are
        separate layers) in the backward pass."""
        for p in pairs:
            self.block("allreduce", [p.row], self._readers([p.row]), f"tp.fwd.{p.row}",
                       self.g.op(p.row).out.nbytes)
        if not training:
            return
        for p in pairs:
            grads = self._backward(set(p.columns), "linear_grad_input")
            self.block("allreduce", grads, self._readers(grads), f"tp.bwd.{p.row}",
                       self._grad_bytes(p, grads))

    def sequence_parallel(self, pairs: list[SplitPair], region: set[str],
                          training: bool) -> None:
        """Korthikanti et al. 2022: the sequence region's shards all-gathered before the
        column layers and reduce-scattered after the row layer; in the backward pass the
        converse (the row layer's output gradient gathered, the column layers' input gradient
        reduce-scattered), and the column layers' input gathered again for their weight
        gradients (Megatron keeps only the shard). Where the region meets replicated ops
        (the output layer, an embedding), the full tensor or gradient is gathered."""
        g = self.g
        for p in pairs:
            source = g.op(p.columns[0]).inputs[0]
            full_in = self._input_bytes(p)
            self.block("allgather", [source], list(p.columns), f"tp.fwd.ag.{p.row}", full_in)
            self.block("reduce_scatter", [p.row], self._readers([p.row]),
                       f"tp.fwd.rs.{p.row}", g.op(p.row).out.nbytes)
        paired = {n for p in pairs for n in p.columns}
        for op in g.topo():
            if op.phase == "forward" and op.name not in region and op.name not in paired:
                for i, (src, spec) in enumerate(zip(op.inputs, op.in_specs, strict=True)):
                    if src in region:
                        self.block("allgather", [src], [op.name],
                                   f"tp.fwd.ag.{op.name}.{i}", spec.nbytes)
        if not training:
            return
        for p in pairs:
            grads = self._backward(set(p.columns), "linear_grad_input")
            full_in = self._input_bytes(p)
            # the whole partial sums (the lowering gives the gradient the shard's shape)
            self.block("reduce_scatter", grads, self._readers(grads), f"tp.bwd.rs.{p.row}",
                       full_in)
            row_grads = self._backward({p.row})
            self.block("allgather", self._made_before(row_grads), row_grads,
                       f"tp.bwd.ag.{p.row}", g.op(p.row).out.nbytes)
            self.block("allgather", self._made_before(grads),
                       self._backward(set(p.columns), "linear_grad_weight"),
                       f"tp.bwd.ag.input.{p.row}", full_in)
        # replicated ops the region reads from (embeddings): their output's gradient whole
        rows = {p.row for p in pairs}
        for op in g.topo():
            if (op.phase == "forward" and op.name not in region and op.name not in rows
                    and any(r in region for r in g.successors(op.name))):
                readers = self._backward({op.name})
                before = self._made_before(readers)
                if readers and before:
                    self.block("allgather", before, readers, f"tp.bwd.ag.{op.name}",
                               op.out.nbytes)

    def vocab(self, table: str, head: str, region: set[str], training: bool) -> None:
        """Megatron's vocabulary-parallel embedding, output layer and cross-entropy: the
        embedding's partial lookups summed (all-reduced, or reduce-scattered into the
        sequence region); the loss's maxima, target logits and sums of exponentials over the
        vocabulary shards all-reduced (one collective of 3 floats per position here, where
        Megatron makes three); in the backward pass the output layer's input gradient summed
        (reduce-scattered into the sequence region)."""
        self.vocab_embedding(table, region)
        self.vocab_head(head, region, training)

    def vocab_embedding(self, table: str, region: set[str]) -> None:
        """The vocabulary-parallel embedding's partial lookups summed (vocab)."""
        g = self.g
        readers = self._readers([table])
        into_region = bool(region) and all(r in region for r in readers
                                           if g.op(r).phase == "forward")
        self.block("reduce_scatter" if into_region else "allreduce", [table], readers,
                   f"tp.vocab.fwd.{table}", g.op(table).out.nbytes)

    def vocab_head(self, head: str, region: set[str], training: bool) -> None:
        """The vocabulary-parallel output layer and cross-entropy's collectives (vocab)."""
        g = self.g
        logits = g.op(head)
        loss = [r for r in self._readers([head]) if g.op(r).kind == "softmax_xent"]
        if loss:
            positions = logits.out.numel // logits.out.shape[-1]
            self.block("allreduce", [head], loss, "tp.vocab.loss", 3 * positions * 4)
        if not training:
            return
        grads = self._backward({head}, "linear_grad_input")
        head_in = logits.in_specs[0].numel * logits.out.dtype_bytes
        self.block("reduce_scatter" if logits.inputs[0] in region else "allreduce", grads,
                   self._readers(grads), f"tp.vocab.bwd.{head}", head_in)

    def _made_before(self, ops: list[str]) -> list[str]:
        """The backward ops outside `ops` whose tensors `ops` read: their output gradient."""
        return sorted({q for op in ops for q in self.g.predecessors(op)
                       if self.g.op(q).phase == "backward"} - set(ops))

    # -- across groups -------------------------------------------------------------------
    def gradients(self, bucket_mb: float) -> Deps:
        """Data parallelism across the groups: rank r of each all-reduces its gradients with
        rank r of the others, in DDP's buckets, in order; per device, what the optimizer
        step waits for (the last bucket)."""
        groups = self.groups
        synced: Deps = {d: () for grp in groups for d in grp}
        if len(groups) == 1:
            return synced
        for r in range(len(groups[0])):
            members = [grp[r] for grp in groups]
            previous: Deps = {d: () for d in members}
            for b, bucket in enumerate(ddp_groups(self.g, bucket_mb * MIB)):
                deps = {d: [f"{d}/{op}" for op in bucket.ops] + list(previous[d])
                        for d in members}
                previous = self._run("allreduce", members, bucket.nbytes, deps,
                                     f"allreduce.r{r}.b{b}")
            synced.update(previous)
        return synced
