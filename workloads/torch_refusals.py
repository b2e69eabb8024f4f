"""How torch_import reports what it refuses: a stand-in of PyTorch's shape replaces each
refused op so that the lowering goes on and finds every other refusal, and one message lists
them all, grouped by op and reason, with their module paths and what is supported.

`RefusalReport` is a mixin of `torch_import._Lowering` (which provides `b`, `name`,
`refused`, `module_table`, `functions`, `methods` and `TensorMetadata`).
"""
from __future__ import annotations

from .graph import Op, TensorSpec
from .torch_state import LoweringState
from .torch_values import _Const

_PATHS_SHOWN = 8   # module paths listed per unsupported op; the rest are counted


class RefusalReport(LoweringState):
    def _stand_in(self, node):
        """A tensor of PyTorch's shape in place of a refused op, so the lowering goes on and
        finds every other refusal (the graph is never returned)."""
        meta = node.meta.get("tensor_meta")
        if meta is None:
            return _Const(node.meta.get("dnnsim_value"))

        def one(m):
            if not isinstance(m, self.TensorMetadata):
                return _Const(m)
            name = self.name(f"refused_{node.name}")
            shape = tuple(max(int(d), 1) for d in m.shape) or (1,)
            self.b.graph.add(Op(name, "input", (), (), TensorSpec(shape, self.b.dtype_bytes)))
            return name
        return one(meta) if isinstance(meta, self.TensorMetadata) else tuple(one(m) for m in meta)

    def _refusal_message(self) -> str:
        grouped: dict[tuple[str, str], list[str]] = {}
        for r in self.refused:
            grouped.setdefault((r.what, r.why), []).append(r.path)
        lines = [f"{self.b.graph.name}: {len(grouped)} unsupported op"
                 f"{'s' if len(grouped) != 1 else ''} ({len(self.refused)} "
                 f"call{'s' if len(self.refused) != 1 else ''}):"]
        for (what, why), calls in grouped.items():
            paths = list(dict.fromkeys(calls))   # each once, in the model's order
            shown = ", ".join(repr(p) + (f" ({calls.count(p)} calls)" if calls.count(p) > 1
                                         else "") for p in paths[:_PATHS_SHOWN])
            more = f" and {len(paths) - _PATHS_SHOWN} more" if len(paths) > _PATHS_SHOWN else ""
            lines.append(f"  - {what} at module path{'s' if len(paths) > 1 else ''} "
                         f"{shown}{more}: {why}")
        lines.append(self.supported_summary())
        return "\n".join(lines)

    def supported_summary(self) -> str:
        def names(objs):
            return ", ".join(sorted({getattr(o, "__name__", str(o)) for o in objs}))
        return (f"Supported modules: {names(self.module_table)}.\n"
                f"Supported functions: {names(self.functions)}.\n"
                f"Supported Tensor methods: {names(self.methods)}.")
