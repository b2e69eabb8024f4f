"""The published V100 ResNet-50 v1.5 scaling rows (measured/published/scaling.csv) and what
each ran: its machine, precision, batch, input loader, gradient synchronisation and memory
format, each read from the row's framework, container and notes (validate/published_scaling.py
simulates them)."""
from __future__ import annotations

import csv
from pathlib import Path

from ..calibrate.published_gpu import LAYOUT_WORDS, XLA_SUFFIX, memory_format_of_row
from ..paths import MEASURED

SCALING_CSV = MEASURED / "published" / "scaling.csv"
REQUIRED_COLUMNS = ("row_id", "network", "gpu", "gpu_variant", "n_gpus", "interconnect_intra",
                    "framework", "framework_version", "precision", "precision_note",
                    "batch_per_gpu", "speedup_vs_1gpu")

# the machine each row names -> (node type of the catalog, its GPU)
MACHINES = {
    "DGX-1 V100 16GB": ("dgx1-v100", "v100"),
    "DGX-1 V100 32GB": ("dgx1-v100", "v100-32gb"),
    "DGX-2 V100 32GB": ("dgx2", "v100-32gb"),
}
PRECISIONS = {"FP32": "fp32", "AMP": "amp-fp16", "FP16": "fp16"}
# Rows that state no batch: NVIDIA's ResNet-50 v1.5 training scripts for 16 GB V100s run 256
# images per GPU with AMP and 128 with FP32, in PyTorch and TensorFlow alike (the PyTorch
# 19.10 rows' own notes say so; the TensorFlow README's DGX-1 examples use the same).
DEFAULT_BATCH = {"FP32": 128, "AMP": 256}
# The loader each framework's NVIDIA scripts use unless told otherwise: PyTorch's main.py
# --data-backend dali-cpu, with dali-gpu the README's advice on a DGX-2; TensorFlow's tf.data
# pipeline (DALI only with --use_dali); MXNet's DALI with nvJPEG's mixed decoder
# (--data-backend dali-gpu). An assumption: the table does not record the loader, and these
# defaults are not checked against the READMEs at each row's pinned commit.
LOADERS = {("PyTorch", "DGX-1"): "dali-cpu", ("PyTorch", "DGX-2"): "dali-gpu",
           ("TensorFlow", None): "tf-data", ("MXNet", None): "dali-gpu"}


# The Horovod release of a container whose framework's Horovod optimizer all-reduces on one
# GPU (horovod_one_rank 'cycle': MXNet's before Horovod 0.19). NGC containers are dated: a
# 2019 container up to 19.07 ships a Horovod 0.16 (current from January to August 2019),
# 20.12 one of 0.20 or later; an assumption, the table does not record Horovod's version.
HOROVOD_BEFORE_0_19 = ("NGC mxnet-19.07-py3",)


def row_horovod_one_rank(row: dict) -> str | None:
    """What the row's Horovod does on one GPU (data-parallel option horovod_one_rank; None:
    the row does not run Horovod): MXNet with a Horovod before 0.19 runs the background loop
    on one rank too, every other framework and release all-reduces nothing there."""
    if "Horovod" not in row["framework"]:
        return None
    mxnet = row["framework"].startswith("MXNet")
    return "cycle" if mxnet and row["framework_version"] in HOROVOD_BEFORE_0_19 else "skip"


def row_horovod_enqueue(row: dict) -> str | None:
    """When the row's Horovod is told of a gradient (data-parallel option horovod_enqueue;
    None: the row does not run Horovod): MXNet's engine runs Horovod's op once the gradient
    is computed ('gpu-ready'); TensorFlow's op enqueues it as the host dispatches it
    ('host-dispatch'), but under XLA the host is taken to wait for the compiled cluster
    (TensorFlow 1.x's XLA launch blocks the host until the cluster ends where its allocator
    refuses asynchronous deallocation; recalled of gpu_executable.cc and xla_launch_util.h,
    not checked against the files here), so Horovod hears of every gradient as it ends
    ('gpu-ready')."""
    if "Horovod" not in row["framework"]:
        return None
    xla = row_gradient_sync(row)[1] == "at-end"
    return "gpu-ready" if row["framework"].startswith("MXNet") or xla else "host-dispatch"


def row_gradient_sync(row: dict) -> tuple[str, str]:
    """The data-parallel options gradient_sync and gradients_ready of a row's framework:
    Horovod (TensorFlow, MXNet) fuses what each of its cycles finds ready; MXNet's kvstore
    reduces and broadcasts each parameter array; PyTorch's DDP and APEX's fill buckets (APEX
    with DDP's bucket sizes here: its own are 10^7 elements, no 1 MiB first bucket). Each
    takes its framework's defaults (_data_parallel.py, _horovod.py): NVIDIA's scripts are
    taken to set none of HOROVOD_CYCLE_TIME, HOROVOD_FUSION_THRESHOLD or bucket_cap_mb.
    TensorFlow with XLA compiles the forward and backward pass as one cluster, whose gradients
    are all ready when it ends."""
    framework = row["framework"]
    sync = "horovod" if "Horovod" in framework else \
        "kvstore" if "kvstore" in framework else "ddp"
    xla = "XLA" in row["precision_note"] and "no XLA" not in row["precision_note"]
    return sync, "at-end" if xla and framework.startswith("TensorFlow") else "per-op"


