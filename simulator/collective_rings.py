"""Rings of transfers side by side, as NCCL runs its channels (collectives.py builds them).

Ports shared by rings: across nodes NCCL runs a ring per NIC, and each passes through every
GPU of a node, so a GPU's port carries several rings' hops each step (7 of 8 on a DGX H100).
NCCL's channels run side by side, each on its own SMs, and share the port's bandwidth, not
their latency: a hop that shares a port with another hop of the collective holds it for its
bytes alone and then flies its latency, and the rings are built step by step so that a
shared port serves the oldest step first (_rings). A hop alone on its ports holds them for
its latency too: the same time, and no flight task. The launch latency is a flight per
device before its first transfer, paid once per collective, whatever its rings.
"""
from __future__ import annotations

from collections import Counter

from . import collective_trees as trees
from .collective_forms import network_latency_steps as _network_latency_steps
from .tasks import Task


def _hop(cluster, src, dst, nbytes, lane, rep, protocol):
    """(resources, the time its bytes hold them, its latency, whether it crosses nodes) of
    one ring hop under NCCL's `protocol`; under symmetry on its representative's resources
    (rep), each named once."""
    resources, latency, bandwidth, network = trees.hop_rate(cluster, src, dst, lane,
                                                            ("ring", protocol))
    if rep is not None:
        resources = tuple(dict.fromkeys(rep[r] for r in resources))
    return resources, nbytes / bandwidth, latency, network > 0


def ring_tasks(tg, cluster, rings, nbytes, dep_of, name, priority, passes, launch_s,
               simulate=None, rep=None, protocol="Simple") -> dict[str, list[str]]:
    """Rings side by side, each (its tasks' name prefix, order, lane of each hop) over as
    many devices and carrying `nbytes`, all launched at once (launch_s, paid once per
    device); with `simulate` = t, only their first t devices' transfers (device i standing
    for every i + m t), on representative resources `rep`. Returns per built device what
    ends each ring there.

    A ring makes 2(p-1) t tasks (millions at scale): they are made as Tasks directly, each
    step's from its predecessors' names, without TaskGraph.new's conversions (the hops'
    resources are tuples and durations floats already). A hop holds its ports for its
    bytes alone, then the chunk flies for the hop's latency on the wire (a delay that holds
    no port: WIRE), so rings that share a port (NCCL's channels across nodes, several
    through each GPU's port) queue for each other's bytes, not their latency. A hop between
    nodes flies only on the steps that pay the network's latency (module notes, "Latency
    across nodes"); on the others it takes its bytes' time alone. The rings are built step
    by step, every ring's step s before any ring's step s + 1: a shared port then serves
    the oldest step first, as NCCL's channels progress side by side (ring after ring, the
    first ring's later steps would take the port ahead of the last ring's early ones and
    starve it)."""
    p = len(rings[0][1])
    t = simulate or p
    built = list(dict.fromkeys(d for _, ring_order, _ in rings for d in ring_order[:t]))
    made: list[Task] = []
    add = made.append
    start = trees.launch(add, {d: dep_of[d] for d in built}, name, launch_s, priority)
    steps = passes * (p - 1)
    hops = [[_hop(cluster, ring_order[i], ring_order[(i + 1) % p], nbytes / p, lanes[i], rep,
                  protocol) for i in range(t)] for _, ring_order, lanes in rings]
    uses = Counter(r for ring in hops for hop in ring for r in hop[0])
    # a shared medium (Wi-Fi) is held for a transmission's latency too: the channel access
    # and protocol exchange that make it occupy the air, for everyone
    crowded = {r for r, n in uses.items() if n > 1 and r != "medium"}
    plans = [_ring_plan(cluster, ring_order, ring, nbytes / p, passes, crowded, protocol)
             for (_, ring_order, _), ring in zip(rings, hops, strict=True)]
    sent: list[list[str]] = [[] for _ in rings]   # what device i sent in the previous step
    got: list[list[str]] = [[] for _ in rings]    # and when that arrived at device i + 1
    for s in range(steps):
        for r, ((tag, ring_order, _), (hops, meta, flights)) in enumerate(
                zip(rings, plans, strict=True)):
            names = [f"{tag}.s{s}.{i}" for i in range(t)]
            for i, (resources, busy_s, _) in enumerate(hops):
                # step 0 waits for the data (and the launch); later steps for the chunk from
                # the device before, and for this device's own previous send
                deps = start[ring_order[i]] if s == 0 else (got[r][i - 1], sent[r][i])
                add(Task(names[i], resources, busy_s, deps, priority, {}, {}, "comm",
                         ring_order[i], meta[i]))
            arrived = list(names)
            for i in flights[s]:
                arrived[i] = trees.fly(add, names[i], hops[i][2], priority, ring_order[i])
            sent[r], got[r] = names, arrived
    tg.extend(made)
    done: dict[str, list[str]] = {d: [] for d in built}
    for (_, ring_order, _), last in zip(rings, got, strict=True):
        for i, d in enumerate(ring_order[:t]):
            done[d].append(last[(i - 1) % t])
    return done


def _ring_plan(cluster, order, hops, chunk, passes, crowded, protocol):
    """A ring's hops (_hop's, one per built device, each carrying `chunk` bytes) as (resources,
    the time they hold them, latency), their tasks' meta, and per step which hops' chunks then
    fly their latency: a hop between nodes on the steps that pay the network's latency; one
    inside a node on every step where it shares a port with another hop of the collective
    (`crowded`: the resources several hops use), else it holds its port for its latency too,
    which takes the same time and no flight task."""
    p = len(order)
    plan, flying = [], []
    for resources, busy_s, latency, crosses in hops:
        flies = crosses or not crowded.isdisjoint(resources)
        plan.append((resources, busy_s if flies else busy_s + latency, latency))
        flying.append(flies and latency > 0)
    meta = [{"bytes": chunk, "src": order[i], "dst": order[(i + 1) % p],
             "collective": "ring"} | ({} if protocol == "Simple" else {"protocol": protocol})
            for i in range(len(hops))]
    flights = [[i for i, (_, _, _, crosses) in enumerate(hops)
                if flying[i] and (pays or not crosses)] for pays in (False, True)]
    return plan, meta, [flights[pays] for pays in _network_latency_steps(cluster, order, passes)]
