"""The engine: runs a TaskGraph on resources, event by event, in a plain heap loop.

It knows nothing of networks or techniques: only tasks, their dependencies, the resources they
hold (each with a capacity: how many tasks it runs at once) and the bytes they allocate and free
on memories with capacities.

Rules, in one place:
- A task is *ready* when all its dependencies have finished.
- Each resource serves its ready tasks strictly in order of (priority, insertion index): the
  head waits for the resource, for the other resources it needs (a multi-resource task starts
  when it heads every queue it is in and all have room), and for memory. This is the only
  tie-breaking rule; it is applied once per simulated instant, after every task ending at that
  instant has been processed, so the outcome never depends on the order of same-time ends.
- Memory is allocated when a task starts and freed when it ends. With `enforce_memory`, a head
  task that does not fit waits until something frees memory; if nothing running can, the run
  ends with an OutOfMemory naming the device, the task, the bytes and the time.
- What a device holds besides the tasks' bytes comes from the task graph's meta
  (DEVICE_MEMORY_META: device -> driver_bytes, context_bytes, allocator_overhead_bytes, written
  by the lowering for GPUs): the driver's and the CUDA context's bytes are taken off the
  device's capacity, and the allocator's overhead (what its cache reserves beyond the tensors
  at their peak) is added to the tensors. What fits is judged on that reserved memory;
  `peak_memory_bytes` is the tensors' peak (allocated), `peak_reserved_bytes` adds the overhead.

The loop: a heap of (end time, task index) for the running tasks. Each turn takes every task
that ends at the earliest time, ends them, then dispatches (the order in which tasks of one
instant end changes nothing: ends only free resources and memory and ready tasks, and what
starts is decided after all of them); a task of zero duration started by that dispatch ends at
the same instant, in a further turn. Time is only ever a start time plus a duration, so equal
instants compare equal. A discrete-event library would add a process or event object per
task to the same heap operations; the engine needs neither (no task waits on anything but
its dependencies, resources and memory), and the heap alone is faster
(benchmarks/engine_bench.py).

Cost: one heap push and pop per task plus one dispatch per distinct instant.
"""
from __future__ import annotations

import gc
import heapq
from dataclasses import dataclass, field
from operator import attrgetter

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


