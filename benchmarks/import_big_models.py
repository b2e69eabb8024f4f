"""Import time and peak memory of models at the sizes users bring, through the command line's
file path (`dnnsim describe path.py:factory --batch 8 --option input_shape=...`): a 7B, a 13B
and a 70B LLaMA-shaped decoder and Mixtral 8x7B at sequence 2048, ViT-H/14 at 224x224, an
SDXL-shaped U-Net on 128x128 latents with 77 text states, batch 8
(tests/workloads/torch_big_models.py), and LLaMA-2-7B and Mixtral-8x7B as Hugging Face's classes
where transformers is installed.

    python benchmarks/import_big_models.py [--only llama-7b ...] [--import-on meta|cpu]
        [--cpu-memory-gb 8]

Each model is imported in a fresh process; its wall time and CPU time (start-up, importing
torch and printing the table included) and its peak resident memory (the kernel's count for
that process) are printed,
with where the import ran (describe's "imported on" line), or, where it failed, the error's
last line. `--import-on cpu` runs the module on the CPU (real weights, the full batch), with
the process's address space capped at --cpu-memory-gb so that a model too large for the
machine fails to allocate rather than take the machine's memory. Figures, not a test: they
depend on the machine.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS_FILE = "tests/workloads/torch_big_models.py"
TEXT = ["input_shape=2048", "tokens=32000"]
CASES = {   # name: (factory, workload options)
    "llama-7b": ("llama_7b", TEXT),
    "llama-13b": ("llama_13b", TEXT),
    "llama-70b": ("llama_70b", TEXT),
    "mixtral-8x7b": ("mixtral_8x7b", TEXT),
    "vit-h14": ("vit_h14", ["input_shape=3x224x224"]),
    "sdxl-unet": ("sdxl_unet", ["input_shape=4x128x128+scalar+77x2048"]),
    "hf-llama-7b": ("hf_llama_7b", TEXT),          # where transformers is installed
    "hf-mixtral-8x7b": ("hf_mixtral_8x7b", TEXT),
}
BATCH = 8


def run(name: str, import_on: str, cap_bytes: int | None) -> str:
    factory, options = CASES[name]
    command = [sys.executable, "-m", "simulator.cli", "describe", f"{MODELS_FILE}:{factory}",
               "--batch", str(BATCH), *(a for o in [*options, f"import_on={import_on}"]
                                        for a in ("--option", o))]

    def cap() -> None:   # in the child: allocations past the cap fail there
        if cap_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), OMP_NUM_THREADS="1")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err,
                                 text=True, preexec_fn=cap)
        # wait4, not Popen.wait: it gives this child's own peak resident memory (KiB)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines, errors = out.read().splitlines(), err.read().strip().splitlines()
    peak = f"{usage.ru_maxrss / 2 ** 20:.2f} GiB, {usage.ru_utime + usage.ru_stime:.1f} s of CPU"
    if child.returncode != 0:
        last = (errors or ["no message"])[-1]
        return f"{name}: failed (exit {child.returncode}) after {seconds:.1f} s, peak " \
               f"{peak}: {last[:240]}"
    where = next((line for line in lines if line.startswith("imported on ")), "")
    total = next((line for line in lines if line.startswith("total: ")), "")
    return f"{name}: {seconds:.1f} s, peak {peak}; {total[7:]}; {where}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=tuple(CASES))
    parser.add_argument("--import-on", choices=("meta", "cpu"), default="meta")
    parser.add_argument("--cpu-memory-gb", type=float, default=8.0,
                        help="address-space cap of each process with --import-on cpu")
    args = parser.parse_args(argv)
    cap = int(args.cpu_memory_gb * 2 ** 30) if args.import_on == "cpu" else None
    print(f"batch {BATCH}, import on {args.import_on}" +
          (f" (address space capped at {args.cpu_memory_gb:g} GiB)" if cap else ""))
    hf = importlib.util.find_spec("transformers") is not None
    for name in args.only or CASES:
        if name.startswith("hf-") and not hf:
            print(f"{name}: transformers is not installed, skipped")
            continue
        print(run(name, args.import_on, cap), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
