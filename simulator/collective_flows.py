"""Flow-level collectives (collectives.py, fidelity 'flow'): a collective, or each part of
one, is a single task that holds every resource it uses for its closed-form time
(collective_forms.py) or the time NCCL's tuning predicts.

The hierarchical all-reduce across nodes (and Gloo's halving-doubling, which differs from it
across the nodes only) is three flows, as collectives._hierarchical builds it link by link:
each node's reduce-scatter on its ring channels, then one flow for the all-reduces across
nodes of every local rank's 1/k shard together (a ring through rank j of every node, or
recursive halving and doubling between them), whose steps take as long as their slowest hop
or as the port that several ranks' hops share (a node's NIC) takes for their bytes together,
then each node's all-gather.
"""
from __future__ import annotations

from . import collectives_hd, nccl_fabric, nccl_tuning
from .collective_forms import RING_KINDS, closed_form_s
from .tasks import SimulationError

# NCCL's latency model (NCCL 2.x, src/graph/tuning.cc): a ring collective with the Simple
# protocol costs baseLat[RING][SIMPLE] = 8.4 us once (the kernel launch and setup), plus one
# hop latency per ring step (the link's latency_s; nvlink2-link: 3.4 us). Simple is what NCCL
# picks for the megabyte buckets of data parallelism (LL and LL128 serve smaller messages).
NCCL_BASE_LATENCY_S = nccl_tuning.launch_s("ring", "Simple")


def flow(kind, tg, cluster, devices, nbytes, dep_of, name, priority, launch_s, algorithm):
    """One task holding every resource the collective uses, for its closed-form time; a
    ring collective under 'nccl' across nodes of several NICs on NCCL's rings per NIC; an
    all-reduce NCCL's tuning puts on a tree or a low-latency protocol for the time that
    tuning predicts (_tuned_s)."""
    p = len(devices)
    rings = (nccl_fabric.nic_ring_orders(cluster, devices)
             if kind in RING_KINDS and algorithm == "nccl" else None)
    if kind in RING_KINDS:
        hops = [(order[i], order[(i + 1) % p], lanes[i])
                for order, lanes in rings or cluster.ring_channels(devices) for i in range(p)]
    elif kind == "all_to_all":
        hops = [(a, b, None) for a in devices for b in devices if a != b]
    else:
        hops = [(devices[i], devices[(i + 1) % p], None) for i in range(p)]
    factor = {"allreduce": 2 * (p - 1), "all_to_all": p - 1}.get(kind, p - 1)
    tuned = _tuned_s(cluster, devices, nbytes, launch_s, algorithm) if kind == "allreduce" \
        else None
    duration = tuned if tuned is not None else closed_form_s(kind, cluster, devices, nbytes,
                                                             launch_s, rings)
    _task(tg, cluster, hops, duration, dep_of, name, priority, devices[0], kind,
          nbytes * factor)
    return {d: (name,) for d in devices}


def hierarchical(tg, cluster, devices, nbytes, dep_of, name, priority, launch_s,
                 halving=False):
    """The hierarchical all-reduce across nodes as flows (module notes); with `halving`,
    Gloo's recursive halving and doubling across the nodes (collectives_hd.py). Returns per
    device the task whose end means it holds the sum."""
    nodes = [[d.id for d in members] for members in cluster.node_members()]
    k = len(nodes[0])
    if list(devices) != [d for ids in nodes for d in ids] or any(len(ids) != k
                                                                 for ids in nodes):
        raise SimulationError(f"collective {name!r}: a hierarchical all-reduce needs every "
                              f"device of the cluster in order, in nodes of equal size")
    after = {d: tuple(dep_of[d]) for d in devices}
    if k > 1:
        for n, ids in enumerate(nodes):
            after.update(flow("reduce_scatter", tg, cluster, ids, nbytes,
                              {d: after[d] for d in ids}, f"{name}.n{n}.rs", priority,
                              launch_s, "ring"))
        launch_s = 0.0
    orders = [[ids[j] for ids in nodes] for j in range(k)]
    count = len(nodes)
    if halving:
        hops, duration = _halving_doubling(cluster, orders, nbytes / k, launch_s)
    else:
        hops = [(order[i], order[(i + 1) % count], None) for order in orders
                for i in range(count)]
        duration = closed_form_s("allreduce", cluster, orders[0], nbytes, launch_s,
                                 [(order, (None,) * count) for order in orders])
    _task(tg, cluster, hops, duration, after, f"{name}.x", priority, devices[0], "allreduce",
          2 * (count - 1) * nbytes)
    if k == 1:
        return {d: (f"{name}.x",) for d in devices}
    done: dict[str, tuple[str, ...]] = {}
    for n, ids in enumerate(nodes):
        done.update(flow("allgather", tg, cluster, ids, nbytes,
                         {d: (f"{name}.x",) for d in ids}, f"{name}.n{n}.ag", priority, 0.0,
                         "ring"))
    return done


