"""Statistical efficiency of pipelined training with stale weights, from real PyTorch runs.

A performance model knows the time per iteration, not how many iterations training needs when
weights are stale. This module trains small networks for real on scikit-learn's digits (8x8
images, 10 classes, shipped with the package) while applying exactly the delays of the
simulated `pipeline-stale` schedule, and combines the accuracy per iteration with the simulated
time per iteration into time-to-accuracy.

The delays come from the simulator itself: the same network (imported with `from_torch`) is
simulated with `pipeline-stale` and the registers, and result.extras gives, per partition p,
the forward staleness d_p (updates of earlier minibatches the forward misses: 2(K-1-p)) and the
drift r_p (updates that land between its forward and its backward). Minibatch t then runs
  forward of partition p with weights W[t - d_p]            (stale),
  backward through partition p with weights W[t - d_p + r_p] (here: the current ones),
  the weight gradient from the stale forward's activations, applied to the current weights,
which is what the pipelined hardware computes without weight stashing. W[v] is the weights after
v updates (clamped at 0: the pipe fills with the initial weights). Hybrid runs drop the delays
after `pipelined_fraction` of the iterations.

Networks (no batch norm, so no running statistics go stale): `lenet` (LeNet-5 for 8x8 inputs:
conv-pool-conv-pool-fc-fc-fc, 5 layers) and `resnet` (a conv, 3 basic blocks of 8 channels,
a classifier on the flattened 4x4 maps: 8 layers). Layers are counted as the simulator counts them.

Regenerate (a few minutes on 1 core): python -m validation.reproduce.pipeline_stale.staleness
"""
from __future__ import annotations

import argparse
import csv
import math
import platform
from pathlib import Path
from typing import Any

from validation.paths import MEASURED

BATCH = 32
LR, MOMENTUM = 0.02, 0.9
EPOCHS = 10
EVAL_EVERY = 15
SEEDS = (0, 1, 2)
HARDWARE, LINK = "titan-xp", "pcie3"
# mode -> (registers as a function of the layer count, pipelined fraction)
MODES = {
    "non-pipelined": (lambda n: [], 0.0),
    "pipelined-early": (lambda n: [1], 1.0),
    "pipelined-deep": (lambda n: [n - 1], 1.0),
    "hybrid": (lambda n: [n - 1], 0.5),
}
FIELDS = ["network", "mode", "registers", "delays", "drifts", "pipelined_fraction", "seed",
          "iteration", "test_accuracy", "train_loss"]


# -- networks -------------------------------------------------------------------------------
def build(network: str, split: bool = True):
    """The network as an nn.Module; split=False gives plain layers (for from_torch)."""
    import torch.nn as nn
    conv, linear = split_layers() if split else (nn.Conv2d, nn.Linear)
    if network == "lenet":
        return nn.Sequential(conv(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             conv(6, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), linear(64, 120), nn.ReLU(), linear(120, 84),
                             nn.ReLU(), linear(84, 10))
    if network == "resnet":
        return _ResNet(conv, linear)
    raise ValueError(f"option 'network': unknown network {network!r}; known: lenet, resnet")


def _resnet_block(conv, channels):
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = conv(channels, channels, 3, padding=1)
            self.conv2 = conv(channels, channels, 3, padding=1)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv2(self.relu(self.conv1(x))) + x)
    return Block()


