"""`caffe`: plain training (the plan of `sequential`) under stock Caffe's memory, the baseline of
AccUDNN's "larger minibatch": every blob's data and diff and each layer's own buffers for the
whole net (simulator/framework_memory.py). The same as `--policy sequential
--framework-memory caffe`; other policies run under Caffe's memory with that setting."""
from __future__ import annotations

from ..framework_memory import FrameworkMemory
from ..tasks import TaskGraph
from . import Policy, register
from ._one_device import framework_step


@register
class StockCaffe(Policy):
    def __init__(self) -> None:
        super().__init__(name="caffe", training_only=True, any_framework_memory=True,
                         description="Plain training under stock Caffe's memory (= sequential "
                                     "with framework_memory caffe): every blob, its gradient "
                                     "and each layer's buffers for the whole net, no reuse.")

    def plan(self, graph, cluster, training: bool, **opts) -> TaskGraph:
        return framework_step(self.name, FrameworkMemory("caffe"), graph, cluster, training)
