"""`simulate()`: workload + cluster + policy -> Result."""
from __future__ import annotations

from collections.abc import Mapping

from hwmodels.gpu_layout import memory_formats_for
from workloads import zoo
from workloads.errors import did_you_mean
from workloads.graph import OpGraph, WorkloadError
from workloads.kinds.loss_update import DEFAULT_OPTIMIZER
from workloads.memory_format import check_memory_format, graph_memory_format, with_memory_format
from workloads.precision import DEFAULT_PRECISION, with_precision
from workloads.training import OPTIMIZER_STATE_PER_PARAM as OPTIMIZERS

from . import policies
from .cluster import Cluster
from .framework_memory import (
    FrameworkMemory,
    check_policy,
    framework_memory_of,
    with_framework_memory,
)
from .policies import ConfigError, Plan
from .policies._runs import run_tasks
from .results import Result, model_figures


def load_workload(workload: str | OpGraph, batch: int | None = None,
                  **workload_options) -> OpGraph:
    if isinstance(workload, OpGraph):
        if batch is not None and batch != workload.batch:
            raise ConfigError(f"workload graph {workload.name!r} was built for batch "
                              f"{workload.batch}, not {batch}")
        return workload
    return zoo.get(workload, batch=batch if batch is not None else 1, **workload_options)


def simulate(workload: str | OpGraph, cluster: Cluster, policy: str = "sequential", *,
             batch: int | None = None, training: bool = True, enforce_memory: bool = True,
             workload_options: dict | None = None, precision: str | None = None,
             memory_format: str | None = None,
             cudnn_benchmark: bool | None = None, framework_memory: str | None = None,
             optimizer: str | None = None, optimizer_loop: bool | None = None,
             **options) -> Result:
    """Simulate one step (or the schedule the policy defines) and return its Result.

    workload: a zoo name (with batch and workload_options) or an OpGraph (forward graph).
    precision: fp32 (default), tf32, fp16, bf16, amp-fp16 or amp-bf16 (workloads/precision.py).
    memory_format: nchw (PyTorch's default) or nhwc (channels_last) for the activations
    (workloads/memory_format.py); None keeps the graph's own (nchw unless it says otherwise).
    cudnn_benchmark: whether the step runs PyTorch's cuDNN algorithm search first (its largest
    workspaces stay cached, so reserved memory, which nvidia-smi shows, grows; times do not
    change); None keeps the graph's own setting (off unless graph.meta says so).
    framework_memory: what the framework keeps allocated (simulator/framework_memory.py):
    pytorch (default), cudnn, caffe, torch7 or torch7:share-grad-input; None keeps the graph's
    own.
    optimizer: sgd, sgd-momentum, adam or adamw, whose state a training step keeps and whose
    update it runs; None keeps the graph's own (sgd-momentum unless its meta says otherwise; a
    policy's own optimizer option, fsdp's, wins where given).
    optimizer_loop: torch.optim steps tensor by tensor (foreach=False, PyTorch 1.x's default)
    rather than in its multi-tensor calls (hwmodels/gpu_frameworks.py); None keeps the graph's
    own (meta "optimizer_loop", else the multi-tensor step).
    options: the policy's options (see `dnnsim policies`).
    """
    _check_arguments(workload, cluster, policy, batch, workload_options, options,
                     training=training, enforce_memory=enforce_memory,
                     cudnn_benchmark=cudnn_benchmark, optimizer_loop=optimizer_loop,
                     precision=precision, memory_format=memory_format,
                     framework_memory=framework_memory, optimizer=optimizer)
    graph = load_workload(workload, batch, **(workload_options or {}))
    graph = apply_precision(graph, cluster, precision)
    graph = apply_memory_format(graph, cluster, memory_format)
    if optimizer is not None and graph.meta.get("optimizer") != optimizer:
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got "
                              f"{optimizer!r}{did_you_mean(optimizer, OPTIMIZERS)}")
        graph = graph.copy()   # the caller's graph keeps its own
        graph.meta["optimizer"] = optimizer
    if optimizer_loop is not None and bool(graph.meta.get("optimizer_loop")) != optimizer_loop:
        graph = graph.copy()   # the caller's graph keeps its own setting
        graph.meta["optimizer_loop"] = optimizer_loop
    if cudnn_benchmark is not None and bool(graph.meta.get("cudnn_benchmark")) != cudnn_benchmark:
        graph = graph.copy()   # the caller's graph keeps its own setting
        graph.meta["cudnn_benchmark"] = cudnn_benchmark
    pol = policies.get(policy)
    if framework_memory is not None:
        graph = with_framework_memory(graph, FrameworkMemory.parse(framework_memory))
    check_policy(pol, framework_memory_of(graph), training)
    if training and pol.inference_only:
        raise ConfigError(f"policy {policy!r} simulates inference only; pass training=False "
                          "(--inference)")
    if not training and pol.training_only:
        raise ConfigError(f"policy {policy!r} simulates training only")
    opts = pol.resolve(options)
    if "optimizer" in opts and opts["optimizer"] is None:   # a policy's left unset: the graph's
        opts["optimizer"] = graph.meta.get("optimizer", DEFAULT_OPTIMIZER)
    planned = pol.plan(graph, cluster, training, **opts)
    plan = (planned if isinstance(planned, Plan)
            else Plan(planned, graph, cluster, training, opts))
    tg = plan.tasks
    log = run_tasks(tg, cluster, enforce_memory=enforce_memory)
    log.meta = dict(tg.meta)   # the plan's own figures, for the policy's finalize and reports
    result = Result(policy=policy, workload=graph.name, batch=graph.batch, training=training,
                    cluster=cluster.describe(), options=opts, log=log,
                    samples_per_iteration=int(tg.meta.get("samples", graph.batch)),
                    iterations=int(tg.meta.get("iterations", 1)),
                    **model_figures(graph, cluster, training, plan))
    if log.ok:
        result.iteration_time_override_s = pol.finish(result, plan)
    return result


