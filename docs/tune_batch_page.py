"""Write docs/tune-batch.md from its prose (the template docs/tune-batch.md.in) and the figures
the runs it names give, so that no figure of the page is typed:

    python docs/tune_batch_page.py            # rerun the search and the scan, rewrite the page
    python docs/tune_batch_page.py --check    # exit 1 where the page differs

The page's example of a throughput curve with several peaks is ResNet-152 under `swap` on a
12 GiB Titan X (Pascal): `dnnsim tune-batch` gives where the search lands, and a `dnnsim
simulate --json` of every minibatch of `SCAN` the curve it searched. What the prose says of
them (several peaks, the search no worse than its ladder's best) is checked too.
tests/test_templated_pages.py runs it (slow).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS), str(DOCS.parent)]
import capacity_study_page as study  # noqa: E402  (docs/ is not a package)
import templated_pages as pages  # noqa: E402

GENERATOR = "docs/tune_batch_page.py"
PAGES = ("tune-batch.md",)
HEADER = pages.header(GENERATOR)
MEMORY_GIB = 12
CASE = ["--workload", "resnet152", "--hardware", "titan-x-pascal"]
SCAN = range(56, 89)
PEAK_WITHIN = 0.005     # a local maximum this close to the best counts as a peak


def tuned() -> dict:
    """`dnnsim tune-batch`'s --json result for swap."""
    done = subprocess.run(["dnnsim", "tune-batch", *CASE, "--policy", "swap", "--memory-gib",
                           str(MEMORY_GIB), "--json"], env=study.environment(),
                          capture_output=True, text=True, timeout=1800, check=True)
    return next(r for r in json.loads(done.stdout) if r["policy"] == "swap")


def scan() -> dict[int, float]:
    """Samples per second at each minibatch of SCAN (0 where it does not fit)."""
    out = {}
    for batch in SCAN:
        s = study.simulate_json([*CASE, "--batch", str(batch), "--policy", "swap",
                                 "--hardware-option", f"memory_bytes={MEMORY_GIB * 2 ** 30}"])
        out[batch] = s["throughput_samples_per_s"] if s["status"] == "ok" else 0.0
    return out


def figures() -> dict[str, str]:
    """Every figure of the page, measured, and (under `pages.CLAIMS`) the prose's claims that
    no longer hold."""
    result, rates = tuned(), scan()
    best = max(rates.values())
    sizes = sorted(rates)
    peaks = [b for i, b in enumerate(sizes[1:-1], 1)
             if rates[sizes[i - 1]] < rates[b] > rates[sizes[i + 1]]
             and rates[b] >= best * (1 - PEAK_WITHIN)]
    ladder = [p["throughput_samples_per_s"] for p in result["points"] if p["ok"]]
    landed = next(p for p in result["points"] if p["batch"] == result["best_batch"])
    values = {
        "scan_from": str(sizes[0]), "scan_to": str(sizes[-1]),
        "scan_spread": f"{100 * (1 - min(rates.values()) / best):.1f}%",
        "peaks": ", ".join(map(str, peaks[:-1])) + f" and {peaks[-1]}" if len(peaks) > 1
        else ", ".join(map(str, peaks)),
        "peak_spread": f"{100 * (1 - min(rates[b] for b in peaks) / best):.1f}%",
        "landed": str(result["best_batch"]),
        "scan_best": str(max(sizes, key=lambda b: (rates[b], -b))),
    }
    checks = {
        "every size of the scan trains": all(rates.values()),
        "the curve has several peaks": len(peaks) > 1,
        "the search lands on a size no worse than its ladder's best":
            landed["throughput_samples_per_s"] >= max(ladder),
    }
    values[pages.CLAIMS] = pages.failing(checks)
    return values


written, check, main = pages.generator(figures, PAGES, HEADER, GENERATOR)
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
