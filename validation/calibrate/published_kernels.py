"""Published library kernels (kernels.csv: DeepBench's GEMM and convolution times), read and
simulated alone, as the benchmark timed them, in the columns of
validation/measured/published/README.md. Rows that cannot be simulated are kept as Skips with
their reason (published_gpu.py says how reading works).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hwmodels import catalog, cudnn_releases, gpu_gemm
from hwmodels.gpu import GpuFamily
from workloads.builder import GraphBuilder
from workloads.graph import Op, WorkloadError
from workloads.training import lower_training

from .published_gpu import Skip, Table, _number, _open_rows, gpu_model, row_gpu

KERNEL_COLUMNS = ("kind", "gpu", "precision")
CONV_PASSES = (("time_fwd_ms", "conv2d"), ("time_bwd_data_ms", "conv2d_grad_input"),
               ("time_bwd_filter_ms", "conv2d_grad_weight"))
KERNEL_KINDS = ("gemm", "conv2d", "conv2d_grad_input", "conv2d_grad_weight")


# cuDNN's forward algorithm names, as the kernel table's fwd_algo column records them, onto the
# model's (hwmodels/gpu_products.py KernelOption.algorithm); a release without the algorithm
# recorded (cuDNN 6's FFT: cudnn_releases.CUDNN_RELEASES) is scored on the model's own choice
RECORDED_ALGORITHMS = {"IMPLICIT_GEMM": "implicit_gemm", "IMPLICIT_PRECOMP_GEMM": "implicit_gemm",
                       "WINOGRAD": "winograd_fused", "WINOGRAD_NONFUSED": "winograd_nonfused",
                       "FFT_TILING": "fft_tiling", "FFT": "fft"}


@dataclass(frozen=True)
class KernelRow:
    row_id: str
    kind: str             # one of KERNEL_KINDS
    gpu: str
    op: Op
    time_s: float
    algorithm: str | None = None   # the algorithm the library ran, where the table says
    cuda: tuple[int, int, int] | None = None   # the CUDA its library_stack names: its cuBLAS
    cudnn: tuple[int, int, int] | None = None  # ... and the cuDNN it names


def _gemm_op(m: int, n: int, k: int, transposes: str) -> Op:
    """DeepBench's cuBLAS call C (m x n) = op(A) op(B), as a linear op that names it."""
    b = GraphBuilder("gemm", input_shape=(k,), batch=m)
    b.linear(b.input(), n, bias=False, name="gemm")
    op = b.build().op("gemm")
    return dataclasses.replace(op, attrs={**op.attrs, "cublas_transposes": transposes})


def _transposes(r: dict) -> str:
    """op(A) and op(B) of a GEMM row's cuBLAS call, from its transA and transB ("NN", "TN");
    a flag left blank is N, cuBLAS's plain operand."""
    flags = "".join((r.get(c) or "").strip().upper() or "N" for c in ("transA", "transB"))
    if len(flags) != 2 or set(flags) - {"N", "T"}:
        raise ValueError(f"transA, transB {r.get('transA')!r}, {r.get('transB')!r} are not "
                         f"N or T")
    return flags


def _conv_ops(r: dict) -> dict[str, Op]:
    n, c, h, w = (int(float(r[k])) for k in ("N_batch", "C", "H", "W"))
    b = GraphBuilder("conv", input_shape=(c, h, w), batch=n)
    b.conv2d(b.input(), int(float(r["K_filters"])),
             (int(float(r["filter_h"])), int(float(r["filter_w"]))),
             stride=(int(float(r["stride_h"])), int(float(r["stride_w"]))),
             padding=(int(float(r["pad_h"])), int(float(r["pad_w"]))), name="conv")
    b.flatten("conv")
    g = b.build()
    # the data gradient of a first layer is not computed by frameworks; build it anyway so the
    # kernel table's rows that time it can be compared
    train = lower_training(_with_grad_input(g))
    return {op.kind: op for op in train if op.kind in KERNEL_KINDS}


def _with_grad_input(g):
    import dataclasses
    # a 1-parameter scale in front of the conv makes the input need a gradient
    return g.copy(g.name, lambda op: dataclasses.replace(op, params=max(op.params, 1))
                  if op.kind == "input" else op)


