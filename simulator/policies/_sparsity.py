"""Sparsity profiles for `sparse-train`: the fraction of zeros of each ReLU tensor, per epoch.

A profile names tensors by the op whose output they are (the zoo's or torch.fx's op names) and
gives a fraction of zeros at some epochs (and, optionally, the mean over all epochs). Sources:

    'constant:0.8'     every ReLU output (and what max-pools or views of it) has 0.8 zeros
    'path/to/x.csv'    columns tensor, epoch, sparsity (epoch 'mean' allowed); an optional
                       `network` column must name the simulated network
    'authors'          a named source, found through the entry-point group
    'authors:resnet50' "dnnsim.sparsity_profiles" (validation provides 'authors' and
    'measured'         'measured'; the part after ':' is passed to it)

Where the conv reads each tensor is decided by the policy (see sparse_train.py).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from workloads.errors import check_input_file
from workloads.graph import OpGraph

from . import ConfigError

ENTRY_POINT_GROUP = "dnnsim.sparsity_profiles"
EPOCH_WORDS = ("mean", "first", "last")


def check_fraction(value, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: sparsity must be a number in [0, 1], got {value!r}") \
            from None
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"{where}: sparsity must be in [0, 1], got {value!r}")
    return v


@dataclass
class SparsityProfile:
    """tensor -> {epoch: fraction of zeros}; `mean` -> tensor -> mean over all epochs."""
    name: str
    by_epoch: dict[str, dict[int, float]] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)
    constant: float | None = None      # applies to every ReLU output
    network: str | None = None         # the network the tensor names belong to
    notes: str = ""

    @property
    def tensors(self) -> list[str]:
        return sorted(set(self.by_epoch) | set(self.mean))

    @property
    def epochs(self) -> list[int]:
        return sorted({e for d in self.by_epoch.values() for e in d})

    def has(self, tensor: str) -> bool:
        return tensor in self.by_epoch or tensor in self.mean

    def at(self, tensor: str, epoch: str | int = "mean") -> float:
        """The tensor's sparsity at `epoch`: 'mean', 'first', 'last' or an epoch number
        (linear between the profile's epochs)."""
        if epoch == "mean":
            if tensor in self.mean:
                return self.mean[tensor]
            every_epoch = self.by_epoch[tensor]
            return sum(every_epoch.values()) / len(every_epoch)
        pts = self.by_epoch.get(tensor)
        if not pts:
            raise ConfigError(f"sparsity profile {self.name!r}: tensor {tensor!r} has no "
                              f"per-epoch values (only a mean)")
        xs = sorted(pts)
        if epoch == "first":
            return pts[xs[0]]
        if epoch == "last":
            return pts[xs[-1]]
        e = int(epoch)
        if not xs[0] <= e <= xs[-1]:
            raise ConfigError(f"sparsity profile {self.name!r}: epoch {e} is outside the "
                              f"profile's epochs {xs[0]}..{xs[-1]}")
        for lo, hi in zip(xs, xs[1:] + [xs[-1]], strict=True):
            if lo <= e <= hi:
                if hi == lo:
                    return pts[lo]
                return pts[lo] + (pts[hi] - pts[lo]) * (e - lo) / (hi - lo)
        return pts[xs[-1]]

    def check_matches(self, graph: OpGraph) -> None:
        """Every tensor of the profile is an op of the graph, and the network is the same."""
        if self.network is not None and self.network != graph.name:
            raise ConfigError(f"sparsity profile {self.name!r} is for network "
                              f"{self.network!r}, not {graph.name!r}")
        missing = [t for t in self.tensors if t not in graph]
        if missing:
            raise ConfigError(f"sparsity profile {self.name!r} names {len(missing)} tensor(s) "
                              f"that network {graph.name!r} does not have, e.g. "
                              f"{missing[0]!r}: the profile's layers do not match the network")


def parse_epoch(value) -> str | int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(value)
        return value
    text = str(value).strip().lower()
    if text in EPOCH_WORDS:
        return text
    e = int(text)
    if e < 1:
        raise ValueError(value)
    return e


def load_csv(path: str | Path, name: str | None = None) -> SparsityProfile:
    """A CSV of tensor, epoch, sparsity rows (comment lines starting with '#' skipped)."""
    p = Path(path)
    check_input_file(p, "sparsity profile file", ConfigError)
    if not p.is_file():
        raise ConfigError(f"sparsity profile file {str(p)!r} does not exist")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"sparsity profile file {str(p)!r} cannot be read as CSV: "
                          f"{exc}") from None
    need = {"tensor", "epoch", "sparsity"}
    if not rows or not need <= set(rows[0]):
        raise ConfigError(f"sparsity profile file {p.name!r} needs columns "
                          f"{', '.join(sorted(need))}")
    prof = SparsityProfile(name or p.name)
    networks = {r["network"] for r in rows if r.get("network")}
    if len(networks) > 1:
        raise ConfigError(f"sparsity profile file {p.name!r} mixes networks "
                          f"{sorted(networks)}; keep one per file")
    prof.network = networks.pop() if networks else None
    for i, r in enumerate(rows, start=2):
        where = f"sparsity profile file {p.name!r}, row {i} (tensor {r['tensor']!r})"
        s = check_fraction(r["sparsity"], where)
        if str(r["epoch"]).strip().lower() == "mean":
            prof.mean[r["tensor"]] = s
            continue
        try:
            epoch = int(r["epoch"])
        except ValueError:
            raise ConfigError(f"{where}: epoch must be an integer or 'mean', "
                              f"got {r['epoch']!r}") from None
        prof.by_epoch.setdefault(r["tensor"], {})[epoch] = s
    return prof


def resolve(spec, graph: OpGraph) -> SparsityProfile:
    """A SparsityProfile from the policy option (see the module docstring)."""
    if isinstance(spec, SparsityProfile):
        return spec
    text = str(spec).strip()
    if text.startswith("constant:"):
        value = check_fraction(text.split(":", 1)[1], "sparse-train option 'sparsity'")
        return SparsityProfile(text, constant=value)
    if text.endswith(".csv"):
        return load_csv(text)
    source, _, arg = text.partition(":")
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == source]
    if not found:
        known = sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})
        raise ConfigError(f"sparse-train option 'sparsity': unknown profile {text!r}; give "
                          f"'constant:<0..1>', a .csv path, or one of "
                          f"{', '.join(known) or '(none installed)'}")
    return found[0].load()(graph, arg or None)
