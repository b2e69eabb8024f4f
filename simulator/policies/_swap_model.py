"""The performance model behind the `swap` planner (AccUDNN's idea, PPoPP 2019 poster).

Given op durations, tensor sizes and an offload plan, predict the step: the compute stream runs
the ops in order; each swap-out goes on the d2h engine after its tensor's last forward reader,
each prefetch on the h2d engine after its trigger op (both first come, first served); an op
starts when the previous one is done, its prefetched inputs have arrived and its output fits
under the budget (if it does not fit it waits for the next swap-out to free memory, and when
nothing will, the plan does not fit). One pass over the ops with a heap of future memory
changes: a few milliseconds for ResNet-152, so the planner can try many plans and the engine
only runs the one it picks.
"""
from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._offload import Tensor

INFEASIBLE = float("inf")


@dataclass(frozen=True)
class StepModel:
    """What the model needs of a training step on one device (positions in op order)."""
    names: list[str]
    duration_s: list[float]
    alloc_bytes: list[int]        # output allocated at start
    free_bytes: list[int]         # bytes freed at end when nothing is offloaded
    resident_bytes: int
    copy_latency_s: float
    copy_Bps: float
    backward_start: int           # position of the first backward op

    def copy_s(self, nbytes: int) -> float:
        return self.copy_latency_s + nbytes / self.copy_Bps

    @property
    def start_s(self) -> list[float]:     # op start times with no stalls
        out, t = [], 0.0
        for d in self.duration_s:
            out.append(t)
            t += d
        return out


@dataclass(frozen=True)
class Prediction:
    time_s: float                 # predicted forward+backward time (inf when it cannot fit)
    peak_bytes: int
    stall_s: float                # compute-stream time spent waiting for copies or memory
    offloaded_bytes: int

    @property
    def fits(self) -> bool:
        return self.time_s != INFEASIBLE


def alap_triggers(model: StepModel, tensors: list, lead: float) -> dict[str, int]:
    """Position of the op after which each tensor's prefetch is issued: as late as lets the
    copy (queued behind the later-needed ones, done in reverse) end `lead` copy-times before
    its first backward reader starts, so the prefetched bytes occupy the device briefly; and
    never before the backward pass starts. vDNN and AccUDNN issue swap-ins during the backward
    pass only: bytes brought back while the forward still produces would take the memory the
    forward's swap-outs are freeing for it (ResNet-152 at 144 on 8 GiB: with 18.7 GB to bring
    back and 1.1 s of backward to hide it in, a layer3 tensor's prefetch started in the
    forward and left layer3.33.conv1 nothing to wait for). Copies that cannot all be hidden
    in the backward are issued one after another as the copy engine frees, not all at its
    start: a prefetch's bytes are taken when it is issued (memory is allocated in issue
    order, engine.py), so one issued long before its copy can begin holds them for nothing."""
    starts = model.start_s
    ends = [s + d for s, d in zip(starts, model.duration_s, strict=True)]
    begins: dict[str, float] = {}
    next_start = INFEASIBLE
    for t in sorted(tensors, key=lambda t: t.first_use, reverse=True):
        c = model.copy_s(t.nbytes)
        end_by = min(starts[t.first_use] - lead * c, next_start)
        begins[t.name] = next_start = end_by - c
    out: dict[str, int] = {}
    engine_free = starts[model.backward_start] if tensors else 0.0
    for t in sorted(tensors, key=lambda t: t.first_use):
        begin = max(begins[t.name], engine_free)
        engine_free = begin + model.copy_s(t.nbytes)
        j = bisect.bisect_right(ends, begin) - 1       # last op ending by `begin`
        out[t.name] = min(max(j, t.swap_out_after, model.backward_start - 1), t.first_use - 1)
    return out


