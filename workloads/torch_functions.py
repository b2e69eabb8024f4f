"""How torch_import lowers torch functions and Tensor methods, and the layers modules share.

`FunctionLowering` is a mixin of `torch_import._Lowering`: it maps each function (F.relu,
torch.cat, operator.add, ...) and Tensor method ("view", "tanh", ...) to a handler that takes
the fx node and returns a builder tensor, a `_Pending` view or a `_Const`. Arguments are bound
by name through the `_sig_*` signatures. The host provides `b` (the GraphBuilder), `bind`,
`value`, `tensor`, `name`, `traced_shape` and `unsupported`. torch is never imported here: the
tables are built from the module the host passes in.

Lowered: relu, the activations of graph.ACTIVATIONS (torch.tanh, torch.sigmoid, F.silu,
F.hardswish, F.hardtanh, F.relu6, F.leaky_relu, F.elu, F.gelu, F.hardsigmoid, F.mish, F.selu,
F.softplus, and their in-place forms), clamp (a hardtanh), add, the product of two tensors (one
may broadcast over dimensions of size 1: a squeeze-and-excitation gate), arithmetic with a
constant (x + c, x - c, c - x, x * c, x / c, -x), pow with a constant exponent (square),
rsqrt, the mean over height and width (a global average pool) or over other trailing
dimensions, casts to the tensor's own dtype (no op), and shape queries (size, shape, dim).
Pooling, padding, cat, dropout and channel_shuffle are lowered by torch_pools (a base of
FunctionLowering; the tables here route to it); the values that are not tensors live in
torch_values. Views and reshapes are lowered by torch_views, layers on parameters read
directly by torch_layers.
"""
from __future__ import annotations

import builtins
import inspect
import math
import operator
from typing import Any

from .graph import ACTIVATIONS, WorkloadError
from .torch_pools import PoolPadLowering
from .torch_values import _Const


# Signatures used to bind fx arguments (positional or keyword) by name.
def _sig_add(input, other, alpha=1): ...
def _sig_mul(input, other): ...
def _sig_div(input, other, *, rounding_mode=None): ...
def _sig_neg(input): ...
def _sig_clamp(input, min=None, max=None): ...
def _sig_unary(input): ...
def _sig_mean(input, dim=None, keepdim=False, *, dtype=None): ...
def _sig_pow(input, exponent): ...
def _sig_inplace(input, inplace=False): ...
def _sig_hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False): ...
def _sig_leaky_relu(input, negative_slope=0.01, inplace=False): ...
def _sig_elu(input, alpha=1.0, inplace=False): ...
def _sig_gelu(input, *, approximate="none"): ...
def _sig_softplus(input, beta=1.0, threshold=20.0): ...


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


def _is_inplace_call(node) -> bool:
    """A call of an in-place variant (relu_, clamp_, ...: PyTorch's trailing underscore)."""
    target = node.target if isinstance(node.target, str) else \
        getattr(node.target, "__name__", "")
    return target.endswith("_") and not target.endswith("__")


