"""The engine: runs a TaskGraph on resources, event by event, in a plain heap loop.

It knows nothing of networks or techniques: only tasks, their dependencies, the resources they
hold (each with a capacity: how many tasks it runs at once) and the bytes they allocate and free
on memories with capacities.
What a run records (RunLog, and the OutOfMemory that stops it) is in engine_log.

Rules, in one place:
- A task is *ready* when all its dependencies have finished.
- Each resource serves its ready tasks strictly in order of (priority, insertion index): the
  head waits for the resource, for the other resources it needs (a multi-resource task starts
  when it heads every queue it is in and all have room), and for memory. This is the only
  tie-breaking rule; it is applied once per simulated instant, after every task ending at that
  instant has been processed, so the outcome never depends on the order of same-time ends.
  When a multi-resource task starts, each other resource it takes that still has room is
  looked at again in the same instant: the task behind it there may start now.
- Memory is freed when a task ends, and allocated in issue order: a CUDA program's caching
  allocator serves each op's allocation when the host issues the op, ahead of the device, so
  which of two streams gets memory first is never decided by a few microseconds of kernel
  time. A device's program issues the tasks attributed to it (Task.device, or any that names
  none); bytes a task allocates on another device (a transfer's receive buffer) are taken
  when it starts. Where every task a device's program allocates with holds one same resource,
  its queue runs them in the order they were issued (as a stream does), and each takes its
  bytes when it starts. Where none is shared, they follow the graph's issue order
  (engine_reading: the order a host program issues the tasks, from the dependencies and
  (priority, insertion index) alone): a task that starts takes its own bytes and those of
  every task issued before it on the device that has not started yet, which then take
  nothing when they start. With `enforce_memory`, a head task whose bytes do not fit waits
  until something frees memory; if nothing running can, the run ends with an OutOfMemory
  naming the device, the task, the bytes (its own and those issued before it) and the time.
- What a device holds besides the tasks' bytes comes from the task graph's meta
  (DEVICE_MEMORY_META: device -> driver_bytes, context_bytes, allocator_overhead_bytes, written
  by the lowering for GPUs): the driver's and the CUDA context's bytes are taken off the
  device's capacity, and the allocator's overhead (what its cache reserves beyond the tensors
  at their peak) is added to the tensors. What fits is judged on that reserved memory;
  `peak_memory_bytes` is the tensors' peak (allocated), `peak_reserved_bytes` adds the overhead.

The loop: the running tasks are grouped by the instant they end (a map from instant to the
tasks ending then, and a heap of the distinct instants). Each turn takes the earliest instant,
ends all its tasks, then dispatches (the order in which tasks of one instant end changes
nothing: ends only free resources and memory and ready tasks, and what starts is decided after
all of them); a task of zero duration started by that dispatch ends at the same instant, in a
further turn. Time is only ever a start time plus a duration, so equal instants compare equal.
A discrete-event library would add a process or event object per task to the same heap
operations; the engine needs neither (no task waits on anything but its dependencies,
resources and memory), and the heap alone is faster (benchmarks/engine_bench.py).

Cost: per task, one push and pop on the queue of each resource it holds that can make it
wait (engine_reading leaves out a resource always held beside one of no greater capacity: a
transfer's two ports, held by the same transfers, need one queue) and one map entry; per
distinct instant, one push and pop on the heap of instants and one dispatch, whose heads are
sorted only when more than two resources changed (replicas in lockstep end dozens of tasks at
one instant, so they share one heap entry). A memory's timeline takes one entry per instant
it changed at (a map from instant to bytes, whose last write at an instant stands); the
(instant, bytes) points are listed only when RunLog.memory_timeline is first read. Reading the
graph (positions of dependencies, successor lists, memory effects) takes about as long as the
loop, most of it reading each task's objects once; benchmarks/engine_bench.py prints the two
apart. Where a device's allocations come from several queues, reading the graph also sorts
every task into issue order once (a heap push and pop each); where each device's come from
one queue (data parallelism: its compute stream), it does not.
"""
from __future__ import annotations

import heapq
import math
from itertools import compress
from operator import not_

from .engine_log import OutOfMemory, RunLog
from .engine_reading import Columns
from .tasks import SimulationError, TaskGraph, cyclic_gc_paused

