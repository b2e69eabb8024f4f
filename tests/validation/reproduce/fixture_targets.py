"""Small target files for the `dnnsim reproduce` tests: a paper of fixture targets on LeNet-5
and the figures hooks it names."""
from __future__ import annotations

from pathlib import Path

SCENARIO = """[target.scenario]
workload = "lenet5"
batch = 8
hardware = "v100"
devices = 2
link = "nvlink2"
policy = "data-parallel"
[target.baseline]
devices = 1
policy = "sequential"
"""


def target(tid: str, published: float, status: str = "solid", extra: str = "") -> str:
    return (f'[[target]]\nid = "{tid}"\nfigure = "fig {tid}"\npublished = {published}\n'
            f'tolerance = 0.5\nstatus = "{status}"\nmetric = "speedup"\n'
            f'defaults = ["GPU: v100 (not named)"]\n{extra}{SCENARIO}\n')


def paper(name: str, targets: str, figures: str = "") -> str:
    hook = f'figures = "{figures}"\n' if figures else ""
    return f'paper = "{name}"\ntitle = "The {name} paper"\nsource = "a journal"\n{hook}{targets}'


def fake_figures(out_dir: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([1, 2], [1, 2])
    path = out_dir / "speedup.png"
    fig.savefig(path)
    plt.close(fig)
    return [path]


def broken_figures(out_dir: Path) -> list[Path]:
    raise ValueError("no data for the plot")
