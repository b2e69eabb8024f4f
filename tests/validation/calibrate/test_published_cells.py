"""The cells of a published row as tables write them: each reads as the value it states, or
as None with a reason a report can print; nothing is guessed."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from validation.calibrate import published_cells as cells


@pytest.mark.parametrize("text, expected", [
    ("1234.5", (1234.5, "")), ("1,234.5", (1234.5, "")), ("1,234,567", (1234567.0, "")),
    (" 1234 img/s ", (1234.0, "img/s")), ("12.5ms", (12.5, "ms")), ("1e3", (1000.0, "")),
    ("0", (None, "")), ("-3", (None, "")), ("nan", (None, "")), ("abc", (None, "")),
    ("", (None, "")), ("12,5", (12.0, ",5")),
])
def test_numbers_with_separators_and_units(text, expected):
    assert cells.number_and_unit(text) == expected


@given(st.integers(min_value=1, max_value=10**9))
def test_a_number_reads_the_same_with_and_without_thousands_separators(n):
    assert cells.plain_number(f"{n:,}") == cells.plain_number(str(n)) == n


@pytest.mark.parametrize("text, expected", [
    ("12.5", 12.5), ("12.5 ms", 12.5), ("0.0125 s", 12.5), ("12500 us", 12.5),
])
def test_times_in_their_units(text, expected):
    assert cells.milliseconds(text)[0] == pytest.approx(expected)


def test_a_time_in_another_unit_is_named():
    value, why = cells.milliseconds("12 img/s")
    assert value is None and "'img/s' is not a time" in why


@pytest.mark.parametrize("text, expected", [
    ("FP32", "fp32"), ("fp32", "fp32"), ("TF32", "tf32"), ("FP32 (TF32)", "tf32"),
    ("AMP", "amp-fp16"), ("Mixed", "amp-fp16"), ("mixed precision", "amp-fp16"),
    ("FP16 AMP", "amp-fp16"), ("AMP (FP16/FP32)", "amp-fp16"), ("amp-fp16", "amp-fp16"),
    ("AMP (BF16)", "amp-bf16"), ("BF16 AMP", "amp-bf16"), ("amp-bf16", "amp-bf16"),
    ("FP16", "fp16"), ("BF16", "bf16"), ("bfloat16", "bf16"), ("AMP O2", "amp-fp16"),
    ("FP16 (Tensor Cores)", "fp16"), ("TF32 (default)", "tf32"),
])
def test_precision_words(text, expected):
    assert cells.precision_of_words(text) == (expected, "")


@pytest.mark.parametrize("text, why", [
    ("INT8", "unknown word 'int8'"), ("FP8", "unknown word 'fp8'"), ("", "is not one"),
    ("FP16 O3", "unknown word 'o3'"),
    ("FP16/BF16", "more than one format"), ("TF32/AMP", "more than one format"),
])
def test_a_precision_the_model_lacks_is_named(text, why):
    precision, reason = cells.precision_of_words(text)
    assert precision is None and why in reason


@pytest.mark.parametrize("column, cell, origin, expected", [
    ("", "", "table", cells.SAMPLES), ("tokens/s", "", "", cells.TOKENS),
    ("", "tokens/sec", "", cells.TOKENS), ("", "", "derived: tokens/s from the log",
                                           cells.TOKENS),
    ("", "img/s", "", cells.SAMPLES), ("seq/s", "sequences/s", "", cells.SAMPLES),
    ("sequences/s", "", "tokens/s", cells.SAMPLES),     # the column wins over the origin
])
def test_the_throughput_unit(column, cell, origin, expected):
    assert cells.throughput_unit(column, cell, origin) == (expected, "")


@pytest.mark.parametrize("column, cell, why", [
    ("tokens/s", "img/s", "given twice"), ("", "ms", "'ms' is not a throughput unit"),
    ("furlongs", "", "throughput_unit: 'furlongs'"),
])
def test_a_throughput_unit_that_cannot_be_read_is_named(column, cell, why):
    unit, reason = cells.throughput_unit(column, cell, "")
    assert unit is None and why in reason


@pytest.mark.parametrize("column, notes, expected", [
    ("384", [], 384), ("", ["seq len 128"], 128), (None, ["sequence length 512"], 512),
    ("", ["AMP, seq_len=384"], 384), ("", ["max_seq_length: 128", "seq len 128"], 128),
    ("", ["batch 32"], None), ("n/a", [""], None),
])
def test_the_sequence_length(column, notes, expected):
    assert cells.seq_len_of(column, notes) == (expected, "")


def test_two_sequence_lengths_or_a_fraction_are_named():
    assert "2 sequence lengths" in cells.seq_len_of("", ["seq len 128; seq len 512"])[1]
    assert "not a whole number" in cells.seq_len_of("12.5", [])[1]


def test_the_gpu_count():
    assert cells.gpu_count({"gpus": "8"}) == cells.gpu_count({"gpus": "8x"}) == (8, "")
    assert cells.gpu_count({"num_gpus": "", "gpu_count": "1"}) == (1, "")
    assert cells.gpu_count({}) == (None, "")
    assert "not a whole number" in cells.gpu_count({"n_gpus": "1.5"})[1]


@pytest.mark.parametrize("family, versions, expected", [
    ("tensorflow", ["2.4"], "tf32"), ("tensorflow-xla", [""], "tf32"),
    ("pytorch", ["1.10"], "tf32"), ("pytorch", ["NGC 21.03"], "tf32"),
    ("pytorch", ["1.12"], "fp32"), ("pytorch", ["2.1.0"], "fp32"),
    ("pytorch", ["NGC 23.03"], "fp32"), ("pytorch", [""], "fp32"), ("mxnet", ["1.9"], "fp32"),
])
def test_fp32_on_tf32_units_as_each_framework_runs_it(family, versions, expected):
    precision, why = cells.fp32_on_tensor_float(family, versions, "")
    assert precision == expected and "convolutions" in why


def test_fp32_with_tf32_turned_off_is_named():
    precision, why = cells.fp32_on_tensor_float("pytorch", ["1.10"], "NVIDIA_TF32_OVERRIDE=0")
    assert precision is None and "TF32 turned off" in why
