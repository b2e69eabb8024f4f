"""Memory is granted in issue order (engine.py's rules): which of two streams allocates first
is decided by the program, never by a few milliseconds of kernel time."""
from __future__ import annotations

import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import engine
from simulator.engine_log import OutOfMemory
from simulator.tasks import Task, TaskGraph

GIB = 2 ** 30


def issue_ranks(tg: TaskGraph) -> dict[str, int]:
    """Each task's place in issue order, worked out here apart from the engine: the host
    issues, of the tasks whose dependencies it has issued, the one of lowest (priority,
    insertion index)."""
    tasks = list(tg)
    index = {t.name: k for k, t in enumerate(tasks)}
    left = {t.name: len(t.deps) for t in tasks}
    after: dict[str, list[str]] = {t.name: [] for t in tasks}
    for t in tasks:
        for d in t.deps:
            after[d].append(t.name)
    ready = [(t.priority, index[t.name]) for t in tasks if not t.deps]
    heapq.heapify(ready)
    ranks: dict[str, int] = {}
    while ready:
        _, k = heapq.heappop(ready)
        name = tasks[k].name
        ranks[name] = len(ranks)
        for c in after[name]:
            left[c] -= 1
            if not left[c]:
                heapq.heappush(ready, (tg[c].priority, index[c]))
    return ranks


def taken_at(tg: TaskGraph, log, device: str) -> dict[str, float]:
    """When each task's bytes on `device` are taken: at its start where another device's
    program issues it, or where one resource is held by every task the device's program
    allocates with (that queue's order is issue order); else at the first start among it and
    the tasks issued after it that allocate there."""
    everyone = [(t, s) for t, s in zip(log.tasks, log.start_s, strict=True)
                if device in t.alloc]
    allocators = [(t, s) for t, s in everyone if t.device in (None, device)]
    others = {t.name: s for t, s in everyone if t.device not in (None, device)}
    if not allocators or set.intersection(*(set(t.resources) for t, _ in allocators)):
        return {**others, **{t.name: s for t, s in allocators}}
    rank = issue_ranks(tg)
    out, first = {}, float("nan")
    for t, s in sorted(allocators, key=lambda ts: -rank[ts[0].name]):
        first = s if first != first or s < first else first   # NaN: never started
        out[t.name] = first
    return {**others, **out}


def level_at(tg: TaskGraph, log, device: str, when: float, baseline: int = 0) -> int:
    taken = taken_at(tg, log, device)
    level = baseline
    for t, e in zip(log.tasks, log.end_s, strict=True):
        level += t.alloc.get(device, 0) * (taken.get(t.name, float("nan")) <= when)
        level -= t.free.get(device, 0) * (e <= when)
    return level


def pool_and_prefetch(filler_s: float, prefetch_issued_first: bool) -> TaskGraph:
    """vDNN_all's VGG-16 at 256 on 12 GiB, reduced: conv5's backward ends, and the compute
    stream runs a short update (filler_s, the jitter) before the pool's input gradient, which
    needs the prefetch of conv2's output (on the copy engine), can start; the prefetch of
    conv0's output waits on the copy engine behind conv2's. Both need 3 GiB with 7 GiB held
    of 12; the gradient frees 2 GiB when it ends, the rest is freed by conv2's own backward,
    which needs the second prefetch."""
    tg = TaskGraph("pool-and-prefetch")
    tg.new("conv5.grad", "compute", 0.1250, alloc={"gpu": 7 * GIB}, priority=0)
    tg.new("prefetch.conv2", "h2d", 0.1255, priority=0, alloc={"gpu": 0})
    tg.new("update", "compute", filler_s, deps=["conv5.grad"], priority=9)
    tg.new("pool.grad", "compute", 0.01, deps=["conv5.grad", "prefetch.conv2"], priority=2,
           alloc={"gpu": 3 * GIB}, free={"gpu": 2 * GIB})
    tg.new("prefetch.conv0", "h2d", 0.25, deps=["conv5.grad"],
           priority=1 if prefetch_issued_first else 3, alloc={"gpu": 3 * GIB})
    tg.new("conv2.grad", "compute", 0.05, deps=["pool.grad", "prefetch.conv0"], priority=4,
           free={"gpu": 11 * GIB})
    return tg


FILLERS_S = (0.0, 0.0001, 0.0004, 0.0005, 0.0006, 0.001, 0.003)


@pytest.mark.parametrize("prefetch_issued_first", [False, True])
def test_the_verdict_does_not_hang_on_a_kernel_s_few_milliseconds(prefetch_issued_first):
    # the prefetch's copy engine frees at 0.1255 s and the gradient's inputs are there then;
    # whether the compute stream is still busy with the update is a matter of microseconds
    logs = [engine.run(pool_and_prefetch(f, prefetch_issued_first), {"compute": 1, "h2d": 1},
                       {"gpu": 12 * GIB}) for f in FILLERS_S]
    verdicts = {log.ok for log in logs}
    assert verdicts == {not prefetch_issued_first}
    if prefetch_issued_first:   # the gradient waits on memory only conv2.grad frees
        assert {log.oom.task for log in logs} == {"pool.grad"}


