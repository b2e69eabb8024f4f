"""docs/op-kinds.md from the op-kind registry (workloads/kinds/): the record's fields and how
to add a kind are written here; every kind, its cost family, what it saves and the gradient ops
the training lowering makes for it come from the records, and the modules from their
docstrings. docs/generate.py writes the page."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from workloads import kinds
from workloads.graph import MATMUL_KINDS
from workloads.kinds import OpKind, all_kinds, backward_rules

KINDS_DIR = Path(kinds.__file__).resolve().parent

INTRO = """\
# Op kinds

Every op of the IR has a *kind* (`conv2d`, `relu`, `layernorm_grad`, `sgd_update`, ...).
Each kind is declared once, as an `OpKind` record in `workloads/kinds/`, and everything
about it lives in that record:

| field | what it says | who reads it |
|---|---|---|
| `name`, `phase` | the kind, and whether it is a forward, backward or update op | IR |
| `flops`, `macs` | FLOPs (a multiply-add is 2) and multiply-adds of an op, from its shapes and \
attributes | `Op.flops`, `Op.macs` |
| `bytes_read`, `bytes_written`, `reads_params` | traffic (default: the inputs, plus the \
parameters if `reads_params`; the output) | `Op.bytes_*` |
| `view`, `aliases_input` | no kernel and no traffic (a bool, or a rule on the op); a view of \
its input's storage | `Op.is_view`, `training.resolve_view` |
| `saves` | forward tensors the gradient reads: `"in"` (first input), `"in1"`, `"in2"` (the \
others), `"out"` (own output) | `lower_training` |
| `backward` | how the training lowering makes the gradient (`kinds/backward_rules.py`); \
default one `<kind>_grad` op | `lower_training` |
| `carries_params` | a gradient kind that makes its forward op's parameter gradients (its \
update reads it) | `lower_training` |
| `training_attrs`, `saves_mask` | attributes set in a training graph (dropout's `training`); \
an output-sized mask kept for the gradient | `lower_training`, `training_memory` |
| `family` | cost family a device model sets its efficiency by | `hwmodels/families.py` |
| `gemm_shape`, `layout` | what a calibrated profile keys the time on: a GEMM's (m, n, k, ...) \
or a (planes, pixels) layout | `families.point_shape` |
| `param_shapes`, `param_tensors`, `param_init` | parameters as PyTorch holds them, tensors \
the optimizer steps, how a step starts them | replay, `lower_training` |
| `attr_defaults` | for pointwise activations: the attributes and their PyTorch defaults \
| `graph.ACTIVATIONS`, builder |
| `torch_kernel`, `torch_module`, `torch_buffers` | the ATen call a training step makes for \
the op; the function a `GraphModule` runs; buffers it registers | \
`validation/calibrate/torch_ops.py`, `torch_exec.py` |
| `doc` | what the kind computes, one line (the tables below) | this page |

The sets `graph.ALL_KINDS`, `FORWARD_KINDS`, `BACKWARD_KINDS`, `VIEW_KINDS`, `MATMUL_KINDS`,
`graph.ACTIVATIONS` and `hwmodels.families.KIND_FAMILY` are read from the records, so a
declared kind is in them at once. PyTorch is imported only when a kernel is built: the IR,
the lowering and the simulator run without it.

A layer may use another's weight (`GraphBuilder.linear(..., shared_with="wte")`, GPT-2's
tied output layer): `graph.meta["shared_params"]` names the holder; the parameters count once,
the layer reads them (its bytes), its weight gradient joins the holder's single update.
"""

ADDING = """\
## Adding a kind

One `register(...)` call declares the forward kind and its gradient:

```python
from workloads.kinds import OpKind, per_element, register
from workloads.kinds._torch import torch      # imported on first use

register(
    OpKind("square", "elementwise", flops=per_element(1.0), saves=("in",),
           torch_kernel=lambda op, state: torch.square, doc="x * x"),
    OpKind("square_grad", "elementwise", "backward", flops=per_element(2.0),
           torch_kernel=lambda op, state: lambda dy, x: 2 * x * dy),
)
```

`GraphBuilder.op("square", [x])` puts one in a network (add a builder method with shape
inference for a kind you use often); `lower_training` then makes `square_grad` reading the
gradient and the saved input; the device models cost it by its family; calibration replays it
with its kernel. `tests/workloads/test_kinds.py` does exactly this and simulates the result.
A kind declared in `workloads/kinds/` appears on this page when `python docs/generate.py`
rewrites it (`tests/test_docs.py` fails until then).

Checks for a new kind:

- Its family must be one the device models know (`hwmodels.families.FAMILIES`): a new
  family needs efficiencies in every device class, which is a device-model change.
- A forward kind with the default backward needs a `<kind>_grad` kind; `backward_rules.route`
  (no op: the gradient passes through), `input_and_weight` (`_grad_input` and
  `_grad_weight`, as conv and linear) and `per_factor` (one gradient per factor, as `mul`) are
  the other rules; a kind may write its own, calling the `ctx` methods the rules module lists.
  Name the gradient kinds `<kind>_grad...`: this page lists them beside their forward kind.
- `gemm_shape` puts a kind into `MATMUL_KINDS`: profiles then key it on a GEMM shape (as
  they do convolutions and linear layers).
