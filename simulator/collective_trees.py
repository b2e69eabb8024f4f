"""All-reduce on NCCL's trees, link by link, and what NCCL's tuning model reads of a cluster
(collectives.collective's algorithms 'tree' and 'nccl').

NCCL's tree all-reduce (2.4 and later; src/graph/trees.cc, connect.cc): inside a node the
GPUs form a chain; across nodes the chains' heads form a double binary tree, two binary trees
over the nodes (the second shifted by one node when their count is odd, mirrored when it is
even) in which every node is interior in at most one. Each tree carries half of the buffer,
on channels of its own: the data is reduced up the tree, chunk by chunk, to the root, and
broadcast back down, so reduction and broadcast of successive chunks overlap (a pipeline).
Here each chunk's hop is a transfer task on the links it crosses; a device sends its chunk
up once its children's have arrived, and forwards a chunk down once its parent's has.

Channels: as NCCL's, the buffer is split evenly over the channels its tuning counts (one
per NIC across nodes, at least two so that both trees run; the node's rings within one),
channel c on tree c mod 2, its chains following the node's ring channel c (the NVLinks NCCL's
ring search found, lane by lane) from the GPU that owns NIC c. Chunks: a channel's share goes in pieces of at least 64 KiB, at
most 16 of them: the pipeline's granularity here, coarser than NCCL's own steps (a deep tree
fills its pipeline in proportion), so that a channel costs at most 16 (p - 1) transfers per
phase.

Each hop's latency and bandwidth are the link's (the ring's Simple protocol, as the catalog
gives them) scaled by the protocol that runs it (nccl_tuning.protocol_factors). A hop between
nodes holds its ports for its bytes alone, then flies for its latency on the wire (`fly`), so
flows sharing a NIC queue for their bytes, not for each other's latency.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from . import nccl_tuning as tuning
from .cluster import WIRE_RESOURCE, Cluster
from .node_topologies import NVLINK_TOPOLOGIES
from .tasks import Task, TaskGraph

TREE_MIN_CHUNK_BYTES = 64 * 1024
TREE_MAX_CHUNKS = 16
WIRE = (WIRE_RESOURCE,)


# -- what NCCL's model reads -----------------------------------------------------------------
def intra_hw(cluster: Cluster) -> str:
    """NCCL's hardware class of the hops inside a node: NVLink, else PCI."""
    nvlink = cluster.topology in NVLINK_TOPOLOGIES or "nvlink" in cluster.link.name
    return "nvlink" if nvlink else "pci"


def hop_hw(cluster: Cluster, src: str, dst: str) -> str:
    if cluster.device(src).node != cluster.device(dst).node:
        return "net"
    return intra_hw(cluster)


def fabric_of(cluster: Cluster, devices: Sequence[str]) -> tuning.Fabric:
    """The fabric NCCL's tuning sees: its rings' channels inside the first device's node at
    their slowest hop's bandwidth; across nodes, one channel per NIC at the lesser of the
    NIC's bandwidth and its share of the node's rings (NCCL's search gives a multi-node
    graph one speed inside and between nodes)."""
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
    nics = cluster.layout.nic_count()
    nic_Bps = cluster.inter_node_link.bandwidth_Bps if cluster.inter_node_link else math.inf
    per_channel = min(nic_Bps, intra_Bps / nics)
    return tuning.Fabric(len(devices), len(nodes), nics, per_channel / 1e9, intra_hw(cluster))


def hop(cluster: Cluster, src: str, dst: str, nbytes: float, lane: int | None,
        protocol: tuple[str, str]) -> tuple[tuple[str, ...], float, float]:
    """(resources, duration, its flight: the latency if it crosses nodes, else 0) of one hop
    under (algorithm, protocol)."""
    resources, bandwidth, latency = cluster.route(src, dst, lane)
    hw = hop_hw(cluster, src, dst)
    lat_factor, bw_factor = tuning.protocol_factors(*protocol, hw)
    latency *= lat_factor
    return (resources, latency + nbytes / (bandwidth * bw_factor),
            latency if hw == "net" else 0.0)