def _halving_doubling(cluster, orders, nbytes, launch_s):
    """The hops and time of recursive halving and doubling over each order (one device per
    node) side by side, `nbytes` each: per step, its slowest transfer and flight, or the
    port that several orders' transfers cross taking their bytes together."""
    hops, duration = [], launch_s
    for mask, fraction in collectives_hd.halving_doubling_steps(len(orders[0])):
        port_s: dict[str, float] = {}
        slowest = 0.0
        for order in orders:
            for i, d in enumerate(order):
                resources, bandwidth_Bps, latency_s = cluster.route(d, order[i ^ mask])
                busy_s = nbytes * fraction / bandwidth_Bps
                hops.append((d, order[i ^ mask], None))
                slowest = max(slowest, busy_s + latency_s)
                for r in resources:
                    port_s[r] = port_s.get(r, 0.0) + busy_s
        duration += max(slowest, max(port_s.values()))
    return hops, duration


def _task(tg, cluster, hops, duration_s, dep_of, name, priority, device, kind, nbytes):
    """The flow: one task on every resource of `hops`' routes, after every device's deps."""
    resources: list[str] = []
    for a, b, lane in hops:
        resources.extend(cluster.route(a, b, lane)[0])
    tg.new(name, tuple(dict.fromkeys(resources)), duration_s,   # each once, by first use
           deps=sorted({d for ds in dep_of.values() for d in ds}), priority=priority,
           category="comm", device=device,
           meta={"bytes": nbytes, "collective": kind, "fidelity": "flow"})


def _tuned_s(cluster, devices, nbytes, launch_s, algorithm) -> float | None:
    """A flow-level all-reduce under 'nccl' or 'tree' that NCCL's tuning runs other than on
    its Simple ring: the time that tuning predicts for the pair it picks (nccl_tuning), its
    base latency replaced by the launch the link-level run pays; None for the Simple ring,
    whose closed form runs on the rings per NIC."""
    if algorithm not in ("tree", "nccl"):
        return None
    choice = nccl_tuning.choose(nccl_fabric.fabric_of(cluster, devices), nbytes,
                                ("tree",) if algorithm == "tree" else nccl_tuning.ALGORITHMS)
    if (choice.algorithm, choice.protocol) == ("ring", "Simple"):
        return None
    base_s = 1e-6 * nccl_tuning.BASE_LATENCY_US[choice.algorithm][choice.protocol]
    return chosen_launch_s(launch_s, choice) + choice.time_s(nbytes) - base_s


def chosen_launch_s(launch_s: float, choice: nccl_tuning.Choice) -> float:
    """A launch that includes NCCL's (NCCL_BASE_LATENCY_S, the ring's Simple one), with the
    chosen pair's in its place."""
    if launch_s >= NCCL_BASE_LATENCY_S:
        return launch_s + nccl_tuning.launch_s(choice.algorithm, choice.protocol) \
            - NCCL_BASE_LATENCY_S
    return launch_s
