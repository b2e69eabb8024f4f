"""Routes through a cluster's fabric: the resources a transfer between two devices holds, its
bandwidth and latency, the rings a ring collective runs side by side (NCCL's channels), and a
host copy's path. Cluster (cluster.py) takes these methods from `Routes`; the resources they
name are those cluster.py builds (its module notes list them).

A transfer holds every resource on its path at once (cut-through) for latency per hop plus
bytes over the slowest bandwidth on the path. Ports serve one transfer at a time, so concurrent
flows through one port queue rather than share: total time matches fair sharing, individual
completion times are ordered. In the NVLink topologies the `link` is one NVLink: a transfer
on one `lane` (a collective's channel) takes one link per hop, a plain transfer every link
between the pair at once.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol, Sequence, cast

from hwmodels.specs import LinkSpec

from . import node_topologies as nvl
from .node_types import NodeLayout
from .tasks import SimulationError


class Device(Protocol):
    """What routing reads of a device (cluster.Device)."""
    id: str
    node: int

    @property
    def compute(self) -> str: ...

    @property
    def h2d(self) -> str: ...

    @property
    def d2h(self) -> str: ...


class Routes:
    """Routing of a Cluster (the attributes below are the cluster's)."""
    link: LinkSpec
    topology: str
    inter_node_link: LinkSpec | None
    host_link: LinkSpec | None
    layout: NodeLayout
    _local: dict[str, int]

    if TYPE_CHECKING:
        def device(self, key: int | str) -> Device: ...

        def node_members(self) -> Sequence[Sequence[Device]]: ...

    def transfer(self, src: str, dst: str, nbytes: float,
                 lane: int | None = None) -> tuple[tuple[str, ...], float]:
        """Resources a src->dst transfer holds and its duration in seconds. `lane` picks one
        NVLink per hop (a collective's channel); None takes them all (plain copies)."""
        resources, bandwidth_Bps, latency_s = self.route(src, dst, lane)
        return resources, latency_s + nbytes / bandwidth_Bps

    def route(self, src: str, dst: str,
              lane: int | None = None) -> tuple[tuple[str, ...], float, float]:
        """(resources held, bandwidth in B/s, latency in s) of a src->dst transfer."""
        a, b = self.device(src), self.device(dst)
        if a.id == b.id:
            return (a.compute,), math.inf, 0.0
        if a.node != b.node:
            ports = self.layout.inter_node_path(a.node, self._local[a.id], b.node,
                                                self._local[b.id])
            between = cast(LinkSpec, self.inter_node_link)   # several nodes have one
            return _cut_through([((r,), between, 1) for r in ports], hop_count=1)
        if self.link.shared_medium:
            return _cut_through([(("medium",), self.link, 1)], hop_count=1)
        if self.topology == "switch":
            return _cut_through([((f"{a.id}.tx",), self.link, 1),
                                 ((f"{b.id}.rx",), self.link, 1)], hop_count=1)
        if self.topology == "pcie":
            return self._pcie_route(a, b)
        if self.topology == "fully-connected":
            return _cut_through([((f"link:{a.id}->{b.id}",), self.link, 1)], hop_count=1)
        if self.topology == "nvswitch":
            lanes = (range(nvl.NVSWITCH_LINKS_PER_GPU) if lane is None
                     else [lane % nvl.NVSWITCH_LINKS_PER_GPU])
            return _cut_through([(tuple(f"{a.id}.tx#{k}" for k in lanes), self.link, len(lanes)),
                                 (tuple(f"{b.id}.rx#{k}" for k in lanes), self.link, len(lanes))],
                                hop_count=1)
        if self.topology == "dgx1-cube-mesh":
            path = self._cube_mesh_path(a, b)
            return _cut_through([self._nvlink_hop(x, y, lane if len(path) == 1 else None)
                                 for x, y in path], hop_count=len(path))
        path = self._ring_path(a, b)
        return _cut_through([((f"link:{x}->{y}",), self.link, 1) for x, y in path],
                            hop_count=len(path))

    def ring_channels(self, devices: list[str]) -> list[tuple[tuple[str, ...],
                                                              tuple[int | None, ...]]]:
        """The rings a ring collective over `devices` runs side by side, as NCCL's channels:
        (order of the devices, lane of each hop order[i] -> order[i+1]). One ring in the
        given order where the topology offers no choice or the devices span nodes."""
        ids = list(devices)
        plain: list[tuple[tuple[str, ...], tuple[int | None, ...]]] = [
            (tuple(ids), (None,) * len(ids))]
        if len(ids) < 2 or len({self.device(d).node for d in ids}) > 1:
            return plain
        if self.topology == "nvswitch":
            plain = [(tuple(ids), (k,) * len(ids)) for k in range(nvl.NVSWITCH_LINKS_PER_GPU)]
            return plain
        if self.topology != "dgx1-cube-mesh":
            return plain
        local = {self._local[d]: d for d in ids}
        used: dict[tuple[int, int], int] = {}
        channels: list[tuple[tuple[str, ...], tuple[int | None, ...]]] = []
        for ring in nvl.dgx1_rings(tuple(sorted(local))):
            lanes: list[int | None] = []
            for x, y in zip(ring, ring[1:] + ring[:1], strict=True):
                lanes.append(used.get((x, y), 0))
                used[(x, y)] = used.get((x, y), 0) + 1
            channels.append((tuple(local[x] for x in ring), tuple(lanes)))
        return channels or plain

    def _nvlink_hop(self, x: str, y: str, lane: int | None):
        i, j = self._local[x], self._local[y]
        links = nvl.dgx1_links(i, j)
        lanes = range(links) if lane is None else [lane % links]
        return tuple(f"link:{x}->{y}#{k}" for k in lanes), self.link, len(lanes)

    def _cube_mesh_path(self, a: Device, b: Device) -> list[tuple[str, str]]:
        """Linked GPUs directly; the others through a GPU linked to both (NCCL's NVB path)."""
        members = self.node_members()[a.node]
        i, j = self._local[a.id], self._local[b.id]
        if nvl.dgx1_links(i, j):
            return [(a.id, b.id)]
        via = nvl.dgx1_bridge(i, j, tuple(range(len(members))))
        if via is None:
            raise SimulationError(f"no NVLink path from {a.id} to {b.id} in a DGX-1 of "
                                  f"{len(members)} GPUs")
        return [(a.id, members[via].id), (members[via].id, b.id)]

    def _pcie_route(self, a: Device, b: Device) -> tuple[tuple[str, ...], float, float]:
        """Peer to peer within a PCIe switch; between switches up one uplink, down another."""
        sa, sb = self.layout.switch_of(self._local[a.id]), self.layout.switch_of(self._local[b.id])
        if sa == sb and sa is not None:
            return _cut_through([((f"{a.id}.tx",), self.link, 1),
                                 ((f"{b.id}.rx",), self.link, 1)], hop_count=1)
        hops = [((f"{a.id}.tx",), self.link, 1), ((f"{b.id}.rx",), self.link, 1)]
        if sa is not None:
            hops.insert(1, ((f"node{a.node}.pcie{sa}.up",), self.host_link or self.link, 1))
        if sb is not None:
            hops.insert(-1, ((f"node{b.node}.pcie{sb}.down",), self.host_link or self.link, 1))
        return _cut_through(hops, hop_count=2)

    def _ring_path(self, a: Device, b: Device) -> list[tuple[str, str]]:
        ids = [d.id for d in self.node_members()[a.node]]
        i, j, n = ids.index(a.id), ids.index(b.id), len(ids)
        fwd, back = (j - i) % n, (i - j) % n
        step = 1 if fwd <= back else -1
        path, k = [], i
        while k != j:
            nxt = (k + step) % n
            path.append((ids[k], ids[nxt]))
            k = nxt
        return path

    def host_copy(self, dev: str, nbytes: float, direction: str
                  ) -> tuple[str | tuple[str, ...], float]:
        """Resources (the copy engine; and the uplink of the PCIe switch the device shares,
        where the layout has one) and duration of a host<->device copy ('h2d' or 'd2h')."""
        d = self.device(dev)
        if direction not in ("h2d", "d2h"):
            raise SimulationError(f"copy direction must be 'h2d' or 'd2h', got {direction!r}")
        if self.host_link is None:
            raise SimulationError(f"device {dev!r} has no host link (PCIe) in this cluster")
        t = self.host_link.latency_s + nbytes / self.host_link.bandwidth_Bps
        engine = d.h2d if direction == "h2d" else d.d2h
        switch = self.layout.switch_of(self._local[d.id])
        if switch is None:
            return engine, t
        uplink = f"node{d.node}.pcie{switch}.{'down' if direction == 'h2d' else 'up'}"
        return (engine, uplink), t


def _cut_through(hops: Sequence[tuple[tuple[str, ...], LinkSpec, int]],
                 hop_count: int) -> tuple[tuple[str, ...], float, float]:
    """hops: (resources, link, how many of its links carry the transfer side by side)."""
    bandwidth = min(spec.bandwidth_Bps * lanes for _, spec, lanes in hops)
    latency = max(spec.latency_s for _, spec, _ in hops) * hop_count
    return tuple(r for rs, _, _ in hops for r in rs), bandwidth, latency
