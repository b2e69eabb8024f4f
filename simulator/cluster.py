"""Cluster: devices, hosts and the network between them, as engine resources.

Resource names (what tasks hold):
  {dev}.compute   the device's compute stream (capacity 1: an op uses the whole device)
  {dev}.cores     CPU/ARM only: one slot per core, for core-by-core work items
  {dev}.h2d/.d2h  the copy engines to and from host memory, over the host link (PCIe)
  {dev}.tx/.rx    the device's network port in a switched topology (full duplex)
  link:{a}->{b}   a direct link in a ring or fully connected topology (one per direction)
  medium          a shared medium (Wi-Fi): one transmission at a time for everyone
  node{n}.tx/.rx  a node's port to the inter-node network

A transfer holds every resource on its path at once (cut-through) for latency per hop plus
bytes over the slowest bandwidth on the path. Ports serve one transfer at a time, so concurrent
flows through one port queue rather than share: total time matches fair sharing, individual
completion times are ordered.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hwmodels import DeviceModel, catalog, model_for
from hwmodels.specs import DeviceSpec, HostSpec, LinkSpec

from .tasks import SimulationError

TOPOLOGIES = ("switch", "ring", "fully-connected")


@dataclass
class Device:
    id: str
    spec: DeviceSpec
    model: DeviceModel
    node: int = 0

    @property
    def compute(self) -> str:
        return f"{self.id}.compute"

    @property
    def cores(self) -> str:
        return f"{self.id}.cores"

    @property
    def h2d(self) -> str:
        return f"{self.id}.h2d"

    @property
    def d2h(self) -> str:
        return f"{self.id}.d2h"

    @property
    def memory_bytes(self) -> int:
        return int(self.spec.memory_bytes)


@dataclass
class Cluster:
    devices: list[Device]
    link: LinkSpec
    topology: str = "switch"
    devices_per_node: int | None = None
    inter_node_link: LinkSpec | None = None
    host: HostSpec | None = None
    host_link: LinkSpec | None = None
    resources: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.devices:
            raise SimulationError("a cluster needs at least one device")
        if self.topology not in TOPOLOGIES:
            raise SimulationError(f"unknown topology {self.topology!r}; known: "
                                  f"{', '.join(TOPOLOGIES)}")
        k = self.devices_per_node or len(self.devices)
        if k < 1:
            raise SimulationError(f"devices_per_node must be >= 1, got {k}")
        if k < len(self.devices) and self.inter_node_link is None:
            raise SimulationError("a cluster of several nodes needs an inter_node_link")
        self._index = {d.id: d for d in self.devices}
        for i, d in enumerate(self.devices):
            d.node = i // k
        self.resources = self._build_resources()

    # -- construction --------------------------------------------------------------------
    @classmethod
    def build(cls, device: str | DeviceSpec = "v100", count: int = 1, link: str | LinkSpec =
              "nvlink2", topology: str = "switch", devices_per_node: int | None = None,
              inter_node_link: str | LinkSpec | None = None, host: str | HostSpec | None = None,
              host_link: str | LinkSpec | None = None, profile=None) -> "Cluster":
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise SimulationError(f"device count must be an integer >= 1, got {count!r}")
        spec = catalog.device(device) if isinstance(device, str) else device
        prefix = {"gpu": "gpu", "cpu": "cpu", "arm": "arm"}.get(spec.kind, "dev")
        devices = [Device(f"{prefix}{i}", spec, model_for(spec, profile)) for i in range(count)]
        return cls(devices=devices, link=_link(link), topology=topology,
                   devices_per_node=devices_per_node,
                   inter_node_link=_link(inter_node_link) if inter_node_link else None,
                   host=catalog.host(host) if isinstance(host, str) else host,
                   host_link=_link(host_link) if host_link else
                   (_link(spec.host_link) if spec.kind == "gpu" and spec.host_link else None))

    def _build_resources(self) -> dict[str, int]:
        res: dict[str, int] = {}
        for d in self.devices:
            res[d.compute] = 1
            if d.spec.kind in ("cpu", "arm"):
                res[d.cores] = int(d.spec.cores)
            res[d.h2d] = 1
            res[d.d2h] = 1
        if len(self.devices) > 1:
            if self.link.shared_medium:
                res["medium"] = 1
            elif self.topology == "switch":
                for d in self.devices:
                    res[f"{d.id}.tx"] = 1
                    res[f"{d.id}.rx"] = 1
            else:
                for a, b in self._direct_pairs():
                    res[f"link:{a}->{b}"] = 1
            for n in range(self.nodes):
                if self.nodes > 1:
                    res[f"node{n}.tx"] = 1
                    res[f"node{n}.rx"] = 1
        return res

    def _direct_pairs(self) -> list[tuple[str, str]]:
        pairs = []
        for members in self.node_members():
            ids = [d.id for d in members]
            if self.topology == "ring":
                if len(ids) == 2:
                    pairs += [(ids[0], ids[1]), (ids[1], ids[0])]
                elif len(ids) > 2:
                    for i, a in enumerate(ids):
                        b = ids[(i + 1) % len(ids)]
                        pairs += [(a, b), (b, a)]
            else:
                pairs += [(a, b) for a in ids for b in ids if a != b]
        return pairs

    # -- queries -------------------------------------------------------------------------
    @property
    def nodes(self) -> int:
        return self.devices[-1].node + 1

    def node_members(self) -> list[list[Device]]:
        out: list[list[Device]] = [[] for _ in range(self.nodes)]
        for d in self.devices:
            out[d.node].append(d)
        return out

    def device(self, key: int | str) -> Device:
        if isinstance(key, int):
            return self.devices[key]
        try:
            return self._index[key]
        except KeyError:
            raise SimulationError(f"cluster has no device {key!r}") from None

    def memory_capacity_bytes(self) -> dict[str, int]:
        caps = {d.id: d.memory_bytes for d in self.devices}
        if self.host is not None:
            for n in range(self.nodes):
                caps[f"host{n}"] = int(self.host.memory_bytes)
        return caps

    def transfer(self, src: str, dst: str, nbytes: float) -> tuple[tuple[str, ...], float]:
        """Resources a src->dst transfer holds and its duration in seconds."""
        a, b = self.device(src), self.device(dst)
        if a.id == b.id:
            return (a.compute,), 0.0
        hops: list[tuple[str, LinkSpec]]
        if a.node != b.node:
            hops = [(f"node{a.node}.tx", self.inter_node_link), (f"node{b.node}.rx",
                                                                 self.inter_node_link)]
            return _cut_through(hops, nbytes, hop_count=1)
        if self.link.shared_medium:
            return _cut_through([("medium", self.link)], nbytes, hop_count=1)
        if self.topology == "switch":
            return _cut_through([(f"{a.id}.tx", self.link), (f"{b.id}.rx", self.link)], nbytes,
                                hop_count=1)
        if self.topology == "fully-connected":
            return _cut_through([(f"link:{a.id}->{b.id}", self.link)], nbytes, hop_count=1)
        path = self._ring_path(a, b)
        return _cut_through([(f"link:{x}->{y}", self.link) for x, y in path], nbytes,
                            hop_count=len(path))

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

    def path_link(self, src: str, dst: str) -> LinkSpec:
        """The slowest link a src->dst transfer crosses (for closed forms)."""
        a, b = self.device(src), self.device(dst)
        return self.inter_node_link if a.node != b.node else self.link

    def host_copy(self, dev: str, nbytes: float, direction: str) -> tuple[str, float]:
        """Copy engine and duration of a host<->device copy ('h2d' or 'd2h')."""
        d = self.device(dev)
        if direction not in ("h2d", "d2h"):
            raise SimulationError(f"copy direction must be 'h2d' or 'd2h', got {direction!r}")
        if self.host_link is None:
            raise SimulationError(f"device {dev!r} has no host link (PCIe) in this cluster")
        t = self.host_link.latency_s + nbytes / self.host_link.bandwidth_Bps
        return (d.h2d if direction == "h2d" else d.d2h), t

    def describe(self) -> dict:
        return {
            "device": self.devices[0].spec.name, "devices": len(self.devices),
            "link": self.link.name, "topology": self.topology,
            "devices_per_node": self.devices_per_node or len(self.devices),
            "inter_node_link": self.inter_node_link.name if self.inter_node_link else None,
            "host_link": self.host_link.name if self.host_link else None,
        }


def _link(link: str | LinkSpec) -> LinkSpec:
    return catalog.link(link) if isinstance(link, str) else link


def _cut_through(hops: list[tuple[str, LinkSpec]], nbytes: float,
                 hop_count: int) -> tuple[tuple[str, ...], float]:
    bandwidth = min(spec.bandwidth_Bps for _, spec in hops)
    latency = max(spec.latency_s for _, spec in hops) * hop_count
    return tuple(r for r, _ in hops), latency + nbytes / bandwidth
