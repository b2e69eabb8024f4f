"""The figures of a `megatron` run (megatron.py): its layout, bubble, communication left
exposed by kind, and each stage's memory."""
from __future__ import annotations

from ..lowering import output_bytes
from ..results import _subtract_length, _union_length
from ._pipeline_report import in_flight, task_times
from ._recompute import SUFFIX

RANK_ORDER = "tp fastest, then dp, then pp (Megatron's initialize_model_parallel)"


def comm_kind(name: str) -> str | None:
    """The kind of a communication task, from the name the policy gave it."""
    if "/tp." in name:
        return "tensor_parallel"
    if "/xfer/" in name:
        return "pipeline_p2p"
    if name.startswith("dp."):
        return "data_parallel"
    if name.startswith("emb."):
        return "embedding"
    return None


def kept_bytes(em, p: int) -> int:
    """Bytes of one micro-batch that stage p keeps from its forward to its backward: the
    forward tensors its backward ops read (with recomputation, the blocks' inputs), its own
    and those it received."""
    g = em.train
    kept = {t for o in em.bwd[p] for t in (*o.inputs, *o.saved)
            if g.op(t).phase == "forward"}
    return sum(output_bytes(g.op(t)) if em.part[t] == p else g.op(t).out.nbytes
               for t in sorted(kept))


def megatron_extras(result, plan) -> dict:
    em, lay, m = plan.emitter, plan.layout, plan.micro_batches
    names = em.names
    reps = names.devices
    times = task_times(result)
    flush = max(times[names.done(p, "B", mb)][1] for p in range(lay.pp)
                for mb in range(m))
    compute: dict[str, list] = {d: [] for d in reps}
    comm: dict[str, dict[str, list]] = {d: {} for d in reps}
    for t, s, e in zip(result.log.tasks, result.log.start_s, result.log.end_s, strict=True):
        if t.device not in compute or not e > s:
            continue
        if t.category == "compute":
            compute[t.device].append((s, e, "mb" in t.meta))
        elif t.category == "comm" and (kind := comm_kind(t.name)):
            comm[t.device].setdefault(kind, []).append((s, e))
    spans = {d: [(s, e) for s, e, _ in compute[d]] for d in reps}
    # a stage's work in its units: its compute and the tensor-parallel collectives it waits
    # for; the rest of the time to the flush it waits for the other stages
    busy = [_union_length([(s, e) for s, e, unit in compute[d] if unit]
                          + comm[d].get("tensor_parallel", [])) for d in reps]
    kinds = ("tensor_parallel", "pipeline_p2p", "data_parallel", "embedding")
    exposed = {k: [_subtract_length(comm[d].get(k, []), spans[d]) for d in reps]
               for k in kinds}
    inflight = in_flight(times, names, list(range(m)))
    n = len(plan.cluster.devices)
    achieved = result.achieved_flops_per_s
    memory = {}
    for p, d in enumerate(reps):
        memory[d] = {"stage": p,
                     "peak_bytes": int(result.peak_memory_bytes.get(d, 0)),
                     "resident_bytes": int(plan.tasks.meta["resident_bytes"][d]),
                     "activation_bytes_per_micro_batch": kept_bytes(em, p),
                     "in_flight_micro_batches": int(inflight[p])}
    # the forwards recomputed, per GPU (a stage's ranks alike), on top of the model's FLOPs:
    # what a count of the FLOPs the GPUs run (Narayanan et al.'s) includes
    recomputed = sum(o.flops for p in range(lay.pp) for o in em.bwd[p]
                     if o.name.endswith(SUFFIX)) / lay.pp * m
    step = result.iteration_time_s
    tp_info = plan.tasks.meta["tensor_parallel"]
    return {
        **plan.options, "micro_batch_size": plan.graph.batch,
        "global_batch": plan.graph.batch * m * lay.dp, "rank_order": RANK_ORDER,
        "blocks_per_stage": plan.stage_blocks, "simulated_ranks": reps,
        "pipeline_flush_s": flush,
        # per stage, the share of the time to the flush it spends neither computing nor in
        # its tensor-parallel collectives ((pp - 1) / (m + pp - 1) on equal stages whose
        # sends take no time)
        "bubble_fraction": [1.0 - b / flush if flush > 0 else 0.0 for b in busy],
        "exposed_communication_s": {k: v for k, v in exposed.items() if any(v)},
        "achieved_tflops_per_gpu": achieved / n / 1e12 if achieved is not None else None,
        "hardware_tflops_per_gpu": (achieved / n + recomputed / step) / 1e12
        if achieved is not None and step > 0 else None,
        "model_flops_utilisation": result.model_flops_utilisation,
        "tensor_parallel_collective_bytes_per_step": sum(tp_info["collective_bytes"]),
        "memory": memory,
    }
