"""Write docs/clusters.md and docs/data-parallel-scaling.md from their prose (the templates
docs/clusters.md.in and docs/data-parallel-scaling.md.in) and the figures their runs give,
so that no figure of either page is typed:

    python docs/clusters_page.py            # rerun everything, rewrite the pages
    python docs/clusters_page.py --check    # exit 1 where a page is not what it would write

Each `{{name}}` of a template is a figure or table that docs/clusters_collectives.py (the
collectives run alone, the node types, the engine's graphs) or docs/clusters_scaling.py
(benchmarks/dp_scaling.py, the ranks' spread, each framework's gradient synchronisation,
validation.validate.published_scaling) measures, as the commands the pages name run them;
a figure may appear on both pages. The prose's comparisons (which algorithm comes out ahead,
which run is slower) are checked here too, so a change of the model that makes a sentence
false fails the check. It takes a few minutes; tests/test_clusters_page.py runs it (slow)
and checks the pages' structure.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS), str(DOCS.parent)]
import clusters_collectives as collectives  # noqa: E402  (docs/ is not a package)
import clusters_scaling as scaling  # noqa: E402
import templated_pages as pages  # noqa: E402

GENERATOR = "docs/clusters_page.py"
PAGES = ("clusters.md", "data-parallel-scaling.md")   # each written from docs/PAGE.in
HEADER = pages.header(GENERATOR)
SECTIONS: tuple[Callable[[], dict[str, str]], ...] = (
    collectives.node_table, collectives.collectives_at_scale, collectives.engine_graphs,
    collectives.tree_limits, collectives.tasks_by_class, scaling.multi_node, scaling.ranks,
    scaling.gradient_sync, scaling.kvstore)


def figures(comparisons: scaling.Comparisons | None = None) -> dict[str, str]:
    """Every figure of the page, measured (comparisons: the published scaling validation's,
    for scaling.published_rows, run here if not given)."""
    return pages.merged([*((section.__name__, section()) for section in SECTIONS),
                         ("published_rows", scaling.published_rows(comparisons))])


def templates() -> dict[str, str]:
    return {page: (DOCS / f"{page}.in").read_text() for page in PAGES}


def fill(texts: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    """Each page: its template with each placeholder replaced by its figure; a placeholder
    with no figure, or a figure no template names, is an error."""
    return pages.fill(texts, values, HEADER)


_low = pages.low


def claims(v: dict[str, str]) -> list[str]:
    """Each comparison the prose makes of the figures that they no longer bear out."""
    said = {
        "NCCL's trees beat a flat ring on a small buffer over 512 GPUs":
            _low(v["small_tree_ms"]) < _low(v["small_ring_ms"]),
        "a large all-gather runs at the NICs' rate, no faster":
            _low(v["big_gather_bound_ms"]) <= _low(v["big_gather_ms"]) <
            1.05 * _low(v["big_gather_bound_ms"]),
        "the flow-level closed form is not below the link-level run":
            _low(v["flow_above"]) >= 0,
        "NCCL's rings per NIC beat one ring through every GPU":
            _low(v["nic_ring_ms"]) < _low(v["flat_ring_ms"]),
        "halving-doubling comes out above the single rings":
            v["hd_vs_ring"].endswith("above"),
        "NCCL's tree runs slower than one ring near the crossover on one-NIC nodes":
            _low(v["cloud_mb_slower"]) > 0,
        "flow-level trees take far fewer tasks than rings by class":
            _low(v["resnet_nccl_tasks"]) < _low(v["resnet_ring_tasks"]),
        "a DGX-1's cap on tf.data, scaled by cores, is above both XLA rows":
            _low(v["dgx1_cap"]) > max(_low(v["img_M0063"]), _low(v["img_M0050"])),
    }
    return [f"the prose says {claim}, which no longer holds" for claim, holds in said.items()
            if not holds]


def differences(written: dict[str, str]) -> list[str]:
    """Where a committed page is not what the generator writes, as a diff."""
    return pages.differences(written, GENERATOR)


def write(written: dict[str, str]) -> None:
    """Each page replaced whole or not at all."""
    pages.write(written)


def written(comparisons: scaling.Comparisons | None = None
            ) -> tuple[dict[str, str], list[str]]:
    """The pages as their runs fill them now, and the claims those runs no longer bear out
    (comparisons: as for figures)."""
    values = figures(comparisons)
    return fill(templates(), values), claims(values)


def check(comparisons: scaling.Comparisons | None = None) -> list[str]:
    """What --check reports (templated_pages.check); comparisons as for figures."""
    return pages.check(lambda: written(comparisons), GENERATOR)


def main(argv: list[str]) -> int:
    return pages.main(argv, written, GENERATOR)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
