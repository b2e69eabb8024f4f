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
- What a device holds besides the tasks' bytes comes from the task graph's meta
  (DEVICE_MEMORY_META: device -> driver_bytes, context_bytes, allocator_overhead_bytes, written
  by the lowering for GPUs): the driver's and the CUDA context's bytes are taken off the
  device's capacity, and the allocator's overhead (what its cache reserves beyond the tensors
  at their peak) is added to the tensors. What fits is judged on that reserved memory;
  `peak_memory_bytes` is the tensors' peak (allocated), `peak_reserved_bytes` adds the overhead.

Cost: one SimPy timeout per task plus one dispatch event per distinct instant.
"""
from __future__ import annotations

import gc
import heapq
from dataclasses import dataclass, field

import simpy
from simpy.events import NORMAL, Event

from .tasks import SimulationError, Task, TaskGraph

DEVICE_MEMORY_META = "device_memory"


@dataclass(frozen=True)
class OutOfMemory:
    device: str
    task: str
    time_s: float
    requested_bytes: int
    in_use_bytes: int          # tensors, allocator overhead, context and driver
    capacity_bytes: int
    runtime_bytes: int = 0     # of in_use: the driver's and the CUDA context's
    overhead_bytes: int = 0    # of in_use: what the caching allocator reserves beyond tensors

    def message(self) -> str:
        gib = 2 ** 30
        held = ""
        if self.runtime_bytes or self.overhead_bytes:
            held = (f" ({self.runtime_bytes / gib:.3f} GiB of it the driver and CUDA context, "
                    f"{self.overhead_bytes / gib:.3f} GiB the allocator's rounding and cache)")
        return (f"out of memory on {self.device} at t={self.time_s:.6g} s: task {self.task!r} "
                f"needs {self.requested_bytes / gib:.3f} GiB more with "
                f"{self.in_use_bytes / gib:.3f} GiB of {self.capacity_bytes / gib:.3f} GiB in use"
                f"{held}")


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
    peak_reserved_bytes: dict[str, int] = field(default_factory=dict)   # tensors + overhead
    context_bytes: dict[str, int] = field(default_factory=dict)   # CUDA context and handles
    runtime_bytes: dict[str, int] = field(default_factory=dict)   # context + driver

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
    device before the first task (weights, optimizer state). What else each device holds is
    read from graph.meta[DEVICE_MEMORY_META] (see the module's rules).
    """
    for r, c in capacities.items():
        if not isinstance(c, int) or c < 1:
            raise SimulationError(f"resource {r!r}: capacity must be an integer >= 1, got {c!r}")
    mem_cap = dict(memory_capacity_bytes or {})
    for d, c in mem_cap.items():
        if c <= 0:
            raise SimulationError(f"device {d!r}: memory capacity must be > 0 bytes, got {c}")
    # A run allocates hundreds of thousands of small objects (events, heap entries, records)
    # that form no reference cycles: the cyclic collector would only rescan them (~15% of
    # the run), so it is paused meanwhile. Reference counting still frees what is dropped.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _Run(graph, capacities, mem_cap, dict(memory_baseline_bytes or {}),
                    enforce_memory).go()
    finally:
        if was_enabled:
            gc.enable()


class _Fired(Event):
    """An already-triggered SimPy event carrying a value (a task index) and one callback."""

    def __init__(self, env: simpy.Environment, value, callback) -> None:  # noqa: D107
        self.env, self.callbacks, self._value, self._ok = env, [callback], value, True