def stated_memory_formats(path: Path = MEASURED / "published" / "single_gpu.csv"
                          ) -> dict[tuple[str, str], str]:
    """The memory format the single-GPU table's notes state for a container and precision
    (NVIDIA's 21.03 PyTorch rows: "AMP uses NHWC per configs.yml"); the scaling table's rows
    of the same container and precision ran the same configs."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {(r["framework_version"], r["precision"]): fmt for r in rows
            for fmt in [next((f for word, f in LAYOUT_WORDS
                              if word in (r["precision_note"] or "").lower()), None)] if fmt}


def row_memory_format(row: dict, stated: dict[tuple[str, str], str]) -> str:
    """The memory format the row ran in: the one its notes or its container's single-GPU rows
    state, else its harness's (NCHW in PyTorch and TensorFlow without XLA, NHWC in half
    precision under XLA and NVIDIA's MXNet), as the single-GPU rows are read."""
    note = row["precision_note"]
    xla = "XLA" in note and "no XLA" not in note
    framework = row["framework"] + (XLA_SUFFIX if xla else "")
    container = stated.get((row.get("framework_version", ""), row["precision"]), "")
    notes = f"{note} {row.get('notes', '')} {container}"
    return memory_format_of_row(framework, PRECISIONS.get(row["precision"], "fp32"), notes)


def row_loader(row: dict) -> str | None:
    framework, machine = row["framework"].split()[0], row["gpu_variant"].split()[0]
    return LOADERS.get((framework, machine), LOADERS.get((framework, None)))


def read_table(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
            rows = list(reader)
    except OSError as exc:
        raise ValueError(f"cannot read the scaling table {path}: {exc.strerror}") from None
    out = []
    for i, row in enumerate(rows, start=2):
        if row["gpu"] != "V100" or row["network"] != "ResNet-50 v1.5":
            continue
        try:
            int(row["n_gpus"])
            float(row["speedup_vs_1gpu"])
            int(row["batch_per_gpu"]) if row["batch_per_gpu"] else None
            float(row["throughput_img_s"]) if row.get("throughput_img_s") else None
        except ValueError:
            raise ValueError(f"{path} line {i} ({row['row_id']}): n_gpus, batch_per_gpu, "
                             f"throughput_img_s and speedup_vs_1gpu must be numbers, got "
                             f"{row['n_gpus']!r}, {row['batch_per_gpu']!r}, "
                             f"{row.get('throughput_img_s')!r}, "
                             f"{row['speedup_vs_1gpu']!r}") from None
        out.append(row)
    return out


def setup_of(row: dict) -> tuple:
    return tuple(row[k] for k in ("framework", "framework_version", "gpu_variant", "precision",
                                  "precision_note", "batch_per_gpu"))


def load_rows(path: Path = SCALING_CSV) -> list[dict]:
    """The V100 ResNet-50 v1.5 rows of more than one GPU, in file order."""
    return [r for r in read_table(path) if int(r["n_gpus"]) > 1]


def load_baselines(path: Path = SCALING_CSV) -> dict[tuple, float]:
    """Published 1-GPU throughput (img/s) per setup (framework, version, machine, precision,
    precision note, batch)."""
    return {setup_of(r): float(r["throughput_img_s"]) for r in read_table(path)
            if int(r["n_gpus"]) == 1 and r.get("throughput_img_s")}


def published_step_losses(path: Path = SCALING_CSV) -> list[tuple[dict, float, dict[int, float]]]:
    """Per setup with a 1-GPU row: that row, its step time in seconds (batch over published
    images/s; NVIDIA's default batch where the row states none) and, per GPU count N of the
    setup, how much longer a step at N takes than at one (batch * N / images/s at N, less
    the 1-GPU step). Ranks that vary and the input pipeline show here; a loss that stays
    the same in every precision and grows with N is fixed per step, not work that scales."""
    table = read_table(path)
    ones = {setup_of(r): r for r in table if int(r["n_gpus"]) == 1 and r.get("throughput_img_s")}
    losses: dict[tuple, dict[int, float]] = {}
    for r in table:
        one = ones.get(setup_of(r))
        n = int(r["n_gpus"])
        batch = r["batch_per_gpu"] or DEFAULT_BATCH.get(r["precision"])
        if one is None or n == 1 or not r.get("throughput_img_s") or batch is None:
            continue
        step_1 = int(batch) / float(one["throughput_img_s"])
        losses.setdefault(setup_of(r), {})[n] = int(batch) * n / float(r["throughput_img_s"]) \
            - step_1
    return [(ones[k], int(ones[k]["batch_per_gpu"] or DEFAULT_BATCH[ones[k]["precision"]])
             / float(ones[k]["throughput_img_s"]), v) for k, v in losses.items()]

