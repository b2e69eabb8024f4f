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
from workloads.training import lower_training

from ..tasks import TaskGraph
from . import Option, Policy, register
from ._data_parallel import algorithm_option, default_algorithm, record_algorithm
from ._supernet import (
    SupernetPlan,
    emit_fwd_bwd,
    emit_updates,
    exchange,
    path_options,
    resident_supernet_bytes,
    split_batch,
    step_paths,
    supernet_space,
    weight_gradients,
)


@register
class SupernetDataParallel(Policy[SupernetPlan]):
    def __init__(self) -> None:
        super().__init__(
            name="supernet-dp",
            description="Conventional supernet training: one subnet per step, data parallel "
                        "over all GPUs, its gradients all-reduced.",
            options={**path_options(4),
                     "bucket_mb": Option(25.0, "gradient bucket size in MB (PyTorch DDP: 25)",
                                         float, lambda v: v > 0, "a number > 0"),
                     "algorithm": algorithm_option()},
            training_only=True)

    def plan(self, graph, cluster, training: bool, **opts) -> SupernetPlan:
        paths, seed, subnets = opts["paths"], opts["seed"], opts["subnets"]
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
        flops = grad_bytes = 0.0
        for k, path in enumerate(chosen):
            train = lower_training(merged_graph(space, [path], per_gpu, dtype_bytes=dtype))
            resident = max(resident, resident_supernet_bytes(space, train, dtype))
            prefix = f"step{k}/"
            fb = emit_fwd_bwd(tg, train, dev, prefix, after, meta={"step": k})
            grads = weight_gradients(train)
            flops += train.flops() * n
            grad_bytes += sum(nbytes for _, _, nbytes in grads)
            size_of = {key: nbytes for _, key, nbytes in grads}
            producers = {key: [fb.task_of[name]] for name, key, _ in grads}
            done = exchange(tg, cluster, [(f"step{k}", [key for _, key, _ in grads], size_of,
                                           producers)], opts["bucket_mb"] * 1e6,
                            opts["collectives"],
                            opts["algorithm"] or default_algorithm(cluster))
            after = emit_updates(tg, train, dev, prefix, fb.task_of, done,
                                 priority_base=len(fb.order), meta={"step": k})
        tg.meta["resident_bytes"] = {dev.id: resident}
        figures = {"subnets": len(chosen), "step_flops": flops / len(chosen),
                   "gradient_bytes_per_subnet": grad_bytes / len(chosen)}
        return SupernetPlan(tg, graph, cluster, training, opts, space, tuple(chosen), figures)

    def finish(self, result, plan: SupernetPlan) -> None:
        subnets = len(plan.paths)
        result.extras.update({
            **plan.figures,
            "subnets_per_s": subnets / result.makespan_s if result.makespan_s else 0.0,
        })
        record_algorithm(result, plan.cluster, plan.options["algorithm"])
