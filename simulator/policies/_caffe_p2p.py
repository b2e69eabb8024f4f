"""Stock Caffe's multi-GPU step before NCCL (BVLC Caffe rc3 to rc5, 2015-2017,
src/caffe/parallel.cpp, class P2PSync): data-parallel's gradient_sync 'caffe-p2p'.

- The GPUs form a tree of pairs (DevicePair::compute): in each of ceil(log2 p) rounds, every
  GPU still left pairs with the next one left that it has peer access to, and the second of
  each pair leaves, a child of the first. Every GPU of one machine is taken to reach every
  other (peer access over one PCIe or NVLink fabric), so GPU 0 is the root and pairs in every
  round: on 8 GPUs its children are 1, 2 and 4, 4's are 5 and 6, 2's is 3 and 6's is 7.
- Each child allocates a buffer of the whole gradient on its parent (parent_grads_).
- A step (Solver::Step with P2PSync's callbacks):
  1. on_start: a GPU waits for its parent's copy of the weights, then copies its weights to
     each of its children, the last child first, each copy synchronous (cudaMemcpyAsync on
     the default stream, then cudaStreamSynchronize), and only then runs its forward pass;
  2. forward and backward on every GPU, nothing sent meanwhile;
  3. on_gradients_ready: a GPU adds each child's gradient, as it arrives in the buffer, into
     its own (caffe_gpu_add: a memory-bound kernel reading two gradients, writing one), then
     copies the sum into its parent's buffer; the root scales the sum by 1/p (caffe_gpu_scal);
  4. only the root updates the weights (a WorkerSolver's ApplyUpdate does nothing, and it
     keeps no momentum history); the next step's broadcast carries them.
Every copy moves the whole gradient (or all the weights) over the link between the pair, so
the root's link carries ceil(log2 p) full copies each way per step.

Not modelled: GPUs without peer access to each other (two PCIe root complexes: Caffe then
pairs them last and the driver stages their copies through host memory), and the host
threads' queue hand-offs.
"""
from __future__ import annotations

import math

from workloads.graph import Op, TensorSpec

from ..tasks import TaskGraph
from . import ConfigError

SYNC = "caffe-p2p"


def p2p_pairs(devices: list[str]) -> list[tuple[str, str]]:
    """(parent, child) pairs in the order DevicePair::compute makes them when every device
    has peer access to every other: round by round, each device left pairs with the next
    one left, which then leaves."""
    remaining = list(devices)
    pairs: list[tuple[str, str]] = []
    for _ in range(pairing_rounds(len(devices))):
        i = 0
        while i < len(remaining) - 1:
            pairs.append((remaining[i], remaining.pop(i + 1)))
            i += 1
    return pairs


def pairing_rounds(p: int) -> int:
    """Rounds of pairing DevicePair::compute runs: ceil(log2 p)."""
    return math.ceil(math.log2(p)) if p > 1 else 0


def children_of(devices: list[str]) -> dict[str, list[str]]:
    """Each device's children in the tree, in the order they were paired with it."""
    children: dict[str, list[str]] = {d: [] for d in devices}
    for parent, child in p2p_pairs(devices):
        children[parent].append(child)
    return children


def receive_buffer_bytes(devices: list[str], gradient_bytes: float) -> dict[str, int]:
    """What each device holds for its children's gradients: one buffer of the whole gradient
    per child (P2PSync's parent_grads_, allocated on the parent)."""
    return {d: int(len(kids) * gradient_bytes) for d, kids in children_of(devices).items()}


def check_caffe_p2p(cluster, *, replicas: str | None, collectives: str | None,
                    algorithm: str | None) -> None:
    """Refuse, by name, what P2PSync cannot run or what has no meaning for it."""
    if cluster.nodes > 1:
        raise ConfigError(f"gradient_sync {SYNC!r} is Caffe's P2PSync, which runs within one "
                          f"machine: the cluster has {cluster.nodes} nodes")
    others = sorted({d.spec.kind for d in cluster.devices if d.spec.kind != "gpu"})
    if others:
        raise ConfigError(f"gradient_sync {SYNC!r} copies between GPUs (CUDA peer copies): "
                          f"the cluster has {', '.join(others)} devices")
    if replicas not in (None, "all"):
        raise ConfigError(f"gradient_sync {SYNC!r} gives each GPU its own place in the tree: "
                          f"every replica is simulated (replicas {replicas!r} refused)")
    if collectives not in (None, "link"):
        raise ConfigError(f"gradient_sync {SYNC!r} is built from link transfers "
                          f"(collectives {collectives!r} refused)")
    if algorithm not in (None, "ring"):
        raise ConfigError(f"gradient_sync {SYNC!r} reduces up its tree of pairs: the "
                          f"all-reduce algorithm {algorithm!r} does not apply")


