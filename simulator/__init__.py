"""dnnsim simulator: tasks, cluster, engine, policies, results.

    from simulator import simulate, Cluster
    result = simulate("resnet50", Cluster.build("v100", 4, "nvlink2"), "data-parallel", batch=32)
"""
from workloads.errors import DnnsimError

from .api import load_workload, simulate
from .cluster import Cluster
from .results import Result
from .tasks import SimulationError, Task, TaskGraph

__all__ = ["simulate", "load_workload", "Cluster", "Result", "Task", "TaskGraph",
           "SimulationError", "DnnsimError"]
