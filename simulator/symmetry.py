"""A cluster's translation symmetry: which devices behave alike, and the resources that stand
for theirs (collectives.py builds one device per class with them).

Moving every device t places along (index i to i + t, modulo the count) maps a cluster onto
itself when its devices are alike (same GPU, speed, no jitter) and t is a whole number of
identical nodes (and of leaves, where traffic between leaves is oversubscribed), or 1 for
identical devices on one switch or fully connected; never on a shared medium (Wi-Fi), which
every device's transfers wait for. Devices i and i + t then behave alike in
any traffic that is itself periodic in t: a ring in device order, the same ring in every node,
one ring per local rank across nodes.
"""
from __future__ import annotations


def period(cluster) -> int | None:
    """The smallest such t short of the whole cluster, or None (always under jitter, and where
    devices differ)."""
    n = len(cluster.devices)
    first = cluster.devices[0]
    if first.jitter is not None or any(
            d.spec != first.spec or type(d.model) is not type(first.model) or
            d.speed != first.speed for d in cluster.devices):
        return None
    if cluster.link.shared_medium:
        # every transmission waits for the one channel: a class's transfers alone would find
        # it free of the others' (the collectives' time would shrink with the class's share)
        return None
    if cluster.nodes == 1:
        plain = cluster.topology in ("switch", "fully-connected")
        # GPUs that share a PCIe switch are not alike to those that do not
        alone = all(len(g) == 1 for g in cluster.layout.pcie_switches or ())
        return 1 if plain and alone and n > 1 else None
    k = cluster.devices_per_node or n
    node_period = cluster.layout.node_period(cluster.nodes)
    if n % k or node_period is None or k * node_period >= n:
        return None
    return k * node_period


def representatives(cluster, period: int) -> dict[str, str]:
    """Each resource's image when device i stands for every device i + m * period: a device's
    resources map to those of device i mod period (a link's both ends moved alike), a node's
    to those of node n mod (period / devices per node), a leaf's to the first leaves', a
    rail's, the medium and the wire to themselves."""
    ids = [d.id for d in cluster.devices]
    index = {d: i for i, d in enumerate(ids)}
    rep_dev = {d: ids[i % period] for i, d in enumerate(ids)}
    per_node = cluster.devices_per_node or len(ids)
    node_period = max(1, period // per_node)
    leaves = max(1, node_period // (cluster.layout.nodes_per_leaf or node_period))
    out: dict[str, str] = {}
    for r in cluster.resources:
        if r.startswith("link:"):
            pair, sep, lane = r[5:].partition("#")
            a, _, b = pair.partition("->")
            # both ends moved by the same whole periods: a link between devices of two periods
            # (one GPU to every other, fully connected) keeps its span
            shift = index[a] - index[a] % period
            out[r] = f"link:{rep_dev[a]}->{ids[(index[b] - shift) % len(ids)]}{sep}{lane}"
        elif r.startswith("node") and r[4:5].isdigit():
            num, _, rest = r[4:].partition(".")
            out[r] = f"node{int(num) % node_period}.{rest}"
        elif r.startswith("leaf"):
            num, _, rest = r[4:].partition(".")
            out[r] = f"leaf{int(num) % leaves}.{rest}"
        elif r.startswith("rail") or r in ("medium", "wire"):
            out[r] = r
        else:
            dev, _, rest = r.partition(".")
            out[r] = f"{rep_dev[dev]}.{rest}"
    return out


def shared_by_classes(cluster, period: int) -> dict[str, int]:
    """Resources that every class's traffic crosses, each -> the number of classes: a rail's
    uplinks (NIC k of every node goes through rail k) stand for themselves (representatives),
    so a run that builds one class carries that class's share on them, and the whole
    cluster's traffic there is the share times the classes (len(devices) / period)."""
    copies = len(cluster.devices) // period
    if copies <= 1:
        return {}
    return {r: copies for r in cluster.resources if r.startswith("rail")}
