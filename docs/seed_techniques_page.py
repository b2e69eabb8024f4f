"""Write docs/seed-techniques.md from its prose (the template docs/seed-techniques.md.in) and
the figures the runs it names give, so that no figure of the page is typed:

    python docs/seed_techniques_page.py            # rerun every section, rewrite the page
    python docs/seed_techniques_page.py --check    # exit 1 where the page differs

Each section's figures come from the runs of `dnnsim reproduce` for its paper:
docs/seed_sparsetrain.py (SparseTrain's four networks, their what-ifs and the per-kernel
table), docs/seed_decnn.py (DeCNN and its baselines on the boards), docs/seed_swap.py
(AccUDNN's swap run and stock Caffe's minibatches) and docs/seed_path_parallel.py (path
parallelism's speedups and where they come from). What the prose says of them (within a
tolerance or not, above or below, which bounds what) is checked too. It takes a few minutes;
tests/test_templated_pages.py runs it (slow).
"""
from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS), str(DOCS.parent)]
import seed_decnn  # noqa: E402  (docs/ is not a package)
import seed_path_parallel  # noqa: E402
import seed_sparsetrain  # noqa: E402
import seed_swap  # noqa: E402
import templated_pages as pages  # noqa: E402

GENERATOR = "docs/seed_techniques_page.py"
PAGES = ("seed-techniques.md",)
HEADER = pages.header(GENERATOR)
SECTIONS = (seed_sparsetrain.network_figures, seed_sparsetrain.kernel_figures,
            seed_decnn.figures, seed_swap.figures, seed_path_parallel.figures)


def figures() -> dict[str, str]:
    """Every figure of the page, measured, and (under `pages.CLAIMS`) the prose's claims that
    no longer hold."""
    parts, checks = [], {}
    for section in SECTIONS:
        values, said = section()
        parts.append((section.__module__, values))
        checks.update(said)
    values = pages.merged(parts)
    values[pages.CLAIMS] = pages.failing(checks)
    return values


written, check, main = pages.generator(figures, PAGES, HEADER, GENERATOR)
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
