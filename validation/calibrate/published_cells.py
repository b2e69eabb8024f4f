"""The cells of a published row as people write them: numbers with thousands separators and
units, precision words, the throughput's unit, a transformer's sequence length, a GPU count.

Each reader returns the value, or None with the reason a row cannot be read (a named skip):
nothing here guesses a number it was not given (docs/published-tables.md).
"""
from __future__ import annotations

import math
import re

from workloads.precision import PRECISIONS

_NUMBER = re.compile(r"([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[+-]?\.\d+)"
                     r"(?:[eE][+-]?\d+)?\s*(.*)")
# "unknown", "n/a", "-": a cell that says it has no value is an empty one
NO_VALUE = frozenset({"", "-", "--", "n/a", "na", "none", "null", "unknown", "?"})

# a throughput's unit, by the words tables write: per sample (image, sequence) or per token
SAMPLES, TOKENS = "samples/s", "tokens/s"
THROUGHPUT_UNITS = {
    **dict.fromkeys(("img/s", "imgs/s", "images/s", "image/s", "im/s", "samples/s", "sample/s",
                     "examples/s", "example/s", "seq/s", "seqs/s", "sequences/s",
                     "sequence/s", "sentences/s", "sents/s"), SAMPLES),
    **dict.fromkeys(("tokens/s", "token/s", "tok/s"), TOKENS),
}
TIME_UNITS_MS = {"ms": 1.0, "msec": 1.0, "s": 1e3, "sec": 1e3, "us": 1e-3, "µs": 1e-3}

# the words of a precision cell, lower case, split at spaces and ( ) / + , _ -
# apex's opt levels O1 and O2 keep FP32 master weights: mixed precision (O3 is pure FP16)
_MIXED = frozenset({"amp", "mixed", "mp", "o1", "o2"})
_FORMATS = {"fp32": "fp32", "float32": "fp32", "single": "fp32", "tf32": "tf32",
            "fp16": "fp16", "float16": "fp16", "half": "fp16", "bf16": "bf16",
            "bfloat16": "bf16"}
_FILLER = frozenset({"precision", "automatic", "with", "and", "training", "default", "math",
                     "mode", "tensor", "cores", "core", "tc"})

# a sequence length in free text: "seq len 128", "sequence length 512", "seq_len=384",
# "max_seq_length: 128"
_SEQ_LEN = re.compile(r"\b(?:max[_\s-]?)?seq(?:uence)?[_\s-]?len(?:gth)?\s*(?:=|:|of)?\s*"
                      r"(\d+)\b", re.IGNORECASE)
GPU_COUNT_COLUMNS = ("gpus", "num_gpus", "gpu_count", "n_gpus")
SEQ_LEN_COLUMNS = ("seq_len", "sequence_length")


def is_blank(text: str | None) -> bool:
    return (text or "").strip().lower() in NO_VALUE


def number_and_unit(text: str | None) -> tuple[float | None, str]:
    """A positive finite number and the unit written after it, lower case ("1,234.5 img/s"
    -> (1234.5, "img/s")); (None, "") where the cell holds no such number."""
    match = _NUMBER.fullmatch((text or "").strip())
    if not match:
        return None, ""
    try:
        value = float(match.group(0)[:len(match.group(0)) - len(match.group(2))]
                      .replace(",", ""))
    except ValueError:
        return None, ""
    if not math.isfinite(value) or value <= 0:
        return None, ""
    return value, re.sub(r"\s+", "", match.group(2).lower())


def plain_number(text: str | None) -> float | None:
    """A positive finite number with no unit after it (thousands separators allowed)."""
    value, unit = number_and_unit(text)
    return value if not unit else None


def milliseconds(text: str | None) -> tuple[float | None, str]:
    """A time in ms ("12.5", "12.5 ms", "0.0125 s"), or None and why."""
    value, unit = number_and_unit(text)
    if value is None:
        return None, f"{text!r} is not a positive number"
    if unit and unit not in TIME_UNITS_MS:
        return None, f"{text!r}: unit {unit!r} is not a time ({', '.join(TIME_UNITS_MS)})"
    return value * TIME_UNITS_MS.get(unit, 1.0), ""


def precision_of_words(text: str) -> tuple[str | None, str]:
    """The zoo precision a precision cell names, or None and why: "AMP", "Mixed", "mixed
    precision", "FP16 AMP" -> amp-fp16; "AMP (BF16)", "BF16 AMP" -> amp-bf16; "TF32",
    "FP32 (TF32)" -> tf32; "FP32", "FP16", "BF16" alone -> those (FP16 and BF16 without a
    mixed-precision word are the whole network in that format)."""
    words = [w for w in re.split(r"[\s()/+,_-]+", text.strip().lower()) if w]
    if " ".join(words) in PRECISIONS or text.strip().lower() in PRECISIONS:
        return text.strip().lower(), ""
    unknown = [w for w in words if w not in _MIXED and w not in _FORMATS and w not in _FILLER]
    if not words or unknown:
        what = f" (unknown word {', '.join(map(repr, unknown))})" if unknown else ""
        return None, (f"precision {text!r}{what} is not one the model trains in: "
                      f"{', '.join(PRECISIONS)}, or AMP / mixed / TF32 as tables write them")
    formats = {_FORMATS[w] for w in words if w in _FORMATS}
    mixed = any(w in _MIXED for w in words)
    halves = formats & {"fp16", "bf16"}
    if mixed and len(halves) <= 1 and "tf32" not in formats:
        return ("amp-bf16" if halves == {"bf16"} else "amp-fp16"), ""
    if not mixed and "tf32" in formats and formats <= {"fp32", "tf32"}:
        return "tf32", ""
    if not mixed and len(formats) == 1:
        return formats.pop(), ""
    return None, f"precision {text!r} names more than one format: which one ran is not known"


