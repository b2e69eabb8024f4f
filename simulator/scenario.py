"""Scenarios: everything one simulation needs, as a TOML file, a dict or CLI flags.

    workload = "resnet50"          # a zoo name
    batch = 32
    hardware = "v100"              # a catalog name, or a calibrated profile (.toml path)
    gpu_families = "mine.toml"     # optional: GPU constants of one's own (dnnsim calibrate
                                   # --published) in place of the catalog's
    devices = 4
    link = "nvlink2"
    policy = "data-parallel"
    inference = false              # optional (default: a training step)
    precision = "amp-fp16"         # optional: fp32 (default) | tf32 | fp16 | bf16 |
                                   # amp-fp16 | amp-bf16
    cudnn_benchmark = true         # optional: PyTorch's cuDNN algorithm search first
                                   # (default false)
    memory_format = "nhwc"         # optional: nchw | nhwc (channels_last); default: the
                                   # workload's own (nchw, or an imported model's stamps)
    framework_memory = "caffe"     # optional: pytorch (default) | cudnn | caffe | torch7 |
                                   # torch7:share-grad-input
    optimizer = "adam"             # optional: sgd | sgd-momentum (default) | adam | adamw:
                                   # its state in memory, its step's traffic
    optimizer_loop = true          # optional: torch.optim steps tensor by tensor
                                   # (foreach=False, PyTorch 1.x); default false
    topology = "switch"            # optional: switch | ring | fully-connected | pcie |
                                   # dgx1-cube-mesh | nvswitch
    devices_per_node = 8           # optional, with inter_node_link
    inter_node_link = "ib100"
    host_link = "pcie3"            # optional (GPUs: their catalog default)
    host = "ddr4-256gb"            # optional: host memory, tracked when given
    node_type = "dgx1-v100"        # optional: a catalog node type (docs/clusters.md) instead of
                                   # link, topology, devices_per_node, inter_node_link, host_link
    network = "fat-tree"           # optional: fat-tree | rail-optimised, between nodes
    oversubscription = 2.0         # optional: a leaf's down over up bandwidth (default 1)
    nodes_per_leaf = 4             # optional: nodes under one leaf switch of the fat tree
    jitter = "lognormal:0.05"      # optional: per-op time factors, DISTRIBUTION:SPREAD
    seed = 1                       # optional: the jitter's seed (default 0)
    nics = [[0, 1], [2, 3]]        # optional, without node_type: local GPUs sharing each NIC
    pcie_switches = [[0, 1], [2, 3]]  # optional, without node_type: ... each PCIe switch
    [speeds]                       # optional: slow devices, e.g. gpu3 = 0.8 (1: as modelled)
    [workload_options]             # e.g. depth = 56, groups = 4
    [hardware_options]             # overrides of the device spec, e.g. memory_bytes = 8e9
    [options]                      # the policy's options (dnnsim policies lists them)

Unknown or misspelt fields are errors that name the field and the file; so are missing ones.
A relative path in a file is read from the file's folder (simulator/scenario_paths.py).
"""
from __future__ import annotations

import copy
import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwmodels import catalog
from workloads.errors import check_input_file, did_you_mean
from workloads.memory_format import MEMORY_FORMATS
from workloads.precision import PRECISIONS
from workloads.training import OPTIMIZER_STATE_PER_PARAM as OPTIMIZERS

from . import limits
from .cluster import TOPOLOGIES, Cluster
from .framework_memory import DEFAULT_FRAMEWORK_MEMORY, FrameworkMemory, check_policy
from .node_types import NodeLayout, check_node_device, node_type
from .policies import ConfigError
from .scenario_paths import resolve_scenario_paths
from .stragglers import Jitter

REQUIRED = ("workload", "batch", "hardware", "policy")


