"""`caffe`: plain training with stock Caffe's memory behaviour (the baseline of AccUDNN's
"larger minibatch"): what Caffe allocates when it sets a net up (every blob's data and diff,
the layers' own buffers, every parameter's data, diff and momentum) stays allocated for the
whole step (simulator/policies/_framework_memory.py). A zero-time set-up
task allocates all of it before the first op (as Caffe's Net::Init does), so the engine runs
out of memory there when it does not fit; ops then run one after another as `none`'s do, and
allocate nothing of their own."""
from __future__ import annotations

from workloads.training import lower_training

from ..lowering import emit_ops
from ..tasks import TaskGraph
from . import Policy, register
from ._framework_memory import caffe_training_bytes


@register
class StockCaffe(Policy):
    def __init__(self) -> None:
        super().__init__(name="caffe", training_only=True,
                         description="Plain training whose memory is stock Caffe's: every "
                                     "blob, its gradient and each layer's buffers for the "
                                     "whole net, no reuse.")

    def plan(self, graph, cluster, training: bool, **opts) -> TaskGraph:
        g = lower_training(graph)
        dev = cluster.devices[0]
        tg = TaskGraph(f"{self.name}:{graph.name}", meta={"samples": graph.batch})
        setup = tg.new("caffe.net_init", dev.compute, 0.0,
                       alloc={dev.id: caffe_training_bytes(graph)}, category="compute",
                       device=dev.id)
        emit_ops(tg, g, dev, track_memory=False,
                 extra_deps={op.name: [setup.name] for op in g.topo()})
        return tg
