"""Import a `torch.nn.Module` as an OpGraph, through torch.fx.

The module is traced symbolically, its shapes are propagated once on the example input, and each
fx node is lowered with the GraphBuilder, so every shape is inferred again by the builder and
checked against PyTorch's. Anything not understood raises WorkloadError naming the op and the
module it sits in: an op is never costed at zero by accident.

Here: `from_torch`, the tracer, the driver (`_Lowering`) and the modules. Lowered modules:
Conv2d, Linear, BatchNorm2d and BatchNorm1d, LayerNorm, GroupNorm, ReLU, the activations of
graph.ACTIVATIONS (Tanh, Sigmoid, SiLU, Hardswish, Hardtanh, ReLU6 as a hardtanh from 0 to 6,
LeakyReLU, ELU, GELU, Hardsigmoid, Mish, SELU, Softplus), MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d, Flatten, Dropout, ChannelShuffle and Identity. Functions and Tensor
methods (relu and the same activations, add, products of tensors, pooling, the mean over
height and width, flatten, views/reshapes that keep the batch, unsqueeze, cat, dropout,
channel shuffles written out as view . transpose . contiguous . view, the option-A ResNet
shortcut F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, a, b)) and shape queries) are lowered by
torch_functions. torch is imported only when `from_torch` is called.
"""
from __future__ import annotations

from .builder import GraphBuilder
from .graph import OpGraph, ShapeError, WorkloadError
from .torch_functions import FunctionLowering, _bind, _Const, _Pending


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


class _Lowering(FunctionLowering):
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
        self.functions = self.function_handlers(torch)
        self.methods = self.method_handlers()

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
        elif type(m) in (nn.BatchNorm2d, nn.BatchNorm1d):   # 1d: (batch, features)
            out = self.b.batchnorm(x(), name=name, affine=m.affine)
        elif type(m) is nn.LayerNorm:
            if m.elementwise_affine and m.bias is None:
                raise self.unsupported("has a scale but no shift (bias=False); only both or "
                                       "neither are modelled")
            out = self.b.layernorm(x(), m.normalized_shape, m.elementwise_affine, name=name)
        elif type(m) is nn.GroupNorm:
            out = self.b.groupnorm(x(), m.num_groups, m.affine, name=name)
        elif type(m) is nn.ReLU:
            out = self.b.relu(x(), name=name, inplace=m.inplace)
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
        elif (act := self._module_activation(m)) is not None:
            out = self._activation(x(), *act, name)
        else:
            raise self.unsupported()
        if self.b.graph.op(out).params != own_params:
            raise self.unsupported(f"has {own_params} parameters but is lowered with "
                                   f"{self.b.graph.op(out).params}")
        return out

    def _module_activation(self, m) -> tuple[str, dict] | None:
        """(kind, attributes) of an activation module, None for any other module."""
        nn = self.nn
        plain = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu",
                 nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.Mish: "mish",
                 nn.SELU: "selu"}
        if type(m) in plain:
            return plain[type(m)], {}
        if type(m) in (nn.Hardtanh, nn.ReLU6):  # ReLU6 is a Hardtanh from 0 to 6
            return "hardtanh", {"min_val": m.min_val, "max_val": m.max_val}
        if type(m) is nn.LeakyReLU:
            return "leaky_relu", {"negative_slope": m.negative_slope}
        if type(m) is nn.ELU:
            return "elu", {"alpha": m.alpha}
        if type(m) is nn.GELU:
            return "gelu", {"approximate": m.approximate}
        if type(m) is nn.Softplus:
            return "softplus", {"beta": m.beta, "threshold": m.threshold}
        return None
