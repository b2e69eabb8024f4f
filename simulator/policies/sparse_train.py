"""`sparse-train` and `dense-direct`: convolutions on a CPU that skip ReLU zeros (SparseTrain,
PACT 2020), and their dense direct-convolution baseline.

Every op runs as work items on the CPU's cores (resource `{dev}.cores`): a convolution pass is
split into `items_per_core * cores` output blocks, each with its own sparsity around the
layer's, so cores that drew denser blocks finish later and the others wait (load imbalance
appears by itself); any other op is one item per core for the whole-device time of the CPU
model. A zero-time marker per op on `{dev}.compute` joins its items and carries the tensor
lifetimes (simulator/lowering.emit_ops).

Which zeros each pass skips (the streamed operand of the direct conv):
- forward and backward-by-weights: the conv's input activation (a ReLU output, or a max-pool
  or view of one; the network's input is dense);
- backward-by-input: the gradient of the conv's output. It is sparse only when the conv's
  output reaches a ReLU through nothing but adds (then its zeros are the ReLU's); a batch norm
  in between makes it dense.
With `fallback_dense` (default) a pass whose sparsity does not pay for the detection cost runs
the dense kernel: SparseTrain checks the sparsity of each tensor (counted while the ReLU writes
it) before choosing.
"""
from __future__ import annotations

import numpy as np

from hwmodels.cpu_conv import PASS_OF_KIND, CPUDirectConv
from workloads.graph import OpGraph
from workloads.training import lower_training

from ..lowering import emit_ops, resident_bytes
from ..tasks import TaskGraph
from . import ConfigError, Option, Policy, parse_bool, register
from . import _sparsity as profiles

# Forward ops through which ReLU zeros reach the next conv's input unchanged (or fewer).
_PASS_THROUGH = frozenset({"maxpool", "flatten", "dropout"})


def input_sparsity(graph: OpGraph, tensor: str, profile: profiles.SparsityProfile,
                   epoch) -> float:
    """Fraction of zeros of a forward tensor as the profile sees it."""
    op = graph.op(tensor)
    if profile.has(tensor):
        return profile.at(tensor, epoch)
    if op.kind == "relu" and profile.constant is not None:
        return profile.constant
    if op.kind in _PASS_THROUGH and op.inputs:
        # max-pooling a ReLU output keeps most of its zeros; without a row of its own, take
        # the ReLU's (an upper bound)
        return input_sparsity(graph, op.inputs[0], profile, epoch)
    return 0.0


def output_grad_sparsity(graph: OpGraph, conv: str, profile: profiles.SparsityProfile,
                         epoch) -> float:
    """Fraction of zeros of d(loss)/d(conv output): the ReLU's mask, if only adds are between."""
    name = conv
    while True:
        succ = list(graph.successors(name))
        if len(succ) != 1:
            return 0.0
        nxt = graph.op(succ[0])
        if nxt.kind == "add":       # an add passes its gradient unchanged to both inputs
            name = nxt.name
            continue
        if nxt.kind == "relu":
            return input_sparsity(graph, nxt.name, profile, epoch)
        return 0.0                  # batch norm, pooling, ...: a dense gradient


def conv_pass_sparsity(forward: OpGraph, op, profile, epoch) -> float:
    """The sparsity a conv pass streams: input activation or output gradient."""
    conv = forward.op(op.forward or op.name)
    if PASS_OF_KIND[op.kind] == "grad_input":
        return output_grad_sparsity(forward, conv.name, profile, epoch)
    return input_sparsity(forward, conv.inputs[0], profile, epoch)


def _check_spread(v: float) -> bool:
    return 0.0 <= v <= 0.5


