"""Every notebook in notebooks/ runs top to bottom, and every cell that plots shows its plot.

A cell plots when its code draws (pyplot, an Axes, one of dnnsim's plot functions) or displays
an image; such a cell must leave an image/png output. Plots vanish when something sets a
non-inline backend (a library calling `matplotlib.use("Agg")`, or MPLBACKEND), so the kernel
runs with the notebook's own backend: MPLBACKEND is removed from its environment.

`python tests/notebooks/test_notebooks.py` re-executes the notebooks and writes them back with
their outputs, as they are committed.
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
PLOTTING = re.compile(r"\bplt\.|\bax\.|\baxes\[|\bplot_\w+\(|\btuner\.plot\(|\bImage\(")


def execute(path: Path, workdir: Path):
    """The notebook at `path`, executed in `workdir` (where its cells write their files)."""
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     record_timing=False,   # no timestamps in committed files
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return nb


def plotting_cells_without_image(nb) -> list[int]:
    """Indices of the code cells that plot but show no PNG."""
    missing = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not PLOTTING.search(cell.source):
            continue
        if not any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])):
            missing.append(i)
    return missing


def output_text(nb) -> str:
    """Everything the cells printed, images left out."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(str(out.get("text", "")) + str(out.get("evalue", "")))
            parts += [str(v) for k, v in out.get("data", {}).items() if not k.startswith("image/")]
    return "\n".join(parts)


def test_plotting_pattern_tells_plots_from_text():
    assert PLOTTING.search("plot_timeline(result)")
    assert PLOTTING.search("fig, ax = plt.subplots()")
    assert not PLOTTING.search("print(result.iteration_time_s)")


def test_a_cell_that_plots_without_an_image_is_reported():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plot_timeline(r)"),
                                         nbformat.v4.new_code_cell("print(1)")])
    assert plotting_cells_without_image(nb) == [0]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_its_plots(path, tmp_path, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = execute(path, tmp_path)
    missing = plotting_cells_without_image(nb)
    assert not missing, (f"{path.name}: cells {missing} plot but show no image:\n"
                         + "\n---\n".join(nb.cells[i].source for i in missing))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_holds_its_plots(path):
    """The notebooks are committed executed, so a reader sees the plots without running them."""
    nb = nbformat.read(path, as_version=4)
    assert not plotting_cells_without_image(nb), f"{path.name}: run {Path(__file__).name}"
    assert str(path.parents[1]) not in output_text(nb), f"{path.name}: outputs hold a local path"


if __name__ == "__main__":
    import os
    os.environ.pop("MPLBACKEND", None)
    for nb_path in NOTEBOOKS if len(sys.argv) < 2 else [Path(a) for a in sys.argv[1:]]:
        with tempfile.TemporaryDirectory() as work:
            done = execute(nb_path, Path(work))
        bad = plotting_cells_without_image(done)
        if bad:
            sys.exit(f"{nb_path.name}: cells {bad} plot but show no image")
        leaked = [p for p in (str(Path(__file__).resolve().parents[2]), tempfile.gettempdir())
                  if p in output_text(done)]
        if leaked:   # outputs hold this machine's paths (a warning's text): not committable
            sys.exit(f"{nb_path.name}: outputs contain {leaked}; silence what prints them")
        nbformat.write(done, nb_path)
        print(f"wrote {nb_path.name} with its outputs")