DEVICE_MEMORY_META = "device_memory"


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
    with cyclic_gc_paused():
        return _Run(graph, capacities, mem_cap, dict(memory_baseline_bytes or {}),
                    enforce_memory).go()


class _Run:
    """One run. Per-task data lives in lists indexed by insertion order and the resources the
    tasks use are numbered in the order of their names (the hot loop avoids attribute and name
    lookups); the tasks running are listed under the instant they end."""

    def __init__(self, graph: TaskGraph, capacities: dict[str, int], mem_cap: dict[str, int],
                 baseline: dict[str, int], enforce: bool, every_resource: bool = False) -> None:
        self.graph = graph
        cols = Columns(graph, capacities, every_resource)
        self.tasks, n, names = cols.tasks, cols.n, cols.resource_names
        self.n, self.res, self.waiting, self.children = n, cols.res, cols.waiting, cols.children
        self.alloc, self.free, self.plain, self.dur = cols.alloc, cols.free, cols.plain, cols.dur
        self.key = cols.key
        self.take_on, self.take_bytes = cols.take_on, cols.take_bytes
        self.take_pos, self.grant_pos = cols.take_pos, cols.grant_pos
        self.grant_seq, self.grant_prefix = cols.grant_seq, cols.grant_prefix
        # each device: how many of its allocating tasks, in issue order, have been granted
        self.granted = dict.fromkeys(cols.grant_seq, 0)
        self.give_on, self.give_bytes = cols.give_on, cols.give_bytes
        self.capacities = capacities
        # free slots of each resource: its capacity less the tasks holding it
        self.slots = [capacities[r] for r in names]
        self.queue: list[list[int]] = [[] for _ in names]   # heaps of ready tasks' keys
        self.start_s = [float("nan")] * n   # NaN: never started
        self.end_s = [float("nan")] * n
        self.mem_cap = mem_cap
        held = graph.meta.get(DEVICE_MEMORY_META) or {}
        self.runtime = {d: int(e.get("driver_bytes", 0)) + int(e.get("context_bytes", 0))
                        for d, e in held.items()}
        self.context = {d: int(e.get("context_bytes", 0)) for d, e in held.items()}
        self.overhead = {d: int(e.get("allocator_overhead_bytes", 0)) for d, e in held.items()}
        # the tensors' bytes that fit: capacity less the runtime's bytes and the allocator's
        self.limit = {d: c - self.runtime.get(d, 0) - self.overhead.get(d, 0)
                      for d, c in mem_cap.items()}
        devices = cols.devices | set(mem_cap) | set(baseline)
        self.mem = {d: int(baseline.get(d, 0)) for d in sorted(devices)}
        # the same for every device, infinite where its memory is unbounded or not enforced
        self.room = {d: self.limit.get(d, math.inf) if enforce else math.inf for d in self.mem}
        self.mem_at = {d: {0.0: b} for d, b in self.mem.items()}
        self.peak = dict(self.mem)
        self.mem_blocked: dict[int, int] = {}      # resource -> task index waiting for memory
        self.now = 0.0
        self.completed = 0

    # -- the loop ------------------------------------------------------------------------
    def go(self) -> RunLog:
        """Alternate: start what can start now (each resource whose queue or load changed,
        highest-priority heads first, so they claim shared resources and memory first), then
        end every task that ends at the next instant. Both halves and the memory check are
        inlined: this is the hot loop."""
        queue, key, res, plain, dur = self.queue, self.key, self.res, self.plain, self.dur
        slots, alloc, free, children = self.slots, self.alloc, self.free, self.children
        waiting, start_s, end_s = self.waiting, self.start_s, self.end_s
        take_on, take_bytes = self.take_on, self.take_bytes
        give_on, give_bytes = self.give_on, self.give_bytes
        take_pos, grant_pos, prefix = self.take_pos, self.grant_pos, self.grant_prefix
        granted = self.granted
        mem_blocked = self.mem_blocked
        mem, peak, room = self.mem, self.peak, self.room
        # each device's bytes by instant: a later change at one instant replaces the entry,
        # which keeps its place, so the entries stay in time order
        mem_at = self.mem_at
        ends: list[float] = []               # heap of the instants at which tasks end
        ending: dict[float, list[int]] = {}  # instant -> the tasks that end then
        heappop, heappush, n, nres = heapq.heappop, heapq.heappush, self.n, len(queue)
        dirty: set[int] = set()   # resources whose queue or free slots changed
        mark_dirty, ending_get, ending_pop = dirty.add, ending.get, ending.pop
        lone = -1   # a two-port task whose other port is already taken
        for i in compress(range(n), map(not_, waiting)):
            for r in res[i]:
                heappush(queue[r], key[i])
                dirty.add(r)
        now = 0.0
        completed = 0
        d: str | None
        heads: tuple[int, ...]
        while True:
            # -- start what can start now --
            while dirty:
                # heads in order of (head's key, resource); one without a queue or a free slot
                # cannot start anything in this instant and may go anywhere
                if len(dirty) == 1:
                    heads = (dirty.pop(),)
                elif len(dirty) == 2:   # the usual case: a transfer's two ports
                    a, b = dirty
                    dirty.clear()
                    qa, qb = queue[a], queue[b]
                    if len(qa) == 1 and qa == qb and slots[a] and slots[b] and \
                            not mem_blocked and len(res[i := qa[0] % n]) == 2 and not alloc[i]:
                        # the one task ready on both, holding just them, starts: b is taken
                        # here, a below as if the task held a alone
                        qb.pop()
                        slots[b] -= 1
                        lone = i
                        heads = (a,)
                    elif qa and qb and (qb[0] < qa[0] or qb[0] == qa[0] and b < a):
                        heads = (b, a)
                    else:
                        heads = (a, b)
                else:
                    # (key, resource) as one int, key * resources + resource, for each resource
                    # with a queue and a free slot (a loop, not a comprehension, which would
                    # make the loop's locals cells)
                    ranked = []
                    for r in dirty:
                        q = queue[r]
                        if q and slots[r]:
                            ranked.append(q[0] * nres + r)
                    ranked.sort()
                    heads = tuple(map(nres.__rmod__, ranked))
                    dirty.clear()
                for r in heads:
                    q = queue[r]
                    while q and slots[r]:
                        k = q[0]
                        i = k % n
                        if (plain[i] or i == lone) and not mem_blocked:
                            heappop(q)
                            slots[r] -= 1
                        elif (dev := take_on[i]) and not mem_blocked:
                            # one port and bytes on one device: they fit, with those issued
                            # before them not yet granted, or it waits, blocking r
                            p = take_pos[i]
                            if p < 0:   # the device's one queue: its order is issue order
                                nbytes = take_bytes[i] + mem[dev]
                                if nbytes > room[dev]:
                                    mem_blocked[r] = i
                                    break
                                mem[dev] = nbytes
                                if nbytes > peak[dev]:
                                    peak[dev] = nbytes
                                mem_at[dev][now] = nbytes
                            elif p >= (g := granted[dev]):   # else granted when a later one was
                                pre = prefix[dev]
                                nbytes = pre[p + 1] - pre[g] + mem[dev]
                                if nbytes > room[dev]:
                                    mem_blocked[r] = i
                                    break
                                granted[dev] = p + 1
                                mem[dev] = nbytes
                                if nbytes > peak[dev]:
                                    peak[dev] = nbytes
                                mem_at[dev][now] = nbytes
                            heappop(q)
                            slots[r] -= 1
                        else:
                            ri = res[i]
                            if len(ri) == 2:   # it must head the other queue too
                                a, b = ri
                                x = b if a == r else a
                                if not slots[x] or queue[x][0] != k:
                                    break
                            elif len(ri) > 2:   # ... and every other one
                                for x in ri:
                                    if x != r and (not slots[x] or queue[x][0] != k):
                                        break
                                else:
                                    x = -1
                                if x >= 0:
                                    break
                            need = alloc[i]
                            if need:   # it waits, blocking r, until it fits
                                take = self.grant_needs(i)
                                for d, nbytes in take.items():
                                    if mem[d] + nbytes > room[d]:
                                        break
                                else:
                                    d = None
                                if d is not None:
                                    mem_blocked[r] = i
                                    break
                            if mem_blocked:
                                mem_blocked.pop(r, None)
                            for x in ri:
                                heappop(queue[x])   # i heads every queue it is in
                                slots[x] -= 1
                                if x != r and queue[x] and slots[x]:
                                    # its next head may start now too: a further round looks
                                    mark_dirty(x)
                            if need:
                                at = grant_pos[i]
                                for d, nbytes in take.items():
                                    if d in at:
                                        granted[d] = at[d] + 1
                                    nbytes += mem[d]
                                    mem[d] = nbytes
                                    if nbytes > peak[d]:
                                        peak[d] = nbytes
                                    mem_at[d][now] = nbytes
                        start_s[i] = now
                        end_s[i] = t = now + dur[i]
                        e = ending_get(t)
                        if e is None:
                            ending[t] = [i]
                            heappush(ends, t)
                        else:
                            e.append(i)
            if not ends:
                break
            # -- end every task that ends at the next instant, in any order --
            now = heappop(ends)
            batch = ending_pop(now)
            completed += len(batch)
            for i in batch:
                for x in res[i]:
                    slots[x] += 1
                    if queue[x]:   # a task waits for it
                        mark_dirty(x)
                if on := give_on[i]:   # bytes on one device
                    nbytes = mem[on] - give_bytes[i]
                    mem[on] = nbytes
                    mem_at[on][now] = nbytes
                    if mem_blocked:   # freed memory may let a blocked head start
                        dirty.update(mem_blocked)
                elif on is None:   # on several
                    for d, nbytes in free[i].items():
                        nbytes = mem[d] - nbytes
                        mem[d] = nbytes
                        mem_at[d][now] = nbytes
                    if mem_blocked:
                        dirty.update(mem_blocked)
                for c in children[i]:
                    w = waiting[c]
                    if w > 1:
                        waiting[c] = w - 1
                    else:   # its last dependency: ready, it joins the queue of each resource
                        k = key[c]
                        for x in res[c]:
                            heappush(queue[x], k)
                            mark_dirty(x)
        self.now = now
        self.completed = completed
        oom = None
        if completed < len(self.tasks):
            oom = self._diagnose_stuck()
        return RunLog(self.tasks, self.start_s, self.end_s, mem_at, self.peak,
                      dict(self.capacities), dict(self.mem_cap), oom, completed,
                      peak_reserved_bytes=self._reserved(), context_bytes=dict(self.context),
                      runtime_bytes=dict(self.runtime))

    def grant_needs(self, i: int) -> dict[str, int]:
        """The bytes task i's start takes on each device: its own and those of the tasks
        issued before it there that are not yet granted (none where it was granted already,
        with a task issued after it)."""
        granted, prefix, at = self.granted, self.grant_prefix, self.grant_pos[i]
        take = {}
        for d, nbytes in self.alloc[i].items():
            p = at.get(d)
            if p is None:   # the device's one queue grants in its own order
                take[d] = nbytes
            elif p >= granted[d]:
                take[d] = prefix[d][p + 1] - prefix[d][granted[d]]
        return take

    def _reserved(self) -> dict[str, int]:
        """Each device's peak of tensors plus the allocator's overhead."""
        return {d: p + self.overhead.get(d, 0) for d, p in self.peak.items()}

    def _diagnose_stuck(self) -> OutOfMemory | None:
        for _, i in sorted(self.mem_blocked.items(), key=lambda kv: self.key[kv[1]]):
            if self.start_s[i] == self.start_s[i]:   # started after all
                continue
            for d, b in self.grant_needs(i).items():
                cap = self.limit.get(d)
                if cap is not None and self.mem[d] + b > cap:
                    held = self.runtime.get(d, 0) + self.overhead.get(d, 0)
                    seq = self.grant_seq.get(d, [])
                    p = self.grant_pos[i].get(d, 0)
                    ahead = tuple(self.tasks[k].name for k in seq[self.granted.get(d, 0):p])
                    return OutOfMemory(d, self.tasks[i].name, self.now, b,
                                       self.mem[d] + held, self.mem_cap[d],
                                       self.runtime.get(d, 0), self.overhead.get(d, 0),
                                       ahead)
        self.graph.topo_order()  # raises SimulationError naming a task on the cycle
        raise SimulationError(  # no cycle and no memory wait: an engine bug
            f"engine stalled with {len(self.tasks) - self.completed} tasks left and no cause")