def _unit_word(text: str | None) -> str:
    """A unit as THROUGHPUT_UNITS spells it: lower case, no spaces, "/sec" as "/s"."""
    word = re.sub(r"\s+", "", (text or "").strip().lower())
    return re.sub(r"/sec(ond)?$", "/s", word)


def throughput_unit(column: str | None, cell_unit: str,
                    origin: str | None) -> tuple[str | None, str]:
    """The unit of a row's published throughput: the `throughput_unit` column, else a unit in
    the throughput cell, else a unit word in throughput_origin, else samples/s; None and why
    where two of them disagree or one is not a throughput."""
    stated = []
    for where, text in (("throughput_unit", column), ("the throughput cell", cell_unit)):
        word = _unit_word(text)
        if word in NO_VALUE:
            continue
        if word not in THROUGHPUT_UNITS:
            return None, (f"{where}: {text!r} is not a throughput unit "
                          f"({', '.join(sorted(set(THROUGHPUT_UNITS.values())))})")
        stated.append(THROUGHPUT_UNITS[word])
    if not stated:
        words = [_unit_word(w) for w in re.findall(r"[a-z]+/s(?:ec)?\b", (origin or "").lower())]
        stated = [THROUGHPUT_UNITS[w] for w in words if w in THROUGHPUT_UNITS][:1]
    if len(set(stated)) > 1:
        return None, f"the throughput's unit is given twice, as {' and '.join(stated)}"
    return (stated[0] if stated else SAMPLES), ""


def seq_len_of(column: str | None, texts: list[str]) -> tuple[int | None, str]:
    """A row's sequence length: its seq_len column, else the one its notes state (None where
    neither does); a reason where it is not a whole number or the notes state two."""
    if not is_blank(column):
        value = plain_number(column)
        if value is None or not value.is_integer():
            return None, f"seq_len {column!r} is not a whole number"
        return int(value), ""
    found = sorted({int(m) for text in texts for m in _SEQ_LEN.findall(text or "")})
    if len(found) > 1:
        return None, (f"the notes state {len(found)} sequence lengths "
                      f"({', '.join(map(str, found))}): give the row's in a seq_len column")
    return (found[0] if found else None), ""


def gpu_count(row: dict) -> tuple[int | None, str]:
    """The GPUs a row ran on, from a gpus/num_gpus/gpu_count/n_gpus column (None: not
    stated, taken as one); a reason where the count is not a whole number."""
    for column in GPU_COUNT_COLUMNS:
        text = row.get(column)
        if is_blank(text):
            continue
        value, unit = number_and_unit(text)
        if value is None or not value.is_integer() or unit not in ("", "x", "gpu", "gpus"):
            return None, f"{column} {text!r} is not a whole number of GPUs"
        return int(value), ""
    return None, ""


# Words in a row's notes that turn TF32 off: the model cannot run such a row (on Ampere and
# newer it runs FP32 convolutions as TF32, hwmodels/gpu.py), so the row is a named skip
TF32_OFF = re.compile(r"nvidia_tf32_override\s*=\s*0|allow_tf32\s*=\s*false|tf32 (?:off|"
                      r"disabled)|(?:no|without) tf32", re.IGNORECASE)
_VERSION = re.compile(r"(\d+)\.(\d+)")
# PyTorch's torch.backends.cuda.matmul.allow_tf32 defaulted to True from 1.7 up to 1.12,
# which made it False; NVIDIA's containers up to 22.04 ship those releases
PYTORCH_TF32_MATMULS = ((1, 7), (1, 12))
NGC_TF32_MATMULS_LAST = (22, 4)


def fp32_on_tensor_float(family: str, versions: list[str], notes: str) -> tuple[str | None, str]:
    """What an "FP32" row on a GPU with TF32 units ran: (precision, the rule applied), or
    (None, why not) where the notes turn TF32 off. Convolutions run as TF32 in every framework
    (cuDNN's default math, which PyTorch's cudnn.allow_tf32 and TensorFlow keep); matmuls too
    in TensorFlow (2.4's enable_tensor_float_32_execution defaults to True) and in PyTorch
    1.7-1.11 (matmul.allow_tf32 True): then the row is simulated as tf32."""
    if TF32_OFF.search(notes):
        return None, ("FP32 with TF32 turned off (its notes say so): on Ampere and newer the "
                      "model runs FP32 convolutions as TF32")
    if family in ("tensorflow", "tensorflow-xla"):
        return "tf32", "FP32 as TensorFlow runs it on TF32 units: convolutions and matmuls TF32"
    if family == "pytorch":
        found = [m for text in versions for m in _VERSION.findall(text or "")]
        version = ".".join(found[0]) if found else ""
        major_minor = (int(found[0][0]), int(found[0][1])) if found else None
        if major_minor and major_minor[0] >= 19:      # an NVIDIA container tag, YY.MM
            tf32 = major_minor <= NGC_TF32_MATMULS_LAST
            version = f"(NGC {version})"
        elif major_minor:
            tf32 = PYTORCH_TF32_MATMULS[0] <= major_minor < PYTORCH_TF32_MATMULS[1]
        else:
            return "fp32", ("FP32 in PyTorch of no stated version: convolutions TF32, "
                            "matmuls FP32 (matmul.allow_tf32 False since 1.12)")
        if tf32:
            return "tf32", (f"FP32 in PyTorch {version}: convolutions and matmuls "
                            f"TF32 (matmul.allow_tf32 True before 1.12)")
        return "fp32", (f"FP32 in PyTorch {version}: convolutions TF32, matmuls "
                        f"FP32 (matmul.allow_tf32 False since 1.12)")
    return "fp32", f"FP32 in {family}: convolutions TF32 (cuDNN's default), matmuls FP32"