def _ResNet(conv, linear, channels: int = 8):
    import torch.nn as nn
    return nn.Sequential(conv(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         *[_resnet_block(conv, channels) for _ in range(3)],
                         nn.Flatten(), linear(channels * 16, 10))


def _split_layers():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class _Fn(torch.autograd.Function):
        """Forward with w_f, input gradient with w_b, weight gradient to the live parameter."""
        @staticmethod
        def forward(ctx, x, weight, bias, w_f, b_f, w_b, conv_padding):
            ctx.save_for_backward(x, w_b)
            ctx.conv_padding = conv_padding
            ctx.weight_shape = weight.shape
            if conv_padding is None:
                return F.linear(x, w_f, b_f)
            return F.conv2d(x, w_f, b_f, padding=conv_padding)

        @staticmethod
        def backward(ctx, g):
            x, w_b = ctx.saved_tensors
            pad = ctx.conv_padding
            if pad is None:
                gx, gw = g @ w_b, g.t() @ x
                gb = g.sum(0)
            else:
                gx = torch.nn.grad.conv2d_input(x.shape, w_b, g, padding=pad)
                gw = torch.nn.grad.conv2d_weight(x, ctx.weight_shape, g, padding=pad)
                gb = g.sum((0, 2, 3))
            return gx, gw, gb, None, None, None, None

    class Versioned:
        """Set `versions = (w_f, b_f, w_b)` before a step; None runs the live weights."""
        versions = None
        weight: Any   # the nn.Conv2d's or nn.Linear's it is mixed into
        bias: Any

        def _run(self, x, pad):
            if self.versions is None:
                w = self.weight
                return F.linear(x, w, self.bias) if pad is None else \
                    F.conv2d(x, w, self.bias, padding=pad)
            w_f, b_f, w_b = self.versions
            return _Fn.apply(x, self.weight, self.bias, w_f, b_f, w_b, pad)

    class SplitConv2d(Versioned, nn.Conv2d):
        def forward(self, x):
            return self._run(x, self.padding)

    class SplitLinear(Versioned, nn.Linear):
        def forward(self, x):
            return self._run(x, None)

    return SplitConv2d, SplitLinear


_SPLIT: tuple = ()


def split_layers() -> tuple:
    """(SplitConv2d, SplitLinear), made once: torch is imported only when they are needed."""
    global _SPLIT
    if not _SPLIT:
        _SPLIT = _split_layers()
    return _SPLIT


def layers_of(model) -> list:
    """Conv and linear layers from the input: layer l is layers_of(model)[l - 1]."""
    import torch.nn as nn
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# -- schedule from the simulator ------------------------------------------------------------
def op_graph(network: str, batch: int = BATCH):
    import torch

    from workloads import from_torch
    return from_torch(build(network, split=False), torch.zeros(batch, 1, 8, 8), name=network)


def schedule(network: str, registers: list[int], policy: str = "pipeline-stale") -> dict:
    """Delays and simulated times of the pipelined schedule for these registers."""
    from simulator.api import simulate
    from simulator.cluster import Cluster
    graph = op_graph(network)
    seq = simulate(graph, Cluster.build(HARDWARE, 1, LINK), "sequential")
    if not registers:
        return {"delays": [0], "drifts": [0], "period_s": seq.iteration_time_s,
                "fill_s": 0.0, "sequential_s": seq.iteration_time_s}
    k = len(registers) + 1
    r = simulate(graph, Cluster.build(HARDWARE, k, LINK), policy,
                 registers=",".join(map(str, registers)))
    hyb = simulate(graph, Cluster.build(HARDWARE, k, LINK), "hybrid",
                   registers=",".join(map(str, registers)), pipelined_fraction=0.0, epochs=1,
                   iterations_per_epoch=1)
    return {"delays": r.extras["staleness_minibatches"],
            "drifts": r.extras["weight_drift_minibatches"], "period_s": r.iteration_time_s,
            "fill_s": r.extras["fill_s"] + r.extras["drain_s"],
            "non_pipelined_s": hyb.extras["non_pipelined_iteration_s"],
            "sequential_s": seq.iteration_time_s}


# -- training -------------------------------------------------------------------------------
def digits(seed: int = 0):
    """scikit-learn's digits as float tensors, split 80/20 with a fixed permutation."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    data = load_digits()
    x = (data.images / 16.0).astype("float32")[:, None]
    y = data.target.astype("int64")
    order = np.random.default_rng(1234).permutation(len(y))
    cut = int(0.8 * len(y))
    tr, te = order[:cut], order[cut:]
    return (torch.from_numpy(x[tr]), torch.from_numpy(y[tr]),
            torch.from_numpy(x[te]), torch.from_numpy(y[te]))


def partition_of(layer: int, registers: list[int]) -> int:
    return sum(1 for r in registers if layer > r)


def train(network: str, registers: list[int], delays: list[int], drifts: list[int],
          pipelined_fraction: float, seed: int, epochs: int = EPOCHS,
          eval_every: int = EVAL_EVERY) -> list[tuple[int, float, float]]:
    """(iteration, test accuracy, mean train loss since last eval) along one training run."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    if not 0.0 <= pipelined_fraction <= 1.0:
        raise ValueError(f"option 'pipelined_fraction': {pipelined_fraction} is outside [0, 1]")
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = digits()
    model = build(network)
    layers = layers_of(model)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    per_epoch = math.ceil(len(ytr) / BATCH)
    total = epochs * per_epoch
    switch = round(pipelined_fraction * total)
    depth = max(delays) + 1
    history = [[(m.weight.detach().clone(), m.bias.detach().clone()) for m in layers]]
    rng = np.random.default_rng(seed)
    out, losses = [], []
    for t in range(total):
        if t % per_epoch == 0:
            perm = torch.from_numpy(rng.permutation(len(ytr)))
        idx = perm[(t % per_epoch) * BATCH:(t % per_epoch + 1) * BATCH]
        piped = t < switch
        for li, m in enumerate(layers):
            p = partition_of(li + 1, registers)
            d, r = (delays[p], drifts[p]) if piped else (0, 0)
            v_f = max(0, t - d) - (t - len(history) + 1)      # index into the kept history
            v_b = max(0, t - d + r) - (t - len(history) + 1)
            w_f, b_f = history[max(v_f, 0)][li]
            w_b = history[max(v_b, 0)][li][0]
            m.versions = (w_f, b_f, w_b)
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        history.append([(m.weight.detach().clone(), m.bias.detach().clone()) for m in layers])
        history = history[-depth:]
        if (t + 1) % eval_every == 0 or t + 1 == total:
            for m in layers:
                m.versions = None
            with torch.no_grad():
                acc = float((model(xte).argmax(1) == yte).float().mean())
            out.append((t + 1, acc, sum(losses) / len(losses)))
            losses = []
    return out


def measure(network: str, seeds=SEEDS, epochs: int = EPOCHS) -> list[dict]:
    n = len(layers_of(build(network, split=False)))
    rows = []
    for mode, (regs_of, fraction) in MODES.items():
        regs = regs_of(n)
        sched = schedule(network, regs)
        for seed in seeds:
            for it, acc, loss in train(network, regs, sched["delays"], sched["drifts"],
                                       fraction, seed, epochs):
                rows.append({"network": network, "mode": mode,
                             "registers": " ".join(map(str, regs)),
                             "delays": " ".join(map(str, sched["delays"])),
                             "drifts": " ".join(map(str, sched["drifts"])),
                             "pipelined_fraction": fraction, "seed": seed, "iteration": it,
                             "test_accuracy": f"{acc:.4f}", "train_loss": f"{loss:.4f}"})
    return rows


def write(rows: list[dict], path: Path) -> None:
    import torch
    with path.open("w", newline="") as f:
        f.write(f"# measured with validation/reproduce/pipeline_stale/staleness.py: torch "
                f"{torch.__version__}, 1 thread, {platform.machine()}; batch {BATCH}, "
                f"SGD lr {LR} momentum {MOMENTUM}\n")
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)


