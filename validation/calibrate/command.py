"""`dnnsim calibrate`: measure op kinds on this machine and write a profile TOML."""
from __future__ import annotations

import os
import sys

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
    p.add_argument("--published", metavar="DIR",
                   help="fit the GPU architectures' constants to the published tables in DIR "
                   "(kernels.csv, single_gpu.csv) and write them to --out as a families file "
                   "(docs/gpu-model.md); measures nothing")
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
    if args.out is None:   # a file the user did not name is never replaced
        args.out = DEFAULT_OUT
        if os.path.exists(DEFAULT_OUT) and not args.published:
            raise WorkloadError(f"{DEFAULT_OUT} exists and --out was not given: not "
                                f"overwritten (give --out {DEFAULT_OUT} to replace it, or "
                                "another file)")
    if args.published:
        return _run_published(args)
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
    max_rounds = (args.max_rounds if args.max_rounds is not None
                  else rounds * (2 if args.quick else 3))
    if max_rounds < rounds:
        raise WorkloadError(f"--max-rounds must be >= --rounds ({rounds}), got {max_rounds}")
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


def _run_published(args) -> int:
    import os

    from validation.calibrate import published_fit as pf
    from validation.calibrate import published_gpu as pg
    from validation.calibrate import published_kernels as pk
    if os.path.exists(args.out):
        raise WorkloadError(f"--out {args.out}: exists; not overwritten (remove it or name "
                            f"another file)")
    kernels_csv = os.path.join(args.published, "kernels.csv")
    networks_csv = os.path.join(args.published, "single_gpu.csv")
    missing = [os.path.basename(p) for p in (kernels_csv, networks_csv) if not os.path.isfile(p)]
    if missing:   # a file given for the folder, or a folder short of a table
        raise WorkloadError(f"--published {args.published!r}: give a folder holding "
                            f"kernels.csv and single_gpu.csv (as validation/measured/"
                            f"published/); it lacks {' and '.join(missing)}")
    kernels = pk.read_kernel_rows(kernels_csv)
    networks = pg.read_network_rows(networks_csv)
    for table in (kernels, networks):   # constants fitted to nothing are not a fit
        if not table.rows:
            first = (f"; {table.skipped[0].row_id}: {table.skipped[0].reason}"
                     if table.skipped else "")
            raise WorkloadError(f"{table.path}: none of its {len(table.skipped)} rows can be "
                                f"fitted{first}")
    fitted = pf.fit_all(kernels.rows, networks.rows)
    sources = [f"{kernels_csv} ({len(kernels.rows)} kernel rows)",
               f"{networks_csv} ({len(networks.rows)} training-throughput rows)"]
    with open(args.out, "x", encoding="utf-8") as fh:
        fh.write(pf.families_toml(fitted, sources))
    families, frameworks = fitted
    print(f"wrote {args.out}: architectures {', '.join(sorted(families))}; frameworks "
          f"{', '.join(sorted(frameworks))}")
    return 0
