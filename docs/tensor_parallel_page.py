"""Write docs/tensor-parallel.md from its prose (the template docs/tensor-parallel.md.in) and
the figures the runs it names give, so that no figure of the page is typed:

    python docs/tensor_parallel_page.py            # rerun every command, rewrite the page
    python docs/tensor_parallel_page.py --check    # exit 1 where the page differs

Each `{{name}}` of the template is a figure or table measured here by a `dnnsim simulate ...
--json` run on one DGX H100 in amp-bf16. The prose's comparisons (what sequence parallelism
saves, that splitting a small model buys memory and not speed) are checked too, so a change
of the model that makes a sentence false fails the check. tests/test_templated_pages.py
runs it (slow).
"""
from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS), str(DOCS.parent)]
import capacity_study_page as study  # noqa: E402  (docs/ is not a package)
import templated_pages as pages  # noqa: E402

GENERATOR = "docs/tensor_parallel_page.py"
PAGES = ("tensor-parallel.md",)
HEADER = pages.header(GENERATOR)
NODE = ["--hardware", "h100", "--node-type", "dgx-h100", "--devices", "8",
        "--precision", "amp-bf16"]
TP = ["--policy", "tensor-parallel", "--tp"]
DP = ["--policy", "data-parallel"]
# (workload, batch per group, policy column, policy flags)
TABLE = [
    ("gpt2", 8, "tp=1 (= data-parallel)", [*TP, "1"]),
    ("gpt2", 8, "tp=2", [*TP, "2"]),
    ("gpt2", 8, "tp=4", [*TP, "4"]),
    ("gpt2", 8, "tp=4, vocab_parallel false", [*TP, "4", "--vocab-parallel", "false"]),
    ("gpt2_medium", 8, "tp=1 (= data-parallel)", [*TP, "1"]),
    ("gpt2_medium", 8, "tp=8", [*TP, "8"]),
    ("gpt2_medium", 8, "tp=8, sequence parallel", [*TP, "8", "--sequence-parallel", "true"]),
    ("gpt2_medium", 1, "data-parallel", DP),
    ("llama2_7b", 4, "data-parallel", DP),
    ("llama2_7b", 4, "tp=8", [*TP, "8"]),
    ("llama2_7b", 4, "tp=8, vocab_parallel false", [*TP, "8", "--vocab-parallel", "false"]),
    ("llama2_7b", 4, "tp=8, sequence parallel", [*TP, "8", "--sequence-parallel", "true"]),
]


def three(value: float) -> str:
    """Three significant figures, whole numbers from 100 up."""
    return f"{value:.0f}" if value >= 100 else f"{value:#.3g}"


def row(workload: str, batch: int, label: str, s: dict) -> str:
    gb = f"{pages.peak_bytes(s) / 1e9:.1f}"
    if s["status"] == "out_of_memory":
        return f"| {workload}, {batch} | {label} | out of memory | | {gb} wanted |"
    return (f"| {workload}, {batch} | {label} | {three(s['makespan_s'] * 1e3)} | "
            f"{three(s['throughput_samples_per_s'])} | {gb} |")


def figures() -> dict[str, str]:
    """Every figure of the page, measured, and (under `pages.CLAIMS`) the prose's comparisons that
    no longer hold."""
    runs = {(w, b, label): study.simulate_json(["--workload", w, "--batch", str(b), *NODE,
                                                *flags])
            for w, b, label, flags in TABLE}
    table = ("| workload, batch per group | policy | step (ms) | samples/s | peak per GPU (GB) |"
             "\n|---|---|---|---|---|\n" + "\n".join(row(*key, s) for key, s in runs.items()))
    tp8, sp = runs[("llama2_7b", 4, "tp=8")], runs[("llama2_7b", 4, "tp=8, sequence parallel")]
    split = runs[("gpt2_medium", 8, "tp=8")]
    whole = runs[("gpt2_medium", 1, "data-parallel")]
    values = {"table": table,
              "sp_step_saving": f"{100 * (1 - sp['makespan_s'] / tp8['makespan_s']):.0f}%",
              "split_samples": three(split["throughput_samples_per_s"]),
              "replicated_samples": three(whole["throughput_samples_per_s"])}
    checks = {
        "llama2_7b at 4 runs out of memory under data-parallel and fits under tp=8":
            runs[("llama2_7b", 4, "data-parallel")]["status"] == "out_of_memory"
            and all(s["status"] == "ok" for key, s in runs.items()
                    if key != ("llama2_7b", 4, "data-parallel")),
        "sequence parallelism more than halves llama2_7b's memory and shortens its step":
            pages.peak_bytes(sp) < pages.peak_bytes(tp8) / 2
            and sp["makespan_s"] < tp8["makespan_s"],
        "gpt2_medium split 8 ways trains slower than replicated, in less memory":
            split["throughput_samples_per_s"] < whole["throughput_samples_per_s"]
            and pages.peak_bytes(split) < pages.peak_bytes(whole),
    }
    values[pages.CLAIMS] = pages.failing(checks)
    return values


written, check, main = pages.generator(figures, PAGES, HEADER, GENERATOR)
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
