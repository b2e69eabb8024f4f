"""How close constants per GPU family can bring the model to the published kernel tables.

A model whose efficiencies are per architecture (and whose kernels are per library release)
scales every kernel of a class alike. Its best case on a table is an oracle that rescales each
class of rows by the one constant that minimises that class's mean absolute percentage error;
no model may ship that, but no model of class-wide constants beats it. `floor_table` gives
that oracle's error for coarser and finer classes, from one constant per kind down to one per
GPU, shape class and algorithm.

A second measure needs no model constant at all: pairs of rows that differ in one thing, the
same convolution pass on one GPU at batch N and 2N, or the same GEMM with A untransposed (NN)
and transposed (TN). Whatever constant applies to the shape cancels in (measured b /
measured a) / (model b / model a); its spread is per-shape behaviour the model does not have
(which tile or algorithm the library picked for each), and a model scaled per class keeps
it.

    python -m validation.calibrate.kernel_floor [kernels.csv] [--classes N]
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import published_kernels as pk
from .published_gpu import PUBLISHED_DIR, PublishedDataError


@dataclass(frozen=True)
class RowError:
    """A kernel row's model time over its measured time, with what classes it."""
    row_id: str
    kind: str
    gpu: str
    shape_class: str
    algorithm: str       # the algorithm the score costs (the recorded one where there is one)
    layer: tuple         # the shape without what its pair varies: a convolution pass's
    variant: int | str   # without its batch (the variant); a GEMM's m, n, k (the transposes)
    ratio: float         # simulated / measured

    @property
    def error(self) -> float:
        return self.ratio - 1.0


def _bucket(x: int, edges: tuple[int, ...], names: tuple[str, ...]) -> str:
    return next((name for edge, name in zip(edges, names, strict=False) if x <= edge),
                names[-1])


def shape_class(row: pk.KernelRow) -> str:
    """A GEMM's transposes, narrow side and whether its reduction is long; a convolution's
    filter and stride and its input channels."""
    a = row.op.attrs
    if row.kind == "gemm":
        m, n, k = a["batch_rows"], a["out_features"], a["in_features"]
        narrow = _bucket(min(m, n), (16, 64, 256), ("<=16", "<=64", "<=256", ">256"))
        long_k = " long K" if k >= 8 * max(m, n) else ""
        return f"{a.get('cublas_transposes', 'NN')} narrow {narrow}{long_k}"
    (r, s), (sh, _) = a["kernel"], a["stride"]
    c = a["in_shape"][1]
    return f"{r}x{s} stride {sh} C {_bucket(c, (3, 64), ('<=3', '<=64', '>64'))}"


def row_errors(rows: Iterable[pk.KernelRow]) -> list[RowError]:
    """Each row scored as `dnnsim validate --kernels` scores it (the shipped constants)."""
    out = []
    for row in rows:
        a = row.op.attrs
        conv = row.kind != "gemm"
        layer = ((row.kind, *a["in_shape"][1:], *a["out_shape"][1:], *a["kernel"],
                  *a["stride"], *a.get("padding", (0, 0))) if conv
                 else (a["batch_rows"], a["out_features"], a["in_features"]))
        algorithm = row.algorithm or pk.model_algorithm(row)
        out.append(RowError(row.row_id, row.kind, row.gpu, shape_class(row), algorithm,
                            layer, a["in_shape"][0] if conv else a["cublas_transposes"],
                            pk.simulate_kernel(row) / row.time_s))
    return out


def best_scale(ratios: list[float]) -> float:
    """The c that minimises sum |c r - 1|: as sum r |c - 1/r|, the weighted median of 1/r
    with weights r."""
    pairs = sorted((1.0 / r, r) for r in ratios)
    half, total = sum(ratios) / 2.0, 0.0
    for value, weight in pairs:
        total += weight
        if total >= half:
            return value
    return pairs[-1][0]


def oracle_mape(errors: list[RowError], key: Callable[[RowError], object]) -> float:
    """Mean absolute percentage error once each class (rows of one `key`) is rescaled by its
    own best constant."""
    classes: dict[object, list[float]] = defaultdict(list)
    for e in errors:
        classes[key(e)].append(e.ratio)
    total = sum(abs(best_scale(rs) * r - 1.0) for rs in classes.values() for r in rs)
    return 100.0 * total / len(errors)


def mape(errors: list[RowError]) -> float:
    return 100.0 * sum(abs(e.error) for e in errors) / len(errors)


# coarse to fine: each class set refines the one before it
GRANULARITIES: tuple[tuple[str, Callable[[RowError], object]], ...] = (
    ("one constant", lambda e: 0),
    ("per GPU", lambda e: e.gpu),
    ("per GPU x shape class", lambda e: (e.gpu, e.shape_class)),
    ("per GPU x shape class x algorithm", lambda e: (e.gpu, e.shape_class, e.algorithm)),
    # class_table's classes are the last
)


