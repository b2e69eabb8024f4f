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
    of them for a ring over N nodes, spread evenly (all of them when every hop crosses
    nodes)."""
    steps = passes * (len(order) - 1)
    nodes = len({cluster.device(d).node for d in order})
    paying = min(steps, passes * (nodes - 1))
    return [(s + 1) * paying // steps > s * paying // steps for s in range(steps)]
