"""Tasks and task graphs: what the engine runs.

A task is one unit of work that holds one or more resources for its whole duration (a compute
op on a device stream, a copy on a copy engine, a transfer on the links it crosses). It starts
when its dependencies are done, its resources are free and its memory fits. It may allocate
bytes on devices when it starts and free bytes when it ends, which is how tensor lifetimes
(activations kept for the backward pass, swapped copies, stashed weights) reach the memory
tracker.
"""
from __future__ import annotations

import gc
import heapq
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from workloads.errors import DnnsimError


class SimulationError(DnnsimError):
    """A task graph or cluster the engine cannot run (cycle, unknown resource, bad value)."""


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Within the block, Python's cyclic garbage collector does not run (as it was after).

    Building or running a task graph allocates hundreds of thousands of small objects (tasks,
    names, heap entries) that form no reference cycles; the collector would only rescan them,
    more often the more there are. Reference counting still frees what is dropped."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(slots=True)
class Task:
    name: str
    resources: tuple[str, ...]
    duration_s: float
    deps: tuple[str, ...] = ()
    priority: int = 0                      # lower starts first among ready tasks on a resource
    alloc: dict[str, int] = field(default_factory=dict)   # device -> bytes taken at start
    free: dict[str, int] = field(default_factory=dict)    # device -> bytes given back at end
    category: str = "compute"              # compute | copy | comm | wait (free-form for reports)
    device: str | None = None              # the device the task is attributed to in reports
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.resources:
            raise SimulationError(f"task {self.name!r} names no resource")
        d = self.duration_s
        # one comparison chain refuses NaN, negatives and infinity (tasks are made by the
        # hundred thousand)
        if not isinstance(d, (int, float)) or not 0 <= d < math.inf:
            raise SimulationError(f"task {self.name!r}: duration_s must be a finite number "
                                  f">= 0, got {d!r}")
        if self.alloc or self.free:
            for what, mem in (("alloc", self.alloc), ("free", self.free)):
                for dev, nbytes in mem.items():
                    if nbytes < 0:
                        raise SimulationError(f"task {self.name!r}: {what} of {nbytes} bytes "
                                              f"on {dev!r} is negative")


class TaskGraph:
    """Tasks in insertion order. Insertion order is the final tie-breaker of the engine."""

    def __init__(self, name: str = "", meta: dict | None = None) -> None:
        self.name = name
        self.meta: dict = dict(meta or {})
        self._tasks: list[Task] = []
        self._position: dict[str, int] = {}   # name -> place in insertion order
        self._one_resource: dict[str, tuple[str]] = {}   # one tuple per resource named alone

    def add(self, task: Task) -> Task:
        position = self._position
        if task.name in position:
            raise SimulationError(f"task graph {self.name!r}: duplicate task {task.name!r}")
        position[task.name] = len(self._tasks)
        self._tasks.append(task)
        return task

    def extend(self, tasks: list[Task]) -> None:
        """Add many tasks at once, in order (what a collective builds); with a name already
        present, or given twice, none is added."""
        position, start = self._position, len(self._tasks)
        names = [t.name for t in tasks]
        # every name is entered at once; fewer new entries than names means one was present
        # or given twice, and the map is rebuilt as it was (same order) before the error
        position.update(zip(names, range(start, start + len(names)), strict=True))
        if len(position) != start + len(names):
            position.clear()
            position.update((t.name, k) for k, t in enumerate(self._tasks))
            seen: set[str] = set()
            for name in names:
                if name in position or name in seen:
                    raise SimulationError(f"task graph {self.name!r}: duplicate task {name!r}")
                seen.add(name)
        self._tasks.extend(tasks)

    def new(self, name: str, resources: str | tuple[str, ...], duration_s: float,
            deps=(), **kw) -> Task:
        """Shorthand: tg.new("fwd.conv1", "gpu0.compute", 1e-3, deps=["x"])."""
        if isinstance(resources, str):
            # a device's ops share one tuple: fewer objects, and the engine translates it once
            one = self._one_resource.get(resources)
            if one is None:
                one = self._one_resource[resources] = (resources,)
            resources = one
        deps = tuple(deps)
        if None in deps:
            deps = tuple(d for d in deps if d is not None)
        return self.add(Task(name, tuple(resources), float(duration_s), deps, **kw))

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks)

    def __contains__(self, name: object) -> bool:
        return name in self._position

    def __getitem__(self, name: str) -> Task:
        return self._tasks[self._position[name]]

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks)

    @property
    def names(self) -> list[str]:
        """Task names in insertion order."""
        return list(self._position)

    @property
    def positions(self) -> Mapping[str, int]:
        """Each task's place in insertion order, by name (read only: the graph's own index)."""
        return self._position

    def validate(self, resources: dict[str, int] | None = None) -> None:
        """Every dependency exists, there is no cycle, every resource is known."""
        if resources is not None:
            for t in self._tasks:
                for r in t.resources:
                    if r not in resources:
                        raise SimulationError(f"task {t.name!r} uses unknown resource {r!r}")
        self.topo_order()

    def topo_order(self) -> list[Task]:
        """Kahn's algorithm, ties in insertion order; raises on unknown deps and cycles."""
        index = self._position
        tasks = self._tasks
        indeg = [0] * len(tasks)
        children: list[list[int]] = [[] for _ in tasks]
        for i, t in enumerate(tasks):
            for d in t.deps:
                j = index.get(d)
                if j is None:
                    raise SimulationError(f"task {t.name!r} depends on unknown task {d!r}")
                children[j].append(i)
            indeg[i] = len(t.deps)
        ready = [i for i, k in enumerate(indeg) if k == 0]
        heapq.heapify(ready)
        order: list[Task] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(tasks[i])
            for c in children[i]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    heapq.heappush(ready, c)
        if len(order) != len(tasks):
            stuck = next(tasks[i].name for i, k in enumerate(indeg) if k > 0)
            raise SimulationError(f"task graph {self.name!r} has a cycle (through {stuck!r})")
        return order

    def critical_path_s(self) -> float:
        """Longest chain of durations through the dependencies (a lower bound on makespan)."""
        finish: dict[str, float] = {}
        for t in self.topo_order():
            finish[t.name] = t.duration_s + max((finish[d] for d in t.deps), default=0.0)
        return max(finish.values(), default=0.0)
