"""`megatron`: Megatron-LM's 3-D parallelism (Narayanan et al., SC'21): tensor parallelism
within a node, pipeline parallelism across nodes, data parallelism over the pipelines.

Ranks (_megatron.Layout) are ordered as Megatron's initialize_model_parallel orders them: tp
fastest, then dp, then pp. The network's transformer blocks are cut into pp stages of equal
block counts (Megatron's default: the blocks must divide evenly); the embeddings run on the
first stage, the final norm, output layer and loss on the last. Each stage's ops are split
over its tp ranks as the `tensor-parallel` policy splits them (_tensor_split, _tensor_comm:
vocabulary-parallel embedding and output layer, an all-reduce after each row-parallel layer and
of each column group's input gradient, blocking their readers).

A step is `micro_batches` micro-batches of the workload's batch (--batch is the micro-batch
size; the global batch is dp x micro_batches x batch), run in Megatron's non-interleaved 1F1B
schedule (stage p runs pp - p forwards, then alternates a backward and a forward, then the
remaining backwards; the same order as pipedream's) or GPipe's (every forward, then every
backward), then a flush: each stage all-reduces its gradients over its dp replicas (rank r
with rank r; by default after the flush, in one all-reduce of the stage's gradient buffer, as
Megatron's DistributedDataParallel does without --overlap-grad-reduce; with grad_sync
'overlap', in DDP's buckets as the last micro-batch's backward makes them), a tied embedding's
gradient is all-reduced between the first and the last stage, and the optimizer (Adam) steps.
Tensors crossing stages go rank to rank, 1/tp each (Megatron's scatter/gather), and are
all-gathered within the receiving group; they run beside compute.

With recompute 'full' (--recompute-granularity full, uniform, one layer) only each block's
input is kept; its forward, all-reduces included, runs again before its backward.

Memory per GPU: its 1/tp share of the stage's weights at BYTES_PER_PARAM_MIXED (half weights,
fp32 gradients, fp32 master weights, Adam's moments; fp32 training: 16), plus the activations
of the micro-batches in flight (1F1B: up to pp - p on stage p; GPipe: all of them), tracked
op by op, so a configuration that does not fit ends OUT OF MEMORY.

Symmetry: one rank of each stage is simulated (tp rank 0 of dp replica 0); the tp ranks of a
group do alike and the dp replicas do alike, so the others run in lockstep (as data-parallel's
replicas 'one'); every stage of the pipeline is kept. The collectives span every rank they
would (flow-level: each one task on every link it uses, for its closed-form time, or the time
NCCL's tuning predicts where it picks a tree, LL or LL128), and the gradient all-reduces of
every tp rank are built (they share the nodes' NICs). Every collective runs as Megatron's
calls to NCCL run it (`algorithm` 'nccl', the default; default_algorithm), or on one Simple
ring ('ring'). Not modelled: contention between the sends of other replicas on a shared
network core, the interleaved schedule, the sends blocking compute (Megatron's p2p waits),
selective recomputation, the distributed optimizer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from hwmodels.specs import HardwareError
from workloads.training import lower_training

from ..collectives import collective, framework_launch_s
from ..tasks import TaskGraph
from . import ConfigError, Option, Plan, Policy, register
from ._data_parallel import (
    algorithm_option,
    data_parallel_options,
    default_algorithm,
    gradient_buckets,
    record_algorithm,
)
from ._megatron import (
    Layout,
    MegatronHooks,
    block_ends,
    block_of,
    block_scopes,
    bytes_per_param,
    gradient_sync,
    reduced_bytes_per_param,
    stage_of_ops,
)
from ._megatron_report import megatron_extras
from ._pipeline import PipelineEmitter, emit_sequences
from ._pipeline_schedules import gpipe_sequences, one_f_one_b_sequences
from ._recompute import SUFFIX, checkpoint_graph
from ._sync_group import MIB
from ._tensor_split import check_tp, split_graph, split_pairs, vocab_layers

SCHEDULES = ("1f1b", "gpipe")
RECOMPUTE = ("none", "full")
GRAD_SYNC = ("after-flush", "overlap")


@dataclass
class MegatronPlan(Plan):
    emitter: PipelineEmitter | None = None
    layout: Layout | None = None
    micro_batches: int = 1
    stage_blocks: list[int] = field(default_factory=list)


@register
class Megatron(Policy[MegatronPlan]):
    def __init__(self) -> None:
        super().__init__(
            name="megatron", training_only=True,
            description="Megatron-LM 3-D parallelism: tensor parallelism within a node, 1F1B "
                        "pipeline stages of whole transformer blocks across nodes, data "
                        "parallelism over the pipelines. --batch is the micro-batch size; the "
                        "global batch is dp x micro_batches x batch.",
            options={
                "tp": Option(None, "GPUs per tensor-parallel group (default: a node's GPUs, "
                                   "fewer where they do not divide the heads)", int,
                             lambda v: v >= 1, "an integer >= 1"),
                "pp": Option(1, "pipeline stages (they divide the transformer blocks)", int,
                             lambda v: v >= 1, "an integer >= 1"),
                "micro_batches": Option(None, "micro-batches per step and pipeline (default "
                                              "4 x pp); dp = devices / (tp x pp)", int,
                                        lambda v: v >= 1, "an integer >= 1"),
                "schedule": Option("1f1b", "'1f1b' (Megatron's non-interleaved schedule) or "
                                           "'gpipe' (all forwards, then all backwards)", str,
                                   lambda v: v in SCHEDULES, "1f1b or gpipe"),
                "recompute": Option("none", "'none' or 'full' (each block's forward run again "
                                            "before its backward: --recompute-granularity "
                                            "full)", str, lambda v: v in RECOMPUTE,
                                    "none or full"),
                "grad_sync": Option("after-flush", "'after-flush' (the stage's gradients "
                                                   "all-reduced at once after the last "
                                                   "backward: Megatron's default) or "
                                                   "'overlap' (DDP's buckets during the last "
                                                   "micro-batch's backward)", str,
                                    lambda v: v in GRAD_SYNC, "after-flush or overlap"),
                **data_parallel_options("bucket_mb"),
                "algorithm": algorithm_option(),
            })

    def plan(self, graph, cluster, training: bool, *, tp, pp, micro_batches, schedule,
             recompute, grad_sync, bucket_mb, algorithm) -> MegatronPlan:
        if any(d.spec.kind != "gpu" for d in cluster.devices):
            raise HardwareError("policy 'megatron' runs on GPUs (NCCL's collectives); this "
                                "cluster has other devices")
        n = len(cluster.devices)
        pairs = split_pairs(graph, "megatron")
        tp = tp or _default_tp(graph, pairs, len(cluster.node_members()[0]), n, pp)
        if n % (tp * pp):
            raise ConfigError(f"policy 'megatron': tp x pp = {tp} x {pp} = {tp * pp} does not "
                              f"divide the {n} devices, so dp = {n}/{tp * pp} is not whole")
        check_tp(graph, pairs, tp, "megatron")
        layout = Layout(tuple(d.id for d in cluster.devices), tp, pp, n // (tp * pp))
        scopes = block_scopes(graph, pairs)
        if pp > len(scopes):
            raise ConfigError(f"policy 'megatron' option 'pp': {pp} stages for the "
                              f"{len(scopes)} transformer blocks of {graph.name!r}")
        if len(scopes) % pp:
            raise ConfigError(f"policy 'megatron' option 'pp': {pp} stages do not divide the "
                              f"{len(scopes)} transformer blocks of {graph.name!r} evenly")
        m = micro_batches or 4 * pp
        share = split_graph(graph, tp, False, True)
        tied = _tied_table(share) if pp > 1 else None
        if tied:
            share = _untied(share)
        blocks = block_of(share, scopes)
        # Megatron-LM trains with Adam, unless the scenario names another optimizer, stepped
        # by a fused multi-tensor kernel (apex's FusedAdam)
        train = lower_training(share, graph.meta.get("optimizer", "adam"), fused_optimizer=True)
        if recompute == "full":
            train, _ = checkpoint_graph(train, cut_after=block_ends(share, blocks))
        per_stage = len(scopes) // pp
        stage = stage_of_ops(train, blocks, per_stage)
        reps = [cluster.device(layout.representative(p)) for p in range(pp)]
        vocab = vocab_layers(graph) if tp > 1 else None
        stage_pairs = [[q for q in pairs if stage[q.row] == p] for p in range(pp)]
        tg = TaskGraph(f"megatron:{graph.name}", meta={
            "samples": graph.batch * m * layout.dp, "fidelity": "flow", "replicas": "one",
            "tensor_parallel": {"tp": tp, "dp": layout.dp, "collective_bytes": []}})
        algorithm = algorithm or default_algorithm(cluster)
        hooks = MegatronHooks(tg, cluster, layout, train, stage, stage_pairs, vocab, algorithm)
        em = PipelineEmitter(tg, train, cluster, [], update_each=False, part=stage,
                             devices=reps, hooks=hooks)
        per_param = bytes_per_param(graph.meta.get("precision", "fp32"))
        params = [sum(o.params for o in em.fwd[p]) for p in range(pp)]
        tg.meta["resident_bytes"] = {d.id: params[p] * per_param for p, d in enumerate(reps)}
        seqs = (one_f_one_b_sequences if schedule == "1f1b" else gpipe_sequences)(pp, m)
        emit_sequences(em, seqs)
        last_b = [[mb for kind, mb in seq if kind == "B" and mb is not None][-1]
                  for seq in seqs]
        # a stage is done once its last backward has sent its gradient on (Megatron's
        # send_backward returns when it is sent): its all-reduces start then
        flushed = [em.names.done(p, "B", last_b[p]) for p in range(pp)]
        sent = [[em.xfer_name(last_b[p], src, dst) for src, dst in em.crossing
                 if em.part[src] == p and dst < p] for p in range(pp)]
        width = reduced_bytes_per_param(graph.meta.get("precision", "fp32"))
        embedding = (_embedding_sync(tg, cluster, layout, share.op(tied).params * width,
                                     flushed, algorithm) if tied else ())
        for p in range(pp):
            # the weight gradients (a recomputed forward holds weights but makes none)
            grads = [o.name for o in em.bwd[p] if o.params and not o.name.endswith(SUFFIX)]
            if grad_sync == "after-flush":
                buckets = [([flushed[p], *sent[p]],
                            sum(train.op(o).params for o in grads) * width)]
            else:
                own = set(grads)
                prefix = f"{em.mb_prefix}{last_b[p]}/p{p}/"
                buckets = [([prefix + o for o in b if o in own],
                            sum(train.op(o).params for o in b if o in own) * width)
                           for b in gradient_buckets(train, bucket_mb * MIB)]
                buckets = [b for b in buckets if b[0]]
            synced = gradient_sync(tg, cluster, layout, p, buckets, f"dp.p{p}", algorithm)
            after = [flushed[p], *synced, *(embedding if p in (0, pp - 1) else ())]
            em.emit_updates(p, after, "step")
        return MegatronPlan(tg, graph, cluster, training,
                            {"tp": tp, "pp": pp, "dp": layout.dp, "micro_batches": m,
                             "schedule": schedule, "recompute": recompute,
                             "grad_sync": grad_sync, "algorithm": algorithm}, em, layout, m,
                            [per_stage] * pp)

    def finish(self, result, plan: MegatronPlan) -> None:
        result.extras["megatron"] = megatron_extras(result, plan)
        record_algorithm(result, plan.cluster, plan.options["algorithm"])


def _default_tp(graph, pairs, node: int, n: int, pp: int) -> int:
    """A node's GPUs, or the most below it that divides the heads, features and devices."""
    for tp in range(node, 0, -1):
        try:
            check_tp(graph, pairs, tp, "megatron")
        except ConfigError:
            continue
        if n % (tp * pp) == 0:
            return tp
    return 1