def gradient_add_op(gradient_bytes: float, dtype_bytes: int, name: str,
                    scale: float | None = None) -> Op:
    """caffe_gpu_add over the gradient (a + b into b), or with `scale` caffe_gpu_scal (x * scale
    in place), as an op the device model costs as a memory-bound kernel."""
    n = max(1, int(gradient_bytes // dtype_bytes))
    spec = TensorSpec((n,), dtype_bytes)
    if scale is None:
        return Op(name, "add", ("a", "b"), (spec, spec), spec, phase="update")
    return Op(name, "scalar", ("a",), (spec,), spec, attrs={"scale": scale, "shift": 0.0},
              phase="update")


def p2p_broadcast(tg: TaskGraph, cluster, gradient_bytes: float,
                  setup: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """on_start: the weights copied down the tree, each parent sending to its children last
    first, one after another, after it has received its own. Returns per device the tasks its
    forward pass waits for (its receive and its sends). setup: what each device's first copy
    waits for (its buffers allocated)."""
    ids = [d.id for d in cluster.devices]
    children = children_of(ids)
    ready: dict[str, tuple[str, ...]] = {ids[0]: setup[ids[0]]}
    for parent in ids:          # a parent precedes its children in device order
        after = ready[parent]
        for child in reversed(children[parent]):
            resources, duration = cluster.transfer(parent, child, gradient_bytes)
            sent = tg.new(f"p2p.bcast.{parent}-{child}", resources, duration,
                          deps=(*after, *setup[child]), priority=-1, category="comm",
                          device=parent, meta={"bytes": gradient_bytes, "src": parent,
                                               "dst": child, "collective": "broadcast"}).name
            ready[child] = (sent,)
            after = (sent,)
        ready[parent] = after
    return ready


def p2p_reduce(tg: TaskGraph, cluster, gradient_bytes: float, dtype_bytes: int,
               backward_done: dict[str, str]) -> str:
    """on_gradients_ready: up the tree, each device adding its children's gradients into its
    own as they arrive, then copying the sum into its parent's buffer; the root scales the
    sum by 1/p. Returns the task after which the root's gradient is final."""
    ids = [d.id for d in cluster.devices]
    children = children_of(ids)
    summed: dict[str, str] = {}
    for dev in reversed(ids):    # children come after their parent in device order
        device = cluster.device(dev)
        adds = []
        for child in children[dev]:
            resources, duration = cluster.transfer(child, dev, gradient_bytes)
            copy = tg.new(f"p2p.reduce.{child}-{dev}", resources, duration,
                          deps=(summed[child],), priority=-1, category="comm", device=child,
                          meta={"bytes": gradient_bytes, "src": child, "dst": dev,
                                "collective": "reduce"}).name
            op = gradient_add_op(gradient_bytes, dtype_bytes, f"p2p.add.{child}")
            adds.append(tg.new(f"{dev}/p2p.add.{child}", device.compute,
                               device.model.op_time_s(op), deps=(backward_done[dev], copy),
                               priority=-1, category="compute", device=dev,
                               meta={"op": op.name, "kind": op.kind, "phase": "update"}).name)
        summed[dev] = tg.new(f"{dev}/p2p.summed", device.compute, 0.0,
                             deps=(backward_done[dev], *adds), priority=-1,
                             category="compute", device=dev).name
    root = cluster.device(ids[0])
    if len(ids) == 1:           # one GPU: Caffe runs no P2PSync
        return summed[root.id]
    op = gradient_add_op(gradient_bytes, dtype_bytes, "p2p.scale", scale=1.0 / len(ids))
    return tg.new(f"{root.id}/p2p.scale", root.compute, root.model.op_time_s(op),
                  deps=(summed[root.id],), priority=-1, category="compute", device=root.id,
                  meta={"op": op.name, "kind": op.kind, "phase": "update"}).name
