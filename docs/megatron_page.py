"""Run the commands of docs/megatron.md and write what they print into the page, so that its
figures are measured, never typed:

    python docs/megatron_page.py            # rerun every command, rewrite the figures
    python docs/megatron_page.py --check    # exit 1 where the page no longer holds

The page's ```shell blocks run and their ```text blocks are compared and rewritten as
capacity_study_page.py does it. The table of Llama-2 70B layouts, between the two
`LAYOUTS_*` markers, is built from each layout's `--json` output. The prose quotes no figure
an output gives; what it says of the figures (which cost is the most exposed, which layout
is faster, which runs out of memory) is checked here, so a change of the model that makes a
sentence false fails the check. tests/test_megatron_page.py runs it.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS), str(DOCS.parent)]
import capacity_study_page as study  # noqa: E402  (docs/ is not a package)

from simulator.report import seconds, sig, size  # noqa: E402

PAGE = DOCS / "megatron.md"
LAYOUT_COMMAND = ["dnnsim", "simulate", "--workload", "llama2_70b", "--batch", "1",
                  "--hardware", "h100", "--node-type", "dgx-h100", "--precision", "bf16",
                  "--policy", "megatron", "--tp", "8"]
LAYOUTS = [(64, 2, 32), (64, 4, 64), (128, 4, 32), (256, 4, 16), (256, 8, 32)]  # GPUs, pp, m
BEGIN, END = "<!-- LAYOUTS_BEGIN: written by python docs/megatron_page.py -->\n", \
    "<!-- LAYOUTS_END -->\n"
HEADER = ("| GPUs | tp x pp x dp | micro-batches | step | tokens/s | TFLOP/s per GPU | MFU "
          "| bubble | peak memory |\n|---|---|---|---|---|---|---|---|---|\n")
UNIT_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def run_layout(devices: int, pp: int, micro_batches: int) -> dict:
    """One layout's `--json` summary."""
    return study.simulate_json([*LAYOUT_COMMAND[2:], "--devices", str(devices), "--pp", str(pp),
                                "--micro-batches", str(micro_batches)])


def layout(summary: dict) -> dict:
    """A layout's figures from its `--json` summary; a middle stage's bubble."""
    if summary["status"] == "out_of_memory":
        return {"oom": True}
    e = summary["extras"]["megatron"]
    bubbles = e["bubble_fraction"]
    return {"oom": False, "step_s": summary["iteration_time_s"],
            "tokens_per_s": summary["throughput_tokens_per_s"],
            "tflops": e["achieved_tflops_per_gpu"], "mfu": summary["model_flops_utilisation"],
            "bubble": bubbles[min(1, len(bubbles) - 1)],
            "peak": max(m["peak_bytes"] for m in e["memory"].values())}


def table_row(summary: dict) -> str:
    o = summary["scenario"]["options"]
    gpus, tp, pp = summary["scenario"]["devices"], o["tp"], o["pp"]
    head = f"| {gpus} | {tp} x {pp} x {gpus // (tp * pp)} | {o['micro_batches']} |"
    f = layout(summary)
    if f["oom"]:
        return head + " out of memory | | | | | |"
    return (head + f" {seconds(f['step_s'])} | {f['tokens_per_s']:,.0f} | {sig(f['tflops'])} | "
            f"{f['mfu'] * 100:.1f} % | {sig(f['bubble'] * 100, 3)} % | {size(f['peak'])} |")


def table(summaries: list[dict]) -> str:
    return HEADER + "".join(table_row(s) + "\n" for s in summaries)


def with_table(text: str, new_table: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + new_table + text[end:]


def figures(printed: str) -> dict:
    """What the prose speaks of, read from one run's printed output."""
    out: dict = {"oom": "OUT OF MEMORY" in printed}
    if m := re.search(r"^  iteration time +([\d.]+) (s|ms|us)$", printed, re.M):
        out["step_s"] = float(m.group(1)) * UNIT_S[m.group(2)]
    if m := re.search(r"^  tasks simulated +([\d,]+)$", printed, re.M):
        out["tasks"] = int(m.group(1).replace(",", ""))
    if m := re.search(r"^  bubble per stage +(.+)$", printed, re.M):
        out["bubble"] = [float(b) / 100 for b in re.findall(r"([\d.]+) %", m.group(1))]
    if m := re.search(r"^  exposed communication  (\D.+) \(the most exposed stage\)$",
                      printed, re.M):
        out["exposed_s"] = {k: float(v) * UNIT_S[u] for k, v, u in
                            re.findall(r"([a-z][a-z0-9 ]*?) ([\d.]+) (s|ms|us)", m.group(1))}
    return out


def claims(printed: list[str], summaries: list[dict]) -> list[str]:
    """Each statement of the prose about the figures that the figures no longer bear out."""
    recompute, plain, llama, oom = (figures(p) for p in printed[:4])
    pp2, pp4_64, pp4_128, pp4_256, pp8_256 = (layout(s) for s in summaries)
    pp, m = 16, 192
    said = {
        "a 1,024-GPU GPT-3 step is over a million tasks": recompute.get("tasks", 0) > 1e6,
        "the middle stages' bubble is above (pp - 1) / (m + pp - 1)":
            min(recompute["bubble"][1:-1]) > (pp - 1) / (m + pp - 1),
        "the tensor-parallel all-reduces are the largest exposed cost":
            max(recompute["exposed_s"], key=recompute["exposed_s"].get) == "tensor parallel",
        "without recomputation GPT-3 fits and is faster":
            not plain["oom"] and plain["step_s"] < recompute["step_s"],
        "Llama-2 70B fits on 64 GPUs as tp 8 x pp 4": not llama["oom"],
        "two stages on 64 GPUs run out of memory": pp2["oom"] and oom["oom"],
        "more GPUs (pp 4) shorten the step": pp4_64["step_s"] > pp4_128["step_s"]
            > pp4_256["step_s"],
        "more GPUs (pp 4) grow the bubble": pp4_64["bubble"] < pp4_128["bubble"]
            < pp4_256["bubble"],
        "more GPUs (pp 4) lower the per-GPU rate": pp4_64["tflops"] > pp4_128["tflops"]
            > pp4_256["tflops"],
        "at 256 GPUs pp 8 beats pp 4 despite a larger bubble, in less memory":
            pp8_256["step_s"] < pp4_256["step_s"] and pp8_256["bubble"] > pp4_256["bubble"]
            and pp8_256["peak"] < pp4_256["peak"],
    }
    return [f"the prose says {claim}, which no longer holds" for claim, holds in said.items()
            if not holds]


def measure(text: str) -> tuple[list[str], list[dict]]:
    with tempfile.TemporaryDirectory() as tmp:
        printed = study.run_page(text, Path(tmp))
    return printed, [run_layout(*spec) for spec in LAYOUTS]


def problems(text: str, printed: list[str], summaries: list[dict]) -> list[str]:
    """Where the page no longer shows what its commands print, or says what they do not."""
    shown = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    return claims(printed, summaries) + study.check(text, printed) \
        + study.differences(shown, table(summaries))


def main(argv: list[str]) -> int:
    text = PAGE.read_text()
    printed, summaries = measure(text)
    if "--check" in argv:
        found = problems(text, printed, summaries)
    else:
        found = claims(printed, summaries)   # the figures are rewritten; the prose is not
        new = PAGE.with_suffix(".md.new")   # the page is replaced whole or not at all
        new.write_text(with_table(study.rewritten(text, printed), table(summaries)))
        os.replace(new, PAGE)
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