def _tied_table(share) -> str | None:
    """The token embedding whose weight the output layer shares (GPT's tied head)."""
    vocab = vocab_layers(share)
    if vocab is None:
        return None
    table, head = vocab
    return table if share.meta.get("shared_params", {}).get(head) == table else None


def _untied(share):
    """The graph with the output layer holding its own copy of the embedding's weight, as
    Megatron's last stage does when the two are on different stages: its gradient stays
    there (summed with the first stage's once a step: _embedding_sync)."""
    table, head = vocab_layers(share) or ("", "")
    params = share.op(table).params
    untied = share.copy(transform=lambda op: dataclasses.replace(op, params=params)
                        if op.name == head else op)
    shared = {k: v for k, v in share.meta.get("shared_params", {}).items() if k != head}
    untied.meta = {**share.meta, "shared_params": shared}
    return untied


def _embedding_sync(tg, cluster, layout: Layout, nbytes: int, flushed: list[str],
                    algorithm: str) -> tuple[str, ...]:
    """Megatron's embedding group: the first and last stage's copies of a tied embedding
    all-reduce their gradients (nbytes a rank), rank by rank, after the flush."""
    done: tuple[str, ...] = ()
    first, last = layout.representative(0), layout.representative(layout.pp - 1)
    for r in range(layout.tp):
        pair = [layout.device(0, 0, r), layout.device(layout.pp - 1, 0, r)]
        out = collective("allreduce", tg, cluster, pair, nbytes,
                         {first: [flushed[0]], last: [flushed[-1]]} if r == 0 else
                         {pair[0]: [flushed[0], flushed[-1]]}, f"emb.r{r}",
                         fidelity="flow", priority=-1,
                         launch_latency_s=framework_launch_s(cluster, pair), algorithm=algorithm)
        if r == 0:
            done = out[first]
    return done
