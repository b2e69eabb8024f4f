"""A message between two boards as Open MPI sends it over TCP: the transport of DeCNN's code
(Open MPI 3.1 as Raspbian Buster packages it, the ob1 messaging layer over the tcp transport).

What a message costs besides its time on the wire:
- the CPU time of the kernel's TCP/IP stack at both ends (the board model's
  `tcp_stack_time_s`), on the cores that run the convolutions. The Arm Compute Library splits
  each kernel into one equal part per core and waits for all of them, so a core busy with the
  stack holds up the whole op: the stack's time holds the board's compute stream;
- the receiver copies what arrives in the transport's own fragment buffers into the user's
  buffer: a message up to the eager limit (btl_tcp_eager_limit, 64 KiB by default) whole, and
  a larger one's first fragment (it goes by rendezvous; the rest is written in place, the tcp
  transport supporting put).
Left out: the rendezvous round trip of a message over the eager limit (one more link latency
each way before the rest flows). It holds no port, and the engine has no resource for a delay
inside one switch; held on the ports it moved DeCNN's 4-board throughput by 0.2% on 1 GbE.
A device that is not an ARM board (a GPU, a server CPU) pays only the wire here.

Where: every transfer between boards pays, whichever policy or collective built it, because
`pay_tcp_stacks` runs on every task graph the engine runs (_runs.run_tasks) and finds the
transfers by what they say of themselves (a comm task naming its bytes, src and dst).
"""
from __future__ import annotations

from hwmodels.arm import ARMModel

from ..tasks import TaskGraph

EAGER_LIMIT_BYTES = 65_536        # Open MPI btl_tcp_eager_limit (and btl_tcp_rndv_eager_limit)
STACKS_PAID = "tcp_stack_tasks"   # tg.meta: how many stack tasks the graph holds, once paid
STACK_META_KEYS = ("collective", "sample", "op")   # what a stack task keeps of its transfer


def send_cpu_s(model: object, nbytes: float) -> float:
    """Seconds of the sender's compute a message of `nbytes` takes (0 off ARM boards)."""
    return model.tcp_stack_time_s(nbytes) if isinstance(model, ARMModel) else 0.0


def receive_cpu_s(model: object, nbytes: float) -> float:
    """Seconds of the receiver's compute: the stack, and the copy out of the transport's
    fragment buffers (0 off ARM boards)."""
    if not isinstance(model, ARMModel):
        return 0.0
    return model.tcp_stack_time_s(nbytes) + model.memcpy_time_s(min(nbytes, EAGER_LIMIT_BYTES))


def pay_tcp_stacks(tg: TaskGraph, cluster) -> int:
    """Add the TCP/IP stack's tasks to every transfer in `tg` between boards of `cluster` (a
    comm task whose meta names its bytes, src and dst), once: `tg.meta` records that it is
    done, so a graph run twice pays once. Every task graph the engine runs passes here
    (_runs.run_tasks), so no policy adds the stack itself, and none can forget it.

    The sender's stack runs on its compute stream when the transfer may start (it streams the
    bytes out as the wire carries them); the receiver's on its compute stream once the bytes
    have arrived (after the network's latency where a flight task carries it). A task that
    waits for the transfer on the receiver waits for both stacks (the message is whole once
    the sender has pushed it and the receiver has taken it in); one on the sender (an
    all-to-all's send buffer, kept until the sender's next op) for the sender's only, as an
    MPI send completes once its own stack has the bytes; one on any other device for
    neither. A send stack waits for what its transfer waits for, so a board forwarding what
    it received (a ring's next hop) waits for its receive stack too. Flow-level collectives
    (one task for a whole collective) name no pair and pay only the wire. Returns the number
    of stack tasks added."""
    if (tg.meta.get(STACKS_PAID) is not None
            or not any(isinstance(d.model, ARMModel) for d in cluster.devices)):
        return 0      # paid, or nothing to pay: no pass over a GPU cluster's many transfers
    devices = {d.id: d for d in cluster.devices}
    # Built by symmetry class (collectives.py, "Symmetry"), a hop into a device that is not
    # built stands for the one into its representative, which receives alike at that time
    period = cluster.symmetry_period() if tg.meta.get("replicas") == "classes" else None
    ids = [d.id for d in cluster.devices]
    representative = {d: ids[i % period] for i, d in enumerate(ids)} if period else {}
    arrival = {t.meta["latency_of"]: t.name for t in tg if "latency_of" in t.meta}
    # a task a transfer's waiters depend on -> {device of a waiter: the stacks it waits for}
    waits: dict[str, dict[str, tuple[str, ...]]] = {}
    receiving: set[str] = set()
    added = 0
    for wire in list(tg):
        meta = wire.meta
        if wire.category != "comm" or not {"bytes", "src", "dst"} <= meta.keys():
            continue
        src = devices.get(meta["src"])
        dst = devices.get(representative.get(meta["dst"], meta["dst"]))
        if src is None or dst is None:
            continue
        nbytes = meta["bytes"]
        stack_meta = {"tcp_bytes": nbytes, "src": src.id, "dst": meta["dst"],
                      **{k: meta[k] for k in STACK_META_KEYS if k in meta}}
        sent: tuple[str, ...] = ()
        send_s = send_cpu_s(src.model, nbytes)
        if send_s > 0:
            sent = (tg.new(f"{wire.name}/send_cpu", src.compute, send_s, deps=wire.deps,
                           priority=wire.priority, category="comm", device=src.id,
                           meta=stack_meta).name,)
            waits.setdefault(wire.name, {})[src.id] = sent
        received: tuple[str, ...] = ()
        receive_s = receive_cpu_s(dst.model, nbytes)
        arrived = arrival.get(wire.name, wire.name)
        if receive_s > 0:
            received = (tg.new(f"{wire.name}/receive_cpu", dst.compute, receive_s,
                               deps=(arrived,), priority=wire.priority, category="comm",
                               device=dst.id, meta=stack_meta).name,)
        if sent or received:
            waits.setdefault(arrived, {})[dst.id] = sent + received
        receiving.update(received)
        added += len(sent) + len(received)
    for task in tg:
        if task.name in receiving:    # it waits for the arrival alone (a send stack waits
            continue                  # for what its transfer waits for)
        more = tuple(s for d in task.deps if d in waits
                     for s in waits[d].get(task.device or "", ()))
        if more:
            task.deps = task.deps + more
    tg.meta[STACKS_PAID] = added
    return added
