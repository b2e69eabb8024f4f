"""`supernet-dp`: conventional data-parallel supernet training, the baseline of path parallelism.

One subnet per step over all N GPUs: each GPU runs the subnet on batch/N samples, the gradients
of the weights that subnet used are all-reduced in DDP-style buckets during the backward pass,
and every GPU applies the updates. `paths` steps are simulated back to back (the same paths
path-parallel draws with the same seed), so an iteration is one subnet step and throughput is
samples x subnets per second. GPUs run in lockstep: GPU 0 is simulated, the collectives span
every GPU.
"""
from __future__ import annotations

from workloads.supernet import merged_graph
from workloads.training import OPTIMIZER_STATE_PER_PARAM, lower_training

from ..tasks import TaskGraph
from . import Option, Policy, register
from .supernet_common import (emit_fwd_bwd, emit_updates, exchange, path_options, split_batch,
                              step_paths, supernet_space, weight_gradients)


def supernet_param_bytes(space, dtype_bytes: int = 4) -> int:
    """Bytes of every weight of the supernet (all candidates of every block)."""
    seen: dict[str, int] = {}
    for c in range(space.num_choices):
        g = merged_graph(space, [(c,) * space.num_blocks], 1, dtype_bytes=dtype_bytes)
        for op in g:
            if op.params:
                seen[op.attrs["supernet_param"]] = op.param_bytes
    return sum(seen.values())


def resident_supernet_bytes(space, train, dtype_bytes: int = 4) -> int:
    """The whole supernet's weights and optimizer state, plus the gradients of a step's ops."""
    state = OPTIMIZER_STATE_PER_PARAM[train.meta.get("optimizer", "sgd-momentum")]
    grads = sum(op.param_bytes for op in train.phase("forward"))
    return supernet_param_bytes(space, dtype_bytes) * (1 + state) + grads


@register
class SupernetDataParallel(Policy):
    def __init__(self) -> None:
        super().__init__(
            name="supernet-dp",
            description="Conventional supernet training: one subnet per step, data parallel "
                        "over all GPUs, its gradients all-reduced.",
            options={**path_options(4),
                     "bucket_mb": Option(25.0, "gradient bucket size in MB (PyTorch DDP: 25)",
                                         float, lambda v: v > 0, "a number > 0")},
            training_only=True)

    def plan(self, graph, cluster, training: bool, paths=4, seed=0, subnets=None,
             collectives="flow", bucket_mb=25.0) -> TaskGraph:
        space = supernet_space(graph, self.name)
        chosen = step_paths(space, paths, seed, subnets)
        n = len(cluster.devices)
        per_gpu = split_batch(graph.batch, n, self.name, "data parallel over every GPU")
        dev = cluster.devices[0]
        dtype = graph.input_op.out.dtype_bytes
        tg = TaskGraph(f"supernet-dp:{space.name}",
                       meta={"samples": graph.batch, "iterations": len(chosen)})
        after: list[str] = []
        resident = 0
        for k, path in enumerate(chosen):
            train = lower_training(merged_graph(space, [path], per_gpu, dtype_bytes=dtype))
            resident = max(resident, resident_supernet_bytes(space, train, dtype))
            prefix = f"step{k}/"
            fb = emit_fwd_bwd(tg, train, dev, prefix, after, meta={"step": k})
            grads = weight_gradients(train)
            size_of = {key: nbytes for _, key, nbytes in grads}
            producers = {key: [fb.task_of[name]] for name, key, _ in grads}
            done = exchange(tg, cluster, [(f"step{k}", [key for _, key, _ in grads], size_of,
                                           producers)], bucket_mb * 1e6, collectives)
            after = emit_updates(tg, train, dev, prefix, fb.task_of, done,
                                 priority_base=len(fb.order), meta={"step": k})
        tg.meta["resident_bytes"] = {dev.id: resident}
        return tg

    def finalize(self, result, graph, cluster, training: bool, **opts) -> None:
        space = supernet_space(graph, self.name)
        chosen = step_paths(space, opts["paths"], opts["seed"], opts["subnets"])
        per_gpu = graph.batch // len(cluster.devices)
        flops = grad_bytes = 0.0
        for path in chosen:
            train = lower_training(merged_graph(space, [path], per_gpu))
            flops += train.flops() * len(cluster.devices)
            grad_bytes += sum(nbytes for _, _, nbytes in weight_gradients(train))
        result.extras.update({
            "subnets": len(chosen), "step_flops": flops / len(chosen),
            "gradient_bytes_per_subnet": grad_bytes / len(chosen),
            "subnets_per_s": len(chosen) / result.makespan_s if result.makespan_s else 0.0,
        })
