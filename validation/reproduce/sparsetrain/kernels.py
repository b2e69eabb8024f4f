"""SparseTrain's kernels one layer at a time: speedup over the dense direct convolution against
the sparsity of uniform random zeros, per kernel kind, batch 16 (as the authors' testers run).

    python -m validation.reproduce.sparsetrain.kernels OUT_DIR [--fma-units 1 2]

writes OUT_DIR/sparsetrain_kernels.csv (one row per layer, kind, FMA-unit count and sparsity
0, 5, ..., 95%) and OUT_DIR/sparsetrain_kernels.png; `dnnsim reproduce --only sparsetrain`
writes both into its figures. Every value is the instruction-cost model of hwmodels/cpu_conv.py
(costs from hwmodels/catalog/x86_instructions.toml: vcmpps, kmovw, popcnt, tzcnt, blsr,
vbroadcastss, vfmadd231ps on Skylake-X); nothing is fitted to a paper figure. Columns:

    speedup            dense kernel cycles / sparse kernel cycles at that sparsity
    fma_bound_speedup  dense kernel cycles / the sparse kernel's FMA-bound limit (its non-zero
                       FMAs on the FMA ports plus the loops around them both kernels share):
                       no sparse kernel beats it
    breakeven          the least sparsity (1% grid) from which on the sparse kernel wins

Existing files are never overwritten.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hwmodels import catalog
from hwmodels.cpu_conv import CPUDirectConv
from simulator.outputs import write_atomically
from simulator.trace import subplots
from workloads import zoo
from workloads.graph import Op
from workloads.training import lower_training

from ..plotting import save

HARDWARE = "skylake-x-6c"
BATCH = 16
# Layers of the networks the paper measures, one per register block the kernels build: the
# model's curve depends on the kernel, the stride and the channel vectors only (every 3x3 layer
# of 128 channels or more streams its weights from L2 like VGG16's conv3_2), so each other layer
# of VGG16 and the ResNets follows one of these. 3x3 with 4 channel blocks (weights in L1) and
# with 8 (weights from L2), a strided 3x3, and 1x1 layers that feed 4 or 8 FMAs per non-zero.
LAYERS = (("vgg16", "features.2"), ("vgg16", "features.12"), ("resnet34", "layer3.0.conv1"),
          ("resnet50", "layer1.1.conv1"), ("resnet50", "layer1.0.conv3"))
KIND_SUFFIX = {"forward": "", "grad_input": ".grad_input", "grad_weight": ".grad_weight"}
SPARSITY_GRID = tuple(i / 20 for i in range(20))      # 0 .. 0.95
SUMMARY_SPARSITIES = (0.5, 0.7, 0.9)
FMA_UNITS = (1, 2)
FIELDS = ["network", "layer", "shape", "kind", "fma_units", "fmas_per_nonzero", "sparsity",
          "dense_cycles", "sparse_cycles", "speedup", "fma_bound_speedup", "breakeven"]


class KernelSweepError(Exception):
    pass


@lru_cache(maxsize=8)
def _training_graph(network: str):
    return lower_training(zoo.get(network, batch=BATCH))


def layer_ops(network: str, layer: str) -> dict[str, Op]:
    """The layer's three conv kernels (forward, backward by input, backward by weights)."""
    graph = _training_graph(network)
    ops = {kind: graph.op(layer + suffix) for kind, suffix in KIND_SUFFIX.items()
           if layer + suffix in graph}
    if set(ops) != set(KIND_SUFFIX):
        raise KernelSweepError(f"{network} layer {layer!r}: needs its forward and both "
                               f"backward convolutions, found {sorted(ops)}")
    return ops


def shape_label(op: Op) -> str:
    a = op.attrs
    k, s = int(a["kernel"][0]), int(a["stride"][0])
    return f"{k}x{k}{'/' + str(s) if s > 1 else ''} {a['in_channels']}->{a['out_channels']}"


def model(fma_units: int) -> CPUDirectConv:
    return CPUDirectConv(catalog.device(HARDWARE).with_options(fma_units_per_core=fma_units))


def fma_bound_cycles(conv: CPUDirectConv, op: Op, sparsity: float) -> float:
    """The sparse kernel's least possible cycles: the non-zeros' FMAs on the FMA ports, plus
    the loops and data around the FMA loop that both kernels share."""
    per_fma = 1.0 / conv.fma_units
    return (1.0 - sparsity) * conv.vector_fmas(op) * per_fma + conv.outer_cycles(op)


def kernel_rows(fma_units=FMA_UNITS, layers=LAYERS, grid=SPARSITY_GRID) -> list[dict]:
    rows = []
    for units in fma_units:
        conv = model(units)
        for network, layer in layers:
            for kind, op in layer_ops(network, layer).items():
                dense = conv.dense_cycles(op)
                breakeven = conv.breakeven_sparsity(op)
                for s in grid:
                    sparse = conv.sparse_cycles(op, s)
                    rows.append({
                        "network": network, "layer": layer, "shape": shape_label(op),
                        "kind": kind, "fma_units": units,
                        "fmas_per_nonzero": conv.fmas_per_scalar(op), "sparsity": s,
                        "dense_cycles": dense, "sparse_cycles": sparse,
                        "speedup": dense / sparse,
                        "fma_bound_speedup": (dense / fma_bound_cycles(conv, op, s)
                                              if s < 1 else float("inf")),
                        "breakeven": breakeven})
    return rows


