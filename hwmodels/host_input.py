"""The host input pipeline: the node's CPUs reading, decoding and augmenting the images of the
next batch while the GPUs train on this one.

A loader prefetches: batch i + 1 is prepared during step i, so a step takes the longer of the
GPU's step and the loader's batch. The loaders of every training process on a node share the
node's CPU cores; a process whose loader runs a fixed number of threads uses at most that many.
Per rank, a batch takes

    batch * cpu_core_s_per_image / min(loader_threads, host_cores / ranks_on_node)

seconds. Mixed precision makes the GPU step 3x shorter and needs the images 3x as fast, so it
is the first to become input-bound, and more GPUs per node leave fewer cores to each.

A node type's host CPUs live with the node type (catalog/nodes.toml, its `cpu` table); the
loaders' per-image costs in catalog/input_pipelines.toml, with their sources and the published
rows each cost was fitted to. `synthetic` (random tensors
already on the GPU, as benchmarks without a data set run) costs nothing.
"""
from __future__ import annotations

import importlib.resources
import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache

from .specs import HardwareError

SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class HostCpus:
    node_type: str
    cpu: str
    cores: int
    threads: int
    source: str


@dataclass(frozen=True)
class Loader:
    name: str
    cpu_core_s_per_image: float
    gpu_decoded: bool
    fitted_to: str


@lru_cache(maxsize=1)
def _catalog() -> dict:
    text = importlib.resources.files("hwmodels").joinpath(
        "catalog/input_pipelines.toml").read_text()
    return tomllib.loads(text)


@lru_cache(maxsize=1)
def _node_cpus() -> dict[str, dict]:
    """The `cpu` table of each node type of catalog/nodes.toml that has one."""
    text = importlib.resources.files("hwmodels").joinpath("catalog/nodes.toml").read_text()
    return {name: entry["cpu"] for name, entry in tomllib.loads(text)["nodes"].items()
            if "cpu" in entry}


def loader_names() -> tuple[str, ...]:
    """`synthetic` and every loader of the catalog, in catalog order."""
    return (SYNTHETIC, *_catalog()["loaders"])


def loader(name: str) -> Loader:
    table = _catalog()["loaders"]
    if name not in table:
        raise HardwareError(f"unknown input pipeline {name!r}; known: "
                            f"{', '.join(loader_names())}")
    entry = table[name]
    return Loader(name, float(entry["cpu_core_s_per_image"]), bool(entry["gpu_decoded"]),
                  str(entry["fitted_to"]))


def host_node_types() -> tuple[str, ...]:
    """The node types whose CPUs the catalog knows."""
    return tuple(_node_cpus())


def host_cpus(node_type: str | None) -> HostCpus | None:
    """The CPUs of a catalog node type, or None where the catalog does not know them."""
    entry = _node_cpus().get(node_type) if node_type else None
    if entry is None:
        return None
    try:
        cpus = HostCpus(str(node_type), str(entry["model"]), int(entry["cores"]),
                        int(entry["threads"]), str(entry["source"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise HardwareError(f"nodes.toml: node {node_type!r}: its cpu table needs model, "
                            f"cores, threads and source ({exc!r})") from None
    if not 0 < cpus.cores <= cpus.threads:
        raise HardwareError(f"nodes.toml: node {node_type!r}: cpu cores must be > 0 and at "
                            f"most its threads, got {cpus.cores} and {cpus.threads}")
    return cpus


def batch_time_s(loader_name: str, batch: int, host_cores: float, ranks_on_node: int,
                 loader_threads: float | None = None) -> float:
    """Seconds the loader of one rank takes to prepare a batch of `batch` images while
    `ranks_on_node` ranks share `host_cores` cores (0 for synthetic data)."""
    if loader_name == SYNTHETIC:
        return 0.0
    spec = loader(loader_name)
    for what, value, low in (("host_cores", host_cores, 0), ("ranks_on_node", ranks_on_node, 0),
                             ("batch", batch, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not low < value < math.inf:
            raise HardwareError(f"input pipeline {loader_name!r}: {what} must be a number > "
                                f"{low}, got {value!r}")
    cores = host_cores / ranks_on_node
    if loader_threads is not None:
        if isinstance(loader_threads, bool) or not 0 < loader_threads < math.inf:
            raise HardwareError(f"input pipeline {loader_name!r}: loader_threads must be a "
                                f"number > 0, got {loader_threads!r}")
        cores = min(cores, loader_threads)
    return batch * spec.cpu_core_s_per_image / cores
