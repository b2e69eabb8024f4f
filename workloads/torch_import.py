"""Import a `torch.nn.Module` as an OpGraph, through torch.fx.

The module is traced symbolically, its shapes are propagated once on the example input, and each
fx node is lowered with the GraphBuilder, so every shape is inferred again by the builder and
checked against PyTorch's. Anything not understood raises WorkloadError naming the op and the
module it sits in: an op is never costed at zero by accident.

Lowered: Conv2d, Linear, BatchNorm2d (affine), ReLU, add, max/avg/adaptive-avg pooling, flatten
(and views/reshapes to (batch, features)), cat, Dropout, ChannelShuffle, the channel shuffle written
as view(n, g, c/g, h, w) . transpose(1, 2) . contiguous . view(n, c, h, w), the option-A ResNet
shortcut F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, a, b)) (`pad_channels`), identity, contiguous, and
shape queries (size, shape, dim). torch is imported only when `from_torch` is called.
"""
from __future__ import annotations

import builtins
import inspect
import operator
from dataclasses import dataclass

from .builder import GraphBuilder
from .graph import OpGraph, ShapeError, WorkloadError


@dataclass(frozen=True)
class _Pending:
    """A view that only has a meaning as part of a pattern (a shuffle, a strided subsample)."""
    kind: str                   # "shuffle_split" | "shuffle_transposed" | "subsample"
    source: str                 # the builder tensor it views
    groups: int = 1
    stride: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class _Const:
    """The value of a node that computes a size or another constant, not a tensor."""
    value: object


# Signatures used to bind fx arguments (positional or keyword) by name.
def _sig_add(input, other, alpha=1): ...
def _sig_maxpool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False): ...
def _sig_avgpool(input, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None): ...
def _sig_adaptive(input, output_size): ...
def _sig_flatten(input, start_dim=0, end_dim=-1): ...
def _sig_cat(tensors, dim=0): ...
def _sig_dropout(input, p=0.5, training=True, inplace=False): ...
def _sig_pad(input, pad, mode="constant", value=None): ...
def _sig_transpose(input, dim0, dim1): ...
def _sig_shuffle(input, groups): ...


def _bind(sig, node, env) -> dict:
    """Arguments by name; nodes that computed constants (sizes) are replaced by their values."""
    def resolve(arg):
        if isinstance(arg, (list, tuple)):
            return type(arg)(resolve(a) for a in arg)
        v = env.get(arg) if hasattr(arg, "op") else None
        return v.value if isinstance(v, _Const) else arg
    try:
        bound = inspect.signature(sig).bind(*resolve(tuple(node.args)),
                                            **{k: resolve(v) for k, v in node.kwargs.items()})
    except TypeError as exc:
        raise WorkloadError(f"fx node {node.name!r}: unexpected arguments ({exc})") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def from_torch(module, example_input, name: str | None = None) -> OpGraph:
    """The forward OpGraph of `module` run on `example_input` (one NCHW or (N, F) tensor)."""
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    if not isinstance(module, torch.nn.Module):
        raise WorkloadError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
        raise WorkloadError("from_torch needs one example input tensor with a batch dimension")
    tracer = _path_tracer(torch)()
    try:
        fx_graph = tracer.trace(module)
    except Exception as exc:  # fx raises many kinds of error on untraceable code
        raise WorkloadError(f"torch.fx cannot trace {type(module).__name__}: {exc}") from exc
    gm = torch.fx.GraphModule(tracer.root, fx_graph)

    class _ValueProp(ShapeProp):
        """Shapes of tensors, and the values of everything else (sizes) for the lowering."""

        def run_node(self, n):
            result = super().run_node(n)
            if not isinstance(result, torch.Tensor):
                n.meta["dnnsim_value"] = result
            return result

    modes = {m: m.training for m in module.modules()}
    module.eval()  # why: propagating shapes must not update batch-norm running statistics
    try:
        with torch.no_grad():
            _ValueProp(gm).propagate(example_input)
    except Exception as exc:
        raise WorkloadError(f"{type(module).__name__} does not run on an input of shape "
                            f"{tuple(example_input.shape)}: {exc}") from exc
    finally:
        for m, mode in modes.items():
            m.training = mode
    return _Lowering(torch, gm, example_input, name or type(module).__name__).run()