@dataclass(frozen=True)
class KernelSummary:
    network: str
    layer: str
    shape: str
    kind: str
    fma_units: int
    breakeven: float
    speedups: tuple[float, ...]     # at SUMMARY_SPARSITIES


def summarise(rows: list[dict]) -> list[KernelSummary]:
    out: dict[tuple, KernelSummary] = {}
    for r in rows:
        key = (r["fma_units"], r["network"], r["layer"], r["kind"])
        if key in out:
            continue
        at = {round(x["sparsity"], 6): x["speedup"] for x in rows
              if (x["fma_units"], x["network"], x["layer"], x["kind"]) == key}
        out[key] = KernelSummary(r["network"], r["layer"], r["shape"], r["kind"],
                                 r["fma_units"], r["breakeven"],
                                 tuple(at[s] for s in SUMMARY_SPARSITIES))
    return list(out.values())


def markdown_table(summaries: list[KernelSummary]) -> str:
    """Break-even sparsity and speedups at 50/70/90% per kernel, one and two FMA units side by
    side (docs/seed-techniques.md carries this table; a test keeps the two the same)."""
    by_key = {(s.network, s.layer, s.kind, s.fma_units): s for s in summaries}
    cols = " | ".join(f"{int(p * 100)}%" for p in SUMMARY_SPARSITIES)
    lines = [f"| layer | kind | 1 unit: break-even | {cols} | 2 units: break-even | {cols} |",
             "| --- | --- | --- | " + "--- | " * len(SUMMARY_SPARSITIES) + "--- | "
             + "--- | " * len(SUMMARY_SPARSITIES)]
    lines[1] = lines[1].rstrip()
    for s in summaries:
        if s.fma_units != 1:
            continue
        cells = [f"{s.network} {s.layer} ({s.shape})", s.kind]
        for units in (1, 2):
            other = by_key.get((s.network, s.layer, s.kind, units))
            if other is None:
                cells += ["-"] * (1 + len(SUMMARY_SPARSITIES))
                continue
            cells.append(f"{other.breakeven:.0%}" if other.breakeven < 1 else "never")
            cells += [f"{v:.2f}x" for v in other.speedups]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv_value(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("x", newline="") as fh:   # "x": an existing file is never overwritten
        fh.write(f"# SparseTrain kernel model on {HARDWARE}, batch {BATCH}, uniform random "
                 f"zeros: hwmodels/cpu_conv.py (instruction costs; nothing fitted)\n")
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        for r in rows:
            writer.writerow([_csv_value(r[f]) for f in FIELDS])
    return path


def plot(path: Path, rows: list[dict]) -> Path:
    units = sorted({r["fma_units"] for r in rows})
    kinds = list(KIND_SUFFIX)
    fig, axes = subplots(len(units), len(kinds), figsize=(14, 4 * len(units)), sharey=True,
                         squeeze=False)
    layers = list(dict.fromkeys((r["network"], r["layer"], r["shape"]) for r in rows))
    for i, u in enumerate(units):
        for j, kind in enumerate(kinds):
            ax = axes[i][j]
            for n, (net, layer, shape) in enumerate(layers):
                pts = [r for r in rows if (r["fma_units"], r["kind"], r["network"],
                                           r["layer"]) == (u, kind, net, layer)]
                ax.plot([r["sparsity"] for r in pts], [r["speedup"] for r in pts],
                        color=f"C{n % 10}", lw=1.2, label=f"{net} {layer} ({shape})")
            ax.axhline(1.0, color="k", lw=0.5)
            ax.set_yscale("log", base=2)
            ax.set_title(f"{kind.replace('_', ' ')}, {u} FMA unit{'s' if u > 1 else ''}/core")
            ax.set_xlabel("sparsity (uniform random zeros)")
        axes[i][0].set_ylabel("speedup over the dense direct conv")
    axes[0][0].legend(fontsize=6)
    fig.suptitle(f"SparseTrain kernels (model), {HARDWARE}, batch {BATCH}")
    return save(fig, path)


def write(out_dir: Path, fma_units=FMA_UNITS, replace: bool = False) -> tuple[Path, Path]:
    """The CSV and the plot into out_dir; unless `replace` (the reproduce report's own
    folder), neither may exist yet."""
    csv_path = out_dir / "sparsetrain_kernels.csv"
    png_path = out_dir / "sparsetrain_kernels.png"
    for p in (csv_path, png_path):
        if p.exists() and not replace:
            raise KernelSweepError(f"{p} exists; give a new folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = kernel_rows(fma_units)
    write_atomically(csv_path, lambda tmp: write_csv(tmp, rows))
    return csv_path, plot(png_path, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path, help="folder for the CSV and the plot")
    ap.add_argument("--fma-units", type=int, nargs="+", default=list(FMA_UNITS),
                    help="AVX-512 FMA units per core to sweep (1, 2 or both)")
    args = ap.parse_args(argv)
    bad = [u for u in args.fma_units if u not in FMA_UNITS]
    if bad:
        print(f"kernels: --fma-units takes 1 or 2, got {bad}", file=sys.stderr)
        return 2
    if args.out_dir.exists() and not args.out_dir.is_dir():
        print(f"kernels: {args.out_dir} is not a folder", file=sys.stderr)
        return 2
    try:
        paths = write(args.out_dir, tuple(dict.fromkeys(args.fma_units)))
    except KernelSweepError as e:
        print(f"kernels: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
