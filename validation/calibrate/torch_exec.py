"""Run an OpGraph for real in PyTorch: the whole network (inference, training step) and each op.

The same graph is simulated and measured: `GraphModule` is built op by op from the forward
OpGraph's attributes, so there is no second model definition to drift.

    module = GraphModule(zoo.get("resnet20", batch=32))
    step_s = time_step(graph, training=True).median_s       # forward + backward + SGD step
    op_s = measure(op_callable(train_graph.op("layer1.0.conv1.grad_input")), dev).min_s

Ops run the ATen kernel autograd calls for them (validation/calibrate/torch_ops.py), alone
(op_callable) or inside a replayed step (validation/calibrate/replay.py, what calibration uses).
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from workloads.graph import Op, OpGraph, WorkloadError
from workloads.kinds.loss_update import LR, MOMENTUM, as_rows, loss_rows
from workloads.training import with_losses

# Calibration and validation count a measured time as the median of its samples: the fastest
# of many samples undercuts the fastest of a few (a machine's speed drifts over minutes), so a
# minimum depends on how many were taken, a median does not (journal.records_of_replay).
# (Allocator page faults, which slowed single ops by up to 3x at random, are switched off:
# see steady_allocator.)
STATISTICS = ("min", "mean", "median")


@dataclass(frozen=True)
class Timing:
    median_s: float
    samples_s: tuple[float, ...]

    @property
    def min_s(self) -> float:
        return min(self.samples_s)

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.samples_s)

    def get(self, statistic: str) -> float:
        """`mean`, `median` or `min` (the fastest sample)."""
        if statistic not in STATISTICS:
            raise WorkloadError(f"statistic must be one of {', '.join(STATISTICS)}, "
                                f"got {statistic!r}")
        return {"mean": self.mean_s, "median": self.median_s, "min": self.min_s}[statistic]


def resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise WorkloadError(f"--device must be cpu or cuda, got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise WorkloadError("--device cuda: no CUDA device is available to this PyTorch")
    return dev


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4   # glibc mallopt parameters


def steady_allocator() -> bool:
    """Stop glibc's malloc from returning freed memory to the OS, for this process.

    Why: by default glibc unmaps large freed blocks and trims the heap, and when it does so
    depends on the process's history; the next allocation then faults its pages in again, at
    about 2 us per 4 KiB page on a VM. A training step or an op then costs 0-10% (an op up to
    3x) more at random, which neither a model nor a calibration can know. Measurements here
    therefore run with the allocator a tuned CPU deployment has (jemalloc or tcmalloc keep
    memory too). Returns False where the C library is not glibc (nothing changed)."""
    global _STEADY
    if _STEADY is None:
        import ctypes
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            _STEADY = False
        else:
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _STEADY = bool(mallopt(_M_MMAP_MAX, 0)) and bool(
                mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _STEADY


_STEADY: bool | None = None


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure(fn: Callable[[], object], dev: torch.device, warmup: int = 2, reps: int = 7,
            min_total_s: float = 0.0, setup: Callable[[], object] | None = None) -> Timing:
    """Wall times of fn() over `reps` calls (more while the total is under min_total_s),
    after `warmup` calls; `setup` runs untimed before each timed call."""
    for _ in range(warmup):
        fn()
    _sync(dev)
    samples: list[float] = []
    total = 0.0
    while len(samples) < reps or (total < min_total_s and len(samples) < 50 * reps):
        if setup is not None:
            setup()
            _sync(dev)
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        dt = time.perf_counter() - t0
        samples.append(dt)
        total += dt
    return Timing(statistics.median(samples), tuple(samples))


# -- parameters ----------------------------------------------------------------------------
def param_shapes(op: Op) -> list[tuple[int, ...]]:
    """The parameter tensors of a forward op (weight first, then bias), as PyTorch holds them
    (the kind's record says)."""
    shapes = op.kind_record.param_shapes
    if shapes is None:
        if op.params:
            raise WorkloadError(f"op {op.name!r}: kind {op.kind!r} has parameters that "
                                f"torch_exec cannot build")
        return []
    return shapes(op)


def initial_params(op: Op, gen: torch.Generator, dev) -> list[torch.Tensor]:
    """A forward op's parameters as a step starts them: He-normal weights, zero biases, batch
    norm's scale 1 and shift 0. The replay starts from the same values: how often a max-pool's
    comparisons branch, and so its time, depends on the values it pools (random biases of
    scale 1 made LeNet-5's pools 30% faster in replay than in the step). Normalisations'
    scales start at 1 and shifts at 0."""
    out = []
    for j, shape in enumerate(param_shapes(op)):
        if op.kind_record.param_init == "scale_shift":
            out.append((torch.ones if j == 0 else torch.zeros)(shape, device=dev))
        elif j == 1:
            out.append(torch.zeros(shape, device=dev))
        else:
            fan_in = math.prod(shape[1:])
            out.append((torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5).to(dev))
    return out


class GraphModule(torch.nn.Module):
    """A torch.nn.Module that runs a forward OpGraph op by op. Its output is the last op's
    tensor: the logits, or the loss when the graph ends in softmax_xent (then `targets`); the
    sum of its losses where several are read by nothing (workloads.training.with_losses of a
    model that returns several tensors)."""

    def __init__(self, graph: OpGraph, device="cpu", seed: int = 0) -> None:
        super().__init__()
        if any(op.phase != "forward" for op in graph):
            raise WorkloadError(f"graph {graph.name!r}: GraphModule runs a forward graph; "
                                f"pass the graph before lower_training")
        self.graph = graph
        self.ops = graph.topo()
        self._inputs = input_names(graph)
        self._free_after = free_after(self.ops)
        dev = resolve_device(device)
        gen = torch.Generator().manual_seed(seed)
        self.weights = torch.nn.ParameterDict()
        index = {op.name: i for i, op in enumerate(self.ops)}
        # a later call of shared weights reads its holder's parameters (meta["shared_params"])
        self._holder = {index[op]: index[holder]
                        for op, holder in graph.meta.get("shared_params", {}).items()}
        for i, op in enumerate(self.ops):
            if i in self._holder and not op.params:
                continue
            for j, t in enumerate(initial_params(op, gen, dev)):
                if i in self._holder and j == 0:
                    continue   # a tied layer's weight is its holder's; its bias its own
                self.weights[f"p{i}_{j}"] = torch.nn.Parameter(t)
            buffers = op.kind_record.torch_buffers
            for prefix, t in (buffers(op, dev) if buffers else ()):
                self.register_buffer(f"{prefix}{i}", t)
        self._run = [_module_fn(op, self, i) for i, op in enumerate(self.ops)]
        read = {t for op in self.ops for t in op.inputs}
        self._loss_roots = [op.name for op in self.ops
                            if op.kind == "softmax_xent" and op.name not in read]
        last = self.ops[-1]
        logits = last.in_specs[0] if last.kind == "softmax_xent" else last.out
        n, classes = loss_rows(logits.shape), logits.shape[-1]
        self.register_buffer("targets", torch.randint(0, classes, (n,), generator=gen).to(dev))

    def _p(self, i: int, j: int):
        own = f"p{i}_{j}"
        return self.weights[own] if own in self.weights else \
            self.weights.get(f"p{self._holder.get(i, i)}_{j}")

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """The graph run on its inputs, in the order of its input ops (one for most)."""
        # each output is dropped after its last reader, as an idiomatic module's locals are:
        # kept to the end of the forward, they would change which memory later ops write
        # to (cold instead of just freed), and slow a LeNet step by 5-10%
        env: dict[str, torch.Tensor] = {}
        given = dict(zip(self._inputs, xs, strict=True))
        for i, op in enumerate(self.ops):
            ins = [env[n] for n in op.inputs]
            for n in self._free_after[i]:
                del env[n]
            run = self._run[i]   # None for an input
            y = given[op.name] if run is None else run(ins)
            env[op.name] = y
        if len(self._loss_roots) > 1:   # loss_a + loss_b, as a user sums them
            return sum(env[name] for name in self._loss_roots)  # type: ignore[return-value]
        return env[self.ops[-1].name]


def _module_fn(op: Op, module: GraphModule, i: int) -> Callable | None:
    """fn(inputs) running op i inside `module`: the kind's module function, or its kernel
    where that keeps nothing between ops (workloads/kinds/)."""
    k = op.kind_record
    if op.kind == "input":
        return None
    if k.torch_module is not None:
        return k.torch_module(op, module, i)
    if k.torch_kernel is None:
        raise WorkloadError(f"op {op.name!r}: torch_exec cannot run kind {op.kind!r}")
    kernel = k.torch_kernel(op, None)
    return lambda ins: kernel(*ins)


def free_after(ops) -> list[list[str]]:
    """For each op of a topological order, the tensors whose last reader it is: what a step
    (autograd, or an idiomatic module's locals) frees once that op has read them."""
    last_read: dict[str, int] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            last_read[t] = i
    out: list[list[str]] = [[] for _ in ops]
    for t, i in last_read.items():
        out[i].append(t)
    return out


def example_input(graph: OpGraph, device="cpu", seed: int = 1) -> torch.Tensor:
    """Random values of the input's shape, or random token ids for a sequence model."""
    return example_inputs(graph, device, seed)[0]


def example_inputs(graph: OpGraph, device="cpu", seed: int = 1) -> tuple[torch.Tensor, ...]:
    """An example of each input of the graph, in the order GraphModule takes them."""
    gen = torch.Generator().manual_seed(seed)
    dev = resolve_device(device)
    return tuple(torch.randint(0, op.attrs["tokens"], op.out.shape, generator=gen).to(dev)
                 if op.out.integer else torch.randn(op.out.shape, generator=gen).to(dev)
                 for op in map(graph.op, input_names(graph)))


def input_names(graph: OpGraph) -> list[str]:
    """The graph's input ops in the order the model takes them (the order they were made)."""
    return [op.name for op in graph if op.kind == "input"]


# -- whole steps ---------------------------------------------------------------------------
def step_function(module: torch.nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...],
                  training: bool, loss_fn: Callable | None = None) -> Callable[[], object]:
    """A zero-argument callable running one inference pass or one training step (forward,
    loss, loss.backward(), SGD-momentum update) of `module` on `x` (a tuple: its inputs)."""
    xs = x if isinstance(x, tuple) else (x,)
    if not training:
        module.eval()

        def infer():
            with torch.no_grad():
                return module(*xs)
        return infer
    module.train()
    opt = torch.optim.SGD(module.parameters(), lr=LR, momentum=MOMENTUM)

    def train_step():
        opt.zero_grad(set_to_none=True)
        out = module(*xs)
        if loss_fn is not None:
            loss = loss_fn(out)
        else:  # a GraphModule: its loss op, or cross-entropy of its logits
            loss = out if out.dim() == 0 else F.cross_entropy(as_rows(out), module.targets)
        loss.backward()
        opt.step()
        return loss
    return train_step