def fly(add, sent: str, latency_s: float, priority: int, device: str) -> str:
    """Add the flight of what task `sent` put on the network (its latency, on the wire: a
    delay holding no port) with `add`; return its name, which receivers wait for."""
    name = f"{sent}.arrive"
    add(Task(name, WIRE, latency_s, (sent,), priority, {}, {}, "comm", device,
             {"latency_of": sent}))
    return name


# -- the trees -------------------------------------------------------------------------------
def btree(nranks: int, rank: int) -> tuple[int, list[int]]:
    """NCCL's binary tree (ncclGetBtree): rank's parent (-1 at the root) and children."""
    bit = 1
    while bit < nranks and not bit & rank:
        bit <<= 1
    if rank == 0:
        return -1, [bit >> 1] if nranks > 1 else []
    up = (rank ^ bit) | (bit << 1)
    if up >= nranks:
        up = rank ^ bit
    low = bit >> 1
    down = [rank - low] if low else []
    while low and rank + low >= nranks:
        low >>= 1
    if low:
        down.append(rank + low)
    return up, down


def dtree(nranks: int, rank: int, tree: int) -> tuple[int, list[int]]:
    """Tree 0 or 1 of NCCL's double binary tree (ncclGetDtree): the second is the first
    shifted by one rank (odd counts) or mirrored (even counts)."""
    if tree == 0:
        return btree(nranks, rank)
    if nranks % 2:
        shift = (rank - 1) % nranks
        up, down = btree(nranks, shift)
        return (-1 if up < 0 else (up + 1) % nranks), [(c + 1) % nranks for c in down]
    up, down = btree(nranks, nranks - 1 - rank)
    return (-1 if up < 0 else nranks - 1 - up), [nranks - 1 - c for c in down]


def tree_parents(cluster: Cluster, devices: Sequence[str], tree: int, start: int = 0,
                 channel: int = 0) -> tuple[dict[str, str | None], dict[str, list[str]],
                                            dict[tuple[str, str], int | None]]:
    """Each device's parent (None at the root), its children and each hop's NVLink lane in
    tree 0 or 1: a chain through each node's devices along the node's ring channel
    `channel` (NCCL's trees follow its rings inside a node), from the head (the node's
    `start`-th device); the heads joined by dtree over the nodes."""
    by_node: dict[int, list[str]] = {}
    for d in devices:
        by_node.setdefault(cluster.device(d).node, []).append(d)
    chains = []
    lane_of: dict[tuple[str, str], int | None] = {}
    for members in by_node.values():
        rings = cluster.ring_channels(members)
        order, lanes = rings[channel % len(rings)]
        at = order.index(members[start % len(members)])
        chain = list(order[at:] + order[:at])
        for i, (a, b) in enumerate(zip(chain, chain[1:], strict=False)):
            lane_of[(a, b)] = lane_of[(b, a)] = lanes[(at + i) % len(order)]
        chains.append(chain)
    parent: dict[str, str | None] = {}
    children: dict[str, list[str]] = {d: [] for d in devices}
    for n, chain in enumerate(chains):
        up, _ = dtree(len(chains), n, tree)
        parent[chain[0]] = None if up < 0 else chains[up][0]
        for a, b in zip(chain, chain[1:], strict=False):
            parent[b] = a
    for d in devices:   # children in device order: deterministic
        p = parent[d]
        if p is not None:
            children[p].append(d)
    return parent, children, lane_of