@dataclass
class Scenario:
    workload: str
    batch: int
    hardware: str
    policy: str
    devices: int = 1
    link: str | None = None
    inference: bool = False
    topology: str = "switch"
    devices_per_node: int | None = None
    inter_node_link: str | None = None
    host_link: str | None = None
    host: str | None = None
    node_type: str | None = None
    network: str | None = None
    oversubscription: float | None = None
    nodes_per_leaf: int | None = None
    jitter: str | None = None
    seed: int = 0
    speeds: dict = field(default_factory=dict)
    nics: list | None = None
    pcie_switches: list | None = None
    precision: str = "fp32"
    cudnn_benchmark: bool = False
    memory_format: str | None = None   # None: the workload's own layout stands
    framework_memory: str = DEFAULT_FRAMEWORK_MEMORY
    optimizer: str | None = None       # None: the workload's own (sgd-momentum)
    optimizer_loop: bool = False       # torch.optim's per-tensor loop, not its foreach step
    gpu_families: str | None = None    # a families file (.toml) in place of the catalog's
    workload_options: dict = field(default_factory=dict)
    hardware_options: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    # -- reading -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "scenario") -> "Scenario":
        known = [f for f in cls.__dataclass_fields__]
        for key in data:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                also = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ConfigError(f"{source}: unknown field {key!r}{also}")
        for key in REQUIRED:
            if key not in data:
                raise ConfigError(f"{source}: missing field {key!r}")
        types = {"workload": str, "hardware": str, "policy": str, "link": str, "topology": str,
                 "inter_node_link": str, "host_link": str, "host": str, "node_type": str,
                 "network": str, "oversubscription": float, "nodes_per_leaf": int,
                 "jitter": str, "seed": int, "speeds": dict, "nics": list,
                 "pcie_switches": list, "precision": str, "cudnn_benchmark": bool, "batch": int,
                 "memory_format": str,
                 "framework_memory": str, "gpu_families": str, "optimizer": str,
                 "optimizer_loop": bool,
                 "devices": int, "devices_per_node": int, "inference": bool,
                 "workload_options": dict, "hardware_options": dict, "options": dict}
        for key, value in data.items():
            want = types[key]
            if value is None and key not in REQUIRED:
                continue
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                continue
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                raise ConfigError(f"{source}: field {key!r} must be {want.__name__}, "
                                  f"got {value!r}")
            # an empty name is a slip (an unset shell variable), not a request for the default
            if isinstance(value, str) and not value.strip():
                leave = "" if key in REQUIRED else " or leave the field out"
                raise ConfigError(f"{source}: field {key!r} is empty; give a value{leave}")
        sc = cls(**data)
        sc.check(source)
        return sc

    @classmethod
    def load(cls, path: str | Path) -> "Scenario":
        data = resolve_scenario_paths(read_toml(path, "scenario file"), path, str(path))
        return cls.from_dict(data, source=str(path))

    def check(self, source: str = "scenario") -> None:
        if self.batch < 1:
            raise ConfigError(f"{source}: batch must be >= 1, got {self.batch}")
        if self.devices < 1:
            raise ConfigError(f"{source}: devices must be >= 1, got {self.devices}")
        limits.check_devices(self.devices, self.topology, source)
        self._check_cluster_layout(source)
        if self.devices > 1 and not self.link and not self.node_type:
            raise ConfigError(f"{source}: field 'link' is required with {self.devices} devices")
        if self.topology not in TOPOLOGIES:
            raise ConfigError(f"{source}: topology must be one of {', '.join(TOPOLOGIES)}, "
                              f"got {self.topology!r}{did_you_mean(self.topology, TOPOLOGIES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{source}: precision must be one of {', '.join(PRECISIONS)}, "
                              f"got {self.precision!r}{did_you_mean(self.precision, PRECISIONS)}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"{source}: optimizer must be one of {', '.join(OPTIMIZERS)}, "
                              f"got {self.optimizer!r}{did_you_mean(self.optimizer, OPTIMIZERS)}")
        if self.memory_format is not None and self.memory_format not in MEMORY_FORMATS:
            raise ConfigError(f"{source}: memory_format must be one of "
                              f"{', '.join(MEMORY_FORMATS)} (nhwc: PyTorch's channels_last), "
                              f"got {self.memory_format!r}"
                              f"{did_you_mean(self.memory_format, MEMORY_FORMATS)}")
        if self.devices_per_node is not None and self.devices_per_node < 1:
            raise ConfigError(f"{source}: devices_per_node must be >= 1, "
                              f"got {self.devices_per_node}")
        self._check_whole_nodes(source)
        self._check_names(source)

    def _check_whole_nodes(self, source: str) -> None:
        """Devices over several nodes fill whole nodes: 4 devices in nodes of 3 is a slip in
        one of the two numbers, not a request for a short last node (which Cluster.build
        still models for a caller who means one). One node partly used (2 of 8) stands."""
        if self.node_type:
            per_node = node_type(self.node_type).gpus
            given, other = f"node type {self.node_type!r}", ""
        else:
            per_node, given = self.devices_per_node or self.devices, "devices_per_node"
            other = f", or a devices_per_node that divides {self.devices}"
        if self.devices <= per_node or self.devices % per_node == 0:
            return
        fewer = self.devices - self.devices % per_node
        raise ConfigError(f"{source}: devices {self.devices} do not fill whole nodes of "
                          f"{per_node} ({given}): give devices {fewer} or "
                          f"{fewer + per_node}{other}")

    def _check_cluster_layout(self, source: str) -> None:
        """A node type fixes the fabric; the network, jitter and seed are checked here, the
        speeds' device names when the cluster is built."""
        fixed = [f for f in ("link", "devices_per_node", "inter_node_link", "host_link", "nics",
                             "pcie_switches") if getattr(self, f) is not None] + \
            (["topology"] if self.topology != "switch" else [])
        if self.node_type and fixed:
            try:   # an unknown name first: it is what the user has to fix
                node_type(self.node_type)
            except ValueError as exc:
                raise ConfigError(f"{source}: {exc}") from None
            raise ConfigError(f"{source}: node_type {self.node_type!r} sets the fabric; leave "
                              f"out {', '.join(fixed)}")
        for name in ("nics", "pcie_switches"):
            groups = getattr(self, name)
            if groups is not None and not all(isinstance(g, list) for g in groups):
                raise ConfigError(f"{source}: {name} must be a list of lists of local GPU "
                                  f"indices, e.g. [[0, 1], [2, 3]], got {groups!r}")
        try:
            if self.node_type:
                node_type(self.node_type)
            self.layout().check(self.devices_per_node or self.devices, 1)
            self.jitter_model()
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def layout(self) -> NodeLayout:
        groups = {name: tuple(tuple(g) for g in getattr(self, name))
                  for name in ("nics", "pcie_switches") if getattr(self, name) is not None}
        return NodeLayout(**groups, network=self.network or "fat-tree",
                          oversubscription=(1.0 if self.oversubscription is None
                                            else self.oversubscription),
                          nodes_per_leaf=self.nodes_per_leaf)

    def jitter_model(self) -> Jitter | None:
        return Jitter.parse(self.jitter, self.seed) if self.jitter else None

    def _check_names(self, source: str) -> None:
        """Every name resolves, so a typo is reported with its field and file before anything
        runs (a sweep checks all its points this way before the first is simulated)."""
        from workloads import zoo

        from . import policies
        lookups = [("workload", zoo.info), ("policy", policies.get),
                   ("link", catalog.link), ("inter_node_link", catalog.link),
                   ("host_link", catalog.link), ("host", catalog.host)]
        if not self.hardware.endswith(".toml"):
            lookups.append(("hardware", catalog.device))
        for fname, lookup in lookups:
            value = getattr(self, fname)
            if value is None:
                continue
            try:
                lookup(value)
            except ValueError as exc:
                raise ConfigError(f"{source}: field {fname!r}: {exc}"
                                  f"{_node_type_hint(fname, value)}") from None
        if self.hardware_options:   # checked with the file and table named, before any run
            try:
                resolve_hardware(self.hardware)[0].with_options(**self.hardware_options)
            except ValueError as exc:
                raise ConfigError(f"{source}: [hardware_options] {exc}") from None
        if self.node_type is not None:
            try:
                check_node_device(self.node_type, self.hardware,
                                  resolve_hardware(self.hardware)[0].kind)
            except ValueError as exc:
                raise ConfigError(f"{source}: field 'hardware': {exc}") from None
        if self.gpu_families is not None:
            self._check_gpu_families(source)
        try:
            resolved = policies.get(self.policy).resolve(self.options)
        except ValueError as exc:
            raise ConfigError(f"{source}: [options] {exc}") from None
        limits.check_options(resolved, f"{source}: [options]")
        try:
            check_policy(policies.get(self.policy), FrameworkMemory.parse(self.framework_memory),
                         training=not self.inference)
        except ValueError as exc:
            raise ConfigError(f"{source}: field 'framework_memory': {exc}") from None

    def _check_gpu_families(self, source: str) -> None:
        """The families file loads, and the hardware is a GPU that it costs."""
        from hwmodels.gpu_families_file import load_gpu_families
        try:
            load_gpu_families(self.gpu_families)   # type: ignore[arg-type]
            kind = resolve_hardware(self.hardware)[0].kind
        except ValueError as exc:
            raise ConfigError(f"{source}: field 'gpu_families': {exc}") from None
        if kind != "gpu":
            raise ConfigError(f"{source}: field 'gpu_families' holds GPU constants; hardware "
                              f"{self.hardware!r} is a {kind}")

    # -- running -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The form `dnnsim simulate SCENARIO.toml` accepts (defaults left out)."""
        default = Scenario(self.workload, self.batch, self.hardware, self.policy)
        out = {}
        for k in self.__dataclass_fields__:   # asdict's deep copy, without its cost per point
            v = getattr(self, k)
            if k in REQUIRED or v != getattr(default, k):
                out[k] = copy.deepcopy(v) if isinstance(v, (dict, list)) else v
        return out

    def build_cluster(self) -> Cluster:
        spec, profile = resolve_hardware(self.hardware)
        if self.hardware_options:
            spec = spec.with_options(**self.hardware_options)
        cluster = self._cluster(spec, profile)
        if self.gpu_families is not None:
            from hwmodels.gpu_families_file import use_gpu_families
            use_gpu_families(cluster.devices, self.gpu_families)
        return cluster

    def _cluster(self, spec, profile) -> Cluster:
        layout, jitter = self.layout(), self.jitter_model()
        if self.node_type:
            return Cluster.from_node_type(self.node_type, self.devices, spec,
                                          layout.network, layout.oversubscription,
                                          layout.nodes_per_leaf, profile=profile,
                                          speeds=self.speeds, jitter=jitter)
        return Cluster.build(spec, self.devices, self.link, topology=self.topology,
                             devices_per_node=self.devices_per_node,
                             inter_node_link=self.inter_node_link, host=self.host,
                             host_link=self.host_link, profile=profile,
                             speeds=self.speeds, jitter=jitter, layout=layout)

    def run(self, enforce_memory: bool = True):
        from .api import load_workload, simulate
        graph = load_workload(self.workload, self.batch, **self.workload_options)
        limits.check_count("workload ops", len(graph.ops), limits.MAX_GRAPH_OPS,
                           f"workload {self.workload!r}")
        options, optimizer = dict(self.options), self.optimizer
        if "optimizer" in options:   # a policy's option of that name (fsdp's) is this setting
            given = options.pop("optimizer")
            if optimizer is not None and given != optimizer:
                raise ConfigError(f"optimizer {optimizer!r} and the policy option optimizer "
                                  f"{given!r} disagree: give one")
            optimizer = given
        return simulate(graph, self.build_cluster(), self.policy, batch=self.batch,
                        training=not self.inference, enforce_memory=enforce_memory,
                        precision=self.precision, memory_format=self.memory_format,
                        cudnn_benchmark=self.cudnn_benchmark or None,
                        framework_memory=self.framework_memory, optimizer=optimizer,
                        optimizer_loop=self.optimizer_loop or None, **options)


