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

The split-inference policies (_channel_split_tasks.py) make the stack's tasks with their
messages; `pay_tcp_stacks` adds them to a task graph whose transfers are made elsewhere (the
collectives of data parallelism), so that boards training data-parallel pay the same.
"""
from __future__ import annotations

from hwmodels.arm import ARMModel

from ..tasks import TaskGraph

EAGER_LIMIT_BYTES = 65_536        # Open MPI btl_tcp_eager_limit (and btl_tcp_rndv_eager_limit)


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
    """Add the TCP/IP stack's tasks to every transfer in `tg` between devices of `cluster`
    (a comm task whose meta names its bytes, src and dst): the sender's on its compute stream
    when the transfer may start, the receiver's on its compute stream once the bytes have
    arrived (after the network's latency where a flight task carries it), and what the
    receiver does with the arrival waits for its stack too (the sender's own next step does
    not). Flow-level collectives (one task for a whole collective) name no pair and pay only
    the wire. Returns the number of stack tasks added."""
    if not any(isinstance(d.model, ARMModel) for d in cluster.devices):
        return 0      # nothing to add: no pass over a GPU cluster's many transfers
    devices = {d.id: d for d in cluster.devices}
    # Built by symmetry class (collectives.py, "Symmetry"), a hop into a device that is not
    # built stands for the one into its representative, which receives alike at that time
    period = cluster.symmetry_period() if tg.meta.get("replicas") == "classes" else None
    ids = [d.id for d in cluster.devices]
    representative = {d: ids[i % period] for i, d in enumerate(ids)} if period else {}
    arrival = {t.meta["latency_of"]: t.name for t in tg if "latency_of" in t.meta}
    # the task that marks a message's arrival -> (its receiver's stack task, the receiver)
    received: dict[str, tuple[str, str]] = {}
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
                      "collective": meta.get("collective")}
        send_s = send_cpu_s(src.model, nbytes)
        if send_s > 0:
            tg.new(f"{wire.name}/send_cpu", src.compute, send_s, deps=wire.deps,
                   priority=wire.priority, category="comm", device=src.id, meta=stack_meta)
            added += 1
        receive_s = receive_cpu_s(dst.model, nbytes)
        if receive_s > 0:
            arrived = arrival.get(wire.name, wire.name)
            stack = tg.new(f"{wire.name}/receive_cpu", dst.compute, receive_s,
                           deps=(arrived,), priority=wire.priority, category="comm",
                           device=dst.id, meta=stack_meta)
            received[arrived] = (stack.name, dst.id)
            added += 1
    stacks = {name for name, _ in received.values()}
    for task in tg:
        if task.name in stacks:
            continue
        more = tuple(received[d][0] for d in task.deps
                     if d in received and received[d][1] == task.device)
        if more:
            task.deps = task.deps + more
    return added
