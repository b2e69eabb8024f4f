"""One row of a published table, read as the model will run it (network_row): which zoo
network, precision, memory format, framework and sequence length, what each cell says, and
what reading it assumed where the row does not say (NetworkRow.assumed, which the report
prints). A row that cannot be run as written is a Skip naming why. The file as a whole is read
in published_gpu.py; the cells' words in published_cells.py, the network labels in
published_names.py.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

from hwmodels import catalog, cudnn_releases, gpu_gemm
from hwmodels.gpu import DEFAULT_FRAMEWORK, GPUModel
from workloads import zoo
from workloads.graph import WorkloadError
from workloads.precision import HALF_FORMAT

from . import published_cells as cells
from .published_names import input_size_of, named_in, resolve_network

# Torch7 harnesses ran fb.resnet.torch's models, whose bottleneck strides in the 3x3 (the
# layout torchvision took from it, called v1.5 elsewhere): a "ResNet-50 v1" timed there is
# that layout, whatever the label says
TORCH7_NETWORKS = {"resnet50_v1": "resnet50", "resnet101_v1": "resnet101",
                   "resnet152_v1": "resnet152"}
# the cells that may name the CUDA a row's libraries ran in, in the order they are read: the
# software stack, then the machine's description (jcjohnson/cnn-benchmarks names it beside the
# host: "GTX 1080 8GB (dual E5-2630 v3, CUDA 8.0 RC)")
CUDA_COLUMNS = ("sw_stack", "framework", "gpu_variant")
# libraries whose kernels are not cuDNN's/cuBLAS's: the model does not describe them
OTHER_LIBRARIES = ("neon",)
# harnesses that time forward + backward only (no optimizer step): README of the published data
FWD_BWD_ONLY = ("torch7", "cudnn r4", "neon")

# Trust grades of rows the data itself marks secondary or anomalous: ResNet-34 on the V100 at
# batch 2 and 4 publishes one time for both (a copy error in the source), so at least one of
# the two is not a measurement of its batch. A fit leaves them out (a constant would learn the
# copy); validate still scores and lists them, apart from the rows it fits.
UNTRUSTED = frozenset({"C"})
# the framework a row ran in, by a word of its `framework` column (a regular expression,
# lower case): its host time per op. "TF 2.4", "TF2" and Keras are TensorFlow
FRAMEWORK_WORDS = (("torch7", "torch7"), ("cudnn r4", "torch7"), ("pytorch", "pytorch"),
                   ("xla", "tensorflow-xla"), (r"tensorflow|keras|\btf\s*\d|\btf\b", "tensorflow"),
                   ("mxnet", "mxnet"))
# torch.optim stepped tensor by tensor (foreach=False) until PyTorch 2.0 made its multi-tensor
# step the default on CUDA; NVIDIA's NGC PyTorch containers (named by year.month) ship 2.x from
# 23.03, by their release notes' version tables
FOREACH_FROM_MAJOR = 2
NGC_PYTORCH_2_FROM = (23, 3)
# a row whose precision_note says it ran with XLA (and not "no XLA") is scored in that
# framework, which fuses elementwise ops (hwmodels/gpu_frameworks.py FUSED_POINTWISE)
XLA_SUFFIX = " + XLA"
# The memory format a row ran in: the one its notes name (NVIDIA's 21.03 PyTorch rows: "AMP
# uses NHWC per configs.yml"), else the one its harness uses for that precision:
# - PyTorch: NCHW (torch.contiguous_format) unless the script asks for channels_last;
# - Torch7: cudnn.torch has NCHW only;
# - TensorFlow: grappler's layout optimizer runs GPU convolutions in NCHW;
# - XLA: its GPU layout assignment puts half-precision convolutions in NHWC where tensor
#   cores run them, FP32 ones in NCHW;
# - NVIDIA's MXNet containers: NHWC in half precision (the fused NHWC batch-norm kernels that
#   hwmodels/gpu_frameworks.py FUSED_POINTWISE describes), NCHW in FP32.
LAYOUT_WORDS = (("channels_last", "nhwc"), ("nhwc", "nhwc"), ("nchw", "nchw"))
HALF_PRECISION_NHWC_FRAMEWORKS = frozenset({"tensorflow-xla", "mxnet"})


def memory_format_of_row(framework: str, precision: str, notes: str) -> str:
    """The memory format a published row ran in (LAYOUT_WORDS, then the harness's)."""
    text = notes.lower()
    stated = next((fmt for word, fmt in LAYOUT_WORDS if word in text), None)
    if stated:
        return stated
    half = precision in HALF_FORMAT
    return "nhwc" if half and framework_key(framework) in HALF_PRECISION_NHWC_FRAMEWORKS \
        else "nchw"


def framework_key(framework: str) -> str:
    """The framework family of a `framework` column ("Torch7 (cudnn.torch)" -> torch7);
    PyTorch's where the column names none of them."""
    return named_framework(framework) or DEFAULT_FRAMEWORK


def named_framework(framework: str) -> str | None:
    """The framework family the `framework` column names (FRAMEWORK_WORDS), None if none."""
    text = framework.lower()
    return next((key for word, key in FRAMEWORK_WORDS if re.search(word, text)), None)


@dataclass(frozen=True)
class Skip:
    row_id: str
    reason: str


@dataclass(frozen=True)
class NetworkRow:
    row_id: str
    network: str          # zoo name
    gpu: str              # catalog name
    precision: str
    batch: int
    throughput: float     # samples/s, published
    fwd_bwd_only: bool
    framework: str
    source: str
    memory_format: str = "nchw"
    # the harness's forward and backward times of the step, where it publishes both (Torch7's
    # and convnet-benchmarks' tables): validate scores each phase on its own
    phase_s: tuple[float, float] | None = None
    # the cuDNN its sw_stack names (hwmodels/cudnn_releases.py cudnn_release), where it names one
    cudnn: tuple[int, int, int] | None = None
    # the data's own trust grade (README of the published data: A, B, or C for a secondary or
    # anomalous row); "" where the file gives none
    trust: str = ""
    # zoo options the row sets (a transformer's seq_len), as (name, value) pairs
    options: tuple[tuple[str, int], ...] = ()
    # what reading the row assumed, in words, so a report can say why a figure is what it is
    assumed: tuple[str, ...] = ()
    # the CUDA whose cuBLAS ran its GEMMs (hwmodels/gpu_gemm.py cublas_release), where the row
    # names one
    cuda: tuple[int, int, int] | None = None
    # torch.optim steps tensor by tensor: a PyTorch release before 2.0 (pytorch_major)
    optimizer_loop: bool = False

    @property
    def untrusted(self) -> bool:
        """Whether the data marks the row anomalous (UNTRUSTED): scored, never fitted."""
        return self.trust in UNTRUSTED

# frameworks whose "FP16" keeps FP32 variables (mixed precision, not the whole network in FP16)
TENSORFLOW_FAMILIES = ("tensorflow", "tensorflow-xla")
# words that make a transformer row a pretraining one (BERT's masked-language-model phases)
PRETRAINING = re.compile(r"pre-?train|\bmlm\b|\bphase ?[12]\b")


def memory_format_reason(framework: str, precision: str, notes: str) -> str:
    """Why a row runs in its memory format (memory_format_of_row), in words."""
    fmt = memory_format_of_row(framework, precision, notes)
    if any(word in notes.lower() for word, _ in LAYOUT_WORDS):
        return f"layout {fmt} (the row says so)"
    return f"layout {fmt} ({framework_key(framework)}'s default in {precision})"


def sequence_length_option(network: str) -> int | None:
    """The zoo's default seq_len of a network that takes one (a transformer over tokens), None
    for one that takes none: read from the builder, so a network added to the zoo is known."""
    entry = zoo.info(network)
    parameter = inspect.signature(entry.build).parameters.get("seq_len")
    if parameter is None or "seq_len" in entry.fixed:
        return None
    return int(parameter.default)


# Samples/s a published step could run at, from one sample in eleven days to a billion a
# second: a row outside is a slip in the cell (1e-300), and its error would fill the report.
THROUGHPUT_SPAN = (1e-6, 1e9)
# Rows at a batch above this are built once as they are read, so that one whose tensors are
# too large to count is skipped with the zoo's reason; the tables' largest batch is 2,048.
LARGE_BATCH = 65_536


def _builds(network: str, options: dict, batch: int = 1) -> str:
    """'' if the zoo builds the network with these options at this batch, else its message."""
    try:
        zoo.get(network, batch=batch, **options)
    except WorkloadError as exc:
        return str(exc)
    return ""


class _Skipped(Exception):
    """A row that cannot be run as written; its message is the Skip's reason."""


def network_row(rid: str, r: dict, gpu: str) -> NetworkRow | Skip:
    """The row `r` of a published table (a dict of its cells) on the catalog GPU `gpu`, or a
    Skip naming why it cannot be simulated."""
    try:
        return _network_row(rid, r, gpu)
    except _Skipped as exc:
        return Skip(rid, str(exc))


def _network_row(rid: str, r: dict, gpu: str) -> NetworkRow:
    assumed: list[str] = []
    framework = (r.get("framework") or "").strip()
    note = (r.get("precision_note") or "").lower()
    if "xla" in note and "no xla" not in note:
        framework += XLA_SUFFIX
    family = framework_key(framework)
    if named_framework(framework) is None:
        assumed.append(f"host {family} (framework {framework or '(none)'!r} names none the "
                       f"model describes)")
    else:
        assumed.append(f"host {family}")
    # where a memory format or TF32 may be stated: "ResNet-50 (NHWC)" names its format too
    notes = " ".join((r.get(c) or "") for c in ("precision_note", "notes", "network"))
    resolved = resolve_network(r["network"] or "", family, framework)
    if resolved.network is None:
        hint = (_named_hint(r["network"]) if resolved.reason.endswith("not in the zoo")
                else "")
        raise _Skipped(f"{resolved.reason}{hint} (dnnsim workloads)")
    net = resolved.network
    if resolved.assumed:
        assumed.append(resolved.assumed)
    precision, why = cells.precision_of_words(r["precision"] or "")
    if precision is None:
        raise _Skipped(why)
    if precision == "fp16" and family in TENSORFLOW_FAMILIES:
        precision = "amp-fp16"
        assumed.append("FP16 in TensorFlow as amp-fp16: FP32 variables, FP16 compute "
                       "(tf_cnn_benchmarks' --use_fp16 without --fp16_vars; Keras' "
                       "mixed_float16)")
    precision = _on_this_gpu(precision, gpu, family, r, notes, assumed)
    batch = _batch(r)
    count, why = cells.gpu_count(r)
    if why:
        raise _Skipped(why)
    if count is not None and count > 1:
        raise _Skipped(f"{count} GPUs: this table scores one GPU's step; data-parallel rows go "
                       f"in scaling.csv's columns (python -m validation.validate."
                       f"published_scaling --csv FILE)")
    options = _sequence_options(net, r, assumed) + _input_size_option(net, r, assumed)
    throughput = _throughput(r, batch, dict(options).get("seq_len"), assumed)
    if not THROUGHPUT_SPAN[0] <= throughput <= THROUGHPUT_SPAN[1]:
        raise _Skipped(f"a throughput of {throughput:.3g} samples/s is outside what a step "
                       f"could run at ({THROUGHPUT_SPAN[0]:g} to {THROUGHPUT_SPAN[1]:g})")
    if any(lib in framework.lower() for lib in OTHER_LIBRARIES):
        raise _Skipped(f"{framework}: its own kernels, not cuDNN/cuBLAS")
    if "torch7" in framework.lower() and net in TORCH7_NETWORKS:
        net = TORCH7_NETWORKS[net]
        assumed.append("ResNet v1.5 (fb.resnet.torch's layout, which Torch7 ran whatever the "
                       "label)")
    if batch > LARGE_BATCH:   # a batch whose tensors no float counts: skipped, not a crash
        problem = _builds(net, dict(options), batch)
        if problem:
            raise _Skipped(problem)
    fwd_ms, bwd_ms = cells.plain_number(r.get("fwd_ms")), cells.plain_number(r.get("bwd_ms"))
    fwd_bwd = any(h in framework.lower() for h in FWD_BWD_ONLY) or bool(fwd_ms)
    if fwd_bwd:
        assumed.append("forward + backward only, no optimizer step")
    layout = memory_format_of_row(framework, precision, notes)
    if "seq_len" in dict(options):
        layout = "nchw"      # no convolutions to lay out
    else:
        assumed.append(memory_format_reason(framework, precision, notes))
    phases = (fwd_ms / 1e3, bwd_ms / 1e3) if fwd_bwd and fwd_ms and bwd_ms else None
    cudnn = (cudnn_releases.cudnn_version(r.get("sw_stack") or "")
             or cudnn_releases.cudnn_version(framework))
    cuda = next(filter(None, (gpu_gemm.cuda_version(r.get(c) or "") for c in CUDA_COLUMNS)), None)
    major = pytorch_major(r.get("framework_version") or "") if family == "pytorch" else None
    loop = major is not None and major < FOREACH_FROM_MAJOR and not fwd_bwd
    if loop:
        assumed.append(f"PyTorch {major}.x: torch.optim steps tensor by tensor")
    return NetworkRow(rid, net, gpu, precision, batch, throughput, fwd_bwd, framework,
                      (r.get("source") or "").strip(), layout, phases, cudnn,
                      (r.get("trust") or "").strip().upper(), options, tuple(assumed), cuda,
                      loop)


def pytorch_major(text: str) -> int | None:
    """The PyTorch major release a `framework_version` cell names ("PyTorch 1.6", "NGC
    pytorch-21.03": an NGC container by its year.month), None if it names none."""
    found = re.search(r"pytorch[-\s]*v?(\d+)\.(\d+)", text.lower())
    if found is None:
        return None
    first, second = int(found.group(1)), int(found.group(2))
    if first < 19:
        return first
    return 2 if (first, second) >= NGC_PYTORCH_2_FROM else 1


def _named_hint(label: str) -> str:
    return named_in(label, set(zoo.names()))


def _on_this_gpu(precision: str, gpu: str, family: str, r: dict, notes: str,
                 assumed: list[str]) -> str:
    """The precision the row runs in on `gpu`: one the part trains in, with FP32 on TF32
    units as the row's framework runs it (cells.fp32_on_tensor_float)."""
    model = GPUModel(catalog.device(gpu))
    if precision not in model.supported_precisions():
        raise _Skipped(f"{gpu} cannot train in {precision}; it can in: "
                       f"{', '.join(model.supported_precisions())}")
    if precision != "fp32" or "tf32" not in model.supported_precisions():
        return precision
    ran, why = cells.fp32_on_tensor_float(
        family, [r.get("framework_version") or "", r.get("framework") or ""], notes)
    if ran is None:
        raise _Skipped(why)
    assumed.append(why)
    return ran


def _batch(r: dict) -> int:
    text = r["batch_per_gpu"]
    if cells.is_blank(text):
        raise _Skipped("no batch stated (a throughput depends on it: the row is not guessed "
                       "at)")
    batch = cells.plain_number(text)
    if batch is None or not batch.is_integer():
        raise _Skipped(f"batch {text!r} is not a whole number >= 1")
    return int(batch)


def _sequence_options(net: str, r: dict, assumed: list[str]) -> tuple[tuple[str, int], ...]:
    """(("seq_len", n),) for a transformer row: its seq_len column, its notes, else the zoo's
    default (said in `assumed`); () for a network that takes no sequence."""
    column = next((r.get(c) for c in cells.SEQ_LEN_COLUMNS if not cells.is_blank(r.get(c))),
                  None)
    default = sequence_length_option(net)
    if default is None:
        if column is not None:
            raise _Skipped(f"seq_len {column!r} given for {net}, which takes no sequence")
        return ()
    texts = [r.get(c) or "" for c in ("precision_note", "notes", "throughput_origin")]
    seq_len, why = cells.seq_len_of(column, texts)
    if why:
        raise _Skipped(why)
    if seq_len is None:
        seq_len = default
        assumed.append(f"seq_len {seq_len} (the zoo's default: the row states none)")
    else:
        assumed.append(f"seq_len {seq_len}")
    if "classifier" in zoo.info(net).description:
        said = " ".join([r["network"] or "", *texts]).lower()
        assumed.append(
            "pretraining simulated as fine-tuning: the zoo's classifier head, no MLM or NSP "
            "head (the step does more work than this)" if PRETRAINING.search(said) else
            "fine-tuning: the zoo's classifier head on the pooled first token")
    problem = _builds(net, {"seq_len": seq_len})
    if problem:
        raise _Skipped(problem)
    return (("seq_len", seq_len),)


def _input_size_option(net: str, r: dict,
                       assumed: list[str]) -> tuple[tuple[str, int], ...]:
    """(("input_size", n),) where the label states an input ("Inception-v3 (299x299)") other
    than the zoo's; () where it states none or the zoo's."""
    size = input_size_of(r["network"] or "")
    shape = zoo.info(net).input_shape
    if size is None or len(shape) != 3 or size == shape[1:]:
        return ()
    if size[0] != size[1]:
        raise _Skipped(f"input {size[0]}x{size[1]}: the zoo's networks take square inputs")
    if "input_size" not in inspect.signature(zoo.info(net).build).parameters:
        raise _Skipped(f"input {size[0]}x{size[1]}: {net} takes no other input size")
    problem = _builds(net, {"input_size": size[0]})
    if problem:
        raise _Skipped(problem)
    assumed.append(f"input {size[0]}x{size[1]} (the label says so)")
    return (("input_size", size[0]),)


def _throughput(r: dict, batch: int, seq_len: int | None, assumed: list[str]) -> float:
    """Published samples/s: throughput_img_s in its unit (tokens/s over seq_len), else
    batch / iter_time_ms."""
    text = r.get("throughput_img_s")
    value, cell_unit = cells.number_and_unit(text)
    if value is None and not cells.is_blank(text):
        raise _Skipped(f"throughput_img_s {text!r} is not a positive number")
    if value is not None:
        unit, why = cells.throughput_unit(r.get("throughput_unit"), cell_unit,
                                          r.get("throughput_origin"))
        if unit is None:
            raise _Skipped(why)
        if unit != cells.TOKENS:
            return value
        if seq_len is None:
            raise _Skipped(f"a throughput in {unit} for a network that takes no tokens")
        assumed.append(f"published {value:g} tokens/s = {value / seq_len:g} sequences/s")
        return value / seq_len
    if cells.is_blank(r.get("iter_time_ms")):
        raise _Skipped("neither throughput_img_s nor iter_time_ms is a positive number")
    ms, why = cells.milliseconds(r.get("iter_time_ms"))
    if ms is None:
        raise _Skipped(f"iter_time_ms {why}")
    assumed.append("samples/s = batch / iter_time_ms")
    return batch / (ms / 1e3)