def test_the_task_issued_first_takes_the_memory_first():
    # the gradient, issued before the prefetch, starts after it (its stream is busy), yet
    # the memory is its: the prefetch waits for the gradient's bytes to be freed
    log = engine.run(pool_and_prefetch(0.003, prefetch_issued_first=False),
                     {"compute": 1, "h2d": 1}, {"gpu": 12 * GIB})
    start = dict(zip((t.name for t in log.tasks), log.start_s, strict=True))
    assert log.ok and start["pool.grad"] < start["prefetch.conv0"]


def test_a_later_task_starting_first_takes_the_earlier_ones_bytes_with_its_own():
    tg = TaskGraph("early")
    tg.new("copy.busy", "h2d", 2.0)
    tg.new("prefetch", "h2d", 1.0, priority=1, alloc={"gpu": 5})   # issued first, waits
    tg.new("op", "compute", 1.0, priority=2, alloc={"gpu": 3}, free={"gpu": 3})
    log = engine.run(tg, {"compute": 1, "h2d": 1}, {"gpu": 10})
    assert log.ok
    assert log.memory_timeline["gpu"] == [(0.0, 8), (1.0, 5)]
    # with 7 bytes the op cannot take the prefetch's bytes with its own: it waits, the
    # prefetch takes them when the copy engine frees, and nothing is left to free for the op
    with_little_room = engine.run(tg, {"compute": 1, "h2d": 1}, {"gpu": 7})
    assert with_little_room.oom is not None
    assert (with_little_room.oom.task, with_little_room.oom.requested_bytes) == ("op", 3)
    assert with_little_room.start_s[1] == 2.0


def test_a_transfer_issued_by_another_device_takes_its_receive_buffer_when_it_starts():
    # the receiver's program posts the receive where the graph does not say: the buffer is
    # taken when the transfer starts, not with the receiver's ops issued after the sender's
    tg = TaskGraph("receive")
    tg.new("send.busy", "link", 2.0, device="gpu0")
    tg.new("recv", "link", 1.0, priority=1, alloc={"gpu1": 5}, device="gpu0")
    tg.new("op", "gpu1.compute", 1.0, priority=2, alloc={"gpu1": 3}, free={"gpu1": 3},
           device="gpu1")
    log = engine.run(tg, {"link": 1, "gpu1.compute": 1}, {"gpu1": 10})
    assert log.memory_timeline["gpu1"] == [(0.0, 3), (1.0, 0), (2.0, 5)]
    assert log.memory_timeline["gpu1"] == [
        (when, level_at(tg, log, "gpu1", when)) for when, _ in log.memory_timeline["gpu1"]]


def test_an_oom_names_the_tasks_issued_before_whose_bytes_it_counts():
    oom = OutOfMemory("gpu0", "pool.grad", 1.5, 6 * GIB, 10 * GIB, 12 * GIB,
                      issued_before=("prefetch.a", "prefetch.b", "c", "d"))
    assert ("task 'pool.grad' needs 6.000 GiB more (with what 'prefetch.a', 'prefetch.b', "
            "'c' and 1 more, issued before it, allocate) with 10.000 GiB") in oom.message()


@st.composite
def two_stream_graphs(draw):
    """Tasks on a compute stream and a copy engine allocating on one memory (so no resource
    is shared by every allocating task), random priorities and dependencies."""
    n = draw(st.integers(2, 20))
    tg = TaskGraph("two-streams")
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=2, unique=True)) if i else []
        res = "compute" if i == 0 else ("h2d" if i == 1 else
                                        draw(st.sampled_from(["compute", "h2d"])))
        nbytes = draw(st.integers(0, 30))
        tg.add(Task(f"t{i}", (res,), draw(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0])),
                    tuple(f"t{d}" for d in deps), priority=draw(st.integers(-2, 2)),
                    alloc={"m": nbytes} if i < 2 or draw(st.booleans()) else {},
                    free={"m": nbytes} if draw(st.booleans()) else {}))
    return tg


@settings(max_examples=120, deadline=None)
@given(two_stream_graphs(), st.integers(20, 120))
def test_memory_is_taken_in_issue_order(tg, capacity):
    log = engine.run(tg, {"compute": 1, "h2d": 1}, {"m": capacity})
    for when, level in log.memory_timeline["m"]:
        assert level == level_at(tg, log, "m", when) <= capacity
    # every task issued before a task that took its bytes had taken its own by then
    taken = taken_at(tg, log, "m")
    rank = issue_ranks(tg)
    for a in taken:
        for b in taken:
            if rank[a] < rank[b] and taken[b] == taken[b]:
                assert taken[a] <= taken[b]
    if log.oom is not None:
        task = tg[log.oom.task]
        assert log.oom.requested_bytes >= task.alloc["m"]
        assert log.oom.requested_bytes == task.alloc["m"] + sum(
            tg[name].alloc["m"] for name in log.oom.issued_before)
