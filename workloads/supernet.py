"""One-shot NAS supernets: a single-path search space, a seeded path sampler, and the op graph
of one subnet or of several subnets merged into a prefix tree.

The search space is SPOS's (Guo et al. 2020): a fixed stem, L choice blocks in stages, a fixed
head; every block picks one of k candidates, ShuffleNetV2 units with a 3x3, 5x5 or 7x7
depthwise kernel, or an Xception-like unit of three depthwise 3x3 convs. A subnet (a path) is
one choice per block; uniform single-path sampling draws each choice independently.

ShuffleNetV2 splits the channels in two, runs a branch on one half and concatenates. The builder
has no split op, so a stride-1 unit is modelled as a residual unit whose 1x1 convs are 2-group
convs: the same multiply-adds and parameters as the branch on half the channels, with a cheap
elementwise add where the concat was. Downsampling units (the first of a stage) are exact.

Merging (path parallelism): paths that make the same choices in blocks 0..i see the same
minibatch through those blocks, so they are computed once; the tree forks where the choices
differ, and training lowering sums the children's gradients at the fork (a grad_accumulate op).
Every forward op carries `attrs["supernet_unit"]` (stem, b<i>c<choice>, head) and
`attrs["supernet_param"]` (the supernet weight it uses), so policies can tell which supernet
weights a graph trains, whatever the tree looks like.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np

from .builder import GraphBuilder
from .graph import Op, OpGraph, WorkloadError

CANDIDATES = ("shuffle3", "shuffle5", "shuffle7", "xception")


@dataclass(frozen=True)
class BlockSpec:
    index: int
    in_channels: int
    out_channels: int
    stride: int


@dataclass(frozen=True)
class SearchSpace:
    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    stem_channels: int
    stem_stride: int
    stem_pool: bool                       # a 3x3 stride-2 max pool after the stem (ImageNet)
    stage_repeats: tuple[int, ...]
    stage_channels: tuple[int, ...]
    first_stage_stride: int
    last_channels: int                    # the 1x1 conv before the pool
    candidates: tuple[str, ...] = CANDIDATES

    @property
    def num_blocks(self) -> int:
        return sum(self.stage_repeats)

    @property
    def num_choices(self) -> int:
        return len(self.candidates)

    def blocks(self) -> list[BlockSpec]:
        out: list[BlockSpec] = []
        cin = self.stem_channels
        for stage, (repeats, cout) in enumerate(zip(self.stage_repeats, self.stage_channels,
                                                         strict=True)):
            for i in range(repeats):
                stride = (self.first_stage_stride if stage == 0 else 2) if i == 0 else 1
                out.append(BlockSpec(len(out), cin, cout, stride))
                cin = cout
        return out

    def check_choices(self, choices: Sequence[int], what: str = "choices") -> tuple[int, ...]:
        """The choices as a tuple, or a WorkloadError naming the block that is out of range."""
        try:
            path = tuple(int(c) for c in choices)
        except (TypeError, ValueError):
            raise WorkloadError(f"{self.name}: {what} must be integers, got {choices!r}") from None
        if len(path) != self.num_blocks:
            raise WorkloadError(f"{self.name}: {what} has {len(path)} entries; the search space "
                                f"has {self.num_blocks} choice blocks")
        for i, c in enumerate(path):
            if not 0 <= c < self.num_choices:
                raise WorkloadError(f"{self.name}: {what}[{i}] = {c} is out of range; block {i} "
                                    f"has candidates 0..{self.num_choices - 1} "
                                    f"({', '.join(self.candidates)})")
        return path


# SPOS ShuffleNetV2 space on ImageNet (its Supernet code: 3x3/2 stem of 16, no pool, four
# strided stages, 7x7 before the pool): 20 blocks (4, 4, 8, 4), 4 candidates each.
SPOS_IMAGENET = SearchSpace("spos_supernet", (3, 224, 224), 1000, stem_channels=16,
                            stem_stride=2, stem_pool=False, stage_repeats=(4, 4, 8, 4),
                            stage_channels=(64, 160, 320, 640), first_stage_stride=2,
                            last_channels=1024)
# A small space on CIFAR-10 for tests and teaching: 8 blocks, no stem downsampling.
SPOS_CIFAR = SearchSpace("spos_cifar", (3, 32, 32), 10, stem_channels=16, stem_stride=1,
                         stem_pool=False, stage_repeats=(2, 2, 2, 2),
                         stage_channels=(32, 64, 128, 256), first_stage_stride=1,
                         last_channels=512)
SPACES = {s.name: s for s in (SPOS_IMAGENET, SPOS_CIFAR)}


def sample_paths(space: SearchSpace, count: int, seed: int = 0) -> list[tuple[int, ...]]:
    """`count` paths drawn uniformly (each block's choice independent), from a seeded Generator."""
    if not isinstance(count, int) or count < 1:
        raise WorkloadError(f"number of paths must be an integer >= 1, got {count!r}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, space.num_choices, size=(count, space.num_blocks))
    return [tuple(int(c) for c in row) for row in draws]


# -- units ----------------------------------------------------------------------------------
def _stem(b: GraphBuilder, x: str, space: SearchSpace) -> str:
    x = b.conv2d(x, space.stem_channels, 3, stride=space.stem_stride, padding=1, name="conv")
    x = b.relu(b.batchnorm(x, name="bn"), name="relu")
    return b.maxpool(x, 3, stride=2, padding=1, name="pool") if space.stem_pool else x


def _pw(b, x, out, groups, name, relu=True):
    y = b.batchnorm(b.conv2d(x, out, 1, groups=groups, name=name), name=f"{name}_bn")
    return b.relu(y, name=f"{name}_relu") if relu else y


def _dw(b, x, kernel, stride, name):
    c = b.spec(x).shape[1]
    y = b.conv2d(x, c, kernel, stride=stride, padding=kernel // 2, groups=c, name=name)
    return b.batchnorm(y, name=f"{name}_bn")


def _branch(b, x, kind: str, mid: int, out: int, stride: int, groups: int) -> str:
    """The main branch: 1x1, depthwise kxk, 1x1 (ShuffleNetV2) or 3x (dw3x3, 1x1) (Xception)."""
    if kind == "xception":
        y = _pw(b, _dw(b, x, 3, stride, "dw1"), mid, groups, "pw1")
        y = _pw(b, _dw(b, y, 3, 1, "dw2"), mid, 1, "pw2")
        return _pw(b, _dw(b, y, 3, 1, "dw3"), out, groups, "pw3")
    kernel = int(kind.removeprefix("shuffle"))
    y = _pw(b, x, mid, groups, "pw1")
    y = _dw(b, y, kernel, stride, "dw")
    return _pw(b, y, out, groups, "pw2")


def _choice_block(b: GraphBuilder, x: str, block: BlockSpec, kind: str) -> str:
    mid = block.out_channels // 2
    if block.stride == 1 and block.in_channels == block.out_channels:
        y = _branch(b, x, kind, mid, block.out_channels, 1, groups=2)
        return b.channel_shuffle(b.add(x, y, name="merge"), 2, name="shuffle")
    main = _branch(b, x, kind, mid, block.out_channels - block.in_channels, block.stride, 1)
    kernel = 3 if kind == "xception" else int(kind.removeprefix("shuffle"))
    proj = _pw(b, _dw(b, x, kernel, block.stride, "proj_dw"), block.in_channels, 1, "proj_pw")
    return b.channel_shuffle(b.concat([proj, main], name="merge"), 2, name="shuffle")


def _head(b: GraphBuilder, x: str, space: SearchSpace, with_loss: bool) -> str:
    x = _pw(b, x, space.last_channels, 1, "conv_last")
    x = b.flatten(b.adaptive_avgpool(x, (1, 1), name="pool"), name="flatten")
    x = b.linear(x, space.num_classes, name="fc")
    return b.softmax_xent(x, name="loss") if with_loss else x


def _tag(b: GraphBuilder, start: int, scope: str, unit: str) -> None:
    """Mark the ops added since `start`: which unit they belong to and which weight they use."""
    for op in b.graph.topo()[start:]:
        local = op.name[len(scope) + 1:] if op.name.startswith(scope + ".") else op.name
        op.attrs["supernet_unit"] = unit
        op.attrs["supernet_param"] = f"{unit}.{local}"


# -- graphs ---------------------------------------------------------------------------------
def subnet_graph(space: SearchSpace, choices: Sequence[int], batch: int = 1,
                 dtype_bytes: int = 4, with_loss: bool = False) -> OpGraph:
    """The forward graph of one subnet (ending at the logits unless with_loss)."""
    choices = space.check_choices(choices)
    return merged_graph(space, [choices], batch, dtype_bytes=dtype_bytes, merge=True,
                        with_loss=with_loss)


def merged_graph(space: SearchSpace, paths: Sequence[Sequence[int]], batch: int = 1,
                 dtype_bytes: int = 4, merge: bool = True, with_loss: bool = True) -> OpGraph:
    """Several subnets on one minibatch. merge=True: a prefix tree (shared prefixes computed
    once); merge=False: every path computed on its own (its own stem), sharing only the input.
    Each leaf ends in its own loss (with_loss), so training sums the gradients at each fork."""
    if not paths:
        raise WorkloadError(f"{space.name}: a merged graph needs at least one path")
    checked = [space.check_choices(p, f"path {k}") for k, p in enumerate(paths)]
    single = len(checked) == 1
    if single and not with_loss:
        name = f"{space.name}[{''.join(map(str, checked[0]))}]"
    else:
        name = f"{space.name}[{len(checked)} paths, {'merged' if merge else 'separate'}]"
    b = GraphBuilder(name, input_shape=space.input_shape, batch=batch, dtype_bytes=dtype_bytes,
                     search_space=space, paths=tuple(checked), merged=merge)
    x = b.input()
    blocks = space.blocks()

    def unit(scope: str, key: str, build) -> str:
        start = len(b.graph)
        with b.scope(scope):
            out = build()
        _tag(b, start, scope, key)
        return out

    def grow(x_in: str, i: int, members: list[int], tag: str) -> None:
        if i == len(blocks):
            scope = "head" if single else f"head.p{tag}"
            unit(scope, "head", lambda: _head(b, x_in, space, with_loss))
            return
        by_choice: dict[int, list[int]] = {}
        for k in members:
            by_choice.setdefault(checked[k][i], []).append(k)
        for c in sorted(by_choice):
            sub = by_choice[c]
            sub_tag = str(min(sub))      # unique: sibling subtrees hold disjoint paths
            key = f"b{i}c{c}"
            scope = key if single else f"{key}.p{sub_tag}"
            y = unit(scope, key, partial(_choice_block, b, x_in, blocks[i],
                                         space.candidates[c]))
            grow(y, i + 1, sub, sub_tag)

    if merge:
        stem = unit("stem", "stem", lambda: _stem(b, x, space))
        grow(stem, 0, list(range(len(checked))), "0")
    else:
        for k in range(len(checked)):
            stem = unit(f"stem.p{k}", "stem", lambda: _stem(b, x, space))
            grow(stem, 0, [k], str(k))
    return b.build()


def unit_of(graph: OpGraph, op: Op) -> str:
    """The supernet unit (stem, b<i>c<choice>, head) an op of a (training) graph belongs to."""
    fwd = op if op.phase == "forward" else graph.op(op.forward) if op.forward else op
    if fwd.kind == "input":
        return "stem"
    return fwd.attrs.get("supernet_unit", "head")   # the loss lowering adds belongs to the head


def param_key(graph: OpGraph, op: Op) -> str | None:
    """The supernet weight a parameterised op (forward, gradient or update) reads or writes."""
    fwd = op if op.phase == "forward" else graph.op(op.forward) if op.forward else op
    return fwd.attrs.get("supernet_param")


def search_space_of(graph: OpGraph) -> SearchSpace | None:
    space = graph.meta.get("search_space")
    return space if isinstance(space, SearchSpace) else None


def zoo_builder(space: SearchSpace):
    """A zoo entry: the graph of one subnet (choices, or one drawn with seed), with the search
    space in its meta so that supernet policies can draw and merge their own paths."""
    def build(batch: int = 1, choices=None, seed: int = 0, dtype_bytes: int = 4) -> OpGraph:
        if choices is None:
            choices = sample_paths(space, 1, seed)[0]
        elif isinstance(choices, str):
            choices = [c for c in choices.replace(",", " ").split()] if (
                "," in choices or " " in choices) else list(choices)
        return subnet_graph(space, choices, batch, dtype_bytes=dtype_bytes)
    build.__doc__ = f"{space.name}: one subnet of the supernet"
    return build