def predict(model: StepModel, tensors: list, triggers: dict[str, int],
            budget_bytes: int) -> Prediction:
    """Simulate the step under `budget_bytes` with `tensors` offloaded.

    Events in time order: the next compute op, or the most urgent issued prefetch (both
    allocate at their start, so each starts at the first instant it fits; ties go to the lower
    position, as the engine's priorities do). A prefetch is issued after its trigger op, and
    memory is allocated in issue order (engine.py): a compute op that starts before an issued
    prefetch does takes the prefetch's bytes with its own. Swap-outs allocate nothing on the
    device: their frees are known when they are issued."""
    n = len(model.names)
    offloaded = sum(t.nbytes for t in tensors)
    swap_after: dict[int, list] = {}
    prefetch_after: dict[int, list] = {}
    needs: dict[int, list] = {}
    for t in tensors:
        swap_after.setdefault(t.swap_out_after, []).append(t)
        prefetch_after.setdefault(triggers[t.name], []).append(t)
        for r in t.backward_readers:
            needs.setdefault(r, []).append(t.name)
    # (time, bytes) given back in the future, kept sorted: the step's ops each look up
    # what is freed by a time, and a scan of every pending free per op is quadratic
    frees: list[tuple[float, int]] = []
    mem = peak = model.resident_bytes
    if mem > budget_bytes:
        return Prediction(INFEASIBLE, mem, 0.0, offloaded)
    clock = stall = d2h_at = h2d_at = 0.0
    swap_end: dict[str, float] = {}
    arrive: dict[str, float] = {}
    issued: list[tuple[int, float, Tensor]] = []   # prefetches: (first use, ready time, tensor)
    untaken: list[str] = []   # issued prefetches whose bytes no start has taken yet
    untaken_bytes = 0

    def fit_time(ready: float, need: int) -> float:
        """First instant >= ready at which `need` bytes fit, counting only known frees."""
        due = bisect.bisect_right(frees, (ready, INFEASIBLE)) if frees else 0
        m = mem - sum(b for _, b in frees[:due]) if due else mem
        if m + need <= budget_bytes:
            return ready
        for tt, b in frees[due:]:
            m -= b
            if m + need <= budget_bytes:
                return tt
        return INFEASIBLE

    def advance(now: float) -> None:
        nonlocal mem
        due = bisect.bisect_right(frees, (now, INFEASIBLE)) if frees else 0
        if due:
            mem -= sum(b for _, b in frees[:due])
            del frees[:due]

    i = 0
    while i < n:
        need = model.alloc_bytes[i] + untaken_bytes
        if i in needs:   # an op reading prefetched tensors waits for them to arrive
            ready = max(clock, *(arrive.get(s, INFEASIBLE) for s in needs[i]))
            tc = fit_time(ready, need) if ready < INFEASIBLE else INFEASIBLE
        else:
            tc = fit_time(clock, need)
        th = INFEASIBLE
        if issued:
            use, ready, t = issued[0]
            th = (max(h2d_at, ready) if t.name not in untaken
                  else fit_time(max(h2d_at, ready), t.nbytes))
        if tc == th == INFEASIBLE:
            return Prediction(INFEASIBLE, peak, stall, offloaded)
        if (tc, i) <= (th, issued[0][0] if issued else n):
            advance(tc)
            mem += need
            untaken.clear()
            untaken_bytes = 0
            peak = max(peak, mem)
            stall += tc - clock
            clock = end = tc + model.duration_s[i]
            if model.free_bytes[i]:
                bisect.insort(frees, (end, model.free_bytes[i]))
            for t in swap_after.get(i, ()):
                d2h_at = max(end, d2h_at) + model.copy_s(t.nbytes)
                swap_end[t.name] = d2h_at
                bisect.insort(frees, (d2h_at, t.nbytes))
            for t in prefetch_after.get(i, ()):
                heapq.heappush(issued, (t.first_use, max(end, swap_end[t.name]), t))
                untaken.append(t.name)
                untaken_bytes += t.nbytes
            i += 1
        else:
            use, ready, t = heapq.heappop(issued)
            advance(th)
            if t.name in untaken:
                untaken.remove(t.name)
                untaken_bytes -= t.nbytes
                mem += t.nbytes
                peak = max(peak, mem)
            h2d_at = th + model.copy_s(t.nbytes)
            arrive[t.name] = h2d_at
    return Prediction(clock, peak, stall, offloaded)