def load(network: str, folder: Path = MEASURED) -> list[dict]:
    path = folder / f"staleness_{network}.csv"
    with path.open() as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


# -- time to accuracy -----------------------------------------------------------------------
def mean_curves(rows: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """mode -> (iterations, accuracy averaged over seeds)."""
    acc: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        acc.setdefault(r["mode"], {}).setdefault(int(r["iteration"]), []).append(
            float(r["test_accuracy"]))
    return {m: (sorted(d), [sum(d[i]) / len(d[i]) for i in sorted(d)]) for m, d in acc.items()}


def time_to_accuracy(network: str, rows: list[dict] | None = None) -> dict:
    """mode -> (simulated seconds, mean accuracy) along the run, with each mode's schedule."""
    rows = rows if rows is not None else load(network)
    n = len(layers_of(build(network, split=False)))
    curves = mean_curves(rows)
    total = max(max(its) for its, _ in curves.values())
    out = {}
    for mode, (its, accs) in curves.items():
        regs_of, fraction = MODES[mode]
        s = schedule(network, regs_of(n))
        switch = round(fraction * total)
        tail_s = s.get("non_pipelined_s", s["sequential_s"]) if fraction else s["sequential_s"]
        out[mode] = ([_run_seconds(i, switch, s, tail_s) for i in its], accs)
    return out


def _run_seconds(i: int, switch: int, s: dict, tail_s: float) -> float:
    """Simulated time of the first `i` iterations: pipelined up to `switch` (the fill paid once,
    then one period each), then `tail_s` each."""
    piped = min(i, switch)
    return piped * s["period_s"] + (s["fill_s"] if piped else 0.0) + (i - piped) * tail_s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="lenet,resnet")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--out", default=str(MEASURED))
    args = ap.parse_args(argv)
    for net in args.networks.split(","):
        write(measure(net, epochs=args.epochs), Path(args.out) / f"staleness_{net}.csv")
        print(f"wrote {Path(args.out) / f'staleness_{net}.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
