"""Tracing a module for torch_import: the fx tracer that records module paths, the run on
the example input that records every node's shapes (and, for integer tensors, what ids they
hold), and torch.fx's own refusals told with the module path, the model's line and, where
the cause is one fx cannot trace, the fix. torch is passed in, never imported here."""
from __future__ import annotations

import os
import traceback
from typing import Any

from .graph import WorkloadError
from .torch_inputs import _inputs_text
from .torch_moe import is_moe_block, run_moe_block
from .torch_params import index_pattern
from .torch_recurrent import PACKED

# Integer tensors up to this many elements keep their values from the traced run: the rows a
# gather or an index_select picks by an index made from buffers and constants.
_INDEX_VALUES_KEPT = 1 << 16


class _RunError(Exception):
    """The model itself failed on the example input, at one node."""

    def __init__(self, node, exc: Exception) -> None:
        super().__init__(str(exc))
        self.node, self.exc = node, exc


def _trace_failure(torch, name: str, tracer, exc: Exception) -> str:
    """torch.fx's refusal, with the module path and the model's own line where tracing
    stopped, and the fix where the cause is one fx cannot trace (iterating a traced tensor)."""
    torch_dir = os.path.dirname(torch.__file__)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(torch_dir) and f.filename != __file__]
    line = f", {os.path.basename(frames[-1].filename)} line {frames[-1].lineno}: " \
        f"{(frames[-1].line or '').strip()}" if frames else ""
    where = f"at module path {tracer.failed_at or '<top>'!r}{line}"
    if any(f.filename == torch.nn.utils.rnn.__file__
           for f in traceback.extract_tb(exc.__traceback__)):   # packing a sequence
        return f"{name} {where}: {PACKED}"
    if isinstance(exc, torch.fx.proxy.TraceError) and "cannot be iterated" in str(exc):
        return (f"torch.fx cannot trace {name} {where}: a loop or generator over a traced "
                "tensor (such as the pieces of split or chunk) is a limit of torch.fx; unpack "
                "or index the pieces first (q, k, v = x.split(n, dim=2)), then use each")
    return f"torch.fx cannot trace {name} {where}: {type(exc).__name__}: {exc}"


def _value_prop(torch, shadows=None):
    """The interpreter that records shapes and values; on the meta device, `shadows` (a
    torch_shadow mode) gives the values of tensors made from constants."""
    from torch.fx.node import map_aggregate
    from torch.fx.passes.shape_prop import _extract_tensor_metadata

    interpreter: Any = torch.fx.Interpreter   # a class of the torch passed in

    class ValueProp(interpreter):
        """Records each node's tensor shapes, and the values of everything else (sizes)."""

        def call_function(self, target, args, kwargs):
            # why: fx hands lists as immutable lists, which a model's function may change in
            # place (torchvision's Swin3D, _get_window_and_shift_size)
            def plain(a):
                return [plain(v) for v in a] if isinstance(a, list) else a
            return super().call_function(target, tuple(plain(a) for a in args), kwargs)

        def call_module(self, target, args, kwargs):
            module = self.fetch_attr(target)
            if is_moe_block(module):
                return run_moe_block(torch, module, args, kwargs)
            return super().call_module(target, args, kwargs)

        def run_node(self, n):
            try:
                result = super().run_node(n)
            except _RunError:
                raise
            except Exception as exc:  # the model's own error, with the node it came from
                raise _RunError(n, exc) from exc
            found = []

            def record(v):   # a tensor's metadata, noting that one was found
                if not isinstance(v, torch.Tensor):
                    return v
                found.append(v)
                return _extract_tensor_metadata(v)
            meta = map_aggregate(result, record)
            if found:
                n.meta["tensor_meta"] = meta
            if not isinstance(result, torch.Tensor):
                n.meta["dnnsim_value"] = result
            else:
                known = shadows.values(result) if result.is_meta and shadows else None
                values = result if known is None else known   # on meta: made of constants
                if known is not None:   # a constant fx baked in (get_attr) reads them here
                    n.meta["dnnsim_shadow"] = known
                n.meta["dnnsim_ids"] = index_pattern(values)   # for a lookup by a buffer
                if not values.is_floating_point() and not values.is_meta and \
                        values.numel() <= _INDEX_VALUES_KEPT:   # rows a gather picks
                    n.meta["dnnsim_index"] = values.detach().clone()
                args: list = []
                torch.fx.node.map_aggregate((n.args, n.kwargs), args.append)
                inputs = [self.env[a] for a in args if isinstance(a, torch.fx.Node)]
                # whether PyTorch made a view (or returned an input) rather than a copy
                n.meta["dnnsim_alias"] = result._is_view() or any(result is t for t in inputs)
            return result
    return ValueProp


