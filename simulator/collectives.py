"""Collectives built from link transfers, at two fidelities.

link: every transfer of the algorithm is a task on the links it crosses, so contention with
      other traffic (and on shared media) shows by itself.
flow: one task that holds every resource the collective uses, for the closed-form duration
      (under 'nccl', an all-reduce NCCL puts on a tree or LL/LL128: its tuning's prediction).
      Orders of magnitude fewer tasks; used for large device counts and the analytical mode.
      The hierarchical and halving-doubling all-reduces across nodes are a flow per part:
      each node's reduce-scatter, the all-reduce across nodes of each local rank, each
      node's all-gather (collective_flows.py).

Each builder returns, per device, the task names whose completion means the collective is done
there (the original deps when there is nothing to do). Their closed forms (in
collective_forms.py), with p devices, S bytes per device, link bandwidth B and latency a
(alpha-beta model):

  ring all-reduce        2(p-1)(a + S/(pB))
  reduce-scatter/gather  (p-1)(a + S/(pB))
  all-to-all (pairwise)  (p-1)(a + S/(pB))      each device sends S/p to every other
  broadcast/reduce tree  ceil(log2 p)(a + S/B)
On a shared medium every transfer waits for the one channel: multiply the per-step term by p
(for a tree: its p-1 transfers one after another, (p-1)(a + S/B)).

Ring collectives run on the cluster's ring channels (Cluster.ring_channels): NCCL splits the
data evenly over several rings that use different links (a DGX-1's NVLinks, an NVSwitch port's
six links), so B above is the channels' bandwidth together: C times the slowest channel's.
A collective may also pay a fixed launch latency once, before its first transfer (NCCL's base
latency per collective: NCCL_BASE_LATENCY_S); the closed forms add it once.

Algorithms of the link-level all-reduce across nodes:
  ring          one ring through every device in order (within a node, the node's channels).
  hierarchical  as NCCL builds it for several nodes: a reduce-scatter on each node's ring
                channels, then for each local rank j an all-reduce of its 1/k shard on a ring
                through rank j of every node (over the NIC that rank uses), then an all-gather
                on each node's channels. It needs identical, full nodes.
  tree          NCCL's double binary tree (collective_trees.py), with the protocol NCCL's
                tuning picks for a tree.
  nccl          what NCCL 2.8 runs (nccl_tuning.py): per all-reduce, the algorithm (ring or
                tree) and protocol (LL, LL128, Simple) its tuning model predicts fastest for
                the size, run link by link with that protocol's latency and bandwidth; its
                ring across nodes of several NICs is a ring per NIC (the channels the tuning
                prices: collective_nccl_fabric.nic_ring_orders), each on its share. A
                reduce-scatter or all-gather (NCCL runs them as rings only) runs on the same
                rings per NIC across nodes, with the Simple protocol.
  halving-doubling  as hierarchical, with Gloo's recursive halving and doubling across the
                nodes in place of the rings (collectives_hd.py; a power-of-two number of
                nodes); built in full, as the trees.

Latency across nodes: a ring step here waits for its slowest hop, so a ring of p GPUs over N
nodes would pay the network's latency on every one of its 2(p-1) steps. NCCL pipelines its
steps, and its own latency model (src/graph/tuning.cc) charges the network's latency on
2(N-1) steps of an all-reduce (N-1 of a reduce-scatter or all-gather) and the intra-node
latency on the rest. So do the rings here: the inter-node hops pay the network's latency on
passes * (N-1) steps, and take their bytes' time alone on the others; the closed form counts
the same steps. The paying steps are those on which one chain of transfers crosses nodes,
waiting inside a node over the spare steps (collective_forms.network_latency_steps), so the
ring's longest chain pays the network's latency on them and a node's on the rest: spread
evenly over the ring on identical nodes; on uneven ones (a short last node) a node of one
device is crossed into and out of on consecutive steps. A ring whose every hop crosses nodes
(the hierarchical all-reduce's) pays it on every step.

Ports shared by rings: collective_rings.py.

Symmetry: a ring of p transfers per step costs p^2 tasks. With `symmetric=True` and a cluster
that maps onto itself when devices move t places along (Cluster.symmetry_period: identical
nodes of t devices, or t = 1 for identical devices on a switch), devices i and i + t do the
same thing at the same times, so only the first t are built, each transfer on the resources
of its class's representative (Cluster.representative_resources), and every device's result
is its representative's. The makespan, and every representative task's start and end, equal
those of the full expansion (tests/simulator/test_collectives_symmetry.py). Anything that
tells devices apart (a straggler, jitter, a different device) makes the period None and the
collective is built in full. NCCL's trees tell nodes apart themselves (a root, leaves, the
child a parent's port serves second), so there is no class to build once: with a period, an
all-reduce NCCL's tuning puts on a tree is one task for the time that tuning predicts, as at
flow fidelity, which is not what its full expansion takes (data parallelism's 'classes'
therefore simulates every replica of a step with one: policies/_replicas.py); without one,
it is built in full, link by link.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from . import collective_flows as flows
from . import collective_trees as trees
from . import collectives_hd, nccl_fabric, nccl_tuning
from .cluster import Cluster
from .collective_flows import NCCL_BASE_LATENCY_S
from .collective_forms import (
    CLOSED_FORMS,
    RING_KINDS,
    RING_PASSES,
    all_to_all_s,
    closed_form_s,
    ring_allreduce_s,
    ring_gather_s,
    tree_s,
)
from .collective_rings import ring_tasks
from .tasks import SimulationError, TaskGraph, cyclic_gc_paused

__all__ = ["ALGORITHMS", "CLOSED_FORMS", "FIDELITIES", "NCCL_BASE_LATENCY_S", "RING_KINDS",
           "RING_PASSES", "all_to_all_s", "closed_form_s", "collective", "framework_launch_s",
           "ring_allreduce_s", "ring_gather_s", "symmetry_period_of", "tree_s"]

Deps = Mapping[str, Sequence[str]] | Sequence[str]
FIDELITIES = ("link", "flow")
ALGORITHMS = ("ring", "hierarchical", "tree", "nccl", "halving-doubling")


def framework_launch_s(cluster: Cluster, devices: Sequence[str] | None = None) -> float:
    """The launch latency every policy's collective over `devices` (default: the whole
    cluster) pays once: NCCL's (NCCL_BASE_LATENCY_S; the all-reduces NCCL's tuning moves to
    another algorithm or protocol pay that pair's instead) where every one is a GPU, as the
    frameworks run NCCL there; none elsewhere (MPI's and Gloo's rings on CPUs, whose set-up
    is not modelled)."""
    ids = set(devices) if devices is not None else None
    gpus = all(d.spec.kind == "gpu" for d in cluster.devices if ids is None or d.id in ids)
    return NCCL_BASE_LATENCY_S if gpus else 0.0


# -- builders ------------------------------------------------------------------------------
def collective(kind: str, tg: TaskGraph, cluster: Cluster, devices: Sequence[str],
               nbytes: float, deps: Deps, name: str, fidelity: str = "link",
               priority: int = 0, root: str | None = None,
               launch_latency_s: float = 0.0, algorithm: str = "ring",
               symmetric: bool = False) -> dict[str, tuple[str, ...]]:
    """Add a collective's tasks to `tg`; return per device what to depend on.
    launch_latency_s: paid once before the first transfer (NCCL_BASE_LATENCY_S for NCCL).
    algorithm: one of ALGORITHMS (all-reduce across nodes; see the module notes).
    symmetric: build one device per symmetry class (module notes); deps then need name only
    the first symmetry_period() devices."""
    if kind not in CLOSED_FORMS:
        raise SimulationError(f"unknown collective {kind!r}; known: {', '.join(CLOSED_FORMS)}")
    if fidelity not in FIDELITIES:
        raise SimulationError(f"collective fidelity must be one of {FIDELITIES}, got {fidelity!r}")
    if algorithm not in ALGORITHMS:
        raise SimulationError(f"collective algorithm must be one of {ALGORITHMS}, got "
                              f"{algorithm!r}")
    if nbytes < 0:
        raise SimulationError(f"collective {name!r}: negative size {nbytes}")
    if not launch_latency_s >= 0:
        raise SimulationError(f"collective {name!r}: launch latency must be >= 0 s, got "
                              f"{launch_latency_s!r}")
    devices = list(devices)
    period = symmetry_period_of(cluster, devices) if symmetric else None
    dep_of = _per_device(deps, devices[:period] if period else devices)
    if len(devices) <= 1 or nbytes == 0:
        return _expand(dep_of, devices, period)
    if fidelity == "flow":
        if kind == "allreduce" and algorithm in ("hierarchical", "halving-doubling") \
                and cluster.nodes > 1:
            return flows.hierarchical(tg, cluster, devices, nbytes,
                                      _expand(dep_of, devices, period), name, priority,
                                      launch_latency_s, algorithm == "halving-doubling")
        return flows.flow(kind, tg, cluster, devices, nbytes, dep_of, name, priority,
                     launch_latency_s, algorithm)
    # rings make 2(p-1) transfers per device built, hundreds of thousands at scale: the cyclic
    # collector, whose rescans grow with the tasks already made and free none of them, waits
    if kind == "allreduce" and algorithm in ("tree", "nccl"):
        with cyclic_gc_paused():
            return _nccl_allreduce(tg, cluster, devices, nbytes, dep_of, name, priority,
                                   launch_latency_s, period, algorithm)
    if kind == "allreduce" and algorithm == "hierarchical" and cluster.nodes > 1:
        with cyclic_gc_paused():
            return _hierarchical(tg, cluster, devices, nbytes, dep_of, name, priority,
                                 launch_latency_s, period)
    if kind == "allreduce" and algorithm == "halving-doubling" and cluster.nodes > 1:
        # a node's partner changes every step: no device stands for another, built in full
        with cyclic_gc_paused():
            return _hierarchical(tg, cluster, devices, nbytes, _expand(dep_of, devices, period),
                                 name, priority, launch_latency_s, None, halving=True)
    if kind in RING_KINDS:
        orders = nccl_fabric.nic_ring_orders(cluster, devices) if algorithm == "nccl" else None
        with cyclic_gc_paused():
            if orders:   # a reduce-scatter or all-gather: NCCL's rings, one per NIC
                return _nic_rings(tg, cluster, devices, orders, nbytes, dep_of, name, priority,
                                  RING_PASSES[kind], launch_latency_s, period)
            return _ring_steps(RING_PASSES[kind])(tg, cluster, devices, nbytes, dep_of, name,
                                                  priority, None, launch_latency_s, period)
    if period:   # the pairwise and tree collectives are built in full
        dep_of = _expand(dep_of, devices, period)
    builder = {"all_to_all": _pairwise, "broadcast": _tree(False), "reduce": _tree(True)}[kind]
    return builder(tg, cluster, devices, nbytes, dep_of, name, priority, root or devices[0],
                   launch_latency_s)


def symmetry_period_of(cluster: Cluster, devices: list[str]) -> int | None:
    """The cluster's symmetry period when `devices` is the whole cluster in order (else None:
    a collective over part of a cluster is built in full)."""
    period = cluster.symmetry_period()
    if period is None or period >= len(devices) or \
            devices != [d.id for d in cluster.devices]:
        return None
    return period


def _expand(done: Mapping[str, Sequence[str]], devices: list[str], period: int | None
            ) -> dict[str, tuple[str, ...]]:
    """Every device's entry: its representative's (device i mod period) under symmetry."""
    if not period:
        return {d: tuple(done[d]) for d in devices}
    return {d: tuple(done[devices[i % period]]) for i, d in enumerate(devices)}


def _per_device(deps: Deps, devices: list[str]) -> dict[str, tuple[str, ...]]:
    if isinstance(deps, Mapping):
        return {d: tuple(deps.get(d, ())) for d in devices}
    return {d: tuple(deps) for d in devices}


def _send(tg, cluster, src, dst, nbytes, deps, name, priority, kind, lane=None, extra_s=0.0):
    """One transfer task; extra_s: a launch latency paid before it."""
    resources, duration = cluster.transfer(src, dst, nbytes, lane)
    tg.new(name, resources, extra_s + duration, deps=deps, priority=priority, category="comm",
           device=src, meta={"bytes": nbytes, "src": src, "dst": dst, "collective": kind})
    return name


def _nccl_allreduce(tg, cluster, devices, nbytes, dep_of, name, priority, launch_s, period,
                    algorithm):
    """An all-reduce as NCCL runs it: the algorithm and protocol its tuning picks (only
    among the tree's protocols for algorithm 'tree'). A launch that includes NCCL's
    (NCCL_BASE_LATENCY_S, the ring's Simple one) pays the chosen pair's instead."""
    choice = nccl_tuning.choose(nccl_fabric.fabric_of(cluster, devices), nbytes,
                                ("tree",) if algorithm == "tree" else nccl_tuning.ALGORITHMS)
    if period and choice.algorithm == "tree":
        # no class of a tree stands for the others (module notes), and in full its transfers
        # grow with channels x chunks x devices: NCCL's predicted time, one task
        return flows.flow("allreduce", tg, cluster, devices, nbytes, dep_of, name, priority,
                          launch_s, algorithm)
    launch_s = flows.chosen_launch_s(launch_s, choice)
    orders = nccl_fabric.nic_ring_orders(cluster, devices) if choice.algorithm == "ring" else None
    if orders:
        return _nic_rings(tg, cluster, devices, orders, nbytes, dep_of, name, priority, 2,
                          launch_s, period, choice.protocol)
    if choice.algorithm == "ring":
        return _ring_steps(2)(tg, cluster, devices, nbytes, dep_of, name, priority, None,
                              launch_s, period, choice.protocol)
    # without symmetry classes the trees are built in full, link by link
    return trees.tree_allreduce(tg, cluster, devices, nbytes, _expand(dep_of, devices, period),
                                name, priority, launch_s, choice.protocol)


def _nic_rings(tg, cluster, devices, orders, nbytes, dep_of, name, priority, passes, launch_s,
               period, protocol="Simple"):
    """A ring per NIC across nodes (nccl_fabric.nic_ring_orders), each on its share (one
    node's rotation each), of `passes` passes (2: all-reduce, 1: reduce-scatter, gather)."""
    rep = cluster.representative_resources(period) if period else None
    rings = [(f"{name}.c{c}", order, lanes) for c, (order, lanes) in enumerate(orders)]
    done = ring_tasks(tg, cluster, rings, nbytes / len(orders), dep_of, name, priority, passes,
                  launch_s, period, rep, protocol)
    return _expand(done, devices, period)


def _ring_steps(passes: int):
    """Reduce-scatter (1 pass) or all-reduce (2): each channel a ring over its share."""
    def build(tg, cluster, devices, nbytes, dep_of, name, priority, _root, launch_s,
              period=None, protocol="Simple"):
        channels = cluster.ring_channels(devices)
        if period and len(channels) > 1:
            raise SimulationError("a symmetric ring collective needs a single ring channel")
        rep = cluster.representative_resources(period) if period else None
        rings = [(name if len(channels) == 1 else f"{name}.c{c}", order, lanes)
                 for c, (order, lanes) in enumerate(channels)]
        done = ring_tasks(tg, cluster, rings, nbytes / len(channels), dep_of, name, priority,
                      passes, launch_s, period, rep, protocol)
        return _expand(done, devices, period)
    return build


def _hierarchical(tg, cluster, devices, nbytes, dep_of, name, priority, launch_s, period,
                  halving=False):
    """All-reduce across nodes as NCCL's hierarchy: intra-node reduce-scatter, one ring per
    local rank across the nodes on a 1/k shard (with `halving`, Gloo's recursive halving and
    doubling instead: collectives_hd.py), intra-node all-gather. Under symmetry
    (period: a whole number of nodes) only the first period's nodes are built, and each
    cross-node ring only through them, on their resources."""
    nodes = [[d.id for d in members] for members in cluster.node_members()]
    k = len(nodes[0])
    if devices != [d for ids in nodes for d in ids] or any(len(ids) != k for ids in nodes):
        raise SimulationError(f"collective {name!r}: a hierarchical all-reduce needs every "
                              f"device of the cluster in order, in nodes of equal size")
    node_period = period // k if period else None
    built_nodes = nodes[:node_period] if period else nodes
    reduce_scatter, allgather = _ring_steps(1), _ring_steps(1)
    after_rs: dict[str, tuple[str, ...]] = {}
    if k > 1:
        for n, ids in enumerate(built_nodes):
            after_rs.update(reduce_scatter(tg, cluster, ids, nbytes, dep_of, f"{name}.n{n}.rs",
                                           priority, None, launch_s))
        launch_s = 0.0
    else:
        after_rs = dep_of
    rep = cluster.representative_resources(period) if period else None
    after_ar: dict[str, tuple[str, ...]] = {}
    orders = [[ids[j] for ids in nodes] for j in range(k)]
    if halving:
        for j, order in enumerate(orders):
            last = collectives_hd.halving_doubling(tg, cluster, order, nbytes / k, after_rs,
                                                   f"{name}.x{j}", priority, launch_s)
            after_ar.update({d: (t,) for d, t in last.items()})
    else:
        after_ar.update((d, tuple(ts)) for d, ts in ring_tasks(
            tg, cluster, [(f"{name}.x{j}", order, (None,) * len(order))
                          for j, order in enumerate(orders)],
            nbytes / k, after_rs, f"{name}.x", priority, 2, launch_s, node_period, rep).items())
    if k == 1:
        return _expand(after_ar, devices, period)
    done: dict[str, tuple[str, ...]] = {}
    for n, ids in enumerate(built_nodes):
        done.update(allgather(tg, cluster, ids, nbytes, after_ar, f"{name}.n{n}.ag",
                              priority, None, 0.0))
    return _expand(done, devices, period)


def _pairwise(tg, cluster, devices, nbytes, dep_of, name, priority, _root, launch_s):
    p = len(devices)
    chunk = nbytes / p
    received: dict[str, list[str]] = {d: list(dep_of[d]) for d in devices}
    last: list[str | None] = [None] * p
    for k in range(1, p):
        for i, src in enumerate(devices):
            dst = devices[(i + k) % p]
            deps = list(dep_of[src]) if last[i] is None else [last[i]]
            sent = _send(tg, cluster, src, dst, chunk, deps, f"{name}.r{k}.{i}", priority,
                         "all_to_all", extra_s=launch_s if k == 1 else 0.0)
            last[i] = sent
            received[dst].append(sent)
    return {d: tuple(v) for d, v in received.items()}


def _tree(reduce: bool):
    """Binomial tree from (broadcast) or to (reduce) the root."""
    def build(tg, cluster, devices, nbytes, dep_of, name, priority, root, launch_s):
        order = [root] + [d for d in devices if d != root]
        p = len(order)
        rounds = math.ceil(math.log2(p))
        pairs_by_round = [[(i, i + 2 ** r) for i in range(2 ** r) if i + 2 ** r < p]
                          for r in range(rounds)]
        if reduce:
            pairs_by_round = [[(b, a) for a, b in pairs] for pairs in reversed(pairs_by_round)]
        have: dict[str, list[str]] = {d: list(dep_of[d]) for d in order}
        received: dict[str, str] = {}
        for r, pairs in enumerate(pairs_by_round):
            for a, b in pairs:
                src, dst = order[a], order[b]
                # a receiver reduces one child's data at a time, as a sender sends one at a time
                deps = have[src] + ([received[dst]] if reduce and dst in received else [])
                t = _send(tg, cluster, src, dst, nbytes, deps, f"{name}.t{r}.{a}-{b}",
                          priority, "reduce" if reduce else "broadcast",
                          extra_s=launch_s if r == 0 else 0.0)
                have[dst] = have[dst] + [t] if reduce else [t]
                received[dst] = t
                if not reduce:
                    have[src] = [t]  # the sender's port is busy until then: keep its order
        return {d: tuple(have[d]) for d in order}
    return build
