"""Nodes as they are built: how a node's GPUs share PCIe switches and NICs, how nodes are
networked, and the named node types of the catalog (hwmodels/catalog/nodes.toml).

A NodeLayout is the same in every node of a cluster:
  nics            which local GPUs share each NIC: an inter-node transfer holds its source
                  GPU's NIC (node{n}.nic{k}.tx) and its destination GPU's NIC (.rx), so GPUs
                  that share a NIC queue for it. None: one NIC for the whole node (node{n}.tx).
  pcie_switches   which local GPUs share each PCIe switch's uplink to the host: a host copy
                  holds the GPU's copy engine and its switch's uplink (node{n}.pcie{k}.up for
                  device-to-host, .down for host-to-device), so swap traffic of GPUs behind
                  one switch queues for it. In the `pcie` topology, GPU-to-GPU traffic
                  between switches also crosses both uplinks. None: no shared uplink.
  network         between nodes: `fat-tree` (leaves of nodes_per_leaf nodes; traffic between
                  leaves takes one of the leaf's uplinks, leaf{m}.up / .down) or
                  `rail-optimised` (NIC k of every node on rail switch k; traffic between
                  rails crosses the spine, rail{k}.up / .down).
  oversubscription  a leaf's (or rail's) downlink bandwidth over its uplink bandwidth, >= 1:
                  its uplinks are floor(NICs below it / oversubscription) slots, each a NIC's
                  bandwidth, so at most that many transfers leave it at once.
"""
from __future__ import annotations

import importlib.resources
import math
import tomllib
from dataclasses import dataclass

from workloads.errors import did_you_mean

from .tasks import SimulationError

NETWORKS = ("fat-tree", "rail-optimised")


@dataclass(frozen=True)
class NodeLayout:
    nics: tuple[tuple[int, ...], ...] | None = None
    pcie_switches: tuple[tuple[int, ...], ...] | None = None
    network: str = "fat-tree"
    oversubscription: float = 1.0
    nodes_per_leaf: int | None = None

    def check(self, gpus_per_node: int, nodes: int) -> None:
        """A named SimulationError for a layout that does not add up for these nodes."""
        for what, groups in (("nics", self.nics), ("pcie_switches", self.pcie_switches)):
            if groups is not None:
                _check_groups(what, groups, gpus_per_node)
        if self.network not in NETWORKS:
            raise SimulationError(f"unknown network {self.network!r}; known: "
                                  f"{', '.join(NETWORKS)}")
        o = self.oversubscription
        if isinstance(o, bool) or not isinstance(o, (int, float)) or not 1 <= o < math.inf:
            raise SimulationError(f"oversubscription must be a finite number >= 1 (1: "
                                  f"non-blocking), got {o!r}")
        per_leaf = self.nodes_per_leaf
        if per_leaf is not None and (isinstance(per_leaf, bool) or not isinstance(per_leaf, int)
                                     or per_leaf < 1):
            raise SimulationError(f"nodes_per_leaf must be an integer >= 1, got {per_leaf!r}")
        if self.network == "rail-optimised" and per_leaf is not None:
            raise SimulationError("nodes_per_leaf is for a fat tree; a rail-optimised network "
                                  "puts NIC k of every node on rail switch k")
        if self.groups(nodes) > 1 and self.uplink_slots(nodes) < 1:
            raise SimulationError(
                f"oversubscription {o} leaves a {self.group_kind()} with no uplink: the "
                f"network does not connect every node")

    # -- structure -----------------------------------------------------------------------
    def nic_count(self) -> int:
        return len(self.nics) if self.nics else 1

    def nic_of(self, local: int) -> int:
        if not self.nics:
            return 0
        return next(k for k, members in enumerate(self.nics) if local in members)

    def switch_of(self, local: int) -> int | None:
        if not self.pcie_switches:
            return None
        return next(k for k, members in enumerate(self.pcie_switches) if local in members)

    def group_kind(self) -> str:
        return "rail" if self.network == "rail-optimised" else "leaf"

    def groups(self, nodes: int) -> int:
        """Leaves of the fat tree, or rails."""
        if self.network == "rail-optimised":
            return self.nic_count()
        return math.ceil(nodes / self.nodes_per_leaf) if self.nodes_per_leaf else 1

    def uplink_slots(self, nodes: int) -> int:
        below = (nodes if self.network == "rail-optimised"
                 else min(nodes, self.nodes_per_leaf or nodes) * self.nic_count())
        return math.floor(below / self.oversubscription + 1e-9)

    def group_of(self, node: int, nic: int) -> int:
        if self.network == "rail-optimised":
            return nic
        return node // self.nodes_per_leaf if self.nodes_per_leaf else 0

    def node_period(self, nodes: int) -> int | None:
        """Nodes per repeat of the network: 1, or a leaf when there are several (None when
        the last leaf is partial, or rails' uplinks are oversubscribed: shared by all)."""
        leaf = self.nodes_per_leaf
        if self.network == "rail-optimised":
            # NIC k of every node shares rail k's uplinks: one node stands for the others
            # only while the uplinks have a slot for every node's flow
            return 1 if self.uplink_slots(nodes) >= nodes else None
        if self.groups(nodes) == 1 or not leaf:
            return 1   # without a leaf size there is one group
        return leaf if nodes % leaf == 0 else None

    def nic_resource(self, node: int, nic: int, direction: str) -> str:
        return f"node{node}.{direction}" if not self.nics else f"node{node}.nic{nic}.{direction}"

    def resources(self, nodes: int) -> dict[str, int]:
        res: dict[str, int] = {}
        for n in range(nodes):
            for k in range(self.nic_count()):
                for direction in ("tx", "rx"):
                    res[self.nic_resource(n, k, direction)] = 1
        groups = self.groups(nodes)
        if groups > 1:
            for g in range(groups):
                res[f"{self.group_kind()}{g}.up"] = self.uplink_slots(nodes)
                res[f"{self.group_kind()}{g}.down"] = self.uplink_slots(nodes)
        return res

    def pcie_resources(self, nodes: int) -> dict[str, int]:
        return {f"node{n}.pcie{k}.{d}": 1 for n in range(nodes)
                for k in range(len(self.pcie_switches or ())) for d in ("up", "down")}

    def inter_node_path(self, node_a: int, local_a: int, node_b: int, local_b: int
                        ) -> tuple[str, ...]:
        """Resources of a transfer from GPU local_a of node_a to GPU local_b of node_b."""
        nic_a, nic_b = self.nic_of(local_a), self.nic_of(local_b)
        path = [self.nic_resource(node_a, nic_a, "tx")]
        group_a, group_b = self.group_of(node_a, nic_a), self.group_of(node_b, nic_b)
        if group_a != group_b:
            kind = self.group_kind()
            path += [f"{kind}{group_a}.up", f"{kind}{group_b}.down"]
        path.append(self.nic_resource(node_b, nic_b, "rx"))
        return tuple(path)