def _path_tracer(torch):
    tracer: Any = torch.fx.Tracer   # a class of the torch passed in

    class PathTracer(tracer):
        """Records on each node the path of the module whose forward made it."""

        # buffers read in the forward are traced values, so a buffer sliced by a size of the
        # input (self.position_ids[:, :seq], self.mask[:, :, :T, :T]) traces
        proxy_buffer_attributes = True

        def __init__(self) -> None:
            super().__init__()
            self._paths = [""]
            self.failed_at: str | None = None    # the innermost module where tracing failed

        def call_module(self, m, forward, args, kwargs):
            try:
                path = self.path_of_module(m)
            except NameError:   # made in the forward, not a submodule: its code is traced
                return forward(*args, **kwargs)
            self._paths.append(path)
            try:
                return super().call_module(m, forward, args, kwargs)
            except Exception:
                if self.failed_at is None:
                    self.failed_at = self._paths[-1]
                raise
            finally:
                self._paths.pop()

        def create_node(self, *args, **kwargs):
            node = super().create_node(*args, **kwargs)
            node.meta["dnnsim_module_path"] = self._paths[-1]
            return node

        def is_leaf_module(self, m, module_qualified_name) -> bool:
            # a mixture of experts routes by value: one module, costed by torch_moe's model
            return is_moe_block(m) or super().is_leaf_module(m, module_qualified_name)
    return PathTracer


# Tensor attributes and methods that only describe a tensor: read off the example's value, so
# the model's Python sees plain ints, dtypes and devices (`*x.shape[:-1]`, `if x.dtype != w.dtype`)
_DESCRIPTIVE_ATTRS = frozenset({"shape", "dtype", "device", "ndim", "is_cuda", "is_meta",
                                "layout", "is_sparse", "is_quantized", "is_nested"})
_DESCRIPTIVE_METHODS = frozenset({"size", "dim", "numel", "nelement", "element_size",
                                  "is_floating_point", "is_complex", "get_device",
                                  "is_contiguous", "stride"})