def _partner(variant: int | str) -> int | str | None:
    """What a row's pair varies to: batch N -> 2N; NN -> TN."""
    if isinstance(variant, int):
        return 2 * variant
    return "TN" if variant == "NN" else None


def pair_spread(errors: list[RowError]) -> tuple[int, float]:
    """(pairs, spread) over every pair of rows of one GPU and shape that differ only in the
    batch (N and 2N) or the transposes (NN and TN): the standard deviation of
    log((measured b / measured a) / (model b / model a)), which any constant of the shape's
    class cancels out of."""
    by_shape = {(e.gpu, e.layer, e.variant): e.ratio for e in errors}
    logs = []
    for (gpu, layer, variant), ratio in by_shape.items():
        partner = _partner(variant)
        if partner is not None and (gpu, layer, partner) in by_shape:
            logs.append(math.log(by_shape[(gpu, layer, partner)] / ratio))
    if len(logs) < 2:
        return len(logs), 0.0
    mean = sum(logs) / len(logs)
    return len(logs), math.sqrt(sum((x - mean) ** 2 for x in logs) / len(logs))


def floor_table(errors: list[RowError]) -> str:
    """Per kind: rows, MAPE, the oracle's MAPE at each of GRANULARITIES, and the pair
    spread (standard deviation of the log ratio, as a percentage)."""
    lines = ["oracle: each class of rows rescaled by its own best constant, the classes",
             "  " + "; ".join(f"({i}) {name}" for i, (name, _) in enumerate(GRANULARITIES, 1)),
             "pairs: one shape and GPU at batch N and 2N (convolutions), NN and TN (GEMMs); "
             "spread: of (measured b/a) / (model b/a)",
             f"{'kind':20s} {'rows':>5s} {'MAPE':>6s}  "
             + "  ".join(f"{f'oracle ({i})':>11s}" for i in range(1, len(GRANULARITIES) + 1))
             + f"  {'pairs':>5s} {'spread':>6s}"]
    for kind in pk.KERNEL_KINDS:
        sel = [e for e in errors if e.kind == kind]
        if not sel:
            continue
        floors = "  ".join(f"{oracle_mape(sel, key):10.1f}%" for _, key in GRANULARITIES)
        pairs, spread = pair_spread(sel)
        tail = f"{pairs:5d} {100 * spread:5.1f}%" if pairs else f"{'-':>5s} {'-':>6s}"
        lines.append(f"{kind:20s} {len(sel):5d} {mape(sel):5.1f}%  {floors}  {tail}")
    return "\n".join(lines)


def class_table(errors: list[RowError], top: int) -> str:
    """Per kind, its `top` classes of GPU x shape class x algorithm by their share of the
    kind's absolute error: rows, share, MAPE, signed bias (the mean error) and the oracle's
    MAPE within the class. A class whose oracle is far below its MAPE misses coherently (a
    mechanism the model lacks, or a constant); one whose oracle is near it scatters."""
    def key(e: RowError) -> tuple[str, str, str]:
        return e.gpu, e.shape_class, e.algorithm

    lines = []
    for kind in pk.KERNEL_KINDS:
        sel = [e for e in errors if e.kind == kind]
        if not sel:
            continue
        total = sum(abs(e.error) for e in sel)
        classes: dict[tuple[str, str, str], list[RowError]] = defaultdict(list)
        for e in sel:
            classes[key(e)].append(e)
        ranked = sorted(classes.items(),
                        key=lambda kv: (-sum(abs(e.error) for e in kv[1]), str(kv[0])))
        lines.append(f"{kind}: {len(sel)} rows, MAPE {mape(sel):.1f}%")
        for (gpu, shape, algorithm), members in ranked[:top]:
            share = 100.0 * sum(abs(e.error) for e in members) / total
            bias = 100.0 * sum(e.error for e in members) / len(members)
            lines.append(f"  {gpu:16s} {shape:28s} {algorithm:18s} {len(members):4d} rows  "
                         f"share {share:4.1f}%  MAPE {mape(members):5.1f}%  "
                         f"bias {bias:+6.1f}%  oracle {oracle_mape(members, key):5.1f}%")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.calibrate.kernel_floor",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("kernels", nargs="?", default=PUBLISHED_DIR + "/kernels.csv",
                        help="a kernel table in kernels.csv's columns (default: the committed "
                             "one)")
    parser.add_argument("--classes", type=int, default=0, metavar="N",
                        help="also list each kind's N classes (GPU x shape class x "
                             "algorithm) with the largest share of its error")
    args = parser.parse_args(argv)
    if args.classes < 0:
        parser.error(f"--classes must be 0 or more, got {args.classes}")
    try:
        table = pk.read_kernel_rows(args.kernels)
    except PublishedDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not table.rows:
        print(f"error: {args.kernels}: no kernel row could be simulated "
              f"({len(table.skipped)} skipped)", file=sys.stderr)
        return 2
    errors = row_errors(table.rows)
    print(floor_table(errors))
    if args.classes:
        print()
        print(class_table(errors, args.classes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
