"""Recursive halving and doubling across nodes, as Gloo runs it (algorithm 'halving-doubling').

Goyal et al. 2017 (arXiv:1706.02677, section 4) all-reduced Caffe2's gradients in three
parts: a sum of a server's GPUs' buffers, an all-reduce between servers with Gloo's recursive
halving and doubling (Thakur et al. 2005; gloo/allreduce_halving_doubling.h), and a broadcast
back to the server's GPUs. Between N servers (N a power of two) it takes 2 log2(N) steps
where a ring takes 2(N-1):

  reduce-scatter  step r = 0 .. log2(N)-1: node i exchanges with node i XOR 2^r, sending half
                  of what it still holds (S/2, S/4, ... S/N) and summing the half it receives
  all-gather      the same partners in reverse order, the pieces doubling back to S

(As read in the Gloo that Horovod 0.19.1 vendors under third_party/gloo: AllreduceHalvingDoubling
pairs rank ^ bitmask with bitmask 1, 2, 4, ..., sends the half its partner keeps, and
retraces the steps in reverse for the all-gather; other counts are split into binary blocks.)
Every step sends the same bytes each way as the ring's 2(N-1)/N S altogether, so it differs
from the ring by its latency: log2 N steps against N - 1 per pass, the network's latency paid
on each (a step waits for its partner's half).

Here the parts inside a node are NCCL's hierarchy (collectives._hierarchical): a reduce-scatter
on the node's rings, then for each local rank j the halving and doubling above over rank j of
every node on its 1/k shard (all of them through the node's NICs: the same bytes as one
server-wide buffer), then an all-gather. Gloo's reduce to one GPU and broadcast move the same
bytes over NVLink. Not modelled: Gloo's copies through host memory where it runs without
GPUDirect, its sums on the CPU, and TCP's CPU time (docs/data-parallel-scaling.md).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from . import collective_trees as trees
from .cluster import Cluster
from .tasks import SimulationError, TaskGraph


def halving_doubling_steps(nodes: int) -> list[tuple[int, float]]:
    """(partner distance as an XOR mask, fraction of the buffer sent) of each step between
    `nodes` nodes (a power of two): the reduce-scatter's halvings, then the all-gather's
    doublings in reverse."""
    if nodes < 1 or nodes & (nodes - 1):
        raise SimulationError(f"recursive halving and doubling needs a power-of-two number "
                              f"of nodes, got {nodes} (Gloo runs other counts by binary "
                              f"blocks, not modelled: use algorithm 'hierarchical')")
    halvings = [(1 << r, 1 / (2 << r)) for r in range(nodes.bit_length() - 1)]
    return halvings + halvings[::-1]


def halving_doubling(tg: TaskGraph, cluster: Cluster, order: Sequence[str], nbytes: float,
                     dep_of: Mapping[str, Sequence[str]], name: str, priority: int,
                     launch_s: float) -> dict[str, str]:
    """An all-reduce of `nbytes` per device over `order` (one device per node) by recursive
    halving and doubling; returns per device the task whose end means it holds the sum. A
    transfer holds its route's ports for its bytes, then flies for the route's latency (the
    cluster's wire, as the rings' hops between nodes)."""
    ahead: dict[str, tuple[str, ...]] = {d: tuple(dep_of[d]) for d in order}
    last: dict[str, str] = {}
    for s, (mask, fraction) in enumerate(halving_doubling_steps(len(order))):
        sent: dict[str, str] = {}
        arrived: dict[str, str] = {}
        for i, d in enumerate(order):
            peer = order[i ^ mask]
            resources, bandwidth_Bps, latency_s = cluster.route(d, peer)
            chunk = nbytes * fraction
            task = tg.new(f"{name}.h{s}.{i}", resources,
                          chunk / bandwidth_Bps + (launch_s if s == 0 else 0.0),
                          deps=ahead[d], priority=priority, category="comm", device=d,
                          meta={"bytes": chunk, "src": d, "dst": peer,
                                "collective": "halving-doubling"}).name
            sent[d] = task
            arrived[peer] = (trees.fly(tg.add, task, latency_s, priority, d)
                             if latency_s > 0 else task)
        # the next step sends once this device's own send is done and its partner's half is
        # in (and summed into what it holds)
        ahead = {d: (sent[d], arrived[d]) for d in order}
        last = arrived
    return last
