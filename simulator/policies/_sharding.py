"""What sharded data parallelism (`fsdp`) keeps on each device: the wrapping units and the
bytes of the training state each ZeRO stage shards (Rajbhandari et al., SC 2020, section 5).

Mixed precision as ZeRO and FSDP's MixedPrecision(param_dtype=half, reduce_dtype=half) run
it: under AMP the forward and backward read half parameters (2 bytes each) and make half
gradients (2 bytes each, reduced in half); the optimizer holds the FP32 master weights and
its state (Adam: 4 + 8 bytes, ZeRO's K = 12). The total per parameter is what this project's
AMP keeps for data parallelism (FP32 weights and gradients, FP32 state:
lowering.resident_bytes), so every stage starts from the same baseline. In FP32 and pure
half precision the parameters are their own master copy: P = G = the storage width, the
optimizer holds its state alone. Per device, with Psi parameters over N ranks:
  stage 1 (optimizer state sharded)      (P + G) Psi + K Psi / N
  stage 2 (+ gradients)                   P Psi + (G + K) Psi / N
  stage 3 (+ parameters: FSDP FULL_SHARD) (P + G + K) Psi / N
A unit's shard is padded up to a whole 1/N, as FSDP pads its flat parameters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from workloads.graph import Op, OpGraph
from workloads.training import OPTIMIZER_STATE_PER_PARAM

from ..lowering import HALF_BYTES, is_amp

ROOT = "(root)"      # the unit of every parameter outside a numbered block
STAGES = (1, 2, 3)


def wrap_unit(name: str) -> str:
    """The unit an op belongs to, as FSDP's auto-wrap policies wrap a model (ModuleWrapPolicy
    or transformer_auto_wrap_policy on the decoder layer, a ResNet's Bottleneck): its name up
    to the first numbered part that is not the last ('model.layers.4' of
    'model.layers.4.mlp.up_proj', 'layer1.0' of 'layer1.0.conv1'). Everything outside such a
    block (embeddings, a final norm, the head, a stem) is the root unit's."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ROOT


@dataclass(frozen=True)
class StateBytes:
    """Bytes of parameters as computed on (P), of their gradients (G) and of what the
    optimizer holds (K: master weights under AMP, and its state)."""
    params: int
    grads: int
    optimizer: int

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer

    def __add__(self, other: StateBytes) -> StateBytes:
        return StateBytes(self.params + other.params, self.grads + other.grads,
                          self.optimizer + other.optimizer)


NO_STATE = StateBytes(0, 0, 0)


def op_state_bytes(op: Op, amp: bool, optimizer: str) -> StateBytes:
    """The state of one forward op's parameters, whole (module notes)."""
    state = OPTIMIZER_STATE_PER_PARAM[optimizer]
    if amp:
        return StateBytes(op.params * HALF_BYTES, op.params * HALF_BYTES,
                          op.param_bytes * (1 + state))
    return StateBytes(op.param_bytes, op.param_bytes, op.param_bytes * state)


def units_of(train: OpGraph) -> dict[str, StateBytes]:
    """Each unit's whole state, in the order the forward pass first uses it (the root first
    when it holds parameters)."""
    amp = is_amp(train)
    optimizer = train.meta.get("optimizer", "sgd-momentum")
    units: dict[str, StateBytes] = {}
    for op in train.topo():
        if op.phase == "forward" and op.param_bytes:
            unit = wrap_unit(op.name)
            units[unit] = units.get(unit, NO_STATE) + op_state_bytes(op, amp, optimizer)
    if ROOT in units:
        units = {ROOT: units[ROOT], **{k: v for k, v in units.items() if k != ROOT}}
    return units


def _shard(nbytes: int, ranks: int) -> int:
    return math.ceil(nbytes / ranks)


def resident_state_bytes(units: dict[str, StateBytes], stage: int, ranks: int) -> StateBytes:
    """What one of `ranks` devices sharding the state keeps for the whole step under ZeRO
    `stage` (module notes); the units in flight come on top."""
    if stage not in STAGES:
        raise ValueError(f"ZeRO stage must be one of {STAGES}, got {stage!r}")
    whole = sum(units.values(), NO_STATE)
    optimizer = sum(_shard(u.optimizer, ranks) for u in units.values())
    grads = whole.grads if stage == 1 else sum(_shard(u.grads, ranks) for u in units.values())
    params = whole.params if stage < 3 else sum(_shard(u.params, ranks)
                                                for u in units.values())
    return StateBytes(params, grads, optimizer)
