"""One log-log line plot, as the benchmarks draw them."""
from __future__ import annotations


def log_log_plot(series: dict[str, tuple[list, list]], path: str, *, xlabel: str, ylabel: str,
                 title: str, y_base: float = 10, reference: tuple[list, list] | None = None
                 ) -> None:
    """series: label -> (xs, ys), x on a base-2 log axis; reference: a dotted grey line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if reference is not None:
        ax.plot(*reference, ls=":", color="gray", label="linear")
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=y_base)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
