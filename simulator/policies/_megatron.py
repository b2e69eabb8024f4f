"""The parts of the `megatron` policy (megatron.py): its ranks, its stages of whole transformer
blocks, what a rank holds, and what it adds to each unit of the pipeline (the tensor-parallel
collectives, the point-to-point sends between stages).

Ranks are laid out as Megatron-LM's initialize_model_parallel lays them out: tensor-parallel
rank fastest, then data-parallel, then pipeline, so global rank = pp_rank * (dp * tp) +
dp_rank * tp + tp_rank. A tensor-parallel group is tp consecutive GPUs (one node's, when tp is
the node's size), a pipeline's stages are dp * tp ranks apart (other nodes), and the replicas
of a stage are the dp groups of tp GPUs within one stage's block of ranks.
"""
from __future__ import annotations

from dataclasses import dataclass

from workloads.graph import OpGraph
from workloads.precision import is_amp

from ..collectives import collective, framework_launch_s
from ..tasks import TaskGraph
from . import ConfigError
from ._pipeline import EmitterHooks, place_ops
from ._recompute import SUFFIX
from ._tensor_comm import TensorCollectives
from ._tensor_split import SplitPair

# Megatron's mixed precision (Narayanan et al. 2021, section 5.1; Rajbhandari et al.'s 16
# bytes plus the fp32 gradient buffer Megatron's DDP accumulates into): half weights 2, fp32
# gradients 4, fp32 master weights 4, Adam's two fp32 moments 8. In fp32: 4 + 4 + 8.
BYTES_PER_PARAM_MIXED = 2 + 4 + 4 + 8
BYTES_PER_PARAM_FP32 = 4 + 4 + 8
HALF_PRECISIONS = ("fp16", "bf16")


@dataclass(frozen=True)
class Layout:
    """The ranks of a tp x pp x dp run over the cluster's devices, in Megatron's order."""
    ids: tuple[str, ...]
    tp: int
    pp: int
    dp: int

    def device(self, stage: int, replica: int, rank: int) -> str:
        return self.ids[stage * self.dp * self.tp + replica * self.tp + rank]

    def tp_group(self, stage: int, replica: int = 0) -> list[str]:
        return [self.device(stage, replica, r) for r in range(self.tp)]

    def dp_group(self, stage: int, rank: int) -> list[str]:
        return [self.device(stage, j, rank) for j in range(self.dp)]

    def representative(self, stage: int) -> str:
        """The rank simulated for a stage: tp rank 0 of replica 0 (the others in lockstep)."""
        return self.device(stage, 0, 0)


def block_scopes(graph: OpGraph, pairs: list[SplitPair]) -> list[str]:
    """The name scope of each transformer block, in order: the longest dotted prefix a pair's
    row layer shares with another pair's (a block's attention and MLP: 'transformer.h.3')."""
    rows = [p.row.split(".") for p in pairs]

    def common(a: list[str], b: list[str]) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n
    scopes: list[str] = []
    for i, a in enumerate(rows):
        n = max((common(a, b) for j, b in enumerate(rows) if j != i), default=len(a) - 1)
        scope = ".".join(a[:n])
        if not scopes or scopes[-1] != scope:
            scopes.append(scope)
    if len(set(scopes)) != len(scopes) or not all(scopes):
        raise ConfigError(f"policy 'megatron': the transformer blocks of {graph.name!r} cannot "
                          f"be told apart by name (their split layers share no block scope)")
    return scopes


def block_of(graph: OpGraph, scopes: list[str]) -> dict[str, int]:
    """Each forward op's block; ops outside every block are left out."""
    index = {s: b for b, s in enumerate(scopes)}
    out = {}
    for op in graph.topo():
        parts = op.name.split(".")
        for n in range(len(parts) - 1, 0, -1):
            b = index.get(".".join(parts[:n]))
            if b is not None:
                out[op.name] = b
                break
    return out


def stage_of_ops(train: OpGraph, blocks: dict[str, int], per_stage: int) -> dict[str, int]:
    """Each op's pipeline stage: a block's ops on stage block // per_stage; the ops before the
    first block (the embeddings) on the first; those after the last (the final norm, the
    output layer, the loss) on the last; backward, recomputed and update ops with the forward
    op they serve, but a sum of gradients where they are made."""
    stage = place_ops(train, lambda op: blocks[op.name] // per_stage if op.name in blocks
                      else None)
    # a sum of gradients all made on a later stage (of a stage's input) is made there and
    # sent on as one tensor, as autograd makes it before Megatron's send_backward
    for op in train.topo():
        if op.kind == "grad_accumulate" and op.inputs:
            stage[op.name] = max(stage[op.name], min(stage[i] for i in op.inputs))
    return stage


def block_ends(graph: OpGraph, blocks: dict[str, int]) -> set[str]:
    """The forward ops whose outputs Megatron's full recomputation keeps: each block's input
    (the op before the first block, and each block's last op)."""
    ends: dict[int, str] = {}
    before_first = None
    for op in graph.topo():
        b = blocks.get(op.name)
        if b is None and not ends:
            before_first = op.name
        if b is not None:
            ends[b] = op.name
    return {*ends.values(), *([before_first] if before_first else [])}