@register
class SparseTrain(Policy):
    dense_default = False

    def __init__(self) -> None:
        super().__init__(
            name="sparse-train",
            description="SparseTrain (PACT 2020): the CPU's direct convolutions skip the zeros "
                        "ReLU leaves in activations and gradients; every op runs core by core.",
            options={
                "sparsity": Option("authors", "profile: 'authors' (or 'authors:<network>'), "
                                   "'measured', 'constant:<0..1>' or a CSV path", str),
                "epoch": Option("mean", "epoch of the profile: 'mean' (mean over all epochs, "
                                "the default), 'first', 'last' or an epoch number",
                                profiles.parse_epoch,
                                expect="'mean', 'first', 'last' or an epoch number >= 1"),
                "dense": Option(self.dense_default, "run the dense direct-conv baseline",
                                parse_bool, expect="true or false"),
                "fallback_dense": Option(True, "use the dense kernel where the sparse one "
                                         "would be slower", parse_bool, expect="true or false"),
                "items_per_core": Option(4, "work items (output blocks) per core per conv pass",
                                         int, lambda v: 1 <= v <= 64, "an integer in 1..64"),
                "spread": Option(0.03, "spread of the sparsity between work items (std at "
                                 "s = 0.5; unknown in the paper)", float, _check_spread,
                                 "a number in [0, 0.5]"),
                "seed": Option(0, "seed of the work items' sparsity draw", int),
            })

    def plan(self, graph, cluster, training: bool, **opts) -> TaskGraph:
        dev = cluster.devices[0]
        if dev.spec.kind != "cpu":
            raise ConfigError(f"policy {self.name!r} runs on a CPU (kind 'cpu'); "
                              f"{dev.spec.name!r} is a {dev.spec.kind}")
        if len(cluster.devices) != 1:
            raise ConfigError(f"policy {self.name!r} simulates one CPU, got "
                              f"{len(cluster.devices)} devices")
        dense = opts["dense"]
        profile = None if dense else profiles.resolve(opts["sparsity"], graph)
        if profile is not None:
            profile.check_matches(graph)
        conv = CPUDirectConv(dev.spec)
        rng = np.random.default_rng(opts["seed"])
        g = lower_training(graph) if training else graph
        tg = TaskGraph(f"{self.name}:{graph.name}",
                       meta={"samples": graph.batch,
                             "resident_bytes": {dev.id: resident_bytes(g, training)}})
        items: dict[str, list[tuple[float, dict]]] = {}
        n_items = opts["items_per_core"] * conv.cores
        for op in g.topo():
            if op.is_view:
                continue
            if op.kind in PASS_OF_KIND:
                items[op.name] = self._conv_items(graph, op, conv, profile, n_items, rng, opts)
            else:
                items[op.name] = [(dev.model.op_time_s(op), {})] * conv.cores
        names = {op: [f"{op}#{i}" for i in range(len(v))] for op, v in items.items()}
        em = emit_ops(tg, g, dev, duration=lambda op: 0.0, extra_deps=names)
        for i, op in enumerate(g.topo()):
            if op.name not in items:
                continue
            deps = [em.task_of[p] for p in g.predecessors(op.name)]
            for name, (dur, meta) in zip(names[op.name], items[op.name], strict=True):
                tg.new(name, dev.cores, dur, deps=deps, priority=i, category="compute",
                       device=dev.id, meta={"op": op.name, "kind": op.kind, "phase": op.phase,
                                            "work_item": True, **meta})
        return tg

    @staticmethod
    def _conv_items(forward: OpGraph, op, conv: CPUDirectConv, profile, n_items, rng, opts):
        base = {"pass": PASS_OF_KIND[op.kind],
                "layer": forward.op(op.forward or op.name).layer}
        if profile is None:
            return [(d, {**base, "kernel": "dense", "sparsity": 0.0})
                    for d in conv.work_items_s(op, n_items)]
        s = conv_pass_sparsity(forward, op, profile, opts["epoch"])
        if opts["fallback_dense"] and conv.sparse_cycles(op, s) >= conv.dense_cycles(op):
            return [(d, {**base, "kernel": "dense", "sparsity": s})
                    for d in conv.work_items_s(op, n_items)]
        durs = conv.work_items_s(op, n_items, s, opts["spread"], rng)
        return [(d, {**base, "kernel": "sparse", "sparsity": s}) for d in durs]

    def finalize(self, result, graph, cluster, training: bool, **opts) -> None:
        """extras['conv_passes']: per conv pass its span (first item start to last end),
        sparsity and kernel; extras['conv_time_s']: their sum over non-initial layers."""
        spans: dict[str, list] = {}
        for t, s, e in zip(result.log.tasks, result.log.start_s, result.log.end_s, strict=True):
            m = t.meta
            if m.get("work_item") and "pass" in m:
                row = spans.setdefault(m["op"], [s, e, m])
                row[0], row[1] = min(row[0], s), max(row[1], e)
        rows = [{"op": op, "pass": m["pass"], "layer": m["layer"], "sparsity": m["sparsity"],
                 "kernel": m["kernel"], "span_s": e - s} for op, (s, e, m) in spans.items()]
        result.extras["conv_passes"] = rows
        result.extras["conv_time_s"] = sum(r["span_s"] for r in rows if (r["layer"] or 0) > 1)


@register
class DenseDirect(SparseTrain):
    """The same CPU, every conv pass on the dense direct-conv kernel (MKL-DNN's)."""
    dense_default = True

    def __init__(self) -> None:
        super().__init__()
        self.name = "dense-direct"
        self.description = ("Dense direct convolution on a CPU (the SparseTrain baseline, "
                            "MKL-DNN-like), every op core by core.")
