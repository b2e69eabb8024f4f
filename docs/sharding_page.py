"""Write docs/sharding.md from its prose (the template docs/sharding.md.in) and the figures
the runs it names give, so that no figure of the page is typed:

    python docs/sharding_page.py            # rerun every command, rewrite the page
    python docs/sharding_page.py --check    # exit 1 where the page is not what it would write

Each `{{name}}` of the template is a figure or table measured here by the `dnnsim simulate
... --json` command the page gives for it. The prose's comparisons (which layout is faster,
which runs out of memory) are checked here too, so a change of the model that makes a
sentence false fails the check. tests/test_templated_pages.py runs it (slow).
"""
from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS), str(DOCS.parent)]
import capacity_study_page as study  # noqa: E402  (docs/ is not a package)
import templated_pages as pages  # noqa: E402

from simulator.report import seconds, sig, size  # noqa: E402
from workloads import zoo  # noqa: E402

GENERATOR = "docs/sharding_page.py"
PAGES = ("sharding.md",)
HEADER = pages.header(GENERATOR)
NODE = ["--hardware", "h100", "--node-type", "dgx-h100"]
# (workload, batch, precision or None, [(policy column, policy flags)])
TABLE = [
    ("resnet50", 32, None, [("`data-parallel`", ["--policy", "data-parallel"]),
                            ("`fsdp --stage 1`", ["--policy", "fsdp", "--stage", "1"]),
                            ("`fsdp --stage 3`", ["--policy", "fsdp", "--stage", "3"])]),
    ("gpt2", 8, None, [("`data-parallel`", ["--policy", "data-parallel"]),
                       ("`fsdp --stage 1`", ["--policy", "fsdp", "--stage", "1"]),
                       ("`fsdp --stage 2`", ["--policy", "fsdp", "--stage", "2"]),
                       ("`fsdp --stage 3`", ["--policy", "fsdp", "--stage", "3"])]),
    ("llama2_7b", 1, "amp-bf16", [("`data-parallel`", ["--policy", "data-parallel"]),
                                  ("`fsdp` (sgd-momentum)", ["--policy", "fsdp"]),
                                  ("`fsdp --optimizer adam`",
                                   ["--policy", "fsdp", "--optimizer", "adam"])]),
]


def simulate(workload: str, batch: int, devices: int, flags: list[str]) -> dict:
    """One run's `--json` summary on dgx-h100 nodes."""
    return study.simulate_json(["--workload", workload, "--batch", str(batch), *NODE,
                                "--devices", str(devices), *flags])


def fits(summary: dict) -> bool:
    return summary["status"] != "out_of_memory"


def figures() -> dict[str, str]:
    """Every figure of the page, measured, and the raw values the claims compare."""
    rows, raw = [], {}
    for workload, batch, precision, runs in TABLE:
        first = True
        for label, flags in runs:
            s = simulate(workload, batch, 8, [*flags, *(["--precision", precision]
                                                        if precision else [])])
            raw[(workload, label)] = s
            name = f"{workload}, batch {batch}, {precision or 'fp32'}" if first else ""
            first = False
            cells = (f"{seconds(s['makespan_s'])} | {size(pages.peak_bytes(s))}" if fits(s)
                     else "out of memory | ")
            rows.append(f"| {name} | {label} | {cells} |")
    table = ("| workload | policy | step | peak memory per GPU |\n|---|---|---|---|\n"
             + "\n".join(rows))
    dp = raw[("gpt2", "`data-parallel`")]
    sharded = raw[("gpt2", "`fsdp --stage 3`")]
    traffic = sharded["link_bytes"]["gpu0.tx"] / dp["link_bytes"]["gpu0.tx"]
    llama_dp = raw[("llama2_7b", "`data-parallel`")]
    full = simulate("llama2_7b", 1, 64, ["--policy", "fsdp", "--precision", "amp-bf16"])
    hybrid = simulate("llama2_7b", 1, 64, ["--policy", "fsdp", "--shard-group", "8",
                                           "--precision", "amp-bf16"])
    state_bytes = 12 * zoo.get("llama2_7b", batch=1).params()   # FP32 weight, grad, momentum
    values = {"table": table, "llama_state_gb": f"{state_bytes / 1e9:.0f} GB",
              "gpt2_stage3_traffic": sig(traffic, 3),
              "full_shard_step": seconds(full["makespan_s"]),
              "full_shard_memory": size(pages.peak_bytes(full)),
              "hybrid_step": seconds(hybrid["makespan_s"]),
              "hybrid_memory": size(pages.peak_bytes(hybrid))}
    checks = {
        "llama2_7b in AMP runs out of memory under data-parallel and fits under fsdp on 8":
            not fits(llama_dp) and fits(raw[("llama2_7b", "`fsdp` (sgd-momentum)")]),
        "stages 1 and 2 are slower than stage 3 (their final all-gather exposed)":
            all(raw[(w, s)]["makespan_s"] > raw[(w, "`fsdp --stage 3`")]["makespan_s"]
                for w, s in (("resnet50", "`fsdp --stage 1`"), ("gpt2", "`fsdp --stage 1`"),
                             ("gpt2", "`fsdp --stage 2`"))),
        "GPT-2's stage 3 moves less than 1.5 times an all-reduce's bytes": 1 < traffic < 1.5,
        "HYBRID_SHARD is slower than FULL_SHARD and holds more per GPU":
            fits(full) and fits(hybrid) and hybrid["makespan_s"] > full["makespan_s"]
            and pages.peak_bytes(hybrid) > pages.peak_bytes(full),
    }
    values[pages.CLAIMS] = pages.failing(checks)
    return values


written, check, main = pages.generator(figures, PAGES, HEADER, GENERATOR)
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