def _concrete_tracer(torch, example, names: tuple[str, ...] = ("input",)):
    """A PathTracer whose proxies carry the value each node has on `example` (run as it is
    traced), so Python code that reads shapes, dtypes and devices traces, specialised to the
    example's shapes (Hugging Face's models: `(*input_shape, -1, d)`, `if batch != ids.shape[0]`,
    a mask made with `torch.ones(n, s)`): those reads are plain values, no nodes. Control flow
    on a tensor's values traces where the tensor comes from parameters, buffers and constants
    only (the same for every input); where it depends on the input it is refused as the
    data-dependent control flow it is."""
    from torch.fx import _symbolic_trace
    from torch.fx.node import map_aggregate
    PathTracer: Any = _path_tracer(torch)
    VALUE, DATA = "dnnsim_concrete", "dnnsim_from_input"

    class ConcreteProxy(torch.fx.Proxy):
        def _value(self):
            return self.node.meta.get(VALUE)

        def __getattr__(self, name):
            if name in _DESCRIPTIVE_ATTRS or name in _DESCRIPTIVE_METHODS:
                value = self.__dict__["node"].meta.get(VALUE)
                if isinstance(value, torch.Tensor):
                    return getattr(value, name)
            return super().__getattr__(name)

        def __len__(self):
            return len(self._value())

        def __iter__(self):
            # a loop over a tensor's first dimension or over split's pieces: one item each
            return iter([self[i] for i in range(len(self._value()))])

        def _constant(self, use: str):
            if self.node.meta.get(DATA):
                raise torch.fx.proxy.TraceError(
                    f"{use} the values of {self.node.name!r}, which depend on the input "
                    "(data-dependent control flow)")
            return self._value()

        def __bool__(self):
            return bool(self._constant("control flow on"))

        def __index__(self):   # an index or a size (a mixture of experts' routing)
            return self._constant("an index or a size made of").__index__()

    class ConcreteTracer(PathTracer):
        def proxy(self, node):
            return ConcreteProxy(node, self)

        def trace(self, root, concrete_args=None):
            graph = super().trace(root, concrete_args)
            # what only decided control flow (a test on the parameters) computes nothing the
            # model returns: the nodes that use no input and that nothing reads are dropped
            for node in reversed(list(graph.nodes)):
                if node.op != "output" and not node.users and not node.meta.get(DATA) \
                        and node.op != "placeholder":
                    graph.erase_node(node)
            return graph

        def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
            node = super().create_node(kind, target, args, kwargs, name, type_expr)
            if kind == "output":
                return node
            inputs: list = []
            torch.fx.node.map_arg((args, kwargs), inputs.append)
            node.meta[DATA] = kind == "placeholder" or any(i.meta.get(DATA) for i in inputs)
            concrete = map_aggregate((args, kwargs), lambda a: a.meta.get(VALUE)
                                     if isinstance(a, torch.fx.Node) else a)
            # why: fx's patches (Module.__call__ and parameter reads made into nodes) are off
            # while the value is computed, or running a module would trace it again
            with torch.no_grad(), _symbolic_trace._maybe_revert_all_patches():
                try:
                    node.meta[VALUE] = self._run(kind, target, *concrete)
                except Exception as exc:   # the model's own error on the example
                    raise _RunError(node, exc) from exc
            return node

        def _run(self, kind, target, args, kwargs):
            if kind == "placeholder":   # the example of that input (of several: by name)
                return example[names.index(target)] if isinstance(example, tuple) else example
            if kind == "get_attr":
                value = self.root
                for part in target.split("."):
                    value = getattr(value, part)
                return value
            if kind == "call_function":
                return target(*args, **kwargs)
            if kind == "call_method":
                return getattr(args[0], target)(*args[1:], **kwargs)
            module = self.root.get_submodule(target)
            modes = {m: m.training for m in module.modules()}
            module.eval()   # why: running it must not update batch-norm running statistics
            try:
                return run_moe_block(torch, module, args, kwargs) if is_moe_block(module) \
                    else module(*args, **kwargs)
            finally:
                for m, mode in modes.items():
                    m.training = mode
    return ConcreteTracer


def _one_input(tracer_class, root, names: tuple[str, ...] = ("input",)):
    """`tracer_class` tracing `root` called on its inputs alone, positionally: one placeholder
    for each of `names` (its other parameters keep their defaults). A model that can return a
    cache of keys and values for generation (a `use_cache` parameter, as Hugging Face's
    decoders have) is called with use_cache=False: a training step keeps none."""
    import inspect

    forward = type(root).forward
    extra = {"use_cache": False} if "use_cache" in \
        inspect.signature(inspect.unwrap(forward)).parameters else {}

    class GivenInputs(tracer_class):
        def create_args_for_root(self, root_fn, is_module, concrete_args=None):
            # why: decorated forwards (functools.wraps over *args, **kwargs) and keyword-only
            # parameters defeat fx's placeholders; the examples are the inputs
            xs = [self.create_proxy("placeholder", n, (), {}) for n in names]

            def call(module, *inputs):
                return root_fn(module, *inputs, **extra)
            return call, [self.root, *xs]
    return GivenInputs


