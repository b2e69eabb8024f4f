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
from dataclasses import dataclass, replace

from workloads.graph import Op, OpGraph, TensorSpec
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


def flat_parameter_updates(train: OpGraph) -> OpGraph:
    """The training graph as FSDP's optimizer steps it: FSDP flattens each unit's parameters
    into one FlatParameter (use_orig_params=False, its default), so the optimizer holds one
    tensor per unit. Each unit's layer updates become one update of all the unit's values, a
    tensor of its own, after every gradient of the unit."""
    layers = [op for op in train.ops if op.phase == "update"]
    by_unit: dict[str, list[Op]] = {}
    for op in layers:
        by_unit.setdefault(wrap_unit(op.forward or op.name), []).append(op)
    flat = OpGraph(train.name, train.meta)
    for op in train.ops:
        if op.phase != "update":
            flat.add(op)
    for u, v, data in train.g.edges(data=True):
        if "tensor" not in data and u in flat and v in flat:
            flat.add_dependency(u, v)
    for unit, ups in by_unit.items():
        params = sum(op.params for op in ups)
        flat.add(replace(
            ups[0], name=f"fsdp.flat_update.{unit}", params=params,
            inputs=tuple(t for op in ups for t in op.inputs),
            in_specs=tuple(s for op in ups for s in op.in_specs),
            out=TensorSpec((params,), ups[0].out.dtype_bytes),
            attrs={**ups[0].attrs, "tensors": 1, "step_tensors": len(by_unit)}))
    return flat
