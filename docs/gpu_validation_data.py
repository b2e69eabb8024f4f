"""The figures docs/gpu-validation.md quotes about the published kernel tables themselves
(no model in them): how two cards of one architecture compare, the GEMM shapes where a
library release's kernel choice shows, and one shape timed twice that disagrees. Each comes
from the committed rows (validation/measured/published/kernels.csv) and the catalog's
datasheet figures, so that the page's prose about the data cannot drift from the data.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable

from hwmodels import catalog
from validation.calibrate import published_kernels as pk

PASS_NAMES = {"gemm": "GEMMs", "conv2d": "forward", "conv2d_grad_input": "data-gradient",
              "conv2d_grad_weight": "weight-gradient"}
BOTH_TIME_ABOVE_S = 0.3e-3      # pairs of cards compared where both time a kernel above this
FP32_BYTES = 4


def shape_key(row: pk.KernelRow) -> tuple:
    """What a kernel row computes, whatever card or table timed it."""
    a = row.op.attrs
    if row.kind == "gemm":
        return ("gemm", a["batch_rows"], a["out_features"], a["in_features"],
                a["cublas_transposes"])
    return (row.kind, tuple(a["in_shape"]), tuple(a["out_shape"]), tuple(a["kernel"]),
            tuple(a["stride"]), tuple(a.get("padding", (0, 0))))


def by_card_and_shape(rows: Iterable[pk.KernelRow]) -> dict[tuple, list[pk.KernelRow]]:
    out: dict[tuple, list[pk.KernelRow]] = defaultdict(list)
    for row in rows:
        out[(row.gpu, shape_key(row))].append(row)
    return out


def card_ratios(table: dict[tuple, list[pk.KernelRow]], card: str, other: str
                ) -> dict[str, list[float]]:
    """Per kind, `card`'s time over `other`'s for each shape both time above
    BOTH_TIME_ABOVE_S (a shape timed twice on one card: its median)."""
    out: dict[str, list[float]] = defaultdict(list)
    for (gpu, key), mine in sorted(table.items(), key=lambda kv: repr(kv[0])):
        theirs = table.get((other, key))
        if gpu != card or not theirs:
            continue
        a = statistics.median(r.time_s for r in mine)
        b = statistics.median(r.time_s for r in theirs)
        if min(a, b) > BOTH_TIME_ABOVE_S:
            out[key[0]].append(a / b)
    return out


def _span(values: Iterable[float], digits: int = 2) -> str:
    v = sorted(round(x, digits) for x in values)
    return f"{v[0]:.{digits}f}" if v[0] == v[-1] else f"{v[0]:.{digits}f} to {v[-1]:.{digits}f}"


def _pct_span(values: Iterable[float]) -> str:
    v = sorted(round(100 * x) for x in values)
    return f"{v[0]}%" if v[0] == v[-1] else f"{v[0]}-{v[-1]}%"


def gemm_time_s(table: dict[tuple, list[pk.KernelRow]], gpu: str, m: int, n: int, k: int,
                transposes: str) -> float:
    rows = table.get((gpu, ("gemm", m, n, k, transposes)))
    if not rows:
        raise ValueError(f"no {gpu} GEMM {m} x {n} x {k} {transposes} row")
    return statistics.median(r.time_s for r in rows)


def dram_share(gpu: str, m: int, n: int, k: int, time_s: float) -> float:
    """The share of the card's datasheet bandwidth that reading both operands and writing
    the product once, in `time_s`, takes."""
    moved = FP32_BYTES * (m * k + k * n + m * n)
    return moved / time_s / catalog.device(gpu).mem_bandwidth_Bps


def tflops(m: int, n: int, k: int, time_s: float) -> float:
    return 2.0 * m * n * k / time_s / 1e12


def _listed(items: list[str]) -> str:
    """'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.2f} ms"


