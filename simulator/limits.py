"""The largest values dnnsim accepts, checked before anything is built or allocated.

A value past its ceiling is refused with a ConfigError naming the value and the ceiling (exit 2
from the CLI), rather than growing until the kernel kills the process. Each ceiling is about
the largest run of its kind seen to complete on a small (2-vCPU) machine; docs/reliability.md
lists them.
"""
from __future__ import annotations

import re
import resource
import sys

from .policies import ConfigError
from .workers import cpu_count

# A sweep's points: the product of its axes' lengths, before exclusions. Checking a point
# takes about 50 us and its hash 40 bytes, so a million points is about a minute and 100 MB.
MAX_SWEEP_POINTS = 1_000_000
# Devices of one cluster: 65,536 data-parallel devices ran; a fully connected topology has a
# link per pair of devices, so 4,096 devices already make 8.4 million links.
MAX_DEVICES = 65_536
MAX_FULLY_CONNECTED_DEVICES = 4_096
# Ops of one workload's forward graph: resnet120002 (420,009 ops) ran, alone, on one device.
MAX_GRAPH_OPS = 500_000
# Policy options that multiply the task graph: each minibatch, micro-batch, sample or path is a
# copy of the step's tasks (pipeline-stale's default is 4K+4 for K partitions, DeCNN's 8
# samples). 10,000 copies of a small network's step is about a minute and a few GB.
MAX_OPTION_COUNTS = {"minibatches": 10_000, "micro_batches": 10_000, "samples": 10_000,
                     "in_flight": 10_000, "paths": 10_000}
# Calibration's timed replays of each network (--rounds, --max-rounds): a hundred times the
# default 10; each round replays every calibration network, so a count past it measures for
# days rather than fitting any better.
MAX_CALIBRATION_ROUNDS = 1_000
# Worker processes: more than the CPUs this process may use only adds start-up and switching.
MIN_WORKERS = 1


def check_count(what: str, value: float, ceiling: int, where: str = "") -> None:
    """Refuse `value` past `ceiling`, naming both."""
    if value > ceiling:
        at = f"{where}: " if where else ""
        raise ConfigError(f"{at}{what} {value:,} is past dnnsim's limit of {ceiling:,} "
                          "(see docs/reliability.md)")


def check_devices(devices: int, topology: str, where: str) -> None:
    check_count("devices", devices, MAX_DEVICES, where)
    if topology == "fully-connected":
        check_count("fully connected devices", devices, MAX_FULLY_CONNECTED_DEVICES, where)


def check_options(options: dict, where: str) -> None:
    """The resolved options of a policy: those that multiply the task graph, capped."""
    for name, ceiling in MAX_OPTION_COUNTS.items():
        value = options.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            check_count(f"option {name!r}", value, ceiling, where)


def check_workers(workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < MIN_WORKERS:
        raise ConfigError(f"--workers must be a whole number >= {MIN_WORKERS}, got {workers!r}")


def workers_for(requested: int | None) -> int:
    """The worker processes to start: the CPUs this process may use, or fewer if asked; more
    are capped, with a message on stderr."""
    cpus = cpu_count()
    if requested is None:
        return cpus
    check_workers(requested)
    if requested > cpus:
        print(f"dnnsim: --workers {requested} is more than the {cpus} CPU(s) this process may "
              f"use; running {cpus} worker(s)", file=sys.stderr)
        return cpus
    return requested


# --max-memory: the process's data (heap and private mappings, RLIMIT_DATA), so that a run too
# large for it stops with MemoryError (one error line) before the kernel's OOM killer kills it
# (or others).
MIN_MAX_MEMORY_BYTES = 64 * 2 ** 20
# the largest cap setrlimit takes (a signed 64-bit count); more than any machine holds
MAX_MAX_MEMORY_BYTES = 2 ** 63 - 1
_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def parse_bytes(text: str, flag: str = "--max-memory") -> int:
    """'4G', '512M', '4GiB', '1.5G' or a byte count; binary units."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.I)
    if not m:
        raise ConfigError(f"{flag} {text!r} must be a size such as 4G, 512M or 1073741824")
    size = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if size > MAX_MAX_MEMORY_BYTES:   # also inf: digits past a float's range
        raise ConfigError(f"{flag} {text!r} is past the largest size a process can be capped "
                          f"at ({MAX_MAX_MEMORY_BYTES:,} bytes, 8 EiB)")
    value = int(size)
    if value < MIN_MAX_MEMORY_BYTES:
        raise ConfigError(f"{flag} {text!r} is below the least dnnsim can start in "
                          f"({MIN_MAX_MEMORY_BYTES // 2 ** 20} MiB)")
    return value


def apply_max_memory(text: str | None) -> None:
    """Cap this process's memory (and that of the workers it starts) at `text`."""
    if text is None:
        return
    limit = parse_bytes(text)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    global _reserve, max_memory_given
    _reserve = bytearray(RESERVE_BYTES)   # freed on MemoryError, so the error can be reported
    max_memory_given = text


RESERVE_BYTES = 8 * 2 ** 20
_reserve: bytearray | None = None
max_memory_given: str | None = None     # the --max-memory of this process, as given


def release_reserve() -> None:
    """Free the memory kept for reporting a MemoryError (the CLI calls this first)."""
    global _reserve
    _reserve = None
