"""GPU nodes wired with NVLink: which GPUs a node joins by how many links, and the rings NCCL
runs over them.

dgx1-cube-mesh  DGX-1 with V100: 8 GPUs, 6 NVLink 2 links each, in a hybrid cube-mesh: two
                fully connected quads (GPU 0-3, 4-7) plus one link between the GPUs of the same
                place in each quad; six pairs use two links. GPU pairs without a link reach each
                other through a GPU both are linked to (NCCL's NVLink-bridged peer path, "NVB").
nvswitch        DGX-2: 16 V100s, each with its 6 NVLink 2 links into the NVSwitch fabric, which
                connects every GPU to every other at the full 6 links (non-blocking).

A link (catalog: nvlink2-link) is one direction of one NVLink; a GPU port on NVSwitch is six of
them. Each link is its own engine resource, so NCCL's channels, one ring each, take one link
per hop and run side by side; a plain point-to-point copy takes every link between the pair.

NCCL's rings (its topology search, src/graph/search.cc) are as many Hamiltonian cycles as the
links carry, each run in both directions: every link direction is one channel's. On a full
DGX-1 that is 3 cycles, 6 channels, 6 x 22.5 GB/s = 135 GB/s of all-reduce bus bandwidth
(nccl-tests on DGX-1V: 130-140 GB/s); on the first 4 GPUs 2 cycles, 4 channels; on GPU 0 and 1
(one link) one channel. On NVSwitch every ring order is as good: one channel per NVLink.
"""
from __future__ import annotations

from functools import lru_cache

NVLINK_TOPOLOGIES = ("dgx1-cube-mesh", "nvswitch")

# NVLinks between the GPUs of a DGX-1 with V100 (`nvidia-smi topo -m`: NV1 / NV2; the other
# pairs are SYS). Source: NVIDIA DGX-1 With Tesla V100 System Architecture white paper
# (WP-08437-002), hybrid cube-mesh figure; every GPU has 6 links (V100 SXM2 datasheet).
DGX1_V100_NVLINKS: dict[tuple[int, int], int] = {
    (0, 1): 1, (0, 2): 1, (0, 3): 2, (0, 4): 2, (1, 2): 2, (1, 3): 1, (1, 5): 2, (2, 3): 2,
    (2, 6): 1, (3, 7): 1, (4, 5): 1, (4, 6): 1, (4, 7): 2, (5, 6): 2, (5, 7): 1, (6, 7): 2,
}
DGX1_GPUS = 8
# DGX-2: 16 V100s on two baseboards of 6 NVSwitches; every GPU has one NVLink to each of its
# board's 6 switches, and the boards are joined by 48 links a side (NVIDIA DGX-2 datasheet and
# NVSwitch technical overview: 2.4 TB/s bisection), so no GPU pair is limited below 6 links.
NVSWITCH_GPUS = 16
NVSWITCH_LINKS_PER_GPU = 6

MAX_DEVICES_PER_NODE = {"dgx1-cube-mesh": DGX1_GPUS, "nvswitch": NVSWITCH_GPUS}


def dgx1_links(a: int, b: int) -> int:
    """NVLinks between GPU a and GPU b of a DGX-1 (0 if none)."""
    return DGX1_V100_NVLINKS.get((min(a, b), max(a, b)), 0)


def dgx1_bridge(a: int, b: int, members: tuple[int, ...]) -> int | None:
    """The GPU among `members` that a and b (not linked) both have links to: the one whose
    narrower side has the most links, the lowest index on a tie; None when there is none."""
    best, width = None, 0
    for c in members:
        w = min(dgx1_links(a, c), dgx1_links(c, b))
        if c not in (a, b) and w > width:
            best, width = c, w
    return best


@lru_cache(maxsize=None)
def dgx1_rings(members: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """NCCL's rings over DGX-1 GPUs `members` (local indices, in order): directed orders of
    every member, each link direction in at most one ring. Empty when no ring exists (the
    caller falls back to one ring through bridged hops)."""
    p = len(members)
    if p < 2:
        return ()
    if p == 2:   # a "ring" of two runs both directions of one link: one per link
        return ((members[0], members[1]),) * dgx1_links(*members)
    cycles = _hamiltonian_cycles(members)
    best: list[tuple[int, ...]] = []

    def pack(start: int, chosen: list[tuple[int, ...]], used: dict) -> None:
        nonlocal best
        if len(chosen) > len(best):
            best = list(chosen)
        for k in range(start, len(cycles)):   # a cycle may repeat where every link is double
            edges = _edges(cycles[k])
            if all(used.get(e, 0) < dgx1_links(*e) for e in edges):
                for e in edges:
                    used[e] = used.get(e, 0) + 1
                chosen.append(cycles[k])
                pack(k, chosen, used)
                chosen.pop()
                for e in edges:
                    used[e] -= 1

    pack(0, [], {})
    rings: list[tuple[int, ...]] = []
    for cycle in best:
        rings += [cycle, (cycle[0], *reversed(cycle[1:]))]
    return tuple(rings)


def _edges(cycle: tuple[int, ...]) -> list[tuple[int, int]]:
    n = len(cycle)
    return [(min(cycle[i], cycle[(i + 1) % n]), max(cycle[i], cycle[(i + 1) % n]))
            for i in range(n)]


def _hamiltonian_cycles(members: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every cycle through all members over linked pairs, once each: it starts at the first
    member and its second member is lower than its last (lexicographic order)."""
    first, rest = members[0], sorted(members[1:])
    out: list[tuple[int, ...]] = []

    def extend(path: list[int], left: set[int]) -> None:
        if not left:
            if dgx1_links(path[-1], first) and path[1] < path[-1]:
                out.append(tuple(path))
            return
        for c in rest:
            if c in left and dgx1_links(path[-1], c):
                left.remove(c)
                path.append(c)
                extend(path, left)
                path.pop()
                left.add(c)

    extend([first], set(rest))
    return out
