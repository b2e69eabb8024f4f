"""`dnnsim validate`: measured vs simulated training steps (and inference) of zoo networks."""
from __future__ import annotations

import sys

from simulator.commands import input_files, refuse_inputs_as_outputs
from simulator.outputs import check_output, write_atomically
from workloads.graph import WorkloadError

NAME = "validate"
HELP = ("Measure real training steps (and inference) of zoo networks, simulate them with a "
        "calibrated profile, and print measured, simulated and error per case.")


def add_arguments(p) -> None:
    p.add_argument("--profile", help="calibrated profile TOML (dnnsim calibrate)")
    p.add_argument("--published", metavar="FILE.csv",
                   help="score the GPU model against published training throughputs "
                   "(columns of validation/measured/published/README.md; docs/gpu-validation.md)")
    p.add_argument("--kernels", metavar="FILE.csv",
                   help="with --published: also score library kernel times from this file")
    p.add_argument("--gpu-families", metavar="FILE.toml",
                   help="with --published: score with the GPU constants of this families file "
                   "(dnnsim calibrate --published) instead of the catalog's")
    p.add_argument("--leave-one-gpu-out", action="store_true",
                   help="with --published: predict each GPU from constants fitted without "
                   "its rows (fits to the committed kernel table and the given rows)")
    p.add_argument("--breakdown", nargs="+", metavar="ROW_ID",
                   help="with --published: print where each named row's simulated time goes "
                   "(per phase: arithmetic, memory, serial, kernel overhead, host; and per op "
                   "kind and algorithm) instead of the table")
    p.add_argument("--workloads", nargs="+", help="zoo networks (default: the calibrated set)")
    p.add_argument("--batch", nargs="+", type=int,
                   help="batch sizes (default: each network's two validation batches)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, help="torch threads to measure with (default: the "
                   "profile's; another count than the profile's warns: its times are of "
                   "another setting)")
    p.add_argument("--inference", action="store_true", help="also measure inference")
    p.add_argument("--heldout", action="store_true",
                   help="measure the held-out PyTorch modules (validation/calibrate/heldout.py) "
                   "instead of zoo networks: shapes no calibration has seen")
    p.add_argument("--transformers", action="store_true",
                   help="measure GPT-2 small and torchvision's ViT-B/16 training steps "
                   "instead of zoo networks (validation/validate/transformer_steps.py)")
    p.add_argument("--torchvision", action="store_true",
                   help="measure training steps of torchvision's CNN classifiers (definitions "
                   "no calibration replays) instead of zoo networks")
    p.add_argument("--measured", help="score this measured-steps CSV instead of measuring")
    p.add_argument("--csv", default=None,
                   help="also write the table to this CSV file (nothing is written unless given)")
    p.add_argument("--save-measured", help="write the measured steps as CSV here")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    if args.published:
        return _run_published(args)
    if args.kernels or args.leave_one_gpu_out or args.breakdown or args.gpu_families:
        raise WorkloadError("--kernels, --leave-one-gpu-out, --breakdown and --gpu-families "
                            "score published "
                            "tables: they go with --published FILE.csv")
    if not args.profile:
        raise WorkloadError("give --profile (a calibrated profile) or --published FILE.csv")
    from hwmodels.cpu_identity import other_machine_message
    from validation.calibrate.cases import DEFAULT_CASES
    from validation.calibrate.machine import speed_check
    from validation.calibrate.steps_csv import read_steps_csv, write_steps_csv

    from . import compare as v

    profile = v.load_profile(args.profile)
    _check_cases(args)   # before the machine check and minutes of measuring
    outputs = (("--csv", args.csv), ("--save-measured", args.save_measured))
    for flag, path in outputs:
        if path:
            check_output(path, flag)     # before minutes of measuring, not after
    refuse_inputs_as_outputs(outputs, input_files([args.profile, args.measured]))
    if args.heldout and (args.workloads or args.batch or args.inference or args.measured):
        raise WorkloadError("--heldout measures its own modules and batches (training); it "
                            "takes no --workloads, --batch, --inference or --measured (a "
                            "held-out CSV is scored with --measured alone)")
    if args.transformers or args.torchvision:
        if (args.heldout or args.workloads or args.batch or args.inference or args.measured
                or args.device != "cpu" or (args.transformers and args.torchvision)):
            raise WorkloadError("--transformers and --torchvision each measure their own "
                                "cases (training, on the CPU); either takes no --heldout, "
                                "--workloads, --batch, --inference, --measured, --device or "
                                "the other")
        from .transformer_steps import run as run_cases
        from .transformer_steps import torchvision_cases
        cases = torchvision_cases() if args.torchvision else None
        _write_table(v, run_cases(profile, args.threads, cases=cases), args.csv)
        return 0
    if args.measured:
        measured = read_steps_csv(args.measured)
        _check_networks(args.measured, {r["network"] for r in measured})
    else:
        import torch
        threads = args.threads or int(profile.meta.get("threads", 1))
        if threads < 1:
            raise WorkloadError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
        if args.device == "cpu":
            mismatch = other_machine_message(profile.meta, profile.label, threads,
                                             torch.__version__)
            if mismatch:
                print(f"warning: {mismatch}", file=sys.stderr)
        print(speed_check(profile, args.device))
        if args.heldout:
            from validation.calibrate import heldout
            measured = heldout.measure(device=args.device, progress=not args.no_progress)
        else:
            measured = _measure_zoo(args, v, DEFAULT_CASES)
        if args.save_measured:
            write_atomically(args.save_measured, lambda tmp: write_steps_csv(measured, tmp))
    rows = v.simulate_measured(measured, profile)
    print(v.format_table(rows))
    _write_table(v, rows, args.csv)
    return 0


def _check_cases(args) -> None:
    from workloads import zoo
    if args.threads is not None and args.threads < 1:
        raise WorkloadError(f"--threads must be >= 1, got {args.threads}")
    bad_batches = [b for b in args.batch or () if b < 1]
    if bad_batches:
        raise WorkloadError(f"--batch must be >= 1, got {bad_batches[0]}")
    unknown = [n for n in args.workloads or () if not zoo.known(n)]
    if unknown:
        raise WorkloadError(f"--workloads: unknown network(s) {', '.join(unknown)}; known: "
                            f"{', '.join(zoo.names())}")


def _check_networks(path: str, names: set[str]) -> None:
    """Every network of a measured-steps file is a zoo network or a held-out module."""
    from workloads import zoo
    others = sorted(n for n in names if not zoo.known(n))
    if not others:
        return
    from validation.calibrate import heldout
    unknown = [n for n in others if n not in heldout.MODULES]
    if unknown:
        raise WorkloadError(f"{path}: unknown network(s) {', '.join(unknown)}: neither a zoo "
                            f"network (dnnsim workloads) nor a held-out module "
                            f"({', '.join(heldout.MODULES)})")


def _write_table(v, rows, path) -> None:
    if path:
        write_atomically(path, lambda tmp: v.write_table_csv(rows, tmp))
        print(f"wrote {path}")


def _measure_zoo(args, v, default_cases) -> list[dict]:
    names = args.workloads or sorted({n for n, _ in default_cases})
    if args.batch:
        cases = [(n, b) for n in names for b in args.batch]
    else:
        cases = [(n, b) for n, b in default_cases if n in names]
        missing = sorted(set(names) - {n for n, _ in cases})
        if missing:
            raise WorkloadError(f"--workloads {', '.join(missing)}: no default batches; "
                                f"give --batch")
    modes = (True, False) if args.inference else (True,)
    return v.measure_cases(cases, modes, args.device, progress=not args.no_progress)


def _run_published(args) -> int:
    import os

    from validation.calibrate import published_gpu as pg
    from validation.calibrate import published_kernels as pk
    from validation.validate import published as pv

    ignored = [flag for flag, given in (
        ("--profile", args.profile), ("--workloads", args.workloads), ("--batch", args.batch),
        ("--device", args.device != "cpu"), ("--threads", args.threads is not None),
        ("--inference", args.inference), ("--heldout", args.heldout),
        ("--transformers", args.transformers), ("--torchvision", args.torchvision),
        ("--measured", args.measured), ("--csv", args.csv),
        ("--save-measured", args.save_measured)) if given]
    if ignored:
        raise WorkloadError(f"--published scores the GPU model on published rows; it takes no "
                            f"{', '.join(ignored)} (those measure or score CPU steps)")
    if args.gpu_families and (args.leave_one_gpu_out or args.breakdown or args.kernels):
        raise WorkloadError("--gpu-families scores the rows with that file's constants; it "
                            "takes no --leave-one-gpu-out (which fits its own), --breakdown or "
                            "--kernels")
    constants = None
    if args.gpu_families:
        from hwmodels.gpu_families_file import load_gpu_families
        constants = load_gpu_families(args.gpu_families)
    table = pg.read_network_rows(args.published)
    kernels = pk.read_kernel_rows(args.kernels) if args.kernels else None
    if args.breakdown:
        from validation.validate import published_breakdown
        print(published_breakdown.run(table, args.breakdown, kernels, args.leave_one_gpu_out))
        return 0
    if args.leave_one_gpu_out:
        fit_kernels = kernels or pk.read_kernel_rows(
            os.path.join(pg.PUBLISHED_DIR, "kernels.csv"))
        scored = pv.leave_one_gpu_out(table.rows, fit_kernels.rows)
        title = "leave one GPU out"
    else:
        scored = pv.score_networks(table.rows, *(constants or ()))
        title = (f"constants of {args.gpu_families}" if args.gpu_families
                 else "constants of catalog/gpu_families.toml")
    print(pv.report(table, scored, pv.kernel_groups(kernels.rows) if kernels else None, title,
                    pv.algorithm_agreement(kernels.rows) if kernels else None))
    # a file of which nothing could be scored is not a result
    for path, rows, skipped in ((args.published, scored, table.skipped),
                                (args.kernels, kernels.rows if kernels else None,
                                 kernels.skipped if kernels else [])):
        if path and not rows:
            first = f"; {skipped[0].row_id}: {skipped[0].reason}" if skipped else ""
            raise WorkloadError(f"{path}: none of its {len(skipped)} rows could be "
                                f"simulated{first}")
    return 0
