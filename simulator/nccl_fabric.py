"""What NCCL's tuning model reads of a cluster (nccl_tuning.Fabric: ranks, nodes, channels,
their bandwidth, the hardware class of the hops inside a node), and the rings NCCL runs across
nodes, one per NIC, as that model prices them. collectives.py and collective_trees.py build
their tasks on these.
"""
from __future__ import annotations

import math
from typing import Sequence

from . import nccl_tuning as tuning
from .cluster import Cluster
from .node_topologies import NVLINK_TOPOLOGIES


def intra_hw(cluster: Cluster) -> str:
    """NCCL's hardware class of the hops inside a node: NVLink, else PCI."""
    nvlink = cluster.topology in NVLINK_TOPOLOGIES or "nvlink" in cluster.link.name
    return "nvlink" if nvlink else "pci"


def hop_hw(cluster: Cluster, src: str, dst: str) -> str:
    if cluster.device(src).node != cluster.device(dst).node:
        return "net"
    return intra_hw(cluster)


def hop_latency_s(cluster: Cluster, src: str, dst: str, link_latency_s: float,
                  protocol: str = "Simple", algorithm: str = "ring") -> float:
    """The latency of one step's hop src -> dst as NCCL runs `algorithm` under `protocol`.

    Between GPUs: NCCL's own per-step latency over the hop's hardware (nccl_tuning's
    HW_LATENCY_US, ring: 9.6 us over the network with Simple, where an InfiniBand link's
    wire and NIC take 1-2 us; the rest is NCCL's proxy thread, its flags and fences), or
    the link's latency where the link is slower than that (TCP sockets, whose kernel send
    NCCL's table does not price apart); either scaled by the protocol as NCCL scales its
    own (the ring's LL 2.7 against Simple's 9.6 over the network: protocol_factors).
    Between other devices (no NCCL) the link's latency, scaled alike."""
    hw = hop_hw(cluster, src, dst)
    factor, _ = tuning.protocol_factors(algorithm, protocol, hw)
    if cluster.device(src).spec.kind != "gpu" or cluster.device(dst).spec.kind != "gpu":
        return factor * link_latency_s
    return factor * max(link_latency_s, 1e-6 * tuning.HW_LATENCY_US[hw]["ring"]["Simple"])


def group_nics(cluster: Cluster, members: Sequence[str]) -> list[int]:
    """The NICs that some GPUs of one node use, in order of first use: NCCL 2.8 sends
    between nodes through the NIC nearest each GPU (2.12's PXN, through another GPU's NIC,
    is not modelled), so a communicator of part of a node (the same rank of every tensor-
    parallel group) crosses between nodes through its GPUs' NICs alone."""
    return list(dict.fromkeys(nic_of(cluster, d) for d in members))


def nic_of(cluster: Cluster, device: str) -> int:
    """The NIC of the device's node that it sends through."""
    node = cluster.node_members()[cluster.device(device).node]
    return cluster.layout.nic_of([d.id for d in node].index(device))


def fabric_of(cluster: Cluster, devices: Sequence[str]) -> tuning.Fabric:
    """The fabric NCCL's tuning sees: its rings' channels inside the first device's node at
    their slowest hop's bandwidth; across nodes, one channel per NIC the node's devices use
    (group_nics) at the lesser of the NIC's bandwidth and its share of the node's rings
    (NCCL's search gives a multi-node graph one speed inside and between nodes)."""
    nodes: dict[int, list[str]] = {}
    for d in devices:
        nodes.setdefault(cluster.device(d).node, []).append(d)
    first = next(iter(nodes.values()))
    if len(first) > 1:
        channels = cluster.ring_channels(first)
        slowest = min(cluster.route(order[i], order[(i + 1) % len(order)], lanes[i])[1]
                      for order, lanes in channels for i in range(len(order)))
        intra_Bps = len(channels) * slowest
    else:
        channels, intra_Bps = [], math.inf
    if len(nodes) == 1:
        return tuning.Fabric(len(devices), 1, max(1, len(channels)), intra_Bps / 1e9
                             / max(1, len(channels)), intra_hw(cluster))
    nics = len(group_nics(cluster, first))
    nic_Bps = cluster.inter_node_link.bandwidth_Bps if cluster.inter_node_link else math.inf
    per_channel = min(nic_Bps, intra_Bps / nics)
    return tuning.Fabric(len(devices), len(nodes), nics, per_channel / 1e9, intra_hw(cluster))



def nic_ring_orders(cluster: Cluster, devices: Sequence[str]
                    ) -> list[tuple[tuple[str, ...], tuple[int | None, ...]]] | None:
    """NCCL's rings across nodes, one per NIC (the channels its tuning prices, fabric_of),
    as (order, lane of each hop): ring c runs through each node along the node's ring
    channel c (cluster.ring_channels: on a DGX-1, rings on different NVLinks), rotated to
    enter the node at the first GPU of NIC c, and leaves it from the GPU before that, so the
    rings cross between nodes through different NICs. None where the devices are not whole
    nodes of equal size in node order (a communicator of part of each node runs one ring
    through its GPUs and their NICs), or a node has one NIC."""
    nics = cluster.layout.nics
    by_node: dict[int, list[str]] = {}
    for d in devices:
        by_node.setdefault(cluster.device(d).node, []).append(d)
    nodes = list(by_node.values())
    ordered = [d for members in nodes for d in members] == list(devices)
    whole = len(cluster.node_members()[cluster.device(devices[0]).node])
    if (not nics or len(nics) < 2 or len(nodes) < 2 or not ordered
            or {len(members) for members in nodes} != {whole}):
        return None
    first = nodes[0]
    local = {d: i for i, d in enumerate(first)}
    intra = [([local[d] for d in order], list(lanes))
             for order, lanes in cluster.ring_channels(first)]
    out: list[tuple[tuple[str, ...], tuple[int | None, ...]]] = []
    for c, members in enumerate(nics):
        # NCCL's search enters and leaves a node near one NIC: the first of the node's rings
        # (from ring c on) in which two GPUs of NIC c follow each other, entered at the
        # second and left from the first; else ring c entered at NIC c's first GPU
        candidates = [intra[(c + m) % len(intra)] for m in range(len(intra))]
        ring, lanes, k = candidates[0][0], candidates[0][1], -1
        for r, ls in candidates:
            at = [i for i in range(len(r)) if r[i] in members and r[i - 1] in members]
            if at:
                ring, lanes, k = r, ls, at[0]
                break
        if k < 0:
            if min(members) not in ring:
                return None
            k = ring.index(min(members))
        ring, lanes = ring[k:] + ring[:k], lanes[k:] + lanes[:k]
        hop_lanes = tuple(lanes[:-1]) + (None,)      # the last hop leaves the node
        out.append((tuple(node[r] for node in nodes for r in ring), hop_lanes * len(nodes)))
    return out
