"""Write docs/nccl.md from its prose (the template docs/nccl.md.in) and the figures
benchmarks/allreduce_table.py measures, so that no figure of the page is typed:

    python docs/nccl_page.py            # rerun the all-reduces and the scaling, rewrite the page
    python docs/nccl_page.py --check    # exit 1 where the page differs

Each `{{name}}` of the template is a figure or table measured here: the all-reduce table
(each all-reduce alone, link by link, allreduce_table.allreduce_row), the data-parallel
scaling at flow fidelity (allreduce_table.efficiencies) and a large all-gather link by link
and at flow fidelity. What the prose says of them (which pair NCCL's model picks, which way
the simulated time leans from NCCL's prediction) is checked too, so a change of the model
that makes a sentence false fails the check. tests/test_templated_pages.py runs it (slow).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS), str(DOCS.parent), str(DOCS.parent / "benchmarks")]
import allreduce_table as bench  # noqa: E402  (benchmarks/ is not a package)
import templated_pages as pages  # noqa: E402

from simulator import Cluster, engine  # noqa: E402
from simulator.collectives import collective  # noqa: E402
from simulator.report import sig  # noqa: E402
from simulator.tasks import TaskGraph  # noqa: E402

GENERATOR = "docs/nccl_page.py"
PAGES = ("nccl.md",)
HEADER = pages.header(GENERATOR)
NAMES = {"dgx-a100": "DGX A100", "dgx-h100": "DGX H100"}
NEAR_BOUND = 0.9          # a cell shows its bound from this share of it up
ALLGATHER_BYTES = 404e6
ALLGATHER_GPUS = (16, 64, 128)


def share(row: dict) -> float:
    return row["busbw_Bps"] / row["bound_Bps"]


def off(row: dict) -> float:
    """How far the simulated time is from NCCL's prediction, as a share of the prediction."""
    return row["time_s"] / row["tuned_s"] - 1


def cell(row: dict, first: bool) -> str:
    busbw, bound = row["busbw_Bps"] / 1e9, row["bound_Bps"] / 1e9
    rate = (f" ({busbw:.0f} of {bound:.0f})" if share(row) >= NEAR_BOUND else
            f" ({busbw:.0f})" if busbw >= 10 else "")
    return (f"{sig(row['time_s'] * 1e6, 3)}{' us' if first else ''}{rate} "
            f"{row['algorithm']}/{row['protocol']}")


def span(values: list[float], digits: int = 0) -> str:
    """'a-b%' (or 'a%' where they round alike) of shares."""
    low, high = (f"{100 * v:.{digits}f}" for v in (min(values), max(values)))
    return f"{low}%" if low == high else f"{low}-{high}%"


def within(values: list[float]) -> str:
    return f"{math.ceil(100 * max(abs(v) for v in values))}%"


def where(rows: list[dict]) -> str:
    """'32 and 128 DGX A100 nodes and 128 DGX H100 nodes'."""
    return " and ".join(
        f"{_and([str(r['nodes']) for r in rows if r['node_type'] == t])} {name} nodes"
        for t, name in NAMES.items() if any(r["node_type"] == t for r in rows))


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def allgather_ms(gpus: int, fidelity: str) -> float:
    cluster = Cluster.from_node_type("dgx-h100", gpus)
    tg = TaskGraph()
    collective("allgather", tg, cluster, [d.id for d in cluster.devices], ALLGATHER_BYTES, {},
               "ag", algorithm="nccl", symmetric=True, fidelity=fidelity)
    return engine.run(tg, cluster.resources).makespan_s * 1e3