# what a Cluster holds: given to simulate() as keywords, they would be read as policy options
_CLUSTER_FIELDS = ("hardware", "devices", "link", "topology", "devices_per_node",
                   "inter_node_link", "host_link", "node_type")
_BOOLS = ("training", "enforce_memory")
_OPTIONAL_BOOLS = ("cudnn_benchmark", "optimizer_loop")
_OPTIONAL_NAMES = ("precision", "memory_format", "framework_memory", "optimizer")


def _check_arguments(workload, cluster, policy, batch, workload_options, options: dict,
                     **flags) -> None:
    """simulate()'s arguments, each of the type it takes, named where one is not: a wrong
    type otherwise surfaced deep inside ('str' object has no attribute 'devices'), or was
    taken as true ('no' for training). Values are checked where they are used."""
    def wrong(name: str, want: str, value: object) -> TypeError:
        return TypeError(f"simulate(): {name} must be {want}, got {type(value).__name__} "
                         f"{value!r}")
    if not isinstance(workload, (str, OpGraph)):
        raise wrong("workload", "a zoo name or an OpGraph", workload)
    if not isinstance(cluster, Cluster):
        raise wrong("cluster", "a Cluster (Cluster.build(hardware, devices, link))", cluster)
    if not isinstance(policy, str):
        raise wrong("policy", "a policy name (dnnsim policies)", policy)
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)):
        raise wrong("batch", "a whole number >= 1", batch)
    if batch is not None and batch < 1:
        raise ConfigError(f"simulate(): batch must be >= 1, got {batch}")
    if workload_options is not None and not isinstance(workload_options, Mapping):
        raise wrong("workload_options", "a dict of the network's options", workload_options)
    for name, value in flags.items():
        if name in _BOOLS and not isinstance(value, bool):
            raise wrong(name, "True or False", value)
        if name in _OPTIONAL_BOOLS and value is not None and not isinstance(value, bool):
            raise wrong(name, "True, False or None", value)
        if name in _OPTIONAL_NAMES and value is not None and not isinstance(value, str):
            raise wrong(name, "a name or None", value)
    given = sorted(set(options) & set(_CLUSTER_FIELDS))
    if given:
        raise ConfigError(f"simulate(): {', '.join(given)} belong to the cluster, not the "
                          f"policy's options: pass cluster=Cluster.build(hardware, devices, "
                          f"link, ...)")


def apply_memory_format(graph: OpGraph, cluster: Cluster, memory_format: str | None) -> OpGraph:
    """The graph with its activations in `memory_format` (its own when None), after checking
    that every device of the cluster is modelled in it."""
    try:
        if memory_format is not None:   # None keeps each op's own (an import's channels-last)
            graph = with_memory_format(graph, memory_format)
        memory_format = check_memory_format(graph_memory_format(graph))
    except WorkloadError as exc:
        raise ConfigError(str(exc)) from None
    for device in cluster.devices:
        formats = memory_formats_for(device.spec.kind)
        if memory_format not in formats:
            raise ConfigError(f"device {device.spec.name!r} is a {device.spec.kind}, whose model "
                              f"costs convolutions in its library's own layout: memory format "
                              f"{memory_format} is modelled on GPUs only; it takes: "
                              f"{', '.join(formats)}")
    return graph


def apply_precision(graph: OpGraph, cluster: Cluster, precision: str | None) -> OpGraph:
    """The graph in `precision` (its own, or fp32, when None), after checking that every
    device of the cluster can train in it."""
    precision = precision or graph.meta.get("precision", DEFAULT_PRECISION)
    try:
        graph = with_precision(graph, precision)
    except WorkloadError as exc:
        raise ConfigError(str(exc)) from None
    for device in cluster.devices:
        supported = device.model.supported_precisions()
        if precision not in supported:
            raise ConfigError(f"device {device.spec.name!r} cannot train in {precision}; it "
                              f"can in: {', '.join(supported)}")
    return graph
