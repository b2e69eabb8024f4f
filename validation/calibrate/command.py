"""`dnnsim calibrate`: measure op kinds on this machine and write a profile TOML."""
from __future__ import annotations

import os
import sys

from simulator import limits
from simulator.outputs import check_output, write_atomically
from workloads.graph import WorkloadError

NAME = "calibrate"
DEFAULT_OUT = "profile.toml"
HELP = ("Measure the ops of the zoo networks (and a grid of other shapes), each inside a "
        "replayed training step, on this machine and write a calibrated device profile.")


def add_arguments(p) -> None:
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", help=f"profile TOML to write (default {DEFAULT_OUT}, which is "
                   "never replaced: an existing file is replaced only when named here)")
    p.add_argument("--published", metavar="DIR_OR_CSV",
                   help="fit the GPU architectures' constants to published or your own "
                   "training rows and write them to --out as a families file "
                   "(docs/calibrate-gpu.md): a folder holding single_gpu.csv (and kernels.csv, "
                   "if it has kernel times) or one CSV of training rows "
                   "(docs/published-tables.md); measures nothing")
    p.add_argument("--alone", action="store_true",
                   help="with --published: fit to its rows only (default: the shipped tables "
                   "of validation/measured/published are fitted with them, so architectures "
                   "your rows do not cover keep their published fit)")
    p.add_argument("--held-out", choices=("network", "folds", "none"),
                   help="with --published: estimate how well the fit predicts rows it was not "
                   "fitted on, over the rows of --published: 'network' (default) predicts "
                   "each network from a fit without it (5 folds when the rows run one "
                   "network), 'folds' deals the rows into 5 folds, 'none' skips it")
    p.add_argument("--workers", type=int, default=None,
                   help="with --published: processes for the held-out fits (default: one per "
                   "CPU; 1 runs them in this process); the figures do not depend on it")
    p.add_argument("--skip-unusable", action="store_true",
                   help="with --published: fit the rows that can be and list the others "
                   "(default: a row that cannot be fitted, such as a GPU not in the catalog, "
                   "is an error)")
    p.add_argument("--quick", action="store_true",
                   help="validation batches only (no half/double batch grid), fewer rounds")
    p.add_argument("--threads", type=int, default=1,
                   help="PyTorch threads to measure with (torch.set_num_threads, recorded in "
                   "the profile; default 1): calibrate at the thread count your training "
                   "runs at to model multi-threaded training")
    p.add_argument("--device-name", help="catalog device the profile calibrates "
                   "(default xeon-avx512-2c for cpu, h100 for cuda)")
    p.add_argument("--partial", help="measurements file to append to and resume from "
                   "(default OUT.partial.jsonl)")
    p.add_argument("--ops-csv", help="also write the op measurements as CSV here")
    p.add_argument("--rounds", type=int, help="timed replays of each network (default 10, "
                   "--quick 4); each case's median round counts")
    p.add_argument("--max-rounds", type=int, help="replay a network again, up to this many "
                   "rounds, until a second round confirms its median within 3%% (default "
                   "3 x --rounds, --quick 2 x; equal to --rounds: no extra rounds)")
    p.add_argument("--steps-csv", help="also time the validation cases' real training steps, "
                   "interleaved with the replays, and write them here (for `dnnsim validate "
                   "--measured`)")
    p.add_argument("--heldout-csv", help="also time the held-out PyTorch modules' training "
                   "steps (validation/calibrate/heldout.py) in calibration's rounds and write "
                   "them here; the profile never uses them (score with validate --measured)")
    p.add_argument("--refit", metavar="PROFILE", help="measure nothing: rebuild --out from "
                   "the op measurements of --ops-csv, with PROFILE's machine record and step "
                   "overhead (after a change to how profiles are fitted)")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    if not args.published and (args.alone or args.held_out or args.skip_unusable
                               or args.workers is not None):
        raise WorkloadError("--alone, --held-out, --skip-unusable and --workers go with "
                            "--published (a fit to training rows)")
    if args.published:
        from .published_command import run_published
        return run_published(args)
    if args.out is None:   # a file the user did not name is never replaced
        args.out = DEFAULT_OUT
        if os.path.exists(DEFAULT_OUT):
            raise WorkloadError(f"{DEFAULT_OUT} exists and --out was not given: not "
                                f"overwritten (give --out {DEFAULT_OUT} to replace it, or "
                                "another file)")
    from hwmodels import catalog

    from .cases import DEFAULT_CASES, calibration_cases
    from .journal import (
        measure_cases,
        measured_steps,
        overhead_from_partial,
        reference_from_rounds,
    )
    from .machine import default_device_name, machine_meta
    from .profile_build import build_profile, write_ops_csv
    from .steps_csv import write_steps_csv

    if args.refit:
        return refit(args)
    if args.threads < 1:
        raise WorkloadError(f"--threads must be >= 1, got {args.threads}")
    device_name = args.device_name or default_device_name(args.device)
    spec = catalog.device(device_name)
    want_kind = "gpu" if args.device == "cuda" else "cpu"
    if spec.kind != want_kind:
        raise WorkloadError(f"--device-name {device_name!r} is a {spec.kind}, but --device "
                            f"{args.device} measures a {want_kind}")
    import torch

    from .torch_exec import resolve_device, steady_allocator
    resolve_device(args.device)
    allocator = "steady" if steady_allocator() else "system"
    torch.set_num_threads(args.threads)
    rounds = args.rounds if args.rounds is not None else (4 if args.quick else 10)
    if rounds < 1:
        raise WorkloadError(f"--rounds must be >= 1, got {rounds}")
    limits.check_count("--rounds", rounds, limits.MAX_CALIBRATION_ROUNDS)
    max_rounds = (args.max_rounds if args.max_rounds is not None
                  else min(rounds * (2 if args.quick else 3), limits.MAX_CALIBRATION_ROUNDS))
    if max_rounds < rounds:
        raise WorkloadError(f"--max-rounds must be >= --rounds ({rounds}), got {max_rounds}")
    limits.check_count("--max-rounds", max_rounds, limits.MAX_CALIBRATION_ROUNDS)
    partial = args.partial or f"{args.out}.partial.jsonl"
    # refuse now, not after minutes of measuring, a file that could not be written
    for flag, path in (("--out", args.out), ("--partial", partial), ("--ops-csv", args.ops_csv),
                       ("--steps-csv", args.steps_csv), ("--heldout-csv", args.heldout_csv)):
        if path:
            check_output(path, flag)
    cases = calibration_cases(grid=not args.quick)
    print(f"calibrate: replaying {len(cases)} networks on {args.device} ({args.threads} "
          f"thread(s)); measurements go to {partial}", file=sys.stderr)
    step_cases = DEFAULT_CASES if args.steps_csv else ()
    module_steps = {}
    if args.heldout_csv:
        from . import heldout
        module_steps = heldout.step_timers(args.device)
    records = measure_cases(cases, partial, args.device, rounds=rounds,
                                progress=not args.no_progress, steps_of=set(step_cases),
                                module_steps=module_steps, max_rounds=max_rounds)
    overhead_s = overhead_from_partial(partial, args.device, rounds=5 if args.quick else 15)
    meta = {"device_kind": spec.kind, "device_name": device_name,
            "timing": "replay", "allocator": allocator, "rounds": rounds,
            "round_statistic": "median",
            "max_rounds": max_rounds,
            **machine_meta(args.device, args.threads)}
    reference_s = reference_from_rounds(partial)
    if reference_s is not None:
        meta["reference_replay_s"] = reference_s
    profile = build_profile(records, meta, overhead_s)
    write_atomically(args.out, profile.save)
    if args.ops_csv:
        write_atomically(args.ops_csv, lambda tmp: write_ops_csv(records, tmp))
    if args.steps_csv:
        steps = measured_steps(partial, step_cases)
        write_atomically(args.steps_csv, lambda tmp: write_steps_csv(steps, tmp))
        print(f"wrote {args.steps_csv}: the training steps of {len(step_cases)} cases")
    if args.heldout_csv:
        module_rows = measured_steps(partial, list(module_steps))
        write_atomically(args.heldout_csv, lambda tmp: write_steps_csv(module_rows, tmp))
        print(f"wrote {args.heldout_csv}: the training steps of {len(module_steps)} held-out "
              f"cases")
    print(f"wrote {args.out}: {sum(len(v) for v in profile.kinds.values())} points over "
          f"{len(profile.kinds)} op kinds; step overhead {overhead_s * 1e6:.1f} us/op")
    _note_lacking_kinds(profile, args.out)
    return 0


def refit(args) -> int:
    """A profile rebuilt from a calibration's ops CSV, nothing measured."""
    from hwmodels.profile import Profile

    from .profile_build import build_profile, read_ops_csv

    if not args.ops_csv:
        raise WorkloadError("--refit needs --ops-csv: the op measurements to rebuild from")
    old = Profile.load(args.refit)
    records = read_ops_csv(args.ops_csv)
    if not records:
        raise WorkloadError(f"--ops-csv {args.ops_csv}: no measurements")
    profile = build_profile(records, old.meta, float(old.meta.get("step_overhead_s", 0.0)))
    write_atomically(args.out, profile.save)
    print(f"wrote {args.out}: {sum(len(v) for v in profile.kinds.values())} points over "
          f"{len(profile.kinds)} op kinds, refitted from {args.ops_csv}")
    _note_lacking_kinds(profile, args.out)
    return 0


def _note_lacking_kinds(profile, path) -> None:
    from .coverage import lacking_note
    note = lacking_note(profile, path)
    if note:
        print(f"calibrate: {note}", file=sys.stderr)