def allreduce_figures() -> tuple[dict[str, str], dict[str, bool]]:
    rows = {(t, n, s): bench.allreduce_row(t, n, s)
            for t in bench.NODE_TYPES for n in bench.NODES for s in bench.SIZES}
    listed = list(rows.values())
    head = "| cluster | " + " | ".join(bench._size(s)[:-2] + " " + bench._size(s)[-2:]
                                       for s in bench.SIZES) + " |"
    table = "\n".join([head, "|---" * (len(bench.SIZES) + 1) + "|"] + [
        f"| {t} x{n} | " + " | ".join(cell(rows[(t, n, s)], i == 0 and n == 1 and t ==
                                           bench.NODE_TYPES[0])
                                      for i, s in enumerate(bench.SIZES)) + " |"
        for t in bench.NODE_TYPES for n in bench.NODES])
    pair = {k: f"{r['algorithm']}/{r['protocol']}" for k, r in rows.items()}
    tree_1kb = [r for r in listed if r["bytes"] == 1e3 and r["algorithm"] == "tree"]
    one_node_1mb = [r for r in listed if r["bytes"] == 1e6 and r["nodes"] == 1]
    tree_1gb = [r for r in listed if r["bytes"] == 1e9 and r["algorithm"] == "tree"]
    ring_1gb = [r for r in listed if r["bytes"] == 1e9 and r["algorithm"] == "ring"
                and r["nodes"] > 1]
    a100_mid = [r for k, r in rows.items() if k[0] == "dgx-a100" and k[2] == 32e6
                and r["algorithm"] == "tree"]
    h100_mid = [r for k, r in rows.items() if k[0] == "dgx-h100" and k[2] == 32e6
                and r["algorithm"] == "tree"]
    a100_ll = [rows[("dgx-a100", n, 1e6)] for n in (32, 128)]
    h100_8 = rows[("dgx-h100", 8, 32e6)]
    tuned_1kb = [rows[("dgx-h100", n, 1e3)]["tuned_s"] * 1e6 for n in bench.NODES]
    values = {
        "allreduce_table": table,
        "tuned_1kb": (f"{tuned_1kb[0]:.1f} us on one node, {tuned_1kb[1]:.1f} on two, "
                      + ", ".join(f"{t:.1f} on {n}" for n, t in
                                  zip(bench.NODES[2:], tuned_1kb[2:], strict=True))),
        "tree_1kb_gap": within([off(r) for r in tree_1kb]),
        "tuned_1gb_128": f"{rows[('dgx-h100', 128, 1e9)]['tuned_s'] * 1e3:.1f} ms",
        "one_node_1mb_bound": span([share(r) for r in one_node_1mb]),
        "tree_1gb_where": where(tree_1gb),
        "tree_1gb_bound": span([share(r) for r in tree_1gb]),
        "ring_1gb_bound": span([share(r) for r in ring_1gb], 1),
        "h100_32mb_8": f"{h100_8['time_s'] * 1e6:.0f} us against "
                       f"{h100_8['tuned_s'] * 1e6:.0f}",
        "a100_mid_gap": within([off(r) for r in a100_mid]),
        "a100_1mb_ll_slow": span([off(r) for r in a100_ll]),
    }
    checks = {
        "no row is flagged": not bench.flags(listed),
        "1 MB on one node runs ring/LL": all(pair[k] == "ring/LL" for k in rows
                                              if k[1] == 1 and k[2] == 1e6),
        "1 KB across nodes runs on trees": all(pair[k].startswith("tree") for k in rows
                                               if k[1] > 1 and k[2] == 1e3),
        "1 GB on trees runs Simple, below the rings' share of the bound":
            bool(tree_1gb) and all(r["protocol"] == "Simple" for r in tree_1gb)
            and max(map(share, tree_1gb)) < min(map(share, ring_1gb)),
        "DGX H100's 32 MB trees run faster than NCCL predicts":
            bool(h100_mid) and all(off(r) < 0 for r in h100_mid) and h100_8 in h100_mid,
        "1 MB over 32 and 128 A100 nodes runs tree/LL, slower than predicted":
            all(r["algorithm"] == "tree" and r["protocol"] == "LL" and off(r) > 0
                for r in a100_ll),
    }
    return values, checks


def scaling_figures() -> tuple[dict[str, str], dict[str, bool]]:
    effs = {(t, w): bench.efficiencies(t, w, bench.GPUS, "flow")
            for t in bench.NODE_TYPES for w in bench.WORKLOADS}
    table = "\n".join(
        ["| node type | workload | " + " | ".join(f"{g:,}" for g in bench.GPUS) + " |",
         "|---|---" + "|---" * len(bench.GPUS) + "|"]
        + [f"| {t} | {w} | " + " | ".join(f"{100 * e:.1f}%" for e in es) + " |"
           for (t, w), es in effs.items()])
    flow = [allgather_ms(g, "flow") for g in ALLGATHER_GPUS]
    link = [allgather_ms(g, "link") for g in ALLGATHER_GPUS]
    values = {"scaling_table": table,
              "allgather_flow_ms": _and([f"{t:.2f}" for t in flow]),
              "allgather_link_ms": _and([f"{t:.2f}" for t in link])}
    checks = {
        "the H100 scales GPT-2 less well than the A100":
            all(h < a for h, a in zip(effs[("dgx-h100", "gpt2")], effs[("dgx-a100", "gpt2")],
                                      strict=True)),
        "the all-gather at flow fidelity takes no less than link by link":
            all(f >= k * 0.9995 for f, k in zip(flow, link, strict=True)),
    }
    return values, checks


def figures() -> dict[str, str]:
    """Every figure of the page, measured, and (under `pages.CLAIMS`) the prose's claims that
    no longer hold."""
    (a, a_checks), (b, b_checks) = allreduce_figures(), scaling_figures()
    return {**a, **b, pages.CLAIMS: pages.failing({**a_checks, **b_checks})}


written, check, main = pages.generator(figures, PAGES, HEADER, GENERATOR)
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