class _Run:
    """One run. Per-task data lives in lists indexed by insertion order and resources are
    numbered in the order of their names (the hot loop avoids attribute and name lookups);
    each running task is one heap entry carrying its index."""

    def __init__(self, graph: TaskGraph, capacities: dict[str, int], mem_cap: dict[str, int],
                 baseline: dict[str, int], enforce: bool) -> None:
        self.graph = graph
        self.tasks = tasks = graph.tasks
        n = len(tasks)
        self.resource_names = names = sorted(capacities)
        rid = {r: k for k, r in enumerate(names)}
        index = dict(zip(graph.names, range(n)))
        self.children = children = [[] for _ in range(n)]
        self.waiting = waiting = [0] * n
        self.res, self.alloc, self.free = res, alloc, free = [()] * n, [()] * n, [()] * n
        self.dur = list(map(attrgetter("duration_s"), tasks))
        # A task's place in its queues, (priority, insertion index), as one int: the rank of
        # its priority among those present times n, plus the index (ints compare fastest).
        rank = {p: k for k, p in enumerate(sorted({t.priority for t in tasks}))}
        self.n = n
        self.key = [rank[t.priority] * n + i for i, t in enumerate(tasks)]
        devices = set(mem_cap) | set(baseline)
        resource_id, task_index = rid.__getitem__, index.__getitem__
        try:
            for i, t in enumerate(tasks):   # one pass: check, index and unpack every task
                deps = t.deps
                if deps:
                    for j in map(task_index, deps):
                        children[j].append(i)
                    waiting[i] = len(deps)
                res[i] = tuple(map(resource_id, t.resources))
                if t.alloc:
                    alloc[i] = tuple(t.alloc.items())
                    devices.update(t.alloc)
                if t.free:
                    free[i] = tuple(t.free.items())
                    devices.update(t.free)
        except KeyError:
            t = tasks[i]
            unknown = [d for d in t.deps if d not in index]
            if unknown:
                raise SimulationError(f"task {t.name!r} depends on unknown task "
                                      f"{unknown[0]!r}") from None
            r = next(r for r in t.resources if r not in rid)
            raise SimulationError(f"task {t.name!r} uses unknown resource {r!r}") from None
        self.capacities = capacities
        self.capacity = [capacities[r] for r in names]
        self.in_use = [0] * len(names)
        self.queue: list[list[int]] = [[] for _ in names]   # heaps of ready tasks' keys
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
        self.mem_blocked: dict[int, int] = {}      # resource -> task index waiting for memory
        self.dirty: set[int] = set()
        self.running: list[tuple[float, int]] = []   # (end time, task index)
        self.now = 0.0
        self.completed = 0

    # -- the loop ------------------------------------------------------------------------
    def go(self) -> RunLog:
        queue, dirty, key, res = self.queue, self.dirty, self.key, self.res
        for i, w in enumerate(self.waiting):
            if w == 0:
                for r in res[i]:
                    heapq.heappush(queue[r], key[i])
                    dirty.add(r)
        self._dispatch()
        running, heappop, heappush, dispatch = self.running, heapq.heappop, heapq.heappush, \
            self._dispatch
        end_s, in_use, free, children, waiting = (self.end_s, self.in_use, self.free,
                                                  self.children, self.waiting)
        completed = 0
        while running:
            now = self.now = running[0][0]
            dirty = self.dirty
            while running and running[0][0] == now:   # end every task ending now, in order
                i = heappop(running)[1]
                end_s[i] = now
                completed += 1
                for q in res[i]:
                    in_use[q] -= 1
                    dirty.add(q)
                if free[i]:
                    for d, b in free[i]:
                        self._mem_change(d, -b, now)
                    dirty.update(self.mem_blocked)  # freed memory may let a blocked head start
                for c in children[i]:
                    waiting[c] -= 1
                    if not waiting[c]:            # ready: join the queue of each resource
                        k = key[c]
                        for r in res[c]:
                            heappush(queue[r], k)
                            dirty.add(r)
            dispatch()
        self.completed = completed
        oom = None
        if completed < len(self.tasks):
            oom = self._diagnose_stuck()
        reserved = {d: p + self.overhead.get(d, 0) for d, p in self.peak.items()}
        return RunLog(self.tasks, self.start_s, self.end_s, self.timeline, self.peak,
                      dict(self.capacities), dict(self.mem_cap), oom, completed,
                      peak_reserved_bytes=reserved, context_bytes=dict(self.context),
                      runtime_bytes=dict(self.runtime))

    def _dispatch(self) -> None:
        """Start what can start now: each dirty resource's queue from its head."""
        if not self.dirty:
            return
        queue, in_use, capacity = self.queue, self.in_use, self.capacity
        res, alloc, dur, start_s = self.res, self.alloc, self.dur, self.start_s
        running, heappop, heappush = self.running, heapq.heappop, heapq.heappush
        now = self.now
        dirty, self.dirty = self.dirty, set()
        # Highest-priority heads first, so they claim shared resources and memory first.
        heads = sorted([(queue[r][0], r) for r in dirty if queue[r]])
        n, mem_blocked = self.n, self.mem_blocked
        for _, r in heads:
            q = queue[r]
            while q and in_use[r] < capacity[r]:
                i = q[0] % n
                ri = res[i]
                if len(ri) > 1:   # a multi-resource task must head every queue it is in
                    blocked = False
                    for x in ri:
                        if x != r and (in_use[x] >= capacity[x] or queue[x][0] % n != i):
                            blocked = True
                            break
                    if blocked:
                        break
                if (alloc[i] or mem_blocked) and not self._memory_fits(i, r):
                    break
                # start task i (inlined: this is the hot loop)
                start_s[i] = now
                for x in ri:
                    heappop(queue[x])   # i heads every queue it is in
                    in_use[x] += 1
                if alloc[i]:
                    for d, b in alloc[i]:
                        self._mem_change(d, b, now)
                heappush(running, (now + dur[i], i))

    def _memory_fits(self, i: int, r: int) -> bool:
        """Whether task i, heading resource r, fits in memory now; if not, it blocks r."""
        if self.enforce and self.alloc[i]:
            for d, b in self.alloc[i]:
                cap = self.limit.get(d)
                if cap is not None and self.mem[d] + b > cap:
                    self.mem_blocked[r] = i
                    return False
        if self.mem_blocked:
            self.mem_blocked.pop(r, None)
        return True

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
                    return OutOfMemory(d, self.tasks[i].name, self.now, b,
                                       self.mem[d] + held, self.mem_cap[d],
                                       self.runtime.get(d, 0), self.overhead.get(d, 0))
        self.graph.topo_order()  # raises SimulationError naming a task on the cycle
        raise SimulationError(  # no cycle and no memory wait: an engine bug
            f"engine stalled with {len(self.tasks) - self.completed} tasks left and no cause")