class _Run:
    """One run. Per-task data lives in lists indexed by insertion order (the hot loop avoids
    attribute lookups); each running task is one bare SimPy event carrying its index."""

    def __init__(self, graph: TaskGraph, capacities: dict[str, int], mem_cap: dict[str, int],
                 baseline: dict[str, int], enforce: bool) -> None:
        self.env = simpy.Environment()
        self.graph = graph
        self.tasks = tasks = graph.tasks
        n = len(tasks)
        index = {t.name: i for i, t in enumerate(tasks)}
        self.children = children = [[] for _ in range(n)]
        self.waiting = waiting = [0] * n
        self.res, self.dur, self.alloc, self.free, self.key = res, dur, alloc, free, key = (
            [None] * n, [0.0] * n, [()] * n, [()] * n, [None] * n)
        devices = set(mem_cap) | set(baseline)
        known = capacities.keys()
        for i, t in enumerate(tasks):   # one pass: check, index and unpack every task
            if t.deps:
                for d in t.deps:
                    j = index.get(d)
                    if j is None:
                        raise SimulationError(f"task {t.name!r} depends on unknown task {d!r}")
                    children[j].append(i)
                waiting[i] = len(t.deps)
            for r in t.resources:
                if r not in known:
                    raise SimulationError(f"task {t.name!r} uses unknown resource {r!r}")
            res[i] = t.resources
            dur[i] = t.duration_s
            key[i] = (t.priority, i)
            if t.alloc:
                alloc[i] = tuple(t.alloc.items())
                devices.update(t.alloc)
            if t.free:
                free[i] = tuple(t.free.items())
                devices.update(t.free)
        self.capacity = capacities
        self.in_use = dict.fromkeys(capacities, 0)
        self.queue: dict[str, list[tuple[int, int]]] = {r: [] for r in capacities}
        self.start_s = [float("nan")] * n
        self.end_s = [float("nan")] * n
        self.enforce = enforce
        self.mem_cap = mem_cap
        held = graph.meta.get(DEVICE_MEMORY_META) or {}
        self.runtime = {d: int(e.get("driver_bytes", 0)) + int(e.get("context_bytes", 0))
                        for d, e in held.items()}
        self.context = {d: int(e.get("context_bytes", 0)) for d, e in held.items()}
        self.overhead = {d: int(e.get("allocator_overhead_bytes", 0)) for d, e in held.items()}
        # the tensors' bytes that fit: capacity less the runtime's bytes and the allocator's
        self.limit = {d: c - self.runtime.get(d, 0) - self.overhead.get(d, 0)
                      for d, c in mem_cap.items()}
        self.mem = {d: int(baseline.get(d, 0)) for d in sorted(devices)}
        self.timeline = {d: [(0.0, b)] for d, b in self.mem.items()}
        self.peak = dict(self.mem)
        self.mem_blocked: dict[str, int] = {}      # resource -> task index waiting for memory
        self.dirty: set[str] = set()
        self.dispatch_pending = False
        self.completed = 0

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
        reserved = {d: p + self.overhead.get(d, 0) for d, p in self.peak.items()}
        return RunLog(self.tasks, self.start_s, self.end_s, self.timeline, self.peak,
                      dict(self.capacity), dict(self.mem_cap), oom, self.completed,
                      peak_reserved_bytes=reserved, context_bytes=dict(self.context),
                      runtime_bytes=dict(self.runtime))

    def _make_ready(self, i: int) -> None:
        key = self.key[i]
        for r in self.res[i]:
            heapq.heappush(self.queue[r], key)
            self.dirty.add(r)

    def _schedule_dispatch(self) -> None:
        if not self.dispatch_pending and self.dirty:
            self.dispatch_pending = True
            self.env.schedule(_Fired(self.env, None, self._dispatch), NORMAL, 0)

    def _dispatch(self, _event=None) -> None:
        self.dispatch_pending = False
        queue, in_use, capacity = self.queue, self.in_use, self.capacity
        res, alloc, dur, start_s = self.res, self.alloc, self.dur, self.start_s
        env, finish, heappop = self.env, self._finish, heapq.heappop
        now = env._now
        dirty, self.dirty = self.dirty, set()
        # Highest-priority heads first, so they claim shared resources and memory first.
        heads = sorted((queue[r][0], r) for r in dirty if queue[r])
        for _, r in heads:
            q = queue[r]
            while q and in_use[r] < capacity[r]:
                i = q[0][1]
                if (len(res[i]) > 1 or alloc[i] or self.mem_blocked) and \
                        not self._can_start(i, r):
                    break
                # start task i (inlined: this is the hot loop)
                start_s[i] = now
                for x in res[i]:
                    heappop(queue[x])   # i heads every queue it is in
                    in_use[x] += 1
                for d, b in alloc[i]:
                    self._mem_change(d, b, now)
                env.schedule(_Fired(env, i, finish), NORMAL, dur[i])

    def _can_start(self, i: int, r: str) -> bool:
        res = self.res[i]
        if len(res) > 1:
            for q in res:  # a multi-resource task must head every queue it is in
                if q != r and (self.in_use[q] >= self.capacity[q] or self.queue[q][0][1] != i):
                    return False
        if self.enforce and self.alloc[i]:
            for d, b in self.alloc[i]:
                cap = self.limit.get(d)
                if cap is not None and self.mem[d] + b > cap:
                    self.mem_blocked[r] = i
                    return False
        if self.mem_blocked:
            self.mem_blocked.pop(r, None)
        return True

    def _finish(self, event: Event) -> None:
        i = event._value
        now = self.env._now
        self.end_s[i] = now
        self.completed += 1
        in_use, dirty = self.in_use, self.dirty
        for q in self.res[i]:
            in_use[q] -= 1
            dirty.add(q)
        if self.free[i]:
            for d, b in self.free[i]:
                self._mem_change(d, -b, now)
            dirty.update(self.mem_blocked)  # freed memory may let a blocked head start
        waiting, queue, key, res = self.waiting, self.queue, self.key, self.res
        for c in self.children[i]:
            waiting[c] -= 1
            if not waiting[c]:            # ready: join the queue of each of its resources
                k = key[c]
                for r in res[c]:
                    heapq.heappush(queue[r], k)
                    dirty.add(r)
        if not self.dispatch_pending:
            self.dispatch_pending = True
            self.env.schedule(_Fired(self.env, None, self._dispatch), NORMAL, 0)

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
            if self.start_s[i] == self.start_s[i]:   # started after all
                continue
            for d, b in self.alloc[i]:
                cap = self.limit.get(d)
                if cap is not None and self.mem[d] + b > cap:
                    held = self.runtime.get(d, 0) + self.overhead.get(d, 0)
                    return OutOfMemory(d, self.tasks[i].name, float(self.env.now), b,
                                       self.mem[d] + held, self.mem_cap[d],
                                       self.runtime.get(d, 0), self.overhead.get(d, 0))
        self.graph.topo_order()  # raises SimulationError naming a task on the cycle
        raise SimulationError(  # no cycle and no memory wait: an engine bug
            f"engine stalled with {len(self.tasks) - self.completed} tasks left and no cause")
