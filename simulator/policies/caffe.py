"""`caffe`: plain training with stock Caffe's memory behaviour (the baseline of AccUDNN's
"larger minibatch"): what Caffe allocates when it sets a net up (every blob's data and diff,
the layers' own buffers, every parameter's data, diff and momentum) stays allocated for the
whole step (simulator/policies/_framework_memory.py). A zero-time set-up
task allocates all of it before the first op (as Caffe's Net::Init does), so the engine runs
out of memory there when it does not fit; ops then run one after another as `none`'s do, and
allocate nothing of their own."""
from __future__ import annotations

from ..tasks import TaskGraph
from . import Policy, register
from ._framework_memory import caffe_training_bytes, plan_static_footprint


@register
class StockCaffe(Policy):
    def __init__(self) -> None:
        super().__init__(name="caffe", training_only=True,
                         description="Plain training whose memory is stock Caffe's: every "
                                     "blob, its gradient and each layer's buffers for the "
                                     "whole net, no reuse.")

    def plan(self, graph, cluster, training: bool, **opts) -> TaskGraph:
        return plan_static_footprint(self.name, graph, cluster, caffe_training_bytes(graph))
