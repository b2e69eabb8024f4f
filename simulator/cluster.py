"""Cluster: devices, hosts and the network between them, as engine resources.

Resource names (what tasks hold):
  {dev}.compute   the device's compute stream (capacity 1: an op uses the whole device)
  {dev}.cores     CPU/ARM only: one slot per core, for core-by-core work items
  {dev}.h2d/.d2h  the copy engines to and from host memory, over the host link (PCIe)
  {dev}.tx/.rx    the device's network port in a switched topology (full duplex)
  link:{a}->{b}   a direct link in a ring or fully connected topology (one per direction)
  link:{a}->{b}#k NVLink k from a to b in a DGX-1 hybrid cube-mesh (node_topologies.py)
  {dev}.tx#k/.rx#k  NVLink k of the device's port into NVSwitch (DGX-2)
  medium          a shared medium (Wi-Fi): one transmission at a time for everyone
  wire            between nodes: a transfer's flight (its network latency) after it has
                  left its ports, any number at once, so latency delays what waits for the
                  data without holding a port (collectives.py, collective_trees.py)
  node{n}.tx/.rx  a node's port to the inter-node network (node{n}.nic{k}.tx/.rx: NIC k of
                  several, leaf{m}.up/.down or rail{k}.up/.down: the network's uplinks, and
                  node{n}.pcie{k}.up/.down: a PCIe switch's uplink; see node_types.py)

Which of them a transfer holds, for how long, and the rings a ring collective runs side by
side: routes.py (Cluster takes its methods).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import cast

from hwmodels import DeviceModel, catalog, model_for
from hwmodels.specs import DeviceSpec, HostSpec, LinkSpec

from . import node_topologies as nvl
from . import symmetry
from .node_types import NodeLayout, check_node_device, node_type
from .routes import Routes
from .stragglers import Jitter, check_speeds
from .tasks import SimulationError

# pcie: GPUs on PCIe switches (the layout's pcie_switches), no peer links: traffic between
# switches crosses both switches' uplinks
TOPOLOGIES = ("switch", "ring", "fully-connected", "pcie", *nvl.NVLINK_TOPOLOGIES)


@dataclass
class Device:
    id: str
    spec: DeviceSpec
    model: DeviceModel
    node: int = 0
    speed: float = 1.0                 # compute speed relative to the model (stragglers.py)
    jitter: Jitter | None = None       # per-op time factors (stragglers.py)

    def time_factor(self, task: str) -> float:
        """What the time of this device's compute task `task` is multiplied by."""
        slow = 1.0 / self.speed
        return slow * self.jitter.factor(self.id, task) if self.jitter else slow

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
class Cluster(Routes):
    devices: list[Device]
    link: LinkSpec
    topology: str = "switch"
    devices_per_node: int | None = None
    inter_node_link: LinkSpec | None = None
    host: HostSpec | None = None
    host_link: LinkSpec | None = None
    resources: dict[str, int] = field(default_factory=dict)
    layout: NodeLayout = field(default_factory=NodeLayout)
    node_type: str | None = None

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
        if self.topology in nvl.NVLINK_TOPOLOGIES:
            most, per_node = nvl.MAX_DEVICES_PER_NODE[self.topology], min(k, len(self.devices))
            if per_node > most:
                raise SimulationError(f"topology {self.topology!r} joins at most {most} GPUs "
                                      f"per node, got {per_node}; give devices_per_node <= "
                                      f"{most} and an inter_node_link")
        self.layout.check(min(k, len(self.devices)), math.ceil(len(self.devices) / k))
        self._index = {d.id: d for d in self.devices}
        for i, d in enumerate(self.devices):
            d.node = i // k
        self._local = {d.id: i % k for i, d in enumerate(self.devices)}   # index in its node
        self._members: list[list[Device]] | None = None
        self.resources = self._build_resources()

    # -- construction --------------------------------------------------------------------
    @classmethod
    def build(cls, device: str | DeviceSpec = "v100", count: int = 1,
              link: str | LinkSpec | None = "nvlink2", topology: str = "switch",
              devices_per_node: int | None = None,
              inter_node_link: str | LinkSpec | None = None, host: str | HostSpec | None = None,
              host_link: str | LinkSpec | None = None, profile=None,
              speeds: dict[str, float] | None = None, jitter: Jitter | None = None,
              layout: NodeLayout | None = None) -> "Cluster":
        """`device`: a catalog name, a DeviceSpec, or a calibrated profile file (.toml), as
        `--hardware` takes (the profile's device, costed by the profile). speeds: device id
        -> compute speed (1: as modelled); jitter: per-op time factors (stragglers.py);
        layout: the nodes' NICs, PCIe switches and network (node_types.py)."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise SimulationError(f"device count must be an integer >= 1, got {count!r}")
        if link is None:
            if count > 1:
                raise SimulationError(f"a cluster of {count} devices needs a link (a catalog "
                                      "name such as 'nvlink2' or 'pcie3'; dnnsim hardware "
                                      "lists them)")
            link = SINGLE_DEVICE_LINK
        if isinstance(device, (str, os.PathLike)) and os.fspath(device).endswith(".toml"):
            from hwmodels.profile import Profile
            profile = Profile.load(device) if profile is None else profile
            device = profile.device_name
        spec = catalog.device(device) if isinstance(device, str) else device
        prefix = {"gpu": "gpu", "cpu": "cpu", "arm": "arm"}.get(spec.kind, "dev")
        devices = [Device(f"{prefix}{i}", spec, model_for(spec, profile), jitter=jitter)
                   for i in range(count)]
        check_speeds(speeds or {}, [d.id for d in devices])
        for d in devices:
            d.speed = float((speeds or {}).get(d.id, 1.0))
        return cls(devices=devices, link=_link(link), topology=topology,
                   devices_per_node=devices_per_node,
                   inter_node_link=_link(inter_node_link) if inter_node_link else None,
                   host=catalog.host(host) if isinstance(host, str) else host,
                   host_link=_link(host_link) if host_link else
                   (_link(spec.host_link) if spec.kind == "gpu" and spec.host_link else None),
                   layout=layout or NodeLayout())

    @classmethod
    def from_node_type(cls, name: str, count: int, device: str | DeviceSpec | None = None,
                       network: str = "fat-tree", oversubscription: float = 1.0,
                       nodes_per_leaf: int | None = None, profile=None,
                       speeds: dict[str, float] | None = None, jitter: Jitter | None = None
                       ) -> "Cluster":
        """`count` GPUs in nodes of catalog node type `name` (node_types.py), filled in
        order; `device` replaces the node's own GPU."""
        nt = node_type(name)
        cluster = cls.build(device or nt.gpu, count, nt.link, topology=nt.topology,
                            devices_per_node=nt.gpus, inter_node_link=nt.nic_link,
                            host=nt.host, host_link=nt.host_link, profile=profile,
                            speeds=speeds, jitter=jitter)
        spec = cluster.devices[0].spec
        check_node_device(name, spec.name, spec.kind)
        return cls(cluster.devices, cluster.link, cluster.topology, nt.gpus,
                   cluster.inter_node_link, cluster.host, cluster.host_link,
                   layout=nt.layout(network, oversubscription, nodes_per_leaf, gpus=count),
                   node_type=name)

    def _build_resources(self) -> dict[str, int]:
        res: dict[str, int] = {}
        for d in self.devices:
            res[d.compute] = 1
            if d.spec.kind in ("cpu", "arm"):
                res[d.cores] = int(cast(int, d.spec.cores))   # a CPU's spec has cores
            res[d.h2d] = 1
            res[d.d2h] = 1
        if len(self.devices) > 1:
            if self.link.shared_medium:
                res["medium"] = 1
            elif self.topology in ("switch", "pcie"):
                for d in self.devices:
                    res[f"{d.id}.tx"] = 1
                    res[f"{d.id}.rx"] = 1
            elif self.topology == "nvswitch":
                for d in self.devices:
                    for lane in range(nvl.NVSWITCH_LINKS_PER_GPU):
                        res[f"{d.id}.tx#{lane}"] = 1
                        res[f"{d.id}.rx#{lane}"] = 1
            elif self.topology == "dgx1-cube-mesh":
                for members in self.node_members():
                    for i, a in enumerate(members):
                        for j, b in enumerate(members):
                            for lane in range(nvl.dgx1_links(i, j)):
                                res[f"link:{a.id}->{b.id}#{lane}"] = 1
            else:
                for src, dst in self._direct_pairs():
                    res[f"link:{src}->{dst}"] = 1
            if self.nodes > 1:
                res.update(self.layout.resources(self.nodes))
            res[WIRE_RESOURCE] = WIRE_CAPACITY   # latency in flight, inside a node too
        res.update(self.layout.pcie_resources(self.nodes))
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
        """The devices of each node (computed once: routes ask for them per transfer)."""
        if self._members is None:
            self._members = [[] for _ in range(self.nodes)]
            for d in self.devices:
                self._members[d.node].append(d)
        return self._members

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

    # -- symmetry (symmetry.py) ------------------------------------------------------------
    def symmetry_period(self) -> int | None:
        return symmetry.period(self)

    def representative_resources(self, period: int) -> dict[str, str]:
        cache = self.__dict__.setdefault("_representatives", {})   # per transfer: once
        if period not in cache:
            cache[period] = symmetry.representatives(self, period)
        return cache[period]

    def describe(self) -> dict:
        layout: dict[str, object] = {}
        if self.node_type:
            layout["node_type"] = self.node_type
        if self.layout != NodeLayout():
            layout.update(network=self.layout.network,
                          oversubscription=self.layout.oversubscription,
                          nodes_per_leaf=self.layout.nodes_per_leaf)
        return {**layout,
            "device": self.devices[0].spec.name, "devices": len(self.devices),
            "link": self.link.name, "topology": self.topology,
            "devices_per_node": self.devices_per_node or len(self.devices),
            "inter_node_link": self.inter_node_link.name if self.inter_node_link else None,
            "host_link": self.host_link.name if self.host_link else None,
        }


# Flights on the wire never queue: more slots than any task graph has tasks.
WIRE_RESOURCE = "wire"
WIRE_CAPACITY = 2 ** 62

# One device needs no network; any catalog link keeps the cluster well formed.
SINGLE_DEVICE_LINK = "pcie3"


def _link(link: str | LinkSpec) -> LinkSpec:
    return catalog.link(link) if isinstance(link, str) else link
