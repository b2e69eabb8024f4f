"""Figure makers for the reproduce report: one module per paper, `make_figures(out_dir)`."""
from __future__ import annotations

from pathlib import Path


def save(fig, path: str | Path) -> Path:
    """Lay out, write as PNG (the report's one resolution) and release a figure."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
