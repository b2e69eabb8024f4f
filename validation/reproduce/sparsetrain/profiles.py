"""Sparsity profiles for `sparse-train`: the authors' sheets, and ours measured in PyTorch.

Registered as entry points of the group "dnnsim.sparsity_profiles" (pyproject.toml), so the
policy finds them by name without the simulator importing validation:

    --sparsity authors              the authors' rows for the simulated network
    --sparsity authors:resnet50     the resnet50 rows applied to another network of the same
                                    ReLU structure (Fixup ResNet-50: the sheets have none)
    --sparsity measured             validation/measured/sparsetrain_sparsity_measured.csv
                                    (sparsity.py beside this file, the DigitsCNN network)

Mapping the authors' naming to the zoo (validation/measured/sparsetrain_sparsity.csv):
- VGG16: `convI` is the ReLU after the I-th conv (features.1, .3, .6, ...), `poolI` the I-th
  max-pool (features.4, .9, ...), `fc1`/`fc2` the ReLUs after the first two linears. A row is
  the layer's *output*: conv0 cannot be the network input (images have no zeros), and each
  pool row is below the conv row before it, as max-pooling a ReLU output must be.
- ResNets: row I is the I-th ReLU output in forward order: row 1 the stem's ReLU, then per
  block its ReLUs in order (basic: relu, relu2; bottleneck: relu, relu2, relu3), the last one
  after the residual add. ResNet-34: 1 + 2 x 16 = 33 rows, ResNet-50: 1 + 3 x 16 = 49, as
  the sheets have. Doubt: the sheets do not say where they sample; the low rows recur with
  the block period (2 or 3), which fits "after the residual add" (the sum of a BN output and
  the shortcut is negative less often) - and at ResNet-50 the rows right after a projection
  shortcut (4, 13, 25, 43) are not low, which fits too. Row 1 (stem ReLU) feeds layer1
  through the max-pool; we use its value for the pooled tensor (max-pooling lowers it).
Epochs: ep_first -> 1, ep_10 -> 10, ep_mid -> the middle epoch the sheets name (VGG16 36,
ResNet-34 50, ResNet-50 45), ep_last -> epochs_total; `mean_over_epochs` is the 'mean'.
"""
from __future__ import annotations

import csv
from pathlib import Path

from simulator.policies import ConfigError
from simulator.policies._sparsity import SparsityProfile, check_fraction, load_csv
from validation.paths import MEASURED
from workloads.graph import OpGraph

AUTHORS_FILE = "sparsetrain_sparsity.csv"
MEASURED_FILE = "sparsetrain_sparsity_measured.csv"
MID_EPOCH = {"vgg16": 36, "resnet34": 50, "resnet50": 45}


def measured_path(name: str) -> Path:
    return MEASURED / name


def authors_rows(path: str | Path | None = None) -> dict[str, list[dict]]:
    """network -> its rows, in the sheets' order."""
    p = Path(path) if path else measured_path(AUTHORS_FILE)
    with p.open(newline="") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["network"], []).append(r)
    return out


def _successor_of_kind(graph: OpGraph, name: str, kind: str) -> str:
    succ = [s for s in graph.successors(name) if graph.op(s).kind == kind]
    if len(succ) != 1:
        raise ConfigError(f"authors' profile: op {name!r} of {graph.name!r} is not followed "
                          f"by exactly one {kind}")
    return succ[0]


def vgg_mapping(graph: OpGraph) -> dict[str, str]:
    """Authors' VGG16 layer names -> the zoo op whose output they describe."""
    fwd = [op for op in graph.topo() if op.phase == "forward"]
    convs = [op.name for op in fwd if op.kind == "conv2d"]
    pools = [op.name for op in fwd if op.kind == "maxpool"]
    linears = [op.name for op in fwd if op.kind == "linear"]
    out = {f"conv{i}": _successor_of_kind(graph, c, "relu") for i, c in enumerate(convs)}
    out.update({f"pool{i}": p for i, p in enumerate(pools)})
    out.update({f"fc{i + 1}": _successor_of_kind(graph, fc, "relu")
                for i, fc in enumerate(linears[:-1])})
    return out


def resnet_mapping(graph: OpGraph) -> dict[str, str]:
    """Row index (1-based, as a string) -> the I-th ReLU op in forward order."""
    relus = [op.name for op in graph.topo() if op.phase == "forward" and op.kind == "relu"]
    return {str(i + 1): r for i, r in enumerate(relus)}


def authors(graph: OpGraph, network: str | None = None, path=None) -> SparsityProfile:
    sheets = authors_rows(path)
    net = network or graph.name
    if net not in sheets:
        raise ConfigError(f"sparse-train option 'sparsity': the authors' sheets have no rows "
                          f"for {net!r} (they cover {', '.join(sorted(sheets))}); for a "
                          f"network of the same structure name one, e.g. 'authors:resnet50'")
    rows = sheets[net]
    mapping = vgg_mapping(graph) if net.startswith("vgg") else resnet_mapping(graph)
    names = [r["layer"] for r in rows]
    unknown = [n for n in names if n not in mapping]
    if unknown or len(names) != len(mapping):
        raise ConfigError(f"sparse-train option 'sparsity': the authors' {net} rows "
                          f"({len(names)} layers) do not match network {graph.name!r} "
                          f"({len(mapping)} ReLU/pool tensors)"
                          + (f"; unknown layer {unknown[0]!r}" if unknown else ""))
    prof = SparsityProfile(f"authors:{net}", network=graph.name,
                           notes=f"SparseTrain authors' {net} sheet")
    for r in rows:
        where = f"authors' sheet {net}, layer {r['layer']!r}"
        total = int(r["epochs_total"])
        epochs = {1: r["ep_first"], 10: r["ep_10"], MID_EPOCH.get(net, total // 2): r["ep_mid"],
                  total: r["ep_last"]}
        tensor = mapping[r["layer"]]
        prof.by_epoch[tensor] = {e: check_fraction(v, where) for e, v in epochs.items()}
        prof.mean[tensor] = check_fraction(r["mean_over_epochs"], where)
    return prof


def measured(graph: OpGraph, name: str | None = None) -> SparsityProfile:
    """Our own measurement (sparsity.py beside this file) for the network it was taken on."""
    return load_csv(measured_path(name or MEASURED_FILE), name="measured")
