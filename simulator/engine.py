"""The engine: runs a TaskGraph on resources, event by event, with SimPy.

It knows nothing of networks or techniques: only tasks, their dependencies, the resources they
hold (each with a capacity: how many tasks it runs at once) and the bytes they allocate and free
on memories with capacities.

Rules, in one place:
- A task is *ready* when all its dependencies have finished.
- Each resource serves its ready tasks strictly in order of (priority, insertion index): the
  head waits for the resource, for the other resources it needs (a multi-resource task starts
  when it heads every queue it is in and all have room), and for memory. This is the only
  tie-breaking rule; it is applied once per simulated instant, after every event of that instant
  has been processed, so the outcome never depends on the order in which SimPy fires
  same-time events.
- Memory is allocated when a task starts and freed when it ends. With `enforce_memory`, a head
  task that does not fit waits until something frees memory; if nothing running can, the run
  ends with an OutOfMemory naming the device, the task, the bytes and the time.

Cost: one SimPy timeout per task plus one dispatch event per distinct instant.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import simpy

from .tasks import SimulationError, Task, TaskGraph


@dataclass(frozen=True)
class OutOfMemory:
    device: str
    task: str
    time_s: float
    requested_bytes: int
    in_use_bytes: int
    capacity_bytes: int

    def message(self) -> str:
        gib = 2 ** 30
        return (f"out of memory on {self.device} at t={self.time_s:.6g} s: task {self.task!r} "
                f"needs {self.requested_bytes / gib:.3f} GiB more with "
                f"{self.in_use_bytes / gib:.3f} GiB of {self.capacity_bytes / gib:.3f} GiB in use")


@dataclass
class RunLog:
    """What happened: start and end of every task, memory over time, and how it ended."""
    tasks: list[Task]
    start_s: list[float]
    end_s: list[float]
    memory_timeline: dict[str, list[tuple[float, int]]]
    peak_memory_bytes: dict[str, int]
    capacities: dict[str, int]
    memory_capacity_bytes: dict[str, int]
    oom: OutOfMemory | None = None
    completed: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def makespan_s(self) -> float:
        return max((e for e in self.end_s if e == e), default=0.0)  # NaN for tasks never run

    @property
    def ok(self) -> bool:
        return self.oom is None and self.completed == len(self.tasks)


def run(graph: TaskGraph, capacities: dict[str, int],
        memory_capacity_bytes: dict[str, int] | None = None, *,
        memory_baseline_bytes: dict[str, int] | None = None,
        enforce_memory: bool = True) -> RunLog:
    """Run `graph` to completion (or to an out-of-memory stop) and log it.

    capacities: resource id -> tasks it runs at once. memory_capacity_bytes: device -> bytes;
    devices not listed are tracked but unbounded. memory_baseline_bytes: bytes resident on a
    device before the first task (weights, optimizer state).
    """
    for r, c in capacities.items():
        if not isinstance(c, int) or c < 1:
            raise SimulationError(f"resource {r!r}: capacity must be an integer >= 1, got {c!r}")
    mem_cap = dict(memory_capacity_bytes or {})
    for d, c in mem_cap.items():
        if c <= 0:
            raise SimulationError(f"device {d!r}: memory capacity must be > 0 bytes, got {c}")
    graph.validate(capacities)
    return _Run(graph, capacities, mem_cap, dict(memory_baseline_bytes or {}),
                enforce_memory).go()


class _Run:
    def __init__(self, graph: TaskGraph, capacities: dict[str, int], mem_cap: dict[str, int],
                 baseline: dict[str, int], enforce: bool) -> None:
        self.env = simpy.Environment()
        self.tasks = graph.tasks
        n = len(self.tasks)
        index = {t.name: i for i, t in enumerate(self.tasks)}
        self.children: list[list[int]] = [[] for _ in range(n)]
        self.waiting = [len(t.deps) for t in self.tasks]
        for i, t in enumerate(self.tasks):
            for d in t.deps:
                self.children[index[d]].append(i)
        self.key = [(t.priority, i) for i, t in enumerate(self.tasks)]
        self.capacity = capacities
        self.in_use = {r: 0 for r in capacities}
        self.queue: dict[str, list[tuple[int, int]]] = {r: [] for r in capacities}
        self.started = [False] * n
        self.start_s = [float("nan")] * n
        self.end_s = [float("nan")] * n
        self.enforce = enforce
        self.mem_cap = mem_cap
        devices = set(mem_cap) | set(baseline)
        for t in self.tasks:
            devices.update(t.alloc)
            devices.update(t.free)
        self.mem = {d: int(baseline.get(d, 0)) for d in sorted(devices)}
        self.timeline = {d: [(0.0, b)] for d, b in self.mem.items()}
        self.peak = dict(self.mem)
        self.mem_blocked: dict[str, int] = {}      # resource -> task index waiting for memory
        self.dirty: set[str] = set()
        self.dispatch_pending = False
        self.completed = 0
        self.running = 0

    # -- the loop ------------------------------------------------------------------------
    def go(self) -> RunLog:
        for i, w in enumerate(self.waiting):
            if w == 0:
                self._make_ready(i)
        self._schedule_dispatch()
        self.env.run()
        oom = None
        if self.completed < len(self.tasks):
            oom = self._diagnose_stuck()
        return RunLog(self.tasks, self.start_s, self.end_s, self.timeline, self.peak,
                      dict(self.capacity), dict(self.mem_cap), oom, self.completed)

    def _make_ready(self, i: int) -> None:
        for r in self.tasks[i].resources:
            heapq.heappush(self.queue[r], self.key[i])
            self.dirty.add(r)

    def _schedule_dispatch(self) -> None:
        if not self.dispatch_pending and self.dirty:
            self.dispatch_pending = True
            ev = self.env.timeout(0)
            ev.callbacks.append(self._dispatch)

    def _head(self, r: str) -> int | None:
        q = self.queue[r]
        while q and self.started[q[0][1]]:
            heapq.heappop(q)
        return q[0][1] if q else None

    def _dispatch(self, _event=None) -> None:
        self.dispatch_pending = False
        # Highest-priority heads first, so they claim memory before lower ones.
        heads = []
        for r in self.dirty:
            h = self._head(r)
            if h is not None:
                heads.append((self.key[h], r))
        self.dirty.clear()
        heads.sort()
        for _, r in heads:
            while self.in_use[r] < self.capacity[r]:
                i = self._head(r)
                if i is None or not self._can_start(i, r):
                    break
                self._start(i)

    def _can_start(self, i: int, r: str) -> bool:
        t = self.tasks[i]
        if len(t.resources) > 1:
            for q in t.resources:
                if q != r and (self.in_use[q] >= self.capacity[q] or self._head(q) != i):
                    return False
        if self.enforce:
            for d, b in t.alloc.items():
                cap = self.mem_cap.get(d)
                if cap is not None and self.mem[d] + b > cap:
                    self.mem_blocked[r] = i
                    return False
        self.mem_blocked.pop(r, None)
        return True

    def _start(self, i: int) -> None:
        t = self.tasks[i]
        now = self.env.now
        self.started[i] = True
        self.start_s[i] = now
        for q in t.resources:
            self.in_use[q] += 1
        for d, b in t.alloc.items():
            self._mem_change(d, b, now)
        self.running += 1
        ev = self.env.timeout(t.duration_s)
        ev.callbacks.append(lambda _e, i=i: self._finish(i))

    def _finish(self, i: int) -> None:
        t = self.tasks[i]
        now = self.env.now
        self.end_s[i] = now
        self.completed += 1
        self.running -= 1
        for q in t.resources:
            self.in_use[q] -= 1
            self.dirty.add(q)
        if t.free:
            for d, b in t.free.items():
                self._mem_change(d, -b, now)
            self.dirty.update(self.mem_blocked)  # freed memory may let a blocked head start
        for c in self.children[i]:
            self.waiting[c] -= 1
            if self.waiting[c] == 0:
                self._make_ready(c)
        self._schedule_dispatch()

    def _mem_change(self, device: str, delta: int, now: float) -> None:
        b = self.mem[device] + delta
        self.mem[device] = b
        tl = self.timeline[device]
        if tl[-1][0] == now:
            tl[-1] = (now, b)
        else:
            tl.append((now, b))
        if b > self.peak[device]:
            self.peak[device] = b

    def _diagnose_stuck(self) -> OutOfMemory | None:
        for r, i in sorted(self.mem_blocked.items(), key=lambda kv: self.key[kv[1]]):
            if self.started[i]:
                continue
            t = self.tasks[i]
            for d, b in t.alloc.items():
                cap = self.mem_cap.get(d)
                if cap is not None and self.mem[d] + b > cap:
                    return OutOfMemory(d, t.name, float(self.env.now), b, self.mem[d], cap)
        raise SimulationError(  # validate() rules out cycles, so this is an engine bug
            f"engine stalled with {len(self.tasks) - self.completed} tasks left and no cause")
