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
"""
from __future__ import annotations

from hwmodels.arm import ARMModel

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