def _check_groups(what: str, groups, gpus_per_node: int) -> None:
    seen: list[int] = []
    for members in groups:
        if not members:
            raise SimulationError(f"{what}: an empty group (each lists the local GPUs that "
                                  f"share it)")
        for g in members:
            if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < gpus_per_node:
                raise SimulationError(f"{what}: GPU {g!r} does not exist in a node of "
                                      f"{gpus_per_node} GPUs (local GPUs are 0-"
                                      f"{gpus_per_node - 1})")
            seen.append(g)
    missing = sorted(set(range(gpus_per_node)) - set(seen))
    twice = sorted({g for g in seen if seen.count(g) > 1})
    if missing or twice:
        raise SimulationError(f"{what}: every GPU of a node must be in exactly one group; "
                              f"missing {missing}, in several {twice}")


# -- the catalog's node types ----------------------------------------------------------------
@dataclass(frozen=True)
class NodeType:
    """A node as sold: its GPUs, their fabric, NICs and PCIe switches, with a source."""
    name: str
    gpu: str
    gpus: int
    topology: str
    link: str
    nic_link: str
    nics: tuple[tuple[int, ...], ...]
    pcie_switches: tuple[tuple[int, ...], ...]
    host_link: str
    source: str
    host: str | None = None

    def layout(self, network: str = "fat-tree", oversubscription: float = 1.0,
               nodes_per_leaf: int | None = None, gpus: int | None = None) -> NodeLayout:
        """The node's layout; with `gpus` below a full node, that of its first `gpus` GPUs
        (a part of one node: the NICs and switches those GPUs use)."""
        def present(groups):
            if gpus is None or gpus >= self.gpus:
                return groups
            return tuple(kept for kept in (tuple(g for g in members if g < gpus)
                                           for members in groups) if kept)
        return NodeLayout(present(self.nics), present(self.pcie_switches), network,
                          oversubscription, nodes_per_leaf)


_FIELDS = {"gpu": str, "gpus": int, "topology": str, "link": str, "nic_link": str,
           "nics": list, "pcie_switches": list, "host_link": str, "source": str, "host": str,
           "cpu": dict}


def node_types() -> dict[str, NodeType]:
    """Every node type of the catalog, by name."""
    text = importlib.resources.files("hwmodels").joinpath("catalog/nodes.toml").read_text()
    out = {}
    for name, entry in tomllib.loads(text)["nodes"].items():
        for key, value in entry.items():
            if key not in _FIELDS or not isinstance(value, _FIELDS[key]):
                raise SimulationError(f"nodes.toml: node {name!r}: bad field {key!r}")
        groups = {k: tuple(tuple(g) for g in entry[k]) for k in ("nics", "pcie_switches")}
        # the host CPUs (`cpu`) are the input pipeline's to read (hwmodels/host_input.py)
        fields = {k: v for k, v in entry.items() if k != "cpu"}
        out[name] = NodeType(name=name, **{**fields, **groups})
    return out


def check_node_device(name: str, device: str, kind: str) -> None:
    """A node type is a GPU server: `device` (of `kind`) may replace its GPU with another GPU,
    never with a CPU or board, which no such server holds."""
    if kind != "gpu":
        nt = node_type(name)
        raise SimulationError(f"node type {name!r} holds {nt.gpus} GPUs ({nt.gpu}); hardware "
                              f"{device!r} is not a GPU (its kind is {kind}) to put in their "
                              "place")


def node_type(name: str) -> NodeType:
    types = node_types()
    if name not in types:
        raise SimulationError(f"unknown node type {name!r}{did_you_mean(name, types)}; known: "
                              f"{', '.join(sorted(types))}")
    return types[name]
