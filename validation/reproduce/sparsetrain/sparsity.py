"""Measure ReLU sparsity during training: a small CNN on scikit-learn's digits, in PyTorch.

    .venv/bin/python -m validation.reproduce.sparsetrain.sparsity [--epochs 12] [--out CSV]

Trains `DigitsCNN` (three 3x3 convs with ReLU, a max-pool, a linear classifier; 8x8 inputs,
1,437 training images) with SGD on one core, seeded, and records for every ReLU the fraction
of exact zeros it produced over each epoch's training batches. Writes a profile the
`sparse-train` policy reads (columns network, tensor, epoch, sparsity; tensor = the op name
`workloads.from_torch(DigitsCNN(), ...)` gives the ReLU). Under a minute on one core.
The committed output is validation/measured/sparsetrain_sparsity_measured.csv.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from validation.paths import MEASURED

DEFAULT_OUT = MEASURED / "sparsetrain_sparsity_measured.csv"


def _model_class():
    import torch
    from torch import nn

    class DigitsCNN(nn.Module):
        """3 convs (32, 64, 64 channels), ReLU after each, max-pool, linear to 10 classes."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(64, 64, 3, padding=1), nn.ReLU())
            self.fc = nn.Linear(64 * 4 * 4, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.features(x), 1))

    return DigitsCNN


def digits_cnn_graph(batch: int = 64):
    """The same network as a dnnsim OpGraph (op names = module paths)."""
    import torch

    from workloads import from_torch
    return from_torch(_model_class()(), torch.zeros(batch, 1, 8, 8))


def measure(epochs: int = 12, batch: int = 32, seed: int = 0, lr: float = 0.05
            ) -> list[dict]:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target)
    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=seed)
    model = _model_class()()
    relus = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.ReLU)}
    counts = {name: [0, 0] for name in relus}  # zeros, elements (this epoch)

    def hook(name):
        def record(_module, _inp, out):
            counts[name][0] += int((out == 0).sum())
            counts[name][1] += out.numel()
        return record

    for name, m in relus.items():
        m.register_forward_hook(hook(name))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for epoch in range(1, epochs + 1):
        for c in counts.values():
            c[0] = c[1] = 0
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
        for name, (zeros, total) in counts.items():
            rows.append({"network": "DigitsCNN", "tensor": name, "epoch": epoch,
                         "sparsity": f"{zeros / total:.4f}"})
        print(f"epoch {epoch}: loss {loss.item():.3f} "
              + " ".join(f"{n}={counts[n][0] / counts[n][1]:.3f}" for n in counts), flush=True)
    return rows


def write(rows: list[dict], out: Path) -> None:
    with open(out, "w", newline="") as fh:
        fh.write("# ReLU sparsity of DigitsCNN trained on scikit-learn digits (seeded, 1 thread);"
                 " written by validation/reproduce/sparsetrain/sparsity.py\n")
        w = csv.DictWriter(fh, fieldnames=["network", "tensor", "epoch", "sparsity"])
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    write(measure(args.epochs), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
