"""Running a planned task graph on its cluster: what `simulate()` does once, and what a policy
that needs several engine runs (a search over shapes, a latency measured alone) does itself."""
from __future__ import annotations

from .. import engine
from ..engine_log import RunLog
from ..tasks import TaskGraph
from ._mpi_tcp import pay_tcp_stacks


def run_tasks(tasks: TaskGraph, cluster, *, enforce_memory: bool = True,
              memory_budget_bytes: dict[str, int] | None = None) -> RunLog:
    """The engine's log of `tasks` on the cluster's resources and memory, each device starting
    from the resident bytes the plan declares (tasks.meta['resident_bytes']). A device named in
    `memory_budget_bytes` has that much memory instead of its own (a planner's budget).
    Transfers between boards get their TCP/IP stacks' tasks first (_mpi_tcp.py), into `tasks`
    itself, once."""
    pay_tcp_stacks(tasks, cluster)
    # a plan may add resources of its own (the data-parallel input pipeline's {device}.input)
    capacities = {**cluster.resources, **tasks.meta.get("extra_resources", {})}
    memory = {**cluster.memory_capacity_bytes(), **(memory_budget_bytes or {})}
    return engine.run(tasks, capacities, memory,
                      memory_baseline_bytes=tasks.meta.get("resident_bytes"),
                      enforce_memory=enforce_memory)
