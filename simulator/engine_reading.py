"""How the engine reads a task graph before running it: per-task columns indexed by insertion
order (the hot loop then makes no attribute or name lookups), whom each task's end releases,
and which of the resources a task names can ever make it wait, and the order in which each device
grants its memory (the issue order, below).

A resource y never makes a task wait when every task that holds y also holds one resource x
of no greater capacity ("x dominates y"). The ready tasks queued on y are then among those
queued on x, in the same (priority, insertion) order, so x's head heads y too whenever it
holds y; and y's holders running at any moment are among x's, so y has a free slot whenever x
has one. Leaving y out of every task changes no start and no end: the engine only keeps
fewer queues. In a ring all-reduce on one switch each send port is held together with the
same receive port and nothing else, so half the ports go.

The issue order is the order in which a host program issues the tasks: a topological order
that, among the tasks whose dependencies are all issued, issues the one of lowest (priority,
insertion index) next. A CUDA program's caching allocator serves each op's allocation when the
host issues the op, and the host issues ahead of the device, so a device's allocations happen
in this order whatever the kernels' times; the engine grants them so (engine.py's rules).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from heapq import heapify, heappop, heappush
from itertools import accumulate, chain, compress, repeat
from operator import add, and_, itemgetter
from typing import NoReturn

import numpy as np

from .tasks import SimulationError, Task, TaskGraph


def successors(parents: Sequence[int], in_degree: Sequence[int]) -> list[tuple[int, ...]]:
    """Each task's successors in insertion order, from every task's dependencies' positions
    flattened in task order (`parents`) and how many each task has (`in_degree`): one stable
    sort of the (parent, child) pairs by parent. Parents with d successors take theirs d at a
    time from one list (most tasks have one or two), which builds the tuples without a slice
    each."""
    n = len(in_degree)
    by_parent = np.fromiter(parents, dtype=np.intp, count=len(parents))
    child = np.repeat(np.arange(n, dtype=np.intp), np.fromiter(in_degree, np.intp, n))
    flat = child[np.argsort(by_parent, kind="stable")]
    out_degree = np.bincount(by_parent, minlength=n)
    edge_degree = np.repeat(out_degree, out_degree)   # each sorted pair's parent's out-degree
    rows: dict[int, Iterator[tuple[int, ...]]] = {0: repeat(())}
    for d in np.flatnonzero(np.bincount(out_degree)).tolist():   # the out-degrees present
        if d:
            same = iter(flat[edge_degree == d].tolist())
            rows[d] = zip(*[same] * d, strict=True)
    return list(map(next, map(rows.__getitem__, out_degree.tolist())))


# Tuples longer than this are left as they are (a flow-level collective holds thousands of
# ports: comparing each with every other would cost the square of that).
MOST_PORTS_COMPARED = 16


def binding_resources(tuples: Iterable[tuple[str, ...]],
                      capacities: Mapping[str, int]) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Each distinct resource tuple that tasks hold, less the resources another one dominates
    (see the module's note), in its own order.

    Every resource left out is dominated by one that stays in the same tuples: when x
    dominates y and z dominates x, z dominates y, so the resources are looked at in name
    order and one is dropped only for a dominator still kept (of two with the same holders
    and capacity, the first by name goes). The resources of a tuple that names one twice
    (which takes that resource's slots twice) or holds more than MOST_PORTS_COMPARED neither
    go nor make another go."""
    distinct = list(dict.fromkeys(tuples))
    pinned: set[str] = set()
    for rs in distinct:
        if len(rs) > MOST_PORTS_COMPARED or len(set(rs)) != len(rs):
            pinned.update(rs)
    held_with: dict[str, set[str]] = {}   # resource -> resources every holder of it holds
    for rs in distinct:
        for r in rs:
            if r not in pinned:
                others = held_with.get(r)
                held_with[r] = set(rs) if others is None else others.intersection(rs)
    dropped: set[str] = set()
    for y in sorted(held_with):
        cap = capacities[y]
        for x in sorted(held_with[y] - pinned):
            if x != y and x not in dropped and capacities[x] <= cap:
                dropped.add(y)
                break
    return {rs: tuple(r for r in rs if r not in dropped) for rs in distinct}


