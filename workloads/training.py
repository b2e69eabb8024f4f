"""Training lowering: forward graph -> forward + loss + backward + optimizer update.

Every tensor the model returns (graph.meta["outputs"], set by the importer) takes a loss, as a
user's summed loss would; each loss is a root of the backward pass. Backward ops are made in
reverse topological order. Conv and linear split into a gradient of the
input and a gradient of the weight; the first layer makes no gradient of the network input.
Ops that only route gradients (add, flatten, reshape, concat, pad_channels) make no op: their
gradient is the incoming one (a slice of it for concat and pad_channels). A product makes one
`mul_grad` per factor that needs a gradient (dy times the other factor, summed over the
dimensions where the factor broadcast). Arithmetic with a constant routes the gradient when
it adds (x + c) and makes a `scalar_grad` (dy times the constant) when it scales. Dropout
becomes a training dropout (it draws a mask; `dropout_grad` multiplies the gradient by it).
Where a tensor feeds several consumers, their gradient contributions meet in a
`grad_accumulate` op. Each backward op records in `saved` the forward tensors it needs; those
saved activations are what memory, swapping and pipeline stashing see. Each kind's record
(workloads/kinds/) says which rule makes its gradient and what it saves, as PyTorch's ATen
kernels read them; a graph trained by a framework that calls cuDNN directly
(graph.meta["framework_memory"] "cudnn", simulator/framework_memory.py) saves what cuDNN's
backward calls take instead where they differ (`CUDNN_SAVES`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .graph import Op, OpGraph, TensorSpec, WorkloadError
from .kinds import backward_rules, kind_of
from .kinds.loss_update import DEFAULT_OPTIMIZER, OPTIMIZER_STEPS
from .memory_format import memory_format_of
from .precision import is_amp

# the state each optimizer keeps per parameter, in parameter-sized tensors
OPTIMIZER_STATE_PER_PARAM = {name: step.state_tensors for name, step in OPTIMIZER_STEPS.items()}
# graph.meta key naming the framework whose memory a graph trains under (its text form,
# simulator/framework_memory.py); CUDNN: a framework calling cuDNN directly
FRAMEWORK_MEMORY_META = "framework_memory"
CUDNN = "cudnn"
# What a kind's gradient reads under cuDNN where that differs from its record's (ATen's):
# cudnnPoolingBackward takes y, dy and x, so max pooling keeps no indices but keeps its output.
CUDNN_SAVES = {"maxpool": ("in", "out"), "maxpool3d": ("in", "out")}


def calls_cudnn_directly(g: OpGraph) -> bool:
    """Whether `g` runs under a framework that calls cuDNN directly."""
    return str(g.meta.get(FRAMEWORK_MEMORY_META, "")).partition(":")[0] == CUDNN


@dataclass(frozen=True)
class MemoryBreakdown:
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int   # saved forward tensors kept for the backward pass (and the input)

    @property
    def total_bytes(self) -> int:
        return (self.weights_bytes + self.gradients_bytes + self.optimizer_bytes
                + self.activations_bytes)

    def as_dict(self) -> dict:
        return {**self.__dict__, "total_bytes": self.total_bytes}


def lower_training(forward: OpGraph, optimizer: str | None = None,
                   fused_optimizer: bool = False, optimizer_loop: bool | None = None) -> OpGraph:
    """Return a new graph with the loss (added if missing), backward ops and updates.
    optimizer: sgd, sgd-momentum, adam or adamw; None: the one the graph names (meta "optimizer",
    as a scenario sets it), else sgd-momentum. fused_optimizer: the step runs as one fused
    multi-tensor kernel (apex's FusedAdam, as Megatron-LM steps), not as the framework's own
    optimizer (hwmodels/gpu_frameworks.py: OPTIMIZER_STEP). optimizer_loop: torch.optim steps
    tensor by tensor (foreach=False, the default before PyTorch 2.0) rather than in its
    multi-tensor calls; None: as the graph says (meta "optimizer_loop"), else not."""
    if optimizer is None:
        optimizer = forward.meta.get("optimizer", DEFAULT_OPTIMIZER)
    if optimizer_loop is None:
        optimizer_loop = bool(forward.meta.get("optimizer_loop", False))
    if optimizer not in OPTIMIZER_STATE_PER_PARAM:
        raise WorkloadError(f"unknown optimizer {optimizer!r}; known: "
                            f"{', '.join(OPTIMIZER_STATE_PER_PARAM)}")
    if any(op.phase != "forward" for op in forward):
        raise WorkloadError(f"graph {forward.name!r} is already lowered for training")
    g = forward.copy(forward.name, _training_op)
    # ops made here train in the graph's precision and memory format too (workloads/
    # precision.py, memory_format.py)
    stamp = {k: forward.meta[k] for k in ("precision", "memory_format") if k in forward.meta}
    g.meta["training"] = True
    g.meta["optimizer"] = optimizer
    fwd_ops, loss, needs_grad = _add_losses(g, stamp)

    consumers: dict[str, list[str]] = {op.name: [] for op in fwd_ops}
    for op in fwd_ops:
        for src in op.inputs:
            consumers[src].append(op.name)
    # grads[t]: names of backward ops holding a contribution to the gradient of tensor t.
    grads: dict[str, list[str]] = {op.name: [] for op in fwd_ops}

    def grad_of(t: str) -> str | None:
        """One op that holds the whole gradient of t (accumulating several if needed)."""
        parts = grads[t]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        spec = g.op(t).out
        acc = g.add(Op(f"{t}.grad_acc", "grad_accumulate", tuple(parts),
                       tuple(spec for _ in parts), spec, dict(stamp), phase="backward",
                       forward=t))
        grads[t] = [acc.name]
        return acc.name

    # Every other loss nobody reads is a root of the backward pass too (a graph of several
    # subnets sharing a prefix has one loss per leaf; their gradients sum where they meet).
    extra_losses = {op.name for op in fwd_ops
                    if op.kind == "softmax_xent" and op is not loss and not consumers[op.name]}
    ctx = _Lowering(g, grads, needs_grad)
    for op in reversed(fwd_ops):
        if op.kind == "input":
            continue
        is_loss = op is loss or op.name in extra_losses
        dy = None if is_loss else grad_of(op.name)
        if not is_loss and dy is None:
            continue  # output unused by the loss (nothing flows back)
        if op.is_view:          # views, and a dropout of p = 0: dy itself
            backward_rules.route(ctx, op, dy)
        else:
            (op.kind_record.backward or backward_rules.gradient)(ctx, op, dy)

    # a later call of shared weights (meta["shared_params"]: op -> the op holding them)
    # updates only the parameters it holds itself (a masked-LM decoder's bias; none for a
    # module called again): the gradient of the shared weight joins the holder's, summed as
    # autograd sums them (one out-of-place add of the whole table) before the optimizer reads
    # it
    shared = g.meta.get("shared_params", {})
    joins: dict[str, list[str]] = {}
    for fwd_name, gw in ctx.weight_grad_of.items():
        if fwd_name in shared:
            joins.setdefault(shared[fwd_name], []).append(gw)
    stepped = [name for name in ctx.weight_grad_of
               if not (name in shared and not g.op(name).params)]
    # a tied layer's weight is stepped with its holder's
    tensors = {name: param_tensors(g.op(name)) - (name in shared) for name in stepped}
    for fwd_name in stepped:
        fwd, gw = g.op(fwd_name), ctx.weight_grad_of[fwd_name]
        spec = TensorSpec((fwd.params,), _param_width(fwd))
        reads = (gw, *(() if fwd_name in shared else joins.get(fwd_name, ())))
        if len(reads) > 1:
            reads = (g.add(Op(f"{fwd_name}.grad_weight_acc", "grad_accumulate", reads,
                              tuple(spec for _ in reads), spec, dict(stamp),
                              phase="backward", forward=fwd_name)).name,)
        g.add(Op(f"{fwd_name}.update", "sgd_update", reads, tuple(spec for _ in reads), spec,
                 params=fwd.params, phase="update", forward=fwd_name,
                 attrs={"optimizer": optimizer, "tensors": tensors[fwd_name],
                        # what the whole step's multi-tensor calls share out (gpu_frameworks)
                        "step_tensors": sum(tensors.values()),
                        **({"fused_optimizer": True} if fused_optimizer else {}),
                        **({"optimizer_loop": True} if optimizer_loop else {}),
                        **{k: fwd.attrs[k] for k in _UPDATE_INHERITS if k in fwd.attrs}}))
    g.validate()
    return g


def with_losses(forward: OpGraph) -> OpGraph:
    """The forward graph with the loss ops training adds to it (a loss of every tensor the
    model returns): what a measured step runs (validation/calibrate/torch_exec.py)."""
    g = forward.copy(forward.name)
    _add_losses(g, {k: forward.meta[k] for k in ("precision", "memory_format")
                    if k in forward.meta})
    return g


def _add_losses(g: OpGraph, stamp: dict) -> tuple[list[Op], Op, set[str]]:
    """Add the losses to forward graph g: (its forward ops with them, the last output's loss,
    the tensors that need a gradient)."""
    fwd_ops = g.topo()
    last = loss = fwd_ops[-1]
    if loss.kind != "softmax_xent":
        loss = g.add(_loss_op(g, last, "loss", stamp, last=True))
        fwd_ops.append(loss)
    # every other tensor the model returns (meta["outputs"]: a detection head's boxes, an
    # auxiliary classifier) takes its own loss, as a user's summed loss would: each is a root
    # of the backward pass, and the gradients meet where the heads' inputs do
    needs_grad = _tensors_needing_grad(g, fwd_ops)
    for name in g.meta.get("outputs", ()):
        out = g.op(name)
        if name != last.name and out.kind != "softmax_xent" and name in needs_grad:
            fwd_ops.append(g.add(_loss_op(g, out, f"{name}.loss", stamp, last=False)))
    return fwd_ops, loss, needs_grad


def _loss_op(g: OpGraph, logits: Op, name: str, stamp: dict, last: bool) -> Op:
    """A softmax cross-entropy of `logits`: (batch, classes) ones; every position's of a
    language model (meta["token_logits"]); every pixel's or position's of a dense prediction
    ((batch, classes, H, W) or (batch, classes, L): meta["pixel_logits"], or an image map
    beside the last output). Any other returned tensor
    besides the last (a detection head's (batch, queries, 4) boxes, a (batch,) score) is
    costed as a loss over each row of its last dimension."""
    shape = logits.out.shape
    image_in = len(g.input_op.out.shape) == 4
    per_pixel = (len(shape) == 4 and not last and image_in) or \
        (len(shape) in (3, 4) and g.meta.get("pixel_logits") and last)
    # a model returning several tensors (DETR's (N, queries, classes) logits and boxes) has
    # each costed per row of its last dimension, the last one too
    per_row = (len(shape) >= 2 and g.meta.get("token_logits")) or \
        ((not last or len(g.meta.get("outputs", ())) > 1) and shape)
    if not (len(shape) == 2 or per_pixel or per_row):
        what = "the last output" if last else f"the returned tensor {logits.name!r}"
        raise WorkloadError(f"graph {g.name!r}: {what} ({logits.kind!r}) has shape {shape}; "
                            "training needs (batch, classes) logits")
    # an AMP loss runs in FP32 (autocast's float32 list: workloads/precision.py)
    width = 4 if is_amp(stamp.get("precision", "fp32")) else logits.out.dtype_bytes
    return Op(name, "softmax_xent", (logits.name,), (logits.out,), TensorSpec((1,), width),
              {"classes": shape[1 if per_pixel else -1], **stamp,
               **({"class_dim": 1} if per_pixel else {})})


# what an optimizer step takes from its layer: the precision it trains in, the width of the
# master weights it updates (workloads/precision.py) and the graph's memory format
_UPDATE_INHERITS = ("precision", "param_dtype_bytes", "memory_format")


class _Lowering:
    """What a kind's backward rule (workloads/kinds/backward_rules.py) works with."""

    def __init__(self, g: OpGraph, grads: dict[str, list[str]], needs_grad: set[str]) -> None:
        self.g, self.grads, self._needs_grad = g, grads, needs_grad
        self._cudnn = calls_cudnn_directly(g)
        self.weight_grad_of: dict[str, str] = {}
        # (tensor, op holding dy) where the tensor's gradient is a strided slice of dy
        self.strided: set[tuple[str, str]] = set()

    def needs_grad(self, t: str) -> bool:
        return t in self._needs_grad

    def add_grad(self, t: str, name: str, strided: bool = False) -> None:
        """Op `name` holds (a contribution to) the gradient of t; strided: t's is a slice of
        it that is not contiguous in memory (a concat's input)."""
        self.grads[t].append(name)
        if strided:
            self.strided.add((t, name))

    def memory_format(self, op: Op) -> str:
        return memory_format_of(op)

    def saved(self, op: Op) -> tuple[str, ...]:
        saves = (CUDNN_SAVES.get(op.kind, op.kind_record.saves) if self._cudnn
                 else op.kind_record.saves)
        return tuple(op.name if s == "out" else op.inputs[int(s[2:] or 0)] for s in saves)

    def spec(self, t: str) -> TensorSpec:
        return self.g.op(t).out

    def param_grad_spec(self, op: Op) -> TensorSpec:
        """The flat gradient of op's weights: of the weights it shares, for a later call of
        shared weights (meta["shared_params"]: GPT-2's output layer reads the embedding's),
        followed by those it holds itself (a masked-LM decoder's bias)."""
        holder = self.g.meta.get("shared_params", {}).get(op.name)
        owner = self.g.op(holder) if holder else op
        own = op.params if holder else 0
        return TensorSpec((max(owner.params + own, 1),), _param_width(owner))

    def flat_spec(self, size: int, op: Op) -> TensorSpec:
        return TensorSpec((size,), op.out.dtype_bytes)

    def trains(self, op: Op) -> bool:
        return trains(self.g, op)

    def weight_grad(self, fwd: str, name: str) -> None:
        self.weight_grad_of[fwd] = name

    def grad_op(self, name: str, kind: str, fwd: Op, reads: list[str], out: TensorSpec,
                saved: tuple[str, ...], dy: str | None, **attrs) -> str:
        # The gradient of fwd's output has fwd's output shape, whichever op holds it.
        specs = tuple(fwd.out if r == dy else self.g.op(r).out for r in reads)
        if dy is not None and (fwd.name, dy) in self.strided:
            # the first op to read a strided slice of dy: a framework that makes it
            # contiguous copies it before this op's kernel (GPUModel.kernel_options)
            self.strided.discard((fwd.name, dy))
            attrs = {**attrs, "dy_strided": True}
        op = self.g.add(Op(name, kind, tuple(reads), specs, out, attrs={**fwd.attrs, **attrs},
                           params=fwd.params if kind_of(kind).carries_params
                           and self.trains(fwd) else 0,
                           phase="backward", forward=fwd.name, saved=saved))
        for t in saved:
            self.g.add_dependency(t, name)
        return op.name


def _param_width(op: Op) -> int:
    """Bytes per parameter, hence per weight gradient (FP32 under AMP: autograd casts the
    half gradient back to the master weight's type)."""
    return int(op.attrs.get("param_dtype_bytes", op.out.dtype_bytes))


def param_tensors(op: Op) -> int:
    """How many parameter tensors a forward op holds: an optimizer steps each one apart, so
    a tiny layer's update costs per tensor, not per value."""
    return op.kind_record.parameter_tensors(op)


def _training_op(op: Op) -> Op:
    """A forward op as it runs in a training graph (a dropout draws its mask there)."""
    extra = op.kind_record.training_attrs
    if not extra:
        return op
    return dataclasses.replace(op, attrs={**op.attrs, **extra})


def _tensors_needing_grad(g: OpGraph, fwd_ops: list[Op]) -> set[str]:
    """Tensors downstream of a trained parameter (the input, constant-only and frozen paths
    need no gradient); an op calling shared weights holds a parameter too."""
    needs: set[str] = set()
    for op in fwd_ops:
        if trains(g, op) or any(i in needs for i in op.inputs):
            needs.add(op.name)
    return needs


def trains(g: OpGraph, op: Op) -> bool:
    """Whether forward op `op` holds (or shares) parameters that get a gradient and an update:
    not a layer whose weight is a constant (a buffer: timm's BlurPool filter), nor one whose
    parameters the user froze (requires_grad=False: graph.meta["frozen_params"])."""
    shared, frozen = g.meta.get("shared_params", {}), g.meta.get("frozen_params", ())
    return bool(op.params or op.name in shared) and op.name not in frozen and \
        shared.get(op.name) not in frozen


def training_memory(train: OpGraph, optimizer: str | None = None) -> MemoryBreakdown:
    """Static training memory: weights, gradients, optimizer state, saved activations."""
    if not train.meta.get("training"):
        raise WorkloadError(f"graph {train.name!r} is not a training graph; "
                            "use lower_training() first")
    optimizer = optimizer or train.meta.get("optimizer", "sgd-momentum")
    param_bytes = sum(op.param_bytes for op in train.phase("forward"))
    # frozen parameters are held, with no gradient and no optimizer state
    trained_bytes = sum(op.param_bytes for op in train.phase("forward") if trains(train, op))
    saved: set[str] = set()
    for op in train.phase("backward"):
        saved.update(op.saved)
    saved.update(op.name for op in train if op.kind == "input")   # each input a step reads
    act = sum(resolve_view(train, t).out.nbytes for t in {resolve_view(train, t).name
                                                           for t in saved})
    # a training dropout keeps its mask (not a graph tensor) for its gradient
    act += sum(op.out.nbytes for op in train.phase("forward")
               if op.kind_record.saves_mask and not op.is_view)
    # a recurrent layer keeps cuDNN's reserve space beyond its saved tensors
    differentiated = {op.forward for op in train.phase("backward")}
    act += sum(int(op.kind_record.reserve_bytes(op)) for op in train.phase("forward")
               if op.kind_record.reserve_bytes is not None and op.name in differentiated)
    return MemoryBreakdown(
        weights_bytes=param_bytes,
        gradients_bytes=trained_bytes,
        optimizer_bytes=trained_bytes * OPTIMIZER_STATE_PER_PARAM[optimizer],
        activations_bytes=act,
    )


def resolve_view(g: OpGraph, name: str) -> Op:
    """The op that owns the storage of tensor `name` (a view's source, followed back)."""
    op = g.op(name)
    while op.kind_record.aliases_input and op.is_view and op.inputs:
        op = g.op(op.inputs[0])
    return op