def _path_tracer(torch):
    class PathTracer(torch.fx.Tracer):
        """Records on each node the path of the module whose forward made it."""

        def __init__(self) -> None:
            super().__init__()
            self._paths = [""]

        def call_module(self, m, forward, args, kwargs):
            self._paths.append(self.path_of_module(m))
            try:
                return super().call_module(m, forward, args, kwargs)
            finally:
                self._paths.pop()

        def create_node(self, *args, **kwargs):
            node = super().create_node(*args, **kwargs)
            node.meta["dnnsim_module_path"] = self._paths[-1]
            return node
    return PathTracer


class _Lowering:
    def __init__(self, torch, gm, example, name: str) -> None:
        from torch.fx.passes.shape_prop import TensorMetadata
        self.torch, self.gm, self.nn = torch, gm, torch.nn
        self.TensorMetadata = TensorMetadata
        self.b = GraphBuilder(name, input_shape=tuple(int(d) for d in example.shape[1:]),
                              batch=int(example.shape[0]), dtype_bytes=example.element_size(),
                              source="torch.fx")
        self.modules = dict(gm.named_modules())
        self.env: dict = {}
        self.called_param_modules: set[str] = set()
        F = torch.nn.functional
        self.functions = {
            F.relu: self._relu, torch.relu: self._relu, torch.relu_: self._relu,
            F.relu_: self._relu, operator.add: self._add, operator.iadd: self._add,
            torch.add: self._add, F.max_pool2d: self._maxpool_fn, F.avg_pool2d: self._avgpool_fn,
            F.adaptive_avg_pool2d: self._adaptive_fn, torch.flatten: self._flatten_fn,
            torch.reshape: self._reshape, torch.cat: self._cat, torch.concat: self._cat,
            F.dropout: self._dropout_fn, F.pad: self._pad, torch.transpose: self._transpose,
            F.channel_shuffle: self._shuffle_fn, torch.channel_shuffle: self._shuffle_fn,
            operator.getitem: self._getitem, builtins.getattr: self._shape_query,
        }
        self.methods = {
            "relu": self._relu, "relu_": self._relu, "add": self._add, "add_": self._add,
            "flatten": self._flatten_fn, "view": self._reshape, "reshape": self._reshape,
            "transpose": self._transpose, "contiguous": self._contiguous,
            "size": self._shape_query, "dim": self._shape_query,
        }

    # -- driver --------------------------------------------------------------------------
    def run(self) -> OpGraph:
        output = None
        for node in self.gm.graph.nodes:
            self.node = node
            if node.op == "placeholder":
                if self.env:
                    raise WorkloadError(f"{self.b.graph.name}: only one input is supported, "
                                        f"found another ({node.name!r})")
                self.env[node] = self.b.input()
            elif node.op == "output":
                output = self.tensor(node.args[0])
            elif node.op in ("call_module", "call_function", "call_method"):
                self.env[node] = self.lower(node)
                self._check_shape(node)
            else:
                raise self.unsupported()
        graph = self.b.build()
        if output != graph.topo()[-1].name:
            raise WorkloadError(f"{graph.name}: the output {output!r} must be the last op "
                                f"computed (ops after it would be counted)")
        return graph

    def lower(self, node):
        if node.op == "call_module":
            return self._lower_module(node, self.modules[node.target])
        table = self.functions if node.op == "call_function" else self.methods
        try:
            handler = table.get(node.target)
        except TypeError:  # an unhashable target
            handler = None
        if handler is None:
            if self._is_shape_arithmetic(node):
                return _Const(node.meta.get("dnnsim_value"))  # e.g. channels // groups
            raise self.unsupported()
        return handler(node)

    def _is_shape_arithmetic(self, node) -> bool:
        inputs: list = []
        self.torch.fx.node.map_arg((node.args, node.kwargs), inputs.append)
        return (self.traced_shape(node) is None
                and all(isinstance(self.env[i], _Const) for i in inputs))

    # -- helpers -------------------------------------------------------------------------
    def where(self) -> str:
        node = self.node
        if node.op == "call_module":
            cls = type(self.modules[node.target])
            what = f"torch.nn.{cls.__name__}" if cls.__module__.startswith("torch.nn") \
                else f"{cls.__module__}.{cls.__qualname__}"
            path = node.target
        elif node.op == "call_method":
            what, path = f"Tensor.{node.target}", node.meta.get("dnnsim_module_path", "")
        else:
            t = node.target
            mod = getattr(t, "__module__", None)
            short = getattr(t, "__name__", repr(t))
            what, path = (f"{mod}.{short}" if mod else short), node.meta.get(
                "dnnsim_module_path", "")
        return f"op {what} at module path {path or '<top>'!r} (fx node {node.name!r})"

    def unsupported(self, why: str = "is not supported") -> WorkloadError:
        return WorkloadError(f"{self.b.graph.name}: {self.where()} {why}")

    def name(self, base: str) -> str:
        """A unique op name: the module path for modules, path.kind for functions."""
        node = self.node
        if node.op == "call_module":
            full = node.target
        else:
            path = node.meta.get("dnnsim_module_path", "")
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
        if isinstance(v, _Pending):
            raise self.unsupported("reads a view/transpose that is not part of a channel shuffle")
        raise self.unsupported(f"needs a tensor argument, got {v!r}")

    def traced_shape(self, node) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta")
        return tuple(int(d) for d in meta.shape) if isinstance(meta, self.TensorMetadata) else None

    def _check_shape(self, node) -> None:
        v, expected = self.env[node], self.traced_shape(node)
        if not isinstance(v, str):
            return
        got = self.b.spec(v).shape
        if expected != got:
            raise ShapeError(f"{self.b.graph.name}: {self.where()}: the builder infers shape "
                             f"{got} but PyTorch gives {expected}")

    # -- modules -------------------------------------------------------------------------
    def _lower_module(self, node, m):
        nn = self.nn
        x = lambda: self.tensor(node.args[0])  # noqa: E731 (read only once we know the kind)
        if isinstance(m, nn.Identity):
            return self.value(node.args[0])
        own_params = sum(p.numel() for p in m.parameters(recurse=False))
        if own_params and node.target in self.called_param_modules:
            raise self.unsupported("is called twice; shared weights are not supported")
        self.called_param_modules.add(node.target)
        name = self.name("")
        if type(m) is nn.Conv2d:
            if m.padding_mode != "zeros" or m.padding == "same":
                raise self.unsupported(f"has padding {m.padding!r} mode {m.padding_mode!r}; "
                                       "only explicit zero padding is supported")
            padding = 0 if m.padding == "valid" else m.padding
            out = self.b.conv2d(x(), m.out_channels, m.kernel_size, stride=m.stride,
                                padding=padding, dilation=m.dilation, groups=m.groups,
                                bias=m.bias is not None, name=name)
        elif type(m) is nn.Linear:
            out = self.b.linear(x(), m.out_features, bias=m.bias is not None, name=name)
        elif type(m) is nn.BatchNorm2d:
            if not m.affine:
                raise self.unsupported("has affine=False; only affine batch norm is supported")
            out = self.b.batchnorm(x(), name=name)
        elif type(m) is nn.ReLU:
            out = self.b.relu(x(), name=name)
        elif type(m) is nn.MaxPool2d:
            out = self._maxpool(x(), m.kernel_size, m.stride, m.padding, m.dilation,
                                m.ceil_mode, m.return_indices, name)
        elif type(m) is nn.AvgPool2d:
            out = self._avgpool(x(), m.kernel_size, m.stride, m.padding, m.ceil_mode, name)
        elif type(m) is nn.AdaptiveAvgPool2d:
            out = self._adaptive(x(), m.output_size, name)
        elif type(m) is nn.Flatten:
            return self._flatten(node.args[0], m.start_dim, m.end_dim, name)
        elif type(m) is nn.Dropout:
            out = self.b.dropout(x(), m.p, name=name)
        elif type(m) is nn.ChannelShuffle:
            out = self.b.channel_shuffle(x(), m.groups, name=name)
        else:
            raise self.unsupported()
        if self.b.graph.op(out).params != own_params:
            raise self.unsupported(f"has {own_params} parameters but is lowered with "
                                   f"{self.b.graph.op(out).params}")
        return out

    # -- layers shared by modules and functions --------------------------------------------
    def _maxpool(self, x, kernel, stride, padding, dilation, ceil_mode, return_indices, name):
        if dilation not in (1, (1, 1)) or ceil_mode or return_indices:
            raise self.unsupported("uses dilation, ceil_mode or return_indices")
        return self.b.maxpool(x, kernel, stride=stride or None, padding=padding, name=name)

    def _avgpool(self, x, kernel, stride, padding, ceil_mode, name):
        if ceil_mode:
            raise self.unsupported("uses ceil_mode")
        return self.b.avgpool(x, kernel, stride=stride or None, padding=padding, name=name)

    def _adaptive(self, x, output_size, name):
        _, _, h, w = self.b.spec(x).shape
        size = (output_size, output_size) if isinstance(output_size, int) else output_size
        size = (size[0] or h, size[1] or w)  # None keeps the input size
        return self.b.adaptive_avgpool(x, size, name=name)

    def _flatten(self, arg, start_dim, end_dim, name):
        x = self.tensor(arg)
        rank = len(self.b.spec(x).shape)
        if start_dim != 1 or end_dim not in (-1, rank - 1):
            raise self.unsupported(f"flattens dims {start_dim}..{end_dim}; only "
                                   "(batch, features) flattening is supported")
        return x if rank == 2 else self.b.flatten(x, name=name)

    # -- functions and methods -----------------------------------------------------------
    def _relu(self, node):
        return self.b.relu(self.tensor(node.args[0]), name=self.name("relu"))

    def _add(self, node):
        a = self.bind(_sig_add, node)
        tensors = [isinstance(self.value(a[k]), (str, _Pending)) for k in ("input", "other")]
        if not all(tensors) or a["alpha"] != 1:
            raise self.unsupported("adds a scalar or scales by alpha; only tensor + tensor "
                                   "is supported")
        return self.b.add(self.tensor(a["input"]), self.tensor(a["other"]), name=self.name("add"))

    def _maxpool_fn(self, node):
        a = self.bind(_sig_maxpool, node)
        return self._maxpool(self.tensor(a["input"]), a["kernel_size"], a["stride"],
                             a["padding"], a["dilation"], a["ceil_mode"], a["return_indices"],
                             self.name("maxpool"))

    def _avgpool_fn(self, node):
        a = self.bind(_sig_avgpool, node)
        return self._avgpool(self.tensor(a["input"]), a["kernel_size"], a["stride"],
                             a["padding"], a["ceil_mode"], self.name("avgpool"))

    def _adaptive_fn(self, node):
        a = self.bind(_sig_adaptive, node)
        return self._adaptive(self.tensor(a["input"]), a["output_size"],
                              self.name("adaptive_avgpool"))

    def _flatten_fn(self, node):
        a = self.bind(_sig_flatten, node)
        return self._flatten(a["input"], a["start_dim"], a["end_dim"], self.name("flatten"))

    def _dropout_fn(self, node):
        a = self.bind(_sig_dropout, node)
        return self.b.dropout(self.tensor(a["input"]), a["p"], name=self.name("dropout"))

    def _shuffle_fn(self, node):
        a = self.bind(_sig_shuffle, node)
        return self.b.channel_shuffle(self.tensor(a["input"]), a["groups"],
                                      name=self.name("channel_shuffle"))

    def _cat(self, node):
        a = self.bind(_sig_cat, node)
        xs = [self.tensor(t) for t in a["tensors"]]
        rank = len(self.b.spec(xs[0]).shape)
        return self.b.concat(xs, dim=a["dim"] % rank, name=self.name("concat"))

    def _reshape(self, node):
        src, out_shape = self.value(node.args[0]), self.traced_shape(node)
        if isinstance(src, _Pending) and src.kind == "shuffle_transposed":
            if out_shape == self.b.spec(src.source).shape:
                return self.b.channel_shuffle(src.source, src.groups,
                                              name=self.name("channel_shuffle"))
            raise self.unsupported("reshapes a transposed view other than back to (n, c, h, w)")
        x = self.tensor(node.args[0])
        in_shape = self.b.spec(x).shape
        if out_shape == in_shape:
            return x
        if len(out_shape) == 2 and out_shape[0] == in_shape[0]:
            return self.b.flatten(x, name=self.name("flatten"))
        if (len(in_shape) == 4 and len(out_shape) == 5 and out_shape[0] == in_shape[0]
                and out_shape[1] * out_shape[2] == in_shape[1] and out_shape[3:] == in_shape[2:]):
            return _Pending("shuffle_split", x, groups=out_shape[1])
        raise self.unsupported(f"reshapes {in_shape} to {out_shape}; only flattening to "
                               "(batch, features) and channel shuffles are supported")

    def _transpose(self, node):
        a = self.bind(_sig_transpose, node)
        src = self.value(a["input"])
        if (isinstance(src, _Pending) and src.kind == "shuffle_split"
                and sorted((a["dim0"] % 5, a["dim1"] % 5)) == [1, 2]):
            return _Pending("shuffle_transposed", src.source, groups=src.groups)
        raise self.unsupported("transposes a tensor outside a channel shuffle")

    def _contiguous(self, node):
        src = self.value(node.args[0])
        return src if isinstance(src, _Pending) else self.tensor(node.args[0])

    def _getitem(self, node):
        src, index = self.value(node.args[0]), node.args[1]
        if not isinstance(src, str):
            if isinstance(src, _Pending):
                raise self.unsupported("indexes a pending view")
            return _Const(node.meta.get("dnnsim_value"))  # e.g. x.size()[0]
        full = slice(None)
        if (isinstance(index, tuple) and len(index) == 4 and index[0] == full
                and index[1] == full and all(isinstance(s, slice) and s.start in (None, 0)
                                             and s.stop is None for s in index[2:])):
            stride = tuple(s.step or 1 for s in index[2:])
            return _Pending("subsample", src, stride=stride)
        raise self.unsupported(f"indexes with {index!r}; only x[:, :, ::s, ::s] is supported")

    def _pad(self, node):
        a = self.bind(_sig_pad, node)
        src = self.value(a["input"])
        pad = tuple(a["pad"])
        if a["mode"] != "constant" or a["value"] not in (None, 0) or len(pad) != 6 or any(pad[:4]):
            raise self.unsupported("pads other than zeros on the channel dimension")
        if isinstance(src, _Pending) and src.kind == "subsample":
            x, stride = src.source, src.stride
        else:
            x, stride = self.tensor(a["input"]), (1, 1)
        return self.b.pad_channels(x, pad[4:], stride, name=self.name("pad_channels"))

    def _shape_query(self, node):
        if self.traced_shape(node) is not None:
            raise self.unsupported("returns a tensor")
        return _Const(node.meta.get("dnnsim_value"))
