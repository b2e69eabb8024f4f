"""Closed forms of the collectives (collectives.py builds them link by link): the time of
each on a cluster, for tests and for flow-level collectives. collectives.py's module notes
give the formulas and how a ring across nodes pays the network's latency."""
from __future__ import annotations

import math
from typing import Callable, Sequence

from .cluster import Cluster
from .nccl_fabric import hop_latency_s
from .node_topologies import NVLINK_TOPOLOGIES

RING_KINDS = ("allreduce", "reduce_scatter", "allgather")
RING_PASSES = {"allreduce": 2, "reduce_scatter": 1, "allgather": 1}   # each of p - 1 steps


# -- closed forms --------------------------------------------------------------------------
def ring_allreduce_s(p: int, nbytes: float, bandwidth_Bps: float, latency_s: float) -> float:
    return 0.0 if p <= 1 else 2 * (p - 1) * (latency_s + nbytes / (p * bandwidth_Bps))


def ring_gather_s(p: int, nbytes: float, bandwidth_Bps: float, latency_s: float) -> float:
    """Reduce-scatter or all-gather of S bytes per device over a ring."""
    return 0.0 if p <= 1 else (p - 1) * (latency_s + nbytes / (p * bandwidth_Bps))


def all_to_all_s(p: int, nbytes: float, bandwidth_Bps: float, latency_s: float) -> float:
    return 0.0 if p <= 1 else (p - 1) * (latency_s + nbytes / (p * bandwidth_Bps))


def tree_s(p: int, nbytes: float, bandwidth_Bps: float, latency_s: float) -> float:
    return 0.0 if p <= 1 else math.ceil(math.log2(p)) * (latency_s + nbytes / bandwidth_Bps)


CLOSED_FORMS: dict[str, Callable[[int, float, float, float], float]] = {
    "allreduce": ring_allreduce_s, "reduce_scatter": ring_gather_s, "allgather": ring_gather_s,
    "all_to_all": all_to_all_s, "broadcast": tree_s, "reduce": tree_s,
}


def closed_form_s(kind: str, cluster: Cluster, devices: Sequence[str], nbytes: float,
                  launch_latency_s: float = 0.0,
                  rings: Sequence[tuple[Sequence[str], Sequence[int | None]]] | None = None
                  ) -> float:
    """Closed-form time of a collective on this cluster. A ring collective's step takes as
    long as its slowest hop, on any of its channels (each carrying its share; a hop's
    latency NCCL's per step, nccl_fabric.hop_latency_s), or as the
    port that several channels' hops cross takes for their bytes together; `rings`: the
    channels (order, lane of each hop) where they are not the cluster's ring channels (NCCL's
    rings per NIC across nodes). The tree and pairwise collectives take the slowest route
    between ring neighbours, except in the NVLink topologies, whose pairs differ (one, two or
    six links, direct or bridged, or another node): there the fastest pair, a lower bound."""
    p = len(devices)
    if p <= 1:
        return 0.0
    if kind in RING_KINDS:
        channels = list(rings) if rings else cluster.ring_channels(list(devices))
        chunk = nbytes / (len(channels) * p)
        hops = [(hop_latency_s(cluster, a, b, latency), chunk / bandwidth, resources,
                 network_latency_s(cluster, a, b, lane))
                for order, lanes in channels for i in range(p)
                for a, b, lane in [(order[i], order[(i + 1) % p], lanes[i])]
                for resources, bandwidth, latency in [cluster.route(a, b, lane)]]
        port_s: dict[str, float] = {}   # a step's bytes on each port, all channels together
        for _, busy_s, resources, _ in hops:
            for r in resources:
                port_s[r] = port_s.get(r, 0.0) + busy_s
        # a shared medium's transfers go one after another whatever the ports: `t *= p` below
        crowded = 0.0 if cluster.link.shared_medium else max(port_s.values())
        paying = sum(network_latency_steps(cluster, channels[0][0], RING_PASSES[kind]))
        loud = max(crowded, max(latency + busy_s for latency, busy_s, _, _ in hops))
        quiet = max(crowded, max(latency - network + busy_s
                                 for latency, busy_s, _, network in hops))
        t = paying * loud + (RING_PASSES[kind] * (p - 1) - paying) * quiet
    else:
        if cluster.topology in NVLINK_TOPOLOGIES:
            routes = [cluster.route(a, b) for a in devices for b in devices if a != b]
            bw, lat = max(r[1] for r in routes), min(r[2] for r in routes)
        else:
            routes = [cluster.route(devices[i], devices[(i + 1) % p]) for i in range(p)]
            bw, lat = min(r[1] for r in routes), max(r[2] for r in routes)
        if cluster.link.shared_medium and kind in ("broadcast", "reduce"):
            return launch_latency_s + (p - 1) * (lat + nbytes / bw)  # one channel, in turn
        t = CLOSED_FORMS[kind](p, nbytes, bw, lat)
    if cluster.link.shared_medium:
        t *= p  # one channel: the p transfers of each step go one after another
    return launch_latency_s + t


def network_latency_s(cluster, src: str, dst: str, lane) -> float:
    """The latency of a ring's hop between nodes as NCCL runs it (0 within a node)."""
    if cluster.device(src).node == cluster.device(dst).node:
        return 0.0
    return hop_latency_s(cluster, src, dst, cluster.route(src, dst, lane)[2])


def network_latency_steps(cluster, order: Sequence[str], passes: int) -> list[bool]:
    """Which of a ring's passes * (p - 1) steps pay the network's latency: passes * (N - 1)
    of them for a ring over N nodes, as NCCL's model counts (all when every hop crosses
    nodes). A ring takes as long as its longest chain of transfers (each waits for the chunk
    from the device before, or for its own previous send), so the paying steps are those on
    which one chain crosses nodes: it pays the network's latency on them and a node's on the
    others, as the closed form counts. The chain goes through the ring's stretches inside a
    node in turn (each ending with the hop that leaves it) and waits on a hop inside a node
    over the spare steps, spread evenly over the stretches that have one. On identical nodes
    the paying steps are thus spread evenly; on uneven ones a node of one device is crossed
    into and out of on consecutive steps."""
    p = len(order)
    steps = passes * (p - 1)
    nodes = [cluster.device(d).node for d in order]
    paying = min(steps, passes * (len(set(nodes)) - 1))
    if paying in (0, steps):
        return [paying > 0] * steps
    starts = [i for i in range(p) if nodes[i] != nodes[i - 1]]
    runs = [(b - a) % p for a, b in zip(starts, starts[1:] + starts[:1], strict=True)]
    laps, rest = divmod(paying, len(runs))
    before = [0]
    for n in runs + runs:
        before.append(before[-1] + n)
    # start where the stretches crossed are longest: the fewest spare steps, and a hop
    # inside a node to wait on wherever there are spare steps
    first = max(range(len(runs)), key=lambda m: laps * p + before[m + rest] - before[m])
    crossed = [runs[(first + j) % len(runs)] for j in range(paying)]
    spare = steps - sum(crossed)
    # nodes interleaved device by device (every hop crosses): the chain waits anywhere
    waits = [j for j, n in enumerate(crossed) if n > 1] or list(range(paying))
    extra = [0] * paying
    for w, j in enumerate(waits):   # ceil((w + 1) spare / W) - ceil(w spare / W)
        extra[j] = (-w * spare) // len(waits) - (-(w + 1) * spare) // len(waits)
    ends, s = set(), -1
    for n, e in zip(crossed, extra, strict=True):
        s += n + e
        ends.add(s)
    return [s in ends for s in range(steps)]