def read_toml(path: str | Path, what: str, error: type[ConfigError] = ConfigError) -> dict:
    """A TOML file's table, or one clear error naming the file ("scenario file 'x.toml' ...")."""
    p = Path(path)
    check_input_file(p, what, error)
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the text
        return tomllib.loads(p.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise error(f"{what} {str(p)!r} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {str(p)!r} is not valid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{what} {str(p)!r} is nested too deeply to read") from None


def _node_type_hint(field_name: str, value: str) -> str:
    """A node type named where a device goes ("hardware = dgx-h100") is a common slip: say
    which field takes it and which device it holds."""
    from .node_types import node_types
    node = node_types().get(value) if field_name == "hardware" else None
    if node is None:
        return ""
    return (f". {value!r} is a node type: set node_type = {value!r} (--node-type) and "
            f"hardware = {node.gpu!r}")


def resolve_hardware(hardware: str):
    """A catalog name, or a calibrated profile file: (DeviceSpec, Profile or None)."""
    if hardware.endswith(".toml"):
        profile = _load_profile(hardware)
        return catalog.device(profile.device_name), profile
    return catalog.device(hardware), None


# Profiles loaded in this process, by file and version: a profile fits its predictors on first
# use (seconds for a GEMM kind), so each sweep point of a process reuses one fitted profile
# instead of fitting it again. A file changed on disk is loaded again.
_PROFILES: dict[tuple, object] = {}


def _load_profile(path: str):
    from hwmodels.profile import Profile
    try:
        st = os.stat(path)
        key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
    except OSError:
        return Profile.load(path)   # its own error names the file
    if key not in _PROFILES:
        _PROFILES[key] = Profile.load(path)
    return _PROFILES[key]