def tree_allreduce(tg: TaskGraph, cluster: Cluster, devices: Sequence[str], nbytes: float,
                   dep_of: Mapping[str, Sequence[str]], name: str, priority: int,
                   launch_s: float, protocol: str) -> dict[str, tuple[str, ...]]:
    """NCCL's double-binary-tree all-reduce (module notes); every device built. Returns per
    device the tasks whose end means the buffer is reduced there."""
    fabric = fabric_of(cluster, devices)
    channels = max(2, fabric.channels) if fabric.nodes > 1 else fabric.channels   # both trees
    share = nbytes / channels
    chunks = max(1, min(TREE_MAX_CHUNKS, math.ceil(share / TREE_MIN_CHUNK_BYTES)))
    chunk = share / chunks
    index = {d: i for i, d in enumerate(devices)}
    made: list[Task] = []
    done: dict[str, list[str]] = {d: [] for d in devices}
    k = sum(1 for d in devices if cluster.device(d).node == cluster.device(devices[0]).node)
    nics = cluster.layout.nics
    for t in range(channels):
        start = (nics[t % len(nics)][0] if nics and cluster.nodes > 1 else t * k // channels)
        parent, children, lane_of = tree_parents(cluster, devices, t % 2, start, t)
        order = _bottom_up(devices, parent, children)
        # reduce: d sends chunk j up once its children's chunk j and its own chunk j - 1 left
        up: dict[tuple[str, int], str] = {}        # when d's chunk j reached its parent
        sent_up: dict[tuple[str, int], str] = {}   # when it left d
        for j in range(chunks):
            for d in order:
                to = parent[d]
                if to is None:
                    continue
                resources, duration, flight = hop(cluster, d, to, chunk, lane_of.get((d, to)),
                                                  ("tree", protocol))
                deps = [up[(c, j)] for c in children[d]]
                deps += list(dep_of[d]) if j == 0 else [sent_up[(d, j - 1)]]
                sent = sent_up[(d, j)] = f"{name}.t{t}.r{j}.{index[d]}"
                made.append(Task(sent, resources, duration - flight + (launch_s if j == 0 else 0),
                                 tuple(deps), priority, {}, {}, "comm", d,
                                 {"bytes": chunk, "src": d, "dst": to, "collective": "tree",
                                  "protocol": protocol}))
                up[(d, j)] = fly(made.append, sent, flight, priority, d) if flight else sent
        # broadcast: down from the root, each device forwarding a chunk to its children in
        # turn once it has it, chunk after chunk
        root = next(d for d in devices if parent[d] is None)
        have = {(root, j): [up[(c, j)] for c in children[root]] + list(dep_of[root])
                for j in range(chunks)}
        last_sent: dict[str, str] = {}
        for j in range(chunks):
            for d in reversed(order):   # top down
                for c in children[d]:
                    resources, duration, flight = hop(cluster, d, c, chunk,
                                                      lane_of.get((d, c)), ("tree", protocol))
                    deps = list(have[(d, j)]) + ([last_sent[d]] if d in last_sent else [])
                    sent = f"{name}.t{t}.b{j}.{index[d]}-{index[c]}"
                    # before the next chunk's reduction on a shared port: it frees the
                    # pipeline downstream
                    made.append(Task(sent, resources, duration - flight, tuple(deps),
                                     priority - 1, {}, {}, "comm", d,
                                     {"bytes": chunk, "src": d, "dst": c, "collective": "tree",
                                      "protocol": protocol}))
                    last_sent[d] = sent
                    have[(c, j)] = [fly(made.append, sent, flight, priority, d)
                                    if flight else sent]
        for d in devices:
            done[d] += have[(d, chunks - 1)]
    tg.extend(made)
    return {d: tuple(ts) for d, ts in done.items()}


def _bottom_up(devices: Sequence[str], parent: Mapping[str, str | None],
               children: Mapping[str, list[str]]) -> list[str]:
    """The devices children before parents (a reversed breadth-first order from the root)."""
    root = next(d for d in devices if parent[d] is None)
    order, k = [root], 0
    while k < len(order):
        order += children[order[k]]
        k += 1
    return order[::-1]
