"""Write docs/precision.md and docs/benchmark-networks.md from their prose (docs/PAGE.in) and
what `dnnsim validate --published validation/measured/published/single_gpu.csv` gives for the
rows they discuss, so that no figure of theirs is typed:

    python docs/published_pages.py            # rescore the rows, rewrite the pages
    python docs/published_pages.py --check    # exit 1 where a page differs

precision.md: NVIDIA's PyTorch ResNet-50 AMP rows in NCHW (20.06) and NHWC (21.03), the
TensorFlow XLA AMP rows, and the Titan X (Maxwell)'s cuDNN R4 FP16 rows beside their FP32 pairs.
benchmark-networks.md: the GoogLeNet v1 rows of Torch7, whole steps and each phase. What the
prose says of them (which rows are fast, which phase is long) is checked too, so a refit that
makes a sentence false fails the check. tests/test_templated_pages.py runs it (seconds).
"""
from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS), str(DOCS.parent)]
import templated_pages as pages  # noqa: E402

from validation.calibrate import published_gpu as pg  # noqa: E402
from validation.validate import published as pub  # noqa: E402

GENERATOR = "docs/published_pages.py"
PAGES = ("precision.md", "benchmark-networks.md")
HEADER = pages.header(GENERATOR, "the validation it names")
ROWS = DOCS.parent / "validation" / "measured" / "published" / "single_gpu.csv"
NCHW, NHWC = ("S009", "S011"), ("S004", "S006")
XLA_AMP = ("S024", "S026")
# cuDNN R4 on the Titan X (Maxwell): each FP16 row and its FP32 pair; GoogLeNet v1 last
R4_PAIRS = (("S264", "S267"), ("S268", "S271"), ("S272", "S275"), ("S276", "S279"))
R4_FP16 = tuple(half for _, half in R4_PAIRS)
OWN = NCHW + NHWC + XLA_AMP + tuple(r for pair in R4_PAIRS for r in pair)


def _signed_span(values: list[float]) -> str:
    """Lowest to highest, signs kept (+: the model is fast)."""
    return f"{100 * min(values):+.0f}% to {100 * max(values):+.0f}%"


def _pct(values: list[float]) -> str:
    low, high = (f"{100 * abs(v):.0f}" for v in (min(values, key=abs), max(values, key=abs)))
    return f"{low}%" if low == high else f"{low}-{high}%"


def _span(values: list[float]) -> str:
    low, high = f"{min(values):.1f}", f"{max(values):.1f}"
    return low if low == high else f"{low}-{high}"


def figures() -> dict[str, str]:
    """Every figure of the pages, measured, and (under `pages.CLAIMS`) the prose's claims
    that no longer hold."""
    rows = pg.read_network_rows(str(ROWS)).rows
    scored = {s.row.row_id: s for s in pub.score_networks(
        [r for r in rows if r.row_id in OWN or (r.network == "googlenet_v1"
                                                and r.framework.startswith("Torch7"))])}
    nchw, nhwc = [scored[i] for i in NCHW], [scored[i] for i in NHWC]
    google = [s for i, s in sorted(scored.items()) if i not in OWN]
    xla = [scored[i].error for i in XLA_AMP]
    r4 = [scored[i].error for i in R4_FP16]
    fp32, fp16 = (scored[i] for i in R4_PAIRS[-1])
    model_gain = fp16.simulated / fp32.simulated - 1
    published_gain = fp16.row.throughput / fp32.row.throughput - 1
    fwd = {s.row.gpu: s.phase_errors()["forward"] for s in google}
    bwd = [s.phase_errors()["backward"] for s in google]
    slowest = max(google, key=lambda s: s.error).row.gpu
    long_fwd = [e for gpu, e in fwd.items() if e > 0]
    short_fwd = [gpu for gpu, e in fwd.items() if e <= 0]
    values = {
        "nchw_model": f"{nchw[0].simulated:.0f}",
        "nchw_published": " and ".join(f"{s.row.throughput:.0f}" for s in nchw),
        "nhwc_model": f"{nhwc[0].simulated:.0f}",
        "nhwc_published": " and ".join(f"{s.row.throughput:.0f}" for s in nhwc),
        "googlenet_fast": _signed_span([s.error for s in google]),
        "googlenet_most": "K80" if slowest == "k80" else slowest,
        "backward_short": _signed_span(bwd),
        "forward_long": _pct(long_fwd),
        "forward_short": (", ".join(f"the {g.upper()}'s {100 * -fwd[g]:.0f}% short"
                                    for g in short_fwd)),
        "published_ratio": _span([s.row.phase_s[1] / s.row.phase_s[0] for s in google]),
        "model_ratio": _span([s.phase_s[1] / s.phase_s[0] for s in google]),
        "xla_fast": _pct(xla),
        "r4_fp16_miss": _signed_span(r4),
        "r4_model_gain": f"{100 * model_gain:.0f}%",
        "r4_published_gain": f"{100 * published_gain:.0f}%",
    }
    checks = {
        "each layout's rows run alike in the model (one figure for both)":
            len({round(s.simulated, 1) for s in nchw}) == 1
            and len({round(s.simulated, 1) for s in nhwc}) == 1,
        "the NHWC rows run faster than the NCHW rows": nhwc[0].simulated > nchw[0].simulated,
        "most GoogLeNet v1 rows of Torch7 come out faster than published, the K80's most":
            2 * sum(s.error > 0 for s in google) > len(google) and slowest == "k80",
        "their backward passes are short on most GPUs": 2 * sum(e < 0 for e in bwd) > len(bwd),
        "their forward passes are long on every GPU but one": len(short_fwd) == 1,
        "TensorFlow with XLA in AMP comes out fast": all(e > 0 for e in xla),
        "the model gains more from FP16 storage on GoogLeNet than the published rows":
            model_gain > published_gain,
    }
    values[pages.CLAIMS] = pages.failing(checks)
    return values


written, check, main = pages.generator(figures, PAGES, HEADER, GENERATOR)
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
