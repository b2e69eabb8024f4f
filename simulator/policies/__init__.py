"""Policies: one technique each, turning an op graph into a task graph on a cluster.

A policy is a subclass of `Policy` in its own file, registered with `@register` and listed in
`_BUILTIN`. Its options are declared once, as `Option`s, so that the CLI, scenario files and
sweeps check them the same way; `plan()` receives every option resolved (no defaults of its
own). `plan()` returns a `Plan` (or a subclass carrying what the policy's `finish()` reads after
the run, so that nothing is rebuilt); a bare TaskGraph is taken as a Plan with no extras.

No policy imports another: what several share lives in the underscore modules beside them
(`_pipeline*.py`, `_data_parallel.py`, `_offload.py`, `_swap_model.py`, `_supernet.py`,
`_one_device.py`, `_channel_split*.py`, `_sparsity.py`), and a policy
that runs the engine itself (a search, a latency measured alone) calls `_runs.run_tasks`.
tests/simulator/policies/test_policy_modules.py checks that no policy imports another, that
only `_runs` runs the engine, and that every module without an underscore is a policy.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from workloads.errors import did_you_mean

from ..tasks import SimulationError, TaskGraph

# Modules holding the built-in policies, imported on first lookup.
_BUILTIN = [
    "simulator.policies.sequential",
    "simulator.policies.data_parallel",
    "simulator.policies.supernet_dp",
    "simulator.policies.path_parallel",
    "simulator.policies.supernet_pipeline",
    "simulator.policies.sparse_train",
    "simulator.policies.pipeline_stale",
    "simulator.policies.gpipe",
    "simulator.policies.pipedream",
    "simulator.policies.hybrid",
    "simulator.policies.swap",
    "simulator.policies.swap_all",
    "simulator.policies.recompute",
    "simulator.policies.none",
    "simulator.policies.decnn",
    "simulator.policies.layerwise_mp",
    "simulator.policies.modnn",
    "simulator.policies.coates",
    "simulator.policies.caffe",
    "simulator.policies.torch7",
    "simulator.policies.fsdp",
    "simulator.policies.tensor_parallel",
    "simulator.policies.megatron",
]


class ConfigError(SimulationError):
    """A policy option or scenario value that is missing, unknown or out of range."""


@dataclass(frozen=True)
class Option:
    default: Any
    help: str
    type: Callable[[Any], Any] | None = None     # converts strings from the CLI
    check: Callable[[Any], bool] | None = None   # invariant on the converted value
    expect: str = ""                             # words for the error when check fails


@dataclass
class Plan:
    """What a policy planned: the task graph the engine runs, with the graph, cluster and
    resolved options it was planned for. Policies subclass it to carry what `finish()` needs."""
    tasks: TaskGraph
    graph: Any
    cluster: Any
    training: bool
    options: dict[str, Any]


PlanT = TypeVar("PlanT", bound=Plan)
PolicyClassT = TypeVar("PolicyClassT", bound=type)


@dataclass
class Policy(Generic[PlanT]):
    """Base class. Subclasses set `name`, `description`, `options` and implement `plan`; one
    whose plan() returns a Plan subclass names it: `class Gpipe(Policy[PipelinePlan])`."""
    name: str = ""
    description: str = ""
    options: dict[str, Option] = field(default_factory=dict)
    training_only: bool = False
    inference_only: bool = False
    # whether plan() runs under every framework memory (simulator/framework_memory.py): it runs
    # the whole graph once per device and frees nothing early, so a framework that allocates
    # the net's buffers once (caffe, torch7) can hold them; every policy runs under pytorch's
    any_framework_memory: bool = False

    # plan and finalize are called as plan(graph, cluster, training, **options), with every
    # option resolved; a policy spells out the options it reads, hence the open signatures
    def plan(self, *args: Any, **options: Any) -> PlanT | TaskGraph:
        """The task graph of the technique, as a Plan or a bare TaskGraph."""
        raise NotImplementedError

    def finish(self, result, plan: PlanT) -> float | None:
        """Optional: the policy's figures in result.extras after the run, from its plan. It
        returns the policy's iteration time where that is not the run's makespan over the
        iterations simulated (a pipeline's steady-state period), else None; simulate() puts
        it in the Result."""
        return self.finalize(result, plan.graph, plan.cluster, plan.training, **plan.options)

    def finalize(self, *args: Any, **options: Any) -> float | None:
        """Optional, for a policy whose plan() returns a bare TaskGraph: as finish(), called
        as finalize(result, graph, cluster, training, **options)."""
        return None

    def resolve(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in, strings converted, values checked; unknown names rejected."""
        out = {}
        for key in raw:
            if key not in self.options:
                known = ", ".join(sorted(self.options)) or "none"
                raise ConfigError(f"policy {self.name!r} has no option {key!r}; known: {known}")
        for key, opt in self.options.items():
            value = raw.get(key, opt.default)
            where = f"policy {self.name!r} option {key!r}"
            if isinstance(value, str) and opt.type is not None and opt.type is not str:
                try:
                    value = opt.type(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"{where}: cannot read {value!r} "
                                      f"({opt.expect or opt.help})") from None
            if value is not None and key in raw:
                _check_option_type(where, value, opt)
            try:  # a check meets whatever a file held (a list, a table): its failure is ours
                ok = value is None or opt.check is None or opt.check(value)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ConfigError(f"{where}: {value!r} is out of range "
                                  f"({opt.expect or opt.help})")
            out[key] = value
        return out


def _check_option_type(where: str, value: Any, opt: Option) -> None:
    """Numbers for numeric options: finite, not true/false, whole for an integer option."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    if opt.type in (int, float) and (isinstance(value, bool)
                                     or not isinstance(value, (int, float))):
        raise ConfigError(f"{where}: must be a number, got {value!r} "
                          f"({opt.expect or opt.help})")
    if opt.type is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{where}: must be an integer, got {value!r}")
    if opt.type is parse_bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: must be true or false, got {value!r}")


_REGISTRY: dict[str, Policy[Any]] = {}
_loaded = False


def register(cls: PolicyClassT) -> PolicyClassT:
    inst = cls()
    if not inst.name or inst.name in _REGISTRY:
        raise SimulationError(f"policy name {inst.name!r} is empty or registered twice")
    _REGISTRY[inst.name] = inst
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for mod in _BUILTIN:
            importlib.import_module(mod)


def get(name: str) -> Policy[Any]:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown policy {name!r}{did_you_mean(name, names())}; known: "
                          f"{', '.join(names())}") from None


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def parse_int_list(value: Any) -> list[int]:
    """'19' or '19,37' or [19, 37] -> [19, 37]."""
    if isinstance(value, (list, tuple)):
        return [_whole(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, str):
        raise ValueError(value)
    return [int(v) for v in str(value).split(",") if v.strip()]


def _whole(v: Any) -> int:
    """An integer from a list entry: an int, a whole float or its text; never truncated."""
    if isinstance(v, bool):
        raise ValueError(v)
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError(v)
        return int(v)
    return int(v)