class FunctionLowering(PoolPadLowering):
    # -- tables ----------------------------------------------------------------------------
    def function_handlers(self, torch) -> dict:
        F, act = torch.nn.functional, self._activation_fn
        relu6 = act("hardtanh", _sig_inplace, min_val=0.0, max_val=6.0)
        return {
            F.relu: self._relu, torch.relu: self._relu, torch.relu_: self._relu,
            F.relu_: self._relu, operator.add: self._add, operator.iadd: self._add,
            torch.add: self._add, operator.mul: self._mul, operator.imul: self._mul,
            torch.mul: self._mul, torch.multiply: self._mul, operator.sub: self._sub,
            operator.isub: self._sub, torch.sub: self._sub,
            torch.subtract: self._sub, torch.rsub: self._rsub, operator.truediv: self._div,
            operator.itruediv: self._div, torch.div: self._div, torch.divide: self._div,
            torch.true_divide: self._div, operator.neg: self._neg, torch.neg: self._neg,
            torch.negative: self._neg, torch.clamp: self._clamp, torch.clip: self._clamp,
            F.max_pool2d: self._maxpool_fn, F.avg_pool2d: self._avgpool_fn,
            F.max_pool1d: self._maxpool1d_fn, F.avg_pool1d: self._avgpool1d_fn,
            F.adaptive_avg_pool2d: self._adaptive_fn, torch.cat: self._cat,
            torch.concat: self._cat, F.dropout: self._dropout_fn, F.pad: self._pad,
            F.channel_shuffle: self._shuffle_fn, torch.channel_shuffle: self._shuffle_fn,
            builtins.getattr: self._shape_query,
            # (F.tanh and F.sigmoid call the Tensor methods, which fx records in their place)
            torch.tanh: act("tanh", _sig_unary), torch.tanh_: act("tanh", _sig_unary),
            torch.sigmoid: act("sigmoid", _sig_unary), torch.sigmoid_: act("sigmoid", _sig_unary),
            F.silu: act("silu", _sig_inplace), F.hardswish: act("hardswish", _sig_inplace),
            F.hardtanh: act("hardtanh", _sig_hardtanh),
            F.hardtanh_: act("hardtanh", _sig_hardtanh),
            F.relu6: relu6, F.leaky_relu: act("leaky_relu", _sig_leaky_relu),
            F.leaky_relu_: act("leaky_relu", _sig_leaky_relu), F.elu: act("elu", _sig_elu),
            F.elu_: act("elu", _sig_elu), F.gelu: act("gelu", _sig_gelu),
            F.hardsigmoid: act("hardsigmoid", _sig_inplace), F.mish: act("mish", _sig_inplace),
            F.selu: act("selu", _sig_inplace), torch.selu: act("selu", _sig_unary),
            torch.selu_: act("selu", _sig_unary), F.selu_: act("selu", _sig_unary),
            F.softplus: act("softplus", _sig_softplus),
            torch.sin: self._trig, torch.cos: self._trig, torch.erf: self._trig,
            torch.special.erf: self._trig, torch.exp: self._weight_exp,
            torch.mean: self._mean, torch.sum: self._mean, torch.pow: self._pow,
            operator.pow: self._pow,
            torch.square: self._square, torch.rsqrt: self._rsqrt, torch.sqrt: self._sqrt,
        }

    def method_handlers(self) -> dict:
        act = self._activation_fn
        return {
            "relu": self._relu, "relu_": self._relu, "add": self._add, "add_": self._add,
            "mul": self._mul, "mul_": self._mul, "sub": self._sub, "sub_": self._sub,
            "div": self._div, "div_": self._div, "neg": self._neg, "clamp": self._clamp,
            "clamp_": self._clamp, "clip": self._clamp, "clip_": self._clamp,
            "size": self._shape_query, "dim": self._shape_query,
            "tanh": act("tanh", _sig_unary), "tanh_": act("tanh", _sig_unary),
            "sigmoid": act("sigmoid", _sig_unary), "sigmoid_": act("sigmoid", _sig_unary),
            "sin": self._trig, "cos": self._trig, "erf": self._trig, "exp": self._weight_exp,
            "mean": self._mean, "sum": self._mean, "pow": self._pow, "square": self._square,
            "rsqrt": self._rsqrt, "sqrt": self._sqrt, "to": self._same_dtype,
            "float": self._same_dtype, "type_as": self._same_dtype,
        }

    def reduction_kind(self, node) -> str:
        """"mean" or "sum": what torch.mean / Tensor.mean or torch.sum / Tensor.sum reduce
        with."""
        return "sum" if node.target in (self.torch.sum, "sum") else "mean"

    def _mean(self, node):
        """The mean over an image's height and width: a global average pool (flattened to
        (batch, channels) unless keepdim); over other trailing dimensions, a mean op. A sum
        over trailing dimensions is a sum op."""
        a, kind = self.bind(_sig_mean, node), self.reduction_kind(node)
        x = self.tensor(a["input"])
        rank = len(self.b.spec(x).shape)
        dims = a["dim"] if isinstance(a["dim"], (list, tuple)) else (a["dim"],)
        reduced = sorted({d % rank for d in dims}) if a["dim"] is not None else []
        if not reduced or reduced != list(range(rank - len(reduced), rank)) \
                or 0 in reduced or a["dtype"] is not None:
            raise self.unsupported(f"takes a {kind} over dims {a['dim']!r}; only the {kind} "
                                   "over dimensions after the batch is supported")
        if kind == "sum":
            return self._op("sum", [x], self.traced_shape(node), self.name("sum"),
                            dict(reduced_dims=len(reduced), keepdim=bool(a["keepdim"])))
        if rank == 4 and reduced == [2, 3]:
            y = self.b.adaptive_avgpool(x, (1, 1), name=self.name("mean"))
            return y if a["keepdim"] else self.b.flatten(y, name=self.name("flatten"))
        return self.b.mean(x, len(reduced), bool(a["keepdim"]), name=self.name("mean"))

    def _same_dtype(self, node):
        """x.to(dtype), x.float(), x.type_as(y) to the dtype x has: PyTorch returns x itself
        (Hugging Face's RMSNorm casts to float32 and back)."""
        x = self.tensor(node.args[0])
        source, out = (getattr(n.meta.get("tensor_meta"), "dtype", None)
                       for n in (node.args[0], node))
        if source is None or source != out:
            raise self.unsupported(f"casts {source} to {out}; only casts to the tensor's own "
                                   "dtype (no copy) are supported")
        return x

    def _pow(self, node):
        a = self.bind(_sig_pow, node)
        exponent = self._constant(a["exponent"])
        if exponent is None:
            raise self.unsupported("raises to a tensor power; only a constant exponent is "
                                   "supported")
        return self.b.pow(self.tensor(a["input"]), exponent, name=self.name("pow"))

    def _square(self, node):
        x = self.tensor(self.bind(_sig_unary, node)["input"])
        return self.b.pow(x, 2.0, name=self.name("pow"))

    def _rsqrt(self, node):
        x = self.tensor(self.bind(_sig_unary, node)["input"])
        return self.b.rsqrt(x, name=self.name("rsqrt"))

    def _activation(self, x, kind, attrs, name):
        """An op of graph.ACTIVATIONS, numbers as floats; refuses what the kind does not model."""
        if kind == "gelu" and attrs["approximate"] not in ("none", "tanh"):
            raise self.unsupported(f"uses approximate={attrs['approximate']!r}; only 'none' "
                                   "and 'tanh' are modelled")
        for key, v in attrs.items():
            if key != "approximate" and not isinstance(v, (int, float)):
                raise self.unsupported(f"takes {key}={v!r}; only a constant number is supported")
        attrs = {k: v if k == "approximate" else float(v) for k, v in attrs.items()}
        return self.b.activation(x, kind, name=name, **attrs)

    # -- functions and methods -----------------------------------------------------------
    def _activation_fn(self, kind, sig, **fixed):
        """The handler of an activation function whose arguments bind to `sig`; the attributes
        are those of the kind found among the arguments, then `fixed` (relu6's bounds)."""
        def handler(node):
            a = self.bind(sig, node)
            attrs = {**{k: a[k] for k in ACTIVATIONS[kind] if k in a}, **fixed}
            return self._activation(self.tensor(a["input"]), kind, attrs, self.name(kind))
        return handler

    def _relu(self, node):
        # in place: relu_ (torch, F, the method) or F.relu(x, inplace=True)
        inplace = _is_inplace_call(node) or bool(node.kwargs.get("inplace", False)) or (
            len(node.args) > 1 and node.args[1] is True)
        return self.b.relu(self.tensor(node.args[0]), name=self.name("relu"), inplace=inplace)

    def _constant(self, arg) -> float | None:
        """The number an argument holds (a literal, or a size computed in the forward)."""
        v: Any = self.value(arg)   # duck-typed: a number, a _Param, anything else
        v = v.value if isinstance(v, _Const) else v
        if getattr(v, "is_parameter", True) is False and math.prod(v.shape) == 1 and \
                (t := self.constant_values(arg)) is not None:
            return float(t.reshape(()))   # a one-value buffer (a scale made as a tensor)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def _operands(self, a) -> tuple:
        """(input, other) as (tensor or None, constant or None) pairs."""
        return tuple((None, c) if (c := self._constant(a[k])) is not None
                     else (self.tensor(a[k]), None) for k in ("input", "other"))

    def _scalar(self, x, scale=1.0, shift=0.0):
        return self.b.scalar(x, scale, shift, name=self.name("scalar"))

    def _add(self, node, sign: float = 1.0):
        a = self.bind(_sig_add, node)
        if sign == 1.0 and (out := self.rows_operand(a)) is not None:
            return out
        if sign == 1.0 and (out := self.param_operand(a, "add")) is not None:
            return out
        if sign == 1.0 and (out := self.bias_operand(a)) is not None:
            return out
        if (out := self.weight_arith(a, sign)) is not None:
            return out
        (x, cx), (y, cy) = self._operands(a)
        alpha = self._constant(a["alpha"])
        if alpha is None or (alpha != 1 and cy is None):
            raise self.unsupported("scales a tensor by alpha; only a constant alpha on a "
                                   "constant is supported")
        if x is not None and y is not None:
            if sign != 1.0:
                return self._broadcast_pair("sub", x, y, "-")
            sx, sy = self.b.spec(x).shape, self.b.spec(y).shape
            if sx == sy:
                return self.b.add(x, y, name=self.name("add"))
            if len(sx) < len(sy) or (len(sx) == len(sy) and math.prod(sx) < math.prod(sy)):
                x, y = y, x    # the sum commutes: the operand that broadcasts second
            return self._broadcast_pair("add_broadcast", x, y, "+")
        if x is None and y is None:
            raise self.unsupported("computes with constants only")
        if x is not None:                      # x + c, x - c
            return self._scalar(x, shift=sign * alpha * cy)
        return self._scalar(y, scale=sign * alpha, shift=cx)   # c + y, c - y

    def _sub(self, node):
        return self._add(node, sign=-1.0)

    def _rsub(self, node):   # torch.rsub(x, c) = c - x
        a = self.bind(_sig_add, node)
        if (out := self.weight_arith({"input": a["other"], "other": a["input"],
                                      "alpha": a["alpha"]}, -1.0)) is not None:
            return out
        (x, cx), (y, cy) = self._operands(a)
        alpha = self._constant(a["alpha"])
        if x is None or cy is None or alpha != 1:
            raise self.unsupported("only rsub(tensor, constant) is supported")
        return self._scalar(x, scale=-1.0, shift=cy)

    def _mul(self, node):
        a = self.bind(_sig_mul, node)
        if (out := self.complex_product(a)) is not None:
            return out
        if (out := self.table_operand(a)) is not None:
            return out
        if (out := self.param_operand(a, "mul")) is not None:
            return out
        (x, cx), (y, cy) = self._operands(a)
        if x is not None and y is not None:
            if (out := self.weight_factor(x, y)) is not None:
                return out
            return self.b.mul(x, y, name=self.name("mul"))
        if x is None and y is None:
            raise self.unsupported("computes with constants only")
        return self._scalar(x if x is not None else y, scale=cy if x is not None else cx)

    def _div(self, node):
        a = self.bind(_sig_div, node)
        (x, _), (y, cy) = self._operands(a)
        if x is not None and y is not None and a["rounding_mode"] is None:
            return self._broadcast_pair("div", x, y, "/")
        if x is None or cy is None or a["rounding_mode"] is not None or cy == 0:
            raise self.unsupported("divides a constant, rounds or divides by zero; only "
                                   "tensor / tensor and tensor / nonzero constant are "
                                   "supported")
        return self._scalar(x, scale=1.0 / cy)

    def _broadcast_pair(self, kind: str, x: str, y: str, symbol: str) -> str:
        """x - y or x / y of two tensors (kinds sub and div), y of x's shape or broadcast
        over it (a norm written by hand: x - mean, then / std)."""
        sx, sy = self.b.spec(x).shape, self.b.spec(y).shape
        if len(sy) > len(sx) or any(e not in (1, d) for e, d in zip(reversed(sy), reversed(sx),
                                                                    strict=False)):
            raise self.unsupported(f"computes {sx} {symbol} {sy}; only a second operand of the "
                                   "first's shape or broadcast over it is supported")
        return self.b.op(kind, [x, y], sx, name=self.name(kind))

    def _sqrt(self, node):
        x = self.tensor(self.bind(_sig_unary, node)["input"])
        return self.b.op("sqrt", [x], name=self.name("sqrt"))

    def _trig(self, node):
        x = self.tensor(self.bind(_sig_unary, node)["input"])
        kind = node.target if isinstance(node.target, str) else node.target.__name__
        kind = kind.removeprefix("special_")   # torch.special.erf
        return self.b.op(kind, [x], name=self.name(kind))

    def _neg(self, node):
        return self._scalar(self.tensor(self.bind(_sig_neg, node)["input"]), scale=-1.0)

    def _clamp(self, node):
        """clamp(x, lo, hi) is a hardtanh from lo to hi; clamp(x, min=0) a ReLU."""
        a = self.bind(_sig_clamp, node)
        lo, hi = (self._constant(a[k]) if a[k] is not None else None for k in ("min", "max"))
        x = self.tensor(a["input"])
        if lo is not None and hi is not None:
            return self._activation(x, "hardtanh", {"min_val": lo, "max_val": hi},
                                    self.name("clamp"))
        if lo == 0.0 and a["max"] is None:
            return self.b.relu(x, name=self.name("clamp"), inplace=_is_inplace_call(node))
        raise self.unsupported("clamps with tensor bounds or one bound other than min=0; only "
                               "constant (min, max) and min=0 are supported")

    def _shape_query(self, node):
        src = self.value(node.args[0])
        if node.target is getattr and isinstance(src, tuple) and len(src) == 2 and \
                node.args[1:] in (("values",), ("indices",)):
            return src[node.args[1] == "indices"]   # torch.max(x, dim).values, topk's, sort's
        if self.traced_shape(node) is not None:
            raise self.unsupported("returns a tensor")
        return _Const(node.meta.get("dnnsim_value"))
