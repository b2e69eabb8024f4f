"""Values of small tensors made from constants while a model on the meta device is traced.

Meta tensors hold shapes only, but the importer reads the values of a few integer tensors:
the ids a position table is looked up by (nanoGPT's `torch.arange(0, t, device=idx.device)`,
OPT's positions from a cumulative sum of a mask of ones) and the rows a gather picks. Where
such a tensor is made in the forward from constants alone, its values do not depend on the
weights or the input: `shadow_mode` computes each such tensor a second time on the CPU, as
the model makes it, and keeps it beside the meta tensor; a Python value read off it (Hugging
Face's test of its position ids for packed sequences, `(mask[:, -1] == 0).all()` in an `if`)
is the copy's. A tensor computed from the input, a
parameter or a buffer (whose values the meta device does not hold) gets none, and a large
one (a causal mask, whose values the importer does not read) is not kept. torch is passed in,
never imported here.
"""
from __future__ import annotations

# Tensors of more elements are not computed again: position ids of a batch of long sequences
# (8 x 2048) are far fewer; a (2048, 2048) mask is more.
SHADOWED_ELEMENTS = 1 << 20


def active_shadow_mode(torch):
    """The shadow mode entered around this call (the command line enters one around the
    user's factory too, so buffers made there from constants keep their values), or None."""
    from torch.overrides import _get_current_function_mode_stack
    return next((m for m in reversed(_get_current_function_mode_stack())
                 if hasattr(m, "shadows")), None)


def shadow_mode(torch):
    """A TorchFunctionMode that keeps a CPU copy of every small meta tensor made from
    constants and other such tensors; `values(t)` is t's copy (or None)."""
    from torch.overrides import TorchFunctionMode
    from torch.utils._device import _device_constructors
    from torch.utils._pytree import tree_flatten, tree_map

    cpu, constructors = torch.device("cpu"), _device_constructors()

    class ShadowMode(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.shadows: dict[int, tuple] = {}   # id of a meta tensor -> (it, its values)

        def values(self, t):
            kept = self.shadows.get(id(t))
            return kept[1] if kept is not None and kept[0] is t else None

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            try:
                result = func(*args, **kwargs)
            except Exception:
                # a value read off a meta tensor (`bool(mask.all())`, `.item()`, `.tolist()`):
                # the copy's, where it has one
                value = self._on_cpu(func, args, kwargs)
                if value is None or isinstance(value, torch.Tensor):
                    raise
                return value
            if isinstance(result, torch.Tensor) and result.is_meta and \
                    result.numel() <= SHADOWED_ELEMENTS:
                value = self._on_cpu(func, args, kwargs)
                if isinstance(value, torch.Tensor) and value.shape == result.shape:
                    self.shadows[id(result)] = (result, value)
            return result

        def _on_cpu(self, func, args, kwargs):
            leaves, _ = tree_flatten((args, kwargs))
            if any(isinstance(a, torch.Tensor) and a.is_meta and self.values(a) is None
                   or not isinstance(a, torch.Tensor) and hasattr(a, "__torch_function__")
                   for a in leaves):   # the input's, a weight's, or a traced proxy
                return None

            def moved(a):
                if isinstance(a, torch.Tensor) and a.is_meta:
                    return self.values(a)
                return cpu if isinstance(a, torch.device) else a
            args, kwargs = tree_map(moved, (args, kwargs))
            if func in constructors:
                kwargs = {**kwargs, "device": cpu}
            try:
                with torch.no_grad():
                    return func(*args, **kwargs)
            except Exception:   # values that do not compute on the CPU stay unknown
                return None
    return ShadowMode()
