"""SparseTrain plots: per-layer speedup at the authors' sparsity, each kernel against uniform
random sparsity (kernels.py, with its CSV), speedup over training epochs, and what-if curves
over FMA units and cores. `make_figures(out_dir)` -> PNG paths."""
from __future__ import annotations

from pathlib import Path

from hwmodels import catalog
from hwmodels.cpu_conv import CPUDirectConv
from simulator.policies import _sparsity as profiles
from simulator.trace import subplots  # a bare Figure: no backend switch in a notebook
from workloads import zoo
from workloads.training import lower_training

from ..plotting import save
from . import kernels
from .metrics import (
    NETWORKS,
    PASSES,
    layer_speedups,
    network_speedup,
    published_speedups,
    target_hardware_options,
)

PASS_LABEL = {"forward": "forward", "grad_input": "backward by input",
              "grad_weight": "backward by weights"}


def per_layer(out: Path) -> Path:
    fig, axes = subplots(1, 3, figsize=(14, 4.2), sharey=True)
    # the model's curve for one typical layer (VGG16 conv 3x3, 256 channels at 56x56)
    train = lower_training(zoo.get("vgg16", batch=16))
    options = target_hardware_options()
    conv = CPUDirectConv(catalog.device("skylake-x-6c").with_options(**options))
    grid = [i / 50 for i in range(51)]
    for ax, p in zip(axes, PASSES, strict=True):
        kind = {"forward": "conv2d", "grad_input": "conv2d_grad_input",
                "grad_weight": "conv2d_grad_weight"}[p]
        op = next(o for o in train.topo() if o.kind == kind
                  and o.attrs["in_channels"] == 256 and o.attrs["out_channels"] == 256)
        ax.plot(grid, [conv.dense_cycles(op) / conv.sparse_cycles(op, s) for s in grid],
                color="0.6", lw=1, label="model, VGG16 3x3 256ch")
        for net in NETWORKS:
            rows = [r for r in layer_speedups(net) if r["pass"] == p]
            ax.scatter([r["sparsity"] for r in rows], [r["speedup"] for r in rows], s=14,
                       label=net)
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set_title(PASS_LABEL[p])
        ax.set_xlabel("sparsity of the streamed operand")
    axes[0].set_ylabel("speedup over dense direct conv")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"SparseTrain per conv layer, skylake-x-6c ({conv.fma_units} FMA units per "
                 f"core), authors' sparsity")
    fig.tight_layout()
    path = out / "sparsetrain_per_layer.png"
    return save(fig, path)


def over_epochs(out: Path) -> Path:
    fig, ax = subplots(figsize=(6.5, 4.2))
    published = published_speedups()
    for net, sp in NETWORKS.items():
        graph = zoo.get(net, batch=16)
        epochs = profiles.resolve(sp, graph).epochs
        xs = sorted(set(epochs) | {5, 20})  # the sheets' epochs, and two between
        ax.plot(xs, [network_speedup(net, epoch=e) for e in xs], marker="o", ms=3, label=net)
        ax.scatter([xs[-1]], [published[net]], marker="*", s=60, color="k")
    ax.set_xlabel("training epoch (sparsity of that epoch)")
    ax.set_ylabel("speedup, non-initial conv layers")
    ax.set_title("SparseTrain speedup over training (stars: published, mean sparsity)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "sparsetrain_epochs.png"
    return save(fig, path)


def what_if(out: Path) -> Path:
    """Left: every target network on one and two AVX-512 FMA units per core (the paper does
    not say which its 6-core part has), the published speedups as stars. Right: cores."""
    fig, axes = subplots(1, 2, figsize=(10, 4.2), sharey=True)
    published = published_speedups()
    colour = {net: f"C{i}" for i, net in enumerate(NETWORKS)}
    for net in NETWORKS:
        axes[0].plot([1, 2], [network_speedup(net, hardware_options={"fma_units_per_core": f})
                              for f in (1, 2)], marker="o", color=colour[net], label=net)
        axes[0].scatter([1.5], [published[net]], marker="*", s=60, color=colour[net])
    for net in ("vgg16", "resnet50"):
        cores = [1, 2, 6, 12]
        axes[1].plot(cores, [network_speedup(net, hardware_options={"cores": c})
                             for c in cores], marker="o", color=colour[net], label=net)
    axes[0].set_xlabel("AVX-512 FMA units per core (stars: published, units not stated)")
    axes[0].set_xticks([1, 2])
    axes[1].set_xlabel("cores (batch 16: fewer items per core, more imbalance)")
    axes[0].set_ylabel("speedup, non-initial conv layers")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle("What if: SparseTrain on other CPUs (skylake-x-6c varied, authors' sparsity)")
    fig.tight_layout()
    path = out / "sparsetrain_what_if.png"
    return save(fig, path)


def make_figures(out_dir) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the kernels against uniform random sparsity: a CSV beside the plot
    _, kernel_plot = kernels.write(out, replace=True)
    return [per_layer(out), kernel_plot, over_epochs(out), what_if(out)]