def issue_order(key: Sequence[int], children: Sequence[Sequence[int]],
                waiting: Sequence[int]) -> list[int]:
    """The tasks in issue order (module note): Kahn's algorithm taking the lowest key among
    the tasks whose dependencies are all issued. key[i] % len(key) == i (Columns.key)."""
    n = len(key)
    left = list(waiting)
    ready = [key[i] for i in compress(range(n), map((0).__eq__, left))]
    heapify(ready)
    order = []
    while ready:
        i = heappop(ready) % n
        order.append(i)
        for c in children[i]:
            w = left[c] - 1
            left[c] = w
            if not w:
                heappush(ready, key[c])
    return order


class Columns:
    """A task graph as the loop reads it. Resources are numbered in the order of their names,
    only those that can make a task wait (all of them with `every_resource`)."""

    plain: list[bool]   # set by read_memory_effects, narrowed by __init__

    def __init__(self, graph: TaskGraph, capacities: Mapping[str, int],
                 every_resource: bool = False) -> None:
        self.tasks: list[Task] = graph.tasks
        tasks = self.tasks
        n = self.n = len(tasks)
        # Resources: each distinct tuple is translated once (a collective's transfers share
        # their hop's names, a device's ops their stream's).
        resources = [t.resources for t in tasks]
        distinct = set(resources)
        if not set(chain.from_iterable(distinct)) <= capacities.keys():
            refuse(graph, capacities)
        binding = ({rs: rs for rs in distinct} if every_resource
                   else binding_resources(distinct, capacities))
        self.resource_names = names = sorted(set(chain.from_iterable(binding.values())))
        rid = dict(zip(names, range(len(names)), strict=True)).__getitem__
        numbered = {rs: tuple(map(rid, binding[rs])) for rs in distinct}
        self.res = res = list(map(numbered.__getitem__, resources))
        # Dependencies: how many each task waits for, and whom each one's end releases.
        all_deps = [t.deps for t in tasks]
        self.waiting = waiting = list(map(len, all_deps))
        dep_names = chain.from_iterable(all_deps)
        try:
            # one itemgetter looks every name up in one call (of one name it gives the position
            # alone, not in a tuple)
            parents = (itemgetter(*dep_names)(graph.positions) if sum(waiting) > 1
                       else tuple(map(graph.positions.__getitem__, dep_names)))
        except KeyError:
            refuse(graph, capacities)
        self.children = successors(parents, waiting)
        self.read_memory_effects(tasks, every_resource)
        if any(len(rs) != 1 for rs in numbered.values()):   # ... and one resource
            self.plain = list(map(and_, map((1).__eq__, map(len, res)), self.plain))
        self.dur = [t.duration_s for t in tasks]
        # A task's place in its queues, (priority, insertion index), as one int: the rank of
        # its priority among those present times n, plus the index (ints compare fastest).
        priorities = [t.priority for t in tasks]
        ranks = sorted(set(priorities))
        if len(ranks) <= 1:
            self.key = list(range(n))
        else:
            rank = {p: k * n for k, p in enumerate(ranks)}
            self.key = list(map(add, map(rank.__getitem__, priorities), range(n)))
        self.read_grant_order()

    def read_grant_order(self) -> None:
        """The order in which each device grants its memory.

        A device's program issues the tasks attributed to it (Task.device; every device a
        task allocates on, where it names none); what a task allocates on another device (a
        transfer's receive buffer, which that device's own program posts at a point the graph
        does not say) is taken when it starts. Where every task a device's program allocates
        with holds one same resource (one stream), the order its queue serves them is their
        issue order: the loop needs nothing. Where none is shared (a compute stream and a copy
        engine), they are listed in the graph's issue order (module note): grant_seq[d], their
        indices;
        grant_prefix[d][p], the bytes the first p of them allocate on d; take_pos[i], task
        i's place in grant_seq[take_on[i]] (-1 where that device needs no list);
        grant_pos[i], its place on each listed device it allocates on."""
        n, alloc, res, tasks = self.n, self.alloc, self.res, self.tasks
        self.take_pos = take_pos = [-1] * n
        none: dict[str, int] = {}
        self.grant_pos = grant_pos = [none] * n
        self.grant_seq: dict[str, list[int]] = {}
        self.grant_prefix: dict[str, list[int]] = {}
        shared: dict[str, set[int]] = {}   # device -> resources all its allocators hold
        for i in compress(range(n), alloc):
            own = tasks[i].device
            for d in alloc[i]:
                if own is not None and own != d:   # issued by another device's program
                    continue
                held = shared.get(d)
                if held is None:
                    shared[d] = set(res[i])
                elif held:
                    held.intersection_update(res[i])
        several = {d for d, held in shared.items() if not held}
        if not several:
            return
        seq = self.grant_seq
        for i in issue_order(self.key, self.children, self.waiting):
            if alloc[i] and not several.isdisjoint(alloc[i]):
                own = tasks[i].device
                grant_pos[i] = at = {}
                for d in several.intersection(alloc[i]):
                    if own is not None and own != d:
                        continue
                    on = seq.setdefault(d, [])
                    at[d] = len(on)
                    on.append(i)
        for d, on in seq.items():
            self.grant_prefix[d] = list(accumulate((alloc[i][d] for i in on), initial=0))
        take_on = self.take_on
        for i in compress(range(n), take_on):
            if take_on[i] in grant_pos[i]:
                take_pos[i] = grant_pos[i][take_on[i]]

    def read_memory_effects(self, tasks: list[Task], general: bool) -> None:
        """The tasks' memory effects, and the same on one device as the loop reads them
        without the task's own map (whose entries are a cache miss or two each).

        alloc[i], free[i]: task i's own maps where they have entries, one shared empty map
        on the others (most tasks: the loop then reads no object of theirs). take_on[i]: the
        device task i allocates on when it holds one queue and allocates on one device, else
        "" (the loop then reads alloc[i]); take_bytes[i] the bytes. give_on[i]: the device it
        frees bytes on when it frees on one, "" when it frees nothing, None when it frees on
        several (the loop then reads free[i]); give_bytes[i] the bytes. With `general`, every
        task with memory effects is left to its maps. devices: every device named. plain[i]:
        whether task i allocates nothing."""
        none: dict[str, int] = {}
        n, res = self.n, self.res
        self.alloc = alloc = [t.alloc or none for t in tasks]
        self.free = free = [t.free or none for t in tasks]
        self.take_on, self.take_bytes = take_on, take_bytes = [""] * n, [0] * n
        self.give_on: list[str | None] = [""] * n
        self.give_bytes = give_bytes = [0] * n
        give_on = self.give_on
        self.devices: set[str] = set()
        devices = self.devices
        # what the loop's fast path may start without looking further: no memory (and one
        # resource, below)
        self.plain = plain = [True] * n
        for i in compress(range(n), alloc):   # a task's map is truthy when it has entries
            plain[i] = False
            if len(alloc[i]) == 1 and len(res[i]) == 1 and not general:
                (on, take_bytes[i]), = alloc[i].items()
                take_on[i] = on
                devices.add(on)
            else:
                devices.update(alloc[i])
        for i in compress(range(n), free):
            if len(free[i]) == 1 and not general:
                (on, give_bytes[i]), = free[i].items()
                give_on[i] = on
                devices.add(on)
            else:
                give_on[i] = None
                devices.update(free[i])


def refuse(graph: TaskGraph, capacities: Mapping[str, int]) -> NoReturn:
    """The first task, in insertion order, with an unknown dependency or resource."""
    for t in graph.tasks:
        unknown = [d for d in t.deps if d not in graph]
        if unknown:
            raise SimulationError(f"task {t.name!r} depends on unknown task {unknown[0]!r}")
        for r in t.resources:
            if r not in capacities:
                raise SimulationError(f"task {t.name!r} uses unknown resource {r!r}")
    raise AssertionError("no unknown dependency or resource to refuse")
