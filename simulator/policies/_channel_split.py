"""Channel-split model parallelism for inference, shared by `decnn` and `layerwise-mp`.

Every tensor of the network has a *layout* across the N devices:
  full     every device holds all of it (the input image, a gathered tensor)
  split    device d holds channel block d (for a flattened tensor: feature block d)
  root     only device 0 holds it (the classifier's summed or gathered output)
A walk over the graph gives each device its *local graph*: the same ops with the shapes of its
share (a conv with out_channels/N, a grouped conv with groups/N), built with the GraphBuilder so
that every local shape is checked again, and costed by the device model as what it is (one
group of a grouped conv is a dense conv on its device). Between the local graphs sit the
*exchanges*, the only communication:
  broadcast   the input image, from device 0 to every device (a dense stem needs all of it)
  all_to_all  at a channel shuffle: device d sends 1/N of its block to each other device
  allgather   before a dense conv/linear that reads split data (layer-wise MP): every block
              to every device
  reduce      the partial outputs of a linear layer split by input, summed on device 0
  gather      split outputs of the last layer, assembled on device 0
Each exchange is one transfer per (source, destination), so the switch's ports or the Wi-Fi
medium serialise them by themselves in the engine.

`_channel_split_tasks.py` turns the plan into tasks, several samples in flight.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workloads.builder import GraphBuilder
from workloads.graph import ACTIVATIONS, Op, OpGraph, TensorSpec

from . import ConfigError, Option

ELEMENTWISE = frozenset({"batchnorm", "relu", "maxpool", "avgpool", "adaptive_avgpool",
                         "dropout", "flatten", *ACTIVATIONS})

INFERENCE_OPTIONS = {
    "in_flight": Option(2, "samples in flight at once (1: one sample at a time)", int,
                        lambda v: v >= 1, "an integer >= 1"),
    "samples": Option(8, "samples simulated (throughput is taken between the first and the "
                         "last to finish)", int, lambda v: v >= 1, "an integer >= 1"),
}


@dataclass
class Exchange:
    kind: str                 # broadcast | all_to_all | allgather | reduce | gather
    name: str
    source: str               # local tensor sent (same name on every device)
    consumer: str             # local op that waits for it (on each receiving device)
    piece_bytes: list[int]    # per source device: bytes it sends to one destination


@dataclass
class SplitPlan:
    devices: int
    local: list[OpGraph]                       # per device
    exchanges: list[Exchange] = field(default_factory=list)
    final: str = ""                            # local op on device 0 that ends a sample


class _Walker:
    """Builds the local graphs; `mode` is 'decnn' or 'layerwise' (see the rules in `walk`)."""

    def __init__(self, graph: OpGraph, n: int, mode: str, policy: str) -> None:
        self.g, self.n, self.mode, self.policy = graph, n, mode, policy
        dtype = graph.input_op.out.dtype_bytes
        self.b = [GraphBuilder(f"{graph.name}@{d}", graph.meta["input_shape"], graph.batch,
                               dtype) for d in range(n)]
        self.layout: dict[str, str] = {}
        self.loc: dict[str, str] = {}          # original tensor -> local tensor name
        self.converted: dict[tuple[str, str], str] = {}   # (tensor, layout) -> local name
        self.plan = SplitPlan(n, [b.graph for b in self.b])

    # -- helpers ---------------------------------------------------------------------------
    def err(self, op: Op, why: str) -> ConfigError:
        return ConfigError(f"policy {self.policy!r}: op {op.name!r} ({op.kind}): {why}")

    def devs(self, layout: str) -> range:
        return range(1) if layout == "root" else range(self.n)

    def shares(self, count: int) -> list[int]:
        """Channels of each device when a dense layer's `count` are split (as even as can be:
        the first count % N devices take one more)."""
        return [count // self.n + (1 if d < count % self.n else 0) for d in range(self.n)]

    def add_raw(self, devs, name: str, kind: str, src: str, out_shape, attrs=None) -> str:
        """An op the original graph does not have; out_shape(d) gives its shape on device d."""
        for d in devs:
            b = self.b[d]
            spec = b.spec(src)
            b.graph.add(Op(name, kind, (src,), (spec,), TensorSpec(tuple(out_shape(d)),
                                                                     spec.dtype_bytes),
                           attrs=dict(attrs or {})))
        return name

    def exchange(self, kind: str, op: Op, src: str, consumer: str, piece_bytes) -> None:
        """piece_bytes: what one source sends to one destination, a number or one per device."""
        pieces = [int(p) for p in (piece_bytes if isinstance(piece_bytes, list)
                                   else [piece_bytes] * self.n)]
        self.plan.exchanges.append(Exchange(kind, f"{op.name}.{kind}", src, consumer, pieces))

    def gathered_shape(self, src: str) -> tuple[int, ...]:
        spec = self.b[0].spec(src)
        channels = sum(b.spec(src).shape[1] for b in self.b)
        return (spec.shape[0], channels, *spec.shape[2:])

    def as_split(self, t: str, op: Op) -> str:
        """The local split view of tensor t (a full tensor is sliced for free)."""
        lay = self.layout[t]
        if lay == "split":
            return self.loc[t]
        if (t, "split") in self.converted:
            return self.converted[(t, "split")]
        if lay == "full":
            full = self.b[0].spec(self.loc[t]).shape
            split = self.shares(full[1])
            # each device takes its own channel range of the full tensor: a view, no copy
            starts = [sum(split[:d]) for d in range(self.n)]
            for d in range(self.n):
                self.b[d].slice(self.loc[t], starts[d], starts[d] + split[d], dim=1,
                                name=f"{t}.slice")
            name = f"{t}.slice"
            self.converted[(t, "split")] = name
            return name
        raise self.err(op, f"reads {t!r}, which only device 0 holds")

    def as_full(self, t: str, op: Op) -> str:
        """The full tensor on every device: an all-gather of a split one (layer-wise MP)."""
        lay = self.layout[t]
        if lay == "full":
            return self.loc[t]
        if (t, "full") in self.converted:
            return self.converted[(t, "full")]
        if lay != "split":
            raise self.err(op, f"reads {t!r}, which only device 0 holds")
        if self.mode == "decnn":
            raise self.err(op, "is dense but reads channel-split data; decnn needs a "
                               "decoupled network (workload decnn_resnet50) or use policy "
                               "layerwise-mp")
        src = self.loc[t]
        shape = self.gathered_shape(src)
        name = self.add_raw(range(self.n), f"{t}.gathered", "concat", src, lambda d: shape,
                            {"dim": 1})
        self.exchange("allgather", self.g.op(t), src, name,
                      [b.spec(src).nbytes for b in self.b])
        self.converted[(t, "full")] = name
        return name

    # -- the walk --------------------------------------------------------------------------
    def walk(self) -> SplitPlan:
        n = self.n
        for op in self.g.topo():
            if op.phase != "forward":
                continue
            k = op.kind
            if k == "input":
                for b in self.b:
                    b.input(name=op.name)
                self.set(op, op.name, "full")
                if n > 1:
                    self.exchange("broadcast", op, op.name, op.name, op.out.nbytes)
            elif n == 1:
                self.local_same(op, [self.loc[i] for i in op.inputs], "full")
            elif k == "conv2d":
                self.conv(op)
            elif k == "linear":
                self.linear(op)
            elif k == "channel_shuffle":
                self.shuffle(op)
            elif k in ELEMENTWISE:
                lay = self.layout[op.inputs[0]]
                self.local_same(op, [self.loc[op.inputs[0]]], lay)
            elif k == "add":
                lays = {self.layout[i] for i in op.inputs}
                if lays == {"root"}:
                    self.local_same(op, [self.loc[i] for i in op.inputs], "root")
                elif lays == {"full"}:
                    self.local_same(op, [self.loc[i] for i in op.inputs], "full")
                else:
                    self.local_same(op, [self.as_split(i, op) for i in op.inputs], "split")
            else:
                raise self.err(op, f"this policy cannot split op kind {k!r} across devices")
        last = self.g.topo()[-1]
        end = self.loc[last.name]
        if self.layout[last.name] == "split" and n > 1:
            src = end
            shape = self.gathered_shape(src)
            end = self.add_raw(range(1), f"{last.name}.gathered", "concat", src,
                               lambda d: shape, {"dim": 1})
            self.exchange("gather", last, src, end, [b.spec(src).nbytes for b in self.b])
        self.plan.final = end
        for b in self.b:
            b.graph.validate()
        return self.plan

    def set(self, op: Op, local: str, layout: str) -> None:
        self.loc[op.name] = local
        self.layout[op.name] = layout

    def local_same(self, op: Op, ins: list[str], layout: str) -> None:
        """The op itself on each device that holds the data, with its local shapes."""
        for d in self.devs(layout):
            b = self.b[d]
            a = op.attrs
            k = op.kind
            if k == "conv2d":
                b.conv2d(ins[0], a["out_channels"], a["kernel"], a["stride"], a["padding"],
                         a["dilation"], a["groups"], a["bias"], name=op.name)
            elif k == "linear":
                b.linear(ins[0], a["out_features"], a["bias"], name=op.name)
            elif k in ("maxpool", "avgpool"):
                getattr(b, k)(ins[0], a["kernel"], a["stride"], a["padding"], name=op.name)
            elif k == "adaptive_avgpool":
                b.adaptive_avgpool(ins[0], a["output_size"], name=op.name)
            elif k == "channel_shuffle":
                b.channel_shuffle(ins[0], a["groups"], name=op.name)
            elif k == "dropout":
                b.dropout(ins[0], a["p"], name=op.name)
            elif k == "add":
                b.add(ins[0], ins[1], name=op.name)
            elif k in ACTIVATIONS:
                b.activation(ins[0], k, name=op.name, **a)
            else:   # batchnorm, relu, flatten
                getattr(b, k)(ins[0], name=op.name)
        self.set(op, op.name, layout)

    def conv(self, op: Op) -> None:
        a = op.attrs
        groups = a["groups"]
        if groups > 1:
            if groups < self.n:
                raise self.err(op, f"more devices ({self.n}) than channel groups ({groups})")
            if groups % self.n:
                raise self.err(op, f"its {groups} channel groups do not divide among "
                                   f"{self.n} devices")
            x = self.as_split(op.inputs[0], op)
            self.local_conv(op, x, a["out_channels"] // self.n, groups // self.n)
            return
        x = self.as_full(op.inputs[0], op)
        if a["out_channels"] < self.n:
            raise self.err(op, f"more devices ({self.n}) than its {a['out_channels']} output "
                               f"channels")
        self.local_conv(op, x, self.shares(a["out_channels"]), 1)

    def local_conv(self, op: Op, x: str, out_channels, groups: int) -> None:
        a = op.attrs
        for d, b in enumerate(self.b):
            out = out_channels[d] if isinstance(out_channels, list) else out_channels
            b.conv2d(x, out, a["kernel"], a["stride"], a["padding"], a["dilation"],
                     groups, a["bias"], name=op.name)
        self.set(op, op.name, "split")

    def linear(self, op: Op) -> None:
        a = op.attrs
        lay = self.layout[op.inputs[0]]
        if lay == "root":
            self.local_same(op, [self.loc[op.inputs[0]]], "root")
        elif self.mode == "decnn" and lay == "split":
            # split by input: a slice of the features and the matching weight columns on each
            # device; the partial outputs are summed on device 0
            x = self.loc[op.inputs[0]]
            for d, b in enumerate(self.b):
                b.linear(x, a["out_features"], a["bias"] and d == 0, name=op.name)
            out_spec = self.b[0].spec(op.name)
            total = self.add_raw(range(1), f"{op.name}.sum", "add", op.name,
                                 lambda d: out_spec.shape)
            self.exchange("reduce", op, op.name, total, out_spec.nbytes)
            self.set(op, total, "root")
        elif self.mode == "decnn":    # dense classifier on replicated data: device 0 alone
            for b in self.b[:1]:
                b.linear(self.loc[op.inputs[0]], a["out_features"], a["bias"], name=op.name)
            self.set(op, op.name, "root")
        else:                          # layer-wise: split by output features
            x = self.as_full(op.inputs[0], op)
            if a["out_features"] < self.n:
                raise self.err(op, f"more devices ({self.n}) than its {a['out_features']} "
                                   f"output features")
            out = self.shares(a["out_features"])
            for d, b in enumerate(self.b):
                b.linear(x, out[d], a["bias"], name=op.name)
            self.set(op, op.name, "split")

    def shuffle(self, op: Op) -> None:
        groups = op.attrs["groups"]
        lay = self.layout[op.inputs[0]]
        if lay != "split":
            self.local_same(op, [self.loc[op.inputs[0]]], lay)
            return
        if groups < self.n or groups % self.n:
            raise self.err(op, f"its {groups} channel groups do not divide among {self.n} "
                               f"devices")
        x = self.loc[op.inputs[0]]
        for b in self.b:   # the local regrouping of the received pieces
            b.channel_shuffle(x, groups // self.n, name=op.name)
        self.exchange("all_to_all", op, x, op.name, self.b[0].spec(x).nbytes // self.n)
        self.set(op, op.name, "split")


def split_plan(graph: OpGraph, n: int, mode: str, policy: str) -> SplitPlan:
    return _Walker(graph, n, mode, policy).walk()
