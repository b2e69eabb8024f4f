"""Tasks and task graphs: what the engine runs.

A task is one unit of work that holds one or more resources for its whole duration (a compute
op on a device stream, a copy on a copy engine, a transfer on the links it crosses). It starts
when its dependencies are done, its resources are free and its memory fits. It may allocate
bytes on devices when it starts and free bytes when it ends, which is how tensor lifetimes
(activations kept for the backward pass, swapped copies, stashed weights) reach the memory
tracker.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Iterator

from workloads.errors import DnnsimError


class SimulationError(DnnsimError):
    """A task graph or cluster the engine cannot run (cycle, unknown resource, bad value)."""


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
        self._tasks: dict[str, Task] = {}

    def add(self, task: Task) -> Task:
        if task.name in self._tasks:
            raise SimulationError(f"task graph {self.name!r}: duplicate task {task.name!r}")
        self._tasks[task.name] = task
        return task

    def new(self, name: str, resources: str | tuple[str, ...], duration_s: float,
            deps=(), **kw) -> Task:
        """Shorthand: tg.new("fwd.conv1", "gpu0.compute", 1e-3, deps=["x"])."""
        if isinstance(resources, str):
            resources = (resources,)
        deps = tuple(deps)
        if None in deps:
            deps = tuple(d for d in deps if d is not None)
        return self.add(Task(name, tuple(resources), float(duration_s), deps, **kw))

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __getitem__(self, name: str) -> Task:
        return self._tasks[name]

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    @property
    def names(self) -> list[str]:
        """Task names in insertion order."""
        return list(self._tasks)

    def validate(self, resources: dict[str, int] | None = None) -> None:
        """Every dependency exists, there is no cycle, every resource is known."""
        if resources is not None:
            for t in self._tasks.values():
                for r in t.resources:
                    if r not in resources:
                        raise SimulationError(f"task {t.name!r} uses unknown resource {r!r}")
        self.topo_order()

    def topo_order(self) -> list[Task]:
        """Kahn's algorithm, ties in insertion order; raises on unknown deps and cycles."""
        index = {n: i for i, n in enumerate(self._tasks)}
        indeg = [0] * len(index)
        children: list[list[int]] = [[] for _ in index]
        tasks = list(self._tasks.values())
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
