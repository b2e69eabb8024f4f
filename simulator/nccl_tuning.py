"""How NCCL picks an all-reduce's algorithm and protocol, after its tuning model.

NCCL (2.5 and later) predicts each (algorithm, protocol) pair's time for a collective of a
given size, latency plus bytes over bandwidth, and runs the fastest (src/graph/tuning.cc,
ncclTopoTuneModel; src/enqueue.cc, getAlgoInfo). This module follows NCCL 2.8's model, the
NCCL of the 2020-2021 NGC containers:

  algorithms  ring (2(n-1) steps) or tree (within a node a chain, across nodes NCCL's double
              binary tree: two trees, each carrying half the data, every node a leaf in one)
  protocols   LL (8-byte lines with a flag per 4 bytes of data: lowest latency, a quarter of
              the bandwidth), LL128 (128-byte lines, 120 of them data; on NVLink), Simple
              (bulk copies with fences: the full bandwidth, the highest latency)

  time_us = latency_us + bytes / (1000 * bandwidth_GBps)
  latency:   baseLat[a][p] + ring: (steps - interSteps) * intraLat + interSteps * interLat
                           + tree: 2 * ((ranks/nodes - 1) * intraLat + log2(nodes) * interLat)
  bandwidth: channels x per-channel speed (the bus bandwidth), scaled per protocol, times
             ranks/steps for a ring and 1/2 for a tree (algorithm bandwidth)

The constants below (BASE_LATENCY_US, HW_LATENCY_US, the bandwidth factors and caps for
Volta) are NCCL 2.8's tuning.cc as typed from its source without a copy of it at hand: check
a constant against the file before relying on it. NCCL 2.9 and later add a per-size tree
correction that is not modelled; nor are NCCL_ALGO and NCCL_PROTO (user overrides).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

ALGORITHMS = ("tree", "ring")
PROTOCOLS = ("LL", "LL128", "Simple")
HW_CLASSES = ("nvlink", "pci", "net")

# baseLat[algorithm][protocol], us: the kernel launch and set-up, once per collective
BASE_LATENCY_US = {"tree": {"LL": 4.4, "LL128": 4.4, "Simple": 0.0},
                   "ring": {"LL": 3.6, "LL128": 10.0, "Simple": 8.4}}
# hwLat[hardware][algorithm][protocol], us: one step over that hardware ("Tree/Simple is the
# latency of a 256 kB chunk" in NCCL's comment)
HW_LATENCY_US = {
    "nvlink": {"tree": {"LL": 0.52, "LL128": 1.25, "Simple": 28.0},
               "ring": {"LL": 0.47, "LL128": 1.9, "Simple": 3.4}},
    "pci": {"tree": {"LL": 1.0, "LL128": 1.9, "Simple": 28.0},
            "ring": {"LL": 1.0, "LL128": 2.5, "Simple": 5.7}},
    "net": {"tree": {"LL": 5.0, "LL128": 8.5, "Simple": 28.0},
            "ring": {"LL": 2.7, "LL128": 4.0, "Simple": 9.6}},
}
LL_MAX_BW_GBPS = 39.0              # llMaxBw: LL's ceiling, all channels together (Volta)
LL128_MAX_BW_PER_CHANNEL_GBPS = 20.0
TREE_MAX_BW_PER_CHANNEL_GBPS = 24.0

NCCL_RELEASE = "2.8"
# Where each constant of the model comes from, the NCCL release and file (recalled from the
# source, not checked against a copy: module notes)
SOURCES = {
    "BASE_LATENCY_US": "NCCL 2.8 src/graph/tuning.cc, baseLat[algorithm][protocol]",
    "HW_LATENCY_US": "NCCL 2.8 src/graph/tuning.cc, hwLat[NVLINK, PCI, NET][algorithm]"
                     "[protocol]",
    "LL_MAX_BW_GBPS": "NCCL 2.8 src/graph/tuning.cc, llMaxBw (Volta)",
    "LL128_MAX_BW_PER_CHANNEL_GBPS": "NCCL 2.8 src/graph/tuning.cc, the LL128 ring cap per "
                                     "channel",
    "TREE_MAX_BW_PER_CHANNEL_GBPS": "NCCL 2.8 src/graph/tuning.cc, perChMaxTreeBw",
    "STEP_DATA_BYTES": "NCCL 2.8 src/include/devcomm.h (NCCL_STEPS, NCCL_LL_LINES_PER_THREAD,"
                       " NCCL_LL128_ELEMS_PER_THREAD) and src/init.cc (buffSizes)",
}


@dataclass(frozen=True)
class Fabric:
    """What NCCL's model reads of the machine: ranks, nodes, the channels its rings use and
    the bus bandwidth of one channel (GB/s: within a node, or the network's share across
    nodes), and the hardware of the intra-node hops."""
    ranks: int
    nodes: int
    channels: int
    channel_GBps: float
    intra_hw: str = "nvlink"

    def __post_init__(self) -> None:
        if self.intra_hw not in ("nvlink", "pci"):
            raise ValueError(f"intra_hw must be 'nvlink' or 'pci', got {self.intra_hw!r}")
        if not (self.ranks >= 1 and 1 <= self.nodes <= self.ranks and self.channels >= 1
                and self.channel_GBps > 0):
            raise ValueError(f"a fabric needs ranks >= nodes >= 1, channels >= 1 and a "
                             f"positive bandwidth, got {self}")


@dataclass(frozen=True)
class Choice:
    algorithm: str
    protocol: str
    latency_s: float
    bandwidth_Bps: float      # algorithm bandwidth: bytes of the buffer per second

    def time_s(self, nbytes: float) -> float:
        return self.latency_s + nbytes / self.bandwidth_Bps


def model(fabric: Fabric, algorithm: str, protocol: str) -> Choice:
    """NCCL's predicted latency and algorithm bandwidth of an all-reduce."""
    n, nodes = fabric.ranks, fabric.nodes
    steps, inter_steps = 2 * (n - 1), 2 * (nodes - 1)
    bus = fabric.channels * fabric.channel_GBps
    if algorithm == "ring":
        if protocol == "LL":
            bus = min(LL_MAX_BW_GBPS, bus / 4)
        elif protocol == "LL128":
            ppn = n / nodes
            bus = min(bus * (0.7 if ppn < 2 else 0.92),
                      LL128_MAX_BW_PER_CHANNEL_GBPS * fabric.channels)
        ratio = n / steps if steps else 1.0
    else:
        bus = min(bus * 0.92, fabric.channels * TREE_MAX_BW_PER_CHANNEL_GBPS)
        if protocol == "LL":
            bus = min(bus / 3.8, LL_MAX_BW_GBPS)
        elif protocol == "LL128":
            bus = min(bus * (7 / 9 if nodes == 1 else 120 / 128),
                      LL128_MAX_BW_PER_CHANNEL_GBPS * fabric.channels)
        ratio = 0.5
    intra = HW_LATENCY_US[fabric.intra_hw][algorithm][protocol]
    inter = HW_LATENCY_US["net"][algorithm][protocol]
    if nodes > 1 and protocol == "LL":
        intra *= 1.8
    latency = BASE_LATENCY_US[algorithm][protocol]
    if algorithm == "ring":
        latency += (steps - inter_steps) * intra + inter_steps * inter
    else:
        latency += 2 * ((n // nodes - 1) * intra + _log2i(nodes) * inter)
    return Choice(algorithm, protocol, latency * 1e-6, bus * ratio * 1e9)


def choose(fabric: Fabric, nbytes: float, algorithms: tuple[str, ...] = ALGORITHMS
           ) -> Choice:
    """The (algorithm, protocol) NCCL runs an all-reduce of `nbytes` with: the least
    predicted time; LL128 only on NVLink (NCCL enables it by default there, on Volta and
    later); the tree only across nodes unless it is the one algorithm offered (NCCL's trees
    are its inter-node algorithm: inside one node a tree is a chain); on a tie the first in
    NCCL's order (tree before ring, LL before Simple)."""
    if fabric.nodes == 1 and len(algorithms) > 1:
        algorithms = tuple(a for a in algorithms if a != "tree")
    best: Choice | None = None
    for algorithm in algorithms:
        for protocol in PROTOCOLS:
            if protocol == "LL128" and fabric.intra_hw != "nvlink":
                continue
            c = model(fabric, algorithm, protocol)
            if best is None or c.time_s(nbytes) < best.time_s(nbytes):
                best = c
    assert best is not None
    return best


def protocol_factors(algorithm: str, protocol: str, hw: str) -> tuple[float, float]:
    """(latency factor, bandwidth factor) of one hop over `hw` ('nvlink', 'pci' or 'net')
    under this algorithm and protocol, relative to the ring's Simple protocol, which a link's
    latency_s and bandwidth in the catalog are: the ratio of NCCL's per-step latencies (a
    tree's under LL and LL128, 5.0 and 8.5 us over the network against the ring's 2.7 and
    4.0; under Simple the ring's, NCCL's tree figure being a whole 256 kB chunk's time,
    which the simulation runs itself), and the protocol's bandwidth scaling, before the
    caps."""
    table = "tree" if algorithm == "tree" and protocol != "Simple" else "ring"
    latency = HW_LATENCY_US[hw][table][protocol] / HW_LATENCY_US[hw]["ring"]["Simple"]
    if algorithm == "ring":
        bandwidth = {"LL": 1 / 4, "LL128": 0.92, "Simple": 1.0}[protocol]
    else:
        bandwidth = 0.92 * {"LL": 1 / 3.8, "LL128": 120 / 128, "Simple": 1.0}[protocol]
    return latency, bandwidth


def launch_s(algorithm: str, protocol: str) -> float:
    """The once-per-collective latency a simulated run of this pair pays: NCCL's baseLat; a
    tree with Simple, whose baseLat of 0 NCCL folds into its per-chunk 28 us, the tree's
    4.4 us of its other protocols."""
    base = BASE_LATENCY_US[algorithm][protocol]
    return 1e-6 * (BASE_LATENCY_US["tree"]["LL"] if algorithm == "tree" and base == 0 else base)


# Buffer of one step of each protocol, in bytes of data (NCCL's buffSizes / NCCL_STEPS):
# Simple 4 MiB over 8 steps; LL128 120 elements of 8 bytes x 640 threads x 8 steps over 8
# steps, 120 of each 128 bytes data; LL 8 lines of 16 bytes x 512 threads, half of it data
STEP_DATA_BYTES = {"Simple": 4 * 2**20 // 8, "LL128": 120 * 640 * 8 * 120 // 128,
                   "LL": 8 * 16 * 512 // 2}


def tree_chunk_bytes(nbytes: float, channels: int, ranks: int, nodes: int,
                     protocol: str) -> int:
    """The chunk NCCL's tree all-reduce moves per channel and step (src/enqueue.cc,
    computeColl, as recalled): a protocol step's data, halved until the channel's share
    comes in enough chunks to fill the tree's pipeline. Simple: at least 8, 4, then 1
    chunks per level of the tree's depth (ranks per node - 1 + log2 nodes) while the chunk
    stays above 128, 64, then 32 KiB; LL128: at least 64, then 16 chunks per
    (1 + log2 nodes + ranks per node / 10) / (ranks per node), above 128 and 32 KiB."""
    chunk = STEP_DATA_BYTES[protocol]
    share = nbytes / channels
    ppn = ranks / nodes
    if protocol == "Simple":
        depth = ranks // nodes - 1 + _log2i(nodes)
        for levels, floor in ((8, 131072), (4, 65536), (1, 32768)):
            while share / chunk < depth * levels and chunk > floor:
                chunk //= 2
    elif protocol == "LL128":
        steps = 1 + _log2i(nodes) + 0.1 * ppn
        for per_step, floor in ((64, 131072), (16, 32768)):
            while share / chunk < steps * per_step / ppn and chunk > floor:
                chunk //= 2
    return chunk


def _log2i(n: int) -> int:
    """NCCL's log2i: floor(log2 n)."""
    return int(math.floor(math.log2(n))) if n > 0 else 0