def graph_step(graph: OpGraph, training: bool = True, device="cpu",
               seed: int = 0) -> Callable[[], object]:
    """One training step (or inference pass) of a forward graph, as a training loop runs it:
    the module and its optimizer are built once, and each call is the loop's next step. A
    training step sums a loss of every tensor the model returns, as lower_training does."""
    steady_allocator()
    dev = resolve_device(device)
    module = GraphModule(with_losses(graph) if training else graph, dev, seed)
    return step_function(module, example_inputs(graph, dev), training)


def module_step(module: torch.nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...],
                training: bool = True, seed: int = 0) -> Callable[[], object]:
    """The same for any module that maps x (a tuple: its inputs) to logits, or to a tuple or
    dict of tensors. A training step sums a cross-entropy against fixed random targets over
    every tensor returned that needs a gradient, as workloads/training.py costs it: per pixel
    for an (N, C, H, W) map of an image, else over each row of the last dimension ((batch,
    classes) logits, a language model's every position)."""
    steady_allocator()
    first = x[0] if isinstance(x, tuple) else x
    with torch.no_grad():
        shapes = [tuple(t.shape) for t in
                  returned_tensors(module.eval()(*(x if isinstance(x, tuple) else (x,))))]
    gen = torch.Generator().manual_seed(seed)
    image = first.dim() == 4
    targets = [torch.randint(0, s[1], (s[0], *s[2:]), generator=gen).to(first.device)
               if image and len(s) == 4 else
               torch.randint(0, s[-1], (loss_rows(s),), generator=gen).to(first.device)
               for s in shapes]

    def summed_loss(out):
        losses = [F.cross_entropy(t if image and t.dim() == 4 else as_rows(t), target)
                  for t, target in zip(returned_tensors(out), targets, strict=True)
                  if t.requires_grad]
        return sum(losses[1:], losses[0])
    return step_function(module, x, training, summed_loss)