def _takes_more_than_one_input(module) -> bool:
    """Whether forward takes optional parameters besides the input (each with a default)."""
    import inspect
    parameters = list(inspect.signature(inspect.unwrap(type(module).forward)).parameters
                      .values())[2:]   # after self and the input
    return bool(parameters) and all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL,
                                                                          p.VAR_KEYWORD)
                                    for p in parameters)


def _describe(gm, node) -> tuple[str, str]:
    """(what the node calls, the module path it sits at)."""
    if node.op == "call_module":
        cls = type(gm.get_submodule(node.target))
        what = f"torch.nn.{cls.__name__}" if cls.__module__.startswith("torch.nn") \
            else f"{cls.__module__}.{cls.__qualname__}"
        return what, node.target
    path = node.meta.get("dnnsim_module_path", "")
    if node.op == "call_method":
        return f"Tensor.{node.target}", path
    if node.op == "get_attr":
        return f"a direct read of parameter or buffer {node.target!r}", path
    t = node.target
    mod, short = getattr(t, "__module__", None), getattr(t, "__name__", repr(t))
    return (f"{mod}.{short}" if mod else short), path


def _where(gm, node) -> str:
    what, path = _describe(gm, node)
    return f"module path {path or '<top>'!r} ({what}, fx node {node.name!r})"


def _refuse_packed_sequences(graph, name: str) -> None:
    """torch.nn.utils.rnn.pack_padded_sequence (and pack_sequence, which calls it) traces
    into its ATen call, then fails on the fields a traced PackedSequence lacks: refused here,
    by name, before the run."""
    for node in graph.nodes:
        if node.op == "call_function" and \
                getattr(node.target, "__name__", "") == "_pack_padded_sequence":
            path = node.meta.get("dnnsim_module_path", "") or "<top>"
            raise WorkloadError(f"{name}: torch.nn.utils.rnn.pack_padded_sequence at module "
                                f"path {path!r}: {PACKED}")


def _traced(torch, module, root, tracer, examples, names, name, shadows):
    """(the fx GraphModule of `root`, the tracer that made it), every node's shapes recorded
    by a run on the examples; a model fx cannot follow is traced with values."""
    example_input = examples[0] if len(examples) == 1 else examples
    try:
        fx_graph = tracer.trace(root)
    except Exception:  # fx raises many kinds of error on untraceable code
        # read shapes, dtypes and devices off the example instead (specialised to its shapes)
        tracer = _one_input(_concrete_tracer(torch, example_input, names), root, names)()
        try:
            fx_graph = tracer.trace(root)
        except _RunError as err:
            _refuse_packed_sequences(tracer.graph, name)
            path = err.node.meta.get("dnnsim_module_path", "") or "<top>"
            raise WorkloadError(f"{name} does not run on {_inputs_text(examples)}: "
                                f"at module path {path!r} (fx "
                                f"node {err.node.name!r}): {type(err.exc).__name__}: "
                                f"{err.exc}") from err.exc
        except Exception as exc:
            raise WorkloadError(_trace_failure(torch, type(module).__name__, tracer,
                                               exc)) from exc
    gm = torch.fx.GraphModule(tracer.root, fx_graph)
    _refuse_packed_sequences(gm.graph, name)
    modes = {m: m.training for m in module.modules()}
    module.eval()  # why: propagating shapes must not update batch-norm running statistics
    try:
        with torch.no_grad():
            _value_prop(torch, shadows)(gm).run(*examples)
    except _RunError as err:
        raise WorkloadError(f"{name} does not run on {_inputs_text(examples)}: "
                            f"at {_where(gm, err.node)}: "
                            f"{type(err.exc).__name__}: {err.exc}") from err.exc
    finally:
        for m, mode in modes.items():
            m.training = mode
    return gm, tracer

