"""Tracing a module for torch_import: the fx tracer that records module paths, the run on
the example input that records every node's shapes (and, for integer tensors, what ids they
hold), and torch.fx's own refusals told with the module path, the model's line and, where
the cause is one fx cannot trace, the fix. torch is passed in, never imported here."""
from __future__ import annotations

import os
import traceback

from .torch_params import index_pattern


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
              if not f.filename.startswith(torch_dir)]
    line = f", {os.path.basename(frames[-1].filename)} line {frames[-1].lineno}: " \
        f"{(frames[-1].line or '').strip()}" if frames else ""
    where = f"at module path {tracer.failed_at or '<top>'!r}{line}"
    if isinstance(exc, torch.fx.proxy.TraceError) and "cannot be iterated" in str(exc):
        return (f"torch.fx cannot trace {name} {where}: a loop or generator over a traced "
                "tensor (such as the pieces of split or chunk) is a limit of torch.fx; unpack "
                "or index the pieces first (q, k, v = x.split(n, dim=2)), then use each")
    return f"torch.fx cannot trace {name} {where}: {type(exc).__name__}: {exc}"


def _value_prop(torch):
    from torch.fx.node import map_aggregate
    from torch.fx.passes.shape_prop import _extract_tensor_metadata

    class ValueProp(torch.fx.Interpreter):
        """Records each node's tensor shapes, and the values of everything else (sizes)."""

        def run_node(self, n):
            try:
                result = super().run_node(n)
            except _RunError:
                raise
            except Exception as exc:  # the model's own error, with the node it came from
                raise _RunError(n, exc) from exc
            found = []
            meta = map_aggregate(result, lambda v: found.append(v) or _extract_tensor_metadata(v)
                                 if isinstance(v, torch.Tensor) else v)
            if found:
                n.meta["tensor_meta"] = meta
            if not isinstance(result, torch.Tensor):
                n.meta["dnnsim_value"] = result
            else:
                n.meta["dnnsim_ids"] = index_pattern(result)   # for a lookup by a buffer   # whether PyTorch made a view (or returned an input) rather than a copy
                args: list = []
                torch.fx.node.map_aggregate((n.args, n.kwargs), args.append)
                inputs = [self.env[a] for a in args if isinstance(a, torch.fx.Node)]
                n.meta["dnnsim_alias"] = result._is_view() or any(result is t for t in inputs)
            return result
    return ValueProp


def _path_tracer(torch):
    class PathTracer(torch.fx.Tracer):
        """Records on each node the path of the module whose forward made it."""

        # buffers read in the forward are traced values, so a buffer sliced by a size of the
        # input (self.position_ids[:, :seq], self.mask[:, :, :T, :T]) traces
        proxy_buffer_attributes = True

        def __init__(self) -> None:
            super().__init__()
            self._paths = [""]
            self.failed_at: str | None = None    # the innermost module where tracing failed

        def call_module(self, m, forward, args, kwargs):
            self._paths.append(self.path_of_module(m))
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
    return PathTracer