def read_kernel_rows(path: str) -> Table:
    raw = _open_rows(path, KERNEL_COLUMNS)
    out = Table(path=path)
    gpus = set(catalog.names("gpu"))
    for i, r in enumerate(raw):
        rid = (r.get("row_id") or "").strip() or f"row {i + 2}"
        # the kernel table states a row's SKU and host in gpu_detail
        gpu, gpu_reason = row_gpu(r["gpu"], r.get("gpu_variant") or r.get("gpu_detail"), gpus)
        kind = (r["kind"] or "").strip()
        if gpu is None:
            out.skipped.append(Skip(rid, gpu_reason))
            continue
        if (r["precision"] or "").strip().lower() != "fp32":
            out.skipped.append(Skip(rid, f"precision {r['precision']!r}: kernels are read "
                                         f"in FP32 only"))
            continue
        try:
            stack = r.get("library_stack") or ""
            cuda, cudnn = gpu_gemm.cuda_version(stack), cudnn_releases.cudnn_version(stack)
            if kind == "gemm":
                m, n, k = (int(float(r[c])) for c in ("M", "N", "K"))
                t = _number(r.get("time_fwd_ms"))
                if t is None:
                    raise ValueError("no time_fwd_ms")
                transposes = _transposes(r)
                out.rows.append(KernelRow(rid, "gemm", gpu, _gemm_op(m, n, k, transposes),
                                          t / 1e3,
                                          cuda=cuda, cudnn=cudnn))
            elif kind == "conv":
                ops = _conv_ops(r)
                for column, op_kind in CONV_PASSES:
                    t = _number(r.get(column))
                    if t is not None:
                        algorithm = (RECORDED_ALGORITHMS.get(_algorithm_name(r))
                                     if op_kind == "conv2d" else None)
                        out.rows.append(KernelRow(f"{rid}:{op_kind}", op_kind, gpu,
                                                  ops[op_kind], t / 1e3, algorithm,
                                                  cuda, cudnn))
            else:
                out.skipped.append(Skip(rid, f"kind {kind!r} is not gemm or conv"))
        except (KeyError, ValueError, TypeError, WorkloadError) as exc:
            out.skipped.append(Skip(rid, f"unreadable shape: {exc}"))
    return out


def _algorithm_name(r: dict) -> str:
    """The fwd_algo column, its CUDNN_CONVOLUTION_FWD_ALGO_ prefix dropped; a name the source
    cut at its start ('LICIT_PRECOMP_GEMM') is matched by its end."""
    name = (r.get("fwd_algo") or "").strip().upper().removeprefix("CUDNN_CONVOLUTION_FWD_ALGO_")
    return next((full for full in RECORDED_ALGORITHMS
                 if name and full.endswith(name) and len(name) > 4), name)


def simulate_kernel(row: KernelRow, families: dict[str, GpuFamily] | None = None,
                    recorded: bool = True) -> float:
    """A kernel as the benchmark timed it: alone, with no framework around it. Where the row
    names the algorithm the library ran (and `recorded`), that algorithm's cost: the table then
    scores the model of what ran, not whether the model's autotuner would have picked it (the
    recorded algorithm is not always the fastest); otherwise the model's own fastest."""
    model = gpu_model(row.gpu, families, framework=None, cuda=row.cuda, cudnn=row.cudnn)
    if recorded and row.algorithm is not None:
        fam, tensor = model.family_constants, model.tensor_cores(row.op)
        ran = [o for o in model.kernel_options(row.op) if o.algorithm == row.algorithm]
        if ran:
            return min(model.option_time_s(o, fam, tensor) for o in ran)
    return model.op_time_s(row.op)


def model_algorithm(row: KernelRow, families: dict[str, GpuFamily] | None = None) -> str:
    """The algorithm the model's autotuner takes for a kernel row (its fastest)."""
    model = gpu_model(row.gpu, families, framework=None, cuda=row.cuda, cudnn=row.cudnn)
    return model.chosen_option(row.op).algorithm