def gemm_facts(table: dict[tuple, list[pk.KernelRow]]) -> dict[str, str]:
    """The GEMM shapes whose times show which kernel a cuBLAS release picked."""
    ti = "gtx1080ti"
    t32, t16 = (gemm_time_s(table, ti, 7680, n, 2560, "NN") for n in (32, 16))
    tn128, nn128 = (gemm_time_s(table, ti, 7680, 128, 2560, t) for t in ("TN", "NN"))
    # CUDA 8.0's Titan X (Pascal): transposed A against plain, 24,000 columns, M of 4608+
    tn_rate = [gemm_time_s(table, "titan-x-pascal", m, 24000, k, "NN")
               / gemm_time_s(table, "titan-x-pascal", m, 24000, k, "TN")
               for m, k in ((4608, 1536), (6144, 2048), (7680, 2560), (8448, 2816))]
    big = [gemm_time_s(table, "titan-x-pascal", 7680, 24000, 2560, t) for t in ("TN", "NN")]
    # CUDA 7.5: the 500,000-long 8-column products, transposed over plain
    slow75 = [gemm_time_s(table, g, m, 8, 500000, "TN") / gemm_time_s(table, g, m, 8, 500000, "NN")
              for g in ("m40", "titan-x-maxwell") for m in (512, 1024)]
    # the three Pascal cards' 16-column TN products, every row count they time
    pascal16 = [dram_share(r.gpu, *shape_key(r)[1:4], r.time_s)
                for (gpu, key), rows in table.items() for r in rows
                if gpu in ("gtx1080ti", "titan-xp", "titan-x-pascal") and key[0] == "gemm"
                and key[2] == 16 and key[4] == "TN" and key[3] < 500000]
    return {
        "data_ti_n32_share": _pct_span([dram_share(ti, 7680, 32, 2560, t32)]),
        "data_ti_n32_time": _ms(t32),
        "data_ti_n16_time": _ms(t16),
        "data_ti_tn128_time": _ms(tn128),
        "data_ti_nn128_time": _ms(nn128),
        "data_txp_tn_rate": _span(tn_rate),
        "data_txp_tn_tflops": f"{tflops(7680, 24000, 2560, big[0]):.1f}",
        "data_txp_nn_tflops": f"{tflops(7680, 24000, 2560, big[1]):.1f}",
        "data_cuda75_tn8": _span(slow75, 1),
        "data_pascal_tn16_share": f"{round(100 * statistics.median(pascal16))}% "
                                  f"({_pct_span(pascal16)})",
    }


def card_facts(table: dict[tuple, list[pk.KernelRow]]) -> dict[str, str]:
    """Two cards of one architecture and one library, kernel for kernel."""
    ti_xp = card_ratios(table, "gtx1080ti", "titan-xp")
    tmx_m40 = card_ratios(table, "titan-x-maxwell", "m40")
    kinds = [k for k in PASS_NAMES if k in ti_xp]
    return {
        "data_ti_xp": _span(statistics.median(v) for v in ti_xp.values()),
        "data_ti_xp_pairs": _listed([f"{len(ti_xp[k])} {PASS_NAMES[k]}" for k in kinds]),
        "data_ti_sms": str(catalog.device("gtx1080ti").sm_count),
        "data_xp_sms": str(catalog.device("titan-xp").sm_count),
        "data_tmx_m40": _span(statistics.median(v) for v in tmx_m40.values()),
    }


def describe(key: tuple) -> str:
    """A shape_key in words: 'the NN product 1024 x 16 x 512' (m x n x k), 'the
    weight-gradient pass of 16 x 512 x 7 x 7 -> 512 (3x3)' (input N x C x H x W)."""
    if key[0] == "gemm":
        return f"the {key[4]} product {key[1]} x {key[2]} x {key[3]}"
    kind, in_shape, out_shape, kernel = key[:4]
    return (f"the {PASS_NAMES[kind]} pass of {' x '.join(map(str, in_shape))} -> "
            f"{out_shape[1]} ({kernel[0]}x{kernel[1]})")


def duplicate_facts(table: dict[tuple, list[pk.KernelRow]]) -> dict[str, str]:
    """The shape one card's table times twice with the largest disagreement, and the other
    cards whose two times of it differ by more than twice."""
    spread = {key: max(r.time_s for r in rows) / min(r.time_s for r in rows)
              for key, rows in table.items() if len(rows) > 1}
    (gpu, key), _ = max(spread.items(), key=lambda kv: (kv[1], repr(kv[0])))
    others = sorted((g, spread[(g, k)]) for (g, k) in spread
                    if k == key and g != gpu and spread[(g, k)] > 2)
    slow, fast = (sorted(table[(gpu, key)], key=lambda r: -r.time_s)[i] for i in (0, -1))
    row = lambda r: r.row_id.split(":")[0]  # noqa: E731  (a pass of a convolution row)
    return {
        "data_dup_shape": describe(key),
        "data_dup_slow": f"{_ms(slow.time_s)} in row {row(slow)} of the {gpu}'s table",
        "data_dup_fast": f"{_ms(fast.time_s)} in row {row(fast)}",
        "data_dup_others": f"{len(others)} other cards' two times of it differ more than "
                           f"twice" + "".join(f", the {g}'s {r:.1f}x" for g, r in others),
        "data_dup_shapes_2x": str(sum(1 for r in spread.values() if r > 2)),
        "data_dup_shapes": str(len(spread)),
    }


def published_facts(kernel_rows: Iterable[pk.KernelRow]) -> dict[str, str]:
    table = by_card_and_shape(kernel_rows)
    return {**gemm_facts(table), **card_facts(table), **duplicate_facts(table)}
