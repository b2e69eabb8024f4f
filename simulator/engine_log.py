"""What a run of the engine records (engine.py): when every task started and ended, each
device's memory over time and at its peak, and, where memory ran short, the out-of-memory
stop that ended it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from .tasks import Task


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
    # of requested: tasks issued before it on the device, not yet granted, whose bytes its
    # start takes first (the allocator serves allocations in issue order)
    issued_before: tuple[str, ...] = ()

    def message(self) -> str:
        gib = 2 ** 30
        held = ""
        if self.runtime_bytes or self.overhead_bytes:
            held = (f" ({self.runtime_bytes / gib:.3f} GiB of it the driver and CUDA context, "
                    f"{self.overhead_bytes / gib:.3f} GiB the allocator's rounding and cache)")
        ahead = ""
        if self.issued_before:
            names = ", ".join(map(repr, self.issued_before[:3]))
            more = len(self.issued_before) - 3
            ahead = (f" (with what {names}{f' and {more} more' if more > 0 else ''}, issued "
                     "before it, allocate)")
        return (f"out of memory on {self.device} at t={self.time_s:.6g} s: task {self.task!r} "
                f"needs {self.requested_bytes / gib:.3f} GiB more{ahead} with "
                f"{self.in_use_bytes / gib:.3f} GiB of {self.capacity_bytes / gib:.3f} GiB in use"
                f"{held}")


@dataclass
class RunLog:
    """What happened: start and end of every task, memory over time, and how it ended."""
    tasks: list[Task]
    start_s: list[float]
    end_s: list[float]
    # device -> instant -> bytes held from then on, instants in time order
    memory_by_instant: dict[str, dict[float, int]]
    peak_memory_bytes: dict[str, int]
    capacities: dict[str, int]
    memory_capacity_bytes: dict[str, int]
    oom: OutOfMemory | None = None
    completed: int = 0
    meta: dict = field(default_factory=dict)
    peak_reserved_bytes: dict[str, int] = field(default_factory=dict)   # tensors + overhead
    context_bytes: dict[str, int] = field(default_factory=dict)   # CUDA context and handles
    runtime_bytes: dict[str, int] = field(default_factory=dict)   # context + driver

    @cached_property
    def memory_timeline(self) -> dict[str, list[tuple[float, int]]]:
        """Each device's (instant, bytes) points in time order, listed when first asked for:
        most runs are read for their times alone, and a run's hundreds of thousands of
        points would otherwise be built, and scanned once by the cyclic collector, for
        nothing."""
        return {d: list(at.items()) for d, at in self.memory_by_instant.items()}

    @cached_property
    def makespan_s(self) -> float:
        """The last end; read once (a log does not change after its run) and kept."""
        if self.completed == len(self.end_s):   # every task ran: no NaN to leave out
            return max(self.end_s, default=0.0)
        return max((e for e in self.end_s if e == e), default=0.0)  # NaN for tasks never run

    @property
    def ok(self) -> bool:
        return self.oom is None and self.completed == len(self.tasks)
