"""Measure the SparseTrain loop on this CPU and write a CSV of speedups against sparsity.

    python -m validation.reproduce.sparsetrain.loop_bench OUT.csv [--reps N] [--fma-repeat R ...]

Compiles loop_bench.c (beside this file: the zero-skipping loop and the same loop without
skipping) with gcc for each register block F, weight placement and FMA repeat, runs it at each
sparsity of uniform random zeros, and writes one row per run. FMA repeat 2 issues every
multiply-add twice (same accumulator, same weight register) in both loops: the FMAs take twice
their issue slots and nothing else changes, so a core with two FMA units runs the loop as one
with a single unit would (its second FMA port also still takes the compare). The first line
names the machine (CPU model, logical CPUs) and the peak 512-bit FMAs per ns of a pure FMA loop,
from which cycles follow. Needs gcc and a CPU with AVX-512F and BMI1. An existing OUT is never
overwritten.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("loop_bench.c")
FMAS_PER_NONZERO = (14, 24)     # 8 channel blocks x 3 outputs of a 3x3 conv; 8 x 3 taps
WEIGHT_SETS = (1, 8)            # weights in L1 (16 x F vectors), or cycled through 8 sets
SPARSITIES = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
FMA_REPEATS = (1,)              # the default run; --fma-repeat 1 2 adds the one-unit stand-in
FIELDS = ["fmas_per_nonzero", "weight_sets", "fma_repeat", "sparsity", "dense_ns_per_vector",
          "sparse_ns_per_vector", "speedup"]


class BenchError(Exception):
    pass


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compile(workdir: Path, fmas: int, sets: int, repeat: int) -> Path:
    exe = workdir / f"loop_bench_f{fmas}_w{sets}_r{repeat}"
    cmd = ["gcc", "-O2", "-march=skylake-avx512", f"-DF={fmas}", f"-DWSETS={sets}",
           f"-DFMA_REPEAT={repeat}", str(SOURCE), "-o", str(exe)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"gcc could not build the loop benchmark: {done.stderr.strip()}")
    return exe


def _run(exe: Path, *args: str) -> str:
    done = subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:   # an illegal instruction: no AVX-512 here
        raise BenchError(f"the loop benchmark failed (exit {done.returncode}); it needs "
                         f"AVX-512F and BMI1: {done.stderr.strip()}")
    return done.stdout.strip()


def measure(out: Path, reps: int, repeats: tuple[int, ...] = FMA_REPEATS) -> None:
    if out.exists():
        raise BenchError(f"{out.name!r} exists; give a new file name")
    if shutil.which("gcc") is None:
        raise BenchError("gcc is not on PATH: the loop benchmark is compiled for this CPU")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        peak = ""
        for fmas in FMAS_PER_NONZERO:
            for sets in WEIGHT_SETS:
                exes = [_compile(Path(tmp), fmas, sets, r) for r in repeats]
                peak = peak or _run(exes[0], "peak")
                for s in SPARSITIES:
                    for exe in exes:   # the repeats side by side: same load on the machine
                        f, w, r, sp, dense, sparse = _run(exe, f"{s:.2f}",
                                                          str(reps)).split(",")
                        rows.append([f, w, r, sp, dense, sparse,
                                     f"{float(dense) / float(sparse):.3f}"])
                        print(",".join(rows[-1]), file=sys.stderr)
    with out.open("x", newline="") as fh:
        fh.write(f"# measured on {cpu_model()!r}, {os.cpu_count()} logical CPUs, gcc -O2 "
                 f"-march=skylake-avx512; peak 512-bit FMAs per ns (pure FMA loop): {peak}; "
                 f"best of {reps} interleaved runs\n")
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="CSV to write (must not exist)")
    ap.add_argument("--reps", type=int, default=400, help="interleaved runs per point")
    ap.add_argument("--fma-repeat", type=int, nargs="+", default=list(FMA_REPEATS),
                    help="FMAs issued per multiply-add (1: as the kernel; 2: the FMA port "
                         "work of a core with half the FMA units); several run side by side")
    args = ap.parse_args(argv)
    if args.reps < 1:
        print("loop_bench: --reps must be >= 1", file=sys.stderr)
        return 2
    if any(r not in (1, 2) for r in args.fma_repeat):
        print(f"loop_bench: --fma-repeat takes 1 or 2, got {args.fma_repeat}", file=sys.stderr)
        return 2
    try:
        measure(args.out, args.reps, tuple(dict.fromkeys(args.fma_repeat)))
    except BenchError as e:
        print(f"loop_bench: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
