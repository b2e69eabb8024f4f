"""All-reduce on NCCL's trees, link by link, and what NCCL's tuning model reads of a cluster
(collectives.collective's algorithms 'tree' and 'nccl').

NCCL's tree all-reduce (2.4 and later; src/graph/trees.cc, connect.cc): inside a node the
GPUs form a chain; across nodes the chains' heads form a double binary tree, two binary trees
over the nodes (the second shifted by one node when their count is odd, mirrored when it is
even) in which every node is interior in at most one. Each tree carries half of the buffer,
on channels of its own: the data is reduced up the tree, chunk by chunk, to the root, and
broadcast back down, so reduction and broadcast of successive chunks overlap (a pipeline).
Here each chunk's hop is a transfer task on the links it crosses; a device sends its chunk
up once its children's have arrived, and sends a chunk down to all its children once its
parent's has (NCCL's send to several peers at once; a shared port serves them in turn).

Channels: NCCL's search finds its paths (one per NIC across nodes; the node's rings within
one), and across nodes NCCL doubles them (ncclTopoPostset): channel c on tree 0 and channel
c + n on tree 1 take the same path, so every NIC carries a channel of each tree and a node's
NICs carry equal bytes (with one tree per NIC, the NICs of a node interior in that tree
would carry three times the others'). The buffer is split evenly over the channels, channel
c's chain following the node's ring channel c (the NVLinks NCCL's ring search found, lane by
lane) from the GPU that owns NIC c. Chunks: NCCL's own (nccl_tuning.tree_chunk_bytes: a
protocol step, halved until the tree's pipeline fills), at most 16 a channel, beyond which a
channel's share goes in 16 equal pieces (fewer tasks, a pipeline that fills in larger steps:
a channel costs at most 16 (p - 1) transfers per phase).

Streaming: LL and LL128 carry a flag with every 8 or 128 bytes, so a GPU forwards each line
of a chunk as it arrives; inside a node a chain's hops under them carry one chunk together
(each starts a hop's latency after the hop feeding it could start, when the first line
arrives, and what waits for the chunk at the chain's end waits for all of them; so a chain's
first line pays every hop's latency, as NCCL's model charges it). Simple forwards a chunk
once it holds it whole, and so does NCCL's network proxy under every protocol: those hops
wait for the chunk's arrival.

Each hop's latency is NCCL's step over its hardware under the protocol that runs it, or the
link's where slower (nccl_fabric.hop_latency_s), its bandwidth the link's scaled by that
protocol (nccl_tuning.protocol_factors). A hop between
nodes is a send on the sender's ports and a receive on the receiver's, each for its bytes
alone, started as soon as the chunk is ready and neither waiting for the other (a NIC is full
duplex, and a parent takes its two children's chunks in turn while their NICs carry other
traffic); the chunk has arrived when both are done and the send has flown its latency on the
wire (`fly`), so flows sharing a NIC queue for their bytes, not for each other's latency.
A hop inside a node holds its links for its bytes and then flies its latency too: the
channels whose chains cross one GPU's port (16 across nodes of 8 NICs) queue for its bytes.
Channels are built chunk by chunk, so a shared port serves the oldest chunk first.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from . import nccl_tuning as tuning
from .cluster import WIRE_RESOURCE, Cluster
from .nccl_fabric import fabric_of, group_nics, hop_hw, hop_latency_s, nic_of
from .tasks import Task, TaskGraph

TREE_MAX_CHUNKS = 16
WIRE = (WIRE_RESOURCE,)


def hop_rate(cluster: Cluster, src: str, dst: str, lane: int | None,
             protocol: tuple[str, str]) -> tuple[tuple[str, ...], float, float, float]:
    """(resources, latency, bandwidth in bytes/s, flight: the latency if it crosses nodes,
    else 0) of one hop under (algorithm, protocol)."""
    resources, bandwidth, link_latency = cluster.route(src, dst, lane)
    hw = hop_hw(cluster, src, dst)
    _, bw_factor = tuning.protocol_factors(*protocol, hw)
    latency = hop_latency_s(cluster, src, dst, link_latency, protocol[1], protocol[0])
    return resources, latency, bandwidth * bw_factor, latency if hw == "net" else 0.0


def hop(cluster: Cluster, src: str, dst: str, nbytes: float, lane: int | None,
        protocol: tuple[str, str]) -> tuple[tuple[str, ...], float, float]:
    """(resources, duration, its flight: the latency if it crosses nodes, else 0) of one hop
    under (algorithm, protocol)."""
    resources, latency, bandwidth, flight = hop_rate(cluster, src, dst, lane, protocol)
    return resources, latency + nbytes / bandwidth, flight


def chunk_sizes(share: float, nccl_chunk: float, max_chunks: int = TREE_MAX_CHUNKS
                ) -> list[float]:
    """A channel's share in the pieces its pipeline moves: NCCL's chunks, the last one
    partial, where they are at most `max_chunks`; else `max_chunks` equal pieces (coarser
    than NCCL's: a cap on the tasks, at the cost of a pipeline that fills and drains in
    larger steps)."""
    count = max(1, math.ceil(share / nccl_chunk))
    if count > max_chunks:
        return [share / max_chunks] * max_chunks
    return [nccl_chunk] * (count - 1) + [share - (count - 1) * nccl_chunk]


def launch(add, dep_of: Mapping[str, Sequence[str]], name: str, launch_s: float,
           priority: int) -> dict[str, tuple[str, ...]]:
    """A collective's launch latency (NCCL's kernel launch and set-up), paid once per device
    before its first transfer, as a delay on the wire that holds no port; return what each
    device's first transfer waits for (its deps alone when there is no launch latency)."""
    if not launch_s:
        return {d: tuple(x for x in deps if x is not None) for d, deps in dep_of.items()}
    out: dict[str, tuple[str, ...]] = {}
    for i, (d, deps) in enumerate(dep_of.items()):
        add(Task(f"{name}.launch.{i}", WIRE, launch_s, tuple(x for x in deps if x is not None),
                 priority, {}, {}, "comm", d, {"launch_of": name}))
        out[d] = (f"{name}.launch.{i}",)
    return out


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
    # across nodes NCCL duplicates its channels (ncclTopoPostset): channel c on tree 0 and
    # channel c + n on tree 1 take the same path and NIC, so every NIC carries both trees
    paths = fabric.channels
    channels = 2 * paths if fabric.nodes > 1 else paths
    share = nbytes / channels
    sizes = chunk_sizes(share, tuning.tree_chunk_bytes(nbytes, channels, len(devices),
                                                       fabric.nodes, protocol))
    chunks = len(sizes)
    first = [d for d in devices if cluster.device(d).node == cluster.device(devices[0]).node]
    k = len(first)
    index = {d: i for i, d in enumerate(devices)}
    # across nodes path p leaves and enters a node at the first of its devices on the p-th
    # NIC they use (fabric_of's channels); within one, the chains start spread over the node
    starts = [k * p // paths for p in range(paths)]
    if cluster.layout.nics and fabric.nodes > 1:
        starts = [next(i for i, d in enumerate(first) if nic_of(cluster, d) == nic)
                  for nic in group_nics(cluster, first)]
    plans = []
    for t in range(channels):
        path, tree = t % paths, t // paths if fabric.nodes > 1 else 0
        start = starts[path]
        parent, children, lane_of = tree_parents(cluster, devices, tree, start, path)
        edges = [(d, p) for d, p in parent.items() if p is not None]
        hops = {(a, b): hop_rate(cluster, a, b, lane_of.get((a, b)), ("tree", protocol))
                for up in edges for a, b in (up, up[::-1])}
        plans.append(_Channel(f"{name}.t{t}", parent, children,
                              _bottom_up(devices, parent, children), hops, index, sizes,
                              {"collective": "tree", "protocol": protocol}))
    made: list[Task] = []
    # every device launches once its data is ready, all at once: paid once, not once a level
    # up the tree
    dep_of = launch(made.append, {d: dep_of[d] for d in devices}, name, launch_s, priority)
    # Chunk by chunk, every channel's chunk j before any channel's chunk j + 1: a port's
    # ready transfers then start oldest chunk first, as NCCL's channels progress side by side.
    # (Channel after channel, one channel's later chunks would head a shared NIC's queue
    # while they wait for their receiver, and hold the other channel's transfers back.)
    for j in range(chunks):
        for plan in plans:
            plan.reduce(made, j, dep_of, priority)
        for plan in plans:
            plan.broadcast(made, j, dep_of, priority)
    tg.extend(made)
    return {d: tuple(t for plan in plans for t in plan.have[(d, chunks - 1)])
            for d in devices}


class _Channel:
    """One channel of a tree all-reduce: its tree, each hop's (resources, duration, flight),
    and the names of what has been built of it so far."""

    def __init__(self, prefix: str, parent: Mapping[str, str | None],
                 children: Mapping[str, list[str]], order: list[str],
                 hops: Mapping[tuple[str, str], tuple[tuple[str, ...], float, float, float]],
                 index: Mapping[str, int], sizes: Sequence[float], meta: Mapping[str, object]):
        self.prefix, self.parent, self.children, self.order = prefix, parent, children, order
        self.hops, self.index, self.sizes, self.meta = hops, index, sizes, meta
        self.root = order[-1]
        self.up: dict[tuple[str, int], tuple[str, ...]] = {}   # d's chunk j at its parent
        self.sent_up: dict[tuple[str, int], str] = {}   # when it left d
        self.have: dict[tuple[str, int], list[str]] = {}   # when d holds reduced chunk j
        self.sent_down: dict[tuple[str, int], str] = {}   # chunk j's send to d
        # what d's first streamed send up, and the first streamed send to d, wait for
        self.up_deps: dict[str, list[str]] = {}
        self.down_deps: dict[str, list[str]] = {}
        self.streaming = meta["protocol"] in ("LL", "LL128")
        self.leads: set[str] = set()

    def reduce(self, add: list[Task], j: int, dep_of: Mapping[str, Sequence[str]],
               priority: int) -> None:
        """Chunk j up the tree: d sends it once its children's chunk j has arrived and its
        own chunk j - 1 has left. A streamed hop (`streams`) starts with its children's:
        chunk 0 once every device below has its data, chunk j once the streamed children
        have passed on chunk j - 1; what d's chunk arrives for then waits for theirs too."""
        for d in self.order:
            to = self.parent[d]
            if to is None:
                continue
            streamed = self.streams(d, to)
            deps: list[str] = list(dep_of[d]) if j == 0 else [self.sent_up[(d, j - 1)]]
            for c in self.children[d]:
                if not (streamed and self.streams(c, d)):
                    deps += self.up[(c, j)]
                elif j == 0:   # the first line reaches d a hop's latency after c starts
                    deps.append(self._lead(add, self.sent_up[(c, 0)], self.up_deps[c],
                                           self.hops[(c, d)][1], priority, c))
                else:
                    deps.append(self.sent_up[(c, j - 1)])
            if j == 0:
                self.up_deps[d] = deps
            sent = self.sent_up[(d, j)] = f"{self.prefix}.r{j}.{self.index[d]}"
            arrived = self._transfer(add, sent, d, to, j, tuple(dict.fromkeys(deps)),
                                     priority)
            if streamed:
                arrived += tuple(a for c in self.children[d] if self.streams(c, d)
                                 for a in self.up[(c, j)])
            self.up[(d, j)] = arrived

    def broadcast(self, add: list[Task], j: int, dep_of: Mapping[str, Sequence[str]],
                  priority: int) -> None:
        """Chunk j down from the root: d sends it to each child once it has it and has sent
        that child chunk j - 1 (to all its children at once, as NCCL's multi-peer send; a
        shared port serves them in turn). A streamed hop starts with d's incoming one:
        chunk 0 when the chunk reached the chain, chunk j once chunk j - 1 has reached d."""
        root = self.root
        self.have[(root, j)] = ([a for c in self.children[root] for a in self.up[(c, j)]]
                                + list(dep_of[root]))
        for d in reversed(self.order):   # top down
            up = self.parent[d]
            into_streamed = up is not None and self.streams(up, d)
            for c in self.children[d]:
                streamed = self.streams(d, c)
                if not (streamed and into_streamed):
                    deps = list(self.have[(d, j)])
                elif j == 0:   # the first line reaches d a hop's latency after up starts
                    assert up is not None
                    deps = [self._lead(add, self.sent_down[(d, 0)], self.down_deps[d],
                                       self.hops[(up, d)][1], priority - 1, up)]
                else:
                    deps = [self.sent_down[(d, j - 1)]]
                if j:
                    deps.append(self.sent_down[(c, j - 1)])
                if j == 0 and streamed:
                    self.down_deps[c] = deps
                sent = self.sent_down[(c, j)] = \
                    f"{self.prefix}.b{j}.{self.index[d]}-{self.index[c]}"
                # before the next chunk's reduction on a shared port: it frees the pipeline
                # downstream
                self.have[(c, j)] = list(self._transfer(add, sent, d, c, j, tuple(deps),
                                                        priority - 1))

    def _lead(self, add: list[Task], sent: str, deps: Sequence[str], latency_s: float,
              priority: int, device: str) -> str:
        """The first line of streamed send `sent` in flight: a delay on the wire from when
        that send could start (its deps), made once, which the next hop of the chain waits
        for, so that a chain's first line pays every hop's latency, as NCCL's model does."""
        name = f"{sent}.lead"
        if name not in self.leads:
            add.append(Task(name, WIRE, latency_s, tuple(deps), priority, {}, {}, "comm",
                            device, {"first_line_of": sent}))
            self.leads.add(name)
        return name

    def streams(self, src: str, dst: str) -> bool:
        """Whether the hop src -> dst streams its chunk: LL and LL128 forward each line as it
        arrives (a flag per 8 or 128 bytes), so inside a node a chain's hops carry one
        chunk together; Simple forwards a chunk once it has it whole, as does NCCL's
        network proxy under every protocol."""
        return self.streaming and not self.hops[(src, dst)][3]

    def _transfer(self, add: list[Task], sent: str, src: str, dst: str, j: int,
                  deps: tuple[str, ...], priority: int) -> tuple[str, ...]:
        """Add the hop src -> dst; return the tasks whose end means the chunk is at dst.

        Inside a node the hop holds its links end to end (cut-through) for its bytes, and
        the chunk then flies for the hop's latency (a delay that holds no port), so the
        channels whose chains share a GPU's port queue for each other's bytes, not their
        latency. Between nodes the
        sender's ports (its NIC's send side, a leaf or rail uplink) and the receiver's (the
        downlink, its NIC's receive side) each serve the chunk's bytes, one flow at a time,
        from the moment the chunk is ready, neither waiting for the other: a NIC's send and
        receive sides are separate, and a parent whose two children send at once takes their
        bytes in turn while each child's NIC carries its other channel's traffic. Held both
        at once, a transfer would wait for a moment both ends are free and leave each idle
        meanwhile. The chunk has arrived when the receiver has taken its bytes and the
        sender's last byte has flown the network's latency."""
        resources, latency, bandwidth, flight = self.hops[(src, dst)]
        busy_s = self.sizes[j] / bandwidth
        meta = {"bytes": self.sizes[j], **self.meta, "src": src, "dst": dst}
        if not flight:
            add.append(Task(sent, resources, busy_s, deps, priority, {}, {}, "comm", src,
                            meta))
            return (fly(add.append, sent, latency, priority, src),) if latency else (sent,)
        sender = tuple(r for r in resources if not r.endswith((".rx", ".down")))
        receiver = tuple(r for r in resources if r.endswith((".rx", ".down")))
        add.append(Task(sent, sender, busy_s, deps, priority, {}, {}, "comm", src, meta))
        # the receive carries the bytes as `received_bytes`: summing `bytes` over tasks
        # counts each transfer once
        received = {k: v for k, v in meta.items() if k != "bytes"}
        received["received_bytes"] = meta["bytes"]
        add.append(Task(f"{sent}.recv", receiver, busy_s, deps, priority, {}, {}, "comm", dst,
                        received))
        return (fly(add.append, sent, flight, priority, src), f"{sent}.recv")


def _bottom_up(devices: Sequence[str], parent: Mapping[str, str | None],
               children: Mapping[str, list[str]]) -> list[str]:
    """The devices children before parents (a reversed breadth-first order from the root)."""
    root = next(d for d in devices if parent[d] is None)
    order, k = [root], 0
    while k < len(order):
        order += children[order[k]]
        k += 1
    return order[::-1]
