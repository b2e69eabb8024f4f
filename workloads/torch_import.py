"""Import a `torch.nn.Module` as an OpGraph, through torch.fx.

The module is traced symbolically, run once on the example input (which may live on the meta
device: only shapes are needed) to record every node's shape, and each fx node is lowered with
the GraphBuilder, so every shape is inferred again by the builder and checked against PyTorch's.
An op that is not understood is never costed at zero: the lowering goes on past it (with a
stand-in of PyTorch's shape) and then raises one WorkloadError that lists every such op of the
model, with the module path it sits at, and names what is supported. A model that does not run
on the input raises PyTorch's own message with the module path where it failed.

Here: `from_torch` and the driver (`_Lowering`); tracing is torch_trace's. The graph's
inputs are made by torch_inputs, what training reads of its outputs by torch_outputs.
Modules are lowered by torch_modules, functions and Tensor methods by torch_functions and
torch_views, the idioms of Hugging Face's and timm's models by torch_import_idioms and
torch_import_tables, layers on parameters read directly by torch_layers, rows of a parameter
table read as data by torch_params, attention and transformers by torch_transformer, a batch
folded with other dimensions by torch_fold (docs/importing.md lists what imports);
describing nodes is torch_trace's too; the state the mixins share is declared by torch_state.
A bare layer (an nn.Conv2d alone) is imported as a one-layer network; a module called more
than once shares its parameters: they are counted at its first call (graph.meta
["shared_params"] maps each later call to it). torch is imported only when `from_torch` is
called.
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import nullcontext

from .builder import GraphBuilder
from .graph import OpGraph, WorkloadError
from .torch_complex import ComplexLowering
from .torch_detection import DENSE_PART, detector_dense_part
from .torch_einsum import EinsumLowering
from .torch_filled import FilledLowering, _Filled
from .torch_fold import FoldLowering
from .torch_functions import FunctionLowering, _bind
from .torch_gates import GateLowering
from .torch_import_idioms import IdiomLowering, _Moved
from .torch_import_tables import TableLowering
from .torch_inputs import InputLowering, _examples, input_names
from .torch_layers import LayerLowering
from .torch_modules import ModuleLowering
from .torch_moe import MOE_ROUTINGS, MoELowering, is_moe_block
from .torch_operands import _Aux, _Expanded
from .torch_outputs import OutputLowering
from .torch_params import ParamViewLowering, _ParamRows
from .torch_recurrent import RecurrentLowering
from .torch_recurrent_cells import CellLowering
from .torch_refusals import RefusalReport
from .torch_selection import SelectionLowering
from .torch_shadow import active_shadow_mode, shadow_mode
from .torch_state import _Unsupported
from .torch_strided import StridedViewLowering
from .torch_trace import (
    _describe,
    _one_input,
    _path_tracer,
    _takes_more_than_one_input,
    _traced,
)
from .torch_transformer import TransformerLowering
from .torch_transformer_layers import TransformerLayerLowering
from .torch_values import _Const, _Pending
from .torch_views import ViewLowering
from .torch_weight_side import WeightSideLowering
from .torch_windows import WindowLowering


def from_torch(module, example_input, name: str | None = None,
               moe_routing: str = "expected") -> OpGraph:
    """The forward OpGraph of `module` run on `example_input`: one tensor with a batch
    dimension (NCHW images, (N, C, L) sequences, (N, F) features or (N, L) token ids), or a
    tuple or list of such tensors, one for each of forward's first parameters (forward(x, t):
    an image and its (N,) timesteps). Each input is an input op of the graph (the first named
    "input", the others by their parameter's name), with the same batch first.
    moe_routing: how a mixture of experts' tokens are costed (workloads/torch_moe.py):
    "expected", each expert gets S x k / E of a sample's tokens; "dense", all of them."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise WorkloadError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    if moe_routing not in MOE_ROUTINGS:
        raise WorkloadError(f"moe_routing {moe_routing!r} is not one of "
                            f"{', '.join(MOE_ROUTINGS)}")
    examples = _examples(torch, example_input)
    example_input = examples[0] if len(examples) == 1 else examples
    name = name or type(module).__name__
    dense = detector_dense_part(torch, module, examples, name)
    if dense is not None:   # a single-stage detector: its dense part (torch_detection)
        graph = from_torch(dense, example_input, name, moe_routing)
        graph.meta["cost_model"] = f"{name}: {DENSE_PART}"
        return graph
    tracer = _path_tracer(torch)()
    root = module
    names = input_names(module, len(examples), name)
    if len(examples) > 1:
        tracer = _one_input(_path_tracer(torch), root, names)()
    elif tracer.is_leaf_module(module, ""):   # a bare layer: trace it as a one-layer network
        root = torch.nn.Sequential(OrderedDict([(type(module).__name__.lower(), module)]))
    elif _takes_more_than_one_input(root):  # forward(x, mask=None): the example alone
        tracer = _one_input(_path_tracer(torch), root)()
    # on the meta device, tensors made from constants keep their values (torch_shadow)
    active = active_shadow_mode(torch)
    with nullcontext(active) if active or not any(x.is_meta for x in examples) \
            else shadow_mode(torch) as shadows:
        gm, tracer = _traced(torch, module, root, tracer, examples, names, name, shadows)
    lowering = _Lowering(torch, gm, examples, name)
    lowering.traced_root = tracer.root   # why: gm holds only what the forward reads
    lowering.moe_routing = moe_routing
    return lowering.run()


class _Lowering(FoldLowering, IdiomLowering, TableLowering, FunctionLowering, ViewLowering,
                LayerLowering, TransformerLowering, TransformerLayerLowering, ParamViewLowering,
                EinsumLowering, WindowLowering, SelectionLowering, StridedViewLowering,
                ModuleLowering, RefusalReport, GateLowering, WeightSideLowering, InputLowering,
                OutputLowering, MoELowering, ComplexLowering, FilledLowering, RecurrentLowering,
                CellLowering):
    NAMED_FUNCTIONS = {**LayerLowering.NAMED_FUNCTIONS, **WindowLowering.NAMED_FUNCTIONS}

    def __init__(self, torch, gm, examples, name: str) -> None:
        # what each attribute holds is declared in torch_state's LoweringState
        from torch.fx.passes.shape_prop import TensorMetadata
        example = examples[0]
        self.examples = examples
        self.torch, self.gm, self.nn = torch, gm, torch.nn
        self.TensorMetadata = TensorMetadata
        floating = example.is_floating_point()
        self.b = GraphBuilder(name, input_shape=tuple(int(d) for d in example.shape[1:]),
                              batch=int(example.shape[0]),
                              # token ids (int64) feed float32 activations
                              dtype_bytes=example.element_size() if floating else 4,
                              source="torch.fx")
        self.modules = dict(gm.named_modules())
        self.example_is_integer = not floating
        self.env = {}
        self.first_call = {}
        self.first_call_ops = {}
        self.refused = []
        self.stand_ins = set()
        self.param_owner = {}
        self.param_holder = {}
        self.frozen_ops = set()
        self.constant_ops = {}
        self.guessed = []
        view_functions, view_methods = self.view_handlers(torch)
        tf_functions, tf_methods, tf_modules = self.transformer_handlers(torch)
        window_functions, window_methods = self.window_handlers(torch)
        idiom_functions, idiom_methods = self.idiom_handlers(torch)
        selection_functions, selection_methods = self.selection_handlers(torch)
        gate_functions, gate_methods, gate_modules = self.gate_handlers(torch)
        self.functions = {**self.function_handlers(torch), **view_functions,
                          **self.layer_handlers(torch), **tf_functions,
                          **self.einsum_handlers(torch), **window_functions,
                          **idiom_functions, **selection_functions, **gate_functions,
                          **self.complex_handlers(torch)}
        self.methods = {**self.method_handlers(), **view_methods, **tf_methods,
                        **window_methods, **idiom_methods, **selection_methods, **gate_methods}
        self.input_name = None
        self.traced_root = gm          # the module traced (from_torch sets it)
        self.rows_nodes = set()
        self.folded = set()
        self.broadcast_views = set()
        self.module_table = {**self.module_handlers(torch.nn), **tf_modules, **gate_modules,
                             **self.recurrent_module_handlers(torch.nn),
                             **self.cell_module_handlers(torch.nn)}

    # -- driver --------------------------------------------------------------------------
    def run(self) -> OpGraph:
        output: str | None = None
        outputs: tuple[str, ...] = ()
        for node in self.gm.graph.nodes:
            self.node = node
            try:
                if node.op == "placeholder":
                    self.env[node] = self._input(node, sum(
                        1 for n in self.env if n.op == "placeholder"))
                elif node.op == "output":
                    output = self.tensor(self._output_node(node.args[0]))
                    outputs = self._output_tensors(node.args[0])
                elif node.op in ("call_module", "call_function", "call_method"):
                    if self._reads_stand_in(node):
                        self.stand_ins.add(node)   # derived from a refused op's stand-in
                    self.env[node] = self.lower(node)
                    self._check_shape(node)
                elif node.op == "get_attr":
                    self.env[node] = self.parameter(node)
                else:
                    raise self.unsupported()
            except WorkloadError as exc:
                # a known op that refuses what it is asked (a mean over the features, a
                # product with a constant table) is listed wherever it sits; one that only
                # fails on a stand-in's tensor fails because of the op refused upstream
                if not (self._reads_stand_in(node) and self._is_known(node)) or \
                        isinstance(exc, _Unsupported):
                    self.refused.append(exc if isinstance(exc, _Unsupported)
                                        else self.unsupported(f"cannot be lowered: {exc}"))
                self.env[node] = self._stand_in(node)
                self.stand_ins.add(node)
        if self.refused:
            raise WorkloadError(self._refusal_message())
        if output is None:   # torch.fx ends every graph with one
            raise WorkloadError("the traced graph has no output node")
        graph = self.with_outputs(self.b.build(), output, outputs)
        if frozen := sorted(n for n in self.frozen_ops if n in graph and graph.op(n).params):
            graph.meta["frozen_params"] = frozen
        if unread := self._unread_parameters():
            graph.meta["unread_params"] = unread
        if self.guessed:   # on the meta device, without the values it needs
            graph.meta["guessed_on_meta"] = list(dict.fromkeys(self.guessed))
        return graph

    def _unread_parameters(self) -> dict[str, int]:
        """Parameter -> elements, of the model's parameters its forward never reads (DINOv2's
        mask token, read only when a mask is given): no op holds them and, as PyTorch's
        optimizers skip a parameter without a gradient, no update steps them."""
        read: set[int] = set()
        for node in self.gm.graph.nodes:
            if node.op == "call_module":
                read.update(id(p) for p in self.modules[node.target].parameters())
            elif node.op == "get_attr":
                value = self.gm
                for part in node.target.split("."):
                    value = getattr(value, part)
                read.add(id(value))
        return {name: p.numel() for name, p in self.traced_root.named_parameters()
                if id(p) not in read}

    def lower(self, node):
        if (folded := self.fold_value(node)) is not None:
            return folded
        if (window := self.window_value(node)) is not None:
            return window
        if (filled := self.filled_value(node)) is not None:
            return filled
        if (idiom := self.idiom_value(node)) is not None:
            return idiom
        if (recurrent := self.recurrent_value(node)) is not None:
            return recurrent
        if node.op == "call_module":
            return self._lower_module(node, self.modules[node.target])
        if self._is_shape_arithmetic(node):
            return _Const(node.meta.get("dnnsim_value"))  # e.g. channels // groups
        if (gathered := self.gathered_value(node)) is not None:
            return gathered
        if (rows := self.param_rows_value(node)) is not None:
            return rows
        if (aux := self.aux_value(node)) is not None:
            return aux
        handler = self._handler(node)
        if handler is None:
            raise self.unsupported()
        return handler(node)

    def _handler(self, node):
        table = self.functions if node.op == "call_function" else self.methods
        try:
            handler = table.get(node.target)
        except TypeError:  # an unhashable target
            return None
        if handler is None and node.op == "call_function":
            t = node.target
            named = self.NAMED_FUNCTIONS.get(f"{getattr(t, '__module__', '')}."
                                             f"{getattr(t, '__name__', '')}")
            handler = getattr(self, named) if named else None
        return handler

    def _is_known(self, node) -> bool:
        if node.op == "call_module":
            m = self.modules[node.target]
            return type(m) in self.module_table or is_moe_block(m)
        return node.op in ("output", "get_attr") or self._handler(node) is not None

    def _reads_stand_in(self, node) -> bool:
        inputs: list = []
        self.torch.fx.node.map_arg((node.args, node.kwargs), inputs.append)
        return any(i in self.stand_ins for i in inputs)

    def _is_shape_arithmetic(self, node) -> bool:
        inputs: list = []
        self.torch.fx.node.map_arg((node.args, node.kwargs), inputs.append)
        return (self.traced_shape(node) is None and "tensor_meta" not in node.meta
                and all(isinstance(self.env[i], _Const) for i in inputs))

    # -- helpers -------------------------------------------------------------------------
    def unsupported(self, why: str = "is not supported") -> _Unsupported:
        what, path = _describe(self.gm, self.node)
        return _Unsupported(what, path, self.node.name, why)

    def name(self, base: str) -> str:
        """A unique op name: the module path for modules, path.kind for functions."""
        node = self.node
        if node.op == "call_module" and not base:
            full = node.target
        else:
            path = node.target if node.op == "call_module" else \
                node.meta.get("dnnsim_module_path", "")
            full = f"{path}.{base}" if path else base
        candidate, n = full, 1
        while candidate in self.b.graph:
            n += 1
            candidate = f"{full}{n}"
        return candidate

    def bind(self, sig, node) -> dict:
        return _bind(sig, node, self.env)

    def value(self, arg):
        return self.env[arg] if isinstance(arg, self.torch.fx.Node) else arg

    def tensor(self, arg) -> str:
        """The builder tensor of an argument; a pending subsample becomes a pad_channels op."""
        v = self.value(arg)
        if isinstance(v, str):
            return v
        if isinstance(v, _Pending) and v.kind == "subsample":
            return self.b.pad_channels(v.source, (0, 0), v.stride, name=self.name("pad_channels"))
        if isinstance(v, _Pending) and v.kind == "shuffle_split":   # no shuffle follows: a view
            n, c, h, w = self.b.spec(v.source).shape
            return self.b.reshape(v.source, (n, v.groups, c // v.groups, h, w),
                                  name=self.name("reshape"))
        if isinstance(v, _Filled):
            return self.filled_tensor(v)
        if isinstance(v, _Pending) and v.kind == "complex":
            raise self.unsupported("computes on a complex tensor; only its product with a "
                                   "complex table of buffers and constants (a rotary "
                                   "embedding's) and view_as_real are supported")
        if isinstance(v, _Pending) and v.kind == "positions":
            raise self.unsupported("reads the positions of a max, min, top-k or sort (int64 "
                                   "indices, written beside the values); no op of the graph "
                                   "computes on positions")
        if isinstance(v, _Pending):
            raise self.unsupported(f"reads a pending view ({v.kind}) that is not part of a "
                                   "channel shuffle, of heads repeated by a reshape or of the "
                                   "four pixels of 2x2 cells concatenated in Swin's order")
        if isinstance(v, _Aux) and (made := self._constant_input(arg, v)) is not None:
            return made
        if isinstance(v, _Aux):
            raise self.unsupported(f"computes with a tensor {v.shape} made of buffers and "
                                   "constants only (such as a rotary embedding's cos and sin "
                                   "tables), which no op kind models; such tensors are "
                                   "supported as masks and biases of attention scores and as "
                                   "the input of a convolution or linear layer")
        if isinstance(v, _Moved):
            raise self.unsupported(f"reads a permute by {v.dims}, moving the batch; only "
                                   "permutes that keep the batch first, or whose pieces along "
                                   "the dimension moved first are taken one by one (unbind(0), "
                                   "[i]) are supported")
        if isinstance(v, _Expanded) and (owner := self.param_owner.get(v.param.target)) and \
                self.b.graph.op(owner).kind == "class_token" and \
                self.b.graph.op(owner).attrs.get("tokens", 1) == 1:
            # the token read again (CaiT's class stream): position 0 of the op holding it
            return self.b.slice(owner, 0, 1, dim=1, name=self.name("token"))
        if isinstance(v, _ParamRows):
            raise self.unsupported(f"reads rows of parameter {v.param.target!r} as data; only "
                                   "rows added to an (N, S, D) sequence (a position or "
                                   "token-type table) are supported")
        raise self.unsupported(f"needs a tensor argument, got {v!r}")

    def _constant_input(self, arg, v: _Aux) -> str | None:
        """A tensor of constants a layer reads (XCiT's and EdgeNeXt's Fourier positional grid
        put through a convolution): a constant_tensor op, made once; None where the reader
        is not a convolution or linear layer, or the tensor's first dimension is neither 1
        nor the batch."""
        reader = self.modules.get(self.node.target) if self.node.op == "call_module" else None
        layers = (self.nn.Conv1d, self.nn.Conv2d, self.nn.Linear)
        if not isinstance(reader, layers) or not v.shape or v.shape[0] not in (1, self.b.batch):
            return None
        if arg not in self.constant_ops:
            self.constant_ops[arg] = self._op("constant_tensor", [], v.shape,
                                              self.name("constant_tensor"))
        return self.constant_ops[arg]

    def traced_shape(self, node) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta")
        return tuple(int(d) for d in meta.shape) if isinstance(meta, self.TensorMetadata) else None

    def known_shape(self, node) -> tuple[int, ...]:
        """The shape PyTorch gave `node`, for an op that cannot be lowered without it."""
        if (shape := self.traced_shape(node)) is None:
            raise self.unsupported(f"needs the shape of fx node {node.name!r}, which the "
                                   "trace did not record (not one tensor)")
        return shape

    def _check_shape(self, node) -> None:
        v, expected = self.env[node], self.traced_shape(node)
        if not isinstance(v, str) or node in self.broadcast_views:
            return
        got = self.b.spec(v).shape
        if expected != got and self.rows_shape_matches(node, got, expected):
            self.rows_nodes.add(node)
        elif expected != got and not self.folded_shape_matches(node, got, expected):
            raise self.unsupported(f"is lowered with shape {got} but PyTorch gives {expected}")