def reduced_bytes_per_param(precision: str) -> int:
    """The width of the gradients the dp replicas all-reduce: Megatron accumulates and
    all-reduces them in fp32 under bf16 (accumulate_allreduce_grads_in_fp32), in fp16 under
    fp16."""
    return 2 if precision in ("fp16", "amp-fp16") else 4


def bytes_per_param(precision: str) -> int:
    mixed = is_amp(precision) or precision in HALF_PRECISIONS
    return BYTES_PER_PARAM_MIXED if mixed else BYTES_PER_PARAM_FP32


class MegatronHooks(EmitterHooks):
    """Per unit: the stage's tensor-parallel collectives (flow-level: only the representative
    rank's ops are emitted, and a flow collective waits for the ranks that are, the others
    being in lockstep); per tensor crossing stages, Megatron's scatter/gather send (each of
    the tp ranks sends 1/tp of it to its peer on the next stage, over that rank's NIC, and
    the receiving group all-gathers it over NVLink). Weights are held in half precision
    beside their fp32 master copy (resident bytes), not copied by autocast."""
    autocast_copies = False
    reuse_units = True

    def __init__(self, tg: TaskGraph, cluster, layout: Layout, train: OpGraph,
                 stage_of: dict[str, int], stage_pairs: list[list[SplitPair]],
                 vocab: tuple[str, str] | None, algorithm: str) -> None:
        self.tg, self.cluster, self.layout, self.train = tg, cluster, layout, train
        self.stage_of, self.stage_pairs, self.vocab = stage_of, stage_pairs, vocab
        self.algorithm = algorithm

    def unit_deps(self, p: int, mb: int, prefix: str) -> dict[str, list[str]]:
        lay = self.layout
        if lay.tp == 1:
            return {}
        rep = lay.representative(p)
        comm = TensorCollectives(self.tg, self.cluster, [lay.tp_group(p)], self.train, "flow",
                                 self.algorithm, prefix=prefix, simulated={rep}, tag=prefix)
        pairs = self.stage_pairs[p]
        comm.all_reduces(pairs, True)
        for pair in pairs:       # the recomputed forward's all-reduces, as the forward's
            row = pair.row + SUFFIX
            if row in self.train:
                comm.block("allreduce", [row], comm._readers([row]), f"tp.rec.{pair.row}",
                           self.train.op(row).out.nbytes)
        if self.vocab is not None:
            table, head = self.vocab
            if self.stage_of[table] == p:
                comm.vocab_embedding(table, set())
            if self.stage_of[head] == p:
                comm.vocab_head(head, set(), True)
        return comm.extra[rep]

    def send(self, name: str, src: int, dst: int, nbytes: int, after: str) -> None:
        lay, tg, cluster = self.layout, self.tg, self.cluster
        rep = lay.representative(dst)
        meta = {"bytes": nbytes, "src": src, "dst": dst, "p2p": True}
        if lay.tp == 1:
            res, dur = cluster.transfer(lay.representative(src), rep, nbytes)
            tg.new(name, res, dur, deps=[after], category="comm",
                   device=lay.representative(src), alloc={rep: nbytes}, meta=meta)
            return
        parts = []
        for r in range(lay.tp):
            a, b = lay.device(src, 0, r), lay.device(dst, 0, r)
            res, dur = cluster.transfer(a, b, nbytes / lay.tp)
            # the whole tensor's buffer on the representative, freed after its backward
            parts.append(tg.new(f"{name}.r{r}", res, dur, deps=[after], category="comm",
                                device=a, alloc={rep: nbytes} if r == 0 else {},
                                meta={**meta, "bytes": nbytes / lay.tp}).name)
        # a flow-level all-gather is one task of the name given, which the readers wait for
        collective("allgather", tg, cluster, lay.tp_group(dst), nbytes, {rep: parts}, name,
                   fidelity="flow", priority=-1,
                   launch_latency_s=framework_launch_s(cluster, lay.tp_group(dst)),
                   algorithm=self.algorithm)


def gradient_sync(tg: TaskGraph, cluster, layout: Layout, stage: int,
                  buckets: list[tuple[list[str], int]], name: str,
                  algorithm: str) -> tuple[str, ...]:
    """The data-parallel all-reduces of one stage's gradients (flow-level), bucket after
    bucket, for every tensor-parallel rank r over rank r of the stage's dp replicas; each
    bucket waits for its tasks (on the representative) and the one before. Returns what the
    representative's optimizer step waits for."""
    rep = layout.representative(stage)
    if layout.dp == 1 or not buckets:
        return ()
    last: tuple[str, ...] = ()
    for r in range(layout.tp):
        previous: tuple[str, ...] = ()
        for b, (after, nbytes) in enumerate(buckets):
            group = layout.dp_group(stage, r)
            done = collective("allreduce", tg, cluster, group, nbytes,
                              {group[0]: [*after, *previous]}, f"{name}.r{r}.b{b}",
                              fidelity="flow", priority=-1,
                              launch_latency_s=framework_launch_s(cluster, group),
                              algorithm=algorithm)
            previous = done[group[0]]
        if r == 0:
            last = previous
    assert rep == layout.dp_group(stage, 0)[0]
    return last