def returned_tensors(out) -> list[torch.Tensor]:
    """The floating tensors a module returns (of a tuple, list or dict, such as Hugging
    Face's ModelOutput, in the order returned; each once)."""
    found: list[torch.Tensor] = []
    stack = [out]
    while stack:
        item = stack.pop(0)
        if isinstance(item, torch.Tensor):
            if item.is_floating_point() and all(item is not t for t in found):
                found.append(item)
        elif isinstance(item, dict):
            stack[:0] = list(item.values())
        elif isinstance(item, (tuple, list)):
            stack[:0] = list(item)
    return found


# Why steps are timed in a persistent loop: a training loop keeps its optimizer (its momentum
# buffers) and settles its allocator; rebuilding the optimizer for every few timed steps
# measured 3-4% slower steps than the loop itself (held-out modules, 2-vCPU EPYC).
def time_step(graph: OpGraph, training: bool = True, device="cpu", warmup: int = 2,
              reps: int = 5, seed: int = 0) -> Timing:
    """Measured time of one training step (or inference pass) of a forward graph."""
    return measure(graph_step(graph, training, device, seed), resolve_device(device), warmup,
                   reps)


def time_module(module: torch.nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...],
                training: bool = True, warmup: int = 2, reps: int = 5,
                seed: int = 0) -> Timing:
    """Measured step of any module (module_step's)."""
    first = x[0] if isinstance(x, tuple) else x
    return measure(module_step(module, x, training, seed), first.device, warmup, reps)