- `gemm_role` (`GemmRole`) says how a kind runs as matrix products: the library ("blas" one
  GEMM, "batched" a strided-batched one, "conv" a cuDNN convolution pass, "sdpa" fused
  attention, "recurrent" cuDNN's RNN steps), the pass (forward, or the gradient of the input
  or of the weight), its `dims(op) -> (m, n, k, batch)` (a "recurrent" kind gives
  `schedule(op) -> SerialSchedule` instead: its steps, each step's products and pointwise
  work) and whether one operand is the op's parameters. The GPU model costs a kind with a
  role as that library's kernels, on tensor cores in a half format
  (`hwmodels/gpu_products.py`); the CPU and ARM models by its family's efficiency, a
  "recurrent" kind step by step (`DeviceModel.serial_time_s`).
- `reserve_bytes(op)`: what the forward keeps for the gradient that is no tensor of the
  graph (cuDNN's RNN reserve space beyond the saved tensors); memory holds it from the op to
  its last gradient op.
- `torch_kernel(op, state)` gets `state` from `validation/calibrate/torch_ops.KernelState`
  (parameters via `state.params_of(op)`, what a forward saves in `state.saved`, weight
  gradients in `state.grads`), or `None` inside a `GraphModule`; a kernel that needs state, or
  differs inside a module (batch norm's running statistics, dropout's training flag), also
  gives `torch_module(op, module, i)`.
- Tests: `tests/workloads/test_kinds.py` checks that every kind has a family, a way to run in
  PyTorch and its gradient kinds.
"""


def _cell(text: str) -> str:
    """One line of a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _first_sentence(text: str) -> str:
    """Up to the first full stop that a capital follows ("et al. 2012" goes on)."""
    paragraph = " ".join(text.split("\n\n")[0].split())
    match = re.match(r"(.+?)\.\s+(?=[A-Z`])", paragraph)
    return (match.group(1) if match else paragraph).rstrip(":.") + "."


def gradient_kinds(forward: OpKind, backward: list[OpKind]) -> list[OpKind]:
    """The backward kinds named after `forward` (`<kind>_grad...`), where no longer forward
    name claims them (`softmax_xent_grad` is the loss's, not softmax's)."""
    forward_names = [k.name for k in all_kinds() if k.phase != "backward"]

    def owner(name: str) -> str | None:
        owners = [f for f in forward_names if name.startswith(f + "_grad")]
        return max(owners, key=len) if owners else None

    return [g for g in backward if owner(g.name) == forward.name]


def _gradient_cell(kind: OpKind, grads: list[OpKind]) -> str:
    if kind.phase == "update":
        return "none (the optimizer step)"
    if kind.backward is backward_rules.route:
        return "routed: dy passes to the inputs, no op"
    names = "; ".join(f"`{g.name}`" + (f" ({g.family})" if g.family != kind.family else "")
                      + (f": {g.doc}" if g.doc else "") for g in grads)
    rule = kind.backward
    if rule is None:
        return names or "none"
    if rule.__module__ == backward_rules.__name__ and not rule.__name__.startswith("_"):
        how = f"`{rule.__name__}`"
    else:
        how = "its own rule"
    return f"{how}: {names}" if names else how


def _kind_tables() -> list[str]:
    every = all_kinds()
    backward = [k for k in every if k.phase == "backward"]
    claimed: set[str] = set()
    rows: dict[str, list[str]] = {}
    for kind in every:
        if kind.phase == "backward":
            continue
        grads = gradient_kinds(kind, backward)
        claimed.update(g.name for g in grads)
        saves = ", ".join(f"`{s}`" for s in kind.saves) or "nothing"
        rows.setdefault(kind.family, []).append(
            f"| `{kind.name}` | {_cell(kind.doc) or '?'} | {saves} | "
            f"{_cell(_gradient_cell(kind, grads))} |")
    for kind in backward:
        if kind.name not in claimed:
            rows.setdefault(kind.family, []).append(
                f"| `{kind.name}` | {_cell(kind.doc) or '?'} (a backward kind of its own) "
                "| nothing | none |")
    lines = ["## Kinds by cost family\n",
             "Forward and update kinds, grouped by the family a device model costs them by; "
             "each row names the forward tensors it saves for its gradient and the gradient "
             "kinds the training lowering makes for it (with their family where it differs), "
             "after the `backward_rules` rule that makes them where it is not the default.\n"]
    for family in sorted(rows):
        lines += [f"### {family}\n", "| kind | what | saves | gradient |", "|---|---|---|---|",
                  *rows[family], ""]
    gemm = ", ".join(f"`{name}`" for name in MATMUL_KINDS)
    lines.append(f"Kinds a profile keys on a GEMM shape (`graph.MATMUL_KINDS`): {gemm}. A "
                 "profile keys every other kind on its (planes, pixels) layout.\n")
    return lines


def _module_list() -> list[str]:
    lines = ["## Modules\n", "The records live in `workloads/kinds/`, a module per family of "
             "kinds:\n"]
    for path in sorted(KINDS_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(), str(path))) or ""
        lines.append(f"- `{path.name}`: {_first_sentence(doc)}")
    return lines + [""]


def op_kinds_page(header: str) -> str:
    return "\n".join([header + INTRO, *_kind_tables(), *_module_list(), ADDING]).rstrip() + "\n"
